"""The aggregator's inbox rows, written in groups (DESIGN.md §6 "Inbox", §8 batched writes).

:class:`GroupCommitInboxStore` is the SQLite ``InboxStore`` with two batched writes for the
hot path of a city's ingest: every ``record`` waiting at the same moment goes into one
multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` (group commit: each caller still gets
its own answer, and its 202 only once its row is committed), and a handled batch is marked done
by one ``UPDATE`` (:meth:`mark_done_many`, which :class:`activitypub.dispatch.InboxProcessor`
uses when a store has it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from activitypub.storage import INBOX_AUTH, RecordId
from federation.store.inbox import SqliteInboxStore
from federation.store.sqlite import transaction, write_lock

#: Rows per INSERT statement (7 parameters each: well under SQLite's 32,766).
GROUP = 200

_Row = tuple[str, str, str, str, str, float, float]


@dataclass
class _Waiting:
    """Rows waiting for the next group write, each with the future its caller awaits."""

    rows: list[_Row] = field(default_factory=list)
    futures: list[asyncio.Future[bool]] = field(default_factory=list)


class GroupCommitInboxStore(SqliteInboxStore):
    """``InboxStore`` whose ``record`` calls share transactions; plus ``mark_done_many``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__(db)
        self._waiting = _Waiting()
        self._writer: asyncio.Task[None] | None = None

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
        if auth not in INBOX_AUTH:
            raise ValueError(f"unknown auth {auth!r}")
        doc = json.dumps(activity, ensure_ascii=False, separators=(",", ":"))
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.rows.append((inbox, activity_id, actor, doc, auth, now, now))
        self._waiting.futures.append(future)
        if self._writer is None or self._writer.done():
            # A task of its own: a caller that goes away must not strand the others' rows.
            self._writer = asyncio.create_task(self._write_groups(), name="inbox-group-commit")
        return await future

    async def _write_groups(self) -> None:
        """Write what is waiting, group after group, until nothing is left."""
        await asyncio.sleep(0)  # let the requests already parsed join this group
        while self._waiting.rows:
            group, self._waiting = self._waiting, _Waiting()
            try:
                inserted = await self._insert(group.rows)
            except Exception as exc:
                # Each caller answers its own sender (a 500 there); the store is unchanged.
                for future in group.futures:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for row, future in zip(group.rows, group.futures, strict=True):
                # A pair twice in one group: the first is recorded, the others are replays.
                recorded = (row[0], row[1]) in inserted
                inserted.discard((row[0], row[1]))
                if not future.done():
                    future.set_result(recorded)

    async def _insert(self, rows: list[_Row]) -> set[tuple[str, str]]:
        """One transaction of multi-row INSERTs; the (inbox, activity_id) pairs inserted."""
        inserted: set[tuple[str, str]] = set()
        async with transaction(self._db) as db:
            for start in range(0, len(rows), GROUP):
                chunk = rows[start : start + GROUP]
                values = ", ".join(["(?, ?, ?, ?, ?, 'new', 0, ?, ?)"] * len(chunk))
                found = await db.execute_fetchall(
                    "INSERT INTO inbox_messages (inbox, activity_id, actor, activity, auth,"  # noqa: S608 (placeholders only)
                    f" state, attempts, next_attempt_at, received_at) VALUES {values}"
                    " ON CONFLICT (inbox, activity_id) DO NOTHING RETURNING inbox, activity_id",
                    [value for row in chunk for value in row],
                )
                inserted.update((str(a), str(b)) for a, b in found)
        return inserted

    async def mark_done_many(self, record_ids: Sequence[RecordId]) -> None:
        """NEW → DONE for every row of ``record_ids``, in one statement per group of rows."""
        missed: list[RecordId] = []
        for start in range(0, len(record_ids), GROUP):
            chunk = list(record_ids[start : start + GROUP])
            marks = ", ".join("?" * len(chunk))
            async with write_lock(self._db):
                found = await self._db.execute_fetchall(
                    "UPDATE inbox_messages SET state = 'done', attempts = attempts + 1,"  # noqa: S608 (placeholders only)
                    " error = NULL, locked_until = NULL"
                    f" WHERE id IN ({marks}) AND state = 'new' RETURNING id",
                    chunk,
                )
            done = {int(row[0]) for row in found}
            missed += [r for r in chunk if int(r) not in done]
        for record_id in missed:
            await self.mark_done(record_id)  # raises as the single-row version does
