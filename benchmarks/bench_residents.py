"""What an aggregator's backfill pays an instance to learn its residents: a GET each, or pages.

A real neighbourhood instance (``federation.instance.app``, its own SQLite file) with R verified
residents listens on 127.0.0.1; an aggregator stand-in (a loopback peer whose instance actor the
instance reports to) reads every resident's actor document two ways, from a separate client
process, each request signed (RFC 9421) by that actor:

- ``one GET per resident``: R GETs of the actor ids, as backfill did before ``/residents``;
- ``/residents pages``: the collection's pages of 100 (R / 100 GETs).

Reported per resident: the instance's CPU milliseconds (this process, which serves it; the
residents' keys are made and loaded before anything is timed) and the wall milliseconds, and
the ratio of the two ways, and the bytes each way sends per resident (a page's items share its
``@context``). The aggregator saves its side of every request too: signing it, the round trip,
parsing a whole document with its own ``@context``; that is not measured here.

Run: ``.venv/bin/python benchmarks/bench_residents.py [--residents 200]``; also written to
``benchmarks/results/residents.json``. Nothing here is a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from bench_inbox import AS2, Peer, Request, load_client, loopback_socket, serve
from bench_libs import code_version, rounded

from activitypub.httpsig import Scheme, sign_request
from activitypub.runtime import LocalKeys
from federation.config import load_config
from federation.config_writer import InitOptions, write_instance_config
from federation.instance.app import ACCOUNTS, ACTORS, create_app
from federation.instance.ports import Role

RESULTS = Path(__file__).resolve().parent / "results"
PAGE = 100


def signed(url: str, signer: LocalKeys) -> Request:
    """A GET asking for AS2, signed by ``signer`` (RFC 9421)."""
    headers = sign_request("GET", url, {"Accept": AS2}, None, signer.signing_key, Scheme.RFC9421)
    return Request("GET", url, tuple(headers.items()))


async def page_urls(origin: str, signer: LocalKeys, size: int) -> list[str]:
    """Every page of ``/residents`` (walked once, untimed, to know their cursors)."""
    urls, link = [], f"{origin}/residents?page=true&limit={size}"
    async with aiohttp.ClientSession() as session:
        while link:
            request = signed(link, signer)
            async with session.get(link, headers=list(request.headers)) as response:
                if response.status != 200:
                    raise RuntimeError(f"GET {link} answered {response.status}")
                page = json.loads(await response.read())
            urls.append(link)
            link = page.get("next")
    return urls


async def measure(
    directory: Path, residents: int, rounds: int, *, page: int = PAGE, separate_process: bool = True
) -> dict[str, Any]:
    """Both ways, ``rounds`` times each, alternated; the best round of each."""
    inst_sock, origin = loopback_socket()
    peer_sock, peer_origin = loopback_socket()
    peer = Peer(peer_origin)
    reader = peer.keys[peer.add_actor("/actor", "Application", {})]
    options = InitOptions(
        base_url=origin, name="AV Raval", secret="s" * 43, group="av", territory="01",
        district="01", allow_loopback=True, listen=origin.removeprefix("http://"),
        report_to=(reader.actor_id,),
    )  # fmt: skip
    app = create_app(load_config(write_instance_config(directory, options), environ={}))
    best: dict[str, dict[str, float]] = {}
    async with (
        serve(peer.app(), peer_sock),
        serve(app, inst_sock),
        load_client(separate_process) as send,
    ):
        actors = []
        for n in range(residents):
            await app[ACCOUNTS].create_user(f"r{n:04d}", None, Role.RESIDENT)
            await app[ACCOUNTS].verify(f"r{n:04d}", "01", by="bench")
            actors.append(app[ACTORS].person_id(f"r{n:04d}"))
            await app[ACTORS].keys_for(actors[-1])  # RSA keygen: not what is measured
        ways = {
            "one GET per resident": [signed(url, reader) for url in actors],
            "/residents pages": [signed(u, reader) for u in await page_urls(origin, reader, page)],
        }
        for requests in ways.values():
            await send(requests[:20], 4)  # warm-up: the reader's key fetched and cached
        for _ in range(rounds):
            for name, requests in ways.items():
                cpu = time.process_time()
                report = await send(requests, 4)
                used = time.process_time() - cpu
                if set(report.statuses) != {200}:
                    raise RuntimeError(f"{name}: {report.statuses}")
                row = {
                    "requests": len(requests),
                    "instance_cpu_ms_per_resident": 1000 * used / residents,
                    "wall_ms_per_resident": 1000 * report.wall / residents,
                    "bytes_per_resident": report.received / residents,
                }
                if (
                    name not in best
                    or row["instance_cpu_ms_per_resident"]
                    < best[name]["instance_cpu_ms_per_resident"]
                ):
                    best[name] = row
    one, paged = best["one GET per resident"], best["/residents pages"]
    return {
        "residents": residents,
        "rounds": rounds,
        "ways": best,
        "cpu_ratio": one["instance_cpu_ms_per_resident"] / paged["instance_cpu_ms_per_resident"],
        "wall_ratio": one["wall_ms_per_resident"] / paged["wall_ms_per_resident"],
    }


def main() -> None:
    """Parse the arguments, run, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        summary = asyncio.run(measure(Path(tmp), args.residents, args.rounds))
    summary["code"] = code_version()
    for name, row in summary["ways"].items():
        cpu, wall = row["instance_cpu_ms_per_resident"], row["wall_ms_per_resident"]
        print(
            f"{name:>22}: {row['requests']} GETs, instance {cpu:.3f} CPU ms and {wall:.3f} wall"
            f" ms per resident, {row['bytes_per_resident']:.0f} bytes"
        )
    cpu_ratio, wall_ratio = summary["cpu_ratio"], summary["wall_ratio"]
    print(f"one GET each over pages: CPU x{cpu_ratio:.1f}, wall x{wall_ratio:.1f}")
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(rounded(summary), indent=2) + "\n"
    (RESULTS / "residents.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
