"""The aggregator's inbox door: the protocol pipeline, plus a record of who was turned away.

The pipeline (:mod:`activitypub.inbox`) refuses a delivery whose proof does not verify and
answers 409 to a replay; the city wants both on the record, per instance (issue 6: "refused and
flagged, never counted"). A refusal is filed only under an origin that *authenticated* itself
(a valid HTTP signature of the delivery, or the actor of a replayed, already authenticated
activity): anyone can send junk naming instance A, so junk alone is never blamed on A.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from activitypub import as2
from activitypub.dispatch import marks_batches
from activitypub.errors import Problem
from activitypub.httpsig import SignatureError, verify_request
from activitypub.inbox import InboxPipeline, records_text, refused
from activitypub.storage import InboxRecord, InboxStore, RecordId
from federation.aggregator.quota import OffRosterQuota
from federation.tally.records import normal_origin
from federation.validation import shape_of

#: (authenticated actor, activity id, reason, detail) -> file it.
RefusalSink = Callable[[str, str, str, str], Awaitable[None]]


def admits_official_answer(activity: Mapping[str, Any], actor: str) -> bool:
    """The one non-owner ``Update`` the door lets through: a Group's official answer.

    The Group owning a proposal's process (the proposal's ``audience``) answers it (vocab-spec
    "official-answer"); ingest re-checks that Group against the cached process's owner.
    """
    inner = as2.embedded(activity, "object")
    if not as2.has_type(activity, "Update") or inner is None:
        return False
    return actor in as2.ids(inner, "audience") and shape_of(activity) == "official-answer"


class ReplayRecordingStore:
    """An InboxStore that reports every replayed (inbox, activity id) pair it refuses."""

    def __init__(self, inner: InboxStore, on_replay: RefusalSink) -> None:
        self.inner, self._on_replay = inner, on_replay

    async def record(
        self,
        inbox: str,
        activity_id: str,
        actor: str,
        activity: Mapping[str, Any],
        *,
        auth: str,
        now: float,
    ) -> bool:
        """InboxStore.record; a duplicate is reported (its actor was just authenticated)."""
        recorded = await self.inner.record(inbox, activity_id, actor, activity, auth=auth, now=now)
        if not recorded:
            await self._on_replay(actor, activity_id, "replayed", f"delivered again to {inbox}")
        return recorded

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
        """TextRecordingStore.record_text (the inner store's, or its record); a duplicate is
        reported as :meth:`record` reports it."""
        if records_text(self.inner):
            recorded = await self.inner.record_text(
                inbox, activity_id, actor, activity, text, auth=auth, now=now
            )
        else:
            recorded = await self.inner.record(
                inbox, activity_id, actor, activity, auth=auth, now=now
            )
        if not recorded:
            await self._on_replay(actor, activity_id, "replayed", f"delivered again to {inbox}")
        return recorded

    async def claim(self, *, now: float, limit: int, lease: float) -> list[InboxRecord]:
        """InboxStore.claim."""
        return await self.inner.claim(now=now, limit=limit, lease=lease)

    async def mark_done(self, record_id: RecordId) -> None:
        """InboxStore.mark_done."""
        await self.inner.mark_done(record_id)

    async def mark_done_many(self, record_ids: Sequence[RecordId]) -> None:
        """BatchDoneStore.mark_done_many (one write when the inner store can, else one each)."""
        if marks_batches(self.inner):
            await self.inner.mark_done_many(record_ids)
            return
        for record_id in record_ids:
            await self.inner.mark_done(record_id)

    async def mark_failed(
        self, record_id: RecordId, error: str, *, retry_at: float | None, now: float
    ) -> None:
        """InboxStore.mark_failed."""
        await self.inner.mark_failed(record_id, error, retry_at=retry_at, now=now)

    async def get(self, record_id: RecordId) -> InboxRecord | None:
        """InboxStore.get."""
        return await self.inner.get(record_id)

    def text_of(self, record_id: RecordId) -> str | None:
        """The stored JSON of a claimed row, when the inner store still has it at hand."""
        text_of = getattr(self.inner, "text_of", None)
        return None if text_of is None else text_of(record_id)


@dataclass
class DoorPipeline(InboxPipeline):
    """The protocol pipeline; an authentication refusal is filed under the HTTP signer, and an
    origin off the roster past its budget (:mod:`.quota`) is answered 429."""

    on_refused: RefusalSink | None = None
    quota: OffRosterQuota | None = None

    async def _authenticate(
        self, request: web.Request, body: bytes, activity: dict[str, Any], actor: str
    ) -> str:
        # Overrides the pipeline's step to observe its refusals (the decision is unchanged),
        # then, the sender known, to hold an off-roster flood back before anything is stored.
        try:
            auth = await super()._authenticate(request, body, activity, actor)
        except Problem as problem:
            await self._file(request, body, activity, problem)
            raise
        if self.quota is not None and (wait := self.quota.wait(normal_origin(actor) or actor)):
            limited = refused(429, "rate_limited", f"{actor}'s server is not on the city's roster"
                              " and sent more than its share: send it again later")  # fmt: skip
            limited.headers["Retry-After"] = str(math.ceil(wait))
            raise limited
        return auth

    async def _file(
        self, request: web.Request, body: bytes, activity: dict[str, Any], problem: Problem
    ) -> None:
        """File the refusal under whoever HTTP-signed the delivery, if anyone validly did."""
        if self.on_refused is None:
            return
        if "Signature" not in request.headers and "Signature-Input" not in request.headers:
            return
        url = self.origin + request.path_qs
        try:
            signed = await verify_request(
                request.method, url, request.headers, body, self.resolve_key
            )
        except SignatureError:
            return  # nobody authenticated: nobody to blame
        reason = str(problem.extensions.get("reason", problem.status))
        await self.on_refused(signed.owner, str(activity["id"]), reason, problem.detail or "")
