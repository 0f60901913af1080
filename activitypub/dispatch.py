"""Inbox dispatch: handlers registered per activity type, run from recorded rows (style.md §4).

Rows are claimed and handled in batches. A domain may wrap each batch in a scope
(:meth:`InboxDispatcher.around_batch`) that does the batch's shared work once, such as one
transaction for everything the handlers stored (DESIGN.md §8: writes are batched on hot paths);
a row is marked done only after its batch's scope closed without error. Before that, a
domain may ready a claimed batch (:meth:`InboxDispatcher.preparing`), e.g. fetch the actors
its handlers will need concurrently rather than one row at a time.

:attr:`InboxProcessor.seconds` adds up the wall time of each phase of batch handling (claim,
prepare, handle, commit, finish), so an operator sees where a lagging inbox waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Protocol, TypeGuard, runtime_checkable

from activitypub import as2
from activitypub.backoff import retry_delay
from activitypub.lag import LagHistogram
from activitypub.storage import InboxRecord, InboxStore, RecordId
from activitypub.waiting import wait_event

log = logging.getLogger(__name__)
Handler = Callable[[InboxRecord], Awaitable[None]]
#: Opens the scope one batch of rows is handled in; its exit finishes the batch's work.
BatchScope = Callable[[], AbstractAsyncContextManager[None]]
#: Readies a claimed batch before its scope opens (best effort: a failure is only logged).
BatchPrepare = Callable[[Sequence[InboxRecord]], Awaitable[None]]


@runtime_checkable
class BatchDoneStore(Protocol):
    """An InboxStore that can mark many rows done in one write."""

    async def mark_done_many(self, record_ids: Sequence[RecordId]) -> None:
        """NEW → DONE for every row of ``record_ids``."""


#: Store types already checked against :class:`BatchDoneStore` (a cache of a pure function).
_BATCH_DONE: dict[type[Any], bool] = {}


def marks_batches(store: Any) -> TypeGuard[BatchDoneStore]:
    """Whether ``store`` is a :class:`BatchDoneStore`, decided once per store type."""
    kind = type(store)
    if kind not in _BATCH_DONE:
        _BATCH_DONE[kind] = isinstance(store, BatchDoneStore)
    return _BATCH_DONE[kind]


class InboxDispatcher:
    """A registry of handlers by activity type, as Fedify's ``.on()`` and bovine's types map."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._scopes: list[BatchScope] = []
        self._prepares: list[BatchPrepare] = []

    def on(self, *types: str) -> Callable[[Handler], Handler]:
        """Decorator: run the handler for activities of any of ``types``."""

        def register(handler: Handler) -> Handler:
            for name in types:
                self._handlers.setdefault(name, []).append(handler)
            return handler

        return register

    def around_batch(self, scope: BatchScope) -> BatchScope:
        """Decorator: handle each batch of rows inside ``scope()`` (scopes nest in order)."""
        self._scopes.append(scope)
        return scope

    def preparing(self, prepare: BatchPrepare) -> BatchPrepare:
        """Decorator: run ``prepare(records)`` on each claimed batch before its scope opens."""
        self._prepares.append(prepare)
        return prepare

    async def prepare(self, records: Sequence[InboxRecord]) -> None:
        """Every registered preparation; one that fails is logged and the batch goes on (its
        handlers then do that work themselves, and report what really fails)."""
        for prepare in self._prepares:
            try:
                await prepare(records)
            except Exception:  # best effort by contract: never lose a batch to a warm-up
                log.warning("inbox batch preparation failed", exc_info=True)

    @contextlib.asynccontextmanager
    async def batch_scope(self) -> AsyncIterator[None]:
        """Every registered batch scope, entered in registration order."""
        async with AsyncExitStack() as stack:
            for make in self._scopes:
                await stack.enter_async_context(make())
            yield

    def handlers_for(self, activity: dict[str, Any]) -> list[Handler]:
        """Every handler registered for any of the activity's types, in registration order."""
        found: list[Handler] = []
        for name in as2.types(activity):
            found.extend(h for h in self._handlers.get(name, []) if h not in found)
        return found

    async def dispatch(self, record: InboxRecord) -> None:
        """Run the record's handlers; an activity of an unknown type is simply done."""
        for handler in self.handlers_for(record.activity):
            await handler(record)


class _Phases:
    """Adds the wall time since the previous mark to a phase's total."""

    def __init__(self, seconds: defaultdict[str, float]) -> None:
        self.seconds, self.mark = seconds, time.perf_counter()

    def end(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self.mark
        self.mark = now


class InboxProcessor:
    """Claims recorded inbox rows and dispatches them; woken on receipt, retries with backoff."""

    def __init__(
        self,
        store: InboxStore,
        dispatcher: InboxDispatcher,
        *,
        batch: int = 32,
        lease: float = 60.0,
        max_attempts: int = 8,
        linger: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.dispatcher, self.linger = store, dispatcher, linger
        self.batch, self.lease, self.max_attempts, self.clock = batch, lease, max_attempts, clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Wall seconds spent per phase: claim, prepare, handle (the handlers), commit (the
        #: batch scope's exit), finish (marking rows done or failed); rows and batches handled.
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.rows = self.batches = 0
        #: Seconds from each row's receipt until its batch's scope closed (for the aggregator:
        #: until it was counted), handled rows only.
        self.lag = LagHistogram()

    def wake(self) -> None:
        """Signal that a new row was recorded."""
        self._wake.set()

    async def start(self) -> None:
        """Start the background loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="inbox-processor")

    async def stop(self) -> None:
        """Stop the loop; rows being processed keep their lease and are retried later."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def process_pending(self) -> int:
        """Process every claimable row now; return how many were handled."""
        handled = 0
        while claimed := await self._process_claimed():
            handled += claimed
        return handled

    async def _process_claimed(self) -> int:
        """Claim one batch of due rows and process it; return how many were claimed."""
        began = time.perf_counter()
        records = await self.store.claim(now=self.clock(), limit=self.batch, lease=self.lease)
        self.seconds["claim"] += time.perf_counter() - began
        if records:
            await self._process_batch(records)
            self.rows += len(records)
            self.batches += 1
        return len(records)

    async def _process_batch(self, records: list[InboxRecord]) -> None:
        """Dispatch a batch in its scope; a failed row (or a failed scope: every row of the
        batch) is recorded and retried with backoff, the others are marked done."""
        done: list[InboxRecord] = []
        failed: list[tuple[InboxRecord, Exception]] = []
        phase = _Phases(self.seconds)
        await self.dispatcher.prepare(records)
        phase.end("prepare")
        try:
            async with self.dispatcher.batch_scope():
                for record in records:
                    try:
                        await self.dispatcher.dispatch(record)
                    except Exception as exc:
                        failed.append((record, exc))
                    else:
                        done.append(record)
                phase.end("handle")
        except Exception as error:
            # The batch's shared work did not finish: nothing of it may count as done.
            failed += [(record, error) for record in done]
            done = []
        phase.end("commit")
        now = self.clock()
        for record in done:
            self.lag.observe(now - record.received_at)
        await self._finish(done, failed)
        phase.end("finish")

    async def _finish(
        self, done: list[InboxRecord], failed: list[tuple[InboxRecord, Exception]]
    ) -> None:
        """Mark the handled rows done (in one write when the store can) and the failed ones
        for a retry."""
        if marks_batches(self.store):
            await self.store.mark_done_many([record.id for record in done])
        else:
            for record in done:
                await self.store.mark_done(record.id)
        for record, problem in failed:
            await self._failed(record, problem)

    async def _failed(self, record: InboxRecord, exc: Exception) -> None:
        """Record a failed attempt: retried with backoff, given up after ``max_attempts``."""
        log.warning(
            "inbox handler failed", extra={"activity_id": record.activity_id, "error": repr(exc)}
        )
        attempts = record.attempts + 1
        retry_at = (
            None
            if attempts >= self.max_attempts
            else self.clock() + retry_delay(attempts, base=5.0)
        )
        await self.store.mark_failed(record.id, repr(exc), retry_at=retry_at, now=self.clock())

    async def _run(self) -> None:
        """Loop: claim and process a batch; a full one means a backlog, worked through at
        once; after a smaller one (caught up), sleep until woken or a minute passes, then
        linger ``linger`` seconds so the rows arriving meanwhile join the next batch.

        Without that linger after every small batch, a steady trickle (1,000 deliveries a
        second, each its own request) was claimed ~8 rows at a time as it arrived, and each
        batch's claim, commit and marking done cost more than its rows."""
        while True:
            self._wake.clear()  # clear first: a wake during processing is not lost
            claimed = await self._process_claimed()
            if claimed and claimed >= self.batch:
                continue  # a backlog (never an empty claim: a batch of 0 would spin)
            if await wait_event(self._wake, 60.0) and self.linger > 0:
                await asyncio.sleep(self.linger)
