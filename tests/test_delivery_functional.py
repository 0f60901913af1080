"""The delivery worker against real aiohttp inboxes on 127.0.0.1 and a real SQLite file.

The sender here is a plain unsigned POST; the signed path is tested with httpsig. Retry delays
are made tiny with ``retry_base``; no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from activitypub.backoff import CircuitBreaker
from activitypub.delivery import DeliveryWorker, InboxTarget, Sender, recipients_to_inboxes
from activitypub.memstore import MemoryDeliveryStore
from activitypub.storage import Delivery, DeliveryId, DeliveryState, DeliveryStore
from federation.store.delivery import SqliteDeliveryStore
from federation.store.sqlite import open_database

ServerFactory = Callable[..., Awaitable[TestServer]]
SENDER = "https://n1.example/users/alice"


def _body(activity_id: str) -> bytes:
    return json.dumps({"id": activity_id, "type": "Create", "actor": SENDER}).encode()


class FakeInbox:
    """An inbox that answers from a script, and records what it saw and how many at once."""

    def __init__(
        self, script: list[int] | None = None, default: int = 202, journal: list[str] | None = None
    ) -> None:
        self.script, self.default = list(script or []), default
        self.requests: list[bytes] = []
        self.accepted: list[str] = []
        self.journal = journal  # shared by several inboxes: the order of all they accepted
        self.current = self.peak = 0
        self.hang = False
        self.release = asyncio.Event()
        self.hold_until: int | None = None  # hold each request until this many are in flight
        self._full = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(body)
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            if self.hang:
                await self.release.wait()
                return web.Response(status=503)
            await self._hold()
            status = self.script.pop(0) if self.script else self.default
            if 200 <= status < 300:
                self.accepted.append(json.loads(body)["id"])
                if self.journal is not None:
                    self.journal.append(json.loads(body)["id"])
            return web.Response(status=status)
        finally:
            self.current -= 1

    async def _hold(self) -> None:
        if self.hold_until is None:
            return
        if self.current >= self.hold_until:
            self._full.set()
        try:
            await asyncio.wait_for(self._full.wait(), timeout=0.5)
        except TimeoutError:
            pass  # a sequential sender never fills the host; the peak count then shows it
        if self.current <= 1:
            self._full.clear()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        return app


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


def post_sender(session: aiohttp.ClientSession) -> Sender:
    async def send(delivery: Delivery) -> int:
        headers = {"Content-Type": "application/activity+json"}
        async with session.post(delivery.inbox, data=delivery.body, headers=headers) as resp:
            await resp.read()
            return resp.status

    return send


async def _sqlite_store(path: Path) -> tuple[SqliteDeliveryStore, Callable[[], Awaitable[None]]]:
    db = await open_database(path)
    return SqliteDeliveryStore(db), db.close


def _worker(store: DeliveryStore, sender: Sender, **kw: object) -> DeliveryWorker:
    options: dict[str, object] = {"retry_base": 0.01, "rand": lambda: 0.5, **kw}
    return DeliveryWorker(store, sender, **options)  # type: ignore[arg-type]


async def _enqueue(store: DeliveryStore, activity_id: str, inbox: str) -> int:
    return await store.enqueue(activity_id, SENDER, _body(activity_id), [inbox], now=time.time())


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll a condition another party changes (the worker, a server) for up to ten seconds."""
    async with asyncio.timeout(10):
        while not await check():  # noqa: ASYNC110 (the condition lives in the store)
            await asyncio.sleep(0.01)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed: nothing listens there until the test starts a server on it


# --- shared inbox collapse ----------------------------------------------------------------------


def test_recipients_collapse_to_shared_inboxes() -> None:
    shared = "https://n2.example/inbox"
    targets = [
        InboxTarget("https://n2.example/users/a/inbox", shared),
        InboxTarget("https://n2.example/users/b/inbox", shared),
        InboxTarget("https://n3.example/users/c/inbox"),
        InboxTarget("https://n3.example/users/c/inbox"),
        InboxTarget("https://n4.example/users/d/inbox", None),
        InboxTarget("https://n2.example/users/e/inbox", shared),
    ]
    assert recipients_to_inboxes(targets) == [
        shared,
        "https://n3.example/users/c/inbox",
        "https://n4.example/users/d/inbox",
    ]
    assert recipients_to_inboxes([]) == []


# --- outcomes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
async def test_500_twice_then_202_is_delivered_exactly_once(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path, backend: str
) -> None:
    inbox = FakeInbox(script=[500, 500])
    server = await aiohttp_server(inbox.app())
    url = str(server.make_url("/users/bob/inbox"))
    store: DeliveryStore
    if backend == "sqlite":
        store, close = await _sqlite_store(tmp_path / "barri.db")
    else:
        store, close = MemoryDeliveryStore(), _nothing
    worker = _worker(store, post_sender(session))
    await worker.start()
    try:
        assert await _enqueue(store, "https://n1.example/a/1", url) == 1
        worker.wake()
        await worker.run_until_idle(timeout=20)
        (row,) = await store.list()
    finally:
        await worker.stop()
        await close()
    assert len(inbox.requests) == 3
    assert inbox.requests[-1] == _body("https://n1.example/a/1")  # the stored bytes, unchanged
    assert inbox.accepted == ["https://n1.example/a/1"]
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("sent", 3, 202, None)


async def _nothing() -> None:
    return None


@pytest.mark.parametrize("status", [401, 408, 429, 502, 503])
async def test_transient_statuses_are_retried(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path, status: int
) -> None:
    inbox = FakeInbox(script=[status])
    server = await aiohttp_server(inbox.app())
    store, close = await _sqlite_store(tmp_path / "barri.db")
    worker = _worker(store, post_sender(session))
    await worker.start()
    try:
        await _enqueue(store, "act", str(server.make_url("/inbox")))
        worker.wake()
        await worker.run_until_idle(timeout=20)
        (row,) = await store.list()
    finally:
        await worker.stop()
        await close()
    assert len(inbox.requests) == 2 and inbox.accepted == ["act"]
    assert (row.state, row.attempts) == (DeliveryState.SENT, 2)


@pytest.mark.parametrize("status", [410, 404, 400, 403, 501])
async def test_permanent_statuses_are_gone_without_retry(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path, status: int
) -> None:
    inbox = FakeInbox(default=status)
    server = await aiohttp_server(inbox.app())
    store, close = await _sqlite_store(tmp_path / "barri.db")
    worker = _worker(store, post_sender(session))
    await worker.start()
    try:
        await _enqueue(store, "act", str(server.make_url("/inbox")))
        worker.wake()
        await worker.run_until_idle(timeout=20)
        (row,) = await store.list()
    finally:
        await worker.stop()
        await close()
    assert len(inbox.requests) == 1 and inbox.accepted == []
    assert (row.state, row.attempts, row.last_status) == (DeliveryState.GONE, 1, status)
    assert row.last_error == f"HTTP {status}"


async def test_retries_exhausted_is_failed(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    inbox = FakeInbox(default=503)
    server = await aiohttp_server(inbox.app())
    store, close = await _sqlite_store(tmp_path / "barri.db")
    worker = _worker(store, post_sender(session), max_attempts=3)
    await worker.start()
    try:
        await _enqueue(store, "act", str(server.make_url("/inbox")))
        worker.wake()
        await worker.run_until_idle(timeout=20)
        (row,) = await store.list()
    finally:
        await worker.stop()
        await close()
    assert len(inbox.requests) == 3
    assert (row.state, row.attempts, row.last_status) == (DeliveryState.FAILED, 3, 503)


async def test_a_sender_bug_is_retried_not_lost(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    inbox = FakeInbox()
    server = await aiohttp_server(inbox.app())
    post, calls = post_sender(session), []

    async def flaky(delivery: Delivery) -> int:
        calls.append(delivery.id)
        if len(calls) == 1:
            raise KeyError("no signing key yet")
        return await post(delivery)

    store = MemoryDeliveryStore()
    worker = _worker(store, flaky)
    await worker.start()
    try:
        await _enqueue(store, "act", str(server.make_url("/inbox")))
        worker.wake()
        await worker.run_until_idle(timeout=20)
    finally:
        await worker.stop()
    (row,) = await store.list()
    assert len(calls) == 2 and inbox.accepted == ["act"]
    assert (row.state, row.attempts) == (DeliveryState.SENT, 2)


# --- restarts -------------------------------------------------------------------------------------


async def test_restart_after_the_inbox_was_down_delivers_everything_once(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path, port = tmp_path / "barri.db", _unused_port()
    urls = [f"http://127.0.0.1:{port}/inbox", f"http://127.0.0.1:{port}/users/bob/inbox"]
    ids = [f"https://n1.example/a/{i}" for i in range(3)]

    store, close = await _sqlite_store(path)
    worker = _worker(store, post_sender(session), retry_base=0.05)
    await worker.start()
    for activity_id in ids:
        await store.enqueue(activity_id, SENDER, _body(activity_id), urls, now=time.time())
    worker.wake()

    async def all_tried() -> bool:
        return all(r.attempts >= 1 for r in await store.list())

    await _eventually(all_tried)
    await worker.stop()  # deliveries still pending
    pending = await store.list(state=DeliveryState.NEW)
    await close()
    assert len(pending) == 6
    assert all(r.last_status is None and "Connect" in (r.last_error or "") for r in pending)

    inbox = FakeInbox()
    await aiohttp_server(inbox.app(), port=port)  # the inbox is back, same address
    store, close = await _sqlite_store(path)  # a new process: new connection, store and worker
    worker = _worker(store, post_sender(session))
    await worker.start()
    try:
        await worker.run_until_idle(timeout=20)
        rows = await store.list()
    finally:
        await worker.stop()
        await close()
    assert sorted(inbox.accepted) == sorted(ids * 2)
    assert len(inbox.requests) == 6
    assert all(r.state is DeliveryState.SENT and r.attempts >= 2 for r in rows)


async def test_stopping_mid_send_releases_rows_for_the_next_process(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "barri.db"
    inbox = FakeInbox()
    inbox.hang = True
    server = await aiohttp_server(inbox.app())
    url = str(server.make_url("/inbox"))
    try:
        store, close = await _sqlite_store(path)
        worker = _worker(store, post_sender(session), lease=3600)
        await worker.start()
        for activity_id in ("a1", "a2"):
            await store.enqueue(activity_id, SENDER, _body(activity_id), [url], now=time.time())
        worker.wake()

        async def both_in_flight() -> bool:
            return inbox.current == 2

        await _eventually(both_in_flight)
        await worker.stop(grace=0.05)  # the inbox hangs: cancel the sends
        rows = await store.list()
        await close()
        # Released, not counted: with an hour-long lease a new process could not claim them.
        assert [(r.state, r.attempts, r.locked_until) for r in rows] == [("new", 0, None)] * 2

        inbox.hang = False
        store, close = await _sqlite_store(path)
        worker = _worker(store, post_sender(session))
        await worker.start()
        try:
            worker.wake()
            await worker.run_until_idle(timeout=20)
            rows = await store.list()
        finally:
            await worker.stop()
            await close()
    finally:
        inbox.release.set()  # let the abandoned handlers end
    assert sorted(inbox.accepted) == ["a1", "a2"]
    assert [(r.state, r.attempts) for r in rows] == [(DeliveryState.SENT, 1)] * 2


# --- waking and limits ----------------------------------------------------------------------------


class WatchedStore(SqliteDeliveryStore):
    """Signals each time the worker asks for the next due time, i.e. is about to sleep."""

    sleeping: asyncio.Event

    async def next_due(self) -> float | None:
        due = await super().next_due()
        self.sleeping.set()
        return due


async def test_worker_wakes_on_enqueue(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    inbox = FakeInbox()
    server = await aiohttp_server(inbox.app())
    db = await open_database(tmp_path / "barri.db")
    store = WatchedStore(db)
    store.sleeping = asyncio.Event()
    worker = _worker(store, post_sender(session), poll_interval=3600)  # no poll will come
    await worker.start()
    try:
        await store.sleeping.wait()  # the queue was empty: the worker now sleeps for an hour
        await _enqueue(store, "act", str(server.make_url("/inbox")))
        worker.wake()
        await worker.run_until_idle(timeout=20)  # would time out without the wake
        (row,) = await store.list()
    finally:
        await worker.stop()
        await db.close()
    assert inbox.accepted == ["act"] and row.state is DeliveryState.SENT


async def test_concurrency_is_bounded_overall_and_per_host(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    hosts = [FakeInbox(), FakeInbox()]
    for inbox in hosts:
        inbox.hold_until = 2
    servers = [await aiohttp_server(inbox.app()) for inbox in hosts]
    in_flight = peak = 0
    post = post_sender(session)

    async def counting(delivery: Delivery) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await post(delivery)
        finally:
            in_flight -= 1

    store, close = await _sqlite_store(tmp_path / "barri.db")
    worker = _worker(store, counting, concurrency=3, per_host=2)
    await worker.start()
    try:
        # One host's rows first: a claim that ignored the per-host cap would take three of them.
        for server in servers:
            for i in range(8):
                await _enqueue(store, f"act{i}", str(server.make_url(f"/users/u{i}/inbox")))
        worker.wake()
        await worker.run_until_idle(timeout=30)
        rows = await store.list()
    finally:
        await worker.stop()
        await close()
    assert all(r.state is DeliveryState.SENT for r in rows) and len(rows) == 16
    for inbox in hosts:
        assert sorted(inbox.accepted) == sorted(f"act{i}" for i in range(8))
    assert max(inbox.peak for inbox in hosts) == 2  # the per-host bound, reached and held
    assert 2 <= peak <= 3  # the overall bound


class CountingStore(SqliteDeliveryStore):
    """Counts the claims and the writes of outcomes the worker makes."""

    claims: list[int]
    sent_batches: list[int]
    single_marks: int

    async def claim(self, **kw: Any) -> list[Delivery]:
        rows = await super().claim(**kw)
        self.claims.append(len(rows))
        return rows

    async def mark_sent_many(self, delivery_ids: Sequence[DeliveryId], **kw: Any) -> int:
        self.sent_batches.append(len(delivery_ids))
        return await super().mark_sent_many(delivery_ids, **kw)

    async def mark_sent(self, delivery_id: DeliveryId, **kw: Any) -> None:
        self.single_marks += 1
        await super().mark_sent(delivery_id, **kw)


async def test_rows_are_claimed_ahead_and_answers_written_in_batches(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    inbox = FakeInbox()
    url = str((await aiohttp_server(inbox.app())).make_url("/inbox"))
    db = await open_database(tmp_path / "barri.db")
    store = CountingStore(db)
    store.claims, store.sent_batches, store.single_marks = [], [], 0
    ids = [f"act{i}" for i in range(40)]
    for activity_id in ids:
        await _enqueue(store, activity_id, url)
    worker = _worker(store, post_sender(session), concurrency=4, per_host=2)
    await worker.start()
    try:
        await worker.run_until_idle(timeout=30)
        rows = await store.list()
    finally:
        await worker.stop()
        await db.close()
    assert sorted(inbox.accepted) == sorted(ids) and len(inbox.requests) == 40
    assert [(r.state, r.attempts, r.locked_until) for r in rows] == [("sent", 1, None)] * 40
    # A claim leases rows for sends to come (at least four at a time here), not one per slot.
    assert sum(store.claims) == 40 and len([n for n in store.claims if n]) <= 10
    assert sum(store.sent_batches) == 40 and store.single_marks == 0


async def test_rows_waiting_for_a_slot_are_released_on_stop(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    inbox = FakeInbox()
    inbox.hang = True
    url = str((await aiohttp_server(inbox.app())).make_url("/inbox"))
    store, close = await _sqlite_store(tmp_path / "barri.db")
    worker = _worker(store, post_sender(session), per_host=1, lease=3600)
    try:
        for activity_id in ("a1", "a2", "a3"):
            await _enqueue(store, activity_id, url)
        await worker.start()

        async def one_in_flight() -> bool:
            return inbox.current == 1

        await _eventually(one_in_flight)
        await worker.stop(grace=0.05)
        rows = await store.list()
        await close()
    finally:
        inbox.release.set()
    # One send was cancelled, two rows waited for its slot: all three are free and uncounted.
    assert [(r.state, r.attempts, r.locked_until) for r in rows] == [("new", 0, None)] * 3
    assert len(inbox.requests) == 1


async def test_hosts_with_an_open_breaker_are_not_claimed(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    down, up = FakeInbox(default=503), FakeInbox()
    down_url = str((await aiohttp_server(down.app())).make_url("/inbox"))
    up_url = str((await aiohttp_server(up.app())).make_url("/inbox"))
    store, close = await _sqlite_store(tmp_path / "barri.db")
    breaker = CircuitBreaker(threshold=1, cool_off=3600.0)
    worker = _worker(store, post_sender(session), per_host=1, breaker=breaker)
    await worker.start()
    try:
        for i in range(3):
            await store.enqueue(f"d{i}", SENDER, _body(f"d{i}"), [down_url], now=time.time())
            await store.enqueue(f"u{i}", SENDER, _body(f"u{i}"), [up_url], now=time.time())
        worker.wake()

        async def up_done() -> bool:
            return len(up.accepted) == 3

        await _eventually(up_done)
        await worker.stop()
        down_rows = [r for r in await store.list() if r.inbox == down_url]
    finally:
        await close()
    assert len(down.requests) == 1  # one failure opened the circuit; nothing more was sent
    assert [r.state for r in down_rows] == [DeliveryState.NEW] * 3
    assert sorted(r.attempts for r in down_rows) == [0, 0, 1]


async def test_hosts_take_turns_for_the_free_slots(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    journal: list[str] = []
    a, b = FakeInbox(journal=journal), FakeInbox(journal=journal)
    a_url = str((await aiohttp_server(a.app())).make_url("/inbox"))
    b_url = str((await aiohttp_server(b.app())).make_url("/inbox"))
    store, close = await _sqlite_store(tmp_path / "barri.db")
    try:
        for i in range(6):  # a's backlog is older than anything b has
            await _enqueue(store, f"a{i}", a_url)
        for i in range(6):
            await _enqueue(store, f"b{i}", b_url)
        worker = _worker(store, post_sender(session), concurrency=1, per_host=1)
        await worker.start()
        await worker.run_until_idle(timeout=10)
        await worker.stop()
    finally:
        await close()
    hosts = [activity[0] for activity in journal]
    # One slot: b is served in turn with a's backlog instead of after all of it.
    assert hosts == ["a", "b"] * 6
    assert [x for x in journal if x[0] == "a"] == [f"a{i}" for i in range(6)]  # each in order


async def test_run_until_idle_needs_a_started_worker() -> None:
    worker = DeliveryWorker(MemoryDeliveryStore(), post_sender_unused)
    with pytest.raises(RuntimeError):
        await worker.run_until_idle(timeout=1)
    with pytest.raises(ValueError):
        DeliveryWorker(MemoryDeliveryStore(), post_sender_unused, per_host=0)


async def post_sender_unused(delivery: Delivery) -> int:
    raise AssertionError("not called")
