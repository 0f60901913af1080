"""A long sync leaves the event loop to others between batches (federation.aggregator.state).

A rebuild's backfill workers write rows faster than the serving process counts them, and the
store's reads run inline on the loop's thread: a sync catching up on 100,000 rows used to hold
the loop for seconds, while the workers waited on it for their next instance.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path

from federation.aggregator.state import TallyState
from federation.aggregator.wiring import open_aggregator
from federation.store.aggregator_log import BATCH
from tests.aggregator_env import make_config


async def _write_supports(db: object, count: int) -> None:
    """``count`` stored supports, one per actor, written straight into the activities table."""
    rows = [
        (f"https://a.example/likes/{n}", "support", f"https://a.example/users/u{n}", "https://a.example",
         "https://a.example/proposals/p", "", "2026-03-05T19:14:22Z", 0.0, 0, "",
         "backfill", None, "{}")
        for n in range(count)
    ]  # fmt: skip
    await db.executemany(  # type: ignore[attr-defined]
        "INSERT INTO activities (id, kind, actor, origin, object, process, published,"
        " received_at, proof_ok, signer_origin, route, via, document)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


async def test_a_sync_over_several_batches_lets_other_tasks_run(tmp_path: Path) -> None:
    async with open_aggregator(make_config(tmp_path, 9)) as agg:
        await agg.state.sync()  # the first sync: built, now each later one is an update
        await _write_supports(agg.db, 2 * BATCH + 10)
        order: list[str] = []

        async def sync() -> None:
            assert await agg.state.sync() == 2 * BATCH + 10
            order.append("synced")

        async def other() -> None:
            order.append("other")

        syncing = asyncio.create_task(sync())
        await asyncio.sleep(0)  # the sync starts first
        await asyncio.gather(syncing, other())
        assert order == ["other", "synced"]


async def test_a_first_sync_cancelled_midway_leaves_the_next_to_read_everything(
    tmp_path: Path,
) -> None:
    """The first sync builds the tally from every row at once; cancelled between two batches
    (a rebuild's counting task, stopped when its workers are done), it keeps nothing, so the
    next one reads every row again instead of starting where the cancelled one stopped."""
    async with open_aggregator(make_config(tmp_path, 9)) as agg:
        total = 2 * BATCH + 10
        await _write_supports(agg.db, total)
        # A state not built yet, as at a server's start over a full database.
        state = TallyState(agg.store, agg.log, city=agg.config.city, grace=timedelta(0))
        first = asyncio.create_task(state.sync())
        await asyncio.sleep(0)  # it reads a batch, then yields
        assert not first.done()
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert await state.sync() == total
        assert await state.sync() == 0  # and nothing twice
