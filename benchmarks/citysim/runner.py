"""One simulation run: set up, federate, act, converge, compare, measure, write results."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from benchmarks.citysim import cluster, measure
from benchmarks.citysim.cluster import City, CityError
from benchmarks.citysim.driver import Driver
from benchmarks.citysim.profiles import Profile
from benchmarks.citysim.workload import Act, Workload, expected, generate, observed

RESULTS = Path(__file__).resolve().parents[1] / "results"
CONVERGE_WAIT = 120.0
POLL = 0.3


@dataclass(frozen=True)
class Faults:
    """Which faults a run injects (each run must still end exact)."""

    kill_aggregator: bool = False
    instance_down: bool = False

    def names(self) -> list[str]:
        """The flags that are on."""
        return [n for n, on in (("kill-aggregator", self.kill_aggregator),
                                ("instance-down", self.instance_down)) if on]  # fmt: skip


async def results_of(city: City, session: aiohttp.ClientSession) -> dict[str, dict[str, Any]]:
    """The aggregator's results JSON per process IRI ({} where it does not answer)."""
    found: dict[str, dict[str, Any]] = {}
    for iri in city.processes.values():
        url = f"{city.aggregator.base_url}/api/v1/processes/{quote(iri, safe='')}/results"
        try:
            async with session.get(url) as response:
                found[iri] = await response.json() if response.status == 200 else {}
        except (aiohttp.ClientError, OSError):
            found[iri] = {}
    return found


async def poll(
    city: City, session: aiohttp.ClientSession, polls: list[Any], stop: asyncio.Event
) -> None:
    """Snapshot every proposal's count until ``stop`` (for act→counted latency)."""
    while not stop.is_set():
        snapshot = {p["id"]: p["supports"] for body in (await results_of(city, session)).values()
                    for p in body.get("proposals", [])}  # fmt: skip
        polls.append((time.monotonic(), snapshot))
        await asyncio.sleep(POLL)


async def converge(city: City, session: aiohttp.ClientSession, want: dict[str, Any],
                   answered: set[str]) -> dict[str, Any]:  # fmt: skip
    """Poll until the aggregator shows ``want``; what it showed last."""
    deadline = time.monotonic() + CONVERGE_WAIT
    while True:
        got = {
            iri: observed(body, answered) for iri, body in (await results_of(city, session)).items()
        }
        if got == want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(POLL)


async def _faults(city: City, faults: Faults, victim: str) -> None:
    """Inject the chosen faults while the stream runs."""
    await asyncio.sleep(3.0)
    if faults.kill_aggregator:
        city.servers.running["aggregator"][1].send_signal(signal.SIGKILL)
        await city.servers.running["aggregator"][1].wait()
        await asyncio.sleep(2.0)
        await cluster.start(city, ["aggregator"])
    if faults.instance_down:
        process = city.servers.running[victim][1]
        process.send_signal(signal.SIGTERM)
        await process.wait()
        await asyncio.sleep(3.0)
        await cluster.start(city, [victim])


def fresh(directory: Path) -> None:
    """An empty run directory."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


async def simulate(
    profile: Profile, directory: Path, *, seed: int = 8, faults: Faults | None = None
) -> dict[str, Any]:
    """Run the whole simulation; the results (``exact`` says whether the totals agreed)."""
    faults = faults or Faults()
    await asyncio.to_thread(fresh, directory)
    work = generate(profile, seed)
    city = cluster.layout(directory, work.hoods, [])
    ceiling = measure.crypto_ceiling()
    await cluster.prepare(city, profile)
    try:
        await cluster.start(city)
        await cluster.federate(city, list(city.sites))
        return await _drive(city, work, profile, faults, ceiling)
    finally:
        await city.servers.stop()


async def _drive(city: City, work: Workload, profile: Profile, faults: Faults,
                 ceiling: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    async with aiohttp.ClientSession() as session:
        driver = Driver(city, session)
        await driver.run(work.proposals, profile.concurrency)
        city_keys = [a.proposal for a in work.proposals if a.process == "city"]
        await driver.wait_arrivals(city_keys, [h.key for h in work.hoods])
        polls: list[Any] = []
        stop = asyncio.Event()
        poller = asyncio.create_task(poll(city, session, polls, stop))
        victim = work.hoods[1].key
        injector = asyncio.create_task(_faults(city, faults, victim))
        started = time.monotonic()
        await driver.run(work.stream, profile.concurrency)
        await driver.answer(work.answers)
        sent = time.monotonic()
        await injector
        answered = {driver.ids[a.proposal] for a in work.answers}
        want = expected(work, driver.ids, city.processes)
        got = await converge(city, session, want, answered)
        converged = time.monotonic()
        stop.set()
        await poller
        stats = {"aggregator": measure.proc_stats(cluster.pid_of(city, "aggregator")),
                 "instance": measure.proc_stats(cluster.pid_of(city, victim))}  # fmt: skip
    lat = measure.latencies(driver.done, driver.ids, polls)
    return _results(profile, faults, work, driver.done, started, sent, converged, want, got,
                    lat, ceiling, stats, city)  # fmt: skip


def _results(profile: Profile, faults: Faults, work: Workload, done: list[tuple[float, Act]],
             started: float, sent: float, converged: float, want: dict[str, Any],
             got: dict[str, Any], lat: list[float], ceiling: dict[str, float],
             stats: dict[str, Any], city: City) -> dict[str, Any]:  # fmt: skip
    acts = len(work.proposals) + len(work.stream) + len(work.answers)
    counted = sum(1 for _t, a in done if a.kind in ("support", "withdraw"))
    ingest = counted / max(1e-9, converged - started)
    best = max(ceiling.values())
    mismatches = sorted(iri for iri in want if got.get(iri) != want[iri])
    return {
        "profile": profile.name, "faults": faults.names(), "exact": not mismatches,
        "mismatches": {iri: {"want": want[iri], "got": got.get(iri)} for iri in mismatches},
        "acts": acts, "send_seconds": sent - started,
        "acts_per_s": len(work.stream) / max(1e-9, sent - started),
        "converge_seconds": converged - sent, "ingest_per_s": ingest,
        "ceiling": ceiling, "ratio_to_ceiling": ingest * 2 / best,
        "latency_s": measure.percentiles(lat), **stats,
        "db_bytes": measure.db_sizes(city.directory),
        "totals": {iri: {"supports": w["supports"], "participants": w["participants"]}
                   for iri, w in want.items()},
    }  # fmt: skip


def write(results: dict[str, Any]) -> Path:
    """``benchmarks/results/citysim-<profile>.json`` and its readable ``.txt`` summary."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"citysim-{results['profile']}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    path.with_suffix(".txt").write_text(measure.summary_of(results) + "\n")
    return path


__all__ = ["CityError", "Faults", "simulate", "write"]
