"""One conformance suite for DeliveryStore and InboxStore, run over memory and SQLite alike.

Plus what only the SQLite file can show: data survives a reopen, migrations run once and are
recorded, a failing migration leaves nothing behind, and claims stay disjoint across connections.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from activitypub.memstore import MemoryDeliveryStore, MemoryInboxStore
from activitypub.storage import (
    DELIVERY_TRANSITIONS,
    INBOX_TRANSITIONS,
    DeliveryState,
    DeliveryStore,
    InboxState,
    InboxStore,
    InvalidTransition,
    check_transition,
    inbox_host,
)
from federation.store.delivery import SqliteDeliveryStore
from federation.store.inbox import SqliteInboxStore
from federation.store.migrations import INSTANCE_MIGRATIONS, MIGRATIONS, Migration
from federation.store.sqlite import (
    WAL_SIZE_LIMIT,
    SchemaError,
    applied_versions,
    apply_migrations,
    check_sequence,
    open_database,
    transaction,
)

T0 = 1_700_000_000.0
SENDER = "https://n1.example/users/alice"
BODY = b'{"id":"https://n1.example/a/1","type":"Like"}'


@dataclass
class Stores:
    deliveries: DeliveryStore
    inbox: InboxStore


@pytest.fixture(params=["memory", "sqlite", "sqlite-instance"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    if request.param == "memory":
        yield Stores(MemoryDeliveryStore(), MemoryInboxStore())
        return
    # The instance's schema adds the queue's own indexes (migration 7): same answers, faster.
    migrations = INSTANCE_MIGRATIONS if request.param == "sqlite-instance" else MIGRATIONS
    db = await open_database(tmp_path / "barri.db", migrations=migrations)
    try:
        yield Stores(SqliteDeliveryStore(db), SqliteInboxStore(db))
    finally:
        await db.close()


def _inboxes(n: int, host: str = "n2.example") -> list[str]:
    return [f"https://{host}/users/u{i}/inbox" for i in range(n)]


# --- the state graphs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "states"),
    [(DELIVERY_TRANSITIONS, set(DeliveryState)), (INBOX_TRANSITIONS, set(InboxState))],
)
def test_state_graph_is_well_formed(graph: Mapping[Any, frozenset[Any]], states: set[Any]) -> None:
    start = "new"
    assert set(graph) == states
    assert all(targets <= states for targets in graph.values())
    reachable, frontier = {start}, [start]
    while frontier:
        for nxt in graph[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == states
    terminal = {s for s in states if s != start}
    assert all(graph[s] == frozenset() for s in terminal)


def test_check_transition() -> None:
    check_transition(DELIVERY_TRANSITIONS, DeliveryState.NEW, DeliveryState.SENT)
    check_transition(DELIVERY_TRANSITIONS, DeliveryState.NEW, DeliveryState.NEW)
    with pytest.raises(InvalidTransition):
        check_transition(DELIVERY_TRANSITIONS, DeliveryState.SENT, DeliveryState.NEW)
    with pytest.raises(InvalidTransition):
        check_transition(INBOX_TRANSITIONS, InboxState.FAILED, InboxState.DONE)


def test_inbox_host_normalises() -> None:
    assert inbox_host("https://N2.Example./inbox") == "n2.example"
    assert inbox_host("https://n2.example:443/inbox") == "n2.example"
    assert inbox_host("http://127.0.0.1:8080/inbox") == "127.0.0.1:8080"
    assert inbox_host("https://[::1]:8443/inbox") == "[::1]:8443"
    with pytest.raises(ValueError):
        inbox_host("mailto:someone@n2.example")


# --- deliveries ---------------------------------------------------------------------------------


async def test_enqueue_is_idempotent_per_activity_and_inbox(stores: Stores) -> None:
    q = stores.deliveries
    a, b, c = _inboxes(3)
    assert await q.enqueue("act1", SENDER, BODY, [a, b, a], now=T0) == 2
    assert await q.enqueue("act1", SENDER, BODY, [a, b, c], now=T0 + 1) == 1
    assert await q.enqueue("act2", SENDER, BODY, [a], now=T0 + 2) == 1  # same inbox, new activity
    assert await q.enqueue("act2", SENDER, BODY, [], now=T0 + 3) == 0
    rows = await q.list(activity_id="act1")
    assert [r.inbox for r in rows] == [a, b, c]
    first = rows[0]
    assert (first.state, first.attempts, first.locked_until) == (DeliveryState.NEW, 0, None)
    assert (first.sender, first.body, first.activity_id) == (SENDER, BODY, "act1")
    assert (first.next_attempt_at, first.created_at) == (T0, T0)
    assert (first.last_error, first.last_status) == (None, None)
    assert rows[2].created_at == T0 + 1
    assert len(await q.list()) == 4
    assert await q.get(first.id) == first
    assert await q.get(987654) is None


async def test_enqueue_rejects_a_bad_inbox_and_changes_nothing(stores: Stores) -> None:
    q = stores.deliveries
    with pytest.raises(ValueError):
        await q.enqueue("act1", SENDER, BODY, [*_inboxes(2), "ftp://n2.example/x"], now=T0)
    assert await q.list() == []


async def test_claim_leases_due_rows_in_order(stores: Stores) -> None:
    q = stores.deliveries
    await q.enqueue("late", SENDER, BODY, _inboxes(1, "b.example"), now=T0 + 5)
    await q.enqueue("early", SENDER, BODY, _inboxes(2, "a.example"), now=T0)
    assert await q.claim(now=T0 - 1, limit=10, lease=30) == []  # nothing due yet
    got = await q.claim(now=T0 + 5, limit=2, lease=30)
    assert [d.activity_id for d in got] == ["early", "early"]
    assert all(d.locked_until == T0 + 35 for d in got)
    assert [(await q.get(d.id)) for d in got] == got
    rest = await q.claim(now=T0 + 5, limit=10, lease=30)
    assert [d.activity_id for d in rest] == ["late"]
    assert await q.claim(now=T0 + 6, limit=10, lease=30) == []
    assert await q.claim(now=T0 + 6, limit=0, lease=30) == []


async def test_concurrent_claims_never_share_a_row(stores: Stores) -> None:
    q = stores.deliveries
    for i in range(5):
        await q.enqueue(f"act{i}", SENDER, BODY, _inboxes(6), now=T0)
    batches = await asyncio.gather(*(q.claim(now=T0, limit=7, lease=60) for _ in range(6)))
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == len(set(ids)) == 30
    assert await q.claim(now=T0, limit=100, lease=60) == []


async def test_an_expired_lease_makes_the_row_claimable_again(stores: Stores) -> None:
    q = stores.deliveries
    await q.enqueue("act1", SENDER, BODY, _inboxes(2), now=T0)
    claimed = await q.claim(now=T0, limit=1, lease=10)
    assert len(claimed) == 1
    assert await q.claim(now=T0 + 5, limit=1, lease=10) != claimed
    assert await q.claim(now=T0 + 10, limit=5, lease=10) == []  # lease runs to T0+10 inclusive
    again = await q.claim(now=T0 + 10.5, limit=5, lease=10)
    assert [d.id for d in again] == [claimed[0].id]
    assert again[0].attempts == 0  # a lost lease is not an attempt


async def test_release_and_release_expired_free_leases(stores: Stores) -> None:
    q = stores.deliveries
    await q.enqueue("act1", SENDER, BODY, _inboxes(3), now=T0)
    one, two, three = await q.claim(now=T0, limit=3, lease=10)
    await q.release(one.id)
    assert [d.id for d in await q.claim(now=T0 + 1, limit=5, lease=100)] == [one.id]
    assert await q.release_expired(now=T0 + 10) == 0
    assert await q.release_expired(now=T0 + 11) == 2
    released = await q.get(two.id)
    assert released is not None and released.locked_until is None
    assert (await q.get(one.id)).locked_until == T0 + 101  # type: ignore[union-attr]
    assert {d.id for d in await q.claim(now=T0 + 11, limit=5, lease=10)} == {two.id, three.id}
    with pytest.raises(KeyError):
        await q.release(987654)


async def test_retry_is_scheduled_and_counted(stores: Stores) -> None:
    q = stores.deliveries
    await q.enqueue("act1", SENDER, BODY, _inboxes(1), now=T0)
    (d,) = await q.claim(now=T0, limit=1, lease=30)
    await q.mark_retry(d.id, next_attempt_at=T0 + 60, error="HTTP 503", status=503, now=T0 + 1)
    row = await q.get(d.id)
    assert row is not None
    assert (row.state, row.attempts, row.locked_until) == (DeliveryState.NEW, 1, None)
    assert (row.next_attempt_at, row.last_error, row.last_status) == (T0 + 60, "HTTP 503", 503)
    assert await q.claim(now=T0 + 59, limit=1, lease=30) == []
    assert await q.next_due() == T0 + 60
    (again,) = await q.claim(now=T0 + 60, limit=1, lease=30)
    await q.mark_retry(again.id, next_attempt_at=T0 + 200, error="timeout", status=None, now=T0)
    row = await q.get(d.id)
    assert row is not None and (row.attempts, row.last_status) == (2, None)
    (third,) = await q.claim(now=T0 + 200, limit=1, lease=30)
    await q.mark_sent(third.id, status=202, now=T0 + 201)
    row = await q.get(d.id)
    assert row is not None
    assert (row.state, row.attempts, row.last_status) == (DeliveryState.SENT, 3, 202)
    assert (row.last_error, row.locked_until) == (None, None)


@pytest.mark.parametrize("terminal", ["sent", "gone", "failed"])
async def test_sent_gone_and_failed_are_terminal(stores: Stores, terminal: str) -> None:
    q = stores.deliveries
    await q.enqueue("act1", SENDER, BODY, _inboxes(1), now=T0)
    (d,) = await q.claim(now=T0, limit=1, lease=30)
    if terminal == "sent":
        await q.mark_sent(d.id, status=200, now=T0)
    elif terminal == "gone":
        await q.mark_gone(d.id, error="HTTP 410", status=410, now=T0)
    else:
        await q.mark_failed(d.id, error="HTTP 500", status=500, now=T0)
    before = await q.get(d.id)
    assert before is not None and before.state == terminal and before.attempts == 1
    assert await q.claim(now=T0 + 10**6, limit=5, lease=30) == []
    assert await q.next_due() is None
    with pytest.raises(InvalidTransition):
        await q.mark_retry(d.id, next_attempt_at=T0, error="x", status=None, now=T0)
    with pytest.raises(InvalidTransition):
        await q.mark_sent(d.id, status=200, now=T0)
    with pytest.raises(InvalidTransition):
        await q.mark_gone(d.id, error="x", status=404, now=T0)
    with pytest.raises(InvalidTransition):
        await q.mark_failed(d.id, error="x", status=None, now=T0)
    await q.release(d.id)  # harmless on a finished row
    assert await q.get(d.id) == before
    assert [r.id for r in await q.list(state=DeliveryState(terminal))] == [d.id]
    assert await q.list(state=DeliveryState.NEW) == []


async def test_marks_on_unknown_ids_raise_key_error(stores: Stores) -> None:
    q = stores.deliveries
    with pytest.raises(KeyError):
        await q.mark_sent(987654, status=200, now=T0)
    with pytest.raises(KeyError):
        await q.mark_retry(987654, next_attempt_at=T0, error="x", status=None, now=T0)
    with pytest.raises(KeyError):
        await q.mark_gone(987654, error="x", status=410, now=T0)
    with pytest.raises(KeyError):
        await q.mark_failed(987654, error="x", status=None, now=T0)


async def test_gone_and_failed_keep_error_and_status(stores: Stores) -> None:
    q = stores.deliveries
    await q.enqueue("act1", SENDER, BODY, _inboxes(2), now=T0)
    a, b = await q.claim(now=T0, limit=2, lease=30)
    await q.mark_gone(a.id, error="HTTP 410 Gone", status=410, now=T0)
    await q.mark_failed(b.id, error="ClientConnectorError", status=None, now=T0)
    gone, failed = await q.get(a.id), await q.get(b.id)
    assert gone is not None and failed is not None
    assert (gone.state, gone.last_status, gone.last_error) == ("gone", 410, "HTTP 410 Gone")
    assert (failed.state, failed.last_status) == ("failed", None)
    assert failed.last_error == "ClientConnectorError"


async def test_next_due(stores: Stores) -> None:
    q = stores.deliveries
    assert await q.next_due() is None
    await q.enqueue("act1", SENDER, BODY, _inboxes(1), now=T0 + 50)
    await q.enqueue("act2", SENDER, BODY, _inboxes(1), now=T0 + 20)
    assert await q.next_due() == T0 + 20
    (d,) = await q.claim(now=T0 + 20, limit=1, lease=100)
    assert await q.next_due() == T0 + 50  # the leased row frees up only at T0+120
    (e,) = await q.claim(now=T0 + 50, limit=1, lease=100)
    assert await q.next_due() == T0 + 120  # an abandoned lease is work too
    await q.mark_retry(d.id, next_attempt_at=T0 + 400, error="x", status=None, now=T0)
    assert await q.next_due() == T0 + 150
    await q.mark_sent(e.id, status=202, now=T0)
    assert await q.next_due() == T0 + 400
    await q.mark_failed(d.id, error="x", status=None, now=T0)
    assert await q.next_due() is None


async def test_mark_sent_many_moves_only_new_rows(stores: Stores) -> None:
    q = stores.deliveries
    await q.enqueue("act1", SENDER, BODY, _inboxes(4), now=T0)
    a, b, c, d = await q.claim(now=T0, limit=4, lease=30)
    await q.mark_gone(c.id, error="HTTP 410", status=410, now=T0)
    moved = await q.mark_sent_many([a.id, b.id, c.id, a.id, 987654], status=202, now=T0 + 1)
    assert moved == 2
    rows = {r.id: r for r in await q.list()}
    for row in (rows[a.id], rows[b.id]):
        assert (row.state, row.attempts, row.last_status) == (DeliveryState.SENT, 1, 202)
        assert (row.locked_until, row.last_error) == (None, None)
    assert (rows[c.id].state, rows[c.id].attempts) == (DeliveryState.GONE, 1)  # untouched
    assert (rows[d.id].state, rows[d.id].locked_until) == (DeliveryState.NEW, T0 + 30)
    assert await q.mark_sent_many([], status=202, now=T0) == 0
    assert await q.next_due() == T0 + 30


async def test_next_due_skips_leased_rows_among_many(stores: Stores) -> None:
    q = stores.deliveries
    for i in range(30):
        await q.enqueue(f"act{i}", SENDER, BODY, _inboxes(1), now=T0 + i)
    leased = await q.claim(now=T0 + 9, limit=10, lease=1000)
    assert len(leased) == 10
    assert await q.next_due() == T0 + 10  # the earliest row not leased
    for row in leased[:5]:
        await q.release(row.id)
    assert await q.next_due() == T0
    rest = await q.claim(now=T0 + 29, limit=100, lease=5)
    assert len(rest) == 25
    assert await q.next_due() == T0 + 34  # every row leased: the first lease to run out


async def test_claim_skips_excluded_hosts(stores: Stores) -> None:
    q = stores.deliveries
    await q.enqueue("act1", SENDER, BODY, ["https://A.Example/inbox"], now=T0)
    await q.enqueue("act1", SENDER, BODY, ["https://b.example:8443/inbox"], now=T0)
    await q.enqueue("act1", SENDER, BODY, ["http://127.0.0.1:9/inbox"], now=T0)
    got = await q.claim(now=T0, limit=10, lease=5, exclude_hosts={"a.example", "127.0.0.1:9"})
    assert [d.inbox for d in got] == ["https://b.example:8443/inbox"]
    got = await q.claim(now=T0, limit=10, lease=5, exclude_hosts=["127.0.0.1:9"])
    assert [d.inbox for d in got] == ["https://A.Example/inbox"]
    got = await q.claim(now=T0, limit=10, lease=5)
    assert [d.inbox for d in got] == ["http://127.0.0.1:9/inbox"]


async def test_claim_takes_each_hosts_oldest_rows_up_to_per_host(stores: Stores) -> None:
    q = stores.deliveries
    for i in range(10):  # a long backlog for one host, queued first
        await q.enqueue(f"a{i}", SENDER, BODY, _inboxes(1, "a.example"), now=T0 + i)
    await q.enqueue("b0", SENDER, BODY, _inboxes(2, "b.example"), now=T0 + 20)
    await q.enqueue("c0", SENDER, BODY, _inboxes(1, "c.example"), now=T0 + 30)
    got = await q.claim(now=T0 + 30, limit=5, lease=60, per_host=2)
    # a's two oldest, then b's two, then c's one: the oldest of each host's first two.
    assert [d.activity_id for d in got] == ["a0", "a1", "b0", "b0", "c0"]
    got = await q.claim(now=T0 + 30, limit=4, lease=60, per_host=3)
    assert [d.activity_id for d in got] == ["a2", "a3", "a4"]  # b and c have nothing left
    got = await q.claim(now=T0 + 30, limit=2, lease=60)  # no cap: the oldest rows overall
    assert [d.activity_id for d in got] == ["a5", "a6"]
    assert await q.claim(now=T0 + 30, limit=5, lease=60, per_host=0) == []


async def test_claim_finds_every_host_past_leased_late_and_excluded_rows(stores: Stores) -> None:
    q = stores.deliveries
    hosts = [f"h{i:02}.example" for i in range(30)]
    for n, host in enumerate(hosts):
        await q.enqueue(f"x{n}", SENDER, BODY, _inboxes(3, host), now=T0 + n)
    leased = await q.claim(now=T0 + 100, limit=30, lease=1000, per_host=1)
    assert sorted(inbox_host(d.inbox) for d in leased) == hosts  # one from each host
    first = {d.inbox for d in leased}
    for row in leased[::2]:  # half of them fail and wait for their retry
        await q.mark_retry(row.id, next_attempt_at=T0 + 10_000, error="x", status=503, now=T0)
    got = await q.claim(now=T0 + 100, limit=100, lease=60, exclude_hosts=hosts[:10], per_host=5)
    assert {inbox_host(d.inbox) for d in got} == set(hosts[10:])
    assert len(got) == 40  # two rows each for 20 hosts: the leased and retried ones stay
    assert not first & {d.inbox for d in got}
    assert [d.next_attempt_at for d in got] == sorted(d.next_attempt_at for d in got)


async def test_list_filters(stores: Stores) -> None:
    q = stores.deliveries
    await q.enqueue("act1", SENDER, BODY, _inboxes(2), now=T0)
    await q.enqueue("act2", SENDER, BODY, _inboxes(1), now=T0)
    (d,) = await q.claim(now=T0, limit=1, lease=5)
    await q.mark_sent(d.id, status=201, now=T0)
    assert len(await q.list(activity_id="act1")) == 2
    assert [r.id for r in await q.list(state=DeliveryState.SENT)] == [d.id]
    assert len(await q.list(activity_id="act1", state=DeliveryState.NEW)) == 1
    assert len(await q.list(activity_id="act2", state=DeliveryState.NEW)) == 1
    assert await q.list(activity_id="nope") == []


async def test_rows_of_one_activity_share_its_body_and_send_its_exact_bytes(
    stores: Stores,
) -> None:
    q = stores.deliveries
    big = b'{"type":"Announce","pad":"' + bytes(range(32, 127)) * 150 + b'","n":"\xc3\xa9"}'
    other = b'{"type":"Like"}'
    followers = [u for h in range(37) for u in _inboxes(2, f"h{h}.example")]  # 74 inboxes
    assert await q.enqueue("announce", SENDER, big, followers, now=T0) == 74
    assert await q.enqueue("like", SENDER, other, followers[:3], now=T0) == 3
    # A later enqueue of the same activity adds rows, and they send the body stored first.
    late = _inboxes(1, "late.example")
    assert await q.enqueue("announce", SENDER, b"{}", [*followers[:5], *late], now=T0 + 1) == 1
    claimed = await q.claim(now=T0 + 1, limit=100, lease=60)
    assert len(claimed) == 78
    assert {d.inbox for d in claimed if d.activity_id == "announce"} == {*followers, *late}
    assert all(d.body == big for d in claimed if d.activity_id == "announce")
    assert [d.body for d in claimed if d.activity_id == "like"] == [other] * 3
    await q.mark_sent_many([d.id for d in claimed[:10]], status=202, now=T0 + 2)
    assert all(d.body == big for d in await q.list(activity_id="announce"))
    assert {d.body for d in await q.list(state=DeliveryState.SENT)} <= {big, other}


async def test_pending_rows_keep_their_body_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "barri.db"
    body = json.dumps({"type": "Announce", "content": "é" * 5000}, ensure_ascii=False).encode()
    db = await open_database(path, migrations=INSTANCE_MIGRATIONS)
    q = SqliteDeliveryStore(db)
    await q.enqueue("announce", SENDER, body, _inboxes(74), now=T0)
    first = await q.claim(now=T0, limit=30, lease=600)
    await q.mark_sent_many([d.id for d in first[:20]], status=202, now=T0)
    await db.close()  # 10 rows still leased, 44 never claimed
    db = await open_database(path, migrations=INSTANCE_MIGRATIONS)
    try:
        q = SqliteDeliveryStore(db)
        rest = await q.claim(now=T0 + 601, limit=100, lease=60)
        assert len(rest) == 54 and all(d.body == body for d in rest)
        stored = list(await db.execute_fetchall("SELECT activity_id, body FROM delivery_bodies"))
        assert [(r[0], bytes(r[1])) for r in stored] == [("announce", body)]  # once, not 74 times
    finally:
        await db.close()


# --- inbox ----------------------------------------------------------------------------------------

ACT = {"id": "https://n1.example/a/1", "type": "Like", "actor": SENDER, "object": "x", "n": "é"}


async def test_inbox_dedupes_on_the_inbox_activity_pair(stores: Stores) -> None:
    box = stores.inbox
    shared, personal = "https://agg.example/inbox", "https://agg.example/users/bob/inbox"
    assert await box.record(shared, ACT["id"], SENDER, ACT, auth="httpsig", now=T0) is True
    assert await box.record(personal, ACT["id"], SENDER, ACT, auth="proof", now=T0) is True
    assert await box.record(shared, ACT["id"], SENDER, ACT, auth="httpsig", now=T0 + 1) is False
    assert await box.record(shared, "https://n1.example/a/2", SENDER, ACT, auth="proof", now=T0)
    recs = await box.claim(now=T0, limit=10, lease=30)
    assert [(r.inbox, r.auth) for r in recs] == [
        (shared, "httpsig"),
        (personal, "proof"),
        (shared, "proof"),
    ]
    first = recs[0]
    assert first.activity == ACT and first.activity is not ACT
    assert (first.activity_id, first.actor, first.state) == (ACT["id"], SENDER, InboxState.NEW)
    assert (first.attempts, first.error, first.received_at) == (0, None, T0)
    assert first.locked_until == T0 + 30
    with pytest.raises(ValueError):
        await box.record(shared, "https://n1.example/a/3", SENDER, ACT, auth="none", now=T0)


async def test_inbox_claim_mark_done_and_failed(stores: Stores) -> None:
    box = stores.inbox
    for i in range(3):
        await box.record("https://agg.example/inbox", f"a{i}", SENDER, ACT, auth="proof", now=T0)
    one, two, three = await box.claim(now=T0, limit=3, lease=30)
    assert await box.claim(now=T0 + 1, limit=3, lease=30) == []
    await box.mark_done(one.id)
    await box.mark_failed(two.id, "KeyError('x')", retry_at=T0 + 100, now=T0 + 1)
    await box.mark_failed(three.id, "gave up", retry_at=None, now=T0 + 1)
    done, retry, failed = [await box.get(r.id) for r in (one, two, three)]
    assert done is not None and (done.state, done.attempts) == (InboxState.DONE, 1)
    assert retry is not None and (retry.state, retry.attempts) == (InboxState.NEW, 1)
    assert (retry.error, retry.next_attempt_at, retry.locked_until) == (
        "KeyError('x')",
        T0 + 100,
        None,
    )
    assert failed is not None and (failed.state, failed.error) == (InboxState.FAILED, "gave up")
    assert await box.claim(now=T0 + 99, limit=5, lease=30) == []
    (back,) = await box.claim(now=T0 + 100, limit=5, lease=30)
    assert back.id == two.id and back.attempts == 1
    await box.mark_done(back.id)
    assert await box.claim(now=T0 + 10**6, limit=5, lease=30) == []
    for rec in (one, three):
        with pytest.raises(InvalidTransition):
            await box.mark_done(rec.id)
        with pytest.raises(InvalidTransition):
            await box.mark_failed(rec.id, "x", retry_at=T0, now=T0)
    with pytest.raises(KeyError):
        await box.mark_done(987654)
    with pytest.raises(KeyError):
        await box.mark_failed(987654, "x", retry_at=None, now=T0)
    assert await box.get(987654) is None


async def test_inbox_concurrent_claims_and_lease_expiry(stores: Stores) -> None:
    box = stores.inbox
    for i in range(12):
        await box.record("https://agg.example/inbox", f"a{i}", SENDER, ACT, auth="proof", now=T0)
    batches = await asyncio.gather(*(box.claim(now=T0, limit=5, lease=10) for _ in range(4)))
    ids = [r.id for batch in batches for r in batch]
    assert len(ids) == len(set(ids)) == 12
    assert await box.claim(now=T0 + 10, limit=20, lease=10) == []
    assert len(await box.claim(now=T0 + 10.5, limit=20, lease=10)) == 12


# --- SQLite only: the file, its pragmas and its migrations ------------------------------------


async def test_pragmas_are_set(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "p.db", busy_timeout=2.5)
    try:

        async def pragma(name: str) -> object:
            rows = list(await db.execute_fetchall(f"PRAGMA {name}"))
            return rows[0][0]

        assert await pragma("journal_mode") == "wal"
        assert await pragma("foreign_keys") == 1
        assert await pragma("synchronous") == 1  # NORMAL
        assert await pragma("busy_timeout") == 2500
        assert await pragma("journal_size_limit") == WAL_SIZE_LIMIT  # a WAL shrinks back
    finally:
        await db.close()


async def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "barri.db"
    db = await open_database(path)
    q, box = SqliteDeliveryStore(db), SqliteInboxStore(db)
    await q.enqueue("act1", SENDER, BODY, _inboxes(2), now=T0)
    (d, _) = await q.claim(now=T0, limit=2, lease=30)
    await q.mark_retry(d.id, next_attempt_at=T0 + 90, error="HTTP 502", status=502, now=T0)
    await box.record("https://agg.example/inbox", ACT["id"], SENDER, ACT, auth="proof", now=T0)
    before, before_inbox = await q.list(), await box.claim(now=T0, limit=5, lease=1)
    await db.close()

    db = await open_database(path)
    try:
        q, box = SqliteDeliveryStore(db), SqliteInboxStore(db)
        assert await q.list() == before
        assert (await q.get(d.id)).last_error == "HTTP 502"  # type: ignore[union-attr]
        again = await box.claim(now=T0 + 2, limit=5, lease=1)
        assert [r.activity for r in again] == [r.activity for r in before_inbox] == [ACT]
        assert await box.record("https://agg.example/inbox", ACT["id"], SENDER, ACT,
                                auth="proof", now=T0) is False  # fmt: skip
    finally:
        await db.close()


async def test_migrations_are_applied_once_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "barri.db"
    check_sequence(MIGRATIONS)
    db = await open_database(path)
    try:
        assert await applied_versions(db) == [m.version for m in MIGRATIONS]
        recorded = list(
            await db.execute_fetchall("SELECT version, name, applied_at FROM schema_migrations")
        )
        assert [(r[0], r[1]) for r in recorded] == [(m.version, m.name) for m in MIGRATIONS]
        assert await apply_migrations(db, MIGRATIONS) == []
    finally:
        await db.close()
    db = await open_database(path)  # would fail with "table deliveries already exists" if re-run
    try:
        again = list(
            await db.execute_fetchall("SELECT version, name, applied_at FROM schema_migrations")
        )
        assert again == recorded
    finally:
        await db.close()


async def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "barri.db"
    broken = (
        *MIGRATIONS,
        Migration(len(MIGRATIONS) + 1, "broken", ("CREATE TABLE t2 (x)", "NOT SQL")),
    )
    with pytest.raises(sqlite3.OperationalError):
        await open_database(path, migrations=broken)
    db = await open_database(path)
    try:
        assert await applied_versions(db) == [m.version for m in MIGRATIONS]
        tables = {r[0] for r in await db.execute_fetchall("SELECT name FROM sqlite_master")}
        assert "t2" not in tables and "deliveries" in tables
    finally:
        await db.close()


async def test_a_newer_schema_is_refused_and_gaps_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "barri.db"
    newer = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "future", ("CREATE TABLE t3 (x)",)))
    db = await open_database(path, migrations=newer)
    await db.close()
    with pytest.raises(SchemaError):
        await open_database(path)
    with pytest.raises(ValueError):
        check_sequence((Migration(1, "a", ()), Migration(3, "c", ())))
    with pytest.raises(ValueError):
        check_sequence((Migration(2, "b", ()),))


async def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "barri.db")
    try:
        q = SqliteDeliveryStore(db)
        with pytest.raises(RuntimeError):
            async with transaction(db):
                await db.execute(
                    "INSERT INTO delivery_bodies (activity_id, body, created_at)"
                    " VALUES ('a', x'00', 0)"
                )
                await db.execute(
                    "INSERT INTO deliveries (activity_id, inbox, host, sender,"
                    " next_attempt_at, created_at, updated_at) VALUES ('a', 'i', 'h', 's',"
                    " 0, 0, 0)"
                )
                raise RuntimeError("boom")
        assert await q.list() == []
        for table in ("deliveries", "delivery_bodies"):
            assert list(await db.execute_fetchall(f"SELECT * FROM {table}")) == []
        assert not db.in_transaction
        assert await q.enqueue("act1", SENDER, BODY, _inboxes(1), now=T0) == 1  # still usable
    finally:
        await db.close()


async def test_claims_from_two_connections_never_share_a_row(tmp_path: Path) -> None:
    """Two connections to one file stand in for two worker processes."""
    path = tmp_path / "barri.db"
    dbs: list[aiosqlite.Connection] = [await open_database(path), await open_database(path)]
    try:
        first, second = SqliteDeliveryStore(dbs[0]), SqliteDeliveryStore(dbs[1])
        for i in range(10):
            await first.enqueue(f"act{i}", SENDER, BODY, _inboxes(4), now=T0)
        batches = await asyncio.gather(
            *(store.claim(now=T0, limit=3, lease=60) for store in (first, second) * 8)
        )
        ids = [d.id for batch in batches for d in batch]
        assert len(ids) == len(set(ids)) == 40
    finally:
        for db in dbs:
            await db.close()
