"""One outbox page served over real HTTP on 127.0.0.1, from an instance holding M activities.

A real neighbourhood instance (``federation.instance.app``, its own SQLite file) listens on
127.0.0.1. Its resident publishes M comments on a proposal through the instance's own service
(``Deliberation.comment``: rendered, proved with FEP-8b32, stored with the Group's Announce in
one transaction), so the resident's outbox holds M + 1 activities (the proposal's ``Create``
too); that setup is timed as well. Then R GETs of one outbox page are sent by K concurrent
connections from a separate client process: the first page (``?page=true``) and a deep cursor
page (the oldest items, ``?after=...``), each unsigned and signed (RFC 9421, by an actor of a
loopback peer whose key the instance fetches once and caches).

Reported: pages/s and ms per page (wall / R, client p50/p99), and the ratio to the bare
operation a page wraps, ``json.dumps`` of its items measured in the same run (for the signed
GET, ``json.dumps`` plus one RSA-2048 verification).

Run: ``.venv/bin/python benchmarks/bench_outbox.py [--activities 5000] [--gets 1000]``; also
written to ``benchmarks/results/outbox.json``. Nothing here is a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from bench_inbox import (
    AS2,
    LoadReport,
    Peer,
    Request,
    load_client,
    loopback_socket,
    serve,
)
from bench_libs import best_rate, code_version, rounded
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from activitypub.collections import PageRequest
from activitypub.httpsig import Scheme, sign_request
from activitypub.keys import generate_rsa
from activitypub.runtime import FEDERATION, LocalKeys
from federation.config import load_config
from federation.config_writer import InitOptions, write_instance_config
from federation.instance.app import ACCOUNTS, ACTORS, CONFIG, DB, PUBLISHER, create_app
from federation.instance.deliberation import Deliberation
from federation.instance.ports import Role, User
from federation.store.outbox import OutboxStore

RESULTS = Path(__file__).resolve().parent / "results"
PAGE = 20  # the instance's default page size
PASSWORD = "correct horse battery"


def process_draft(now: datetime) -> dict[str, Any]:
    """A process whose one phase (proposals and comments) is open at ``now``."""
    return {
        "type": ["Page", "ParticipatoryProcess"],
        "name": "Pressupostos participatius",
        "phases": [
            {
                "type": "Phase", "name": "Propostes",
                "startTime": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endTime": (now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "allowsProposals": True, "allowsSupports": False,
                "allowsComments": True, "allowsDebates": False,
            }
        ],
        "supportRules": {"type": "SupportRules", "supportsPerParticipant": 0},
        "eligibleTerritories": [
            {"type": "Territory", "territoryKind": "neighbourhood", "territoryCode": "01",
             "districtCode": "01"}
        ],
    }  # fmt: skip


def instance_app(directory: Path, origin: str) -> web.Application:
    """A loopback neighbourhood instance (01 in district 01) whose files live in directory."""
    options = InitOptions(
        base_url=origin, name="AV Raval", secret="s" * 43, group="av", territory="01",
        district="01", allow_loopback=True, listen=origin.removeprefix("http://"),
    )  # fmt: skip
    return create_app(load_config(write_instance_config(directory, options), environ={}))


def service(app: web.Application, clock: Callable[[], datetime]) -> Deliberation:
    """The instance's own Deliberation service on a fixed clock (as its tests build it)."""
    return Deliberation(
        app[DB], app[ACTORS], app[CONFIG], app[PUBLISHER],
        federation=lambda: app.get(FEDERATION), clock=clock,
    )  # fmt: skip


async def resident(app: web.Application, name: str, role: Role = Role.RESIDENT) -> User:
    """A verified resident (or admin) of the instance."""
    await app[ACCOUNTS].create_user(name, PASSWORD, role)
    return await app[ACCOUNTS].verify(name, "01", by="bench")


async def fill_outbox(app: web.Application, activities: int) -> tuple[str, float]:
    """Publish ``activities`` comments by one resident; (its actor id, comments/s)."""
    now = datetime.now(UTC).replace(microsecond=0)
    deliberation = service(app, lambda: now)
    admin = await resident(app, "admin", Role.ADMIN)
    ana = await resident(app, "ana")
    process = await deliberation.create_process(process_draft(now), by=admin)
    proposal = await deliberation.create_proposal(
        ana, process.id, name="Més arbres", body_markdown="Al carrer de la **Cera**."
    )
    start = time.perf_counter()
    for n in range(activities):
        text = f"Comentari {n}: *més ombra* al [carrer](https://example.org/{n})."
        await deliberation.comment(ana, proposal.id, body_markdown=text)
    return app[ACTORS].person_id("ana"), activities / (time.perf_counter() - start)


async def deep_cursor(app: web.Application, actor: str) -> str:
    """The cursor whose next page is the oldest full page of the actor's outbox."""
    store = OutboxStore(app[DB])
    total = await store.count_outbox(actor)
    skipped = await store.page_outbox(actor, PageRequest(None, None, max(1, total - PAGE)))
    assert skipped.next_cursor is not None, "the outbox holds fewer than two pages"
    return skipped.next_cursor


async def store_costs(app: web.Application, actor: str, calls: int = 20) -> dict[str, float]:
    """Milliseconds per call of the two store reads a page request makes (in-process)."""
    store = OutboxStore(app[DB])
    costs = {}
    for name, read in (
        ("count_outbox", lambda: store.count_outbox(actor)),
        ("page_outbox", lambda: store.page_outbox(actor, PageRequest(None, None, PAGE))),
    ):
        start = time.perf_counter()
        for _ in range(calls):
            await read()
        costs[name] = 1000 * (time.perf_counter() - start) / calls
    return costs


def get_request(url: str, signer: LocalKeys | None) -> Request:
    """A GET asking for AS2; signed (RFC 9421) once when ``signer`` is given, then replayed."""
    headers = {"Accept": AS2}
    if signer is not None:
        headers = sign_request("GET", url, headers, None, signer.signing_key, Scheme.RFC9421)
    return Request("GET", url, tuple(headers.items()))


async def fetch_page(request: Request) -> tuple[int, dict[str, Any]]:
    """GET one page in-process (untimed): its status and document."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(request.url, headers=list(request.headers)) as response,
    ):
        return response.status, json.loads(await response.read())


def row(report: LoadReport, page: Mapping[str, Any], body_bytes: int) -> dict[str, Any]:
    """One measured variant."""
    gets = len(report.latencies)
    return {
        "gets": gets,
        "statuses": {str(k): v for k, v in sorted(report.statuses.items())},
        "items": len(page.get("orderedItems", [])),
        "page_bytes": body_bytes,
        "pages_per_s": gets / report.wall,
        "ms_per_page": 1000 * report.wall / gets,
        "latency_p50_ms": report.percentile_ms(0.5),
        "latency_p99_ms": report.percentile_ms(0.99),
    }


def bare_rates(items: list[Any], seconds: float) -> dict[str, float]:
    """``json.dumps`` of one page's items, and one RSA-2048 verification, per second."""
    key = generate_rsa()
    message = json.dumps(items).encode()
    sig = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    public, pkcs1, sha256 = key.public_key(), padding.PKCS1v15(), hashes.SHA256()
    return {
        "json_dumps_items_per_s": best_rate(lambda: json.dumps(items, ensure_ascii=False), seconds),
        "rsa2048_verify_per_s": best_rate(
            lambda: public.verify(sig, message, pkcs1, sha256), seconds
        ),
    }


async def measure_outbox(
    directory: Path,
    *,
    activities: int = 5000,
    gets: int = 1000,
    concurrency: int = 8,
    separate_process: bool = True,
    seconds: float = 1.0,
) -> dict[str, Any]:
    """Run the whole benchmark against a fresh instance in ``directory``; the summary."""
    inst_sock, origin = loopback_socket()
    peer_sock, peer_origin = loopback_socket()
    peer = Peer(peer_origin)
    reader = peer.keys[peer.add_actor("/users/reader", "Person", {})]
    summary: dict[str, Any] = {"activities": activities, "gets": gets, "concurrency": concurrency}
    summary["client"] = "separate process" if separate_process else "same event loop"
    variants: dict[str, dict[str, Any]] = {}
    pages: dict[str, list[Any]] = {}
    async with (
        serve(peer.app(), peer_sock),
        serve(instance_app(directory, origin), inst_sock) as app,
        load_client(separate_process) as send,
    ):
        actor, summary["setup_comments_per_s"] = await fill_outbox(app, activities)
        summary["outbox_total"] = await OutboxStore(app[DB]).count_outbox(actor)
        worker = app[FEDERATION].worker
        if worker is not None:  # nothing should be queued (no followers): make sure of it
            await worker.run_until_idle(timeout=60)
        cursor = quote(await deep_cursor(app, actor), safe="")
        urls = {"first": f"{actor}/outbox?page=true", "deep": f"{actor}/outbox?after={cursor}"}
        for where, url in urls.items():
            for signer in (None, reader):
                request = get_request(url, signer)
                status, page = await fetch_page(request)  # warms the signer's key cache
                if status != 200:
                    raise RuntimeError(f"GET {url} answered {status}")
                pages[where] = page["orderedItems"]
                await send([request] * min(gets, 50), concurrency)  # warm-up, not timed
                report = await send([request] * gets, concurrency)
                name = f"{where} page, {'signed' if signer else 'unsigned'} GET"
                variants[name] = row(report, page, report.received // max(1, gets))
        summary["store_ms"] = await store_costs(app, actor)
    summary["variants"] = variants
    summary["bare"] = {where: bare_rates(items, seconds) for where, items in pages.items()}
    for name, variant in variants.items():
        bare = summary["bare"][name.split(" ", 1)[0]]
        dumps = bare["json_dumps_items_per_s"]
        wrapped = (
            dumps if "unsigned" in name else 1 / (1 / dumps + 1 / bare["rsa2048_verify_per_s"])
        )
        variant["bare_per_s"] = wrapped
        variant["ratio"] = variant["pages_per_s"] / wrapped
    return summary


def report(summary: Mapping[str, Any]) -> None:
    """The readable lines."""
    print(
        f"outbox: {summary['outbox_total']} activities in the resident's outbox (published at"
        f" {summary['setup_comments_per_s']:,.0f} comments/s), {summary['gets']} GETs per"
        f" variant, concurrency {summary['concurrency']}, client in {summary['client']}"
    )
    store = summary["store_ms"]
    print(
        f"  store reads per page: count_outbox {store['count_outbox']:.2f} ms,"
        f" page_outbox {store['page_outbox']:.2f} ms"
    )
    for name, v in summary["variants"].items():
        print(
            f"  {name:26} {v['items']:3} items {v['page_bytes']:7,} B:"
            f" {v['pages_per_s']:6,.0f} pages/s ({v['ms_per_page']:.2f} ms/page, p50"
            f" {v['latency_p50_ms']:.1f} ms, p99 {v['latency_p99_ms']:.1f} ms);"
            f" bare {v['bare_per_s']:8,.0f}/s, ratio {v['ratio']:.3f}"
        )


def main() -> None:
    """Measure, print, write benchmarks/results/outbox.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--activities", type=int, default=5000, help="comments published")
    parser.add_argument("--gets", type=int, default=1000, help="GETs per variant")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0, help="per bare measurement")
    parser.add_argument("--same-process", action="store_true", help="client in the server's loop")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        summary = asyncio.run(
            measure_outbox(
                Path(tmp) / "instance", activities=args.activities, gets=args.gets,
                concurrency=args.concurrency, separate_process=not args.same_process,
                seconds=args.seconds,
            )
        )  # fmt: skip
    summary["load_average_1min"] = [load, os.getloadavg()[0]]  # other work skews it all
    summary["code"] = code_version()
    report(summary)
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(rounded(summary), indent=2) + "\n"
    (RESULTS / "outbox.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
