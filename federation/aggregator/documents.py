"""What the tally reads besides votes: proposals, processes, residencies, fetched and cached.

A proposal names its process (``process``); a process carries phases, rules and eligible
territories; a resident's own instance states ``verifiedResidentOf`` on the actor document.
Fetches are signed GETs by the Service (authorised fetch) through the guarded
:class:`~activitypub.fetch.Fetcher`; every document is validated (federation.validation) and read
through the converters. A document that is gone or invalid is "unknown" (the tally says why);
a network failure raises :class:`~activitypub.fetch.FetchError` so the caller retries later.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from activitypub import jsontext
from activitypub.fetch import FetchError, FetchFailure
from federation.model import Process, Proposal
from federation.store.aggregator_log import ActivityLog, ProcessRow, ProposalRow, ResidentRow
from federation.tally.records import normal_origin
from federation.validation import ValidationError, validate
from federation.vocab import VocabError
from federation.vocab.actors import resident_territory_from_ap
from federation.vocab.context import format_datetime
from federation.vocab.process import process_from_ap
from federation.vocab.proposal import proposal_from_ap

#: GET an AS2 document by id (signed): ``Fetcher.get_activity(url).document``.
DocumentFetch = Callable[[str], Awaitable[Mapping[str, Any]]]
#: The actor cache: (actor id, refresh) -> actor document.
ActorFetch = Callable[[str, bool], Awaitable[Mapping[str, Any]]]
#: The actor cache's copy of an actor, if it holds a fresh one (never fetches).
ActorPeek = Callable[[str], Mapping[str, Any] | None]


def _nothing_held(actor_id: str) -> None:
    return None


_GONE = (FetchFailure.GONE, FetchFailure.ID_MISMATCH, FetchFailure.INVALID)
#: How many proposals and residents the in-memory caches remember (least recent dropped).
REMEMBERED = 100_000


def _is_actor(document: Mapping[str, Any]) -> bool:
    """An actor document, not a key stub (what a key id's fetch may give)."""
    return "type" in document and "inbox" in document


def _resident_row(actor_id: str, document: Mapping[str, Any], now: float) -> ResidentRow:
    """The residency ``document`` states (or its absence), as read at ``now``."""
    try:
        territory = resident_territory_from_ap(document)
    except VocabError:
        territory = None  # a malformed claim is no verification
    return ResidentRow(
        actor=actor_id,
        origin=normal_origin(actor_id) or actor_id,
        kind=None if territory is None else territory.kind.value,
        code=None if territory is None else territory.code,
        district=None if territory is None else territory.district_code,
        # Without its @context: every actor of an instance repeats the same 3.5 KB one,
        # three quarters of the row, and nothing here reads the document as JSON-LD.
        document=jsontext.dumps(
            {key: value for key, value in document.items() if key != "@context"},
            sort_keys=True,
        ),
        fetched_at=now,
        rev=0,
    )


class _Recent(OrderedDict[str, Any]):
    """A bounded mapping that forgets the least recently written key first."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: str, value: Any) -> None:
        """Remember ``value`` under ``key``."""
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)


def _missing(exc: FetchError) -> bool:
    """True when the document will not come back by retrying (404/410, wrong id, not JSON)."""
    return exc.reason in _GONE or (exc.reason is FetchFailure.STATUS and exc.status == 404)


def proposal_version(proposal: Proposal, at: datetime | None = None) -> str:
    """A sortable stamp of a proposal's state: its latest edit, answer or publication time."""
    times = [proposal.published, proposal.updated, proposal.answered_at, at]
    return format_datetime(max(t for t in times if t is not None))


def read_proposal(document: Mapping[str, Any]) -> Proposal | None:
    """A valid proposal document as a Proposal, or None."""
    try:
        validate("proposal", document)
        return proposal_from_ap(document)
    except (ValidationError, VocabError):
        return None


def read_process(document: Mapping[str, Any]) -> Process | None:
    """A valid process document as a Process, or None."""
    try:
        validate("process", document)
        return process_from_ap(document)
    except (ValidationError, VocabError):
        return None


class Documents:
    """Fetch-through caches of proposals, processes and residencies in the activity log."""

    def __init__(
        self,
        log: ActivityLog,
        fetch: DocumentFetch,
        actor: ActorFetch,
        *,
        refresh_seconds: float,
        clock: Callable[[], float] = time.time,
        peek: ActorPeek = _nothing_held,
    ) -> None:
        self.log, self._fetch, self.actor, self.peek = log, fetch, actor, peek
        self.refresh_seconds, self._clock = refresh_seconds, clock
        # What the hot path asks of every support, kept in memory: the process of a
        # proposal (it never changes) and when each residency was last read.
        self._process_of = _Recent(REMEMBERED)
        self._resident_at = _Recent(REMEMBERED)

    async def _get(self, url: str) -> Mapping[str, Any] | None:
        try:
            return await self._fetch(url)
        except FetchError as exc:
            if _missing(exc):
                return None
            raise

    async def process_of(self, proposal_id: str) -> str:
        """The process of a proposal, fetched on first sight; "" when unknown."""
        known = self._process_of.get(proposal_id)
        if known is not None:
            return str(known)
        row = await self.proposal(proposal_id)
        return "" if row is None else row.process_id

    def process_held(self, proposal_id: str) -> str | None:
        """The proposal's process if in memory (what :meth:`process_of` answers at once)."""
        known = self._process_of.get(proposal_id)
        return None if known is None else str(known)

    def resident_fresh(self, actor_id: str) -> bool:
        """Whether the actor's residency is cached and fresh (nothing to fetch)."""
        read_at = self._resident_at.get(actor_id)
        return read_at is not None and self._clock() - read_at < self.refresh_seconds

    async def known_resident(self, actor_id: str) -> None:
        """Make sure the actor's residency is cached and fresh (:meth:`resident`)."""
        if not self.resident_fresh(actor_id):
            await self.resident(actor_id)

    async def proposal(self, proposal_id: str) -> ProposalRow | None:
        """The cached proposal, fetched (with its process) on first sight; None if unknown."""
        row = await self.log.proposal(proposal_id)
        if row is not None:
            self._process_of.put(row.id, row.process_id)
            return row
        document = await self._get(proposal_id)
        proposal = None if document is None else read_proposal(document)
        if proposal is None or document is None:
            return None
        # Its process first: a proposal whose process is unknown could not count anyway.
        if await self.process(proposal.process) is None:
            return None
        await self.store_proposal(proposal, document)
        return await self.log.proposal(proposal_id)

    async def store_proposal(
        self, proposal: Proposal, document: Mapping[str, Any], *, at: datetime | None = None
    ) -> bool:
        """Keep a proposal's latest known name and state (older versions are ignored)."""
        origin = normal_origin(proposal.id)
        if origin is None:
            return False
        row = ProposalRow(
            id=proposal.id,
            process_id=proposal.process,
            origin=origin,
            name=proposal.name.default,
            state=proposal.state.value,
            version=proposal_version(proposal, at),
            document=jsontext.dumps(document, sort_keys=True),
            fetched_at=self._clock(),
            rev=0,
        )
        written = await self.log.put_proposal(row)
        if written:
            self._process_of.put(row.id, row.process_id)
        return written

    async def process(self, process_id: str) -> ProcessRow | None:
        """The cached process, fetched on first sight; None if unknown."""
        row = await self.log.process(process_id)
        if row is not None:
            return row
        document = await self._get(process_id)
        process = None if document is None else read_process(document)
        if process is None or document is None:
            return None
        await self.store_process(process, document)
        return await self.log.process(process_id)

    async def store_process(self, process: Process, document: Mapping[str, Any]) -> None:
        """Keep a process document as its owner published it."""
        origin = normal_origin(process.id) or process.id
        row = ProcessRow(
            id=process.id,
            owner=process.owner,
            origin=origin,
            document=jsontext.dumps(document, sort_keys=True),
            closed_at=None,
            fetched_at=self._clock(),
            rev=0,
        )
        await self.log.put_process(row)

    async def resident(self, actor_id: str, *, force: bool = False) -> ResidentRow:
        """The actor's stated residency, refetched once ``refresh_seconds`` have passed
        (or now, with ``force``: the actor announced an Update)."""
        row = await self.log.resident(actor_id)
        now = self._clock()
        if row is not None and not force and now - row.fetched_at < self.refresh_seconds:
            self._resident_at.put(actor_id, row.fetched_at)
            return row
        document = await self.actor(actor_id, row is not None or force)
        known = self._resident_at.get(actor_id)
        if known is not None and known >= now and (fresh := await self.log.resident(actor_id)):
            return fresh  # kept by learn() while this fetch ran: the same document
        return await self._keep_resident(actor_id, document, now)

    async def stored_actor(self, actor_id: str) -> tuple[dict[str, Any], float] | None:
        """The actor document kept with its residency, and its age in seconds: the actor
        cache's second level (ActorCache.stored), so a city's worth of voters need not fit in
        memory for their proofs to be checked without fetching them again."""
        row = await self.log.resident(actor_id)
        if row is None:
            return None
        try:
            document = jsontext.loads_stored(row.document)
        except ValueError:
            return None
        return document, max(0.0, self._clock() - row.fetched_at)

    async def learn(self, actor_id: str, document: Mapping[str, Any]) -> None:
        """Keep the residency an actor document just fetched states, whoever fetched it (the
        door authenticating a delivery, a proof check): ingest then finds it fresh instead
        of fetching the actor again once the actor cache has let it go."""
        if _is_actor(document):
            await self._keep_resident(actor_id, document, self._clock())

    async def learn_many(self, actors: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """:meth:`learn` each (actor id, actor document), all written in one transaction (a
        page of an instance's residents)."""
        now = self._clock()
        rows = [
            _resident_row(actor_id, document, now) for actor_id, document in actors
            if _is_actor(document)
        ]  # fmt: skip
        await self.log.put_residents(rows)
        for row in rows:
            self._resident_at.put(row.actor, now)

    async def _keep_resident(
        self, actor_id: str, document: Mapping[str, Any], now: float
    ) -> ResidentRow:
        """Store the residency ``document`` states (or its absence) as read at ``now``."""
        fresh = _resident_row(actor_id, document, now)
        await self.log.put_resident(fresh)
        self._resident_at.put(actor_id, now)
        return fresh
