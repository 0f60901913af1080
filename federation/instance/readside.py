"""The instance's ActivityPub read side: every object at its id, collections, private supports.

DESIGN.md §6 "Backfill" and issue 4 "Read side". An object id answers AS2 JSON (ActivityPub §3.2)
or, when the client ranks HTML higher, the page HD's renderer draws for that kind; a deleted id
answers 410 with its Tombstone (ActivityPub §6.4). Collections are OrderedCollections with cursor
paging over the store's ``seq`` (:mod:`activitypub.collections`). Who supported what is private
(DESIGN.md §6): support Likes, ``{proposal}/supports`` and, at the process's owner,
``{process}/supports`` are readable only with a signed GET by the owning Group (or its
server's instance actor) or a configured aggregator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from activitypub.collections import (
    PageRequest,
    PageResult,
)
from activitypub.errors import Problem
from activitypub.fetch import parse_media_type
from activitypub.runtime import FEDERATION
from federation.instance import app as instance_app
from federation.instance.readaccess import activity_readers, private_reason, require_reader
from federation.instance.readpaging import (
    embedded_page,
    not_found_problem,
    own_url,
    serve_collection,
)
from federation.instance.readresidents import RESIDENTS_PATH, instance_residents
from federation.instance.readsupports import (
    instance_support_log,
    process_support_log,
    process_supports,
    proposal_supports,
)
from federation.store.comments import CommentStore
from federation.store.domain import DomainStore
from federation.store.outbox import OutboxStore
from federation.store.proposals import ProposalStore
from federation.vocab.comment import comment_to_ap
from federation.vocab.debate import debate_to_ap
from federation.vocab.deletion import tombstone_to_ap
from federation.vocab.process import process_to_ap
from federation.vocab.proposal import proposal_to_ap

HtmlRenderer = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
HtmlRegistry = dict[str, HtmlRenderer]
HTML_RENDERERS: web.AppKey[HtmlRegistry] = web.AppKey("barri.html_renderers", HtmlRegistry)

#: Kinds an HTML renderer may be registered for (issue 4 "Pages"); ``not_found`` draws the
#: 404 page for an object id this instance does not know (the renderer answers 404 itself).
KINDS = ("process", "proposal", "debate", "comment", "tombstone", "not_found")
_PATHS = {"process": "processes", "proposal": "proposals", "debate": "debates",
          "comment": "comments"}  # fmt: skip
_ACTIVITY_PATHS = ("activities", "supports", "votes")
_AS2_MEDIA = frozenset({"application/activity+json", "application/ld+json", "application/json"})
_HTML_MEDIA = frozenset({"text/html", "application/xhtml+xml"})

Loader = Callable[[web.Application, str], Awaitable[dict[str, Any] | None]]


# --- the HTML registry -------------------------------------------------------------------------


def register_html(app: web.Application, kind: str, renderer: HtmlRenderer) -> None:
    """Serve ``kind`` objects to browsers with ``renderer(request, object_id)`` (RFC 9110 §12).

    Call before the app starts (``setup_pages``); the renderer is only called for ids that exist,
    except the ``not_found`` one, called for ids that do not (it must answer 404).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
    registry = app.get(HTML_RENDERERS)
    if registry is None:
        registry = app[HTML_RENDERERS] = {}
    registry[kind] = renderer


def _quality(params: Mapping[str, str]) -> float:
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 0.0


def prefers_html(accept: str) -> bool:
    """True when ``Accept`` ranks HTML above every ActivityStreams type (RFC 9110 §12.5.1)."""
    html = as2_quality = 0.0
    for part in accept.split(","):
        if not part.strip():
            continue
        media, params = parse_media_type(part)
        if media in _HTML_MEDIA:
            html = max(html, _quality(params))
        elif media in _AS2_MEDIA:
            as2_quality = max(as2_quality, _quality(params))
    # A tie (``*/*`` alone, or nothing) answers AS2: this is a federation server first.
    return html > as2_quality


def _renderer(request: web.Request, kind: str) -> HtmlRenderer | None:
    if not prefers_html(request.headers.get("Accept", "")):
        return None
    return (request.app.get(HTML_RENDERERS) or {}).get(kind)


# --- setup ------------------------------------------------------------------------------------


def setup_readside(app: web.Application) -> None:
    """Add the read routes: objects by id, process and thread collections, private supports.

    (NodeInfo's process count is registered by app.py with the Deliberation service.)
    """
    for kind, path in _PATHS.items():
        app.router.add_get(f"/{path}/{{id}}", _object_handler(kind, _LOADERS[kind]))
    for path in _ACTIVITY_PATHS:
        app.router.add_get(f"/{path}/{{id}}", _activity)
    app.router.add_get("/processes/{id}/proposals", _process_proposals)
    app.router.add_get("/processes/{id}/debates", _process_debates)
    for path in ("proposals", "debates", "comments"):
        app.router.add_get(f"/{path}/{{id}}/replies", _replies)
    for path in ("proposals", "debates"):
        app.router.add_get(f"/{path}/{{id}}/context", _context)
    app.router.add_get("/proposals/{id}/supports", proposal_supports)
    app.router.add_get("/processes/{id}/supports", process_supports)
    app.router.add_get("/processes/{id}/support-log", process_support_log)
    app.router.add_get("/support-log", instance_support_log)
    app.router.add_get(RESIDENTS_PATH, instance_residents)


async def _missing(request: web.Request, object_id: str) -> web.StreamResponse:
    """404 for an unknown id: the pages' HTML for browsers, problem+json for everyone else."""
    renderer = _renderer(request, "not_found")
    if renderer is None:
        raise not_found_problem(object_id)
    return await renderer(request, object_id)


# --- objects ----------------------------------------------------------------------------------


async def _load_process(app: web.Application, object_id: str) -> dict[str, Any] | None:
    record = await DomainStore(app[instance_app.DB]).get_process(object_id)
    return None if record is None else process_to_ap(record.process)


async def _load_proposal(app: web.Application, object_id: str) -> dict[str, Any] | None:
    record = await ProposalStore(app[instance_app.DB]).get_proposal(object_id)
    # supportCount is the count of final supports known here (DESIGN.md §6: counts are public).
    return None if record is None else proposal_to_ap(record.proposal)


async def _load_debate(app: web.Application, object_id: str) -> dict[str, Any] | None:
    record = await DomainStore(app[instance_app.DB]).get_debate(object_id)
    return None if record is None else debate_to_ap(record.debate)


async def _load_comment(app: web.Application, object_id: str) -> dict[str, Any] | None:
    record = await CommentStore(app[instance_app.DB]).get_comment(object_id)
    return None if record is None or record.deleted else comment_to_ap(record.comment)


_LOADERS: dict[str, Loader] = {
    "process": _load_process,
    "proposal": _load_proposal,
    "debate": _load_debate,
    "comment": _load_comment,
}


async def _gone(request: web.Request, object_id: str) -> web.StreamResponse | None:
    """410 with the Tombstone when the id was deleted (ActivityPub §6.4), else None."""
    tombstone = await DomainStore(request.app[instance_app.DB]).get_tombstone(object_id)
    if tombstone is None:
        return None
    renderer = _renderer(request, "tombstone")
    if renderer is not None:
        return await renderer(request, object_id)
    response = instance_app.as2_response(request, tombstone_to_ap(tombstone))
    response.set_status(410)
    return response


def _object_handler(
    kind: str, load: Loader
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        """GET an object by id: AS2, or HD's page for browsers; 410 once deleted."""
        object_id = own_url(request)
        gone = await _gone(request, object_id)
        if gone is not None:
            return gone
        document = await load(request.app, object_id)
        if document is None:
            return await _missing(request, object_id)
        renderer = _renderer(request, kind)
        if renderer is not None:
            return await renderer(request, object_id)
        return instance_app.as2_response(request, document)

    return handler


async def _activity(request: web.Request) -> web.StreamResponse:
    """GET an activity we published; a non-public one only for a signed GET by a reader."""
    activity_id = own_url(request)
    gone = await _gone(request, activity_id)
    if gone is not None:
        return gone
    stored = await OutboxStore(request.app[instance_app.DB]).get_activity(activity_id)
    if stored is None:
        return await _missing(request, activity_id)
    if not stored.public:
        readers = activity_readers(stored.document)
        await require_reader(request, readers, private_reason(stored.document))
    return instance_app.as2_response(request, stored.document)


# --- collections --------------------------------------------------------------------------------


async def _require_process(request: web.Request, suffix: str) -> str:
    process_id = own_url(request, suffix)
    if await DomainStore(request.app[instance_app.DB]).get_process(process_id) is None:
        raise not_found_problem(process_id)
    return process_id


async def _process_proposals(request: web.Request) -> web.Response:
    """``{process}/proposals``: newest first, each with its public supportCount (issue 4)."""
    process_id = await _require_process(request, "/proposals")
    store = ProposalStore(request.app[instance_app.DB])

    async def load_page(page: PageRequest) -> PageResult:
        return embedded_page(await store.page_proposals(process_id, page), proposal_to_ap)

    async def count() -> int:
        return await store.count_proposals(process_id)

    return await serve_collection(request, process_id + "/proposals", count, load_page)


async def _process_debates(request: web.Request) -> web.Response:
    """``{process}/debates``: the process's debates, newest first."""
    process_id = await _require_process(request, "/debates")
    store = DomainStore(request.app[instance_app.DB])

    async def load_page(page: PageRequest) -> PageResult:
        return embedded_page(await store.page_debates(process_id, page), debate_to_ap)

    return await serve_collection(request, process_id + "/debates", None, load_page)


async def _thread_root(request: web.Request, suffix: str) -> str:
    """The proposal, debate or comment a thread collection hangs from; 404 when unknown."""
    object_id = own_url(request, suffix)
    kind = request.path.split("/")[1]
    loader = _LOADERS[{"proposals": "proposal", "debates": "debate", "comments": "comment"}[kind]]
    if await loader(request.app, object_id) is None:
        raise not_found_problem(object_id)
    return object_id


async def _replies(request: web.Request) -> web.Response:
    """``{object}/replies``: direct replies, oldest first (ActivityPub §5.8, FEP-7888)."""
    object_id = await _thread_root(request, "/replies")
    store = CommentStore(request.app[instance_app.DB])

    async def load_page(page: PageRequest) -> PageResult:
        return embedded_page(await store.page_replies(object_id, page), comment_to_ap)

    return await serve_collection(request, object_id + "/replies", None, load_page)


async def _context(request: web.Request) -> web.Response:
    """``{root}/context``: the whole conversation under a proposal or debate (FEP-7888/f228)."""
    root_id = await _thread_root(request, "/context")
    store = CommentStore(request.app[instance_app.DB])

    async def load_page(page: PageRequest) -> PageResult:
        return embedded_page(await store.page_context(root_id, page), comment_to_ap)

    return await serve_collection(request, root_id + "/context", None, load_page)


# --- actor collections (the route app.py's empty ``_collection`` answered) ---------------------


async def collection_handler(request: web.Request) -> web.Response:
    """``{actor}/outbox|followers|following`` with cursor paging (ActivityPub §5.1, §5.3-5.5)."""
    name = request.match_info["collection"]
    actor_id = own_url(request, "/" + name)
    if await request.app[instance_app.ACTORS].find(actor_id) is None:
        raise Problem(404, "Not Found", f"There is no actor at {request.path} on this instance.")
    collection_id = f"{actor_id}/{name}"
    store = OutboxStore(request.app[instance_app.DB])
    if name == "outbox":
        return await _outbox(request, store, actor_id, collection_id)
    if name == "followers":

        async def count() -> int:
            return await store.count_followers(actor_id)

        async def followers(page: PageRequest) -> PageResult:
            return await store.page_followers(actor_id, page)

        return await serve_collection(request, collection_id, count, followers)
    return await serve_collection(request, collection_id, _none, _empty_page)


async def _none() -> int:
    return 0


async def _empty_page(page: PageRequest) -> PageResult:
    return PageResult([], None, None)


async def _outbox(
    request: web.Request, store: OutboxStore, actor_id: str, collection_id: str
) -> web.Response:
    """Public activities as delivered (with their proofs); the actor itself sees them all.
    ``exclude=comments``: none that creates a comment or announces its creation (a collection
    of its own, whose pages keep the query; the comments are in their threads)."""
    comments = _outbox_comments(request.query)
    if not comments:
        collection_id += "?" + urlencode({"exclude": "comments"})
    signed = await request.app[FEDERATION].authenticate_get(request)
    private = signed is not None and signed.owner == actor_id

    async def count() -> int:
        return await store.count_outbox(actor_id, include_private=private, comments=comments)

    async def load_page(page: PageRequest) -> PageResult:
        result = await store.page_outbox(actor_id, page, include_private=private, comments=comments)
        # Kept verbatim, @context included: the FEP-8b32 proof covers every byte of it.
        items = [stored.document for stored in result.items]
        return PageResult(items, result.next_cursor, result.prev_cursor)

    return await serve_collection(request, collection_id, count, load_page)


def _outbox_comments(query: Mapping[str, str]) -> bool:
    """Whether an outbox query keeps the comments' creations (``exclude=comments`` does not);
    400 problem for anything else to exclude."""
    excluded = query.get("exclude")
    if excluded not in (None, "comments"):
        raise Problem(400, "Bad Request", "exclude must be 'comments' (or absent, for all).")
    return excluded is None
