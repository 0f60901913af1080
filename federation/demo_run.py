"""Running ``barri demo`` (:mod:`federation.demo`): the city's layout, folder and state file,
starting its five servers, seeding them the first time, and waiting for the aggregator's totals.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from federation.demo import LOOPBACK_URL
from federation.demo_data import PASSWORD, PLACES, PROPOSALS, WITHDRAWN_SUPPORTS, Place
from federation.demo_procs import DemoError, Servers, make_cli, make_spawn
from federation.demo_seed import Seeded, Site, observed_totals, prepare, seed

STATE_FILE = "demo.json"
CONVERGE_WAIT = 60.0  # seconds for the aggregator to count everything
T = TypeVar("T")


@dataclass(frozen=True)
class Origins:
    """Where the servers listen and the public origins they are known by."""

    port_base: int
    public_url: str = LOOPBACK_URL
    listen_host: str = "127.0.0.1"

    def site(self, key: str, place: Place | None, offset: int, directory: Path) -> Site:
        """The server ``key`` on port ``port_base + offset``."""
        port = self.port_base + offset
        base_url = self.public_url.format(name=key, port=port).rstrip("/")
        return Site(key, place, port, directory / key, base_url, self.listen_host)


def layout(directory: Path, origins: Origins) -> tuple[Site, list[Site]]:
    """The aggregator on the first port, then the city and each neighbourhood on the next."""
    aggregator = origins.site("aggregator", None, 0, directory)
    sites = [origins.site(p.key, p, 1 + i, directory) for i, p in enumerate(PLACES)]
    return aggregator, sites


def check_ports(host: str, ports: list[int]) -> None:
    """Refuse, in one line, when another program listens on any of the demo's ports."""
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As aiohttp binds: a port left in TIME_WAIT by an earlier run is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                busy.append(str(port))
    if busy:
        which = f"port {busy[0]} is" if len(busy) == 1 else f"ports {', '.join(busy)} are"
        raise DemoError(
            f"{which} in use on {host} (another demo running?); choose other ports with"
            " --port-base N (the demo uses N to N+4)"
        )


# -- the folder and its state ----------------------------------------------------------------


def prepare_directory(directory: Path, origins: Origins, *, fresh: bool) -> dict[str, Any] | None:
    """The seeded state of an earlier run to reuse, or None after making a fresh folder."""
    state_path = directory / STATE_FILE
    where = {"port_base": origins.port_base, "public_url": origins.public_url}
    if directory.exists() and any(directory.iterdir()):
        state = read_state(state_path)
        if state is None:
            raise DemoError(f"{directory} is not a demo's folder (no {STATE_FILE}); use --dir")
        was = {key: state.get(key, LOOPBACK_URL) for key in where}
        if not fresh and state.get("seeded") and was != where:
            # Ids contain the origins: a demo cannot move to other ports or names.
            raise DemoError(
                f"{directory} holds a demo on --port-base {was['port_base']} --public-url"
                f" {was['public_url']}; run it with those, or add --fresh to start again"
            )
        if not fresh and state.get("seeded"):
            return state
        if not state.get("seeded") and not fresh:
            print("barri demo: an earlier run stopped before seeding was done; starting again")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_state(state_path, {"version": 1, **where, "seeded": False})
    return None


def read_state(path: Path) -> dict[str, Any] | None:
    """The demo's state file, or None when it is missing or unreadable."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write the state file atomically (a half-written one must not pass for seeded)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


# -- the run ---------------------------------------------------------------------------------


async def run_demo(directory: Path, origins: Origins, *, fresh: bool) -> int:
    """Start (and seed, the first time) the demo city; run until SIGINT or SIGTERM."""
    started = time.monotonic()
    aggregator, sites = layout(directory, origins)
    check_ports(origins.listen_host, [aggregator.port, *(site.port for site in sites)])
    state = prepare_directory(directory, origins, fresh=fresh)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    spawn = make_spawn()
    servers = Servers(spawn)
    try:
        bring_up = _bring_up(directory, aggregator, sites, state, servers, make_cli(spawn))
        ready = await _until_stopped(bring_up, stop, servers)
        if ready is None:
            print("barri demo: interrupted before the city was ready; stopping", flush=True)
            return 130
        print_city(directory, aggregator, sites, ready)
        print(f"barri demo: ready in {time.monotonic() - started:.1f} s;"
              " press Ctrl-C to stop", flush=True)  # fmt: skip
        await _until_stopped(asyncio.Event().wait(), stop, servers)
        print("barri demo: stopping", flush=True)
        return 0
    finally:
        await servers.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if servers.running:
            print(f"barri demo: stopped {len(servers.running)} servers", flush=True)


async def _until_stopped(work: Awaitable[T], stop: asyncio.Event, servers: Servers) -> T | None:
    """``work``'s result; None if a signal came first; DemoError if a server died first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    died = asyncio.ensure_future(servers.first_exit())
    try:
        await asyncio.wait({task, stopped, died}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        if died.done():
            raise DemoError(died.result())
        return None
    finally:
        for pending in (task, stopped, died):
            pending.cancel()
        await asyncio.gather(task, stopped, died, return_exceptions=True)


async def _bring_up(
    directory: Path,
    aggregator: Site,
    sites: list[Site],
    state: dict[str, Any] | None,
    servers: Servers,
    cli: Callable[..., Awaitable[str]],
) -> dict[str, Any]:
    """Prepare (first run), start and check every server, seed (first run), converge."""
    if state is None:
        print(f"barri demo: setting up a demo city in {directory}/ (first run)", flush=True)
        processes = await prepare(aggregator, sites, cli)
    else:
        print(f"barri demo: starting the demo city kept in {directory}/", flush=True)
        processes = state["processes"]
    everyone = [aggregator, *sites]
    for site in everyone:
        await servers.start(site)
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(servers.healthy(site, session) for site in everyone))
    if state is None:
        print("barri demo: 5 servers up; seeding through their public interfaces", flush=True)
        seeded = await seed(aggregator, sites, processes, cli)
        state = _seeded_state(directory, seeded)
    await converge(aggregator, state["expected"])
    return state


def _seeded_state(directory: Path, seeded: Seeded) -> dict[str, Any]:
    state_path = directory / STATE_FILE
    state = read_state(state_path) or {}
    state |= {
        "seeded": True,
        "processes": seeded.processes,
        "proposals": seeded.proposals,
        "comments": seeded.comments,
        "expected": seeded.expected,
    }
    write_state(state_path, state)
    return state


async def converge(aggregator: Site, expected: dict[str, dict[str, Any]]) -> None:
    """Wait until the aggregator's results equal ``expected`` for every process."""
    deadline = time.monotonic() + CONVERGE_WAIT
    observed: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        while True:
            for iri in expected:
                async with session.get(results_url(aggregator, iri)) as response:
                    body = await response.json() if response.status == 200 else {}
                observed[iri] = observed_totals(body)
            if observed == expected:
                return
            if time.monotonic() > deadline:
                wrong = next(iri for iri in expected if observed.get(iri) != expected[iri])
                raise DemoError(
                    f"the aggregator's totals for {wrong} are {observed[wrong]},"
                    f" not {expected[wrong]}, after {CONVERGE_WAIT:.0f} s"
                )
            await asyncio.sleep(0.2)


def results_url(aggregator: Site, process: str) -> str:
    """The aggregator's JSON results of a process."""
    return f"{aggregator.base_url}/api/v1/processes/{quote(process, safe='')}/results"


# -- what it prints --------------------------------------------------------------------------


def city_urls(aggregator: Site, sites: list[Site], state: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, URL) for every page worth opening, in the order printed."""
    rows: list[tuple[str, str]] = []
    for site in sites:
        place = site.place
        assert place is not None
        where = "city-wide" if place.is_city else f"neighbourhood {place.territory}"
        rows.append((f"{place.label}: {place.name} ({where})", site.base_url + "/"))
        rows.append(("  its participatory budget", state["processes"][site.key]))
    city_process = quote(state["processes"]["city"], safe="")
    api = aggregator.base_url + "/api/v1"
    rows += [
        ("aggregator: every process's results", aggregator.base_url + "/"),
        (
            "aggregator: the city-wide budget's results",
            f"{aggregator.base_url}/processes?id={city_process}",
        ),
        ("  the same as JSON", f"{api}/processes/{city_process}/results"),
        ("  the same as CSV", f"{api}/processes/{city_process}/export.csv"),
        ("aggregator: processes (JSON)", api + "/processes"),
        ("aggregator: instances on the roster (JSON)", api + "/instances"),
    ]
    return rows


def summary(state: dict[str, Any]) -> str:
    """One line of totals: what was seeded, and what the aggregator counts."""
    expected = state["expected"].values()
    supports = sum(totals["supports"] for totals in expected)
    residents = sum(len(place.residents) for place in PLACES)
    return (
        f"{len(state['processes'])} processes, {len(PROPOSALS)} proposals (1 withdrawn),"
        f" {residents} verified residents on {len(PLACES)} instances, {supports} supports"
        f" counted ({len(WITHDRAWN_SUPPORTS)} withdrawn), {len(state['comments'])} comments"
        " in threads across instances; the aggregator's totals agree"
    )


def print_city(directory: Path, aggregator: Site, sites: list[Site], state: dict[str, Any]) -> None:
    """The URL table and the line of totals."""
    rows = city_urls(aggregator, sites, state)
    width = max(len(what) for what, _url in rows)
    print(f"\nbarri demo: the demo city (data in {directory}/)\n")
    for what, url in rows:
        print(f"  {what:<{width}}  {url}")
    names = ", ".join(place.residents[0] for place in PLACES)
    c2s = " and ".join(place.label for place in PLACES if place.client == "c2s")
    print(f"\n  log in as admin or a resident ({names}, ...); every password: {PASSWORD}")
    print(f"  residents of {c2s} proposed and supported through C2S (their outbox), the")
    print("  others through the pages; everyone commented through the pages\n")
    print(f"barri demo: totals: {summary(state)}", flush=True)
