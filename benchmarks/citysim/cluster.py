"""The simulated city's servers: set up with the ``barri`` CLI, started as ``barri serve``.

Every server is its own ``barri serve`` child on 127.0.0.1 (:mod:`federation.demo_procs`),
with its folder and SQLite file under the run's directory. Setup goes through the CLI only:
``barri init``, ``barri admin create-user|verify|token create|process create`` (many at a time
through :mod:`benchmarks.citysim.cliworker`), ``barri admin process follow`` and ``barri
roster add`` once the servers answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.citysim.malicious import RESIDENTS
from benchmarks.citysim.profiles import CITY_CODE, Profile
from benchmarks.citysim.workload import Hood
from federation.demo_data import Place, process_draft
from federation.demo_procs import Servers, Spawn, make_cli, make_spawn
from federation.demo_seed import Site

ROOT = Path(__file__).resolve().parents[2]
PROFILED = ROOT / "benchmarks" / "profiled.py"
TRACED = ROOT / "benchmarks" / "traced.py"
#: Environment variables naming one server (its directory, e.g. ``h01`` or ``aggregator``) to
#: run under cProfile, and one to run under tracemalloc.
PROFILE_VARIABLE = "CITYSIM_CPROFILE"
TRACE_VARIABLE = "CITYSIM_TRACEMALLOC"
TRACE_FILE = "tracemalloc.json"
PASSWORD = "citysim-password-2027"
FOLLOW_WAIT = 60.0
SETUP_WORKERS = max(2, os.cpu_count() or 2)  # CLI worker processes setting up at once
#: The instances' niceness. A real aggregator has its machine to itself; here every instance
#: shares its cores, so they yield to it, and its latency is its own, not the queue of CPU
#: time 74 busy instances leave it (they still get every cycle the aggregator does not use).
#: Each server runs in a session of its own, so with the kernel's autogroup scheduling (on by
#: default) a process's niceness only ranks it inside that session: every server got an equal
#: share of the cores whatever its niceness, and the aggregator, runnable 98 % of the time,
#: ran 19 % of it while its inbox fell minutes behind (Barcelona x0.25). So the session's
#: autogroup gets the niceness too (:func:`deprioritise`). At 19 (scheduler weight 15 against
#: the aggregator's 1024) 74 busy instances weigh about one aggregator. The city's own instance
#: is not one of them: it receives every resident's support of a city-wide proposal and relays
#: it to all 73 neighbourhoods, a server of its own in a real city; yielding to 72 autogroups it
#: fell 80,000 deliveries behind (x0.25), so the rebuild could not start on a settled city.
INSTANCE_NICE = 19


class CityError(Exception):
    """The simulation cannot go on; the message says why."""


def free_ports(count: int) -> list[int]:
    """``count`` ports free on 127.0.0.1 now, below the kernel's ephemeral range.

    A big city's setup takes minutes between choosing its ports and listening on them; ports
    the kernel hands out to other programs' connections (the ephemeral range) could be taken
    meanwhile, so they are drawn from below it.
    """
    low, _high = _ephemeral_range()
    rng = random.Random()
    found: list[int] = []
    while len(found) < count:
        port = rng.randrange(max(1024, low - 12000), low)
        if port not in found and _bindable(port):
            found.append(port)
    return found


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def make_city_spawn(skews: dict[str, float]) -> Spawn:
    """``barri`` children; a server whose config is in ``skews`` runs with its clock shifted,
    the server named by ``CITYSIM_CPROFILE`` (e.g. ``h01``) under cProfile from its start (its
    stats written beside its config as ``serve.prof`` when it stops), and the one named by
    ``CITYSIM_TRACEMALLOC`` under tracemalloc (``tracemalloc.json`` on SIGUSR1, see
    :func:`traced_report`)."""
    plain = make_spawn()
    wrapped = {os.environ.get(PROFILE_VARIABLE, ""): (PROFILED, "serve.prof", ["--from-start"]),
               os.environ.get(TRACE_VARIABLE, ""): (TRACED, TRACE_FILE, [])}  # fmt: skip
    wrapped.pop("", None)

    async def spawn(*args: str, **kwargs: Any) -> asyncio.subprocess.Process:
        config = args[2] if len(args) > 2 and args[:2] == ("serve", "--config") else ""
        environment = {k: v for k, v in os.environ.items() if not k.startswith("BARRI_")}
        if config and Path(config).parent.name in wrapped:
            script, name, options = wrapped[Path(config).parent.name]
            return await asyncio.create_subprocess_exec(
                sys.executable, str(script), str(Path(config).parent / name), *options, *args,
                env={**environment, "PYTHONPATH": str(ROOT)}, cwd=ROOT, start_new_session=True,
                **kwargs,
            )  # fmt: skip
        if config not in skews:
            return await plain(*args, **kwargs)
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.citysim.skewed", str(skews[config]), *args,
            env=environment, cwd=ROOT, start_new_session=True, **kwargs,
        )  # fmt: skip

    return spawn


async def traced_report(city: City, wait: float = 120.0) -> dict[str, Any] | None:
    """Ask the server named by ``CITYSIM_TRACEMALLOC`` for its tracemalloc report (SIGUSR1 to
    :mod:`benchmarks.traced`) and read it; None when no server is traced."""
    key = os.environ.get(TRACE_VARIABLE, "")
    site = city.aggregator if key == "aggregator" else city.sites.get(key)
    if site is None:
        return None
    out = site.directory / TRACE_FILE
    out.unlink(missing_ok=True)
    os.kill(pid_of(city, key), signal.SIGUSR1)
    for _ in range(int(wait * 2)):  # the file appears whole (renamed into place)
        if out.exists():
            report: dict[str, Any] = json.loads(out.read_text())
            return report
        await asyncio.sleep(0.5)
    return None


@dataclass
class City:
    """The aggregator's and every instance's Site, their process IRIs, residents' tokens."""

    directory: Path
    aggregator: Site
    sites: dict[str, Site]
    processes: dict[str, str] = field(default_factory=dict)
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    proxy_port: int | None = None  # the fault proxy's, when the aggregator sits behind one
    skews: dict[str, float] = field(default_factory=dict)  # config path -> clock shift (s)
    servers: Servers = field(init=False)

    def __post_init__(self) -> None:
        self.servers = Servers(make_city_spawn(self.skews))

    def actor(self, place: str, resident: str) -> str:
        """A resident's actor id."""
        return f"{self.sites[place].base_url}/users/{resident}"


def layout(directory: Path, hoods: list[Hood], extra: list[str], *, proxied: bool = False) -> City:
    """Sites on free ports: the aggregator (behind the fault proxy if ``proxied``), each
    instance, and ``extra`` keyed sites (the malicious instance)."""
    ports = free_ports(2 + len(hoods) + len(extra))
    url = "http://127.0.0.1:{}".format
    public = url(ports[-1]) if proxied else url(ports[0])
    aggregator = Site("aggregator", None, ports[0], directory / "aggregator", public)
    sites = {}
    for hood, port in zip([*hoods, *(_stranger(k) for k in extra)], ports[1:-1], strict=True):
        place = Place(hood.key, hood.key, f"Associació {hood.key}", f"g{hood.key}", hood.code,
                      hood.kind, hood.district, hood.residents)  # fmt: skip
        sites[hood.key] = Site(hood.key, place, port, directory / hood.key, url(port))
    return City(directory, aggregator, sites, proxy_port=ports[-1] if proxied else None)


def _stranger(key: str) -> Hood:
    return Hood(key, "99", "99", "neighbourhood", RESIDENTS)


async def prepare(city: City, profile: Profile) -> None:
    """Every config, account, verification, token and process, before the servers start."""
    cli = make_cli(make_spawn())
    agg = city.aggregator
    await cli("init", "aggregator", "--dir", str(agg.directory), "--base-url", agg.base_url,
              "--name", "citysim aggregator", "--city", CITY_CODE, "--allow-loopback",
              "--listen", agg.listen)  # fmt: skip
    actor = agg.base_url + "/actor"
    gate = asyncio.Semaphore(SETUP_WORKERS)

    async def one(site: Site) -> tuple[str, dict[str, str]]:
        async with gate:
            prepared = await _prepare(site, actor, profile)
        if site.place is not None and site.place.kind == "city":
            # Its Group's followers are every other server: two sends at once for each, as
            # an operator would set it (a neighbourhood's few followers fit the default).
            text = site.config.read_text(encoding="utf-8")
            lanes = f"delivery_concurrency = {2 * len(city.sites) + 2}"
            text = re.sub(r"(?m)^delivery_concurrency = .*$", lanes, text)
            site.config.write_text(text, encoding="utf-8")
        return prepared

    done = await asyncio.gather(*(one(s) for s in city.sites.values()))
    for site, (process, tokens) in zip(city.sites.values(), done, strict=True):
        city.processes[site.key] = process
        city.tokens |= {(site.key, name): token for name, token in tokens.items()}


async def _prepare(
    site: Site, aggregator_actor: str, profile: Profile
) -> tuple[str, dict[str, str]]:
    place = site.place
    assert place is not None
    site.directory.mkdir(parents=True, exist_ok=True)
    territory = ["--territory", place.territory, "--territory-kind", place.kind]
    territory += ["--district", place.district] if place.district else []
    admin = ["admin", "--config", str(site.config)]
    draft = process_draft(place, datetime.now(UTC))
    draft["supportRules"]["supportsPerParticipant"] = profile.limit
    (site.directory.parent / f"{site.key}-process.json").write_text(json.dumps(draft))
    commands: list[dict[str, Any]] = [
        {"argv": ["init", "instance", "--dir", str(site.directory), "--base-url", site.base_url,
                  "--name", place.name, "--group", place.group, *territory, "--report-to",
                  aggregator_actor, "--allow-loopback", "--listen", site.listen]},
        {"argv": [*admin, "create-user", "admin", "--admin", "--password-stdin"],
         "stdin": PASSWORD},
    ]  # fmt: skip
    for name in place.residents:
        commands += [
            {"argv": [*admin, "create-user", name, "--no-password"]},
            {"argv": [*admin, "verify", name, "--territory", place.territory]},
            {"argv": [*admin, "token", "create", name, "--scope", "write"]},
        ]
    draft_path = site.directory.parent / f"{site.key}-process.json"
    commands.append({"argv": [*admin, "process", "create", "--file", str(draft_path)]})
    outputs = await _run_worker(commands)
    tokens = {name: outputs[4 + 3 * i].strip().splitlines()[-1]
              for i, name in enumerate(place.residents)}  # fmt: skip
    return outputs[-1].strip().splitlines()[-1], tokens


async def _run_worker(commands: list[dict[str, Any]]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARRI_")}
    env["PYTHONPATH"] = str(ROOT)
    pipe = asyncio.subprocess.PIPE
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.citysim.cliworker",
        stdin=pipe, stdout=pipe, stderr=pipe, cwd=ROOT, env=env,
    )  # fmt: skip
    out, err = await worker.communicate(json.dumps(commands).encode())
    if worker.returncode != 0:
        raise CityError(f"setup failed: {err.decode(errors='replace').strip()[-500:]}")
    result: list[str] = json.loads(out)
    return result


async def start(city: City, keys: list[str] | None = None) -> None:
    """Start the aggregator and every instance (or just ``keys``; the neighbourhoods at
    ``INSTANCE_NICE``) and wait until healthy."""
    chosen = [city.aggregator, *city.sites.values()] if keys is None else [
        city.aggregator if k == "aggregator" else city.sites[k] for k in keys]  # fmt: skip
    for site in chosen:
        await city.servers.start(site)
        if site.place is not None and not site.place.is_city:
            deprioritise(pid_of(city, site.key), INSTANCE_NICE)
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(city.servers.healthy(site, session) for site in chosen))


def deprioritise(pid: int, nice: int) -> bool:
    """Set the niceness of ``pid`` and of its session's autogroup (Linux, sched(7)); whether
    the autogroup took it (False where there is none: the niceness alone then ranks it)."""
    os.setpriority(os.PRIO_PROCESS, pid, nice)
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        return False
    return True


def pid_of(city: City, key: str) -> int:
    """The OS process id of a running server."""
    pid = city.servers.running[key][1].pid
    return int(pid)


async def federate(city: City, rostered: list[str]) -> None:
    """Neighbourhoods join the city's process; the aggregator adds ``rostered`` instances."""
    hoods = [s for s in city.sites.values() if s.place and not s.place.is_city]
    city_process = city.processes["city"]
    # Each batch runs in one CLI worker process, not one interpreter per command.
    await _run_worker([{"argv": ["admin", "--config", str(s.config), "process", "follow",
                                 city_process]} for s in hoods])  # fmt: skip
    adds = []
    for key in rostered:
        site = city.sites[key]
        assert site.place is not None
        district = site.place.district or site.place.territory
        adds.append({"argv": ["roster", "--config", str(city.aggregator.config), "add",
                              site.base_url, "--territory", site.place.territory,
                              "--district", district]})  # fmt: skip
    await _run_worker(adds)
    await wait_followed(city, len(rostered))


async def wait_followed(city: City, count: int) -> None:
    """Until every rostered instance has accepted the aggregator's Follows."""
    url = city.aggregator.base_url + "/api/v1/instances"
    deadline = time.monotonic() + FOLLOW_WAIT
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(url) as response:
                body = await response.json() if response.status == 200 else {}
            entries = body.get("instances", [])
            states = [f["state"] for e in entries for f in e.get("follows", [])]
            if len(entries) == count and states and set(states) == {"accepted"}:
                return
            if time.monotonic() > deadline:
                raise CityError(f"the instances did not accept the aggregator's follows: {states}")
            await asyncio.sleep(0.1)


def set_backfill_minutes(city: City, minutes: int) -> None:
    """Edit the aggregator's barri.toml: a backfill pass every ``minutes`` while it runs."""
    config = city.aggregator.config
    text = config.read_text()
    edited = re.sub(r"(?m)^backfill_minutes = \d+$", f"backfill_minutes = {minutes}", text)
    if edited == text and f"backfill_minutes = {minutes}" not in text:
        raise CityError(f"no backfill_minutes line in {config}")
    config.write_text(edited)
