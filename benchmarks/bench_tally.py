"""Tally throughput at city scale: IncrementalTally vs compute() (DESIGN.md §1, §7).

A seeded, Barcelona-sized stream: 73 instances in 10 districts, 22,600 verified residents,
10,000 proposals in one city-wide process and 200,000 supports, plus re-delivered copies,
undos and a sprinkle of forged, late and unverified supports. Prints events/second for feeding
an ``IncrementalTally`` one event at a time and for ``compute()`` from scratch, their ratio,
and each one's peak memory (tracemalloc, measured in a separate pass because tracing slows
Python down), and the bytes a built tally keeps per received copy beyond the events. It
also times the restart path both ways: *before*, the rebuild fed every event one at a time
(``feed``); *after*, ``IncrementalTally.from_inputs`` builds it in one pass. Not a test:
nothing here asserts a timing.

Run: ``.venv/bin/python benchmarks/bench_tally.py [--supports 200000] [--seed 2016]``; the
summary is also written to ``benchmarks/results/tally.json``.

``--recompute-million`` times only what ``barri tally --recompute`` counts with: ``compute()``
over 1,000,000 supports (``--supports`` still overrides the size), with supports/s (also with
the inputs frozen out of the cyclic GC), peak memory, and the ratio to a bare ``Counter`` pass
over the same events. The recount does not verify proofs again (it reads each stored row's
``proof_ok``; see federation/aggregator/recompute.py), so that Counter pass, not Ed25519, is
the floor it wraps. It also times the other half of the recount, reading one stored support
document back (``json.loads`` + ``support_from_ap``), per second. Written to
``results/tally-million.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bench_libs import best_rate, code_version

from federation.model import (
    LangText,
    Phase,
    Process,
    Support,
    SupportRules,
    Territory,
    TerritoryKind,
)
from federation.tally import (
    IncrementalTally,
    ProcessRecord,
    ProposalRecord,
    ResidentRecord,
    Roster,
    RosterEntry,
    SupportEvent,
    TallyInputs,
    UndoEvent,
    compute,
)
from federation.vocab.support import support_from_ap, support_to_ap

CITY = "08019"
OPEN = datetime(2026, 3, 1, tzinfo=UTC)
CLOSE = OPEN + timedelta(weeks=10)
PROCESS = "https://ajuntament.barri.example/processes/pam"
T = TypeVar("T")
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SUPPORTS = 200_000
RESIDENTS = 22_600


def city(instances: int, districts: int) -> Roster:
    """One neighbourhood instance per roster entry, spread over the districts."""
    entries = []
    for n in range(instances):
        hood = Territory(
            TerritoryKind.NEIGHBOURHOOD, f"{n + 1}", district_code=f"{n % districts:02}"
        )
        entries.append(RosterEntry(f"https://barri{n:02}.example", hood))
    return Roster(CITY, tuple(entries))


def process() -> ProcessRecord:
    """A city-wide process with a ten-week supports phase and Decidim-like rules."""
    supports = Phase(
        name=LangText("Suports"),
        start=OPEN,
        end=CLOSE,
        allows_proposals=False,
        allows_supports=True,
        allows_comments=True,
        allows_debates=False,
    )
    proc = Process(
        id=PROCESS,
        owner="https://ajuntament.barri.example/groups/city",
        name=LangText("PAM"),
        summary=None,
        phases=(supports,),
        rules=SupportRules(supports_per_participant=12, minimum_supports_per_participant=1),
        eligible=(Territory(TerritoryKind.CITY, CITY),),
        published=OPEN - timedelta(weeks=4),
    )
    return ProcessRecord(proc, timedelta(hours=6))


def _support(rng: random.Random, n: int, actor: str, proposal: str, origin: str) -> SupportEvent:
    published = OPEN + timedelta(seconds=rng.randrange(int((CLOSE - OPEN).total_seconds())))
    received = published + timedelta(seconds=rng.randrange(120))
    roll = rng.random()
    if roll < 0.003:
        received = CLOSE + timedelta(days=1)  # late
    signer = rng.choice(("https://barri00.example", origin)) if roll > 0.997 else origin
    return SupportEvent(
        like_id=f"{actor}/likes/{n}",
        actor=actor,
        proposal=proposal,
        process=PROCESS,
        published=published,
        received_at=received,
        proof_ok=not 0.003 <= roll < 0.005,
        signer_origin=signer,
    )


def stream(
    seed: int, supports: int, instances: int, districts: int, proposals: int, residents: int
) -> TallyInputs:
    """The seeded city: roster, residents, proposals and the events to feed."""
    rng = random.Random(seed)
    roster = city(instances, districts)
    origins = [entry.origin for entry in roster.entries]
    people = [
        (f"{origins[n % instances]}/users/{n}", roster.entries[n % instances])
        for n in range(residents)
    ]
    records = tuple(
        ResidentRecord(actor, None if n % 500 == 0 else entry.territory)
        for n, (actor, entry) in enumerate(people)
    )
    ideas = tuple(
        ProposalRecord(f"{rng.choice(origins)}/proposals/{n}", PROCESS, origins[n % instances])
        for n in range(proposals)
    )
    likes, undos = [], []
    for n in range(supports):
        actor, entry = rng.choice(people)
        event = _support(rng, n, actor, rng.choice(ideas).proposal, entry.origin)
        likes.append(event)
        if rng.random() < 0.05:  # delivered again through the Group's Announce
            likes.append(replace(event, received_at=event.received_at + timedelta(minutes=5)))
        if rng.random() < 0.02:
            when = event.published + timedelta(hours=1)
            undos.append(
                UndoEvent(
                    f"{event.like_id}/undo", actor, event.like_id, when, when, True, entry.origin
                )
            )
    rng.shuffle(likes)
    return TallyInputs(roster, records, (process(),), ideas, tuple(likes), tuple(undos))


def feed(data: TallyInputs) -> IncrementalTally:
    """Feed every record and event one at a time."""
    tally = IncrementalTally(data.roster)
    for record in data.processes:
        tally.set_process(record)
    for proposal in data.proposals:
        tally.add_proposal(proposal)
    for resident in data.residents:
        tally.set_resident(resident.actor, resident.territory)
    for support in data.supports:
        tally.add_support(support)
    for undo in data.undos:
        tally.add_undo(undo)
    return tally


def timed(run: Callable[[], T]) -> tuple[float, T]:
    """Wall time of one run, after a full collection so earlier garbage is not charged to it."""
    gc.collect()
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def peak(run: Callable[[], object]) -> int:
    """Peak bytes allocated while running (the inputs themselves are already allocated)."""
    gc.collect()
    tracemalloc.start()
    kept = run()  # held until measured: the incremental state is what it costs to keep
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return top


def held(run: Callable[[], object]) -> int:
    """Bytes still allocated by what ``run`` returns once it is built and collected: what a
    live aggregator keeps for it (the inputs, allocated before, are not counted)."""
    gc.collect()
    tracemalloc.start()
    kept = run()
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return current


def frozen(run: Callable[[], object]) -> float:
    """Wall time of one run with the inputs moved out of the cyclic GC's sight (gc.freeze):
    how much of a recount over millions of live objects is the collector scanning them."""
    gc.collect()
    gc.freeze()
    try:
        return timed(run)[0]
    finally:
        gc.unfreeze()


def counter_pass(data: TallyInputs) -> Counter[tuple[str, str]]:
    """The bare floor of a recount: one Counter pass over the same events (no rules)."""
    counts: Counter[tuple[str, str]] = Counter()
    for support in data.supports:
        if support.proof_ok:
            counts[(support.process, support.proposal)] += 1
    for undo in data.undos:
        counts[("undo", undo.like_id)] += 1
    return counts


def stored_support() -> str:
    """One support ``Like`` as ingest stores it (compact JSON, inline @context)."""
    actor = "https://barri00.example/users/0"
    like = Support(
        id=f"{actor}/likes/0", actor=actor, proposal="https://barri01.example/proposals/0",
        published=OPEN, to=("https://barri00.example/groups/av", "https://city.example/actor"),
    )  # fmt: skip
    return json.dumps(support_to_ap(like), ensure_ascii=False, separators=(",", ":"))


def measure_recompute(data: TallyInputs, *, seconds: float = 1.0) -> dict[str, Any]:
    """compute() against a Counter pass over the same events; peak memory; document reads."""
    events = len(data.supports) + len(data.undos)
    compute_s, computed = timed(lambda: compute(data))
    frozen_s = frozen(lambda: compute(data))
    counter_s, _ = timed(lambda: counter_pass(data))
    document = stored_support()
    read_rate = best_rate(lambda: support_from_ap(json.loads(document)), seconds)
    compute_rate = len(data.supports) / compute_s
    return {
        "support_copies": len(data.supports),
        "events": events,
        "counted": computed.process(PROCESS).supports,
        "anomalies": len(computed.anomalies),
        "compute_s": compute_s,
        "compute_supports_per_s": compute_rate,  # support copies (re-deliveries too) per s
        "compute_events_per_s": events / compute_s,
        "compute_gc_frozen_s": frozen_s,
        "compute_gc_frozen_supports_per_s": len(data.supports) / frozen_s,
        "counter_pass_s": counter_s,
        "counter_pass_supports_per_s": len(data.supports) / counter_s,
        "ratio_to_counter_pass": counter_s / compute_s,
        "recount_reverifies_proofs": False,
        "stored_document_reads_per_s": read_rate,
        "compute_peak_mib": peak(lambda: compute(data)) / 2**20,
        # ru_maxrss is KiB on Linux: the whole process, inputs included.
        "process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def recompute_million(args: argparse.Namespace) -> None:
    """The ``--recompute-million`` run: print and write results/tally-million.json."""
    supports = args.supports if args.supports != DEFAULT_SUPPORTS else 1_000_000
    # Enough residents that most stay under the 12-supports limit (about 8 each), unless told:
    # with Barcelona's 22,600 each would give 44 and the recount would be mostly anomalies.
    residents = (
        max(args.residents, supports // 8) if args.residents == RESIDENTS else args.residents
    )
    load, built = os.getloadavg()[0], time.perf_counter()
    data = stream(args.seed, supports, args.instances, args.districts, args.proposals, residents)
    summary = {
        "supports": supports,
        "residents": residents,
        "stream_build_s": time.perf_counter() - built,
        **measure_recompute(data),
        "load_average_1min": [load, os.getloadavg()[0]],  # other work on the machine skews it
        "code": code_version(),
    }
    for key, value in summary.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else value
        print(f"{key:>30}: {shown}")
    summary = {k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(summary, indent=2) + "\n"
    (RESULTS / "tally-million.json").write_text(text, encoding="utf-8")


def main() -> None:
    """Build the stream, measure both engines, print the rates, memory and ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--supports", type=int, default=DEFAULT_SUPPORTS)
    parser.add_argument("--instances", type=int, default=73)
    parser.add_argument("--districts", type=int, default=10)
    parser.add_argument("--proposals", type=int, default=10_000)
    parser.add_argument("--residents", type=int, default=RESIDENTS)
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument(
        "--recompute-million",
        action="store_true",
        help="time only compute() (what `barri tally --recompute` runs) over 1,000,000 supports",
    )
    args = parser.parse_args()
    if args.recompute_million:
        recompute_million(args)
        return
    data = stream(
        args.seed, args.supports, args.instances, args.districts, args.proposals, args.residents
    )
    events = len(data.supports) + len(data.undos)
    feed_s, tally = timed(lambda: feed(data))
    read_s, fed = timed(tally.result)
    bulk_s, bulk = timed(lambda: IncrementalTally.from_inputs(data))
    bulk_read_s, rebuilt = timed(bulk.result)
    compute_s, computed = timed(lambda: compute(data))
    totals = computed.process(PROCESS)
    summary = {
        "supports": args.supports,
        "events": events,
        "counted": totals.supports,
        "participants": totals.participants,
        "anomalies": len(computed.anomalies),
        "agree": fed == computed == rebuilt,
        "incremental_events_per_s": round(events / feed_s),
        "compute_events_per_s": round(events / compute_s),
        "incremental_feed_s": round(feed_s, 2),
        "incremental_result_read_s": round(read_s, 2),
        "compute_s": round(compute_s, 2),
        "rebuild_before_one_at_a_time_s": round(feed_s + read_s, 2),
        "rebuild_after_bulk_s": round(bulk_s + bulk_read_s, 2),
        "rebuild_speedup": round((feed_s + read_s) / (bulk_s + bulk_read_s), 2),
        "compute_over_incremental_rate": round((events / compute_s) / (events / feed_s), 2),
        "incremental_peak_mib": round(peak(lambda: feed(data)) / 2**20, 1),
        "compute_peak_mib": round(peak(lambda: compute(data)) / 2**20, 1),
        "bulk_peak_mib": round(peak(lambda: IncrementalTally.from_inputs(data)) / 2**20, 1),
        # Per received copy, beyond the events themselves (a SupportEvent, its like id and
        # received_at: about 220 bytes more, which the live aggregator holds too).
        "held_bytes_per_copy": round(
            held(lambda: IncrementalTally.from_inputs(data)) / max(1, len(data.supports))
        ),
    }
    for key, value in summary.items():
        print(f"{key:>26}: {value}")
    print(json.dumps(summary))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tally.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
