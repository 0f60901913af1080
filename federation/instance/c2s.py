"""C2S over HTTP (ActivityPub §6, DESIGN.md §6): a resident's client with a bearer token.

- ``POST {actor}/outbox`` (``write``): an activity or a bare object, checked as strictly as
  federated input (strict JSON, the JSON-LD guards, the vocabulary's schemas for signed ones),
  applied by :mod:`c2s_acts` or, when it carries the client's proof, :mod:`c2s_signed`. The
  answer is ``201 Created``, ``Location`` = the activity id and the stored activity as JSON.
  A refusal is problem+json whose ``reason`` (and ``type``) names the rule, and writes nothing.
- ``GET {actor}/outbox`` with a token (``read``) of that resident: non-public items too.
- ``GET {actor}/inbox`` (``read``, that resident only): what this server received for them.
- The actor document names the OAuth endpoints (FEP-d8c2) and lists client keys.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

import federation.instance.app as instance_app
from activitypub.as2 import As2Error
from activitypub.collections import (
    PageRequest,
    PageResult,
    first_page_url,
    ordered_collection,
    ordered_collection_page,
    page_url_for,
    parse_page_request,
)
from activitypub.errors import Problem
from activitypub.fetch import FetchError, parse_json_object, parse_media_type
from activitypub.integrity import ProofError, ProofFailure
from activitypub.jsonld import JsonLdError, check_document
from federation.instance import readside
from federation.instance.actors import USERS_PATH, ActorDocumentHook, ActorKind, LocalActor
from federation.instance.c2s_acts import ClientActs, refusal, wrap_bare_object
from federation.instance.c2s_signed import SignedActs
from federation.instance.client_keys import ClientKeys, add_client_key_routes
from federation.instance.deliberation import PROBLEM_BASE, problem_of
from federation.instance.oauth import AUTHORIZE_PATH, TOKEN_PATH, Bearer, authenticate
from federation.instance.ports import User
from federation.instance.rules import RuleViolation
from federation.store.c2s import count_inbox, page_inbox
from federation.store.oauth import ClientKeyStore
from federation.store.outbox import OutboxStore
from federation.store.paging import SEQ_SHAPE
from federation.validation import ValidationError
from federation.vocab import VocabError
from federation.vocab.context import document_context

MAX_BODY = 256 * 1024
_MEDIA_TYPES = frozenset({"application/activity+json", "application/ld+json", "application/json"})
_PRIVATE = {"Cache-Control": "private, no-store", "Vary": "Accept, Authorization"}
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Expose-Headers": "Location",
}
PageLoader = Callable[[PageRequest], Awaitable[PageResult]]


# --- the actor document ----------------------------------------------------------------------


def document_hook(app: web.Application, then: ActorDocumentHook | None = None) -> ActorDocumentHook:
    """Add FEP-d8c2 OAuth endpoints and the resident's client keys to a Person's document."""

    async def hook(actor: LocalActor, document: dict[str, Any]) -> dict[str, Any]:
        if actor.kind is ActorKind.PERSON and actor.user is not None:
            base = app[instance_app.CONFIG].base_url
            endpoints = dict(document.get("endpoints") or {})
            endpoints["oauthAuthorizationEndpoint"] = base + AUTHORIZE_PATH
            endpoints["oauthTokenEndpoint"] = base + TOKEN_PATH
            document["endpoints"] = endpoints
            keys = ClientKeys(ClientKeyStore(app[instance_app.DB]))
            listed = list(document.get("assertionMethod") or [])
            document["assertionMethod"] = listed + await keys.entries(actor.user, actor.id)
        return await then(actor, document) if then is not None else document

    return hook


# --- helpers -----------------------------------------------------------------------------------


async def _person(request: web.Request, suffix: str) -> LocalActor:
    actor_id = request.app[instance_app.CONFIG].base_url + request.path.removesuffix(suffix)
    actor = await request.app[instance_app.ACTORS].find(actor_id)
    if actor is None or actor.kind is not ActorKind.PERSON:
        raise refusal(404, "not_found", f"there is no resident at {request.path}")
    return actor


async def _owner(request: web.Request, suffix: str, need: str) -> tuple[Bearer, LocalActor]:
    bearer = await authenticate(request, need)
    path_actor = request.app[instance_app.CONFIG].base_url + request.path.removesuffix(suffix)
    if path_actor == bearer.actor_id:
        # The token's own resident, just read with the token: no second lookup.
        user = bearer.user
        return bearer, LocalActor(ActorKind.PERSON, bearer.actor_id, user.username, user)
    actor = await _person(request, suffix)
    if bearer.actor_id != actor.id:
        raise refusal(
            403, "not_your_outbox" if suffix == "/outbox" else "not_your_inbox",
            f"this token acts for {bearer.actor_id}, not for {actor.id}",
        )  # fmt: skip
    return bearer, actor


async def read_activity(request: web.Request) -> dict[str, Any]:
    """The POSTed JSON object: AS2 media type, bounded, strict JSON, JSON-LD guards."""
    media, _ = parse_media_type(request.headers.get("Content-Type", ""))
    if media not in _MEDIA_TYPES:
        raise refusal(
            415,
            "unsupported_media_type",
            'POST application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
        )
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise refusal(413, "too_large", f"the body exceeds {MAX_BODY} bytes")
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise refusal(413, "too_large", f"the body exceeds {MAX_BODY} bytes")
    try:
        document = parse_json_object(request.path, body)
        check_document(document)
    except FetchError as exc:
        raise refusal(400, "invalid_json", exc.detail) from exc
    except JsonLdError as exc:
        raise refusal(400, str(exc.reason), exc.detail) from exc
    return document


async def _apply(
    app: web.Application, user: User, actor: str, doc: dict[str, Any]
) -> dict[str, Any]:
    """Run the activity through the service, every refusal as problem+json naming its rule."""
    deliberation = app[instance_app.DELIBERATION]
    try:
        if "proof" in doc:
            keys = ClientKeys(ClientKeyStore(app[instance_app.DB]))
            signed = SignedActs(deliberation, client_key_ids=keys.key_ids,
                                fetch_actor=_local_actor_fetcher(app))  # fmt: skip
            return await signed.submit(user, actor, doc)
        return await ClientActs(deliberation).submit(user, actor, doc)
    except RuleViolation as exc:
        raise problem_of(exc) from exc
    except ValidationError as exc:
        raise refusal(
            422, f"invalid_{exc.shape}", f"{exc.field}: {exc.detail}", field=exc.field
        ) from exc
    except (VocabError, As2Error) as exc:
        raise refusal(422, "invalid_input", str(exc), field=exc.field) from exc
    except sqlite3.IntegrityError as exc:
        # Two requests raced for one client-chosen id; the loser's transaction rolled back.
        raise refusal(409, "id_in_use", "that id was used meanwhile; choose a fresh one") from exc
    except Problem as exc:
        _name_rule(exc)
        raise


def _name_rule(problem: Problem) -> None:
    """Give a service's problem a ``reason`` and a ``type`` naming it, when it has none."""
    reason = problem.extensions.get("reason") or problem.extensions.get("rule") or "refused"
    problem.extensions["reason"] = reason
    if problem.type == "about:blank":
        problem.type = PROBLEM_BASE + str(reason)


def _local_actor_fetcher(app: web.Application) -> Any:
    async def fetch(url: str, refresh: bool) -> Mapping[str, Any]:
        """The local actor's document as the world sees it (its client keys included)."""
        actor = await app[instance_app.ACTORS].find(url)
        if actor is None:
            raise ProofError(ProofFailure.KEY_UNKNOWN, f"{url} is not a resident of this instance")
        return await app[instance_app.ACTORS].document(actor)

    return fetch


async def _collection(
    request: web.Request, collection_id: str, total: int, load_page: PageLoader
) -> web.Response:
    """The collection or one cursor page of it (AS2 §5.3-5.4), private to its owner."""
    try:
        page = parse_page_request(request.query, key_shape=SEQ_SHAPE)
    except ValueError as exc:
        raise refusal(400, "bad_paging", f"bad paging parameters: {exc}") from exc
    context = document_context()
    if page is None:
        doc = ordered_collection(collection_id, total, first=first_page_url(collection_id),
                                 context=context)  # fmt: skip
    else:
        page_id = request.app[instance_app.CONFIG].base_url + request.path_qs
        doc = ordered_collection_page(
            collection_id, page_id, await load_page(page), page_url=page_url_for(collection_id),
            total_items=total, context=context,
        )  # fmt: skip
    response = instance_app.as2_response(request, doc)
    response.headers.update({**_PRIVATE, **_CORS})
    return response


# --- handlers -----------------------------------------------------------------------------------


async def outbox_post(request: web.Request) -> web.Response:
    """POST {actor}/outbox: 201 + Location + the stored activity (ActivityPub §6)."""
    bearer, actor = await _owner(request, "/outbox", "write")
    document = wrap_bare_object(await read_activity(request), actor.id)
    stored = await _apply(request.app, bearer.user, actor.id, document)
    response = instance_app.as2_response(request, stored)
    response.set_status(201)
    response.headers.update({"Location": str(stored["id"]), **_CORS})
    return response


async def collection_handler(request: web.Request) -> web.Response:
    """{actor}/outbox with a bearer token: the owner sees every item; else the read side."""
    # Only a Bearer token makes it C2S: "Authorization: Signature" is a signed fetch (cavage).
    bearer_auth = request.headers.get("Authorization", "").lower().startswith("bearer ")
    if request.match_info.get("collection") != "outbox" or not bearer_auth:
        return await readside.collection_handler(request)
    bearer = await authenticate(request, "read")
    actor = await _person(request, "/outbox")
    private = bearer.actor_id == actor.id
    store = OutboxStore(request.app[instance_app.DB])

    async def load_page(page: PageRequest) -> PageResult:
        result = await store.page_outbox(actor.id, page, include_private=private)
        # Verbatim, @context and proof included: what the inboxes got.
        return PageResult(
            [s.document for s in result.items], result.next_cursor, result.prev_cursor
        )

    total = await store.count_outbox(actor.id, include_private=private)
    return await _collection(request, actor.id + "/outbox", total, load_page)


async def inbox_get(request: web.Request) -> web.Response:
    """GET {actor}/inbox: the activities this server received for the resident (read scope)."""
    _, actor = await _owner(request, "/inbox", "read")
    db = request.app[instance_app.DB]
    shared_inbox = request.app[instance_app.ACTORS].shared_inbox
    where = {"inbox": actor.id + "/inbox", "shared_inbox": shared_inbox, "actor_id": actor.id}

    async def load_page(page: PageRequest) -> PageResult:
        return await page_inbox(db, page=page, **where)

    total = await count_inbox(db, **where)
    return await _collection(request, actor.id + "/inbox", total, load_page)


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight for browser-based clients (no cookies: bearer tokens only)."""
    return web.Response(status=204, headers=_CORS)


def setup_c2s(app: web.Application) -> None:
    """POST outbox, GET inbox, client keys; GET outbox comes through :func:`collection_handler`."""
    prefix = USERS_PATH + "{name}"
    app.router.add_post(prefix + "/outbox", outbox_post)
    app.router.add_get(prefix + "/inbox", inbox_get)
    for path in ("/outbox", "/inbox"):
        app.router.add_route("OPTIONS", prefix + path, preflight)
    add_client_key_routes(app)
