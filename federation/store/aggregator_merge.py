"""Debates and comments merged across instances, and deletions (DESIGN.md §7 "Debates merge").

``objects`` holds one row per object id whatever route brought it (a direct delivery, an
``Announce``, a backfilled collection): a later version (``version``, the newest of published
and updated) replaces an earlier one, an older copy changes nothing. ``deletions`` records
Tombstones by id, whichever came first, so a deleted object is never shown again. Threads are
found through ``context`` (FEP-7888) and, for replies that name no context (Mastodon), through
``inReplyTo``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from federation.store.sqlite import write_lock

THREAD_LIMIT = 2000  # comments shown per thread: a page, not an archive


@dataclass(frozen=True)
class ObjectRow:
    """A debate or comment as stored; ``process_id`` for debates, ``in_reply_to`` for comments."""

    id: str
    kind: str  # "debate" | "comment"
    origin: str
    author: str
    process_id: str | None
    in_reply_to: str | None
    context: str | None
    published: str
    version: str
    document: str
    fetched_at: float


_OBJECT = (
    "SELECT id, kind, origin, author, process_id, in_reply_to, context, published, version,"
    " document, fetched_at FROM objects"
)
_VISIBLE = " AND id NOT IN (SELECT object_id FROM deletions)"


def _object(row: Sequence[Any]) -> ObjectRow:
    return ObjectRow(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
        float(row[10]),
    )  # fmt: skip


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class MergeStore:
    """Merged debates and comments, and deletions, on the shared connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def put(self, row: ObjectRow) -> bool:
        """Store an object unless a newer version of it is stored; True when written."""
        async with write_lock(self.db):
            cursor = await self.db.execute(
                "INSERT INTO objects (id, kind, origin, author, process_id, in_reply_to, context,"
                " published, version, document, fetched_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET process_id = excluded.process_id,"
                " in_reply_to = excluded.in_reply_to, context = excluded.context,"
                " version = excluded.version, document = excluded.document,"
                " fetched_at = excluded.fetched_at"
                # The author and kind never change: an "edit" by someone else is no edit.
                " WHERE excluded.version > objects.version AND excluded.author = objects.author"
                " AND excluded.kind = objects.kind",
                (
                    row.id, row.kind, row.origin, row.author, row.process_id, row.in_reply_to,
                    row.context, row.published, row.version, row.document, row.fetched_at,
                ),
            )  # fmt: skip
            written = cursor.rowcount == 1
            await cursor.close()
        return written

    async def get(self, object_id: str) -> ObjectRow | None:
        """A stored object (deleted or not), or None."""
        rows = list(await self.db.execute_fetchall(f"{_OBJECT} WHERE id = ?", (object_id,)))
        return _object(rows[0]) if rows else None

    async def version(self, object_id: str) -> str | None:
        """The stored version of an object, or None (lets ingest skip a copy it holds)."""
        rows = list(
            await self.db.execute_fetchall("SELECT version FROM objects WHERE id = ?", (object_id,))
        )
        return str(rows[0][0]) if rows else None

    async def debates_of(self, process_id: str) -> list[ObjectRow]:
        """The visible debates of a process, oldest first."""
        rows = await self.db.execute_fetchall(
            f"{_OBJECT} WHERE kind = 'debate' AND process_id = ?{_VISIBLE} ORDER BY published, id",
            (process_id,),
        )
        return [_object(row) for row in rows]

    async def debates_on(self, origin: str) -> list[ObjectRow]:
        """The visible debates an instance hosts, oldest first."""
        rows = await self.db.execute_fetchall(
            f"{_OBJECT} WHERE kind = 'debate' AND origin = ?{_VISIBLE} ORDER BY published, id",
            (origin,),
        )
        return [_object(row) for row in rows]

    async def thread(self, root_id: str, context: str | None) -> list[ObjectRow]:
        """Every visible comment under ``root_id``: by ``context``, then down ``inReplyTo``."""
        found: dict[str, ObjectRow] = {}
        if context is not None:
            rows = await self.db.execute_fetchall(
                f"{_OBJECT} WHERE kind = 'comment' AND context = ? LIMIT ?",
                (context, THREAD_LIMIT),
            )
            found.update((row.id, row) for row in map(_object, rows))
        frontier = {root_id, *found}
        while frontier and len(found) < THREAD_LIMIT:
            batch = sorted(frontier)[:500]
            frontier.difference_update(batch)
            rows = await self.db.execute_fetchall(
                f"{_OBJECT} WHERE kind = 'comment' AND in_reply_to IN ({_marks(len(batch))})",
                batch,
            )
            for row in map(_object, rows):
                if row.id not in found:
                    found[row.id] = row
                    frontier.add(row.id)
        deleted = await self.deleted(found)
        ordered = sorted(found.values(), key=lambda r: (r.published, r.id))
        return [row for row in ordered if row.id not in deleted]

    async def comment_counts(self, origins: Iterable[str]) -> dict[str, int]:
        """Visible comments per ``context`` written on ``origins`` (the roster's instances)."""
        kept = sorted(set(origins))
        if not kept:
            return {}
        rows = await self.db.execute_fetchall(
            "SELECT context, COUNT(*) FROM objects WHERE kind = 'comment'"  # noqa: S608 (code)
            f" AND context IS NOT NULL AND origin IN ({_marks(len(kept))}){_VISIBLE}"
            " GROUP BY context",
            kept,
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def count(self, kind: str) -> int:
        """Visible objects of a kind."""
        rows = list(
            await self.db.execute_fetchall(
                f"SELECT COUNT(*) FROM objects WHERE kind = ?{_VISIBLE}",  # noqa: S608 (code)
                (kind,),
            )
        )
        return int(rows[0][0])

    # --- deletions --------------------------------------------------------------------------

    async def delete(self, object_id: str, actor: str, activity_id: str, now: float) -> bool:
        """Record a Tombstone for ``object_id``; False when it was recorded already."""
        async with write_lock(self.db):
            cursor = await self.db.execute(
                "INSERT INTO deletions (object_id, actor, activity_id, deleted_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (object_id) DO NOTHING",
                (object_id, actor, activity_id, now),
            )
            added = cursor.rowcount == 1
            await cursor.close()
        return added

    async def deleted(self, object_ids: Iterable[str]) -> set[str]:
        """Which of ``object_ids`` were deleted."""
        ids = list(object_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            rows = await self.db.execute_fetchall(
                "SELECT object_id FROM deletions"  # noqa: S608 (placeholders only)
                f" WHERE object_id IN ({_marks(len(batch))})",
                batch,
            )
            found.update(str(row[0]) for row in rows)
        return found

    async def is_deleted(self, object_id: str) -> bool:
        """True when a Tombstone was recorded for ``object_id``."""
        return bool(await self.deleted([object_id]))


__all__ = ["MergeStore", "ObjectRow"]
