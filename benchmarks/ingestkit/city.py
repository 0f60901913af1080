"""A real city for the ingest benchmark: instances, verified residents, proposals, keys.

Everything goes through :mod:`benchmarks.citysim.cluster` (``barri init``/``admin`` CLI, then
``barri serve`` children) and the residents' C2S outboxes; only the residents' private keys are
read straight from each instance's SQLite file (the benchmark owns the machine), so that the
benchmark can prove and sign supports exactly as the instance would.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.citysim import cluster
from benchmarks.citysim.cluster import ROOT, City, CityError
from benchmarks.citysim.driver import Driver
from benchmarks.citysim.profiles import Profile
from benchmarks.citysim.workload import Act, Hood, city_layout
from benchmarks.ingestkit import aggregator as agg_proc
from federation.vocab.process import process_from_ap

AS2 = "application/activity+json"


@dataclass(frozen=True)
class Shape:
    """How big the benchmark city is."""

    hoods: int = 4
    residents: int = 100  # per neighbourhood instance
    city_proposals: int = 40
    hood_proposals: int = 40  # per neighbourhood process
    limit: int = 80  # supportsPerParticipant of every process

    def profile(self) -> Profile:
        """The citysim profile that sets these servers up (no workload of its own)."""
        return Profile(
            "ingest",
            districts=2,
            hoods=self.hoods,
            residents=self.residents,
            city_residents=4,
            hood_proposals=self.hood_proposals,
            city_proposals=self.city_proposals,
            supports=0,
            withdrawals=0,
            comments=0,
            answers=0,
            limit=self.limit,
            concurrency=16,
        )


def add_shape_arguments(parser: argparse.ArgumentParser, directory: str) -> None:
    """The options that size a bench city (``--dir`` defaults to ``directory``)."""
    parser.add_argument("--dir", type=Path, default=Path(directory))
    parser.add_argument("--hoods", type=int, default=4)
    parser.add_argument("--residents", type=int, default=100, help="per neighbourhood")
    parser.add_argument("--proposals", type=int, default=60, help="per process")
    parser.add_argument("--limit", type=int, default=60, help="supports per participant")


def shape_of(args: argparse.Namespace) -> Shape:
    """The Shape those options name."""
    return Shape(args.hoods, args.residents, args.proposals, args.proposals, args.limit)


@dataclass(frozen=True)
class Resident:
    """A verified resident and the private keys their instance keeps for them (PEM)."""

    place: str
    name: str
    actor: str
    rsa_pem: str
    ed25519_pem: str


@dataclass
class BenchCity:
    """The running city: servers, proposals per process owner, supporters with keys."""

    city: City
    hoods: list[Hood]
    driver: Driver
    proposals: dict[str, list[str]] = field(default_factory=dict)  # owner key -> IRIs
    keys_of: dict[str, str] = field(default_factory=dict)  # proposal IRI -> its key
    owners: dict[str, str] = field(default_factory=dict)  # owner key -> owning Group
    residents: list[Resident] = field(default_factory=list)

    @property
    def inbox(self) -> str:
        """The aggregator's shared inbox."""
        return self.city.aggregator.base_url + "/inbox"

    @property
    def aggregator_actor(self) -> str:
        """The aggregator's Service actor."""
        return self.city.aggregator.base_url + "/actor"


async def build(
    directory: Path,
    shape: Shape,
    session: aiohttp.ClientSession,
    profile_to: Path | None,
    code: Path = ROOT,
) -> BenchCity:
    """Set the city up and start it (the aggregator under cProfile when ``profile_to``)."""
    hoods = city_layout(shape.profile())
    city = cluster.layout(directory, hoods, [])
    await cluster.prepare(city, shape.profile())
    await cluster.start(city, list(city.sites))
    await agg_proc.start(city, session, profile_to, code=code)
    await cluster.federate(city, list(city.sites))
    bench = BenchCity(city, hoods, Driver(city, session))
    await _propose(bench, shape)
    await _owners(bench, session)
    await _residents(bench, session)
    await _snapshot(bench, session, profile_to, code)
    return bench


STATE = "bench-city.json"
SNAPSHOT = "aggregator-snapshot.sqlite3"


async def _snapshot(
    bench: BenchCity, session: aiohttp.ClientSession, profile_to: Path | None, code: Path
) -> None:
    """Keep the set-up (ports, ids, keys) and the aggregator's database as it is now, so that
    ``reuse`` can start the same city again without setting it up."""
    city = bench.city
    state = {
        "ports": {"aggregator": city.aggregator.port} | {k: s.port for k, s in city.sites.items()},
        "hoods": [dataclasses.asdict(h) for h in bench.hoods],
        "processes": city.processes,
        "tokens": [[p, n, t] for (p, n), t in city.tokens.items()],
        "proposals": bench.proposals,
        "ids": bench.driver.ids,
        "owners": bench.owners,
        "residents": [dataclasses.asdict(r) for r in bench.residents],
    }
    (city.directory / STATE).write_text(json.dumps(state))
    await agg_proc.stop(city)
    shutil.copyfile(city.aggregator.directory / "barri.sqlite3", city.directory / SNAPSHOT)
    await agg_proc.start(city, session, profile_to, code=code)


async def reuse(
    directory: Path, session: aiohttp.ClientSession, profile_to: Path | None, code: Path = ROOT
) -> BenchCity:
    """The city a previous :func:`build` left in ``directory``, started again, with the
    aggregator's database as it was at the end of that set-up."""
    state = json.loads((directory / STATE).read_text())
    hoods = [
        Hood(h["key"], h["code"], h["district"], h["kind"], tuple(h["residents"]))
        for h in state["hoods"]
    ]
    city = cluster.layout(directory, hoods, [])
    ports = state["ports"]
    city.aggregator = dataclasses.replace(
        city.aggregator,
        port=ports["aggregator"],
        base_url=f"http://127.0.0.1:{ports['aggregator']}",
    )
    city.sites = {
        k: dataclasses.replace(s, port=ports[k], base_url=f"http://127.0.0.1:{ports[k]}")
        for k, s in city.sites.items()
    }
    city.processes = state["processes"]
    city.tokens = {(p, n): t for p, n, t in state["tokens"]}
    database = city.aggregator.directory / "barri.sqlite3"
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(directory / SNAPSHOT, database)
    await cluster.start(city, list(city.sites))
    await agg_proc.start(city, session, profile_to, code=code)
    bench = BenchCity(city, hoods, Driver(city, session))
    bench.driver.ids = state["ids"]
    bench.proposals = state["proposals"]
    bench.keys_of = {iri: key for key, iri in state["ids"].items()}
    bench.owners = state["owners"]
    bench.residents = [Resident(**r) for r in state["residents"]]
    return bench


async def _propose(bench: BenchCity, shape: Shape) -> None:
    """Proposals through the residents' C2S outboxes: the city's and each neighbourhood's."""
    acts: list[Act] = []
    for hood in bench.hoods[1:]:
        for n in range(shape.hood_proposals):
            resident = hood.residents[n % len(hood.residents)]
            acts.append(Act("propose", hood.key, resident, f"{hood.key}-p{n:03d}", hood.key))
    city_hood = bench.hoods[0]
    for n in range(shape.city_proposals):
        resident = city_hood.residents[n % len(city_hood.residents)]
        acts.append(Act("propose", "city", resident, f"city-p{n:03d}", process="city"))
    await bench.driver.run(acts, 16)
    for act in acts:
        iri = bench.driver.ids[act.proposal]
        bench.proposals.setdefault(act.process, []).append(iri)
        bench.keys_of[iri] = act.proposal
    # Residents support city-wide proposals through their own instances: each must know them
    # (the city Group's Announces) first, whatever the instances' pace.
    city_keys = [act.proposal for act in acts if act.process == "city"]
    await bench.driver.wait_arrivals(city_keys, [hood.key for hood in bench.hoods[1:]])


async def _owners(bench: BenchCity, session: aiohttp.ClientSession) -> None:
    """Each process's owning Group, as its document says."""
    for key, iri in bench.city.processes.items():
        async with session.get(iri, headers={"Accept": AS2}) as response:
            if response.status != 200:
                raise CityError(f"GET {iri}: HTTP {response.status}")
            document: dict[str, Any] = await response.json(content_type=None)
        bench.owners[key] = process_from_ap(document).owner


async def _residents(bench: BenchCity, session: aiohttp.ClientSession) -> None:
    """Every neighbourhood resident, with the keys their instance made for them."""
    gate = asyncio.Semaphore(16)
    wanted = [(h.key, r) for h in bench.hoods[1:] for r in h.residents]

    async def touch(place: str, name: str) -> None:
        # Serving the actor document makes the instance generate and store its keys.
        async with (
            gate,
            session.get(bench.city.actor(place, name), headers={"Accept": AS2}) as response,
        ):
            if response.status != 200:
                raise CityError(f"actor {place}/{name}: HTTP {response.status}")

    await asyncio.gather(*(touch(place, name) for place, name in wanted))
    for hood in bench.hoods[1:]:
        keys = _stored_keys(bench.city.sites[hood.key].directory)
        for name in hood.residents:
            actor = bench.city.actor(hood.key, name)
            rsa_pem, ed_pem = keys[actor]
            bench.residents.append(Resident(hood.key, name, actor, rsa_pem, ed_pem))


def _stored_keys(directory: Path) -> dict[str, tuple[str, str]]:
    """actor id -> (RSA PEM, Ed25519 PEM) from an instance's ``actor_keys`` table."""
    path = directory / "barri.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT actor_id, rsa_private_pem, ed25519_private_pem FROM actor_keys")
        return {str(a): (str(r), str(e)) for a, r, e in rows}
