"""Outgoing delivery: shared-inbox collapse and the worker that drains the durable queue.

DESIGN.md §6. The queue is a :class:`~activitypub.storage.DeliveryStore`; the worker claims rows
under a lease, sends each through an injected :data:`Sender` (the app wires a signing POST, so
bodies are signed at send time with a fresh date), and records the outcome: 2xx → SENT, a
transient failure → retry with :func:`~activitypub.backoff.retry_delay`, a permanent one → GONE,
retries exhausted → FAILED. Concurrency is bounded overall and per host, hosts whose circuit
breaker is open are skipped, and the worker sleeps until woken or until the next row is due.

Writes are batched (DESIGN.md §8): one claim leases several rows ahead of the free slots (held in
memory, per host, under their lease), and a recorder writes the answers that arrived meanwhile
together, the 2xx ones in one statement, so a send's slot is free as soon as it is answered.
A claim that found nothing is not repeated until something could have changed: new rows
(:meth:`DeliveryWorker.wake`), time passing, or a host that was full having room again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import aiohttp

from activitypub.backoff import MAX_ATTEMPTS, CircuitBreaker, retry_delay, retryable
from activitypub.deliveryrecorder import AnswerRecorder, Outcome, delivery_fields
from activitypub.storage import Delivery, DeliveryStore, inbox_host
from activitypub.waiting import wait_event

log = logging.getLogger(__name__)

#: Sends one delivery and returns the HTTP status; raises ``aiohttp.ClientError`` or
#: ``TimeoutError`` when the network fails. Its timeout must be shorter than the worker's lease.
Sender = Callable[[Delivery], Awaitable[int]]

_MIN_PAUSE = 0.01  # a row is due but could not be claimed this instant (a lease ends right now)
_ERROR_PAUSE = 1.0  # the store failed (say, locked by another process): try again shortly
_BUSY_LOOK = 1.0  # while sends run, how often to look for rows come due meanwhile


@dataclass(frozen=True)
class InboxTarget:
    """Where one recipient actor receives activities: its inbox and, if any, its sharedInbox."""

    inbox: str
    shared_inbox: str | None = None


def recipients_to_inboxes(recipients: Iterable[InboxTarget]) -> list[str]:
    """Inboxes to deliver to: once per sharedInbox, else the actor's inbox (AP §7.1.3), deduped."""
    return list(dict.fromkeys(r.shared_inbox or r.inbox for r in recipients))


#: Rows held (sending or waiting) per sending slot: one claim feeds several sends.
HOLD_PER_SLOT = 4


class DeliveryWorker:
    """Drains a :class:`DeliveryStore` with bounded concurrency, retries and a per-host breaker."""

    def __init__(
        self,
        store: DeliveryStore,
        sender: Sender,
        *,
        concurrency: int = 4,
        per_host: int = 2,
        lease: float = 120.0,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        breaker: CircuitBreaker | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        retry_base: float = 30.0,
        retry_cap: float = 6 * 3600,
        poll_interval: float = 60.0,
    ) -> None:
        if concurrency < 1 or per_host < 1 or max_attempts < 1 or lease <= 0:
            raise ValueError("concurrency, per_host and max_attempts must be >= 1, lease > 0")
        self._store, self._sender = store, sender
        self._concurrency, self._per_host, self._lease = concurrency, per_host, lease
        self._host_hold = per_host * HOLD_PER_SLOT
        self._clock, self._rand = clock, rand
        self._breaker = breaker if breaker is not None else CircuitBreaker()
        self._max_attempts, self._retry_base, self._retry_cap = max_attempts, retry_base, retry_cap
        # Only a fallback: rows enqueued by this process call wake(); other processes may not.
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._settled = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sending: set[asyncio.Task[None]] = set()
        self._load: Counter[str] = Counter()  # sends in flight per host
        self._held: Counter[str] = Counter()  # rows leased per host: in flight or waiting
        self._waiting: dict[str, deque[Delivery]] = {}
        self._answers = AnswerRecorder(store, clock, self._record_failure, self._settled.set)
        self._dirty = True  # a claim may find rows
        self._excluded: frozenset[str] = frozenset()  # hosts the last claim left out
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """New rows were enqueued: claim now instead of sleeping until the next due time."""
        self._dirty = True
        self._wakeup.set()

    async def start(self) -> None:
        """Start the claiming loop and the recorder (idempotent)."""
        if self._runner is None:
            self._stopping, self._dirty = False, True
            self._answers.start()
            self._runner = asyncio.create_task(self._run(), name="delivery-worker")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let in-flight sends finish for ``grace`` s, then cancel and release them.

        A cancelled send and a row still waiting give their row back (no attempt counted), so
        nothing is lost; a send that already got its answer always records it.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True
        self._wakeup.set()
        await runner  # the loop exits at its next check
        await self._release_waiting(list(self._waiting))
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._sending):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        await self._answers.stop()

    async def run_until_idle(self, timeout: float) -> None:  # noqa: ASYNC109 (the documented API)
        """Wait until nothing is in flight and no row is NEW; raise ``TimeoutError`` after that."""
        if self._runner is None:
            raise RuntimeError("start() the worker first")
        async with asyncio.timeout(timeout):
            while self._busy() or await self._store.next_due() is not None:
                self._settled.clear()
                if not self._busy():
                    self.wake()  # rows another process queued, or due again: look for them
                # Every finished send and record sets it; the timeout covers other processes.
                await wait_event(self._settled, _MIN_PAUSE * 10)

    def _busy(self) -> bool:
        return bool(self._tasks or self._waiting or self._answers.pending)

    async def _run(self) -> None:
        """Claim what can be sent, then sleep until woken, a send ends or the next row is due."""
        while not self._stopping:
            self._wakeup.clear()  # cleared first: a wake() during the claim is not lost
            try:
                await self._fill()
                pause = await self._idle_timeout()
            except Exception:
                log.exception("delivery queue unavailable")
                pause = _ERROR_PAUSE
            if self._stopping:
                break
            if not await wait_event(self._wakeup, pause):
                self._dirty = True  # time passed: rows may have come due

    async def _fill(self) -> None:
        """Claim ahead while a claim may find rows, and start what the limits allow."""
        await self._start_waiting()
        while not self._stopping:
            excluded = self._blocked()
            limit = self._concurrency * HOLD_PER_SLOT - sum(self._held.values())
            # A host the last claim left out has room again: its rows may be claimed now.
            if limit <= 0 or not (self._dirty or self._excluded - excluded):
                return
            # A host not excluded holds less than half its share: half more keeps it within.
            rows = await self._store.claim(
                now=self._clock(),
                limit=limit,
                lease=self._lease,
                exclude_hosts=excluded,
                per_host=self._host_hold - self._host_hold // 2,
            )
            self._dirty = len(rows) == limit
            for row in rows:
                host = inbox_host(row.inbox)
                self._held[host] += 1
                self._waiting.setdefault(host, deque()).append(row)
            # Fewer rows than asked: each host ran out or is full now; a full one that gets
            # room again may have more (the check above claims again then).
            self._excluded = self._blocked()
            await self._start_waiting()

    def _blocked(self) -> frozenset[str]:
        """Hosts not to claim for: circuit open, or holding at least half their share."""
        full = {h for h, n in self._held.items() if n >= self._host_hold // 2}
        return self._breaker.blocked_hosts() | full

    async def _start_waiting(self) -> None:
        """Start held rows, host by host, within the overall and per-host limits."""
        blocked = self._breaker.blocked_hosts()
        stale_before = self._clock() + self._lease / 2  # a send must end inside its lease
        for host in [h for h in self._waiting if h in blocked]:
            await self._release_waiting([host])  # the circuit opened while they waited
        for host, queue in list(self._waiting.items()):
            while (
                queue and len(self._tasks) < self._concurrency and self._load[host] < self._per_host
            ):
                row = queue.popleft()
                if row.locked_until is not None and row.locked_until < stale_before:
                    await self._give_back(row, host)  # waited too long: its lease may run out
                    continue
                self._spawn(row, host)
            if not queue:
                del self._waiting[host]
            elif self._load[host]:
                # Round robin: a host that just got a slot waits behind the others next time.
                self._waiting[host] = self._waiting.pop(host)

    async def _release_waiting(self, hosts: list[str]) -> None:
        for host in hosts:
            for row in self._waiting.pop(host, deque()):
                await self._give_back(row, host)

    async def _give_back(self, row: Delivery, host: str) -> None:
        self._held[host] -= 1
        if self._held[host] <= 0:
            del self._held[host]
        self._dirty = True
        try:
            await self._store.release(row.id)
        except Exception:
            # The lease ends by itself; the row is claimable again then.
            log.exception("could not release a delivery", extra=delivery_fields(row))

    async def _idle_timeout(self) -> float:
        """Seconds to sleep: until the next row is due, a breaker half-opens, or a poll."""
        waits = [self._poll_interval]
        reopen = self._breaker.reopens_in()
        if reopen is not None:
            waits.append(reopen)
        if self._tasks or self._waiting:
            # Each end of a send wakes the loop; look again now and then for rows come due.
            waits.append(_BUSY_LOOK)
            return max(0.0, min(waits))
        due = await self._store.next_due()
        if due is not None:
            ahead = due - self._clock()
            if ahead > 0:
                waits.append(ahead)
            elif reopen is None:
                waits.append(_MIN_PAUSE)  # due but not claimable this instant
        return max(0.0, min(waits))

    def _spawn(self, row: Delivery, host: str) -> None:
        self._load[host] += 1
        task = asyncio.create_task(self._deliver(row), name=f"delivery-{row.id}")
        self._tasks.add(task)
        self._sending.add(task)
        task.add_done_callback(lambda t: self._finished(t, host))

    def _finished(self, task: asyncio.Task[None], host: str) -> None:
        self._tasks.discard(task)
        self._sending.discard(task)
        for counter in (self._load, self._held):
            counter[host] -= 1
            if counter[host] <= 0:
                del counter[host]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("delivery task crashed", exc_info=exc)
        self._wakeup.set()  # a slot is free
        self._settled.set()

    async def _deliver(self, row: Delivery) -> None:
        """Send one claimed row; its outcome goes to the recorder."""
        task = asyncio.current_task()
        try:
            outcome = await self._attempt(row)
        except asyncio.CancelledError:
            # Stopped mid-send: give the row back for the next worker; it was not an attempt.
            await self._store.release(row.id)
            raise
        finally:
            if task is not None:
                self._sending.discard(task)  # from here on, stop() lets it finish
        host = inbox_host(row.inbox)
        if outcome.blames_host:
            self._breaker.record_failure(host)
        elif outcome.status is not None:
            self._breaker.record_success(host)  # it answered, even if this recipient is gone
        self._answers.add(row, outcome, self._clock())

    async def _attempt(self, row: Delivery) -> Outcome:
        """Call the sender; map network failures and local bugs to an outcome."""
        try:
            status = await self._sender(row)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}".rstrip(": "), blames_host=True)
        except Exception as exc:
            # A bug or a local failure (no signing key, say): retry, but do not blame the host.
            log.exception("delivery sender failed", extra=delivery_fields(row))
            return Outcome(None, f"local error: {exc!r}", blames_host=False)
        if 200 <= status < 300:
            return Outcome(status, None, blames_host=False)
        return Outcome(status, f"HTTP {status}", blames_host=retryable(status))

    async def _record_failure(self, row: Delivery, outcome: Outcome, now: float) -> None:
        """Store one non-2xx outcome: a scheduled retry, GONE or FAILED."""
        attempt, status, error = row.attempts + 1, outcome.status, outcome.error or ""
        fields = {
            **delivery_fields(row),
            "status": status,
            "attempt": attempt,
            "error": outcome.error,
        }
        if status is not None and not retryable(status):
            await self._store.mark_gone(row.id, error=error, status=status, now=now)
            log.info("delivery gone", extra=fields)
        elif attempt >= self._max_attempts:
            await self._store.mark_failed(row.id, error=error, status=status, now=now)
            log.warning("delivery failed, retries exhausted", extra=fields)
        else:
            delay = retry_delay(
                attempt, base=self._retry_base, cap=self._retry_cap, rand=self._rand
            )
            await self._store.mark_retry(
                row.id, next_attempt_at=now + delay, error=error, status=status, now=now
            )
            log.info("delivery will be retried", extra={**fields, "retry_in": delay})
