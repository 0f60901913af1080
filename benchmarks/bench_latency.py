"""Act→counted latency at the aggregator while a steady rate of supports is sustained.

``python -m benchmarks.bench_latency [--rate R] [--seconds T] [--poll P]``

Issue 8 asks for p99 act→counted under 1 s while 1,000 supports per second are sustained. The
city is :mod:`benchmarks.ingestkit.city`'s (real ``barri serve`` instances, the aggregator in
its own process); after a warm-up (every actor, key, proposal and process cached), ``R × T``
supports, proved and HTTP-signed with the residents' real keys, are POSTed to the shared inbox
open-loop (:func:`benchmarks.ingestkit.blaster.paced`): support i is due ``i / R`` s after the
start, whether or not the aggregator keeps up, and every latency is measured from that due
time, so a backlog shows in full.

Two latencies per support, both from its due time (wall clock, one machine):

- ``ingested``: until the aggregator stored it (its ``received_at``, written by the inbox batch
  that verifies it; that batch commits and feeds the tally right after);
- ``counted``: until ``GET /api/v1/processes``, polled every P s, first shows a total that
  includes it. The aggregator counts supports in the order it stores them, so the k-th stored
  is counted once the total reaches k: an upper bound, late by at most one poll interval.

The aggregator's own ``barri_inbox_lag_seconds`` histogram (receipt → committed and counted,
read from /metrics before and after) gives a third view, server-side, to its bucket bounds.

Also: the rate achieved, the POST round trips, the aggregator's CPU per support (the polls
included). Nothing here
asserts timings; results go to ``benchmarks/results/latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import shutil
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.bench_ingest import WAIT, ceiling, code_version, deliver, plan, take
from benchmarks.citysim.cluster import ROOT
from benchmarks.citysim.measure import percentiles
from benchmarks.ingestkit import aggregator as agg
from benchmarks.ingestkit import deliveries
from benchmarks.ingestkit.city import BenchCity, add_shape_arguments, build, shape_of

RESULTS = Path(__file__).resolve().parent / "results"


def counted_times(
    ingested: list[tuple[float, str]], polls: list[tuple[float, int]], base: int
) -> dict[str, float]:
    """When each support first showed in a polled total: the k-th stored (by ``received_at``)
    is counted at the first poll whose total reaches ``base + k``."""
    found: dict[str, float] = {}
    totals = [total for _, total in polls]
    for k, (_, like) in enumerate(sorted(ingested), start=1):
        # Totals only grow; bisect finds the first poll at or past base + k.
        at = bisect.bisect_left(totals, base + k)
        if at < len(polls):
            found[like] = polls[at][0]
    return found


def latencies(
    due: dict[str, float], ingested: dict[str, float], counted: dict[str, float]
) -> dict[str, Any]:
    """p50/p99/max of due→ingested and due→counted, and how many were never seen."""
    return {
        "ingested_s": percentiles([ingested[k] - t for k, t in due.items() if k in ingested]),
        "counted_s": percentiles([counted[k] - t for k, t in due.items() if k in counted]),
        "never_counted": sum(1 for k in due if k not in counted),
    }


def stored_at(database: Path, ids: set[str]) -> dict[str, float]:
    """``received_at`` of the supports with these ids, read-only from the aggregator's file."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT id, MIN(received_at) FROM activities WHERE kind = 'support' GROUP BY id"
        )
        return {str(like): float(when) for like, when in rows if like in ids}


async def lag_buckets(session: aiohttp.ClientSession, base_url: str) -> dict[str, float]:
    """The aggregator's own ``barri_inbox_lag_seconds`` buckets (le -> rows), from /metrics."""
    async with session.get(base_url + "/metrics") as response:
        text = await response.text()
    prefix = 'barri_inbox_lag_seconds_bucket{le="'
    return {
        line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def bucket_quantile(before: dict[str, float], after: dict[str, float], q: float) -> str:
    """The ``le`` bound of the bucket holding the q-quantile of the rows added between two
    readings of the histogram (cumulative buckets, in the exposition's order)."""
    added = {le: after[le] - before.get(le, 0.0) for le in after}
    total = added.get("+Inf", 0.0)
    return next((le for le, seen in added.items() if seen >= q * total and total), "none")


async def poll(
    session: aiohttp.ClientSession, base_url: str, every: float, stop: asyncio.Event
) -> list[tuple[float, int]]:
    """(time.time(), total counted) every ``every`` s until ``stop``; totals kept monotone."""
    found: list[tuple[float, int]] = []
    while not stop.is_set():
        began = time.monotonic()
        try:
            total = await agg.counted(session, base_url)
        except (aiohttp.ClientError, OSError):
            total = -1
        if total >= 0:
            found.append((time.time(), max(total, found[-1][1] if found else 0)))
        await asyncio.sleep(max(0.0, every - (time.monotonic() - began)))
    return found


async def sustained(
    bench: BenchCity, session: aiohttp.ClientSession, args: argparse.Namespace, path: Path
) -> dict[str, Any]:
    """R × T supports at R per second, open loop; their latencies and the aggregator's CPU."""
    items = take(plan(bench, args.limit), int(args.rate * args.seconds) + 2 * len(bench.residents))
    warm, items = items[: 2 * len(bench.residents)], items[2 * len(bench.residents) :]
    warmup = await deliver(bench, session, warm, path.with_name("warm.bin"), 64, "rfc9421")
    await asyncio.to_thread(deliveries.build, items, bench.inbox, bench.aggregator_actor, path)
    ids = [str(body["id"]) for body in deliveries.bodies(deliveries.read(path))]
    site, base_url = bench.city.aggregator, bench.city.aggregator.base_url
    base = await agg.counted(session, base_url)
    pid = agg.pid(bench.city)
    cpu = agg.cpu_seconds(pid)
    lag_before = await lag_buckets(session, base_url)
    stop = asyncio.Event()
    poller = asyncio.create_task(poll(session, base_url, args.poll, stop))
    blaster = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.ingestkit.blaster", str(path), "127.0.0.1",
        str(site.port), str(args.concurrency), str(args.rate), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await blaster.communicate()
    blast = json.loads(out)
    accepted = int(blast["statuses"].get("202", 0))
    try:
        await agg.wait_counted(session, base_url, base + accepted, WAIT, base)
        await asyncio.sleep(2 * args.poll)  # one more poll past the last
    finally:
        stop.set()
        polls = await poller
    cpu = agg.cpu_seconds(pid) - cpu
    ended = polls[-1][0] if polls else time.time()  # no poll answered: now, not a crash
    lag_after = await lag_buckets(session, base_url)
    timeline = blast.pop("timeline")
    due = {like: row[0] for like, row in zip(ids, timeline, strict=True) if row[3] == 202}
    ingested = await asyncio.to_thread(stored_at, site.directory / "barri.sqlite3", set(due))
    counted = counted_times([(t, k) for k, t in ingested.items()], polls, base)
    span = max(row[1] for row in timeline) - min(row[1] for row in timeline)
    return {
        "rate_asked": args.rate,
        "supports": len(items),
        "accepted": accepted,
        "statuses": blast["statuses"],
        "failures": blast["failures"],
        "sent_per_s": round(len(items) / max(1e-9, span), 1),
        "late_sends_s": percentiles([row[1] - row[0] for row in timeline]),
        "post_round_trip_s": percentiles([row[2] - row[1] for row in timeline]),
        "polls": len(polls),
        "aggregator_cpu_seconds": round(cpu, 2),
        "cpu_ms_per_support": round(1000 * cpu / max(1, accepted), 3),
        "aggregator_busy": round(cpu / max(1e-9, ended - blast["start"]), 3),
        "warmup_supports": warmup["accepted"],
        "server_lag_p50_le_s": bucket_quantile(lag_before, lag_after, 0.5),
        "server_lag_p99_le_s": bucket_quantile(lag_before, lag_after, 0.99),
    } | latencies(due, ingested, counted)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the city, warm it, sustain the rate; the results."""
    directory = args.dir.resolve()
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    shape = shape_of(args)
    results: dict[str, Any] = {
        "shape": vars(shape),
        "poll_s": args.poll,
        "concurrency": args.concurrency,
        "ceiling": ceiling(),
        "code": code_version(ROOT),
    }
    async with aiohttp.ClientSession() as session:
        bench = await build(directory, shape, session, None)
        try:
            results["sustained"] = await sustained(bench, session, args, directory / "load.bin")
        finally:
            await bench.city.servers.stop()
    return results


def summary(results: dict[str, Any]) -> str:
    """A few readable lines."""
    run = results["sustained"]
    ing, cnt = run["ingested_s"], run["counted_s"]
    return "\n".join([
        f"latency: {run['accepted']} supports at {run['sent_per_s']}/s"
        f" (asked {run['rate_asked']}/s; {run['statuses']})",
        f"  due→counted p50 {cnt['p50']} s, p99 {cnt['p99']} s, max {cnt['max']} s"
        f" (polled every {results['poll_s']} s; never counted: {run['never_counted']})",
        f"  due→ingested p50 {ing['p50']} s, p99 {ing['p99']} s, max {ing['max']} s;"
        f" the aggregator's own lag histogram: p50 ≤ {run['server_lag_p50_le_s']} s,"
        f" p99 ≤ {run['server_lag_p99_le_s']} s",
        f"  late sends p99 {run['late_sends_s']['p99']} s; POST round trip p99"
        f" {run['post_round_trip_s']['p99']} s",
        f"  aggregator {run['cpu_ms_per_support']} CPU ms per support, busy"
        f" {run['aggregator_busy']} of a core",
    ])  # fmt: skip


def main() -> int:
    """Parse the options, run, write ``benchmarks/results/latency.json`` (or ``--out``)."""
    parser = argparse.ArgumentParser(
        prog="bench_latency", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_shape_arguments(parser, ".bench-latency")
    parser.add_argument("--rate", type=float, default=1000.0, help="supports per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to sustain it")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between total polls")
    parser.add_argument("--concurrency", type=int, default=256, help="connections at most")
    parser.add_argument("--out", type=Path, default=RESULTS / "latency.json")
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.poll <= 0:
        parser.error("--rate, --seconds and --poll must be positive")
    results = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
