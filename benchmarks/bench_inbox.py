"""Inbox requests end to end over real HTTP on 127.0.0.1: supports into the aggregator's inbox.

The issue's hot path (issue 8): a real aggregator app (``federation.aggregator.app``, its own
SQLite file, backfill off) listens on 127.0.0.1 beside a loopback peer instance that serves
its residents' actor documents (RSA ``#main-key`` and Ed25519 Multikey), its Group, a process
and its proposals, and is on the roster. N supports (``Like``, FEP-8b32 eddsa-jcs-2022 proof,
HTTP-signed with RFC 9421 or cavage-12) are built and signed beforehand, then POSTed to
``/inbox`` by K concurrent connections from a separate client process (so the aggregator has
its core to itself). A warm-up round first fills the caches (actor keys, residencies,
proposals), so the timed rounds measure the steady state.

Reported per scheme: requests/s answered 202 and ms per request (wall / N, and the client's
p50/p99), then supports/s ingested (verified again, stored and counted by the tally, which
runs in the background after the 202) and the number counted, and the CPU time this process
(the server, the peer idle after the warm-up) spent per support, which a busy machine leaves
fair where it slows the rates. The ratio compares each rate
with the bare crypto the request wraps, measured in the same run through ``cryptography``:
one RSA-2048 HTTP-signature verification plus one Ed25519 proof verification. Note that the
inbox pipeline takes a valid proof *instead of* the HTTP signature (FEP-8b32, as Fedify does),
and ingest verifies the proof once more, so the crypto actually done is two Ed25519 checks.

Run: ``.venv/bin/python benchmarks/bench_inbox.py [--requests 2000] [--concurrency 32]``;
also written to ``benchmarks/results/inbox.json``. Nothing here is a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import socket
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from bench_libs import best_rate, code_version, rounded
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from activitypub.actors import ActorProfile
from activitypub.httpsig import Scheme, sign_request
from activitypub.keys import generate_ed25519, generate_rsa
from activitypub.runtime import LocalKeys
from federation.aggregator.app import AGGREGATOR, RUNTIME, create_app
from federation.aggregator.config import (
    AggregatorInit,
    load_aggregator_config,
    write_aggregator_config,
)
from federation.model import (
    LangText,
    Phase,
    Process,
    Proposal,
    Support,
    SupportRules,
    Territory,
    TerritoryKind,
)
from federation.store.aggregator import RosterRow
from federation.vocab.actors import barri_actor_document, person_extras
from federation.vocab.process import process_to_ap
from federation.vocab.proposal import proposal_to_ap
from federation.vocab.support import support_to_ap

RESULTS = Path(__file__).resolve().parent / "results"
AS2 = "application/activity+json"
HOOD = Territory(TerritoryKind.NEIGHBOURHOOD, "31", district_code="06")
CITY = Territory(TerritoryKind.CITY, "08019")


# --- the load generator (picklable, so it can run in another process) -----------------------


@dataclass(frozen=True)
class Request:
    """One prepared HTTP request."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None = None


@dataclass(frozen=True)
class LoadReport:
    """What the client saw: statuses, per-request latencies (s), wall time (s), bytes read."""

    statuses: dict[int, int]
    latencies: tuple[float, ...]
    wall: float
    received: int

    def percentile_ms(self, q: float) -> float:
        """The q-quantile of the latencies, in milliseconds (nearest rank)."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def fire(requests: list[Request], concurrency: int) -> LoadReport:
    """Send every request, ``concurrency`` at a time over kept-alive connections."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    received = 0
    pending = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal received
            for item in pending:  # the shared iterator hands each request to one worker
                began = time.perf_counter()
                async with session.request(
                    item.method, item.url, headers=list(item.headers), data=item.body
                ) as response:
                    received += len(await response.read())
                    statuses[response.status] += 1
                latencies.append(time.perf_counter() - began)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return LoadReport(dict(statuses), tuple(latencies), wall, received)


def fire_blocking(requests: list[Request], concurrency: int) -> LoadReport:
    """:func:`fire` in a fresh event loop (the entry point of the client process)."""
    return asyncio.run(fire(requests, concurrency))


def _ready() -> bool:
    return True


@asynccontextmanager
async def load_client(separate_process: bool) -> AsyncIterator[Any]:
    """A ``send(requests, concurrency)`` coroutine function; in a spawned, warmed-up process
    when asked, so the server under test keeps its core (this machine has two)."""
    if not separate_process:
        yield fire
        return
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        await loop.run_in_executor(pool, _ready)  # boot and import before anything is timed

        async def send(requests: list[Request], concurrency: int) -> LoadReport:
            return await loop.run_in_executor(pool, fire_blocking, requests, concurrency)

        yield send


# --- servers on 127.0.0.1 -----------------------------------------------------------------------


def loopback_socket() -> tuple[socket.socket, str]:
    """A listening-ready socket on a free 127.0.0.1 port, and the origin it will serve."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def serve(app: web.Application, sock: socket.socket) -> AsyncIterator[web.Application]:
    """Run ``app`` on ``sock`` until the block ends (startup and cleanup contexts included)."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield app
    finally:
        await runner.cleanup()


@dataclass
class Peer:
    """A loopback instance: residents with keys, its Group, a process and its proposals."""

    origin: str
    rsa_key: rsa.RSAPrivateKey = field(default_factory=generate_rsa)
    keys: dict[str, LocalKeys] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    @property
    def group(self) -> str:
        return f"{self.origin}/groups/assoc"

    def add_actor(self, path: str, kind: str, extra: Mapping[str, Any]) -> str:
        """An actor with its own Ed25519 key; the RSA key is shared (keygen is slow and the
        verification costs the same)."""
        actor = self.origin + path
        keys = LocalKeys(actor, self.rsa_key, generate_ed25519())
        self.keys[actor] = keys
        name = path.rsplit("/", 1)[1]
        profile = ActorProfile(
            id=actor, type=kind, preferred_username=name, name=name.title(), summary=None,
            inbox=f"{actor}/inbox", outbox=f"{actor}/outbox", followers=f"{actor}/followers",
            following=f"{actor}/following", shared_inbox=f"{self.origin}/inbox", url=None,
            rsa_public_key=self.rsa_key.public_key(),
            ed25519_public_key=keys.ed25519.public_key(), extra=dict(extra),
        )  # fmt: skip
        self.documents[actor] = barri_actor_document(profile)
        return actor

    def add_process(self) -> str:
        """A city-wide process whose supports phase is open now, without a support limit."""
        phase = Phase(
            name=LangText("Suports"), start=self.now - timedelta(days=1),
            end=self.now + timedelta(days=1), allows_proposals=True, allows_supports=True,
            allows_comments=True, allows_debates=False,
        )  # fmt: skip
        process = Process(
            id=f"{self.origin}/processes/pam", owner=self.group, name=LangText("PAM"),
            summary=None, phases=(phase,), rules=SupportRules(), eligible=(CITY,),
            published=self.now - timedelta(days=2),
        )  # fmt: skip
        self.documents[process.id] = process_to_ap(process)
        return process.id

    def add_proposal(self, author: str, process: str, n: int) -> str:
        """Proposal ``n`` by ``author`` in ``process``."""
        proposal = Proposal(
            id=f"{self.origin}/proposals/{n}", author=author, audience=self.group,
            process=process, name=LangText(f"Proposta {n}"), content_html=f"<p>{n}</p>",
            source_markdown=str(n), published=self.now - timedelta(hours=12),
        )  # fmt: skip
        self.documents[proposal.id] = proposal_to_ap(proposal)
        return proposal.id

    def app(self) -> web.Application:
        """Every document at its id, unsigned GETs welcome (no inbox: nothing is sent here)."""

        async def get(request: web.Request) -> web.Response:
            document = self.documents.get(self.origin + request.path)
            if document is None:
                return web.Response(status=404)
            return web.Response(body=json.dumps(document).encode(), content_type=AS2)

        app = web.Application()
        app.router.add_get("/{tail:.*}", get)
        return app


# --- the scene: a peer, the aggregator, prepared deliveries ---------------------------------------


@dataclass
class Scene:
    """The peer's residents and proposals, and every (resident, proposal) pair not used yet."""

    peer: Peer
    inbox: str
    residents: list[str]
    proposals: list[str]
    used: int = 0

    def supports(self, count: int, scheme: Scheme) -> list[Request]:
        """``count`` signed, proved supports, each of a pair nobody supported before."""
        made = []
        n_res, n_prop = len(self.residents), len(self.proposals)
        for k in range(self.used, self.used + count):
            # Pair k: resident k mod R, proposal (k mod R + k div R) mod P: all distinct.
            actor = self.residents[k % n_res]
            proposal = self.proposals[(k % n_res + k // n_res) % n_prop]
            made.append(self.delivery(actor, proposal, k, scheme))
        self.used += count
        return made

    def delivery(self, actor: str, proposal: str, k: int, scheme: Scheme) -> Request:
        """One ``Like``, proved by its actor and HTTP-signed with ``scheme``."""
        keys = self.peer.keys[actor]
        like = Support(
            id=f"{actor}/supports/{k}", actor=actor, proposal=proposal,
            published=self.peer.now - timedelta(hours=1),
            to=(self.peer.group, self.inbox.rsplit("/", 1)[0] + "/actor"),
        )  # fmt: skip
        body = json.dumps(keys.prove(support_to_ap(like))).encode()
        headers = sign_request(
            "POST", self.inbox, {"Content-Type": AS2}, body, keys.signing_key, scheme
        )
        return Request("POST", self.inbox, tuple(headers.items()), body)


def scene(peer: Peer, inbox: str, pairs: int) -> Scene:
    """Enough residents and proposals for ``pairs`` distinct supports (proposals <= residents,
    so the first R supports touch every proposal: the warm-up fetches them all)."""
    n_res = max(8, math.ceil(math.sqrt(pairs)))
    n_prop = max(1, math.ceil(pairs / n_res))
    residents = [
        peer.add_actor(f"/users/r{n}", "Person", person_extras(HOOD)) for n in range(n_res)
    ]
    process = peer.add_process()
    proposals = [peer.add_proposal(residents[n % n_res], process, n) for n in range(n_prop)]
    return Scene(peer, inbox, residents, proposals)


async def put_on_roster(app: web.Application, peer: Peer) -> None:
    """The peer on the roster through the store API (discovery and Follows are not timed)."""
    row = RosterRow(
        origin=peer.origin, url=peer.origin, territory=HOOD.code,
        district=HOOD.district_code or "", instance_actor=peer.origin + "/actor",
        group_actor=peer.group, active=True, added_at=time.time(), removed_at=None,
        last_activity_at=None,
    )  # fmt: skip
    await app[AGGREGATOR].store.put_roster(row)
    await app[AGGREGATOR].state.sync()


# --- measuring ------------------------------------------------------------------------------------


def bare_crypto(body: bytes, seconds: float) -> dict[str, float]:
    """One core's RSA-2048 and Ed25519 verifications per second of ``body`` (cryptography), and
    the rate of the pair a request wraps (one HTTP-signature check plus one proof check)."""
    rsa_key, ed_key = generate_rsa(), generate_ed25519()
    rsa_sig = rsa_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    rsa_pub, ed_pub, ed_sig = rsa_key.public_key(), ed_key.public_key(), ed_key.sign(body)
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    rsa_rate = best_rate(lambda: rsa_pub.verify(rsa_sig, body, pkcs1, sha256), seconds)
    ed_rate = best_rate(lambda: ed_pub.verify(ed_sig, body), seconds)
    return {
        "rsa2048_verify_per_s": rsa_rate,
        "ed25519_verify_per_s": ed_rate,
        "httpsig_plus_proof_per_s": 1 / (1 / rsa_rate + 1 / ed_rate),
    }


def ingested(app: web.Application) -> int:
    """Supports ingest has finished with since start (stored, duplicate or refused)."""
    counts = app[RUNTIME].ingest.counts
    return sum(n for (kind, _), n in counts.items() if kind == "Like")


async def settled(app: web.Application, target: int, patience: float = 300.0) -> float:
    """Wait until ingest has handled ``target`` supports; the perf_counter instant it did."""
    deadline = time.perf_counter() + patience
    while ingested(app) < target:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"ingest handled {ingested(app)} of {target} supports")
        await asyncio.sleep(0.002)
    return time.perf_counter()


async def drained(app: web.Application, patience: float = 300.0) -> None:
    """Wait until no recorded inbox row waits: a row is marked done only once its batch's
    votes are written and the tally synced (``ingested`` counts a support when ingest hands
    it to the batch, before that)."""
    db, deadline = app[AGGREGATOR].db, time.perf_counter() + patience
    while True:
        rows = await db.execute_fetchall("SELECT COUNT(*) FROM inbox_messages WHERE state = 'new'")
        if next(iter(rows))[0] == 0:
            return
        if time.perf_counter() > deadline:
            raise TimeoutError("the aggregator's inbox did not drain")
        await asyncio.sleep(0.01)


async def counted(app: web.Application, process: str) -> int:
    """Supports the aggregator's tally counts in ``process``, once its inbox has drained."""
    await drained(app)
    return (await app[AGGREGATOR].state.result()).process(process).supports


async def timed_round(
    app: web.Application, send: Any, requests: list[Request], concurrency: int
) -> dict[str, Any]:
    """POST ``requests``; rates of the 202s and of the supports ingest finished, and this
    process's CPU per support (the server's, with the client in a process of its own: a figure
    a busy machine leaves fair, unlike the rates)."""
    before = ingested(app)
    start, cpu = time.perf_counter(), time.process_time()
    report: LoadReport = await send(requests, concurrency)
    accepted = report.statuses.get(202, 0)
    done = await settled(app, before + accepted)
    cpu = time.process_time() - cpu
    n = len(requests)
    return {
        "sent": n,
        "statuses": {str(k): v for k, v in sorted(report.statuses.items())},
        "accepted": accepted,
        "accepted_per_s": accepted / report.wall,
        "ms_per_request": 1000 * report.wall / n,
        "latency_p50_ms": report.percentile_ms(0.5),
        "latency_p99_ms": report.percentile_ms(0.99),
        "ingested_per_s": accepted / (done - start),
        "cpu_ms_per_support": 1000 * cpu / max(1, accepted),
    }


async def measure_inbox(
    directory: Path,
    *,
    requests: int = 2000,
    concurrency: int = 32,
    schemes: tuple[Scheme, ...] = (Scheme.RFC9421, Scheme.CAVAGE),
    separate_process: bool = True,
    seconds: float = 1.0,
) -> dict[str, Any]:
    """Run the whole benchmark against a fresh aggregator in ``directory``; the summary."""
    peer_sock, peer_origin = loopback_socket()
    agg_sock, agg_origin = loopback_socket()
    listen = agg_origin.removeprefix("http://")
    options = AggregatorInit(base_url=agg_origin, allow_loopback=True, listen=listen)
    config = load_aggregator_config(write_aggregator_config(directory, options), environ={})
    peer = Peer(peer_origin)
    # Warm-up pairs (one per resident, touching every proposal) plus the timed ones.
    stage = scene(peer, agg_origin + "/inbox", requests * len(schemes) + 64)
    warm = stage.supports(len(stage.residents), Scheme.RFC9421)
    rounds = {scheme: stage.supports(requests, scheme) for scheme in schemes}
    process = f"{peer.origin}/processes/pam"
    summary: dict[str, Any] = {
        "target": "aggregator shared inbox POST /inbox: Like with eddsa-jcs-2022 proof",
        "requests": requests,
        "concurrency": concurrency,
        "client": "separate process" if separate_process else "same event loop",
        "residents": len(stage.residents),
        "proposals": len(stage.proposals),
    }
    async with (
        serve(peer.app(), peer_sock),
        serve(create_app(config, backfill_on_start=False), agg_sock) as app,
        load_client(separate_process) as send,
    ):
        await put_on_roster(app, peer)
        summary["warm_up"] = await timed_round(app, send, warm, concurrency)
        summary["rounds"] = {}
        for scheme, prepared in rounds.items():
            summary["rounds"][str(scheme)] = await timed_round(app, send, prepared, concurrency)
        summary["counted"] = await counted(app, process)
    summary["bare"] = bare_crypto(warm[0].body or b"", seconds)
    for row in summary["rounds"].values():
        add_ratios(row, summary["bare"])
    return summary


def add_ratios(row: dict[str, Any], bare: Mapping[str, float]) -> None:
    """Each rate as a fraction of the bare crypto it wraps (1.0 = nothing but crypto)."""
    pair = bare["httpsig_plus_proof_per_s"]
    row["ratio_accepted"] = row["accepted_per_s"] / pair
    row["ratio_ingested"] = row["ingested_per_s"] / pair
    row["ingested_over_ed25519_ceiling"] = row["ingested_per_s"] / bare["ed25519_verify_per_s"]


def report(summary: Mapping[str, Any]) -> None:
    """The readable lines."""
    bare = summary["bare"]
    print(f"inbox: {summary['target']}; {summary['requests']} requests per scheme,")
    print(f"  concurrency {summary['concurrency']}, client in {summary['client']}")
    print(
        f"  bare: RSA-2048 verify {bare['rsa2048_verify_per_s']:,.0f}/s, Ed25519 verify "
        f"{bare['ed25519_verify_per_s']:,.0f}/s, one of each "
        f"{bare['httpsig_plus_proof_per_s']:,.0f}/s"
    )
    for scheme, row in summary["rounds"].items():
        answered = f"{row['accepted']}/{row['sent']}"
        print(
            f"  {scheme:10} 202 {answered}: {row['accepted_per_s']:7,.0f} req/s"
            f" ({row['ms_per_request']:.2f} ms/req, p50 {row['latency_p50_ms']:.1f} ms, p99 "
            f"{row['latency_p99_ms']:.1f} ms) ratio {row['ratio_accepted']:.2f};"
            f" ingested {row['ingested_per_s']:7,.0f}/s ratio {row['ratio_ingested']:.2f};"
            f" {row['cpu_ms_per_support']:.3f} CPU ms per support in this process"
        )
    print(f"  counted by the tally at the end: {summary['counted']}")


def main() -> None:
    """Measure, print, write benchmarks/results/inbox.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="per HTTP-signature scheme")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=1.0, help="per bare-crypto measurement")
    parser.add_argument("--same-process", action="store_true", help="client in the server's loop")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as tmp:
        summary = asyncio.run(
            measure_inbox(
                Path(tmp) / "aggregator", requests=args.requests,
                concurrency=args.concurrency, separate_process=not args.same_process,
                seconds=args.seconds,
            )
        )  # fmt: skip
    summary["load_average_1min"] = [load, os.getloadavg()[0]]  # other work skews it all
    summary["code"] = code_version()
    report(summary)
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(rounded(summary), indent=2) + "\n"
    (RESULTS / "inbox.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
