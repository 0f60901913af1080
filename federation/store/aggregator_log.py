"""The aggregator's verified activities and the caches the tally reads (DESIGN.md §7, §8).

``activities`` holds every verified support and undo as its raw signed JSON, the source of
truth a recompute re-reads; the tally's fields are copied into columns so that a restart
rebuilds in a few batched reads. ``residents``, ``processes`` and ``proposals`` cache what the
instances publish, each row stamped with a ``rev`` so that readers find what changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from federation.store.sqlite import transaction, write_lock

BATCH = 5000
#: Rows per multi-row INSERT (13 parameters each: well under SQLite's 32,766).
_GROUP = 200


@dataclass(frozen=True)
class ActivityRow:
    """One stored copy of a support or undo; ``document`` only when asked for."""

    seq: int
    id: str
    kind: str  # "support" | "undo"
    actor: str
    origin: str
    object: str  # the proposal (support) or the like id (undo)
    process: str  # the proposal's process for a support ("" when unknown); "" for an undo
    published: str
    received_at: float
    proof_ok: bool
    signer_origin: str
    route: str
    via: str | None
    document: str | None = None


@dataclass(frozen=True)
class ResidentRow:
    """What an actor's instance states about its residency; ``kind`` None when unverified."""

    actor: str
    origin: str
    kind: str | None
    code: str | None
    district: str | None
    document: str
    fetched_at: float
    rev: int


@dataclass(frozen=True)
class ProcessRow:
    """A cached process document and when the aggregator froze its result."""

    id: str
    owner: str
    origin: str
    document: str
    closed_at: float | None
    fetched_at: float
    rev: int


@dataclass(frozen=True)
class ProposalRow:
    """A cached proposal: process, host origin, name, state; ``version`` orders updates."""

    id: str
    process_id: str
    origin: str
    name: str
    state: str
    version: str
    document: str
    fetched_at: float
    rev: int


_ACTIVITY = (
    "SELECT seq, id, kind, actor, origin, object, process, published, received_at, proof_ok,"
    " signer_origin, route, via"
)
_RESIDENT = "SELECT actor, origin, kind, code, district, document, fetched_at, rev FROM residents"
_PROCESS = "SELECT id, owner, origin, document, closed_at, fetched_at, rev FROM processes"
_PROPOSAL = (
    "SELECT id, process_id, origin, name, state, version, document, fetched_at, rev FROM proposals"
)
# The same rows with an empty document, for readers that need none (the tally): a city's actor
# and proposal documents are hundreds of megabytes.
_RESIDENT_BARE = _RESIDENT.replace("document", "''")
_PROPOSAL_BARE = _PROPOSAL.replace("document", "''")


def _activity(row: Sequence[Any]) -> ActivityRow:
    document = row[13] if len(row) > 13 else None
    return ActivityRow(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7], float(row[8]),
        bool(row[9]), row[10], row[11], row[12], document,
    )  # fmt: skip


def _activity_values(row: ActivityRow) -> tuple[Any, ...]:
    return (
        row.id, row.kind, row.actor, row.origin, row.object, row.process, row.published,
        row.received_at, int(row.proof_ok), row.signer_origin, row.route, row.via,
        row.document or "",
    )  # fmt: skip


def _resident(row: Sequence[Any]) -> ResidentRow:
    return ResidentRow(row[0], row[1], row[2], row[3], row[4], row[5], float(row[6]), int(row[7]))


def _process(row: Sequence[Any]) -> ProcessRow:
    closed = None if row[4] is None else float(row[4])
    return ProcessRow(row[0], row[1], row[2], row[3], closed, float(row[5]), int(row[6]))


def _proposal(row: Sequence[Any]) -> ProposalRow:
    return ProposalRow(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], float(row[7]), int(row[8])
    )


@dataclass(frozen=True)
class Heads:
    """How far each table reaches: a table whose head did not move has nothing new."""

    roster: int
    residents: int
    processes: int
    proposals: int
    activities: int


_HEADS = (
    "SELECT (SELECT COALESCE(MAX(rev), 0) FROM roster),"
    " (SELECT COALESCE(MAX(rev), 0) FROM residents),"
    " (SELECT COALESCE(MAX(rev), 0) FROM processes),"
    " (SELECT COALESCE(MAX(rev), 0) FROM proposals),"
    " (SELECT COALESCE(MAX(seq), 0) FROM activities)"
)


# A fetched residency, stored; ``rev`` moves only when what it states changed.
_PUT_RESIDENT = (
    "INSERT INTO residents (actor, origin, kind, code, district, document, fetched_at, rev)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, COALESCE((SELECT MAX(rev) FROM residents), 0) + 1)"
    " ON CONFLICT (actor) DO UPDATE SET fetched_at = excluded.fetched_at,"
    " document = excluded.document, kind = excluded.kind, code = excluded.code,"
    " district = excluded.district, rev = CASE WHEN"
    " residents.kind IS excluded.kind AND residents.code IS excluded.code"
    " AND residents.district IS excluded.district"
    " THEN residents.rev ELSE excluded.rev END"
)


def _resident_values(row: ResidentRow) -> tuple[Any, ...]:
    return (row.actor, row.origin, row.kind, row.code, row.district, row.document,
            row.fetched_at)  # fmt: skip


class ActivityLog:
    """Verified activities, residents, processes and proposals on the shared connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        # What :meth:`stored_by_kind` counted: up to which seq, and how many of each kind.
        self._kinds_upto, self._kinds = 0, dict[str, int]()
        self._kinds_lock = asyncio.Lock()  # two scrapes at once must not add the same rows

    # --- verified activities ----------------------------------------------------------------

    async def stored_by_kind(self) -> dict[str, int]:
        """How many activities are stored, by kind. Rows are only ever appended, in ``seq``
        order of their commits: each call counts only the rows after the last it saw (a
        /metrics scrape of a city's log was a scan of every row)."""
        async with self._kinds_lock:
            rows = await self.db.execute_fetchall(
                "SELECT kind, COUNT(*), MAX(seq) FROM activities WHERE seq > ? GROUP BY kind",
                (self._kinds_upto,),
            )
            for kind, count, newest in rows:
                self._kinds[str(kind)] = self._kinds.get(str(kind), 0) + int(count)
                self._kinds_upto = max(self._kinds_upto, int(newest))
            return dict(self._kinds)

    async def add_activity(self, row: ActivityRow) -> bool:
        """Store a verified copy; False when this (id, outcome, signer) is stored already.

        The same transaction stamps the roster's last activity time of the actor's origin.
        """
        async with transaction(self.db):
            cursor = await self.db.execute(
                "INSERT INTO activities (id, kind, actor, origin, object, process, published,"
                " received_at, proof_ok, signer_origin, route, via, document)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id, proof_ok, signer_origin) DO NOTHING",
                _activity_values(row),
            )
            added = cursor.rowcount == 1
            await cursor.close()
            if added:
                await self.db.execute(
                    "UPDATE roster SET last_activity_at = MAX(COALESCE(last_activity_at, 0), ?)"
                    " WHERE origin = ?",
                    (row.received_at, row.origin),
                )
        return added

    async def add_activities(self, rows: Sequence[ActivityRow]) -> set[tuple[str, bool, str]]:
        """Store many verified copies in one transaction (the ingest batch, DESIGN.md §8);
        the (id, proof_ok, signer_origin) keys that were new. Stamps each origin's roster
        last activity time as :meth:`add_activity` does."""
        added: set[tuple[str, bool, str]] = set()
        latest: dict[str, float] = {}
        async with transaction(self.db) as db:
            for start in range(0, len(rows), _GROUP):
                chunk = rows[start : start + _GROUP]
                values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                found = await db.execute_fetchall(
                    "INSERT INTO activities (id, kind, actor, origin, object, process, published,"  # noqa: S608 (placeholders only)
                    " received_at, proof_ok, signer_origin, route, via, document)"
                    f" VALUES {values} ON CONFLICT (id, proof_ok, signer_origin) DO NOTHING"
                    " RETURNING id, proof_ok, signer_origin, origin, received_at",
                    [value for row in chunk for value in _activity_values(row)],
                )
                for activity_id, proof_ok, signer, origin, received in found:
                    added.add((str(activity_id), bool(proof_ok), str(signer)))
                    latest[origin] = max(latest.get(origin, 0.0), float(received))
            for origin, received in latest.items():
                await db.execute(
                    "UPDATE roster SET last_activity_at = MAX(COALESCE(last_activity_at, 0), ?)"
                    " WHERE origin = ?",
                    (received, origin),
                )
        return added

    async def has_genuine_copy(self, activity_id: str, origin: str, document: str) -> bool:
        """True when this very JSON is stored as a copy verified with a key of ``origin``."""
        rows = await self.db.execute_fetchall(
            "SELECT 1 FROM activities WHERE id = ? AND proof_ok = 1 AND signer_origin = ?"
            " AND document = ?",
            (activity_id, origin, document),
        )
        return bool(list(rows))

    async def has_verified(self, activity_id: str) -> bool:
        """True when a copy of ``activity_id`` whose proof verified is stored."""
        rows = await self.db.execute_fetchall(
            "SELECT 1 FROM activities WHERE id = ? AND proof_ok = 1 LIMIT 1", (activity_id,)
        )
        return bool(list(rows))

    async def verified_among(self, activity_ids: Collection[str]) -> set[str]:
        """Which of ``activity_ids`` have a stored copy whose proof verified (one query per
        few hundred ids: a backfill page asks once for all its items)."""
        wanted = list(activity_ids)
        found: set[str] = set()
        for start in range(0, len(wanted), _GROUP):
            chunk = wanted[start : start + _GROUP]
            marks = ", ".join("?" * len(chunk))
            rows = await self.db.execute_fetchall(
                f"SELECT DISTINCT id FROM activities WHERE proof_ok = 1 AND id IN ({marks})",  # noqa: S608 (placeholders only)
                chunk,
            )
            found.update(str(row[0]) for row in rows)
        return found

    async def heads(self) -> Heads:
        """The highest ``rev`` of each table and ``seq`` of the activities, in one query (what a
        sync compares with what it read; the roster lives in the same database)."""
        rows = list(await self.db.execute_fetchall(_HEADS))
        return Heads(*(int(value) for value in rows[0]))

    async def max_seq(self) -> int:
        """The newest stored activity's ``seq`` (0 when none)."""
        rows = list(await self.db.execute_fetchall("SELECT COALESCE(MAX(seq), 0) FROM activities"))
        return int(rows[0][0])

    async def activities_after(self, seq: int, *, limit: int = BATCH) -> list[ActivityRow]:
        """Up to ``limit`` stored copies after ``seq``, in order, without their documents."""
        rows = await self.db.execute_fetchall(
            f"{_ACTIVITY} FROM activities WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [_activity(row) for row in rows]

    async def documents(self, *, batch: int = BATCH) -> AsyncIterator[ActivityRow]:
        """Every stored copy with its raw JSON, in ``seq`` order, read in batches."""
        seq = 0
        while True:
            rows = list(
                await self.db.execute_fetchall(
                    f"{_ACTIVITY}, document FROM activities WHERE seq > ? ORDER BY seq LIMIT ?",
                    (seq, batch),
                )
            )
            for row in rows:
                yield _activity(row)
            if len(rows) < batch:
                return
            seq = int(rows[-1][0])

    # --- residents --------------------------------------------------------------------------

    async def resident(self, actor: str) -> ResidentRow | None:
        """The cached residency of an actor, or None when never fetched."""
        rows = list(await self.db.execute_fetchall(f"{_RESIDENT} WHERE actor = ?", (actor,)))
        return _resident(rows[0]) if rows else None

    async def put_resident(self, row: ResidentRow) -> bool:
        """Store a fetched residency; ``rev`` moves only when what it states changed."""
        async with write_lock(self.db):
            cursor = await self.db.execute(_PUT_RESIDENT, _resident_values(row))
            changed = cursor.rowcount == 1
            await cursor.close()
        return changed

    async def put_residents(self, rows: Sequence[ResidentRow]) -> None:
        """:meth:`put_resident` each row, in order, in one transaction."""
        if rows:
            async with transaction(self.db) as db:
                await db.executemany(_PUT_RESIDENT, [_resident_values(row) for row in rows])

    async def residents_after(self, rev: int, *, documents: bool = True) -> list[ResidentRow]:
        """Residencies written with a ``rev`` above ``rev`` (``documents`` False: each with
        an empty document)."""
        select = _RESIDENT if documents else _RESIDENT_BARE
        rows = await self.db.execute_fetchall(f"{select} WHERE rev > ? ORDER BY rev", (rev,))
        return [_resident(row) for row in rows]

    # --- processes --------------------------------------------------------------------------

    async def process(self, process_id: str) -> ProcessRow | None:
        """A cached process, or None."""
        rows = list(await self.db.execute_fetchall(f"{_PROCESS} WHERE id = ?", (process_id,)))
        return _process(rows[0]) if rows else None

    async def put_process(self, row: ProcessRow) -> None:
        """Store (or replace) a process document; its ``closed_at`` is kept once set."""
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT INTO processes (id, owner, origin, document, closed_at, fetched_at, rev)"
                " VALUES (?, ?, ?, ?, ?, ?, COALESCE((SELECT MAX(rev) FROM processes), 0) + 1)"
                " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner,"
                " document = excluded.document, fetched_at = excluded.fetched_at,"
                " closed_at = COALESCE(processes.closed_at, excluded.closed_at),"
                " rev = excluded.rev",
                (row.id, row.owner, row.origin, row.document, row.closed_at, row.fetched_at),
            )

    async def close_process(self, process_id: str, at: float) -> bool:
        """Freeze a process's result at ``at`` (its final Tally); False if closed already."""
        async with write_lock(self.db):
            cursor = await self.db.execute(
                "UPDATE processes SET closed_at = ?,"
                " rev = COALESCE((SELECT MAX(rev) FROM processes), 0) + 1"
                " WHERE id = ? AND closed_at IS NULL",
                (at, process_id),
            )
            closed = cursor.rowcount == 1
            await cursor.close()
        return closed

    async def processes_after(self, rev: int) -> list[ProcessRow]:
        """Processes written with a ``rev`` above ``rev``."""
        rows = await self.db.execute_fetchall(f"{_PROCESS} WHERE rev > ? ORDER BY rev", (rev,))
        return [_process(row) for row in rows]

    # --- proposals --------------------------------------------------------------------------

    async def proposal(self, proposal_id: str) -> ProposalRow | None:
        """A cached proposal, or None."""
        rows = list(await self.db.execute_fetchall(f"{_PROPOSAL} WHERE id = ?", (proposal_id,)))
        return _proposal(rows[0]) if rows else None

    async def put_proposal(self, row: ProposalRow) -> bool:
        """Store a proposal unless a newer ``version`` of it is stored; True when written."""
        async with write_lock(self.db):
            cursor = await self.db.execute(
                "INSERT INTO proposals (id, process_id, origin, name, state, version, document,"
                " fetched_at, rev) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
                " COALESCE((SELECT MAX(rev) FROM proposals), 0) + 1)"
                " ON CONFLICT (id) DO UPDATE SET process_id = excluded.process_id,"
                " name = excluded.name, state = excluded.state, version = excluded.version,"
                " document = excluded.document, fetched_at = excluded.fetched_at,"
                " rev = excluded.rev WHERE excluded.version >= proposals.version",
                (row.id, row.process_id, row.origin, row.name, row.state, row.version,
                 row.document, row.fetched_at),
            )  # fmt: skip
            written = cursor.rowcount == 1
            await cursor.close()
        return written

    async def proposals_after(self, rev: int, *, documents: bool = True) -> list[ProposalRow]:
        """Proposals written with a ``rev`` above ``rev`` (``documents`` False: each with an
        empty document)."""
        select = _PROPOSAL if documents else _PROPOSAL_BARE
        rows = await self.db.execute_fetchall(f"{select} WHERE rev > ? ORDER BY rev", (rev,))
        return [_proposal(row) for row in rows]

    async def proposals_on(self, origin: str) -> list[ProposalRow]:
        """The cached proposals an instance hosts, by id."""
        rows = await self.db.execute_fetchall(
            f"{_PROPOSAL} WHERE origin = ? ORDER BY id", (origin,)
        )
        return [_proposal(row) for row in rows]

    async def proposals_of(self, process_id: str, *, documents: bool = True) -> list[ProposalRow]:
        """The cached proposals of one process, by id (``documents`` False: each with an empty
        document)."""
        select = _PROPOSAL if documents else _PROPOSAL_BARE
        rows = await self.db.execute_fetchall(
            f"{select} WHERE process_id = ? ORDER BY id",
            (process_id,),
        )
        return [_proposal(row) for row in rows]
