"""The inbox pipeline (ActivityPub §7): bound, parse, authenticate, authorise, dedupe, record, 202.

Handlers run afterwards from the recorded row (see :mod:`activitypub.dispatch`), so a crash
between receipt and processing loses nothing. Authentication accepts an HTTP signature whose key
belongs to the activity's actor, or a valid FEP-8b32 proof by that actor; the proof takes
precedence when present (FEP-8b32 §Verification).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard, runtime_checkable

from aiohttp import web

from activitypub import as2, jsontext
from activitypub.errors import Problem
from activitypub.httpsig import KeyResolver, SignatureError, verify_request
from activitypub.integrity import (
    ActorFetcher,
    ContextMemo,
    ProofError,
    ProofFailure,
    verify_document,
)
from activitypub.jsonld import JsonLdError, check_document
from activitypub.memo import EqualMemo
from activitypub.origin import same_origin
from activitypub.storage import InboxStore
from activitypub.verifier import Verifier

AS2_TYPES = ("application/activity+json", "application/ld+json")
_PROBLEM_BASE = "https://w3id.org/barri/problems#"
# Activities whose object must be owned by the activity's actor (FEP-fe34 §Update/Delete/Undo).
OWNER_ONLY = frozenset({"Update", "Delete", "Undo"})


def refused(status: int, reason: str, detail: str) -> Problem:
    """A refusal with a machine-readable ``reason`` beside the human ``detail`` (RFC 9457 §3.2)."""
    titles = {
        400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 409: "Conflict",
        429: "Too Many Requests",
    }  # fmt: skip
    title = titles.get(status, "Refused")
    return Problem(status, title, detail, type_=_PROBLEM_BASE + reason, reason=reason)


@runtime_checkable
class TextRecordingStore(Protocol):
    """An InboxStore that can keep the body as received, which parses to ``activity``."""

    async def record_text(
        self,
        inbox: str,
        activity_id: str,
        actor: str,
        activity: Mapping[str, Any],
        text: str,
        *,
        auth: str,
        now: float,
    ) -> bool:
        """InboxStore.record, storing ``text`` (the activity's JSON as received) as is."""


#: Store types already checked against :class:`TextRecordingStore` (a cache of a pure function).
_TEXT_RECORDING: dict[type[Any], bool] = {}


def records_text(store: Any) -> TypeGuard[TextRecordingStore]:
    """Whether ``store`` is a :class:`TextRecordingStore`, decided once per store type (an
    isinstance check against a runtime-checkable Protocol costs ~12 µs, on every delivery)."""
    kind = type(store)
    if kind not in _TEXT_RECORDING:
        _TEXT_RECORDING[kind] = isinstance(store, TextRecordingStore)
    return _TEXT_RECORDING[kind]


def _utf8_text(body: bytes) -> str | None:
    """The body as text when a JSON reader of it reads what the door read from the bytes:
    UTF-8 without a byte order mark (RFC 8259 §8.1). ``jsontext.loads`` accepts nothing else,
    so a parsed body always is; the checks stay so that no other text is ever stored."""
    if body.startswith(b"\xef\xbb\xbf"):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class Received:
    """An activity that passed the pipeline, as handed to ``on_recorded`` observers."""

    inbox: str
    activity_id: str
    actor: str
    auth: str
    activity: dict[str, Any]


@dataclass
class InboxPipeline:
    """Everything one inbox endpoint needs; ``handle`` is the aiohttp handler."""

    store: InboxStore
    resolve_key: KeyResolver
    fetch_actor: ActorFetcher
    origin: str
    max_body: int = 1_048_576
    clock: Callable[[], float] = time.time
    on_recorded: Callable[[Received], Awaitable[None]] | None = None
    owner_exception: OwnerException | None = None
    #: The @contexts this inbox has checked and canonicalised, found again by equality.
    scopes: EqualMemo[Any] = field(default_factory=EqualMemo)
    canonical: ContextMemo = field(default_factory=EqualMemo)
    #: Checks proofs' signatures off the loop's thread (activitypub.verifier); None: inline.
    verifier: Verifier | None = None

    async def handle(self, request: web.Request) -> web.Response:
        """POST inbox: 202 once recorded; problem+json (400/401/403/409/413/415) otherwise."""
        received = await self.receive(request)
        if self.on_recorded is not None:
            await self.on_recorded(received)
        return web.Response(status=202, headers={"Vary": "Signature, Signature-Input"})

    async def receive(self, request: web.Request) -> Received:
        """Run the pipeline in order and return the recorded activity, or raise a Problem."""
        _check_content_type(request.headers.get("Content-Type", ""))
        body = await _read_bounded(request, self.max_body)
        activity = _parse_activity(body, self.scopes)
        actor = as2.first_id(activity, "actor") or ""
        auth = await self._authenticate(request, body, activity, actor)
        authorise(activity, actor, self.owner_exception)
        inbox = self.origin + request.path
        # The body as received is the activity's JSON: no need to serialise it again.
        if records_text(self.store) and (text := _utf8_text(body)) is not None:
            recorded = await self.store.record_text(
                inbox, activity["id"], actor, activity, text, auth=auth, now=self.clock()
            )
        else:
            recorded = await self.store.record(
                inbox, activity["id"], actor, activity, auth=auth, now=self.clock()
            )
        if not recorded:
            raise refused(409, "duplicate_activity", f"activity {activity['id']} already received")
        return Received(inbox, activity["id"], actor, auth, activity)

    async def _authenticate(
        self, request: web.Request, body: bytes, activity: dict[str, Any], actor: str
    ) -> str:
        """A valid proof by the actor wins; else an HTTP signature by a key the actor lists."""
        if "proof" in activity:
            try:
                await verify_document(
                    activity, self.fetch_actor, owner=actor, memo=self.canonical,
                    verifier=self.verifier,
                )  # fmt: skip
                return "proof"
            except ProofError as exc:
                # A suite we do not implement (a legacy Mitra one, say) is no evidence either
                # way: fall back to the HTTP signature. Any other proof failure is a forgery.
                if exc.reason is not ProofFailure.UNSUPPORTED:
                    detail = f"object integrity proof: {exc.detail}"
                    raise refused(401, str(exc.reason), detail) from exc
        if "Signature" not in request.headers and "Signature-Input" not in request.headers:
            raise refused(401, "signature_missing", "no HTTP signature and no integrity proof")
        url = self.origin + request.path_qs
        try:
            verified = await verify_request(
                request.method, url, request.headers, body, self.resolve_key
            )
        except SignatureError as exc:
            raise refused(exc.status, str(exc.reason), exc.detail) from exc
        if verified.owner != actor:
            raise refused(
                401,
                "key_not_owned_by_actor",
                f"signed with {verified.key_id}, owned by {verified.owner}, not by actor {actor}",
            )
        return "httpsig"


#: A domain rule that lets a non-owner act on an object (FEP-fe34 allows an application to
#: define who may Update what). It must only say yes to what its handler re-checks in full.
OwnerException = Callable[[Mapping[str, Any], str], bool]


def authorise(
    activity: Mapping[str, Any], actor: str, owner_exception: OwnerException | None = None
) -> None:
    """FEP-fe34 origin and ownership rules for an authenticated activity."""
    if not same_origin(activity["id"], actor):
        raise refused(
            403, "origin_mismatch", "the activity id and its actor have different origins"
        )
    if as2.types(activity) and as2.types(activity)[0] in OWNER_ONLY:
        if owner_exception is not None and owner_exception(activity, actor):
            return
        _check_owner_only(activity, actor)


def _check_owner_only(activity: Mapping[str, Any], actor: str) -> None:
    """Update, Delete and Undo may only touch what the actor owns (FEP-fe34)."""
    target = as2.first(activity, "object")
    target_id = as2.id_of(target)
    if target_id is None:
        raise refused(400, "object_missing", f"{as2.types(activity)[0]} without an object")
    if isinstance(target, Mapping):
        owner = as2.first_id(target, "actor") or as2.first_id(target, "attributedTo")
        if owner is not None and owner != actor:
            raise refused(403, "not_owner", f"{actor} does not own {target_id}")
    if not same_origin(target_id, actor):
        raise refused(403, "not_owner", f"{target_id} is not on the actor's origin")


def _check_content_type(value: str) -> None:
    """Accept the AS2 media types (with parameters), as GoToSocial and Mastodon do."""
    media = value.split(";", 1)[0].strip().lower()
    if media not in AS2_TYPES:
        raise Problem(
            415,
            "Unsupported Media Type",
            "POST an ActivityStreams document as application/activity+json",
        )


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; refuse larger bodies before reading them all."""
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "Content Too Large", f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise Problem(413, "Content Too Large", f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_activity(body: bytes, scopes: EqualMemo[Any] | None = None) -> dict[str, Any]:
    """JSON object with an absolute id, a type and an actor, passing the JSON-LD checks."""
    try:
        # UTF-8 only (RFC 8259 §8.1): a byte order mark, UTF-16/32, a lone surrogate escape,
        # NaN or a nesting beyond 1024 levels is refused here, a 400 like any other bad JSON.
        activity = jsontext.loads(body)
    except ValueError as exc:
        raise refused(400, "invalid_json", f"the body is not JSON: {exc}") from exc
    if not isinstance(activity, dict):
        raise refused(400, "invalid_activity", "the body must be a JSON object")
    try:
        check_document(activity, memo=scopes)
    except JsonLdError as exc:
        raise refused(400, str(exc.reason), exc.detail) from exc
    for key in ("id", "actor"):
        value = as2.first_id(activity, key)
        if not value or not value.startswith(("https://", "http://")):
            raise refused(400, "invalid_activity", f"'{key}' must be an absolute URL")
    if not as2.types(activity):
        raise refused(400, "invalid_activity", "'type' is required")
    if not isinstance(activity["id"], str):
        raise refused(400, "invalid_activity", "'id' must be a string")
    return activity
