"""Recorded inbox activities over aiosqlite (``activitypub.storage.InboxStore``, style.md §4).

The inbox records an authenticated activity and answers 202; handlers run later from the row,
so a crash between receipt and processing loses nothing (DESIGN.md §6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiosqlite

from activitypub import jsontext
from activitypub.storage import (
    INBOX_AUTH,
    INBOX_TRANSITIONS,
    InboxRecord,
    InboxState,
    RecordId,
    check_transition,
)
from federation.store.sqlite import write_lock

_COLUMNS = (
    "id, inbox, activity_id, actor, activity, auth, state, attempts, error, received_at,"
    " next_attempt_at, locked_until"
)


def _record(row: Sequence[Any]) -> InboxRecord:
    return InboxRecord(
        id=int(row[0]),
        inbox=row[1],
        activity_id=row[2],
        actor=row[3],
        activity=jsontext.loads_stored(row[4]),
        auth=row[5],
        state=InboxState(row[6]),
        attempts=int(row[7]),
        error=row[8],
        received_at=float(row[9]),
        next_attempt_at=float(row[10]),
        locked_until=None if row[11] is None else float(row[11]),
    )


def _sources(target: InboxState) -> list[str]:
    """The states the declared graph allows to move to ``target``."""
    return [str(s) for s, targets in INBOX_TRANSITIONS.items() if target in targets]


class SqliteInboxStore:
    """``InboxStore`` on the server's shared aiosqlite connection (see ``open_database``)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

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
        """Insert once per (inbox, activity_id); False when the pair is already recorded."""
        if auth not in INBOX_AUTH:
            raise ValueError(f"unknown auth {auth!r}")
        doc = jsontext.dumps(activity)
        async with write_lock(self._db):
            rows = await self._db.execute_fetchall(
                "INSERT INTO inbox_messages (inbox, activity_id, actor, activity, auth, state,"
                " attempts, next_attempt_at, received_at) VALUES (?, ?, ?, ?, ?, 'new', 0, ?, ?)"
                " ON CONFLICT (inbox, activity_id) DO NOTHING RETURNING id",
                (inbox, activity_id, actor, doc, auth, now, now),
            )
        return bool(list(rows))

    async def claim(self, *, now: float, limit: int, lease: float) -> list[InboxRecord]:
        """Lease up to ``limit`` due, unleased NEW records in one atomic UPDATE … RETURNING."""
        rows = await self._claim_rows(now=now, limit=limit, lease=lease)
        return sorted(map(_record, rows), key=lambda r: (r.next_attempt_at, r.id))

    async def _claim_rows(self, *, now: float, limit: int, lease: float) -> list[Any]:
        """The claimed rows (every column of ``_COLUMNS``), leased in one statement."""
        if limit <= 0:
            return []
        async with write_lock(self._db):
            return list(
                await self._db.execute_fetchall(
                    "UPDATE inbox_messages SET locked_until = ? WHERE id IN ("  # noqa: S608
                    "SELECT id FROM inbox_messages WHERE state = 'new' AND next_attempt_at <= ?"
                    " AND (locked_until IS NULL OR locked_until < ?)"
                    f" ORDER BY next_attempt_at, id LIMIT ?) RETURNING {_COLUMNS}",
                    (now + lease, now, now, limit),
                )
            )

    async def mark_done(self, record_id: RecordId) -> None:
        """NEW → DONE."""
        await self._finish(record_id, InboxState.DONE, None, None)

    async def mark_failed(
        self, record_id: RecordId, error: str, *, retry_at: float | None, now: float
    ) -> None:
        """NEW → NEW due at ``retry_at``, or NEW → FAILED when ``retry_at`` is None."""
        state = InboxState.FAILED if retry_at is None else InboxState.NEW
        await self._finish(record_id, state, error, retry_at)

    async def get(self, record_id: RecordId) -> InboxRecord | None:
        """One record by id, or None."""
        rows = list(
            await self._db.execute_fetchall(
                f"SELECT {_COLUMNS} FROM inbox_messages WHERE id = ?",  # noqa: S608
                (record_id,),
            )
        )
        return _record(rows[0]) if rows else None

    async def _finish(
        self,
        record_id: RecordId,
        state: InboxState,
        error: str | None,
        retry_at: float | None,
    ) -> None:
        """Record one processing attempt, if the state graph allows it."""
        sources = _sources(state)
        marks = ", ".join("?" * len(sources))
        sql = (
            "UPDATE inbox_messages SET state = ?, attempts = attempts + 1, error = ?,"  # noqa: S608 (placeholders only)
            " locked_until = NULL, next_attempt_at = COALESCE(?, next_attempt_at)"
            f" WHERE id = ? AND state IN ({marks}) RETURNING id"
        )
        async with write_lock(self._db):
            rows = await self._db.execute_fetchall(
                sql, (str(state), error, retry_at, record_id, *sources)
            )
        if list(rows):
            return
        current = await self.get(record_id)
        if current is None:
            raise KeyError(record_id)
        check_transition(INBOX_TRANSITIONS, current.state, state)
