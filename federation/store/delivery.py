"""The durable delivery queue over aiosqlite (``activitypub.storage.DeliveryStore``, DESIGN.md §6).

Claims are one ``UPDATE … WHERE id IN (SELECT … LIMIT ?) RETURNING``: SQLite has no
``SELECT … FOR UPDATE``, and a single statement is atomic, also across processes sharing the file.
A body is stored once per activity in ``delivery_bodies`` (migration "one delivery body per
activity"), written in the transaction of its rows; a claim loads the bodies of the activities
it leased in one more query, so rows of one activity share one ``bytes``. Bodies are kept as
long as their rows are: the rows of finished deliveries are kept too, and one body costs less
than the rows of the activity that reference it.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import aiosqlite

from activitypub.storage import (
    DELIVERY_TRANSITIONS,
    Delivery,
    DeliveryId,
    DeliveryState,
    check_transition,
    inbox_host,
)
from federation.store.sqlite import transaction, write_lock

_COLUMNS = (
    "id, activity_id, inbox, sender, state, attempts, next_attempt_at, locked_until,"
    " last_error, last_status, created_at"
)
# A row with its activity's body, for get and list.
_JOINED = (
    "SELECT d.id, d.activity_id, d.inbox, d.sender, d.state, d.attempts, d.next_attempt_at,"
    " d.locked_until, d.last_error, d.last_status, d.created_at, b.body"
    " FROM deliveries d JOIN delivery_bodies b ON b.activity_id = d.activity_id"
)
# A row is claimable at its due time, or at the end of a lease that outlasts it. The two cases
# are two index walks that stop at their first entry (migration 7), not a scan of the queue.
_NEXT_DUE = (
    "SELECT MIN(t) FROM ("
    "SELECT * FROM (SELECT next_attempt_at AS t FROM deliveries WHERE state = 'new'"
    " AND (locked_until IS NULL OR locked_until <= next_attempt_at)"
    " ORDER BY next_attempt_at LIMIT 1)"
    " UNION ALL "
    "SELECT * FROM (SELECT locked_until AS t FROM deliveries WHERE state = 'new'"
    " AND locked_until > next_attempt_at ORDER BY locked_until LIMIT 1))"
)
# Claimable: NEW, due, and not under a live lease.
_CLAIMABLE = "state = 'new' AND next_attempt_at <= ? AND (locked_until IS NULL OR locked_until < ?)"
# Hosts with a claimable row, the one whose earliest such row is oldest first. The recursive
# part is a loose index walk (one seek per host with NEW rows) of ``deliveries_host``; each
# host's head is the first claimable entry of its own range of that index.
_HOSTS = (
    "WITH RECURSIVE hosts(host) AS ("  # noqa: S608 (constants only)
    "SELECT MIN(host) FROM deliveries WHERE state = 'new'"
    " UNION ALL SELECT (SELECT MIN(d.host) FROM deliveries d WHERE d.state = 'new'"
    " AND d.host > hosts.host) FROM hosts WHERE hosts.host IS NOT NULL),"
    " heads AS (SELECT host, (SELECT id FROM deliveries WHERE host = hosts.host"
    f" AND {_CLAIMABLE} ORDER BY next_attempt_at, id LIMIT 1) AS head"
    " FROM hosts WHERE host IS NOT NULL)"
    " SELECT heads.host FROM heads JOIN deliveries d ON d.id = heads.head"
    " ORDER BY d.next_attempt_at, d.id"
)
_HOSTS_PER_CLAIM = 400  # UNION ALL arms per statement, under SQLite's limit of 500


_CHUNK = 500  # ids per statement, well under SQLite's variable limit


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _delivery(row: Sequence[Any], body: bytes) -> Delivery:
    """A row of :data:`_COLUMNS` with its activity's body."""
    return Delivery(
        id=int(row[0]),
        activity_id=row[1],
        inbox=row[2],
        sender=row[3],
        body=body,
        state=DeliveryState(row[4]),
        attempts=int(row[5]),
        next_attempt_at=float(row[6]),
        locked_until=None if row[7] is None else float(row[7]),
        last_error=row[8],
        last_status=None if row[9] is None else int(row[9]),
        created_at=float(row[10]),
    )


def _joined(row: Sequence[Any]) -> Delivery:
    """A row of :data:`_JOINED`: the columns, then the body."""
    return _delivery(row, bytes(row[11]))


async def _bodies(db: aiosqlite.Connection, activity_ids: Iterable[str]) -> dict[str, bytes]:
    """The stored body of each activity, one query per 500 ids."""
    ids = list(dict.fromkeys(activity_ids))
    found: dict[str, bytes] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = await db.execute_fetchall(
            "SELECT activity_id, body FROM delivery_bodies"  # noqa: S608 (placeholders only)
            f" WHERE activity_id IN ({_placeholders(len(chunk))})",
            chunk,
        )
        found.update((str(r[0]), bytes(r[1])) for r in rows)
    return found


def _sources(target: DeliveryState) -> list[str]:
    """The states the declared graph allows to move to ``target``."""
    return [str(s) for s, targets in DELIVERY_TRANSITIONS.items() if target in targets]


async def insert_deliveries(
    db: aiosqlite.Connection,
    activity_id: str,
    sender: str,
    body: bytes,
    inboxes: Iterable[str],
    now: float,
) -> int:
    """Insert one NEW row per new (activity_id, inbox) inside the caller's open transaction.

    Takes no lock and opens no transaction: the caller holds ``transaction(db)``, so the rows
    commit (or roll back) together with whatever else it writes (DESIGN.md §6 "Publishing").
    The body is stored once per activity: a later call for the same id keeps the first body.
    """
    rows = [
        (activity_id, inbox, inbox_host(inbox), sender, now, now, now)
        for inbox in dict.fromkeys(inboxes)
    ]
    if not rows:
        return 0
    await db.execute(
        "INSERT INTO delivery_bodies (activity_id, body, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (activity_id) DO NOTHING",
        (activity_id, bytes(body), now),
    )
    cursor = await db.executemany(
        "INSERT INTO deliveries (activity_id, inbox, host, sender, state, attempts,"
        " next_attempt_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, 'new', 0, ?, ?, ?)"
        " ON CONFLICT (activity_id, inbox) DO NOTHING",
        rows,
    )
    return max(cursor.rowcount, 0)


class SqliteDeliveryStore:
    """``DeliveryStore`` on the server's shared aiosqlite connection (see ``open_database``)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def enqueue(
        self, activity_id: str, sender: str, body: bytes, inboxes: Iterable[str], *, now: float
    ) -> int:
        """Insert one NEW row per new (activity_id, inbox), all in one transaction."""
        targets = list(dict.fromkeys(inboxes))
        if not targets:
            return 0
        async with transaction(self._db):
            return await insert_deliveries(self._db, activity_id, sender, body, targets, now)

    async def claim(
        self,
        *,
        now: float,
        limit: int,
        lease: float,
        exclude_hosts: Collection[str] = (),
        per_host: int | None = None,
    ) -> builtins.list[Delivery]:
        """Lease up to ``limit`` due rows, at most ``per_host`` of each host, host by host.

        Hosts are taken in the order of their earliest claimable row, each giving its oldest
        rows, so one host's backlog never holds back another's (DESIGN.md §6). Each step is
        one atomic UPDATE … RETURNING; the host list is a loose walk of ``deliveries_host``.
        """
        cap = limit if per_host is None else min(per_host, limit)
        if limit <= 0 or cap <= 0:
            return []
        async with write_lock(self._db):
            hosts = await self._claimable_hosts(now, set(exclude_hosts))
            rows: builtins.list[Any] = []
            for start in range(0, len(hosts), _HOSTS_PER_CLAIM):
                if len(rows) >= limit:
                    break
                chunk = hosts[start : start + _HOSTS_PER_CLAIM]
                rows += await self._claim_from(chunk, now, limit - len(rows), cap, lease)
        # Bodies are written with their rows and never deleted before them: no lock needed.
        bodies = await _bodies(self._db, (r[1] for r in rows))
        claimed = [_delivery(r, bodies[r[1]]) for r in rows]
        # RETURNING does not keep the subquery's order.
        return sorted(claimed, key=lambda d: (d.next_attempt_at, d.id))

    async def _claimable_hosts(self, now: float, excluded: set[str]) -> builtins.list[str]:
        """Hosts with a claimable row, the one waiting longest first (excluded ones left out)."""
        rows = await self._db.execute_fetchall(_HOSTS, (now, now))
        return [str(r[0]) for r in rows if r[0] not in excluded]

    async def _claim_from(
        self, hosts: Sequence[str], now: float, limit: int, cap: int, lease: float
    ) -> builtins.list[Any]:
        """One UPDATE leasing the oldest ``cap`` claimable rows of each host, ``limit`` in all."""
        arm = (
            "SELECT * FROM (SELECT id, next_attempt_at FROM deliveries"  # noqa: S608 (constant)
            f" WHERE host = ? AND {_CLAIMABLE} ORDER BY next_attempt_at, id LIMIT ?)"
        )
        union = " UNION ALL ".join([arm] * len(hosts))
        params: builtins.list[Any] = [now + lease]
        for host in hosts:
            params += [host, now, now, cap]
        sql = (
            f"UPDATE deliveries SET locked_until = ? WHERE id IN (SELECT id FROM ({union})"  # noqa: S608 (placeholders only)
            f" ORDER BY next_attempt_at, id LIMIT ?) RETURNING {_COLUMNS}"
        )
        return list(await self._db.execute_fetchall(sql, (*params, limit)))

    async def release(self, delivery_id: DeliveryId) -> None:
        """Unlock a NEW row without counting an attempt."""
        async with write_lock(self._db):
            rows = await self._db.execute_fetchall(
                "UPDATE deliveries SET locked_until = NULL WHERE id = ? AND state = 'new'"
                " RETURNING id",
                (delivery_id,),
            )
        if not list(rows) and await self.get(delivery_id) is None:
            raise KeyError(delivery_id)

    async def mark_sent(self, delivery_id: DeliveryId, *, status: int, now: float) -> None:
        """NEW → SENT."""
        await self._finish(delivery_id, DeliveryState.SENT, None, status, now)

    async def mark_sent_many(
        self, delivery_ids: Sequence[DeliveryId], *, status: int, now: float
    ) -> int:
        """NEW → SENT for each row still NEW, in one statement per 500 ids; how many moved."""
        ids = list(dict.fromkeys(delivery_ids))
        moved = 0
        async with write_lock(self._db):
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                cursor = await self._db.execute(
                    "UPDATE deliveries SET state = 'sent', attempts = attempts + 1,"  # noqa: S608 (placeholders only)
                    " locked_until = NULL, last_error = NULL, last_status = ?, updated_at = ?"
                    f" WHERE state = 'new' AND id IN ({_placeholders(len(chunk))})",
                    (status, now, *chunk),
                )
                moved += max(cursor.rowcount, 0)
                await cursor.close()
        return moved

    async def mark_retry(
        self,
        delivery_id: DeliveryId,
        *,
        next_attempt_at: float,
        error: str,
        status: int | None,
        now: float,
    ) -> None:
        """NEW → NEW, due again at ``next_attempt_at``."""
        await self._finish(delivery_id, DeliveryState.NEW, error, status, now, next_attempt_at)

    async def mark_gone(
        self, delivery_id: DeliveryId, *, error: str, status: int | None, now: float
    ) -> None:
        """NEW → GONE."""
        await self._finish(delivery_id, DeliveryState.GONE, error, status, now)

    async def mark_failed(
        self, delivery_id: DeliveryId, *, error: str, status: int | None, now: float
    ) -> None:
        """NEW → FAILED."""
        await self._finish(delivery_id, DeliveryState.FAILED, error, status, now)

    async def get(self, delivery_id: DeliveryId) -> Delivery | None:
        """One row by id, or None."""
        rows = list(await self._db.execute_fetchall(f"{_JOINED} WHERE d.id = ?", (delivery_id,)))
        return _joined(rows[0]) if rows else None

    async def list(
        self, *, activity_id: str | None = None, state: DeliveryState | None = None
    ) -> builtins.list[Delivery]:
        """Rows matching the filters, in id order."""
        clauses, params = ["1 = 1"], builtins.list[Any]()
        if activity_id is not None:
            clauses.append("d.activity_id = ?")
            params.append(activity_id)
        if state is not None:
            clauses.append("d.state = ?")
            params.append(str(state))
        where = " AND ".join(clauses)
        rows = await self._db.execute_fetchall(f"{_JOINED} WHERE {where} ORDER BY d.id", params)
        return [_joined(r) for r in rows]

    async def next_due(self) -> float | None:
        """When the earliest NEW row becomes claimable (due time or lease expiry), or None."""
        rows = list(await self._db.execute_fetchall(_NEXT_DUE))
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def release_expired(self, *, now: float) -> int:
        """Clear leases that expired before ``now``."""
        async with write_lock(self._db):
            cursor = await self._db.execute(
                "UPDATE deliveries SET locked_until = NULL"
                " WHERE state = 'new' AND locked_until IS NOT NULL AND locked_until < ?",
                (now,),
            )
            count = cursor.rowcount
            await cursor.close()
        return max(count, 0)

    async def _finish(
        self,
        delivery_id: DeliveryId,
        state: DeliveryState,
        error: str | None,
        status: int | None,
        now: float,
        next_attempt_at: float | None = None,
    ) -> None:
        """Record one attempt's outcome, if the state graph allows it from the current state."""
        sources = _sources(state)
        sql = (
            "UPDATE deliveries SET state = ?, attempts = attempts + 1, locked_until = NULL,"  # noqa: S608 (placeholders only)
            " last_error = ?, last_status = ?,"
            " next_attempt_at = COALESCE(?, next_attempt_at), updated_at = ?"
            f" WHERE id = ? AND state IN ({_placeholders(len(sources))}) RETURNING id"
        )
        async with write_lock(self._db):
            rows = await self._db.execute_fetchall(
                sql, (str(state), error, status, next_attempt_at, now, delivery_id, *sources)
            )
        if list(rows):
            return
        current = await self.get(delivery_id)
        if current is None:
            raise KeyError(delivery_id)
        check_transition(DELIVERY_TRANSITIONS, current.state, state)
