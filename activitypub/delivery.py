"""Outgoing delivery: shared-inbox collapse and the worker that drains the durable queue.

DESIGN.md §6. The queue is a :class:`~activitypub.storage.DeliveryStore`; the worker claims rows
under a lease, sends each through an injected :data:`Sender` (the app wires a signing POST, so
bodies are signed at send time with a fresh date), and records the outcome: 2xx → SENT, a
transient failure → retry with :func:`~activitypub.backoff.retry_delay`, a permanent one → GONE,
retries exhausted → FAILED. Concurrency is bounded overall and per host, hosts whose circuit
breaker is open are skipped, and the worker sleeps until woken or until the next row is due.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import aiohttp

from activitypub.backoff import MAX_ATTEMPTS, CircuitBreaker, retry_delay, retryable
from activitypub.storage import Delivery, DeliveryStore, inbox_host
from activitypub.waiting import wait_event

log = logging.getLogger(__name__)

#: Sends one delivery and returns the HTTP status; raises ``aiohttp.ClientError`` or
#: ``TimeoutError`` when the network fails. Its timeout must be shorter than the worker's lease.
Sender = Callable[[Delivery], Awaitable[int]]

_MIN_PAUSE = 0.01  # a row is due but could not be claimed this instant (a lease ends right now)
_ERROR_PAUSE = 1.0  # the store failed (say, locked by another process): try again shortly


@dataclass(frozen=True)
class InboxTarget:
    """Where one recipient actor receives activities: its inbox and, if any, its sharedInbox."""

    inbox: str
    shared_inbox: str | None = None


def recipients_to_inboxes(recipients: Iterable[InboxTarget]) -> list[str]:
    """Inboxes to deliver to: once per sharedInbox, else the actor's inbox (AP §7.1.3), deduped."""
    return list(dict.fromkeys(r.shared_inbox or r.inbox for r in recipients))


@dataclass(frozen=True)
class _Outcome:
    status: int | None
    error: str | None
    blames_host: bool  # counts against the host's circuit breaker


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
        self._clock, self._rand = clock, rand
        self._breaker = breaker if breaker is not None else CircuitBreaker()
        self._max_attempts, self._retry_base, self._retry_cap = max_attempts, retry_base, retry_cap
        # Only a fallback: rows enqueued by this process call wake(); other processes may not.
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._settled = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sending: set[asyncio.Task[None]] = set()
        self._load: Counter[str] = Counter()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """New rows were enqueued: claim now instead of sleeping until the next due time."""
        self._wakeup.set()

    async def start(self) -> None:
        """Start the claiming loop (idempotent)."""
        if self._runner is None:
            self._stopping = False
            self._runner = asyncio.create_task(self._run(), name="delivery-worker")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let in-flight sends finish for ``grace`` s, then cancel and release them.

        A cancelled send gives its row back (no attempt counted), so nothing is lost; a send
        that already got its answer always records it.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True
        self._wakeup.set()
        await runner  # the loop exits at its next check; it never holds claimed rows unsent
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._sending):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def run_until_idle(self, timeout: float) -> None:  # noqa: ASYNC109 (the documented API)
        """Wait until nothing is in flight and no row is NEW; raise ``TimeoutError`` after that."""
        if self._runner is None:
            raise RuntimeError("start() the worker first")
        async with asyncio.timeout(timeout):
            while self._tasks or await self._store.next_due() is not None:
                self._settled.clear()
                # Every finished send sets it; the short timeout covers other processes' changes.
                await wait_event(self._settled, _MIN_PAUSE * 10)

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
            await wait_event(self._wakeup, pause)

    async def _fill(self) -> None:
        """Claim and start as many rows as the overall and per-host limits allow."""
        while not self._stopping:
            limit = self._claim_limit()
            if limit == 0:
                return
            blocked = self._breaker.blocked_hosts() | {
                h for h, n in self._load.items() if n >= self._per_host
            }
            rows = await self._store.claim(
                now=self._clock(), limit=limit, lease=self._lease, exclude_hosts=blocked
            )
            for row in rows:
                self._spawn(row)
            if len(rows) < limit:
                return

    def _claim_limit(self) -> int:
        """How many rows one claim may take without any host going over ``per_host``.

        A claim can return several rows for one host, so it is also capped by the smallest
        spare capacity of any host that is not excluded.
        """
        free = self._concurrency - len(self._tasks)
        spare = [self._per_host - n for n in self._load.values() if n < self._per_host]
        return max(0, min(free, self._per_host, *spare))

    async def _idle_timeout(self) -> float:
        """Seconds to sleep: until the next row is due, a breaker half-opens, or a poll."""
        due = await self._store.next_due()
        waits = [self._poll_interval]
        reopen = self._breaker.reopens_in()
        if reopen is not None:
            waits.append(reopen)
        if due is not None:
            ahead = due - self._clock()
            if ahead > 0:
                waits.append(ahead)
            elif not self._tasks and reopen is None:
                waits.append(_MIN_PAUSE)
            # Otherwise the end of a running send (or the breaker) wakes the loop.
        return max(0.0, min(waits))

    def _spawn(self, row: Delivery) -> None:
        host = inbox_host(row.inbox)
        self._load[host] += 1
        task = asyncio.create_task(self._deliver(row), name=f"delivery-{row.id}")
        self._tasks.add(task)
        self._sending.add(task)
        task.add_done_callback(lambda t: self._finished(t, host))

    def _finished(self, task: asyncio.Task[None], host: str) -> None:
        self._tasks.discard(task)
        self._sending.discard(task)
        self._load[host] -= 1
        if self._load[host] <= 0:
            del self._load[host]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("delivery task crashed", exc_info=exc)
        self._wakeup.set()  # a slot is free
        self._settled.set()

    async def _deliver(self, row: Delivery) -> None:
        """Send one claimed row and record the outcome."""
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
        try:
            await self._record(row, outcome)
        except Exception:
            # Typically the lease ran out and another worker finished the row first.
            log.exception("could not record delivery outcome", extra=_fields(row))

    async def _attempt(self, row: Delivery) -> _Outcome:
        """Call the sender; map network failures and local bugs to an outcome."""
        try:
            status = await self._sender(row)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return _Outcome(None, f"{type(exc).__name__}: {exc}".rstrip(": "), blames_host=True)
        except Exception as exc:
            # A bug or a local failure (no signing key, say): retry, but do not blame the host.
            log.exception("delivery sender failed", extra=_fields(row))
            return _Outcome(None, f"local error: {exc!r}", blames_host=False)
        if 200 <= status < 300:
            return _Outcome(status, None, blames_host=False)
        return _Outcome(status, f"HTTP {status}", blames_host=retryable(status))

    async def _record(self, row: Delivery, outcome: _Outcome) -> None:
        """Store the outcome: SENT, a scheduled retry, GONE or FAILED; feed the breaker."""
        host, now, attempt = inbox_host(row.inbox), self._clock(), row.attempts + 1
        status, error = outcome.status, outcome.error or ""
        fields = {**_fields(row), "status": status, "attempt": attempt, "error": outcome.error}
        if outcome.blames_host:
            self._breaker.record_failure(host)
        elif status is not None:
            self._breaker.record_success(host)  # it answered, even if this recipient is gone
        if status is not None and 200 <= status < 300:
            await self._store.mark_sent(row.id, status=status, now=now)
            log.info("delivered", extra=fields)
        elif status is not None and not retryable(status):
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


def _fields(row: Delivery) -> dict[str, object]:
    """Structured log fields for one delivery."""
    return {"delivery_id": row.id, "activity_id": row.activity_id, "inbox": row.inbox}
