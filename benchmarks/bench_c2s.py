"""C2S write path and outbound delivery of one neighbourhood instance, end to end.

One real ``barri serve`` (a copy of a cached template: R verified residents with personal tokens,
a process in its supports phase, P proposals), reporting to a loopback sink that answers 202 to
every signed delivery and follows the instance's Group. The residents' clients then POST, with
K requests in flight: supports (``Like``), withdrawals (``Undo`` of a Like id) and comments
(bare ``Note``s). Measured: acts/s answered 201, p50/p99 latency, the instance's CPU seconds per
act (/proc, both of its threads), the time until the sink got every delivery (deliveries/s)
and the instance's peak RSS. ``--profile`` repeats the run with the instance under cProfile
(switched on for the acts and the drain only) and writes the top of pstats.

    .venv/bin/python -m benchmarks.bench_c2s [--supports 6000] [--profile]
        [--baseline OTHER_CHECKOUT --rounds 3]   # alternate runs of two versions, medians

Results: ``benchmarks/results/c2s.json`` (and ``c2s-profile.txt``). Nothing asserts timings.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import os
import pstats
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.c2skit import load
from benchmarks.c2skit.template import (
    ROOT,
    BenchError,
    Template,
    clean_env,
    free_port,
    load_or_build,
    start_server,
    stop_server,
    wait_healthy,
)
from benchmarks.citysim.measure import proc_stats

RESULTS = ROOT / "benchmarks" / "results"
CACHE = Path(tempfile.gettempdir()) / "barri-bench-c2s"
DRAIN_WAIT = 600.0
DELIVERED = ("Like", "Undo", "Announce")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--residents", type=int, default=300)
    parser.add_argument("--proposals", type=int, default=200)
    parser.add_argument("--limit", type=int, default=0, help="supports per participant (0: none)")
    parser.add_argument("--supports", type=int, default=6000)
    parser.add_argument("--withdrawals", type=int, default=600)
    parser.add_argument("--comments", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="also a run under cProfile")
    parser.add_argument("--profile-only", action="store_true", help="only the cProfile run")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where templates are kept")
    parser.add_argument("--out", type=Path, default=RESULTS / "c2s.json")
    parser.add_argument("--label", default="", help="a note kept in the results")
    parser.add_argument("--py-spy", type=Path, help="a py-spy to sample the instance with")
    parser.add_argument(
        "--py-spy-from", choices=("acts", "drain"), default="acts", help="start sampling at"
    )
    parser.add_argument("--py-spy-out", type=Path, default=Path("/tmp/c2s-pyspy.txt"))
    parser.add_argument(
        "--code", type=Path, default=ROOT, help="checkout whose barri serve runs (a worktree)"
    )
    parser.add_argument("--baseline", type=Path, help="another checkout to run alternately")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each checkout")
    return parser.parse_args(argv)


async def _start_sink() -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    sink = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.c2skit.sink",
        str(port),
        cwd=ROOT,
        env=clean_env(),
        stdin=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url + "/stats") as response:
                    if response.status == 200:
                        return sink, url
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise BenchError("the sink did not start")


async def _stats(session: aiohttp.ClientSession, sink: str) -> dict[str, Any]:
    async with session.get(sink + "/stats") as response:
        result: dict[str, Any] = await response.json()
        return result


def _delivered(stats: dict[str, Any]) -> int:
    return sum(int(stats["by_type"].get(kind, 0)) for kind in DELIVERED)


async def _follow_group(session: aiohttp.ClientSession, sink: str, template: Template) -> None:
    """The sink follows the Group (so comments are Announced to it) and waits for the Accept."""
    group = template.base_url + "/groups/bench"
    params = {"object": group, "inbox": group + "/inbox"}
    async with session.post(sink + "/follow", params=params) as response:
        answer = await response.json()
    if answer["status"] != 202:
        raise BenchError(f"the Group refused the sink's Follow: {answer}")
    for _ in range(600):
        if (await _stats(session, sink))["by_type"].get("Accept"):
            return
        await asyncio.sleep(0.05)
    raise BenchError("the Group did not Accept the sink's Follow")


def _phase(name: str, outcome: load.Outcome, cpu: float) -> dict[str, Any]:
    acts = outcome.accepted
    return {
        "phase": name,
        "acts": acts,
        "statuses": {str(k): v for k, v in sorted(outcome.statuses.items())},
        "seconds": round(outcome.seconds, 3),
        "acts_per_s": round(acts / outcome.seconds, 1) if outcome.seconds else 0.0,
        "p50_ms": round(load.percentile(outcome.latencies, 50) * 1000, 2),
        "p99_ms": round(load.percentile(outcome.latencies, 99) * 1000, 2),
        "max_ms": round(max(outcome.latencies, default=0.0) * 1000, 2),
        "instance_cpu_s": round(cpu, 2),
        "cpu_ms_per_act": round(cpu / acts * 1000, 3) if acts else None,
        "errors": outcome.errors[:5],
    }


async def _drain(
    session: aiohttp.ClientSession, sink: str, expected: int, pid: int
) -> dict[str, Any]:
    """Until the sink got ``expected`` deliveries; their timing and the instance's CPU then."""
    deadline = time.monotonic() + DRAIN_WAIT
    while True:
        stats = await _stats(session, sink)
        if _delivered(stats) >= expected:
            return {**stats, "cpu": proc_stats(pid)}
        if time.monotonic() > deadline:
            raise BenchError(f"the sink got {_delivered(stats)} of {expected} deliveries")
        await asyncio.sleep(0.02)


async def one_run(
    args: argparse.Namespace, template: Template, profile_to: Path | None, code: Path
) -> Any:
    """A fresh copy of the template, the sink, the acts, the drain: one result record."""
    workdir = Path(tempfile.mkdtemp(prefix="barri-c2s-"))
    try:
        shutil.copytree(template.directory, workdir / "instance")
        run = dataclasses.replace(template, directory=workdir / "instance")
        sink_process, sink = await _start_sink()
        server = await start_server(
            run, report_to=sink + "/actor", profile_to=profile_to, code=code
        )
        try:
            await wait_healthy(run.base_url, server)
            return await _measure(args, run, server, sink, profiling=profile_to is not None)
        finally:
            await stop_server(server)
            sink_process.terminate()
            await sink_process.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _measure(
    args: argparse.Namespace,
    run: Template,
    server: asyncio.subprocess.Process,
    sink: str,
    *,
    profiling: bool,
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    pid = int(server.pid)
    async with aiohttp.ClientSession() as session:
        await _follow_group(session, sink, run)
        likes = load.supports(run, args.supports, rng)
        # The first acts fill the actor cache and the connection pools: not measured.
        warmed = await load.run(run, likes[:50], args.concurrency)
        before = await _stats(session, sink)
        if profiling:
            server.send_signal(signal.SIGUSR1)
        spy = await _spy(args, pid) if args.py_spy_from == "acts" else None
        start = {"cpu": _cpu(pid), "wall": time.time(), "load": os.getloadavg()[0]}
        phases, outcomes = [], []
        for name, make in (
            ("supports", lambda: likes[50:]),
            ("withdrawals", lambda: load.withdrawals(outcomes[0].likes, args.withdrawals, rng)),
            ("comments", lambda: load.comments(run, args.comments, rng)),
        ):
            cpu0 = _cpu(pid)
            outcome = await load.run(run, make(), args.concurrency)
            outcomes.append(outcome)
            phases.append(_phase(name, outcome, _cpu(pid) - cpu0))
        end = {"cpu": _cpu(pid), "wall": time.time(), "stats": await _stats(session, sink)}
        await _stop_spy(spy)
        spy = await _spy(args, pid) if args.py_spy_from == "drain" else None
        expected = _delivered(before) + sum(o.accepted for o in outcomes)
        drained = await _drain(session, sink, expected, pid)
        await _stop_spy(spy)
        if profiling:
            server.send_signal(signal.SIGUSR2)
    result = _totals(outcomes, start, end, before, drained)
    return {"warmup_acts": warmed.accepted, **result, "phases": phases}


async def _spy(args: argparse.Namespace, pid: int) -> asyncio.subprocess.Process | None:
    """py-spy sampling the instance until stopped (folded stacks, idle samples left out)."""
    if args.py_spy is None:
        return None
    return await asyncio.create_subprocess_exec(
        str(args.py_spy), "record", "-p", str(pid), "-r", "200", "-f", "raw", "--threads",
        "-o", str(args.py_spy_out), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _stop_spy(spy: asyncio.subprocess.Process | None) -> None:
    """Stop sampling: py-spy writes its file on SIGINT."""
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await spy.wait()


def _cpu(pid: int) -> float:
    return float(proc_stats(pid)["cpu_seconds"])


def _totals(
    outcomes: list[load.Outcome],
    start: dict[str, Any],
    end: dict[str, Any],
    before: dict[str, Any],
    drained: dict[str, Any],
) -> dict[str, Any]:
    """Whole-run figures, and the CPU split between acts and deliveries.

    The drain (after the last act) does only deliveries: its CPU per delivery, charged for the
    deliveries sent while the acts ran, leaves the acts' own CPU.
    """
    acts = sum(o.accepted for o in outcomes)
    act_seconds = sum(o.seconds for o in outcomes)
    cpu = drained["cpu"]["cpu_seconds"] - start["cpu"]
    delivered = _delivered(drained) - _delivered(before)
    during = _delivered(end["stats"]) - _delivered(before)
    drain_cpu = drained["cpu"]["cpu_seconds"] - end["cpu"]
    per_delivery = drain_cpu / (delivered - during) if delivered > during else None
    own = end["cpu"] - start["cpu"] - during * (per_delivery or 0.0)
    latencies = [x for o in outcomes for x in o.latencies]
    return {
        "acts": acts,
        "acts_per_s": round(acts / act_seconds, 1),
        "p50_ms": round(load.percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(load.percentile(latencies, 99) * 1000, 2),
        "instance_cpu_s": round(cpu, 2),
        "cpu_ms_per_act": round(cpu / acts * 1000, 3),
        "cpu_ms_per_act_without_deliveries": round(own / acts * 1000, 3),
        "deliveries": delivered,
        "deliveries_during_acts": during,
        "deliveries_per_s": round(delivered / (drained["last"] - start["wall"]), 1),
        "cpu_ms_per_delivery": None if per_delivery is None else round(per_delivery * 1000, 3),
        "drain_after_last_act_s": round(max(0.0, drained["last"] - end["wall"]), 3),
        "acts_to_drained_s": round(drained["last"] - start["wall"], 3),
        "peak_rss_mb": drained["cpu"]["peak_rss_mb"],
        "unsigned_deliveries": drained["unsigned"],
        "loadavg_1min_at_start": round(start["load"], 2),
    }


def _profile_text(path: Path) -> str:
    out = io.StringIO()
    for order in ("cumulative", "tottime"):
        out.write(f"=== sorted by {order} (top 45) ===\n")
        stats = pstats.Stats(str(path), stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(45)
    return out.getvalue()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Build or load the template, run, optionally profile; the results record."""
    template = await load_or_build(args.cache, args.residents, args.proposals, args.limit)
    result: dict[str, Any] = {
        "label": args.label,
        "code": str(args.code),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "shape": {
            k: getattr(args, k)
            for k in (
                "residents",
                "proposals",
                "limit",
                "supports",
                "withdrawals",
                "comments",
                "concurrency",
            )
        },
    }
    if not args.profile_only:
        result |= await _rounds(args, template)
    if args.profile or args.profile_only:
        stats_path = Path(tempfile.gettempdir()) / "barri-c2s.pstats"
        result["profiled_run"] = await one_run(args, template, stats_path, args.code)
        text = _profile_text(stats_path)
        header = (
            f"cProfile of barri serve (main thread: the event loop) during the acts and the"
            f" drain of a bench_c2s run\nshape: {json.dumps(result['shape'])}\n"
            f"that run (slowed by the profiler): {_summary(result['profiled_run'])}\n\n"
        )
        (RESULTS / "c2s-profile.txt").write_text(header + text)
        print(f"c2s: profile -> {RESULTS / 'c2s-profile.txt'}")
    return result


async def _rounds(args: argparse.Namespace, template: Template) -> dict[str, Any]:
    """``--rounds`` runs of ``--code``, each after one of ``--baseline`` when given (the
    machine's load drifts: alternating keeps the two comparable); medians of both."""
    runs: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        if args.baseline is not None:
            baseline.append(await one_run(args, template, None, args.baseline))
            _print(baseline[-1], "baseline")
        runs.append(await one_run(args, template, None, args.code))
        _print(runs[-1], "code")
    found: dict[str, Any] = {"median": _medians(runs), "runs": runs}
    if baseline:
        found["baseline"] = {"code": str(args.baseline), "median": _medians(baseline),
                             "runs": baseline}  # fmt: skip
    return found


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every number the runs share (phases left out)."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    values = {k: [r[k] for r in runs if r.get(k) is not None] for k in keys}
    return {k: round(statistics.median(v), 3) for k, v in values.items() if v}


def _summary(run: dict[str, Any]) -> str:
    return (
        f"{run['acts']} acts at {run['acts_per_s']}/s, p50 {run['p50_ms']} ms, p99"
        f" {run['p99_ms']} ms, {run['cpu_ms_per_act']} CPU ms/act, {run['deliveries']}"
        f" deliveries at {run['deliveries_per_s']}/s ({run['cpu_ms_per_delivery']} CPU ms each"
        f" in the drain), acts alone {run['cpu_ms_per_act_without_deliveries']} CPU ms, drained"
        f" {run['drain_after_last_act_s']} s after the last act, peak RSS"
        f" {run['peak_rss_mb']} MB"
    )


def _print(run: dict[str, Any], which: str = "code") -> None:
    print(f"c2s ({which}): " + _summary(run))
    for phase in run["phases"]:
        print(
            f"  {phase['phase']:<12} {phase['acts']:>6} acts {phase['acts_per_s']:>8}/s"
            f"  p50 {phase['p50_ms']:>7} ms  p99 {phase['p99_ms']:>7} ms"
            f"  {phase['cpu_ms_per_act']} CPU ms/act  {phase['statuses']}"
            f"{'  ' + str(phase['errors'][:2]) if phase['errors'] else ''}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its results."""
    args = _arguments(argv)
    try:
        result = asyncio.run(main_async(args))
    except BenchError as exc:
        print(f"c2s: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"c2s: results -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
