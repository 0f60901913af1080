"""A backfill worker: a process that walks the roster instances its parent names (DESIGN.md §6).

:mod:`.backfill_pool` starts it as ``python -m federation.aggregator.backfill_worker`` when a
backfill is large enough to share among the machine's cores. Its stdin carries one JSON line
with the aggregator's config (:func:`config_to_wire`), then one ``{"origin": …, "step": …}``
line per job, and closes when there are no more; its stdout carries one line per job done,
``{"origin": …, "step": …, "read": n}`` or ``{…, "error": "…"}``. The step ``residents``
reads only the instance's ``/residents`` (:meth:`.Backfiller.residents`); ``votes`` (the
default) what else the totals need of it (:meth:`.Backfiller.votes`, its residents left to
the step before); ``rest`` the rest, its log
without the Likes and Undos by residents of the job's ``covered`` origins among it
(:meth:`.Backfiller.rest`). Each job is started at once (the parent bounds how many are in
flight).

It opens the aggregator's own database and walks exactly as the server would
(:class:`.Backfiller`: signed GETs as the Service, every proof verified, rows written
by ingest), but counts nothing: the serving process feeds the rows to its tally at its next
sync. It runs no inbox and sends no delivery. Logs go to stderr, the server's log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from federation.aggregator.backfill import BackfillError
from federation.aggregator.config import AggregatorConfig
from federation.aggregator.wiring import (
    Aggregator,
    Runtime,
    build_federation,
    build_runtime,
    open_aggregator,
)
from federation.serving import StartupError

log = logging.getLogger(__name__)

MODULE = "federation.aggregator.backfill_worker"
#: A job's steps: an instance's residents alone, what the totals need of it, or the rest.
RESIDENTS, VOTES, REST = "residents", "votes", "rest"
STEPS = (RESIDENTS, VOTES, REST)
#: Allocations between young-generation collections (CPython's default is 700; see main).
GC_YOUNG = 100_000
_PATHS = ("data_dir", "database")

#: The next line from the parent ("" once it closed the pipe).
LineSource = Callable[[], Awaitable[str]]
#: Send one report line to the parent.
Emit = Callable[[Mapping[str, Any]], None]


def config_to_wire(config: AggregatorConfig) -> str:
    """The config as one JSON line for a worker (paths as strings)."""
    fields = dataclasses.asdict(config)
    for name in _PATHS:
        fields[name] = str(fields[name])
    return json.dumps(fields)


def config_from_wire(line: str) -> AggregatorConfig:
    """The config a parent sent (:func:`config_to_wire`); ValueError when it is not one."""
    try:
        fields = json.loads(line)
        for name in _PATHS:
            fields[name] = Path(fields[name])
        return AggregatorConfig(**fields)
    except (TypeError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"not an aggregator config: {exc}") from exc


async def work(lines: LineSource, emit: Emit) -> None:
    """Open the aggregator named by the first line, walk each origin named after it."""
    config = config_from_wire(await lines())
    async with open_aggregator(config, counting=False) as aggregator:
        federation = await build_federation(aggregator)
        runtime = build_runtime(aggregator, federation)
        federation.open_client()
        try:
            walks: list[asyncio.Task[None]] = []
            while line := (await lines()).strip():
                job = json.loads(line)
                origin, step = str(job["origin"]), str(job.get("step", VOTES))
                covered = frozenset(str(o) for o in job.get("covered", ()))
                walks.append(
                    asyncio.create_task(walk(aggregator, runtime, origin, step, emit, covered))
                )
            await asyncio.gather(*walks)
        finally:
            await federation.stop()


async def walk(
    aggregator: Aggregator,
    runtime: Runtime,
    origin: str,
    step: str,
    emit: Emit,
    covered: frozenset[str] = frozenset(),
) -> None:
    """Do one step (``residents``, ``votes`` or ``rest``) of one active roster instance and
    report what it read, or why it stopped."""
    job = {"origin": origin, "step": step}
    row = await aggregator.store.roster_entry(origin)
    if row is None or not row.active:
        emit(job | {"error": "not an active roster instance"})
        return
    if step not in STEPS:
        emit(job | {"error": f"no such step: {step}"})
        return
    backfill = runtime.backfill
    try:
        if step == RESIDENTS:
            read = await backfill.residents(row)
        elif step == REST:
            read = await backfill.rest(row, covered)
        else:
            read = await backfill.votes(row, residents=False)  # the first phase read them
    except BackfillError as exc:
        log.warning("backfill of %s stopped: %s", origin, exc)
        emit(job | {"error": str(exc)})
    except Exception as exc:
        # A bug must not take the other walks down with it: say it, report it, go on.
        log.exception("backfill of %s failed", origin)
        emit(job | {"error": f"{type(exc).__name__}: {exc}"})
    else:
        emit(job | {"read": read})


def _emit(report: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


async def _stdin_line() -> str:
    return await asyncio.to_thread(sys.stdin.readline)


def main() -> int:
    """Run as the worker of a parent that feeds stdin and reads stdout."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s backfill worker %(process)d %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # A page's parsed items outlive a young collection by milliseconds, and each one promoted
    # brings the next full collection (every cached actor document walked) nearer: with the
    # default 700 a walk spent ~3 % of its CPU collecting (perf, Barcelona x1 rebuild) and
    # workers' CPU fell 94-95 -> 91.6 s with this. The documents are acyclic, freed by refcount.
    gc.set_threshold(GC_YOUNG, 50, 100)
    try:
        asyncio.run(work(_stdin_line, _emit))
    except (ValueError, KeyError, StartupError) as exc:
        print(f"backfill worker: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
