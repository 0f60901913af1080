"""Seed the demo city through the servers' public interfaces only (never a database write).

Before the servers start, ``barri init``, ``barri admin create-user``/``census import`` and
``barri admin process create`` set each instance up (:func:`prepare`). Once they serve,
:func:`seed` acts as people do: the neighbourhoods join the city's process (``barri admin
process follow``), the aggregator adds each instance to its roster (``barri roster add``),
residents register, log in, propose, support, withdraw and comment through the instances'
HTML forms (:class:`~federation.demo_web.Browser`) — or, in Sants and Poblenou, propose and
support through C2S, ``POST`` to their outbox with a token from ``barri admin token create`` —
their associations verify them (the admin page, or ``barri admin census claim``) and the city
answers a proposal. It returns what the aggregator must then show (:func:`expected_totals`),
computed from what was done.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from federation.demo_data import (
    ADMIN,
    ANSWER,
    CENSUS,
    CITY_CODE,
    COMMENTS,
    PASSWORD,
    PLACES,
    PROPOSALS,
    SUPPORTS,
    WITHDRAWN_PROPOSAL,
    WITHDRAWN_SUPPORTS,
    Place,
    census_csv,
    process_draft,
)
from federation.demo_web import Browser, FormRefused, anchor_of

#: Runs ``barri ARGS...`` (with optional stdin) and returns its standard output.
Cli = Callable[..., Awaitable[str]]
ARRIVAL_WAIT = 30.0  # seconds for a federated object to reach another instance


class SeedError(Exception):
    """Seeding failed; the message says where (one line)."""


@dataclass(frozen=True)
class Site:
    """One server of the demo city on loopback: the aggregator (no place) or an instance."""

    key: str
    place: Place | None
    port: int
    directory: Path
    base_url: str  # its public origin: http://127.0.0.1:{port}, or behind a TLS proxy
    listen_host: str = "127.0.0.1"

    @property
    def listen(self) -> str:
        """The ``HOST:PORT`` it listens on."""
        return f"{self.listen_host}:{self.port}"

    @property
    def local_url(self) -> str:
        """Where this machine reaches it directly, proxy or not."""
        host = "127.0.0.1" if self.listen_host in ("0.0.0.0", "") else self.listen_host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def config(self) -> Path:
        """Its barri.toml."""
        return self.directory / "barri.toml"


@dataclass
class Seeded:
    """The ids the seeding made and what the aggregator must count (kept in demo.json)."""

    processes: dict[str, str]
    proposals: dict[str, str] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)


# -- before the servers start ----------------------------------------------------------------


async def prepare(aggregator: Site, sites: list[Site], cli: Cli) -> dict[str, str]:
    """Write every config and set each instance up offline; returns process IRIs by place."""
    await cli("init", "aggregator", "--dir", str(aggregator.directory),
              "--base-url", aggregator.base_url, "--name", "Barcelona: agregador (demo)",
              "--city", CITY_CODE, "--allow-loopback",
              "--listen", aggregator.listen)  # fmt: skip
    actor = aggregator.base_url + "/actor"
    iris = await asyncio.gather(*(_prepare_instance(site, actor, cli) for site in sites))
    return {site.key: iri for site, iri in zip(sites, iris, strict=True)}


async def _prepare_instance(site: Site, aggregator_actor: str, cli: Cli) -> str:
    place = _place(site)
    territory = ["--territory", place.territory, "--territory-kind", place.kind]
    if place.district:
        territory += ["--district", place.district]
    await cli("init", "instance", "--dir", str(site.directory), "--base-url", site.base_url,
              "--name", place.name, "--group", place.group, *territory,
              "--report-to", aggregator_actor, "--allow-loopback",
              "--listen", site.listen)  # fmt: skip
    admin = ("admin", "--config", str(site.config))
    await cli(*admin, "create-user", ADMIN, "--admin", "--password-stdin", stdin=PASSWORD)
    if place.key in CENSUS:
        census = site.directory / "census.csv"
        census.write_text(census_csv(place), encoding="utf-8")
        await cli(*admin, "census", "import", str(census))
    draft = site.directory / "process.json"
    draft.write_text(json.dumps(process_draft(place, datetime.now(UTC)), ensure_ascii=False))
    out = await cli(*admin, "process", "create", "--file", str(draft))
    return out.strip().splitlines()[-1]  # the command prints the IRI last


# -- once they serve -------------------------------------------------------------------------


class _People:
    """A logged-in browser per (place, username), closed together."""

    def __init__(self, sites: Iterable[Site]) -> None:
        self.sites = {site.key: site for site in sites}
        self.browsers: dict[tuple[str, str], Browser] = {}

    def __call__(self, place: str, username: str) -> Browser:
        key = (place, username)
        if key not in self.browsers:
            self.browsers[key] = Browser(self.sites[place].base_url, username)
        return self.browsers[key]

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self.browsers.values()))


async def seed(aggregator: Site, sites: list[Site], processes: dict[str, str], cli: Cli) -> Seeded:
    """Do everything the demo city shows, through the public interfaces; returns the ids."""
    people = _People(sites)
    seeded = Seeded(processes)
    try:
        await asyncio.gather(
            _join_city(sites, processes["city"], cli),
            _accounts(sites, people, cli),
            _roster(aggregator, sites, cli),
        )
        await _wait_followed(aggregator, len(sites))
        await _proposals(people, seeded)
        await _wait_arrivals(sites, people, seeded)
        await _supports(people, seeded)
        await _withdrawals(people, seeded)
        await _comments(people, seeded)
    except FormRefused as exc:
        raise SeedError(str(exc)) from exc
    finally:
        await people.close()
    seeded.expected = expected_totals(seeded)
    return seeded


async def _join_city(sites: list[Site], city_process: str, cli: Cli) -> None:
    """Each neighbourhood's association joins the city's process."""
    hoods = [site for site in sites if not _place(site).is_city]
    await asyncio.gather(
        *(cli("admin", "--config", str(s.config), "process", "follow", city_process) for s in hoods)
    )


async def _accounts(sites: list[Site], people: _People, cli: Cli) -> None:
    """Admins log in, residents register; census claims or the admin page verify them."""

    async def one_place(site: Site) -> None:
        place = _place(site)
        admin = people(place.key, ADMIN)
        await admin.login(PASSWORD)
        for name in place.residents:
            await people(place.key, name).register(PASSWORD)
        claimed = CENSUS.get(place.key)
        config = ("admin", "--config", str(site.config))
        for name in place.residents:
            if claimed is not None and claimed[0] == name:
                await cli(*config, "census", "claim", name, claimed[1])
            else:
                await admin.verify(name, place.territory)
            if place.client == "c2s":
                # A personal access token, as a resident's app would hold (scope write).
                out = await cli(*config, "token", "create", name, "--scope", "write")
                people(place.key, name).token = out.strip().splitlines()[-1]

    await asyncio.gather(*(one_place(site) for site in sites))


async def _roster(aggregator: Site, sites: list[Site], cli: Cli) -> None:
    """The aggregator follows and backfills every instance (one at a time: one database)."""
    for site in sites:
        place = _place(site)
        # The city's own instance lies in no district; its residents' supports do not count.
        district = place.district or place.territory
        await cli("roster", "--config", str(aggregator.config), "add", site.base_url,
                  "--territory", place.territory, "--district", district)  # fmt: skip


async def _wait_followed(aggregator: Site, expected: int) -> None:
    """Until every instance has accepted the aggregator's Follows (so it gets what follows)."""
    url = aggregator.base_url + "/api/v1/instances"
    deadline = time.monotonic() + ARRIVAL_WAIT
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(url) as response:
                body = await response.json() if response.status == 200 else {}
            entries = body.get("instances", [])
            states = [f["state"] for entry in entries for f in entry.get("follows", [])]
            if len(entries) == expected and states and set(states) == {"accepted"}:
                return
            if time.monotonic() > deadline:
                raise SeedError(f"the instances did not accept the aggregator's follows: {states}")
            await asyncio.sleep(0.1)


async def _proposals(people: _People, seeded: Seeded) -> None:
    async def one(key: str, place: str, author: str, process: str, name: str, body: str) -> None:
        iri = await people(place, author).propose(seeded.processes[process], name, body)
        seeded.proposals[key] = iri

    await asyncio.gather(
        *(one(p.key, p.place, p.author, p.process, p.name, p.body) for p in PROPOSALS)
    )


async def _wait_arrivals(sites: list[Site], people: _People, seeded: Seeded) -> None:
    """Every instance has received every city-process proposal (the city Group's Announces)."""
    city = [p for p in PROPOSALS if p.process == "city"]
    waits = [
        people(site.key, ADMIN).wait_for(seeded.proposals[p.key], ARRIVAL_WAIT)
        for site in sites
        for p in city
        if p.place != site.key
    ]
    await asyncio.gather(*waits)


async def _supports(people: _People, seeded: Seeded) -> None:
    async def one(place: str, name: str, keys: tuple[str, ...]) -> None:
        for key in keys:
            await people(place, name).support(seeded.proposals[key])

    await asyncio.gather(*(one(place, name, keys) for (place, name), keys in SUPPORTS.items()))


async def _withdrawals(people: _People, seeded: Seeded) -> None:
    """A few supports withdrawn, a proposal withdrawn by its author, the city's answer."""
    author = next(p for p in PROPOSALS if p.key == WITHDRAWN_PROPOSAL)
    key, state, text = ANSWER
    await asyncio.gather(
        *(people(pl, name).unsupport(seeded.proposals[k]) for pl, name, k in WITHDRAWN_SUPPORTS),
        people(author.place, author.author).withdraw(seeded.proposals[author.key]),
        people("city", ADMIN).answer(seeded.proposals[key], state, text),
    )


async def _comments(people: _People, seeded: Seeded) -> None:
    """Threads across instances: a reply waits until its parent reached the replier's instance."""
    threads: dict[str, list[Any]] = {}
    for comment in COMMENTS:
        threads.setdefault(comment.on, []).append(comment)

    async def thread(items: list[Any]) -> None:
        for c in items:
            browser, root = people(c.place, c.author), seeded.proposals[c.on]
            parent = seeded.comments[c.parent] if c.parent else None
            if parent is not None:
                await browser.wait_for(root, ARRIVAL_WAIT, anchor=anchor_of(parent))
            seeded.comments[c.key] = await browser.comment(root, c.body, c.alignment, parent)

    await asyncio.gather(*(thread(items) for items in threads.values()))


# -- what the aggregator must show -----------------------------------------------------------


def expected_totals(seeded: Seeded) -> dict[str, dict[str, Any]]:
    """Per process IRI: supports, participants, supports per proposal and per neighbourhood."""
    withdrawn = {(place, name, key) for place, name, key in WITHDRAWN_SUPPORTS}
    process_of = {p.key: seeded.processes[p.process] for p in PROPOSALS}
    territory = {place.key: place.territory for place in PLACES}
    per: dict[str, dict[str, Any]] = {
        iri: {"supports": 0, "participants": set(), "proposals": Counter(),
              "neighbourhoods": Counter()}
        for iri in seeded.processes.values()
    }  # fmt: skip
    for (place, name), keys in SUPPORTS.items():
        for key in keys:
            if (place, name, key) in withdrawn:
                continue
            totals = per[process_of[key]]
            totals["supports"] += 1
            totals["participants"].add((place, name))
            totals["proposals"][seeded.proposals[key]] += 1
            totals["neighbourhoods"][territory[place]] += 1
    return {
        iri: {
            "supports": t["supports"],
            "participants": len(t["participants"]),
            "proposals": dict(sorted(t["proposals"].items())),
            "neighbourhoods": dict(sorted(t["neighbourhoods"].items())),
        }
        for iri, t in per.items()
    }


def observed_totals(results: dict[str, Any]) -> dict[str, Any]:
    """The same shape, read from the aggregator's ``/results`` JSON."""
    return {
        "supports": results.get("supports"),
        "participants": results.get("participants"),
        "proposals": dict(
            sorted((p["id"], p["supports"]) for p in results.get("proposals", []) if p["supports"])
        ),
        "neighbourhoods": dict(sorted(results.get("totals", {}).get("neighbourhoods", {}).items())),
    }


def _place(site: Site) -> Place:
    if site.place is None:
        raise SeedError(f"{site.key} is not an instance")
    return site.place
