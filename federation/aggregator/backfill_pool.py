"""A large backfill shared among worker processes, one per core (DESIGN.md §6).

An aggregator that starts with nothing stored (its first start, or a rebuild from an empty
database) must fetch and verify every support of the city (Barcelona's 356,000: minutes of a
core), and verifying, parsing and storing are Python under one interpreter lock. So that first
pass is shared among ``backfill_workers`` processes (:mod:`.backfill_worker`), each walking
whole roster instances handed out one at a time as they finish, largest first (the city's
instance holds far more than a neighbourhood's, so a fixed split, or the largest walk started
last, would leave cores idle). The workers write to the same SQLite file (WAL: one writer at a
time, each page's votes one short transaction); the serving process keeps answering, handles
its inbox and counts what they wrote at its next sync. Later passes, which find little new,
stay in the serving process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from activitypub import as2
from activitypub.fetch import FetchError
from federation.aggregator.backfill_worker import MODULE, config_to_wire
from federation.aggregator.config import AggregatorConfig
from federation.store.aggregator import RosterRow

if TYPE_CHECKING:
    from federation.aggregator.wiring import Aggregator, Runtime

log = logging.getLogger(__name__)

#: Instances each worker walks at once: a walk mostly waits on its instance's pages.
WALKS_PER_WORKER = 2
#: Most workers "as many as the cores" starts.
AUTO_WORKERS_MAX = 4
#: Support-log heads read at once to rank the instances by size.
SIZE_FETCHES_AT_ONCE = 8
Report = dict[str, int | str]


def workers_for(config: AggregatorConfig) -> int:
    """How many processes share a large backfill: the configured number, or for 0 one per
    core (at most ``AUTO_WORKERS_MAX``)."""
    if config.backfill_workers > 0:
        return config.backfill_workers
    return max(1, min(AUTO_WORKERS_MAX, os.cpu_count() or 1))


async def backfill_at_start(aggregator: Aggregator, runtime: Runtime) -> Report:
    """The start-up pass: shared among workers when nothing is stored yet and there is more
    than one instance to walk; otherwise the server's own :meth:`.Backfiller.run`."""
    workers = workers_for(aggregator.config)
    rows = await aggregator.store.roster(active_only=True)
    empty = (await aggregator.log.heads()).activities == 0
    if workers < 2 or len(rows) < 2 or not empty:
        return await runtime.backfill.run()
    ordered = await largest_first(runtime, rows)
    report = await shared_backfill(aggregator.config, ordered, workers)
    await aggregator.state.sync()
    return {row.origin: report[row.origin] for row in rows}


async def largest_first(runtime: Runtime, rows: Sequence[RosterRow]) -> list[RosterRow]:
    """``rows`` by the size of their instance's support log (its ``totalItems``), largest
    first: the longest walks start first, so no worker is left with one at the end while the
    others idle. An instance whose log cannot be read counts as empty."""
    fetcher = runtime.federation.fetcher
    gate = asyncio.Semaphore(SIZE_FETCHES_AT_ONCE)

    async def size(row: RosterRow) -> int:
        if fetcher is None:
            return 0
        async with gate:
            try:
                head = (await fetcher.get_activity(row.origin + "/support-log")).document
            except FetchError:
                return 0
        total = as2.first(head, "totalItems")
        return total if isinstance(total, int) and not isinstance(total, bool) else 0

    sizes = await asyncio.gather(*(size(row) for row in rows))
    ranked = sorted(range(len(rows)), key=lambda i: -sizes[i])  # stable: roster order on ties
    return [rows[i] for i in ranked]


async def shared_backfill(
    config: AggregatorConfig,
    rows: Sequence[RosterRow],
    workers: int,
    *,
    command: Sequence[str] = (sys.executable, "-m", MODULE),
) -> Report:
    """Walk ``rows`` in ``workers`` processes running ``command``; per origin (in ``rows``
    order), the items read or the error met. A worker that dies fails only its walks."""
    pending = deque(row.origin for row in rows)
    report: Report = {}
    count = max(1, min(workers, len(rows)))
    await asyncio.gather(*(_drive(command, config, pending, report) for _ in range(count)))
    return {row.origin: report.get(row.origin, "not walked") for row in rows}


async def _drive(
    command: Sequence[str], config: AggregatorConfig, pending: deque[str], report: Report
) -> None:
    """One worker's life: start it, hand it origins as it reports, close it, reap it."""
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    in_flight: set[str] = set()
    try:
        process.stdin.write(config_to_wire(config).encode() + b"\n")
        for _ in range(WALKS_PER_WORKER):
            _hand_out(process.stdin, pending, in_flight)
        if not in_flight:
            process.stdin.close()
        while in_flight:
            line = await process.stdout.readline()
            if not line:
                break  # it died: its walks are reported below
            origin = _record(line, report)
            if origin in in_flight:
                in_flight.discard(origin)
                _hand_out(process.stdin, pending, in_flight)
                if not in_flight:
                    process.stdin.close()
        code = await process.wait()
    finally:
        if process.returncode is None:  # cancelled (the server stops): stop it too
            process.terminate()
            await process.wait()
    for origin in in_flight:
        report[origin] = f"the backfill worker exited ({code}) before finishing"


def _hand_out(stdin: asyncio.StreamWriter, pending: deque[str], in_flight: set[str]) -> None:
    """Give the worker the next origin to walk, if any is left."""
    if pending:
        origin = pending.popleft()
        in_flight.add(origin)
        stdin.write(json.dumps({"origin": origin}).encode() + b"\n")


def _record(line: bytes, report: Report) -> str | None:
    """File one report line; the origin it is about (None for a line that is not one)."""
    try:
        message = json.loads(line)
        origin = str(message["origin"])
    except (ValueError, KeyError, TypeError):
        log.warning("backfill worker said %r", line[:200])
        return None
    result = message.get("read", message.get("error"))
    report[origin] = result if isinstance(result, int | str) else repr(result)
    return origin
