"""Upgrading a database whose delivery rows each held a body to one body per activity, in place.

The database is created at the version before the migration (instance 7, aggregator 4, protocol
1) with rows in every state, written by that version's own SQL; after the upgrade every row is
still there unchanged, pending ones are claimed with their exact bytes, each body is stored once,
and the ``body`` column is gone from ``deliveries``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from activitypub.storage import Delivery, DeliveryState
from federation.store.aggregator_schema import AGGREGATOR_MIGRATIONS
from federation.store.delivery import SqliteDeliveryStore
from federation.store.migrations import INSTANCE_MIGRATIONS, MIGRATIONS, Migration
from federation.store.sqlite import applied_versions, open_database

T0 = 1_700_000_000.0
SENDER = "https://n1.example/groups/city"
ANNOUNCE = ('{"type":"Announce","content":"' + "é" * 4000 + '"}').encode()
LIKE = b'{"type":"Like"}'

# The previous version's insert (every row carried its body), and a row's full state.
_OLD_INSERT = (
    "INSERT INTO deliveries (activity_id, inbox, host, sender, body, state, attempts,"
    " next_attempt_at, locked_until, last_error, last_status, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OLD_ROWS = [
    # (activity, inbox host, body, state, attempts, next_attempt_at, locked_until, error, status)
    *[("announce", f"h{i}.example", ANNOUNCE, "new", 0, T0, None, None, None) for i in range(5)],
    ("announce", "leased.example", ANNOUNCE, "new", 0, T0, T0 + 600, None, None),
    ("announce", "retry.example", ANNOUNCE, "new", 2, T0 + 90, None, "HTTP 502", 502),
    ("announce", "sent.example", ANNOUNCE, "sent", 1, T0, None, None, 202),
    ("like", "h0.example", LIKE, "new", 0, T0 + 5, None, None, None),
    ("done", "gone.example", b'{"type":"Undo"}', "gone", 1, T0, None, "HTTP 410", 410),
]


def _before(migrations: Sequence[Migration]) -> tuple[Migration, ...]:
    """The sequence up to (not including) its delivery bodies migration."""
    names = [migration.name for migration in migrations]
    return tuple(migrations[: names.index("one delivery body per activity")])


async def _old_database(path: Path, migrations: Sequence[Migration]) -> None:
    db = await open_database(path, migrations=_before(migrations))
    try:
        for act, host, body, state, attempts, due, locked, error, status in _OLD_ROWS:
            await db.execute(
                _OLD_INSERT,
                (act, f"https://{host}/inbox", host, SENDER, body, state, attempts, due, locked,
                 error, status, T0, T0),
            )  # fmt: skip
    finally:
        await db.close()


def _expected(row: tuple[object, ...], delivery: Delivery) -> bool:
    act, host, body, state, attempts, due, locked, error, status = row
    return (
        delivery.activity_id,
        delivery.inbox,
        delivery.sender,
        delivery.body,
        delivery.state,
        delivery.attempts,
        delivery.next_attempt_at,
        delivery.locked_until,
        delivery.last_error,
        delivery.last_status,
        delivery.created_at,
    ) == (act, f"https://{host}/inbox", SENDER, body, DeliveryState(str(state)), attempts, due,
          locked, error, status, T0)  # fmt: skip


@pytest.mark.parametrize(
    "migrations",
    [INSTANCE_MIGRATIONS, AGGREGATOR_MIGRATIONS, MIGRATIONS],
    ids=["instance", "aggregator", "protocol"],
)
async def test_upgrade_keeps_every_row_and_stores_each_body_once(
    tmp_path: Path, migrations: Sequence[Migration]
) -> None:
    path = tmp_path / "barri.db"
    await _old_database(path, migrations)
    db = await open_database(path, migrations=migrations)
    try:
        assert await applied_versions(db) == [m.version for m in migrations]
        q = SqliteDeliveryStore(db)
        rows = await q.list()
        assert len(rows) == len(_OLD_ROWS)
        assert all(_expected(old, new) for old, new in zip(_OLD_ROWS, rows, strict=True))
        bodies = await db.execute_fetchall(
            "SELECT activity_id, body FROM delivery_bodies ORDER BY activity_id"
        )
        assert [(r[0], bytes(r[1])) for r in bodies] == [
            ("announce", ANNOUNCE), ("done", b'{"type":"Undo"}'), ("like", LIKE),
        ]  # fmt: skip
        columns = {r[1] for r in await db.execute_fetchall("PRAGMA table_info(deliveries)")}
        assert "body" not in columns and "activity_id" in columns
        # Pending rows go out with their exact bytes: due now, after the lease, after the retry.
        claimed = await q.claim(now=T0 + 601, limit=50, lease=60)
        assert sorted((d.inbox, d.body) for d in claimed) == sorted(
            (f"https://{r[1]}/inbox", r[2]) for r in _OLD_ROWS if r[3] == "new"
        )
        # New rows of an old activity keep its body; new activities get their own.
        assert (
            await q.enqueue("announce", SENDER, b"{}", ["https://new.example/inbox"], now=T0) == 1
        )
        late = (await q.list(activity_id="announce"))[-1]
        assert (late.inbox, late.body) == ("https://new.example/inbox", ANNOUNCE)
    finally:
        await db.close()
