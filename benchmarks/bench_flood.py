"""One actor's flood of likes into one process: the tally's cost per like as the flood grows.

Any server with a key can send thousands of signed likes by one actor; every one is stored and
flagged, and all land in one (actor, process) group of the ``IncrementalTally``. Four shapes:
``off_roster`` (a server not on the roster), ``duplicate`` (one proposal again and again),
``backdated`` (one proposal, each like earlier than the last, so each wins it in turn) and
``over_limit`` (a new proposal each time, past the limit of 20). For each, microseconds per like
fed (plus one ``result()`` read at the end) at several flood sizes, with a group kept large
(``LARGE_AT``, the engine) and kept small (the engine before large groups: the whole group
combined again per like, run only up to ``--small-max`` likes: it is quadratic). The ratio of
the biggest flood's cost per like to the smallest's shows whether the cost stays flat. Then one
more like, and a read of the totals alone (``processes()``: what the Tally publisher and the
process listing read) against a read of the whole result, whose anomalies (a flood's hundred
thousand) are gathered and sorted again after any change.

Run: ``.venv/bin/python benchmarks/bench_flood.py [--sizes 1000,10000,100000]``; the summary
is also written to ``benchmarks/results/tally-flood.json``. Not a test: nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from provenance import code_version

from federation.model import (
    LangText,
    Phase,
    Process,
    SupportRules,
    Territory,
    TerritoryKind,
)
from federation.tally import (
    IncrementalTally,
    ProcessRecord,
    ProposalRecord,
    Roster,
    RosterEntry,
    SupportEvent,
)
from federation.tally.large import LARGE_AT

HOME, ROGUE = "https://gracia.barri.example", "https://rogue.example"
HOOD = Territory(TerritoryKind.NEIGHBOURHOOD, "31", "la Vila de Gràcia", "06")
PID = f"{HOME}/processes/p"
START = datetime(2026, 3, 1, tzinfo=UTC)
LIMIT = 20
RESULTS = Path(__file__).parent / "results" / "tally-flood.json"


def process() -> ProcessRecord:
    """One process open all of March, with a limit of ``LIMIT`` supports per participant."""
    phase = Phase(
        name=LangText("Suports"), start=START, end=START + timedelta(days=31),
        allows_proposals=False, allows_supports=True, allows_comments=True, allows_debates=False,
    )  # fmt: skip
    return ProcessRecord(
        Process(
            id=PID,
            owner=f"{HOME}/groups/g",
            name=LangText("p"),
            summary=None,
            phases=(phase,),
            rules=SupportRules(supports_per_participant=LIMIT),
            eligible=(Territory(TerritoryKind.CITY, "08019"),),
            published=START,
        )
    )


def proposal(i: int) -> str:
    return f"{HOME}/proposals/{i}"


def shape_of(name: str) -> Callable[[int, int], SupportEvent]:
    """The i-th like of a flood of n in the named shape."""
    origin = ROGUE if name == "off_roster" else HOME
    actor = f"{origin}/users/flood"

    def like(i: int, n: int) -> SupportEvent:
        target = proposal(i) if name == "over_limit" else proposal(0)
        seconds = n - i if name in ("backdated", "over_limit") else i
        published = START + timedelta(days=1, seconds=seconds)
        return SupportEvent(
            f"{origin}/likes/{i}", actor, target, PID, published,
            published + timedelta(seconds=1), True, origin,
        )  # fmt: skip

    return like


SHAPES = ("off_roster", "duplicate", "backdated", "over_limit")


def flood(shape: str, n: int, large_at: int) -> dict[str, float]:
    """Microseconds per like to feed a flood of ``n`` and read the result once; then, after
    one more like, milliseconds to read the totals alone and the whole result (anomalies)."""
    tally = IncrementalTally(Roster("08019", (RosterEntry(HOME, HOOD),)), large_at)
    tally.set_process(process())
    for i in range(n if shape == "over_limit" else 1):
        tally.add_proposal(ProposalRecord(proposal(i), PID, HOME))
    tally.set_resident(f"{HOME}/users/flood", HOOD)
    like = shape_of(shape)
    events = [like(i, n + 1) for i in range(n + 1)]
    start = time.perf_counter()
    for event in events[:-1]:
        tally.add_support(event)
    tally.result()
    fed = time.perf_counter()
    tally.add_support(events[-1])
    tally.processes()
    totals = time.perf_counter()
    tally.result()
    done = time.perf_counter()
    return {
        "us_per_like": (fed - start) / n * 1e6,
        "totals_read_ms": (totals - fed) * 1e3,
        "result_read_ms": (done - totals) * 1e3,
    }


def main() -> None:
    """Measure every shape at every size, large groups on and off; print and save."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--small-max", type=int, default=2000)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    out: dict[str, Any] = {"code": code_version(), "large_at": LARGE_AT, "limit": LIMIT}
    for shape in SHAPES:
        runs = {n: flood(shape, n, LARGE_AT) for n in sizes}
        large = {n: run["us_per_like"] for n, run in runs.items()}
        small = {n: flood(shape, n, 10**9)["us_per_like"] for n in sizes if n <= args.small_max}
        flat = large[sizes[-1]] / large[sizes[0]]
        biggest = runs[sizes[-1]]
        out[shape] = {
            "large_us_per_like": large, "small_us_per_like": small, "flatness": flat,
            "after_one_more_at_biggest": biggest,
        }  # fmt: skip
        sizes_line = ", ".join(f"{n:,} likes {us:.1f} us/like" for n, us in large.items())
        print(f"{shape:>10}: {sizes_line}  (biggest/smallest {flat:.2f}x)")
        print(
            f"{'':>10}  one more like at {sizes[-1]:,}: totals read {biggest['totals_read_ms']:.2f}"
            f" ms, whole result (anomalies sorted) {biggest['result_read_ms']:.0f} ms"
        )
        for n, us in small.items():
            print(f"{'':>10}  kept small: {n:,} likes {us:.1f} us/like ({us / large[n]:.0f}x)")
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
