"""Votes stored by one inbox batch, written in one transaction at its end (DESIGN.md §8).

The inbox processor handles recorded rows in batches (:mod:`activitypub.dispatch`); inside a
batch's scope, :class:`~federation.aggregator.ingest.Ingest` hands each verified support or undo
to the open :class:`VoteBatch` instead of writing it at once, and the scope's end writes them
all with :meth:`~federation.store.aggregator_log.ActivityLog.add_activities`. Only after that
commit are the batch's rows marked done, so a crash in between loses nothing: the rows are
handled again and the insert deduplicates. The open batch lives in a context variable, so
another task (a backfill pass) using the same ingest at that moment writes as usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from federation.store.aggregator_log import ActivityLog, ActivityRow

Key = tuple[str, bool, str]  # (id, proof_ok, signer_origin): one stored copy


@dataclass
class VoteBatch:
    """Verified copies waiting for the batch's transaction, with their metric label."""

    owner: object
    #: Ids the caller found no verified copy of before the batch (no need to ask again).
    unheld: frozenset[str] = frozenset()
    rows: dict[Key, tuple[ActivityRow, str]] = field(default_factory=dict)

    def add(self, row: ActivityRow, label: str) -> bool:
        """Buffer a copy; False when this very copy is in the batch already."""
        key = (row.id, row.proof_ok, row.signer_origin)
        if key in self.rows:
            return False
        self.rows[key] = (row, label)
        return True


#: The batch open in this task's context, if any (no state of its own: each task has its value).
_OPEN: ContextVar[VoteBatch | None] = ContextVar("barri_vote_batch", default=None)


def open_batch(owner: object) -> VoteBatch | None:
    """The batch ``owner`` opened in this task's context, or None (write at once)."""
    batch = _OPEN.get()
    return batch if batch is not None and batch.owner is owner else None


@asynccontextmanager
async def vote_batch(
    owner: object,
    log: ActivityLog,
    counts: Counter[tuple[str, str]],
    unheld: Collection[str] = (),
) -> AsyncIterator[VoteBatch]:
    """Open a batch for ``owner``; on a normal exit write it and correct the metric of any
    copy that turned out to be stored already (counted "stored" when buffered)."""
    batch = VoteBatch(owner, frozenset(unheld))
    token = _OPEN.set(batch)
    try:
        yield batch
    finally:
        _OPEN.reset(token)
    if not batch.rows:
        return
    added = await log.add_activities([row for row, _label in batch.rows.values()])
    for key, (_row, label) in batch.rows.items():
        if key not in added:
            counts[(label, "stored")] -= 1
            counts[(label, "duplicate")] += 1
