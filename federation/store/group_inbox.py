"""Inbox rows written in groups, for the aggregator and the instances (DESIGN.md §6 "Inbox",
§8 batched writes).

:class:`GroupCommitInboxStore` is the SQLite ``InboxStore`` with two batched writes for the
hot path of a city's ingest: every ``record`` waiting at the same moment goes into one
multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` (group commit: each caller still gets
its own answer, and its 202 only once its row is committed; under a steady load, when the last
group was written moments ago, a group waits ``GATHER`` for company first, so deliveries arriving
one at a time share a transaction), and a handled batch is marked done by one ``UPDATE``
(:meth:`mark_done_many`, which :class:`activitypub.dispatch.InboxProcessor` uses when a store
has it).

The inbox keeps the body as received (:meth:`record_text`; it parses to the activity checked)
rather than serialising the parsed activity again. A row claimed soon after it was recorded by
this process is handed over as it was recorded: the activity is the very object given to
:meth:`record` (so callers must not change it afterwards) instead of a parse of its stored
JSON, and :meth:`text_of` gives that stored JSON, which ingest keeps as the activity's text.
Rows from before a restart, or beyond ``HANDOVER`` waiting ones, are read back as usual.

At the aggregator a row marked done drops its body (every support would otherwise be stored
twice: here and in ``activities``); a failed row keeps it, for the operator to read. An
instance's inbox rows are also its residents' C2S inbox (:mod:`federation.store.c2s`), so a
done row keeps its body when that inbox may list it (``keep_bodies``, :class:`KeptBodies`):
it came to an actor's own inbox, or to the shared inbox addressed to one of the instance's
residents. The rest, mostly a followed Group's Announces to all its followers (8.4 KB each, the
bulk of a neighbourhood's database in a city run), drop theirs as at the aggregator.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from activitypub import jsontext
from activitypub.storage import INBOX_AUTH, InboxRecord, InboxState, RecordId
from federation.store.inbox import SqliteInboxStore
from federation.store.sqlite import transaction, write_lock

#: Rows per INSERT statement (7 parameters each: well under SQLite's 32,766).
GROUP = 200
#: The body a handled row keeps: what it carried is stored by ingest (activities, documents),
#: and the row's (inbox, activity id) pair still refuses a replay.
DONE_BODY = "{}"
#: Recorded-but-unclaimed (and claimed-but-unfinished) rows kept in memory for the handover.
HANDOVER = 1024
#: Seconds a group waits for company when the previous one was written less than ``BUSY`` s
#: before (PostgreSQL's ``commit_delay`` idea): deliveries arriving one at a time under a
#: steady load then share a transaction, while an idle server's lone delivery is not delayed.
GATHER = 0.002
BUSY = 0.01
_Row = tuple[str, str, str, str, str, float, float]


#: Where an activity names its audience (what the C2S inbox matches a resident against).
_ADDRESSING = ("to", "cc", "bto", "bcc", "audience")


@dataclass(frozen=True)
class KeptBodies:
    """Which done rows keep their body: those a resident's C2S inbox may list."""

    shared_inbox: str  # rows that came to any other inbox are an actor's own: kept
    residents: str  # the prefix of the instance's residents' ids ("{base}/users/")

    def sql(self) -> tuple[str, list[str]]:
        """An SQL expression true for a row to keep, and its parameters."""
        valid = "CASE WHEN json_valid(activity) THEN activity ELSE '{}' END"
        named = " OR ".join(
            f"EXISTS (SELECT 1 FROM json_each({valid}, '$.{field}')"  # noqa: S608 (fixed names)
            " WHERE substr(value, 1, ?) = ?)"
            for field in _ADDRESSING
        )
        prefix = [str(len(self.residents)), self.residents]
        return f"(inbox != ? OR {named})", [self.shared_inbox, *prefix * len(_ADDRESSING)]


@dataclass
class _Waiting:
    """Rows waiting for the next group write, each with the future its caller awaits."""

    rows: list[_Row] = field(default_factory=list)
    activities: list[Mapping[str, Any]] = field(default_factory=list)
    futures: list[asyncio.Future[bool]] = field(default_factory=list)


class _Bounded(OrderedDict[RecordId, Any]):
    """Forgets the oldest entry beyond ``HANDOVER``."""

    def put(self, key: RecordId, value: Any) -> None:
        self[key] = value
        if len(self) > HANDOVER:
            self.popitem(last=False)


class GroupCommitInboxStore(SqliteInboxStore):
    """``InboxStore`` whose ``record`` calls share transactions; plus ``mark_done_many``."""

    def __init__(self, db: aiosqlite.Connection, *, keep_bodies: bool | KeptBodies = False) -> None:
        super().__init__(db)
        # SET activity = <this>: the body as it is, "{}", or which of the two per row.
        self._done_body: tuple[str, list[Any]]
        if isinstance(keep_bodies, KeptBodies):
            keep, params = keep_bodies.sql()
            self._done_body = (f"CASE WHEN {keep} THEN activity ELSE ? END", [*params, DONE_BODY])
        else:
            self._done_body = ("activity", []) if keep_bodies else ("?", [DONE_BODY])
        self._waiting = _Waiting()
        self._writer: asyncio.Task[None] | None = None
        self._last_group = float("-inf")  # loop time the last group was written
        self._recorded = _Bounded()  # id -> (activity, its stored JSON), not yet claimed
        self._texts = _Bounded()  # id -> stored JSON of a claimed row, until it is finished

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
        """Insert once per (inbox, activity_id), with whoever else is recording right now;
        False when the pair is already recorded."""
        doc = jsontext.dumps(activity)
        return await self.record_text(inbox, activity_id, actor, activity, doc, auth=auth, now=now)

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
        """:meth:`record`, keeping ``text`` (JSON that parses to ``activity``: the body as
        received) as the stored activity."""
        if auth not in INBOX_AUTH:
            raise ValueError(f"unknown auth {auth!r}")
        doc = text
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.rows.append((inbox, activity_id, actor, doc, auth, now, now))
        self._waiting.activities.append(activity)
        self._waiting.futures.append(future)
        if self._writer is None or self._writer.done():
            # A task of its own: a caller that goes away must not strand the others' rows.
            self._writer = asyncio.create_task(self._write_groups(), name="inbox-group-commit")
        return await future

    async def _write_groups(self) -> None:
        """Write what is waiting, group after group, until nothing is left."""
        loop = asyncio.get_running_loop()
        busy = loop.time() - self._last_group < BUSY
        group = _Waiting()
        try:
            # Let the requests already parsed (and, when busy, those arriving meanwhile) join.
            await asyncio.sleep(GATHER if busy else 0)
            while self._waiting.rows:
                group, self._waiting = self._waiting, _Waiting()
                await self._write_group(group, loop)
        except asyncio.CancelledError:
            # Shutting down: no caller may wait for a write that will not happen.
            waiting, self._waiting = self._waiting, _Waiting()
            for future in (*group.futures, *waiting.futures):
                future.cancel()
            raise

    async def _write_group(self, group: _Waiting, loop: asyncio.AbstractEventLoop) -> None:
        """Insert one group and answer each of its callers."""
        try:
            inserted = await self._insert(group.rows)
        except Exception as exc:
            # Each caller answers its own sender (a 500 there); the store is unchanged.
            for future in group.futures:
                if not future.done():
                    future.set_exception(exc)
            return
        self._last_group = loop.time()
        parts = zip(group.rows, group.activities, group.futures, strict=True)
        for row, activity, future in parts:
            # A pair twice in one group: the first is recorded, the others are replays.
            record_id = inserted.pop((row[0], row[1]), None)
            if record_id is not None:
                self._recorded.put(record_id, (activity, row[3]))
            if not future.done():
                future.set_result(record_id is not None)

    async def _insert(self, rows: list[_Row]) -> dict[tuple[str, str], int]:
        """One transaction of multi-row INSERTs; the ids of the (inbox, activity_id) pairs
        inserted."""
        inserted: dict[tuple[str, str], int] = {}
        async with transaction(self._db) as db:
            for start in range(0, len(rows), GROUP):
                chunk = rows[start : start + GROUP]
                values = ", ".join(["(?, ?, ?, ?, ?, 'new', 0, ?, ?)"] * len(chunk))
                found = await db.execute_fetchall(
                    "INSERT INTO inbox_messages (inbox, activity_id, actor, activity, auth,"  # noqa: S608 (placeholders only)
                    f" state, attempts, next_attempt_at, received_at) VALUES {values}"
                    " ON CONFLICT (inbox, activity_id) DO NOTHING RETURNING inbox, activity_id, id",
                    [value for row in chunk for value in row],
                )
                inserted.update(((str(a), str(b)), int(c)) for a, b, c in found)
        return inserted

    async def claim(self, *, now: float, limit: int, lease: float) -> list[InboxRecord]:
        """InboxStore.claim (one atomic UPDATE … RETURNING), rows recorded here handed over."""
        rows = await self._claim_rows(now=now, limit=limit, lease=lease)
        return sorted(map(self._claimed, rows), key=lambda r: (r.next_attempt_at, r.id))

    def _claimed(self, row: Sequence[Any]) -> InboxRecord:
        record_id, text = int(row[0]), str(row[4])
        handed = self._recorded.pop(record_id, None)
        activity = handed[0] if handed is not None else jsontext.loads_stored(text)
        self._texts.put(record_id, text)
        return InboxRecord(
            id=record_id, inbox=row[1], activity_id=row[2], actor=row[3], activity=activity,
            auth=row[5], state=InboxState(row[6]), attempts=int(row[7]), error=row[8],
            received_at=float(row[9]), next_attempt_at=float(row[10]),
            locked_until=None if row[11] is None else float(row[11]),
        )  # fmt: skip

    def text_of(self, record_id: RecordId) -> str | None:
        """The stored JSON of a claimed, unfinished row, while it is at hand (None if not)."""
        found = self._texts.get(record_id)
        return None if found is None else str(found)

    async def mark_done(self, record_id: RecordId) -> None:
        """InboxStore.mark_done (the body dropped, as :meth:`mark_done_many` does)."""
        await self.mark_done_many([record_id])

    async def mark_failed(
        self, record_id: RecordId, error: str, *, retry_at: float | None, now: float
    ) -> None:
        """InboxStore.mark_failed."""
        self._texts.pop(record_id, None)
        await super().mark_failed(record_id, error, retry_at=retry_at, now=now)

    async def mark_done_many(self, record_ids: Sequence[RecordId]) -> None:
        """NEW → DONE for every row of ``record_ids``, in one statement per group of rows;
        their bodies are dropped (``DONE_BODY``) unless ``keep_bodies`` keeps them, their ids
        kept."""
        missed: list[RecordId] = []
        for record_id in record_ids:
            self._texts.pop(record_id, None)
        for start in range(0, len(record_ids), GROUP):
            chunk = list(record_ids[start : start + GROUP])
            marks = ", ".join("?" * len(chunk))
            body, params = self._done_body
            async with write_lock(self._db):
                found = await self._db.execute_fetchall(
                    "UPDATE inbox_messages SET state = 'done', attempts = attempts + 1,"  # noqa: S608 (placeholders and fixed SQL only)
                    f" error = NULL, locked_until = NULL, activity = {body}"
                    f" WHERE id IN ({marks}) AND state = 'new' RETURNING id",
                    [*params, *chunk],
                )
            done = {int(row[0]) for row in found}
            missed += [r for r in chunk if int(r) not in done]
        for record_id in missed:
            await super().mark_done(record_id)  # raises as the single-row version does
