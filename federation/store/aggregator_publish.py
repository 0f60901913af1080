"""What the aggregator's Service publishes: its Tallies, and who follows it (DESIGN.md §7).

``tallies`` keeps the signed ``Create`` that carried each signed Tally still current, in
``seq`` order: the Service's outbox pages over it and each Tally is served at its id, lifted
out of its Create (stored once; the Create's ``@context`` is the one the Tally was signed
with). A process keeps its newest Tally and its final one: a provisional Tally is superseded by
the next of its process (its followers got it when it was published), and ``superseded_tallies``
remembers its ids, so they answer 410 Gone instead of growing the database by a whole count
every ``tally_debounce_seconds``. A process has at most one final Tally (a unique partial
index), so "closed results never change" holds even if two publishers race. ``followers``
lists the actors Tallies are delivered to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite
import orjson

from activitypub.collections import PageRequest, PageResult
from federation.store.domain import fetch_one
from federation.store.paging import page_rows
from federation.store.sqlite import transaction, write_lock


@dataclass(frozen=True)
class TallyRow:
    """One published Tally: ids, process, finality, content fingerprint, its signed Create."""

    seq: int
    id: str
    activity_id: str
    process_id: str
    final: bool
    fingerprint: str
    published_at: float
    activity: str

    def tally(self) -> dict[str, Any]:
        """The signed Tally as published: the Create's object under the Create's context."""
        create = orjson.loads(self.activity)
        return {"@context": create["@context"], **create["object"]}


@dataclass(frozen=True)
class SupersededTally:
    """A provisional Tally a newer one of its process replaced: its ids, and since when."""

    id: str
    activity_id: str
    process_id: str
    superseded_at: float


@dataclass(frozen=True)
class FollowerRow:
    """An actor following the Service, with the inbox its Tallies go to."""

    actor: str
    follow_id: str
    inbox: str
    created_at: float


_TALLY = (
    "SELECT seq, id, activity_id, process_id, final, fingerprint, published_at, activity"
    " FROM tallies"
)


def _tally(row: Sequence[Any]) -> TallyRow:
    return TallyRow(
        int(row[0]), row[1], row[2], row[3], bool(row[4]), row[5], float(row[6]), row[7]
    )


class PublishStore:
    """Published Tallies and the Service's followers on the shared connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # --- tallies --------------------------------------------------------------------------

    async def add_tally(self, row: TallyRow, counted: Sequence[str] | None = None) -> bool:
        """Store a published Tally (a final one with the ids it counted); False when the
        process already has a final one."""
        kept = None if counted is None else json.dumps(sorted(counted))
        async with transaction(self.db):
            cursor = await self.db.execute(
                "INSERT INTO tallies (id, activity_id, process_id, final, fingerprint,"
                " published_at, activity, counted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING RETURNING seq",
                (
                    row.id, row.activity_id, row.process_id, int(row.final), row.fingerprint,
                    row.published_at, row.activity, kept,
                ),
            )  # fmt: skip
            inserted = list(await cursor.fetchall())
            await cursor.close()
            if inserted:
                await self._supersede(row.process_id, int(inserted[0][0]), row.published_at)
        return bool(inserted)

    async def _supersede(self, process_id: str, newest: int, at: float) -> None:
        """Forget the process's provisional Tallies older than ``newest``, keeping their ids."""
        await self.db.execute(
            "INSERT OR IGNORE INTO superseded_tallies (id, activity_id, process_id,"
            " superseded_at) SELECT id, activity_id, process_id, ? FROM tallies"
            " WHERE process_id = ? AND final = 0 AND seq < ?",
            (at, process_id, newest),
        )
        await self.db.execute(
            "DELETE FROM tallies WHERE process_id = ? AND final = 0 AND seq < ?",
            (process_id, newest),
        )

    async def superseded(self, object_id: str) -> SupersededTally | None:
        """The superseded Tally whose id, or whose Create's id, is ``object_id``."""
        rows = list(
            await self.db.execute_fetchall(
                "SELECT id, activity_id, process_id, superseded_at FROM superseded_tallies"
                " WHERE id = ? OR activity_id = ?",
                (object_id, object_id),
            )
        )
        if not rows:
            return None
        return SupersededTally(rows[0][0], rows[0][1], rows[0][2], float(rows[0][3]))

    async def latest(self, process_id: str) -> TallyRow | None:
        """The newest Tally of a process (the final one, once there is one)."""
        rows = list(
            await self.db.execute_fetchall(
                f"{_TALLY} WHERE process_id = ? ORDER BY final DESC, seq DESC LIMIT 1",
                (process_id,),
            )
        )
        return _tally(rows[0]) if rows else None

    async def latest_fingerprint(self, process_id: str) -> str | None:
        """The fingerprint of a process's newest Tally (without reading the Tally itself)."""
        row = await fetch_one(
            self.db,
            "SELECT fingerprint FROM tallies WHERE process_id = ?"
            " ORDER BY final DESC, seq DESC LIMIT 1",
            (process_id,),
        )
        return None if row is None else str(row[0])

    async def final_processes(self) -> set[str]:
        """The processes that have their final Tally."""
        rows = await self.db.execute_fetchall("SELECT process_id FROM tallies WHERE final = 1")
        return {str(row[0]) for row in rows}

    async def final(self, process_id: str) -> TallyRow | None:
        """The final Tally of a process, or None while it is open."""
        rows = list(
            await self.db.execute_fetchall(
                f"{_TALLY} WHERE process_id = ? AND final = 1", (process_id,)
            )
        )
        return _tally(rows[0]) if rows else None

    async def counted(self, process_id: str) -> tuple[str, ...]:
        """The support ids the final Tally of a process counted (empty while it is open)."""
        rows = list(
            await self.db.execute_fetchall(
                "SELECT counted FROM tallies WHERE process_id = ? AND final = 1", (process_id,)
            )
        )
        if not rows or rows[0][0] is None:
            return ()
        return tuple(str(item) for item in json.loads(rows[0][0]))

    async def by_id(self, object_id: str) -> TallyRow | None:
        """The Tally whose id, or whose Create's id, is ``object_id``."""
        rows = list(
            await self.db.execute_fetchall(
                f"{_TALLY} WHERE id = ? OR activity_id = ?", (object_id, object_id)
            )
        )
        return _tally(rows[0]) if rows else None

    async def count(self) -> int:
        """How many Tallies were published (the outbox's totalItems)."""
        rows = list(await self.db.execute_fetchall("SELECT COUNT(*) FROM tallies"))
        return int(rows[0][0])

    async def page(self, page: PageRequest) -> PageResult:
        """One outbox page of Tallies, newest first (items: ``TallyRow``)."""
        rows, after, before = await page_rows(
            self.db, table="tallies", columns="seq, id, activity_id, process_id, final,"
            " fingerprint, published_at, activity", where="1 = 1", params=(),
            page=page,
        )  # fmt: skip
        return PageResult([_tally(row) for row in rows], after, before)

    async def published_at(self) -> dict[str, float]:
        """When each process's newest Tally was published (for the tally-age metric)."""
        rows = await self.db.execute_fetchall(
            "SELECT process_id, MAX(published_at) FROM tallies GROUP BY process_id"
        )
        return {str(row[0]): float(row[1]) for row in rows}

    # --- followers ------------------------------------------------------------------------

    async def add_follower(self, row: FollowerRow) -> None:
        """Record (or refresh) a follower of the Service."""
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT INTO followers (actor, follow_id, inbox, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (actor) DO UPDATE SET follow_id = excluded.follow_id,"
                " inbox = excluded.inbox",
                (row.actor, row.follow_id, row.inbox, row.created_at),
            )

    async def remove_follower(self, actor: str, follow_id: str | None = None) -> bool:
        """Forget a follower (its ``Undo{Follow}``); with ``follow_id``, only that Follow's."""
        async with write_lock(self.db):
            if follow_id is None:
                cursor = await self.db.execute("DELETE FROM followers WHERE actor = ?", (actor,))
            else:
                cursor = await self.db.execute(
                    "DELETE FROM followers WHERE actor = ? AND follow_id = ?", (actor, follow_id)
                )
            removed = cursor.rowcount == 1
            await cursor.close()
        return removed

    async def followers(self) -> list[FollowerRow]:
        """Every follower, oldest first."""
        rows = await self.db.execute_fetchall(
            "SELECT actor, follow_id, inbox, created_at FROM followers ORDER BY created_at, actor"
        )
        return [FollowerRow(r[0], r[1], r[2], float(r[3])) for r in rows]


__all__ = ["FollowerRow", "PublishStore", "SupersededTally", "TallyRow"]
