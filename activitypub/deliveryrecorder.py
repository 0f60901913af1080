"""Recording delivery outcomes in batches, apart from the sends (DESIGN.md §6, §8).

The worker's sends hand their answers to an :class:`AnswerRecorder` and free their slot at once;
the recorder writes whatever arrived meanwhile together: the 2xx answers as one
:meth:`~activitypub.storage.DeliveryStore.mark_sent_many` per status, every other outcome (a
retry, GONE, FAILED) on its own through the worker's callback. A row whose answer is not written
yet stays leased, so no other worker sends it meanwhile; were the process to die first, the
lease would run out and the row be sent again (deliveries are at least once; inboxes dedupe).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from activitypub.storage import Delivery, DeliveryId, DeliveryStore

log = logging.getLogger("activitypub.delivery")


@dataclass(frozen=True)
class Outcome:
    """What one send gave: the status (None: no answer), the error, and whether it counts
    against the host's circuit breaker."""

    status: int | None
    error: str | None
    blames_host: bool  # counts against the host's circuit breaker


class AnswerRecorder:
    """The answers not yet written, and the task that writes them in batches (DESIGN.md §8)."""

    def __init__(
        self,
        store: DeliveryStore,
        clock: Callable[[], float],
        record_failure: Callable[[Delivery, Outcome, float], Awaitable[None]],
        on_written: Callable[[], None],
    ) -> None:
        self._store, self._clock = store, clock
        self._record_failure, self._on_written = record_failure, on_written
        self._queue: list[tuple[Delivery, Outcome, float]] = []
        self._more = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._writing = 0

    @property
    def pending(self) -> bool:
        """Answers waiting or being written."""
        return bool(self._queue or self._writing)

    def start(self) -> None:
        """Start the recorder task."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="delivery-recorder")

    def add(self, row: Delivery, outcome: Outcome, now: float) -> None:
        """Queue one answer for the next batch."""
        self._queue.append((row, outcome, now))
        self._more.set()

    async def stop(self) -> None:
        """Write what is queued, then end the task."""
        task, self._task = self._task, None
        if task is not None:
            self._closing = True
            self._more.set()
            await task

    async def _run(self) -> None:
        while True:
            await self._more.wait()
            self._more.clear()
            await self._write()
            if self._closing and not self._queue:
                return

    async def _write(self) -> None:
        """SENT rows in one statement per status; every other outcome on its own."""
        batch, self._queue = self._queue, []
        self._writing = len(batch)
        try:
            sent: dict[int, list[Delivery]] = {}
            for row, outcome, now in batch:
                if outcome.status is not None and 200 <= outcome.status < 300:
                    sent.setdefault(outcome.status, []).append(row)
                else:
                    await _guarded(self._record_failure(row, outcome, now), row)
            for status, rows in sent.items():
                await _guarded(self._mark_sent([r.id for r in rows], status), rows[0])
        finally:
            self._writing = 0
            self._on_written()

    async def _mark_sent(self, ids: list[DeliveryId], status: int) -> None:
        moved = await self._store.mark_sent_many(ids, status=status, now=self._clock())
        if moved < len(ids):
            # Typically a lease that ran out, and another worker finished those rows first.
            log.warning("sent deliveries were no longer NEW", extra={"rows": len(ids) - moved})
        log.info("delivered", extra={"deliveries": len(ids), "status": status})


async def _guarded(write: Awaitable[None], row: Delivery) -> None:
    """Run one write of an outcome; a failure is logged (the row's lease ends by itself)."""
    try:
        await write
    except Exception:
        # Typically the lease ran out and another worker finished the row first.
        log.exception("could not record delivery outcome", extra=delivery_fields(row))


def delivery_fields(row: Delivery) -> dict[str, object]:
    """Structured log fields for one delivery."""
    return {"delivery_id": row.id, "activity_id": row.activity_id, "inbox": row.inbox}
