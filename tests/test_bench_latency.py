"""The latency benchmark's parts: the open-loop sender keeps its schedule, latencies are read
from the due times, and a polled total tells when each stored support was counted."""

from __future__ import annotations

import time

from aiohttp import web

from benchmarks.bench_latency import bucket_quantile, counted_times, latencies
from benchmarks.ingestkit.blaster import paced


def test_the_kth_stored_support_is_counted_at_the_first_poll_reaching_base_plus_k() -> None:
    ingested = [(1.3, "c"), (1.0, "a"), (1.1, "b")]
    polls = [(1.05, 10), (1.2, 12), (1.4, 12)]
    # a and b are the 11th and 12th counted: the poll at 1.2 shows both; c never shows.
    assert counted_times(ingested, polls, base=10) == {"a": 1.2, "b": 1.2}
    assert counted_times(ingested, [*polls, (1.5, 13)], base=10)["c"] == 1.5


def test_latencies_run_from_the_due_time_and_name_what_was_never_counted() -> None:
    due = {"a": 1.0, "b": 1.5, "c": 2.0}
    found = latencies(due, {"a": 1.25, "b": 1.75}, {"a": 1.5, "b": 3.5})
    assert found["never_counted"] == 1
    assert found["counted_s"]["n"] == 2
    assert found["counted_s"]["max"] == 2.0
    assert found["ingested_s"]["p50"] == 0.25


async def test_the_paced_sender_sends_each_request_no_earlier_than_due() -> None:
    arrivals: dict[str, float] = {}

    async def inbox(request: web.Request) -> web.Response:
        arrivals[(await request.read()).decode()] = time.time()
        return web.Response(status=202, text="accepted")

    app = web.Application()
    app.router.add_post("/inbox", inbox)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    bodies = [f"request-{i}" for i in range(20)]
    requests = [
        f"POST /inbox HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(b)}\r\n\r\n{b}".encode()
        for b in bodies
    ]
    try:
        result = await paced(requests, "127.0.0.1", port, concurrency=3, rate=100.0)
    finally:
        await runner.cleanup()
    timeline = result["timeline"]
    assert result["statuses"] == {"202": 20}
    assert set(arrivals) == set(bodies)
    for i, (due, sent, answered, status) in enumerate(timeline):
        assert abs(due - (timeline[0][0] + i / 100.0)) < 1e-5
        assert due <= sent + 1e-6 <= answered + 2e-6
        assert arrivals[bodies[i]] >= due - 1e-3
        assert status == 202
    # Open loop at 100/s: the 20 requests span about 0.19 s, not the few ms a burst takes.
    assert timeline[-1][1] - timeline[0][1] >= 0.18


def test_the_server_lag_quantile_is_read_from_the_rows_added_between_two_readings() -> None:
    before = {"0.1": 10.0, "1": 10.0, "+Inf": 10.0}
    after = {"0.1": 60.0, "1": 109.0, "+Inf": 110.0}
    # 100 rows added: 50 within 0.1 s, 49 more within 1 s, 1 beyond.
    assert bucket_quantile(before, after, 0.5) == "0.1"
    assert bucket_quantile(before, after, 0.99) == "1"
    assert bucket_quantile(before, after, 1.0) == "+Inf"
    assert bucket_quantile(after, after, 0.99) == "none"
