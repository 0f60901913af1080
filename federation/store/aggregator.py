"""The aggregator's tables over aiosqlite: roster, follows, cursors, keys, refusals (§7, §8).

Verified activities and the caches the tally reads live in :mod:`federation.store.aggregator_log`.
Every write holds :func:`write_lock` or runs in :func:`transaction`; all SQL is parameterised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from federation.store.sqlite import write_lock

FOLLOW_STATES = ("pending", "accepted", "rejected", "undone")


@dataclass(frozen=True)
class StoredKeys:
    """A local actor's private keys as stored (PKCS#8 PEM)."""

    actor_id: str
    rsa_private_pem: str
    ed25519_private_pem: str
    created_at: float


@dataclass(frozen=True)
class RosterRow:
    """One instance on the roster, active or removed."""

    origin: str
    url: str
    territory: str
    district: str
    instance_actor: str | None
    group_actor: str | None
    active: bool
    added_at: float
    removed_at: float | None
    last_activity_at: float | None


@dataclass(frozen=True)
class FollowRow:
    """One of our Follows of an instance's actor and the answer it got."""

    follow_id: str
    origin: str
    target: str
    state: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class CursorRow:
    """Where a backfill of one collection stands (see the ``cursors`` table)."""

    origin: str
    collection: str
    next_url: str | None
    marker: str | None
    pass_newest: str | None
    items: int
    total: int | None
    passes: int
    updated_at: float


@dataclass(frozen=True)
class Refusal:
    """A delivery refused at the door, filed under the origin that authenticated it."""

    origin: str
    activity_id: str
    reason: str
    detail: str
    created_at: float


_ROSTER = (
    "SELECT origin, url, territory, district, instance_actor, group_actor, active, added_at,"
    " removed_at, last_activity_at FROM roster"
)
_FOLLOW = "SELECT follow_id, origin, target, state, created_at, updated_at FROM follows"
_CURSOR = (
    "SELECT origin, collection, next_url, marker, pass_newest, items, total, passes, updated_at"
    " FROM cursors"
)


def _roster(row: Sequence[Any]) -> RosterRow:
    return RosterRow(
        row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), float(row[7]),
        None if row[8] is None else float(row[8]), None if row[9] is None else float(row[9]),
    )  # fmt: skip


def _follow(row: Sequence[Any]) -> FollowRow:
    return FollowRow(row[0], row[1], row[2], row[3], float(row[4]), float(row[5]))


def _cursor(row: Sequence[Any]) -> CursorRow:
    total = None if row[6] is None else int(row[6])
    return CursorRow(
        row[0], row[1], row[2], row[3], row[4], int(row[5]), total, int(row[7]), float(row[8])
    )


class AggregatorStore:
    """Roster, follows, backfill cursors, Service keys and door refusals."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # --- keys -----------------------------------------------------------------------------

    async def get_keys(self, actor_id: str) -> StoredKeys | None:
        """The stored keys of a local actor, or None."""
        rows = await self.db.execute_fetchall(
            "SELECT actor_id, rsa_private_pem, ed25519_private_pem, created_at FROM actor_keys"
            " WHERE actor_id = ?",
            (actor_id,),
        )
        found = list(rows)
        if not found:
            return None
        row = found[0]
        return StoredKeys(row[0], row[1], row[2], float(row[3]))

    async def add_keys(self, keys: StoredKeys) -> StoredKeys:
        """Store keys unless some exist already; returns what is stored (first one wins)."""
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT INTO actor_keys (actor_id, rsa_private_pem, ed25519_private_pem,"
                " created_at) VALUES (?, ?, ?, ?) ON CONFLICT (actor_id) DO NOTHING",
                (keys.actor_id, keys.rsa_private_pem, keys.ed25519_private_pem, keys.created_at),
            )
        stored = await self.get_keys(keys.actor_id)
        assert stored is not None
        return stored

    # --- roster ---------------------------------------------------------------------------

    async def roster(self, *, active_only: bool = False) -> list[RosterRow]:
        """Every roster row (or only the active ones), by origin."""
        where = " WHERE active = 1" if active_only else ""
        rows = await self.db.execute_fetchall(f"{_ROSTER}{where} ORDER BY origin")
        return [_roster(row) for row in rows]

    async def roster_entry(self, origin: str) -> RosterRow | None:
        """The roster row of an origin, or None."""
        rows = list(await self.db.execute_fetchall(f"{_ROSTER} WHERE origin = ?", (origin,)))
        return _roster(rows[0]) if rows else None

    async def roster_rev(self) -> int:
        """The roster's highest ``rev`` (0 when empty): it grows on every change."""
        rows = list(await self.db.execute_fetchall("SELECT COALESCE(MAX(rev), 0) FROM roster"))
        return int(rows[0][0])

    async def put_roster(self, row: RosterRow) -> None:
        """Add or replace an instance's roster row (its last activity time is kept)."""
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT INTO roster (origin, url, territory, district, instance_actor,"
                " group_actor, active, added_at, removed_at, rev)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " COALESCE((SELECT MAX(rev) FROM roster), 0) + 1)"
                " ON CONFLICT (origin) DO UPDATE SET url = excluded.url,"
                " territory = excluded.territory, district = excluded.district,"
                " instance_actor = excluded.instance_actor, group_actor = excluded.group_actor,"
                " active = excluded.active, added_at = excluded.added_at,"
                " removed_at = excluded.removed_at, rev = excluded.rev",
                (
                    row.origin, row.url, row.territory, row.district, row.instance_actor,
                    row.group_actor, int(row.active), row.added_at, row.removed_at,
                ),
            )  # fmt: skip

    async def set_active(self, origin: str, active: bool, *, now: float) -> bool:
        """Remove (inactive) or restore an instance; False when it is not on the roster."""
        async with write_lock(self.db):
            cursor = await self.db.execute(
                "UPDATE roster SET active = ?, removed_at = ?,"
                " rev = COALESCE((SELECT MAX(rev) FROM roster), 0) + 1"
                " WHERE origin = ?",
                (int(active), None if active else now, origin),
            )
            changed = cursor.rowcount == 1
            await cursor.close()
        return changed

    # --- follows --------------------------------------------------------------------------

    async def add_follow(
        self, follow_id: str, origin: str, target: str, document: str, *, now: float
    ) -> None:
        """Record a Follow we sent, pending its answer."""
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT INTO follows (follow_id, origin, target, state, document, created_at,"
                " updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)",
                (follow_id, origin, target, document, now, now),
            )

    async def follows(self, origin: str | None = None) -> list[FollowRow]:
        """Our Follows (of one origin, or all), oldest first."""
        if origin is None:
            rows = await self.db.execute_fetchall(f"{_FOLLOW} ORDER BY created_at, follow_id")
        else:
            rows = await self.db.execute_fetchall(
                f"{_FOLLOW} WHERE origin = ? ORDER BY created_at, follow_id",
                (origin,),
            )
        return [_follow(row) for row in rows]

    async def follow(self, follow_id: str) -> FollowRow | None:
        """One Follow by its id, or None."""
        rows = list(await self.db.execute_fetchall(f"{_FOLLOW} WHERE follow_id = ?", (follow_id,)))
        return _follow(rows[0]) if rows else None

    async def follow_document(self, follow_id: str) -> str | None:
        """The JSON of a Follow we sent (for its Undo), or None."""
        rows = list(
            await self.db.execute_fetchall(
                "SELECT document FROM follows WHERE follow_id = ?", (follow_id,)
            )
        )
        return str(rows[0][0]) if rows else None

    async def set_follow_state(self, follow_id: str, state: str, *, now: float) -> bool:
        """Record an answer (accepted/rejected) or our Undo; False for an unknown Follow."""
        if state not in FOLLOW_STATES:
            raise ValueError(f"unknown follow state {state!r}")
        async with write_lock(self.db):
            cursor = await self.db.execute(
                "UPDATE follows SET state = ?, updated_at = ? WHERE follow_id = ?",
                (state, now, follow_id),
            )
            changed = cursor.rowcount == 1
            await cursor.close()
        return changed

    # --- backfill cursors -----------------------------------------------------------------

    async def cursor(self, origin: str, collection: str) -> CursorRow | None:
        """Where the backfill of ``collection`` stands, or None before the first page."""
        rows = list(
            await self.db.execute_fetchall(
                f"{_CURSOR} WHERE origin = ? AND collection = ?",
                (origin, collection),
            )
        )
        return _cursor(rows[0]) if rows else None

    async def cursors(self, origin: str | None = None) -> list[CursorRow]:
        """Every cursor (of one origin, or all)."""
        if origin is None:
            rows = await self.db.execute_fetchall(f"{_CURSOR} ORDER BY origin, collection")
        else:
            rows = await self.db.execute_fetchall(
                f"{_CURSOR} WHERE origin = ? ORDER BY collection",
                (origin,),
            )
        return [_cursor(row) for row in rows]

    async def save_cursor(self, row: CursorRow) -> None:
        """Store a collection's position after a page (the backfill resumes from it)."""
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT INTO cursors (origin, collection, next_url, marker, pass_newest, items,"
                " total, passes, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (origin, collection) DO UPDATE SET next_url = excluded.next_url,"
                " marker = excluded.marker, pass_newest = excluded.pass_newest,"
                " items = excluded.items, total = excluded.total, passes = excluded.passes,"
                " updated_at = excluded.updated_at",
                (
                    row.origin, row.collection, row.next_url, row.marker, row.pass_newest,
                    row.items, row.total, row.passes, row.updated_at,
                ),
            )  # fmt: skip

    # --- refusals at the door -------------------------------------------------------------

    async def add_refusal(self, refusal: Refusal) -> bool:
        """File a refused delivery (once per origin, activity and reason)."""
        async with write_lock(self.db):
            cursor = await self.db.execute(
                "INSERT INTO refusals (origin, activity_id, reason, detail, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin, activity_id, reason) DO NOTHING",
                (
                    refusal.origin, refusal.activity_id, refusal.reason, refusal.detail,
                    refusal.created_at,
                ),
            )  # fmt: skip
            added = cursor.rowcount == 1
            await cursor.close()
        return added

    async def refusals(self, origin: str | None = None) -> list[Refusal]:
        """Refused deliveries (of one origin, or all), oldest first."""
        select = "SELECT origin, activity_id, reason, detail, created_at FROM refusals"
        if origin is None:
            rows = await self.db.execute_fetchall(f"{select} ORDER BY seq")
        else:
            rows = await self.db.execute_fetchall(
                f"{select} WHERE origin = ? ORDER BY seq",
                (origin,),
            )
        return [Refusal(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]

    async def pending_inbox(self, origin: str) -> int:
        """Received activities from ``origin``'s actors not yet processed (the live backlog)."""
        rows = list(
            await self.db.execute_fetchall(
                "SELECT COUNT(*) FROM inbox_messages"
                " WHERE state = 'new' AND actor LIKE ? ESCAPE '\\'",
                (_like_prefix(origin),),
            )
        )
        return int(rows[0][0])


def _like_prefix(origin: str) -> str:
    # Escape LIKE's wildcards in the origin; ports and hosts hold no '%' but '_' is common.
    escaped = origin.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "/%"


__all__ = [
    "AggregatorStore",
    "CursorRow",
    "FollowRow",
    "Refusal",
    "RosterRow",
    "StoredKeys",
]
