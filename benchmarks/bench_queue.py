"""The delivery queue's footprint and drain rate: a Group announcing K activities to F followers.

A fresh instance database (every migration), K activities of about ``--body-kb`` KB each (the
size of an ``Announce`` embedding a comment and our inline JSON-LD context) queued for F
follower instances, each a distinct loopback port of one sink that answers 202. Measured: the
database's bytes after the enqueue (file + WAL, after a checkpoint), the enqueue time, and the
rate at which a real :class:`~activitypub.delivery.DeliveryWorker` drains the queue through
unsigned POSTs (signing is the same cost either way). Only the public store API is used, so
``--code OTHER_CHECKOUT`` runs the same workload on another version for a comparison.

    .venv/bin/python -m benchmarks.bench_queue [--activities 100] [--followers 74] [--rounds 3]
        [--code OTHER_CHECKOUT]

Prints one JSON object per run, then the medians. Nothing asserts timings.
"""

from __future__ import annotations

import argparse
import asyncio
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


async def _sink(followers: int) -> tuple[web.AppRunner, list[str]]:
    """One app on ``followers`` loopback ports: each port is a distinct host to the worker."""
    app = web.Application()

    async def inbox(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    app.router.add_post("/inbox", inbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    urls = []
    for _ in range(followers):
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        urls.append(f"http://127.0.0.1:{port}/inbox")
    return runner, urls


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def run(activities: int, followers: int, kb: int) -> dict[str, Any]:
    """One run in this process, with whatever code ``sys.path`` finds."""
    from activitypub.delivery import DeliveryWorker
    from federation.store.delivery import SqliteDeliveryStore
    from federation.store.migrations import INSTANCE_MIGRATIONS
    from federation.store.sqlite import open_database

    runner, inboxes = await _sink(followers)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "barri.db"
        db = await open_database(path, migrations=INSTANCE_MIGRATIONS)
        try:
            return await _measure(db, SqliteDeliveryStore(db), DeliveryWorker, path, inboxes,
                                  activities, kb)  # fmt: skip
        finally:
            await db.close()
            await runner.cleanup()


async def _measure(
    db: Any, store: Any, worker_type: Any, path: Path, inboxes: list[str], activities: int, kb: int
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

        worker = worker_type(store, send, concurrency=16, per_host=2)
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
    }


def _child(code: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run in a fresh interpreter importing ``code``'s modules."""
    cmd = [
        sys.executable, "-m", "benchmarks.bench_queue", "--activities", str(args.activities),
        "--followers", str(args.followers), "--body-kb", str(args.body_kb), "--once",
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
    parser.add_argument("--code", type=Path, help="another checkout to compare with")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:
        print(json.dumps(asyncio.run(run(args.activities, args.followers, args.body_kb))))
        return
    here = Path(__file__).resolve().parent.parent
    codes = {"this": here, **({"other": args.code.resolve()} if args.code else {})}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in codes}
    for _ in range(args.rounds):
        for name, code in codes.items():
            runs[name].append(_child(code, args))
            print(name, json.dumps(runs[name][-1]), flush=True)
    for name, results in runs.items():
        medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print("median", name, json.dumps(medians))


if __name__ == "__main__":
    main()
