"""The micro-benchmark harnesses run at a tiny size and say sensible things (never timings).

Each harness's core function runs here as the benchmark runs it, only smaller, with the load
client in the same event loop and nothing written to benchmarks/results: every inbox request
is answered 202 and counted once by the aggregator's tally, every outbox page holds a full
page of items, the recount sees every event, the library comparison agrees byte for byte, and
every ratio is a positive finite number.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))  # the harnesses import each other as scripts do

import aiohttp  # noqa: E402
import bench_inbox  # noqa: E402
import bench_outbox  # noqa: E402
import bench_residents  # noqa: E402
import bench_tally  # noqa: E402

from federation.tally import IncrementalTally, compute  # noqa: E402


def positive_finite(value: Any) -> bool:
    return isinstance(value, float | int) and math.isfinite(value) and value > 0


async def test_inbox_requests_are_all_accepted_and_counted_once(tmp_path: Path) -> None:
    summary = await bench_inbox.measure_inbox(
        tmp_path / "aggregator", requests=5, concurrency=2, separate_process=False, seconds=0.01
    )
    rounds = summary["rounds"]
    assert set(rounds) == {"rfc9421", "cavage-12"}
    for row in rounds.values():
        assert (row["sent"], row["accepted"], row["statuses"]) == (5, 5, {"202": 5})
        for key in ("accepted_per_s", "ingested_per_s", "ratio_accepted", "ratio_ingested"):
            assert positive_finite(row[key]), (key, row[key])
        assert row["latency_p50_ms"] <= row["latency_p99_ms"]
    warm = summary["warm_up"]
    assert warm["accepted"] == warm["sent"] == summary["residents"]
    # Every support was a distinct (resident, proposal) pair: each counts exactly once.
    assert summary["counted"] == summary["residents"] + 2 * 5
    assert all(positive_finite(v) for v in summary["bare"].values())


async def test_residents_are_read_a_get_each_and_by_pages(tmp_path: Path) -> None:
    summary = await bench_residents.measure(
        tmp_path / "instance", 5, 1, page=2, separate_process=False
    )
    ways = summary["ways"]
    assert [row["requests"] for row in ways.values()] == [5, 3]  # 5 actors; pages of 2, 2, 1
    for row in ways.values():
        assert all(positive_finite(value) for value in row.values()), row
    # A page's items share its @context: each resident costs fewer bytes than its own GET.
    assert (
        ways["/residents pages"]["bytes_per_resident"]
        < ways["one GET per resident"]["bytes_per_resident"]
    )
    assert positive_finite(summary["cpu_ratio"]) and positive_finite(summary["wall_ratio"])


async def test_outbox_pages_hold_a_full_page_signed_or_not(tmp_path: Path) -> None:
    summary = await bench_outbox.measure_outbox(
        tmp_path / "instance", activities=25, gets=4, concurrency=2, separate_process=False,
        seconds=0.01,
    )  # fmt: skip
    assert summary["outbox_total"] == 26  # the comments and the proposal's Create
    variants = summary["variants"]
    assert len(variants) == 4
    for name, row in variants.items():
        assert (row["gets"], row["statuses"], row["items"]) == (4, {"200": 4}, 20), name
        assert row["page_bytes"] > 0
        assert positive_finite(row["pages_per_s"]) and positive_finite(row["ratio"]), name
    assert positive_finite(summary["setup_comments_per_s"])
    assert all(positive_finite(ms) for ms in summary["store_ms"].values())


def test_a_built_tally_holds_memory_for_what_it_counts() -> None:
    """bench_tally.held: the bytes a built tally keeps, which grow with the supports."""
    small = bench_tally.stream(7, 100, instances=5, districts=2, proposals=20, residents=60)
    large = bench_tally.stream(7, 1000, instances=5, districts=2, proposals=20, residents=60)
    kept_small = bench_tally.held(lambda: IncrementalTally.from_inputs(small))
    kept_large = bench_tally.held(lambda: IncrementalTally.from_inputs(large))
    assert 0 < kept_small < kept_large


def test_recount_sees_every_event_and_counts_what_compute_counts() -> None:
    data = bench_tally.stream(7, 300, instances=5, districts=2, proposals=20, residents=60)
    summary = bench_tally.measure_recompute(data, seconds=0.01)
    assert summary["support_copies"] == len(data.supports) >= 300
    assert summary["events"] == len(data.supports) + len(data.undos)
    assert summary["counted"] == compute(data).process(bench_tally.PROCESS).supports > 0
    floor = bench_tally.counter_pass(data)
    assert sum(floor.values()) == sum(s.proof_ok for s in data.supports) + len(data.undos)
    assert summary["recount_reverifies_proofs"] is False
    rates = ("compute_supports_per_s", "compute_gc_frozen_supports_per_s")
    for key in (*rates, "ratio_to_counter_pass", "compute_peak_mib"):
        assert positive_finite(summary[key]), key


def test_library_comparison_agrees_byte_for_byte() -> None:
    # PyNaCl and orjson are runtime dependencies: no skip when they are missing.
    import bench_libs

    assert bench_libs.missing_libraries() == []
    summary = bench_libs.measure_libs(seconds=0.005)
    assert summary["ed25519"]["identical_signatures"] is True
    found = summary["json"]
    assert found["jcs_same_from_both_parsers"] is True
    assert found["canonicalize_equals_jcs"] is True
    # A proved support with AS2 + data-integrity only (no Barri term in it, DESIGN.md §4).
    assert 500 < found["support_body_bytes"] < 1500 and found["page_bytes"] > 20 * 1000
    rows = [summary["ed25519"]["sign"], summary["ed25519"]["verify"]]
    rows += [row for row in found.values() if isinstance(row, dict)]
    assert len(rows) == 8
    for row in rows:
        assert all(positive_finite(row[k]) for k in ("current_per_s", "candidate_per_s", "ratio"))
    assert summary["recommendation"].startswith("Ed25519 verify: ")


async def test_the_queue_drain_reaches_every_follower_and_times_the_fast_one() -> None:
    import bench_queue

    summary = await bench_queue.run(activities=3, followers=3, kb=1, concurrency=4, slow_ms=20)
    assert summary["rows"] == 9
    assert positive_finite(summary["deliveries_per_s"])
    # The fast follower's time is set only once it had every activity.
    assert positive_finite(summary["fast_host_done_s"])
    assert summary["fast_host_done_s"] <= summary["drain_s"]


async def test_the_memory_report_loads_an_aggregator_and_names_where_bytes_are(
    tmp_path: Path,
) -> None:
    import aggregator_memory

    from federation.aggregator.config import AggregatorInit, write_aggregator_config

    options = AggregatorInit(base_url="http://127.0.0.1:9", allow_loopback=True)
    config = write_aggregator_config(tmp_path / "agg", options)
    report = await aggregator_memory.measure_memory(config, trace=True, top=5)
    assert report["supports"] == 0  # an empty city: nothing counted
    assert positive_finite(report["rss_after_mb"])
    trimmed = report["rss_after_trim_mb"]  # glibc here; None where there is no malloc_trim
    assert trimmed is None or 0 < trimmed <= report["peak_rss_mb"]
    # An empty city allocates little once the modules are imported: sites, not megabytes.
    assert report["traced_mb"] >= 0 and report["traced_peak_mb"] >= report["traced_mb"]
    assert len(report["top_lines"]) == 5 and all(line["blocks"] > 0 for line in report["top_lines"])
    assert {"type", "objects", "shallow_mb"} <= set(report["by_type"][0])


async def test_a_traced_server_reports_its_live_memory_on_sigusr1(tmp_path: Path) -> None:
    """benchmarks/traced.py: a real `barri serve` under tracemalloc writes its report while it
    runs (citysim's CITYSIM_TRACEMALLOC), then still stops cleanly on SIGTERM."""
    from federation.aggregator.config import AggregatorInit, write_aggregator_config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    options = AggregatorInit(base_url=base, allow_loopback=True, listen=f"127.0.0.1:{port}")
    config = write_aggregator_config(tmp_path / "agg", options)
    out = tmp_path / "tracemalloc.json"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BARRI_")}
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCHMARKS / "traced.py"), str(out), "serve", "--config", str(config),
        env={**environment, "PYTHONPATH": str(BENCHMARKS.parent)},
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"{base}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        server.send_signal(signal.SIGUSR1)
        for _ in range(200):
            if out.exists():
                break
            await asyncio.sleep(0.1)
        report = json.loads(out.read_text())
        assert positive_finite(report["rss_mb"]) and report["peak_rss_mb"] >= report["rss_mb"]
        assert report["traced_mb"] > 0  # a running server: its app, runtime and caches
        assert len(report["top_lines"]) == 40
        assert {"type", "objects", "shallow_mb"} <= set(report["by_type"][0])
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 30) == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
