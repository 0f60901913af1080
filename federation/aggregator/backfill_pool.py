"""A large backfill shared among worker processes, one per core (DESIGN.md §6).

An aggregator that starts with nothing stored (its first start, or a rebuild from an empty
database) must fetch and verify every support of the city (Barcelona's 356,000: minutes of a
core), and verifying, parsing and storing are Python under one interpreter lock. So that first
pass is shared among ``backfill_workers`` processes (:mod:`.backfill_worker`), in three
phases, each instance a job handed out as a worker finishes one, largest first (an instance
may hold far more than another, so a fixed split, or the largest job started last, would
leave cores idle). First every instance's residents (the votes one instance lists name other
instances' residents, whose actors are then in the shared database rather than one signed GET
each); then every instance's votes (its outboxes and its own residents' support log: all the
totals need, so they are right as soon as this phase ends); then the rest (the rest of each
log, without the instances whose own log was read: each support read once, from its author's
instance; the processes' proposals and debates, and the threads). The workers write to the same
SQLite file (WAL: one writer at a time, each page's votes one short transaction); the serving
process keeps answering, handles its inbox and counts what they wrote at its next sync. Later
passes, which find little new, stay in the serving process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from activitypub import as2
from activitypub.fetch import FetchError
from federation.aggregator.backfill import own_log_url
from federation.aggregator.backfill_worker import MODULE, RESIDENTS, REST, VOTES, config_to_wire
from federation.aggregator.config import AggregatorConfig
from federation.store.aggregator import RosterRow
from federation.tally.records import normal_origin

if TYPE_CHECKING:
    from federation.aggregator.wiring import Aggregator, Runtime

log = logging.getLogger(__name__)

#: Instances each worker walks at once: a walk mostly waits on its instance's pages.
WALKS_PER_WORKER = 2
#: Instances whose residents each worker reads at once (their documents cost the instances
#: more than reading them costs the worker).
RESIDENTS_PER_WORKER = 4
#: Most workers "as many as the cores" starts.
AUTO_WORKERS_MAX = 4
#: Seconds between two counts of what the workers wrote, while they run.
COUNT_EVERY = 2.0
#: Support-log heads read at once to rank the instances by size.
SIZE_FETCHES_AT_ONCE = 8
Report = dict[str, int | str]
#: One job for a worker: (step, origin).
Job = tuple[str, str]
#: The origins whose own residents' log the votes phase read (asked once it is done).
Covered = Callable[[], Awaitable[Collection[str]]]
#: The origins in the order their votes are handed out (asked once the residents were read).
Order = Callable[[], Awaitable[Sequence[str]]]
Process = asyncio.subprocess.Process


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
    started = runtime.backfill.now()
    # Ranked while the workers start and read the residents (which need no order).
    ranking = asyncio.create_task(largest_first(runtime, rows), name="rebuild-ranking")

    async def order() -> list[str]:
        return [row.origin for row in await ranking]

    async def covered() -> Collection[str]:
        return await runtime.backfill.covered_since(started)

    async with runtime.backfill.pass_running(), runtime.publisher.held():
        # (no Tally of partial counts until the workers are done)
        counting = asyncio.create_task(keep_counting(aggregator), name="rebuild-counting")
        try:
            report = await shared_backfill(
                aggregator.config, rows, workers, covered=covered, order=order
            )
        finally:
            for task in (counting, ranking):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await aggregator.state.sync()
    return {row.origin: report[row.origin] for row in rows}


async def keep_counting(aggregator: Aggregator, every: float = COUNT_EVERY) -> None:
    """Count what the workers wrote every ``every`` seconds, until cancelled: the counting
    keeps pace with them (on the cores they leave free while they wait for pages), so the
    sync after the last of them is short instead of counting the whole city at once."""
    while True:
        await aggregator.state.sync()
        await asyncio.sleep(every)


async def largest_first(runtime: Runtime, rows: Sequence[RosterRow]) -> list[RosterRow]:
    """``rows`` by the items their votes step reads, largest first: the ``totalItems`` of the
    instance's own residents' support log and of its Group's outbox (the city's instance has
    few residents but announces every proposal of its processes). The longest jobs start
    first, so no worker is left with one at the end while the others idle. What cannot be
    read counts as empty."""
    fetcher = runtime.federation.fetcher
    gate = asyncio.Semaphore(SIZE_FETCHES_AT_ONCE)

    async def total(url: str | None) -> int:
        if fetcher is None or url is None:
            return 0
        async with gate:
            try:
                head = (await fetcher.get_activity(url)).document
            except FetchError:
                return 0
        found = as2.first(head, "totalItems")
        return found if isinstance(found, int) and not isinstance(found, bool) else 0

    async def outbox(row: RosterRow) -> str | None:
        if fetcher is None or row.group_actor is None:
            return None
        async with gate:
            try:
                actor = (await fetcher.get_activity(row.group_actor)).document
            except FetchError:
                return None
        found = as2.first_id(actor, "outbox")
        return found if found is not None and normal_origin(found) == row.origin else None

    async def size(row: RosterRow) -> int:
        return await total(own_log_url(row.origin)) + await total(await outbox(row))

    sizes = await asyncio.gather(*(size(row) for row in rows))
    ranked = sorted(range(len(rows)), key=lambda i: -sizes[i])  # stable: roster order on ties
    return [rows[i] for i in ranked]


async def shared_backfill(
    config: AggregatorConfig,
    rows: Sequence[RosterRow],
    workers: int,
    *,
    covered: Covered | None = None,
    order: Order | None = None,
    command: Sequence[str] = (sys.executable, "-m", MODULE),
) -> Report:
    """Walk ``rows`` in ``workers`` processes running ``command``; per origin (in ``rows``
    order), the items read or the error met. A worker that dies fails only its jobs.

    Three phases, each done by every instance before the next starts: its ``/residents``,
    its votes, the rest. A log names voters of other instances (the city's, residents of all
    73): read before their own instance's residents, each of them would cost a signed GET of
    its actor, and the database the workers share has them all once the first phase is done.
    The rest of each log leaves out the ``covered`` origins' residents (asked after the votes;
    none left out without it). The votes and the rest are handed out in ``order`` (asked once
    the residents were read; ``rows`` order without it), the residents in ``rows`` order,
    ``RESIDENTS_PER_WORKER`` at once (serving actor documents, the instances are the slower
    side there)."""
    origins = [row.origin for row in rows]
    report: Report = {}
    count = max(1, min(workers, len(rows)))
    processes: list[Process] = []
    try:
        for _ in range(count):
            processes.append(await _start(command, config))
        ranked = origins
        for step in (RESIDENTS, VOTES, REST):
            extra, at_once = {}, WALKS_PER_WORKER
            if step == RESIDENTS:
                at_once = RESIDENTS_PER_WORKER
            elif step == VOTES and order is not None:
                ranked = list(await order())
            elif step == REST:
                extra["covered"] = sorted(await covered()) if covered is not None else []
            jobs = origins if step == RESIDENTS else ranked
            pending = deque((step, origin) for origin in jobs)
            alive = [process for process in processes if process.returncode is None]
            await asyncio.gather(
                *(_phase(process, pending, report, extra, at_once) for process in alive)
            )
        for process in processes:
            if process.returncode is None and process.stdin is not None:
                process.stdin.close()
        for process in processes:
            await process.wait()
    finally:
        for process in processes:
            if process.returncode is None:  # cancelled (the server stops): stop it too
                process.terminate()
                await process.wait()
    return {origin: report.get(origin, "not walked") for origin in origins}


async def _start(command: Sequence[str], config: AggregatorConfig) -> Process:
    """A worker, told the aggregator's config."""
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdin is not None
    process.stdin.write(config_to_wire(config).encode() + b"\n")
    return process


async def _phase(
    process: Process,
    pending: deque[Job],
    report: Report,
    extra: Mapping[str, object],
    at_once: int = WALKS_PER_WORKER,
) -> None:
    """Hand the worker jobs of one phase (each with ``extra``, ``at_once`` in flight) as it
    reports, until none is left or it dies."""
    assert process.stdin is not None and process.stdout is not None
    in_flight: set[Job] = set()
    for _ in range(at_once):
        _hand_out(process.stdin, pending, in_flight, extra)
    while in_flight:
        line = await process.stdout.readline()
        if not line:
            code = await process.wait()  # it died: its jobs in flight are failed
            for _step, origin in in_flight:
                _file(report, origin, f"the backfill worker exited ({code}) before finishing")
            return
        job = _record(line, report)
        if job in in_flight:
            in_flight.discard(job)
            _hand_out(process.stdin, pending, in_flight, extra)


def _hand_out(
    stdin: asyncio.StreamWriter,
    pending: deque[Job],
    in_flight: set[Job],
    extra: Mapping[str, object],
) -> None:
    """Give the worker the next job, if any is left."""
    if pending:
        step, origin = job = pending.popleft()
        in_flight.add(job)
        stdin.write(json.dumps({"origin": origin, "step": step, **extra}).encode() + b"\n")


def _record(line: bytes, report: Report) -> Job | None:
    """File one report line; the job it is about (None for a line that is not one)."""
    try:
        message = json.loads(line)
        origin, step = str(message["origin"]), str(message.get("step", VOTES))
    except (ValueError, KeyError, TypeError):
        log.warning("backfill worker said %r", line[:200])
        return None
    result = message.get("read", message.get("error"))
    _file(report, origin, result if isinstance(result, int | str) else repr(result))
    return step, origin


def _file(report: Report, origin: str, result: int | str) -> None:
    """Add a job's items read to its origin's; an error, once met, is what the origin reports."""
    before = report.get(origin, 0)
    if isinstance(before, str):
        return
    report[origin] = before + result if isinstance(result, int) else result
