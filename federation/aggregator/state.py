"""The incremental tally fed from the store, which is the source of truth (DESIGN.md §7).

Ingest and backfill only *write* rows; :meth:`TallyState.sync` reads what was written since it
last looked (activities by ``seq``, the other tables by ``rev``) and feeds it to the
:class:`~federation.tally.IncrementalTally`. A restart is a sync from zero: a few batched reads,
no JSON parsing for supports and undos. Rows written by another process (``barri roster``, a
CLI backfill) reach a running server at its next sync.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from sys import intern

from federation.model import Territory, TerritoryKind
from federation.store.aggregator import AggregatorStore, RosterRow
from federation.store.aggregator_log import (
    BATCH,
    ActivityLog,
    ActivityRow,
    Heads,
    ProcessRow,
    ResidentRow,
)
from federation.tally import (
    IncrementalTally,
    ProcessRecord,
    ProcessTally,
    ProposalRecord,
    ResidentRecord,
    Roster,
    RosterEntry,
    SupportEvent,
    TallyInputs,
    TallyResult,
    UndoEvent,
)
from federation.vocab import VocabError
from federation.vocab.process import process_from_ap


def timestamp(value: float) -> datetime:
    """A stored POSIX time as an aware UTC datetime."""
    return datetime.fromtimestamp(value, UTC)


@lru_cache(maxsize=1 << 16)
def parse_time(text: str) -> datetime:
    """A stored RFC 3339 timestamp (``…Z``) as an aware UTC datetime.

    Cached: published times have whole seconds, so a busy city's supports share a few
    thousand values, and the tally keeps one datetime per value instead of one per support.
    """
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def roster_entry(row: RosterRow) -> RosterEntry:
    """The tally's view of a roster row: a neighbourhood inside its district."""
    territory = Territory(TerritoryKind.NEIGHBOURHOOD, row.territory, district_code=row.district)
    return RosterEntry(row.origin, territory, row.active)


def roster_of(rows: Iterable[RosterRow], city: str) -> Roster:
    """The roster the tally applies."""
    return Roster(city, tuple(roster_entry(row) for row in rows))


def resident_territory(row: ResidentRow) -> Territory | None:
    """The territory a cached residency states (codes only), or None when unverified."""
    if row.kind is None or row.code is None:
        return None
    return Territory(TerritoryKind(row.kind), row.code, district_code=row.district)


def process_record(row: ProcessRow, grace: timedelta) -> ProcessRecord | None:
    """The tally's view of a cached process; None when the stored document no longer parses."""
    try:
        process = process_from_ap(json.loads(row.document))
    except (VocabError, ValueError):
        return None
    closed = None if row.closed_at is None else timestamp(row.closed_at)
    return ProcessRecord(process, grace=grace, closed_at=closed)


def genuine(row: ActivityRow) -> bool:
    """A copy whose proof verified with a key of its actor's own origin (rule 1)."""
    return row.proof_ok and row.signer_origin == row.origin


def support_event(row: ActivityRow, process: str) -> SupportEvent:
    """A stored support copy as the tally's event, in ``process`` (its proposal's).

    The tally keeps every event: the strings many of them repeat (actor, proposal, process,
    signer) are interned, one copy each instead of one per row read."""
    return SupportEvent(
        like_id=row.id,
        actor=intern(row.actor),
        proposal=intern(row.object),
        process=intern(process),
        published=parse_time(row.published),
        received_at=timestamp(row.received_at),
        proof_ok=row.proof_ok,
        signer_origin=intern(row.signer_origin),
    )


def undo_event(row: ActivityRow) -> UndoEvent:
    """A stored undo copy as the tally's event (repeated strings interned)."""
    return UndoEvent(
        undo_id=row.id,
        actor=intern(row.actor),
        like_id=row.object,
        published=parse_time(row.published),
        received_at=timestamp(row.received_at),
        proof_ok=row.proof_ok,
        signer_origin=intern(row.signer_origin),
    )


async def _let_others_run() -> None:
    """Yield to the event loop between two batches of a long catch-up: the store's reads run
    inline (:mod:`federation.store.inline`), so without this, counting the 100,000 rows a
    rebuild's workers wrote since the last sync held the loop for seconds, and the workers,
    waiting on it for their next instance, sat idle."""
    await asyncio.sleep(0)


@dataclass
class _Marks:
    """How far each table has been read."""

    roster: int = 0
    residents: int = 0
    processes: int = 0
    proposals: int = 0
    activities: int = 0


class TallyState:
    """One IncrementalTally kept equal to what the store holds."""

    def __init__(
        self,
        store: AggregatorStore,
        log: ActivityLog,
        *,
        city: str,
        grace: timedelta,
        counting: bool = True,
    ) -> None:
        self.store, self.log, self.city, self.grace = store, log, city, grace
        #: False in a process that only writes rows for the server to count (a backfill
        #: worker): sync then keeps just the roster current, which ingest consults.
        self.counting = counting
        self.tally = IncrementalTally(Roster(city))
        self.synced_at: datetime | None = None
        self._marks = _Marks()
        # A support counts in its proposal's process, read from the proposal itself; a
        # genuine support of a proposal not known yet waits for it (see ``waiting``).
        self._process_of: dict[str, str] = {}
        self._waiting: dict[str, list[ActivityRow]] = {}
        self._built = False
        self._lock = asyncio.Lock()
        #: Called after a sync that read anything (the Tally publisher listens).
        self.listeners: list[Callable[[], None]] = []

    async def sync(self) -> int:
        """Feed everything stored since the last sync; returns how many rows were read."""
        async with self._lock:
            if not self.counting:
                read = await self._roster_only()
            elif not self._built:
                read = await self._rebuild()
            else:
                read = await self._update(await self.log.heads())
                self.synced_at = datetime.now(UTC)
        if read:
            for listener in self.listeners:
                listener()
        return read

    async def _rebuild(self) -> int:
        """The first sync: read every table in batches, hand it all to the tally at once.

        Nothing is kept until the end, so a sync cancelled midway (it yields between
        batches) leaves the next one to start over."""
        roster_rev = await self.store.roster_rev()  # before the rows: a later change shows next
        roster_rows = await self.store.roster()
        residents = await self.log.residents_after(0, documents=False)
        processes = await self.log.processes_after(0)
        proposals = await self.log.proposals_after(0, documents=False)
        self._process_of = {row.id: row.process_id for row in proposals}
        self._waiting.clear()
        supports: list[SupportEvent] = []
        undos: list[UndoEvent] = []
        read = len(roster_rows) + len(residents) + len(processes) + len(proposals)
        mark = self._marks.activities
        while rows := await self.log.activities_after(mark):
            for row in rows:
                event = self._event(row)
                if isinstance(event, UndoEvent):
                    undos.append(event)
                elif event is not None:
                    supports.append(event)
            mark, read = rows[-1].seq, read + len(rows)
            await _let_others_run()
        records = (process_record(row, self.grace) for row in processes)
        self.tally = IncrementalTally.from_inputs(
            TallyInputs(
                roster=roster_of(roster_rows, self.city),
                residents=tuple(ResidentRecord(r.actor, resident_territory(r)) for r in residents),
                processes=tuple(record for record in records if record is not None),
                proposals=tuple(ProposalRecord(r.id, r.process_id, r.origin) for r in proposals),
                supports=tuple(supports),
                undos=tuple(undos),
            )
        )
        self._marks.roster, self._marks.activities = roster_rev, mark
        self._marks.residents = max((r.rev for r in residents), default=0)
        self._marks.processes = max((r.rev for r in processes), default=0)
        self._marks.proposals = max((r.rev for r in proposals), default=0)
        self._built, self.synced_at = True, datetime.now(UTC)
        return read

    async def result(self) -> TallyResult:
        """The current totals, after a sync (so changes made by other processes show)."""
        await self.sync()
        return self.tally.result()

    async def processes(self) -> tuple[ProcessTally, ...]:
        """Every process's current totals, after a sync, without gathering the anomalies."""
        await self.sync()
        return self.tally.processes()

    async def process(self, process_id: str) -> ProcessTally:
        """One process's current totals, after a sync (KeyError when it has none)."""
        await self.sync()
        return self.tally.process(process_id)

    async def _update(self, heads: Heads) -> int:
        """Read the tables whose head moved past what was read (one query spared for each
        table that did not change), in the order the tally needs them."""
        marks, read = self._marks, 0
        if heads.roster != marks.roster:
            read += await self._roster(heads.roster)
        if heads.residents > marks.residents:
            read += await self._residents()
        if heads.processes > marks.processes:
            read += await self._processes()
        if heads.proposals > marks.proposals:
            read += await self._proposals()
        if heads.activities > marks.activities:
            read += await self._activities()
        return read

    async def _roster_only(self) -> int:
        rev = await self.store.roster_rev()
        return 0 if rev == self._marks.roster else await self._roster(rev)

    async def _roster(self, rev: int) -> int:
        rows = await self.store.roster()
        self.tally.set_roster(roster_of(rows, self.city))
        self._marks.roster = rev
        return len(rows)

    async def _residents(self) -> int:
        rows = await self.log.residents_after(self._marks.residents, documents=False)
        for row in rows:
            self.tally.set_resident(row.actor, resident_territory(row))
            self._marks.residents = max(self._marks.residents, row.rev)
        return len(rows)

    async def _processes(self) -> int:
        rows = await self.log.processes_after(self._marks.processes)
        for row in rows:
            record = process_record(row, self.grace)
            if record is not None:
                self.tally.set_process(record)
            self._marks.processes = max(self._marks.processes, row.rev)
        return len(rows)

    @property
    def waiting(self) -> int:
        """Genuine supports held back because their proposal is not known (yet)."""
        return sum(len(rows) for rows in self._waiting.values())

    async def _proposals(self) -> int:
        rows = await self.log.proposals_after(self._marks.proposals, documents=False)
        for row in rows:
            self.tally.add_proposal(ProposalRecord(row.id, row.process_id, row.origin))
            self._process_of[row.id] = row.process_id
            self._marks.proposals = max(self._marks.proposals, row.rev)
            for support in self._waiting.pop(row.id, ()):
                self.tally.add_support(support_event(support, row.process_id))
        return len(rows)

    async def _activities(self) -> int:
        read = 0
        while rows := await self.log.activities_after(self._marks.activities):
            for row in rows:
                self._feed(row)
            self._marks.activities = rows[-1].seq
            read += len(rows)
            if len(rows) < BATCH:
                break  # the last batch: no need to ask for an empty one
            await _let_others_run()
        return read

    def _event(self, row: ActivityRow) -> SupportEvent | UndoEvent | None:
        """The tally's event for a stored row; None while its proposal is unknown (waiting)."""
        if row.kind == "undo":
            return undo_event(row)
        if not genuine(row):
            return support_event(row, "")  # only its anomaly will show
        process = self._process_of.get(row.object)
        if process is None:
            self._waiting.setdefault(row.object, []).append(row)
            return None
        return support_event(row, process)

    def _feed(self, row: ActivityRow) -> None:
        event = self._event(row)
        if isinstance(event, UndoEvent):
            self.tally.add_undo(event)
        elif event is not None:
            self.tally.add_support(event)
