"""The inbox processor handles recorded rows in batches, each inside the dispatcher's scopes.

A row is done only once its own handler and its batch's scope both finished; a failed handler
retries that row alone, a failed scope (the batch's shared write) retries every row of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import pytest

from activitypub.dispatch import BatchDoneStore, InboxDispatcher, InboxProcessor
from activitypub.memstore import MemoryInboxStore
from activitypub.storage import InboxRecord, InboxState, RecordId

T0 = 1_700_000_000.0
INBOX = "https://agg.example/inbox"
ACTOR = "https://n1.example/users/anna"


def _like(n: int) -> dict[str, str]:
    return {"id": f"https://n1.example/likes/{n}", "type": "Like", "actor": ACTOR}


async def _recorded(store: MemoryInboxStore, count: int) -> None:
    for n in range(count):
        like = _like(n)
        assert await store.record(INBOX, like["id"], ACTOR, like, auth="proof", now=T0)


class CountingStore(MemoryInboxStore):
    """The memory store, plus the batched ``mark_done_many``, counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[RecordId]] = []

    async def mark_done_many(self, record_ids: Sequence[RecordId]) -> None:
        self.batches.append(list(record_ids))
        for record_id in record_ids:
            await self.mark_done(record_id)


def _processor(store: MemoryInboxStore, dispatcher: InboxDispatcher, batch: int) -> InboxProcessor:
    return InboxProcessor(store, dispatcher, batch=batch, clock=lambda: T0)


async def _states(store: MemoryInboxStore, count: int) -> list[tuple[InboxState, int]]:
    found = []
    for record_id in range(1, count + 1):
        record = await store.get(record_id)
        assert record is not None
        found.append((record.state, record.attempts))
    return found


async def test_rows_are_handled_inside_one_scope_per_batch() -> None:
    store, dispatcher = CountingStore(), InboxDispatcher()
    events: list[str] = []

    @dispatcher.on("Like")
    async def handle(record: InboxRecord) -> None:
        events.append(f"like {record.id}")

    @dispatcher.around_batch
    @asynccontextmanager
    async def scope() -> AsyncIterator[None]:
        events.append("open")
        yield
        events.append("close")

    await _recorded(store, 5)
    assert isinstance(store, BatchDoneStore)
    assert await _processor(store, dispatcher, batch=3).process_pending() == 5
    assert events == ["open", "like 1", "like 2", "like 3", "close",
                      "open", "like 4", "like 5", "close"]  # fmt: skip
    assert store.batches == [[1, 2, 3], [4, 5]]
    assert await _states(store, 5) == [(InboxState.DONE, 1)] * 5


async def test_a_failing_handler_retries_only_its_row() -> None:
    store, dispatcher = MemoryInboxStore(), InboxDispatcher()

    @dispatcher.on("Like")
    async def handle(record: InboxRecord) -> None:
        if record.id == 2:
            raise KeyError("the proposal is not known yet")

    await _recorded(store, 3)
    assert not isinstance(store, BatchDoneStore)
    await _processor(store, dispatcher, batch=10).process_pending()
    assert await _states(store, 3) == [
        (InboxState.DONE, 1), (InboxState.NEW, 1), (InboxState.DONE, 1),
    ]  # fmt: skip
    retry = await store.get(2)
    assert retry is not None and "not known yet" in (retry.error or "")
    assert retry.next_attempt_at > T0


async def test_a_failing_scope_retries_every_row_of_its_batch() -> None:
    store, dispatcher = CountingStore(), InboxDispatcher()
    handled: list[int] = []
    failing = True

    @dispatcher.on("Like")
    async def handle(record: InboxRecord) -> None:
        handled.append(int(record.id))

    @dispatcher.around_batch
    @asynccontextmanager
    async def scope() -> AsyncIterator[None]:
        yield
        if failing:
            raise OSError("disk full")

    await _recorded(store, 4)
    processor = _processor(store, dispatcher, batch=10)
    await processor.process_pending()
    assert handled == [1, 2, 3, 4]
    assert store.batches == [[]]  # nothing of the batch counts as done
    assert await _states(store, 4) == [(InboxState.NEW, 1)] * 4
    for record_id in range(1, 5):
        record = await store.get(record_id)
        assert record is not None and record.error == "OSError('disk full')"
    failing = False
    later = InboxProcessor(store, dispatcher, batch=10, clock=lambda: T0 + 3600)
    assert await later.process_pending() == 4
    assert await _states(store, 4) == [(InboxState.DONE, 2)] * 4


async def test_scopes_nest_in_registration_order() -> None:
    dispatcher = InboxDispatcher()
    events: list[str] = []

    def scope(name: str) -> None:
        @dispatcher.around_batch
        @asynccontextmanager
        async def made() -> AsyncIterator[None]:
            events.append(f"enter {name}")
            yield
            events.append(f"exit {name}")

    scope("outer")
    scope("inner")
    async with dispatcher.batch_scope():
        events.append("work")
    assert events == ["enter outer", "enter inner", "work", "exit inner", "exit outer"]


@pytest.mark.parametrize("batch", [1, 2, 7])
async def test_every_row_is_handled_whatever_the_batch_size(batch: int) -> None:
    store, dispatcher = CountingStore(), InboxDispatcher()
    seen: list[str] = []

    @dispatcher.on("Like")
    async def handle(record: InboxRecord) -> None:
        seen.append(record.activity_id)

    await _recorded(store, 7)
    assert await _processor(store, dispatcher, batch=batch).process_pending() == 7
    assert seen == [_like(n)["id"] for n in range(7)]
    assert [len(b) for b in store.batches] == [min(batch, 7 - i) for i in range(0, 7, batch)]


async def test_each_batch_is_prepared_before_its_scope_and_a_failed_preparation_is_harmless(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, dispatcher = MemoryInboxStore(), InboxDispatcher()
    events: list[str] = []

    @dispatcher.preparing
    async def warm(records: Sequence[InboxRecord]) -> None:
        events.append("prepare " + ",".join(str(r.id) for r in records))
        if records[0].id == 4:
            raise ConnectionError("the peer is down")

    @dispatcher.on("Like")
    async def handle(record: InboxRecord) -> None:
        events.append(f"like {record.id}")

    @dispatcher.around_batch
    @asynccontextmanager
    async def scope() -> AsyncIterator[None]:
        events.append("open")
        yield

    await _recorded(store, 5)
    assert await _processor(store, dispatcher, batch=3).process_pending() == 5
    assert events == ["prepare 1,2,3", "open", "like 1", "like 2", "like 3",
                      "prepare 4,5", "open", "like 4", "like 5"]  # fmt: skip
    assert await _states(store, 5) == [(InboxState.DONE, 1)] * 5  # the batch went on
    assert "inbox batch preparation failed" in caplog.text


async def test_each_phase_of_a_batch_adds_its_wall_time() -> None:
    store, dispatcher = CountingStore(), InboxDispatcher()

    @dispatcher.preparing
    async def warm(records: Sequence[InboxRecord]) -> None:
        await asyncio.sleep(0.05)  # a warm-up fetch

    @dispatcher.on("Like")
    async def handle(record: InboxRecord) -> None:
        await asyncio.sleep(0.02)  # a fetch a handler waits on

    @dispatcher.around_batch
    @asynccontextmanager
    async def scope() -> AsyncIterator[None]:
        yield
        await asyncio.sleep(0.03)  # the batch's write

    await _recorded(store, 4)
    processor = _processor(store, dispatcher, batch=2)
    assert await processor.process_pending() == 4
    assert (processor.rows, processor.batches) == (4, 2)
    seconds = processor.seconds
    assert set(seconds) == {"claim", "prepare", "handle", "commit", "finish"}
    # Two batches: twice the warm-up, four handled rows, two commits. Lower bounds only (a
    # busy machine only adds time), which still catch a wait put in the wrong phase: that
    # phase would get about nothing.
    assert seconds["prepare"] >= 0.1
    assert seconds["handle"] >= 0.08
    assert seconds["commit"] >= 0.06


async def test_a_woken_processor_lingers_so_rows_arriving_meanwhile_share_a_batch() -> None:
    store, dispatcher = CountingStore(), InboxDispatcher()
    handled: list[int] = []

    @dispatcher.on("Like")
    async def handle(record: InboxRecord) -> None:
        handled.append(record.id)

    processor = InboxProcessor(store, dispatcher, batch=32, linger=0.2, clock=lambda: T0)
    await processor.start()
    try:
        await asyncio.sleep(0.05)  # the loop found nothing and waits to be woken
        for n in range(5):
            like = _like(n)
            assert await store.record(INBOX, like["id"], ACTOR, like, auth="proof", now=T0)
            processor.wake()
            await asyncio.sleep(0.01)  # each arrives after the first woke the loop
        for _ in range(100):
            if len(handled) == 5:
                break
            await asyncio.sleep(0.02)
    finally:
        await processor.stop()
    assert handled == [1, 2, 3, 4, 5]
    assert store.batches == [[1, 2, 3, 4, 5]]  # one batch, not one per wake


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_after_a_small_batch_the_processor_lingers_before_claiming_again() -> None:
    # A steady trickle: rows arrive while a batch is handled and just after it. Claimed at
    # once, the trickle would be handled a few rows at a time (each batch's claim, commit and
    # marking done costing more than its rows); lingering, they share the next batch.
    store, dispatcher = CountingStore(), InboxDispatcher()
    release = asyncio.Event()

    @dispatcher.on("Like")
    async def handle(record: InboxRecord) -> None:
        await release.wait()

    async def arrive(n: int) -> None:
        like = _like(n)
        assert await store.record(INBOX, like["id"], ACTOR, like, auth="proof", now=T0)
        processor.wake()

    processor = InboxProcessor(store, dispatcher, batch=32, linger=0.5, clock=lambda: T0)
    await arrive(0)
    await processor.start()
    try:
        await asyncio.sleep(0.05)  # the first row's batch is being handled
        for n in range(1, 4):
            await arrive(n)
        release.set()
        await _until(lambda: len(store.batches) == 1)
        await asyncio.sleep(0.05)  # the processor lingers now
        for n in range(4, 6):
            await arrive(n)
        await _until(lambda: len(store.batches) == 2)
    finally:
        await processor.stop()
    assert store.batches == [[1], [2, 3, 4, 5, 6]]


async def test_a_backlog_is_worked_through_without_lingering() -> None:
    store, dispatcher = CountingStore(), InboxDispatcher()

    @dispatcher.on("Like")
    async def handle(record: InboxRecord) -> None:
        pass

    await _recorded(store, 5)
    # Full batches mean more is waiting: a linger after each would take 20 s here.
    processor = InboxProcessor(store, dispatcher, batch=2, linger=10.0, clock=lambda: T0)
    await processor.start()
    try:
        await _until(lambda: len(store.batches) == 3, seconds=2.0)
    finally:
        await processor.stop()
    assert store.batches == [[1, 2], [3, 4], [5]]


async def test_an_empty_claim_is_never_taken_for_a_backlog() -> None:
    class ClaimCounting(CountingStore):
        claims = 0

        async def claim(self, *, now: float, limit: int, lease: float) -> list[InboxRecord]:
            self.claims += 1
            return await super().claim(now=now, limit=limit, lease=lease)

    store = ClaimCounting()
    # A batch of 0 claims nothing, and 0 rows is not "a full batch": the loop waits to be
    # woken instead of claiming again at once, forever.
    processor = InboxProcessor(store, InboxDispatcher(), batch=0, clock=lambda: T0)
    await processor.start()
    try:
        await asyncio.sleep(0.2)
    finally:
        await processor.stop()
    assert store.claims == 1
