"""The aggregator's group-commit inbox store: the InboxStore semantics, in shared writes.

Concurrent ``record`` calls share one transaction yet each gets its own answer (a replay in the
same group included); a write that fails fails every caller of its group and stores nothing;
``mark_done_many`` marks a batch done and refuses what ``mark_done`` refuses; under a steady
load a lone delivery waits briefly for company, an idle store writes it at once.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from activitypub.collections import PageRequest
from activitypub.dispatch import BatchDoneStore, marks_batches
from activitypub.inbox import records_text
from activitypub.storage import InboxState, InvalidTransition
from federation.store import group_inbox
from federation.store.aggregator_schema import AGGREGATOR_MIGRATIONS
from federation.store.c2s import page_inbox
from federation.store.group_inbox import DONE_BODY, GROUP, GroupCommitInboxStore, KeptBodies
from federation.store.inbox import SqliteInboxStore
from federation.store.sqlite import open_database

T0 = 1_700_000_000.0
SHARED = "https://agg.example/inbox"
ACTOR = "https://n1.example/users/anna"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await open_database(tmp_path / "agg.db", migrations=AGGREGATOR_MIGRATIONS)
    try:
        yield connection
    finally:
        await connection.close()


def _like(n: int) -> dict[str, str]:
    return {"id": f"https://n1.example/likes/{n}", "type": "Like", "actor": ACTOR, "n": "é"}


async def _count(db: aiosqlite.Connection) -> int:
    rows = list(await db.execute_fetchall("SELECT COUNT(*) FROM inbox_messages"))
    return int(rows[0][0])


async def test_concurrent_records_each_get_their_own_answer(db: aiosqlite.Connection) -> None:
    store = GroupCommitInboxStore(db)
    likes = [_like(n) for n in range(GROUP + 50)]  # more than one statement's worth
    calls = [store.record(SHARED, like["id"], ACTOR, like, auth="proof", now=T0) for like in likes]
    # The same pair twice in the group, and a pair for another inbox.
    calls.append(store.record(SHARED, likes[3]["id"], ACTOR, likes[3], auth="proof", now=T0))
    other = "https://agg.example/actor/inbox"
    calls.append(store.record(other, likes[3]["id"], ACTOR, likes[3], auth="httpsig", now=T0))
    answers = await asyncio.gather(*calls)
    assert answers == [True] * len(likes) + [False, True]
    assert await _count(db) == len(likes) + 1
    # Later, one at a time, as the plain store answers.
    assert (
        await store.record(SHARED, likes[0]["id"], ACTOR, likes[0], auth="proof", now=T0) is False
    )
    new = _like(999)
    assert await store.record(SHARED, new["id"], ACTOR, new, auth="httpsig", now=T0 + 5) is True
    records = await store.claim(now=T0 + 5, limit=1000, lease=30)
    assert len(records) == len(likes) + 2
    assert records[0].activity == likes[0] and records[0].auth == "proof"
    assert (records[-1].activity_id, records[-1].received_at) == (new["id"], T0 + 5)
    with pytest.raises(ValueError):
        await store.record(SHARED, "x", ACTOR, new, auth="none", now=T0)


async def test_a_failed_group_write_fails_its_callers_and_stores_nothing(
    db: aiosqlite.Connection,
) -> None:
    store = GroupCommitInboxStore(db)
    await db.execute(
        "CREATE TRIGGER full BEFORE INSERT ON inbox_messages"
        " WHEN NEW.activity_id LIKE '%/13' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    likes = [_like(n) for n in range(20)]
    answers = await asyncio.gather(
        *(store.record(SHARED, like["id"], ACTOR, like, auth="proof", now=T0) for like in likes),
        return_exceptions=True,
    )
    assert all(isinstance(a, sqlite3.IntegrityError) for a in answers), answers
    assert await _count(db) == 0  # the whole group was rolled back
    await db.execute("DROP TRIGGER full")
    assert await store.record(SHARED, likes[1]["id"], ACTOR, likes[1], auth="proof", now=T0)
    assert await _count(db) == 1


async def test_mark_done_many(db: aiosqlite.Connection) -> None:
    store = GroupCommitInboxStore(db)
    assert isinstance(store, BatchDoneStore)
    for n in range(GROUP + 10):
        like = _like(n)
        await store.record(SHARED, like["id"], ACTOR, like, auth="proof", now=T0)
    records = await store.claim(now=T0, limit=1000, lease=30)
    await store.mark_done_many([r.id for r in records[:-1]])
    states = [await store.get(r.id) for r in records]
    assert all(s is not None and (s.state, s.attempts, s.locked_until) == (InboxState.DONE, 1, None)
               for s in states[:-1])  # fmt: skip
    assert states[-1] is not None and states[-1].state is InboxState.NEW
    await store.mark_done_many([])
    with pytest.raises(InvalidTransition):
        await store.mark_done_many([records[-1].id, records[0].id])  # the first is done already
    last = await store.get(records[-1].id)
    assert last is not None and last.state is InboxState.DONE
    # A handled row keeps its ids, not its body: a replay of it is still refused.
    bodies = {row[0] for row in await db.execute_fetchall("SELECT activity FROM inbox_messages")}
    assert bodies == {DONE_BODY}
    again = _like(0)
    assert not await store.record(SHARED, again["id"], ACTOR, again, auth="proof", now=T0)
    with pytest.raises(KeyError):
        await store.mark_done_many([987654])


async def test_an_instance_keeps_the_bodies_of_handled_rows(db: aiosqlite.Connection) -> None:
    # An instance's inbox rows are also its residents' C2S inbox: done, each keeps its JSON.
    store = GroupCommitInboxStore(db, keep_bodies=True)
    likes = [_like(n) for n in range(5)]
    for like in likes:
        await store.record(SHARED, like["id"], ACTOR, like, auth="proof", now=T0)
    records = await store.claim(now=T0, limit=10, lease=30)
    await store.mark_done_many([r.id for r in records[:3]])
    await store.mark_done(records[3].id)
    rows = await db.execute_fetchall("SELECT activity, state FROM inbox_messages ORDER BY id")
    assert [(json.loads(text), state) for text, state in rows] == [
        *((like, "done") for like in likes[:4]), (likes[4], "new"),
    ]  # fmt: skip
    again = _like(0)
    assert not await store.record(SHARED, again["id"], ACTOR, again, auth="proof", now=T0)


async def test_an_instance_keeps_the_bodies_its_residents_c2s_inbox_may_list(
    db: aiosqlite.Connection,
) -> None:
    """Done rows keep their body when they came to an actor's own inbox or to the shared inbox
    addressed to a resident; a Group's Announce to all its followers drops it."""
    base = "https://n2.example"
    resident = base + "/users/biel"
    store = GroupCommitInboxStore(db, keep_bodies=KeptBodies(base + "/inbox", base + "/users/"))
    group = "https://city.example/groups/city"
    public = "https://www.w3.org/ns/activitystreams#Public"

    def activity(n: int, **addressing: object) -> dict[str, object]:
        return {"id": f"{group}/activities/{n}", "type": "Announce", "actor": group,
                **addressing}  # fmt: skip

    rows = [
        (base + "/inbox", activity(1, to=[public], cc=[group + "/followers"])),  # dropped
        (base + "/inbox", activity(2, to=public, cc=[resident])),  # to a resident: kept
        (base + "/inbox", activity(3, audience=resident)),  # a single value: kept
        (resident + "/inbox", activity(4, to=[public])),  # the resident's own inbox: kept
        (base + "/inbox", activity(5, to=["https://n2.example.evil/users/x"])),  # dropped
    ]
    for inbox, body in rows:
        assert await store.record(inbox, str(body["id"]), group, body, auth="httpsig", now=T0)
    records = await store.claim(now=T0, limit=10, lease=30)
    await store.mark_done_many([r.id for r in records])
    stored = await db.execute_fetchall("SELECT activity FROM inbox_messages ORDER BY id")
    kept = [json.loads(row[0]) for row in stored]
    assert kept == [{}, rows[1][1], rows[2][1], rows[3][1], {}]
    listed = await page_inbox(
        db, inbox=resident + "/inbox", shared_inbox=base + "/inbox", actor_id=resident,
        page=PageRequest(None, None, 20),
    )  # fmt: skip
    assert {item["id"] for item in listed.items} == {str(rows[n][1]["id"]) for n in (1, 2, 3)}


async def test_a_row_recorded_here_is_handed_over_with_its_stored_json(
    db: aiosqlite.Connection,
) -> None:
    store = GroupCommitInboxStore(db)
    likes = [_like(n) for n in range(3)]
    for like in likes:
        assert await store.record(SHARED, like["id"], ACTOR, like, auth="proof", now=T0)
    compact = [json.dumps(like, ensure_ascii=False, separators=(",", ":")) for like in likes]
    first, second, third = await store.claim(now=T0, limit=10, lease=30)
    assert first.activity is likes[0]  # no parse of what this process just wrote
    assert [store.text_of(r.id) for r in (first, second, third)] == compact
    await store.mark_done_many([first.id])
    await store.mark_done(second.id)
    await store.mark_failed(third.id, "later", retry_at=T0 + 60, now=T0)
    assert [store.text_of(r.id) for r in (first, second, third)] == [None, None, None]
    kept = await db.execute_fetchall("SELECT id, activity FROM inbox_messages ORDER BY id")
    assert [text for _id, text in kept] == [DONE_BODY, DONE_BODY, compact[2]]  # failed: kept
    # Another store on the same file (a restart): the row is read back from the database.
    again = await GroupCommitInboxStore(db).claim(now=T0 + 60, limit=10, lease=30)
    assert [r.id for r in again] == [third.id]
    assert again[0].activity == likes[2] and again[0].activity is not likes[2]
    assert again[0].attempts == 1 and again[0].error == "later"


async def test_the_body_as_received_is_what_is_kept(db: aiosqlite.Connection) -> None:
    store = GroupCommitInboxStore(db)
    like = _like(1)
    body = json.dumps(like, indent=2)  # as some sender wrote it, spaces and all
    assert await store.record_text(SHARED, like["id"], ACTOR, like, body, auth="proof", now=T0)
    again = json.dumps(like)
    assert not await store.record_text(SHARED, like["id"], ACTOR, like, again, auth="proof", now=T0)
    (claimed,) = await store.claim(now=T0, limit=10, lease=30)
    assert store.text_of(claimed.id) == body and json.loads(body) == claimed.activity
    # Read back after a restart, the stored text parses to the same activity.
    await store.mark_failed(claimed.id, "retry", retry_at=T0, now=T0)
    (back,) = await GroupCommitInboxStore(db).claim(now=T0 + 1, limit=10, lease=30)
    assert back.activity == like
    with pytest.raises(ValueError):
        await store.record_text(SHARED, "x", ACTOR, like, body, auth="nope", now=T0)


async def test_an_upgrade_drops_the_bodies_of_rows_handled_before(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    names = [migration.name for migration in AGGREGATOR_MIGRATIONS]
    before = AGGREGATOR_MIGRATIONS[: names.index("handled inbox rows drop their bodies")]
    old = await open_database(path, migrations=before)
    try:
        for n, state in enumerate(("done", "new", "failed")):
            text = json.dumps(_like(n))
            await old.execute(
                "INSERT INTO inbox_messages (inbox, activity_id, actor, activity, auth, state,"
                " attempts, next_attempt_at, received_at) VALUES (?, ?, ?, ?, 'proof', ?, 1, ?, ?)",
                (SHARED, f"https://n1.example/likes/{n}", ACTOR, text, state, T0, T0),
            )
    finally:
        await old.close()
    db = await open_database(path, migrations=AGGREGATOR_MIGRATIONS)
    try:
        rows = await db.execute_fetchall("SELECT state, activity FROM inbox_messages ORDER BY id")
        assert [(state, json.loads(text)) for state, text in rows] == [
            ("done", {}), ("new", _like(1)), ("failed", _like(2)),
        ]  # fmt: skip
        like = _like(0)  # handled before the upgrade: still refused as a replay
        store = GroupCommitInboxStore(db)
        assert not await store.record(SHARED, like["id"], ACTOR, like, auth="proof", now=T0)
    finally:
        await db.close()


def test_the_batch_and_text_capabilities_are_read_off_the_store_type(
    db: aiosqlite.Connection,
) -> None:
    """records_text / marks_batches: what isinstance against the Protocols says, per type."""
    grouped, plain = GroupCommitInboxStore(db), SqliteInboxStore(db)
    for _ in range(2):  # the second answer comes from the per-type cache
        assert records_text(grouped) and marks_batches(grouped)
        assert not records_text(plain) and not marks_batches(plain)


class _GroupCounting(GroupCommitInboxStore):
    """The store, noting the rows of each group it writes."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__(db)
        self.groups: list[int] = []

    async def _insert(self, rows: list[Any]) -> dict[tuple[str, str], int]:
        self.groups.append(len(rows))
        return await super()._insert(rows)


async def _liked(store: _GroupCounting, n: int) -> bool:
    """Record like ``n`` in the shared inbox, proved by its actor."""
    return await store.record(SHARED, _like(n)["id"], ACTOR, _like(n), auth="proof", now=T0)


async def test_a_busy_store_waits_briefly_so_lone_deliveries_share_a_transaction(
    db: aiosqlite.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide margins (a slow machine must not change the outcome): busy for 5 s after a group,
    # and then a group waits 0.3 s for company.
    monkeypatch.setattr(group_inbox, "BUSY", 5.0)
    monkeypatch.setattr(group_inbox, "GATHER", 0.3)
    store = _GroupCounting(db)
    assert await _liked(store, 1)
    first = asyncio.create_task(_liked(store, 2))
    await asyncio.sleep(0.05)  # one at a time, as a steady load's deliveries arrive
    second = _liked(store, 3)
    assert await second and await first
    assert store.groups == [1, 2]
    assert await _count(db) == 3


async def test_an_idle_store_writes_a_lone_delivery_at_once(
    db: aiosqlite.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_inbox, "GATHER", 30.0)  # a wait there would time the test out
    store = _GroupCounting(db)
    async with asyncio.timeout(10):
        assert await _liked(store, 1)
    assert store.groups == [1]


async def test_a_cancelled_group_writer_leaves_no_caller_waiting(
    db: aiosqlite.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At shutdown the writer task may be cancelled mid-wait: its callers must not hang."""
    monkeypatch.setattr(group_inbox, "GATHER", 30.0)
    monkeypatch.setattr(group_inbox, "BUSY", 60.0)
    store = _GroupCounting(db)
    assert await _liked(store, 1)
    caller = asyncio.create_task(_liked(store, 2))
    await asyncio.sleep(0.05)  # the writer now waits GATHER for company
    writer = store._writer
    assert writer is not None and not writer.done()
    writer.cancel()
    async with asyncio.timeout(10):
        with pytest.raises(asyncio.CancelledError):
            await caller
    assert await _count(db) == 1  # nothing half-written
    # The store goes on: a later delivery starts a writer of its own.
    monkeypatch.setattr(group_inbox, "GATHER", 0.0)
    assert await _liked(store, 3)
    assert await _count(db) == 2
