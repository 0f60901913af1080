"""Every micro-benchmark of issue 8, one after another at short sizes, then one summary.

Runs bench_signatures, bench_validation, bench_tally (its default mode, smaller), bench_flood,
bench_inbox, bench_outbox and bench_libs as separate processes (so one's memory and event loop
do not colour the next), prints each one's own lines, then the headline figures of all of them with
their ratios to the bare operation they wrap. Each benchmark rewrites its file under
``benchmarks/results/`` with these short-run figures; the summary goes to ``results/micro.json``.
About a minute on a quiet two-core machine. Nothing here is a test assertion.

Run: ``.venv/bin/python benchmarks/run_micro.py``; a benchmark that fails is reported and the
others still run (exit status 1); bench_libs without the ``bench`` extra is reported skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SKIPPED = 2  # bench_libs' exit status when the bench extra is missing


@dataclass(frozen=True)
class Bench:
    """One benchmark: its script, short-run arguments, and where its figures end up."""

    script: str
    args: tuple[str, ...]
    results: str | None  # its JSON file under results/, or None: the last stdout line is JSON
    headline: Callable[[dict[str, Any]], list[str]]


def _signatures(found: dict[str, Any]) -> list[str]:
    return [f"{name}: {row['ops']:,.0f}/s, ratio {row['ratio']:.2f}" for name, row in found.items()]


def _validation(found: dict[str, Any]) -> list[str]:
    return [
        f"{shape}: fastjsonschema {row['fastjsonschema']:,}/s, x{row['ratio']} jsonschema"
        for shape, row in found.items()
    ]


def _tally(found: dict[str, Any]) -> list[str]:
    return [
        f"{found['events']:,} events: compute() {found['compute_events_per_s']:,}/s,"
        f" incremental {found['incremental_events_per_s']:,}/s, agree {found['agree']}"
    ]


def _flood(found: dict[str, Any]) -> list[str]:
    lines = []
    for shape in ("off_roster", "duplicate", "backdated", "over_limit"):
        large = found[shape]["large_us_per_like"]
        lines.append(
            f"{shape}: "
            + ", ".join(f"{n} likes {us:.1f} us/like" for n, us in large.items())
            + f" (flatness {found[shape]['flatness']:.2f}x)"
        )
    return lines


def _inbox(found: dict[str, Any]) -> list[str]:
    bare = found["bare"]["httpsig_plus_proof_per_s"]
    lines = [f"bare RSA verify + Ed25519 verify: {bare:,.0f}/s"]
    for scheme, row in found["rounds"].items():
        lines.append(
            f"{scheme}: {row['accepted']}/{row['sent']} answered 202, {row['accepted_per_s']:,.0f}"
            f" req/s (ratio {row['ratio_accepted']:.3f}), ingested {row['ingested_per_s']:,.0f}/s"
            f" (ratio {row['ratio_ingested']:.3f}); counted {found['counted']}"
        )
    return lines


def _outbox(found: dict[str, Any]) -> list[str]:
    return [
        f"{name} ({found['outbox_total']} in outbox): {row['pages_per_s']:,.0f} pages/s,"
        f" {row['ms_per_page']:.2f} ms/page, ratio {row['ratio']:.3f}"
        for name, row in found["variants"].items()
    ]


def _libs(found: dict[str, Any]) -> list[str]:
    ed = found["ed25519"]
    return [
        f"Ed25519 verify: PyNaCl {ed['verify']['candidate_per_s']:,.0f}/s vs cryptography"
        f" {ed['verify']['current_per_s']:,.0f}/s (x{ed['verify']['ratio']:.2f})",
        f"recommendation: {found['recommendation']}",
    ]


BENCHES = (
    Bench("bench_signatures.py", ("--seconds", "0.3"), "signatures.json", _signatures),
    Bench("bench_validation.py", ("--seconds", "0.3"), None, _validation),
    Bench("bench_tally.py", ("--supports", "30000"), "tally.json", _tally),
    Bench(
        "bench_flood.py",
        ("--sizes", "1000,10000", "--small-max", "1000"),
        "tally-flood.json",
        _flood,
    ),
    Bench("bench_inbox.py", ("--requests", "500", "--seconds", "0.3"), "inbox.json", _inbox),
    Bench(
        "bench_outbox.py",
        ("--activities", "1000", "--gets", "300", "--seconds", "0.3"),
        "outbox.json",
        _outbox,
    ),
    Bench("bench_libs.py", ("--seconds", "0.3"), "libs.json", _libs),
)


def run(bench: Bench) -> dict[str, Any]:
    """Run one benchmark, echo its output; its status, duration and headline lines."""
    print(f"=== {bench.script} {' '.join(bench.args)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(HERE / bench.script), *bench.args],
        cwd=HERE.parent, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    print(done.stdout, end="")
    if done.returncode != 0:
        print(done.stderr, end="", file=sys.stderr)
        status = "skipped" if done.returncode == SKIPPED else f"failed ({done.returncode})"
        return {"status": status, "seconds": seconds, "headline": done.stdout.strip()[-200:]}
    if bench.results is None:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    else:
        found = json.loads((RESULTS / bench.results).read_text(encoding="utf-8"))
    return {"status": "ok", "seconds": seconds, "headline": bench.headline(found)}


def main() -> None:
    """Run every benchmark, print the combined summary, write results/micro.json."""
    load_before = os.getloadavg()[0]
    outcomes = {bench.script.removesuffix(".py"): run(bench) for bench in BENCHES}
    total = sum(outcome["seconds"] for outcome in outcomes.values())
    print(f"\n=== summary ({total:.0f} s; 1-min load average {load_before:.1f} at the start)")
    for name, outcome in outcomes.items():
        print(f"{name} [{outcome['status']}, {outcome['seconds']:.0f} s]")
        lines = outcome["headline"]
        for line in lines if isinstance(lines, list) else [lines]:
            print(f"  {line}")
    RESULTS.mkdir(exist_ok=True)
    summary = {"load_average_at_start": load_before, "seconds": total, "benchmarks": outcomes}
    text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    (RESULTS / "micro.json").write_text(text, encoding="utf-8")
    if any(outcome["status"].startswith("failed") for outcome in outcomes.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
