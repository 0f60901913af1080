"""What holds an aggregator's memory once it has loaded a whole city (issue 8's RSS target).

Opens a finished aggregator's database the way ``barri serve`` does at start
(:func:`~federation.aggregator.wiring.open_aggregator`: migrations, the Service's keys, the
tally rebuilt from everything stored) and reports the process's peak RSS after the load. With
``--trace`` it runs the same load under tracemalloc and prints the allocation sites holding
the most, and the live objects by type (count and shallow bytes), so a change aimed at memory
starts from where the bytes are; ``rss_after_trim_mb`` is the RSS once glibc has returned the
heap pages the load freed. The database is only read, but point it at a copy if a server
may still use the file (the open applies pending migrations).

    .venv/bin/python -m benchmarks.aggregator_memory --config DIR/barri.toml [--trace]
        [--top 25] [--out benchmarks/results/aggregator-memory.json]

Talks to nothing: no server is started and nothing is fetched.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import resource
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from federation.aggregator.config import load_aggregator_config
from federation.aggregator.wiring import open_aggregator


def _rss_mb() -> float:
    """This process's peak RSS in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    """This process's RSS right now in MiB, from /proc (0 where there is none)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) * resource.getpagesize() / 2**20


def _by_type(limit: int) -> list[dict[str, Any]]:
    """Live objects the collector tracks, grouped by type: count and shallow bytes."""
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    return [
        {"type": name, "objects": counts[name], "shallow_mb": round(size / 1e6, 1)}
        for name, size in sizes.most_common(limit)
    ]


def _trimmed_rss_mb() -> float | None:
    """RSS after glibc's ``malloc_trim(0)`` hands freed heap pages back (None off glibc):
    what the load left allocated, as against what it left behind in the heap."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    libc.malloc_trim(0)
    return round(_current_rss_mb(), 1)


def traced_report(top: int) -> dict[str, Any]:
    """What tracemalloc holds now (total, peak, the ``top`` allocation sites) and the live
    objects by type; tracemalloc must be tracing."""
    snapshot = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    return {
        "traced_mb": round(current / 1e6, 1),
        "traced_peak_mb": round(peak / 1e6, 1),
        "top_lines": [_site(stat) for stat in snapshot.statistics("lineno")[:top]],
        "by_type": _by_type(top),
    }


def _site(stat: tracemalloc.Statistic) -> dict[str, Any]:
    """One allocation site: where, how many MB, in how many blocks."""
    return {"where": str(stat.traceback[0]), "mb": round(stat.size / 1e6, 1), "blocks": stat.count}


async def measure_memory(config_path: Path, trace: bool, top: int) -> dict[str, Any]:
    """Open the aggregator as the server does at start; its RSS, and what holds it if traced."""
    config = load_aggregator_config(config_path)
    before = _current_rss_mb()
    if trace:
        tracemalloc.start(1)
    start = time.perf_counter()
    async with open_aggregator(config) as aggregator:
        load_s = time.perf_counter() - start
        gc.collect()
        result: dict[str, Any] = {
            "load_s": round(load_s, 2),
            "rss_before_mb": round(before, 1),
            "rss_after_mb": round(_current_rss_mb(), 1),
            "peak_rss_mb": round(_rss_mb(), 1),
        }
        result["rss_after_trim_mb"] = _trimmed_rss_mb()
        if trace:
            result |= traced_report(top)
            tracemalloc.stop()
        # Read after the measurements: the result is built on demand, not held.
        result["supports"] = sum(p.supports for p in aggregator.state.tally.result().processes)
    return result


def main() -> None:
    """Load once, print the figures as JSON (and write them with ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the aggregator's barri.toml")
    parser.add_argument("--trace", action="store_true", help="tracemalloc sites and object types")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(measure_memory(args.config, args.trace, args.top))
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
