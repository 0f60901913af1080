"""Interleaved A/B runs of ``bench_ingest``: does a change make live ingest cheaper, or not?

``python -m benchmarks.ab_ingest --base CHECKOUT [--head CHECKOUT] [--rounds 4] [--supports
20000] [--dir D] [--out FILE] [--what TEXT]``

On this kind of machine (a shared two-core VM) the same code measures up to 10 % apart from one
run to the next, and drifts by as much over a day, so two runs made apart compare nothing. This
runs ``bench_ingest`` on one city (``--dir``, set up by the first run and reused after) with the
aggregator alternately from ``--base`` and ``--head`` (default: this checkout), ``--rounds``
times each, and reports per side the median and the range of the figures that matter:

- ``event_loop_cpu_ms_per_support``: the event loop's thread is what bounds the throughput (it
  is ~95 % busy during a live batch, the SQLite thread ~9 %), so this is the figure to read;
- ``cpu_ms_per_support`` (every thread) and ``supports_per_s`` (wall clock);
- with ``--cold M``: the cold rebuild's CPU milliseconds per support (the aggregator and its
  backfill workers) and supports rebuilt per second.

Base and head run back to back in each round, so a drift of the machine touches both; the
verdict compares them round by round: the median relative change, in how many rounds head did
better, and the two-sided sign test's p-value for that split (8 rounds all one way: p = 0.008).
Nothing here is a test assertion; results go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.citysim.cluster import ROOT
from benchmarks.ingestkit.city import STATE

FIGURES = ("event_loop_cpu_ms_per_support", "cpu_ms_per_support", "supports_per_s")
#: With ``--cold``: the rebuild's figures (the aggregator and its backfill workers together).
COLD_FIGURES = ("cold_cpu_ms_per_support", "cold_supports_per_s")


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median, min and max of each figure over one side's runs."""
    out: dict[str, dict[str, float]] = {}
    for figure in runs[0]:
        values = [float(run[figure]) for run in runs]
        out[figure] = {
            "median": round(statistics.median(values), 4),
            "min": min(values),
            "max": max(values),
        }
    return out


def sign_test(wins: int, rounds: int) -> float:
    """Two-sided sign test: the chance of a split at least this uneven if head and base were
    equally likely to win each round."""
    tail = min(wins, rounds - wins)
    chance = sum(math.comb(rounds, k) for k in range(tail + 1)) / (1 << rounds)
    return min(1.0, 2 * chance)


def verdict(figure: str, base: list[float], head: list[float]) -> dict[str, Any]:
    """Head against base for one figure, round by round (each pair ran back to back, so the
    machine's drift cancels out): the median relative change, how many rounds head did better,
    and the sign test's p-value for that split."""
    changes = [(h - b) / b for b, h in zip(base, head, strict=True)]
    better = [c > 0 if figure.endswith("supports_per_s") else c < 0 for c in changes]
    return {
        "median_change": round(statistics.median(changes), 4),
        "head_better_rounds": sum(better),
        "rounds": len(changes),
        "sign_test_p": round(sign_test(sum(better), len(changes)), 4),
    }


def _one(checkout: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One bench_ingest run of the aggregator from ``checkout``: the figures compared."""
    command = [
        sys.executable, "-m", "benchmarks.bench_ingest", "--dir", str(args.dir),
        "--supports", str(args.supports), "--aggregator-code", str(checkout), "--out", str(out),
    ]  # fmt: skip
    if args.cold:
        command += ["--cold", str(args.cold)]
    if (args.dir / STATE).exists():
        command.append("--reuse")  # the city the first run set up, its aggregator as it was
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    results = json.loads(out.read_text())
    figures = {figure: results["live"][figure] for figure in FIGURES}
    if args.cold:
        cold = results["cold"]
        rebuilt = (cold["cpu_ms_per_support"], cold["supports_per_s"])
        figures |= dict(zip(COLD_FIGURES, rebuilt, strict=True))
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Alternate base and head ``rounds`` times; the runs, their summaries and verdicts."""
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for side, checkout in (("base", args.base), ("head", args.head)):
                out = Path(scratch) / f"{side}-{round_}.json"
                figures = _one(checkout, args, out)
                runs[side].append(figures)
                shown = ", ".join(f"{figure} {value}" for figure, value in figures.items())
                print(f"{side} {round_ + 1}: {shown}", flush=True)
    sides = {side: summarise(found) for side, found in runs.items()}
    return {
        "what": args.what,
        "base": str(args.base),
        "head": str(args.head),
        "supports_per_run": args.supports,
        "cold_supports": args.cold,
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": runs,
        "summary": sides,
        "verdict": {
            f: verdict(f, [r[f] for r in runs["base"]], [r[f] for r in runs["head"]])
            for f in runs["base"][0]
        },
    }


def main() -> int:
    """Parse the command line, run the A/B, write and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", type=Path, required=True, metavar="CHECKOUT")
    parser.add_argument("--head", type=Path, default=ROOT, metavar="CHECKOUT")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--supports", type=int, default=20000)
    parser.add_argument(
        "--cold", type=int, default=0, metavar="M",
        help="also time a cold rebuild of M supports (bench_ingest --cold; a city set up with it)",
    )  # fmt: skip
    parser.add_argument("--dir", type=Path, default=Path("/tmp/barri-ab-ingest"))
    parser.add_argument("--what", default="", help="what the head changes, for the record")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ingest-ab-last.json")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    results = run(args)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for figure, found in results["verdict"].items():
        print(
            f"{figure}: median change {found['median_change']:+.1%}, head better in"
            f" {found['head_better_rounds']} of {found['rounds']} rounds"
            f" (sign test p = {found['sign_test_p']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
