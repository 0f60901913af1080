"""The delivery queue's footprint and drain rate: a Group announcing K activities to F followers.

A fresh instance database (every migration), K activities of about ``--body-kb`` KB each (the
size of an ``Announce`` embedding a comment and our inline JSON-LD context) queued for F
follower instances, each a distinct loopback port of one sink that answers 202. Measured: the
database's bytes after the enqueue (file + WAL, after a checkpoint), the enqueue time, and the
rate at which a real :class:`~activitypub.delivery.DeliveryWorker` drains the queue through
unsigned POSTs (signing is the same cost either way). Only the public store API is used, so
``--code OTHER_CHECKOUT`` runs the same workload on another version for a comparison.

With ``--slow-ms M`` every follower but the first answers after M ms (busy neighbourhood
servers) while the first answers at once (the aggregator): ``fast_host_done_s`` is when the
first had every activity, the figure a backlog at slow hosts must not hold up.

    .venv/bin/python -m benchmarks.bench_queue [--activities 100] [--followers 74] [--rounds 3]
        [--concurrency 16] [--slow-ms 0] [--code OTHER_CHECKOUT]

Prints one JSON object per run, then the medians. Nothing asserts timings.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

GROUP = "http://127.0.0.1:1/groups/city"


def _body(n: int, kb: int) -> bytes:
    """One Announce of about ``kb`` KB (the padding stands for the inline context)."""
    doc = {
        "@context": ["https://www.w3.org/ns/activitystreams", {"pad": "x" * (kb * 1024 - 400)}],
        "id": f"{GROUP}/activities/{n}",
        "type": "Announce",
        "actor": GROUP,
        "object": {"id": f"{GROUP}/comments/{n}", "type": "Note", "content": f"comment {n}"},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


class _Sink:
    """Counts what the first (fast) follower received and when it had all of it."""

    def __init__(self, expected: int, slow_s: float) -> None:
        self.expected, self.slow_s = expected, slow_s
        self.fast_port = 0
        self.fast_seen = 0
        self.fast_done_at: float | None = None

    async def inbox(self, request: web.Request) -> web.Response:
        await request.read()
        if request.url.port != self.fast_port:
            await asyncio.sleep(self.slow_s)
        else:
            self.fast_seen += 1
            if self.fast_seen == self.expected:
                self.fast_done_at = time.perf_counter()
        return web.Response(status=202)


async def _sink(followers: int, sink: _Sink) -> tuple[web.AppRunner, list[str]]:
    """One app on ``followers`` loopback ports: each port is a distinct host to the worker."""
    app = web.Application()
    inbox = sink.inbox

    app.router.add_post("/inbox", inbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    urls = []
    for _ in range(followers):
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        urls.append(f"http://127.0.0.1:{port}/inbox")
    sink.fast_port = int(urls[0].split(":")[2].split("/")[0])
    return runner, urls


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def run(
    activities: int, followers: int, kb: int, concurrency: int, slow_ms: float
) -> dict[str, Any]:
    """One run in this process, with whatever code ``sys.path`` finds."""
    from activitypub.delivery import DeliveryWorker
    from federation.store.delivery import SqliteDeliveryStore
    from federation.store.migrations import INSTANCE_MIGRATIONS
    from federation.store.sqlite import open_database

    sink = _Sink(activities, slow_ms / 1000)
    runner, inboxes = await _sink(followers, sink)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "barri.db"
        db = await open_database(path, migrations=INSTANCE_MIGRATIONS)
        try:
            worker = functools.partial(DeliveryWorker, concurrency=concurrency, per_host=2)
            store = SqliteDeliveryStore(db)
            return await _measure(db, store, worker, path, inboxes, activities, kb, sink)
        finally:
            await db.close()
            await runner.cleanup()


async def _measure(
    db: Any,
    store: Any,
    worker_type: Any,
    path: Path,
    inboxes: list[str],
    activities: int,
    kb: int,
    sink: _Sink,
) -> dict[str, Any]:
    """Enqueue, measure the file, drain through the worker."""
    from activitypub.storage import Delivery

    await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    empty = _db_bytes(path)
    start = time.perf_counter()
    for n in range(activities):
        await store.enqueue(f"{GROUP}/a/{n}", GROUP, _body(n, kb), inboxes, now=time.time())
    enqueue_s = time.perf_counter() - start
    await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    queued = _db_bytes(path)
    async with aiohttp.ClientSession() as session:

        async def send(row: Delivery) -> int:
            async with session.post(row.inbox, data=row.body) as resp:
                return resp.status

        worker = worker_type(store, send)
        start = time.perf_counter()
        await worker.start()
        await worker.run_until_idle(600)
        drain_s = time.perf_counter() - start
        await worker.stop()
    rows = activities * len(inboxes)
    return {
        "rows": rows,
        "db_bytes_empty": empty,
        "db_bytes_queued": queued,
        "queue_bytes_per_row": round((queued - empty) / rows, 1),
        "enqueue_s": round(enqueue_s, 3),
        "drain_s": round(drain_s, 3),
        "deliveries_per_s": round(rows / drain_s, 1),
        "fast_host_done_s": None
        if sink.fast_done_at is None
        else round(sink.fast_done_at - start, 3),
    }


def _child(code: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run in a fresh interpreter importing ``code``'s modules."""
    cmd = [
        sys.executable, "-m", "benchmarks.bench_queue", "--activities", str(args.activities),
        "--followers", str(args.followers), "--body-kb", str(args.body_kb),
        "--concurrency", str(args.concurrency), "--slow-ms", str(args.slow_ms), "--once",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=code, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    """Alternate runs of this checkout (and ``--code``), then print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activities", type=int, default=100)
    parser.add_argument("--followers", type=int, default=74)
    parser.add_argument("--body-kb", type=int, default=14)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--slow-ms", type=float, default=0.0)
    parser.add_argument("--code", type=Path, help="another checkout to compare with")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:
        result = run(args.activities, args.followers, args.body_kb, args.concurrency, args.slow_ms)
        print(json.dumps(asyncio.run(result)))
        return
    here = Path(__file__).resolve().parent.parent
    codes = {"this": here, **({"other": args.code.resolve()} if args.code else {})}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in codes}
    for _ in range(args.rounds):
        for name, code in codes.items():
            runs[name].append(_child(code, args))
            print(name, json.dumps(runs[name][-1]), flush=True)
    for name, results in runs.items():
        medians = {
            k: statistics.median(r[k] for r in results)
            for k in results[0]
            if all(r.get(k) is not None for r in results)
        }
        print("median", name, json.dumps(medians))


if __name__ == "__main__":
    main()
