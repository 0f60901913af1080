"""One simulation run: set up, federate, act, converge, compare, measure, write results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from benchmarks.citysim import cluster, measure
from benchmarks.citysim.cluster import City, CityError
from benchmarks.citysim.driver import AS2, Driver
from benchmarks.citysim.faults import FaultProxy, Faults
from benchmarks.citysim.malicious import MALLORY, Mallory, Plan, attack
from benchmarks.citysim.profiles import Profile
from benchmarks.citysim.sampling import Sampler
from benchmarks.citysim.workload import Act, Workload, expected, generate, observed
from benchmarks.ingestkit.aggregator import wipe
from benchmarks.provenance import code_version

RESULTS = Path(__file__).resolve().parents[1] / "results"
CONVERGE_WAIT = 120.0
POLL = 0.3


async def result_of(city: City, session: aiohttp.ClientSession, iri: str) -> dict[str, Any]:
    """The aggregator's results JSON of one process ({} where it does not answer)."""
    url = f"{city.aggregator.base_url}/api/v1/processes/{quote(iri, safe='')}/results"
    try:
        async with session.get(url) as response:
            body: dict[str, Any] = await response.json() if response.status == 200 else {}
    except (aiohttp.ClientError, OSError):
        return {}
    return body


async def results_of(city: City, session: aiohttp.ClientSession) -> dict[str, dict[str, Any]]:
    """The aggregator's results JSON per process IRI ({} where it does not answer)."""
    return {iri: await result_of(city, session, iri) for iri in city.processes.values()}


async def poll(
    city: City, session: aiohttp.ClientSession, polls: list[Any], stop: asyncio.Event
) -> None:
    """Snapshot every proposal's count until ``stop`` (for act→counted latency)."""
    while not stop.is_set():
        began = time.monotonic()
        snapshot = {p["id"]: p["supports"] for body in (await results_of(city, session)).values()
                    for p in body.get("proposals", [])}  # fmt: skip
        polls.append((time.monotonic(), snapshot))
        # Each poll makes the aggregator compute every process's results: a big city's take
        # long, so poll no more than a tenth of the time (a third cost a responsive aggregator
        # most of its CPU). The latency resolution says so; ``latency_hops.handled_s`` has the
        # same latency from the servers' records, without the poll interval.
        await asyncio.sleep(max(POLL, 9 * (time.monotonic() - began)))


async def converge(
    city: City, session: aiohttp.ClientSession, want: dict[str, Any], answered: set[str],
    mallory: Plan | None, wait: float = CONVERGE_WAIT,
) -> dict[str, Any]:  # fmt: skip
    """Poll until the aggregator shows ``want`` (at most ``wait`` s); what it showed last.

    Each round reads the processes not seen matching yet first and stops at the first that
    does not match: a big city's results cost the aggregator CPU, and a full read of every
    process each round took a tenth of its cold rebuild's. Converged is one round reading
    every process, each matching."""
    deadline = time.monotonic() + wait
    got: dict[str, Any] = {}
    while True:
        began = time.monotonic()
        if await _round(city, session, want, answered, got, mallory):
            return got
        if time.monotonic() > deadline:
            got.update({iri: observed(body, answered)
                        for iri, body in (await results_of(city, session)).items()})  # fmt: skip
            return got
        await asyncio.sleep(max(POLL, 2 * (time.monotonic() - began)))


async def _round(
    city: City, session: aiohttp.ClientSession, want: dict[str, Any], answered: set[str],
    got: dict[str, Any], mallory: Plan | None,
) -> bool:  # fmt: skip
    """One convergence round (see :func:`converge`) updating ``got``; whether all matched."""
    order = sorted(city.processes.values(), key=lambda iri: got.get(iri) == want.get(iri))
    for iri in order:
        got[iri] = observed(await result_of(city, session, iri), answered)
        if got[iri] != want.get(iri):
            return False
    if mallory is not None:
        got["mallory"] = await mallory_flags(city, session)
    return got == want


async def aggregator_work(city: City, session: aiohttp.ClientSession) -> dict[str, float]:
    """Where the aggregator's inbox and fetcher spent their wall time since it started (from
    its /metrics): inbox rows, seconds per batch phase, fetches and their seconds."""
    wanted = ("barri_inbox_rows_total", "barri_inbox_batches_total",
              "barri_inbox_phase_seconds_total",
              "barri_fetches_total", "barri_fetch_seconds_total",
              "barri_backfill_running", "barri_backfill_passes_total")  # fmt: skip
    try:
        async with session.get(city.aggregator.base_url + "/metrics") as response:
            text = await response.text()
    except (aiohttp.ClientError, OSError):
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(wanted):
            name, value = line.rsplit(" ", 1)
            found[name.removeprefix("barri_")] = float(value)
    return found


def last_stored(database: Path, epoch: float) -> float | None:
    """Seconds from ``epoch`` until the newest activity the aggregator stored was received."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        newest = db.execute("SELECT MAX(received_at) FROM activities").fetchone()[0]
    return None if newest is None else round(float(newest) - epoch, 2)


async def backfill_done(
    city: City, session: aiohttp.ClientSession, started: float, limit: float
) -> float | None:
    """Seconds from ``started`` (monotonic) until the aggregator's first whole backfill pass
    ended (its /metrics), None if not within ``limit`` seconds."""
    while time.monotonic() - started < limit:
        work = await aggregator_work(city, session)
        if work.get("backfill_passes_total", 0) >= 1 and work.get("backfill_running") == 0:
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(0.5)
    return None


async def mallory_flags(city: City, session: aiohttp.ClientSession) -> dict[str, int]:
    """What the aggregator reports about the malicious instance (GET /api/v1/instances)."""
    origin = city.sites[MALLORY].base_url
    async with session.get(city.aggregator.base_url + "/api/v1/instances") as response:
        body = await response.json() if response.status == 200 else {}
    entry: dict[str, Any] = next(
        (e for e in body.get("instances", []) if e.get("origin") == origin), {}
    )
    anomalies = entry.get("anomalies", {})
    return {"refused": sum(entry.get("refused", {}).values()),
            "out_of_phase": anomalies.get("out_of_phase", 0),
            "over_limit": anomalies.get("over_limit", 0)}  # fmt: skip


@dataclass
class Timeline:
    """When each fault happened, in seconds from the start of the stream."""

    started: float
    events: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, what: str) -> None:
        """Note ``what`` happened now."""
        self.events.append((what, round(time.monotonic() - self.started, 2)))


async def _when(progress: Callable[[], float], share: float) -> None:
    """Until ``progress()`` (the stream's share done) reaches ``share``."""
    while progress() < share:  # noqa: ASYNC110 (a counter the driver bumps, no event to wait on)
        await asyncio.sleep(0.05)


async def _outages(city: City, faults: Faults, victim: str, timeline: Timeline,
                   progress: Callable[[], float]) -> None:  # fmt: skip
    """Kill the aggregator at 15 % of the stream and stop one instance at 45 %."""
    if faults.kill_aggregator:
        await _when(progress, 0.15)
        city.servers.running["aggregator"][1].send_signal(signal.SIGKILL)
        await city.servers.running["aggregator"][1].wait()
        timeline.mark("aggregator killed")
        await asyncio.sleep(2.0)
        await cluster.start(city, ["aggregator"])
        timeline.mark("aggregator back")
    if faults.instance_down:
        await _when(progress, 0.45)
        process = city.servers.running[victim][1]
        process.send_signal(signal.SIGTERM)
        await process.wait()
        timeline.mark(f"{victim} down")
        await asyncio.sleep(3.0)
        await cluster.start(city, [victim])
        timeline.mark(f"{victim} back")


async def cold_rebuild(
    city: City, session: aiohttp.ClientSession, want: dict[str, Any], answered: set[str],
    sampler: Sampler,
) -> dict[str, Any]:  # fmt: skip
    """Restart the aggregator with everything it learnt deleted (keys, roster and Follows
    kept) and time its backfill until it shows ``want`` again (the instances' word only: what
    the malicious instance sent straight to it is in no collection)."""
    process = city.servers.running["aggregator"][1]
    process.send_signal(signal.SIGTERM)
    await process.wait()
    # A finished city: the instances done with their own queues, so their pages are served
    # at once rather than after the stream's leftovers.
    settled = await settle(city)
    database = city.aggregator.directory / "barri.sqlite3"
    await asyncio.to_thread(wipe, database)
    serving = instances_cpu_now(city)
    started, jiffies, epoch = time.monotonic(), measure.cpu_jiffies(), time.time()
    await cluster.start(city, ["aggregator"])
    pid = cluster.pid_of(city, "aggregator")
    await sampler.start("rebuild", pid)
    await sampler.start("rebuild-instance", cluster.pid_of(city, "city"))  # the busiest pages
    spied: list[str] = []

    async def spy_worker(child: int) -> None:
        # Each backfill worker by its own pid: py-spy's --subprocesses missed them (x1 run).
        spied.append(f"rebuild-worker{len(spied) + 1}")
        await sampler.start(spied[-1], child)

    done = asyncio.Event()
    workers = asyncio.create_task(worker_peaks(pid, done, on_new=spy_worker))
    supports = sum(int(w["supports"]) for w in want.values())
    got = await converge(city, session, want, answered, None, CONVERGE_WAIT + supports / 200)
    seconds = time.monotonic() - started
    serving = instances_cpu_now(city) - serving
    work = await aggregator_work(city, session)
    stats = measure.proc_stats(pid)
    done.set()
    peaks = await workers
    # The totals were right: the rest of the pass (threads, debates) ends after.
    whole = await backfill_done(city, session, started, CONVERGE_WAIT + supports / 200)
    for name in ("rebuild", "rebuild-instance", *spied):
        await sampler.stop(name)
    # The server's CPU and its backfill workers': reaped ones by cutime, or as last sampled.
    sampled = sum(seen["cpu_seconds"] for seen in peaks.values())
    workers_cpu = max(stats.get("children_cpu_seconds") or 0.0, sampled)
    cpu = (stats.get("cpu_seconds") or 0.0) + workers_cpu
    return {
        "exact": got == want, "seconds": round(seconds, 2), "supports": supports,
        "mismatches": {key: {"want": want[key], "got": got.get(key)}
                       for key in sorted(want) if got.get(key) != want[key]},
        "supports_per_s": round(supports / max(1e-9, seconds), 1),
        # Until the whole first pass ended (threads and debates too), not only the totals.
        "backfill_done_s": whole,
        # When the last support was stored (then counted, then seen by a poll: ``seconds``).
        "last_stored_s": await asyncio.to_thread(last_stored, database, epoch),
        # The restarted aggregator's CPU (its backfill workers' included) is the rebuild's own.
        "supports_per_cpu_s": round(supports / cpu, 1) if cpu else None,
        "aggregator": stats, "machine_busy": measure.busy_share(jiffies, measure.cpu_jiffies()),
        "instances_settled_s": settled,
        # What serving the pages cost the instances, all together.
        "instances_cpu_seconds": round(serving, 2),
        "aggregator_work": work,
        "workers": {
            "count": len(peaks), "cpu_seconds": round(workers_cpu, 2),
            "peak_rss_mb": max((seen["peak_rss_mb"] for seen in peaks.values()), default=None),
        },
    }  # fmt: skip


async def worker_peaks(
    pid: int,
    done: asyncio.Event,
    every: float = 1.0,
    on_new: Callable[[int], Awaitable[None]] | None = None,
) -> dict[int, dict[str, float]]:
    """The peak RSS (MB) and last-seen CPU seconds of each child process ``pid`` runs (the
    aggregator's backfill workers), sampled every ``every`` s until ``done``: the rebuild may
    converge before the server has reaped them, so its cutime alone can miss their CPU.
    ``on_new`` is told of each child when first seen."""
    peaks: dict[int, dict[str, float]] = {}
    known: set[int] = set()
    while not done.is_set():
        for child in measure.children_of(pid):
            if child not in known and on_new is not None:
                await on_new(child)
            known.add(child)
            stats = measure.proc_stats(child)
            if stats:
                seen = peaks.setdefault(child, {"peak_rss_mb": 0.0, "cpu_seconds": 0.0})
                seen["peak_rss_mb"] = max(stats["peak_rss_mb"], seen["peak_rss_mb"])
                seen["cpu_seconds"] = max(stats["cpu_seconds"], seen["cpu_seconds"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every)
    return peaks


def instances_cpu_now(city: City) -> float:
    """The CPU seconds every running instance has used so far, all together."""
    pids = [cluster.pid_of(city, key) for key in city.sites if key in city.servers.running]
    return sum(measure.proc_stats(pid).get("cpu_seconds", 0.0) for pid in pids)


async def settle(city: City, idle: float = 0.1, hold: float = 3.0, limit: float = 600.0) -> float:
    """Wait until the instances together use under ``idle`` of a core for ``hold`` s (at most
    ``limit`` s); the seconds waited."""
    pids = [cluster.pid_of(city, key) for key in city.sites if key in city.servers.running]

    def cpu() -> float:
        return sum(measure.proc_stats(pid).get("cpu_seconds", 0.0) for pid in pids)

    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = cpu()
        await asyncio.sleep(hold)
        if cpu() - before < idle * hold:
            break
    return round(time.monotonic() - started, 1)


def fresh(directory: Path) -> None:
    """An empty run directory."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


async def simulate(
    profile: Profile, directory: Path, *, seed: int = 8, faults: Faults | None = None,
    scale: float = 1.0, spy: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run the whole simulation; the results (``exact`` says whether the totals agreed).

    ``spy``: a py-spy binary to sample the aggregator and the city instance during the stream
    and the aggregator during the cold rebuild (see :mod:`benchmarks.citysim.sampling`).
    """
    faults = faults or Faults()
    await asyncio.to_thread(fresh, directory)
    work = generate(profile, seed)
    extra = [MALLORY] if faults.malicious else []
    city = cluster.layout(directory, work.hoods, extra, proxied=faults.proxied)
    ceiling = measure.crypto_ceiling()
    await cluster.prepare(city, profile)
    _configure(city, work, faults)
    proxy = None
    if city.proxy_port is not None:
        exempt = tuple(city.sites[k].base_url + "/" for k in extra)
        proxy = FaultProxy(city.aggregator.local_url, faults, seed, exempt)
        proxy_runner = await proxy.start(city.proxy_port)
    try:
        await cluster.start(city)
        await cluster.federate(city, list(city.sites))
        sampler = Sampler(spy, RESULTS, profile.name)
        try:
            results = await _drive(city, work, profile, faults, ceiling, proxy, sampler)
        finally:
            await sampler.stop_all()
        return results | {"scale": scale, "seed": seed}
    finally:
        await city.servers.stop()
        if proxy is not None:
            await proxy.close()
            await proxy_runner.cleanup()


def _configure(city: City, work: Workload, faults: Faults) -> None:
    """Fault settings written before the servers start."""
    if faults.drop:
        cluster.set_backfill_minutes(city, 1)  # lost deliveries come back within a minute
    if faults.clock_skew:
        ahead, behind = work.hoods[2].key, work.hoods[3].key
        city.skews[str(city.sites[ahead].config)] = faults.clock_skew
        city.skews[str(city.sites[behind].config)] = -faults.clock_skew


async def _drive(
    city: City, work: Workload, profile: Profile, faults: Faults, ceiling: dict[str, float],
    proxy: FaultProxy | None, sampler: Sampler,
) -> dict[str, Any]:  # fmt: skip
    async with aiohttp.ClientSession() as session:
        driver = Driver(city, session)
        idle = {
            "instance_rss_mb": measure.rss_mb(cluster.pid_of(city, work.hoods[1].key)),
            "aggregator_rss_mb": measure.rss_mb(cluster.pid_of(city, "aggregator")),
        }
        await driver.run(work.proposals, profile.concurrency)
        city_keys = [a.proposal for a in work.proposals if a.process == "city"]
        await driver.wait_arrivals(city_keys, [h.key for h in work.hoods])
        polls: list[Any] = []
        stop = asyncio.Event()
        poller = asyncio.create_task(poll(city, session, polls, stop))
        victim = work.hoods[1].key
        if proxy is not None:
            proxy.armed = True
        started, jiffies = time.monotonic(), measure.cpu_jiffies()
        timeline = Timeline(started)
        before = len(driver.done)

        def progress() -> float:
            return (len(driver.done) - before) / max(1, len(work.stream))

        injector = asyncio.create_task(_outages(city, faults, victim, timeline, progress))
        sampling = asyncio.create_task(_sample(city, sampler, progress))
        await driver.run(work.stream, profile.concurrency)
        await injector
        burst_started = time.monotonic()
        timeline.mark("burst")
        await driver.run(work.burst, profile.concurrency * 2)
        burst_seconds = time.monotonic() - burst_started
        sampling.cancel()
        await sampler.stop_all()
        await driver.answer(work.answers)
        plan = await _attack(city, session, work, driver, profile) if faults.malicious else None
        sent = time.monotonic()
        timeline.mark("last act")
        answered = {driver.ids[a.proposal] for a in work.answers}
        want = expected(work, driver.ids, city.processes, plan.counted if plan else (),
                        {MALLORY: ("99", "99")})  # fmt: skip
        if plan is not None:
            want["mallory"] = {"refused": plan.forged, "out_of_phase": plan.backdated,
                               "over_limit": plan.over_limit}  # fmt: skip
        wait = CONVERGE_WAIT + (len(work.stream) + len(work.burst)) / 200
        got = await converge(city, session, want, answered, plan, wait)
        converged = time.monotonic()
        timeline.mark("converged")
        stop.set()
        await poller
        stats: dict[str, Any] = {
            "aggregator": measure.proc_stats(cluster.pid_of(city, "aggregator")),
            "instance": measure.proc_stats(cluster.pid_of(city, victim)),
            "machine_busy": measure.busy_share(jiffies, measure.cpu_jiffies()),
            "autogroups": {
                key: measure.autogroup(cluster.pid_of(city, key)) for key in ("aggregator", victim)
            },
            "aggregator_work": await aggregator_work(city, session),
            "instances_cpu": instances_cpu(city, [hood.key for hood in work.hoods[1:]]),
        }
        if (traced := await cluster.traced_report(city)) is not None:
            stats["tracemalloc"] = traced  # what the traced server held at convergence
        stats["latency_hops"] = await asyncio.to_thread(measure.hops, city, driver.liked_at)
        if faults.cold_rebuild:
            honest = expected(work, driver.ids, city.processes)
            stats["cold_rebuild"] = await cold_rebuild(city, session, honest, answered, sampler)
    counted = measure.latencies(driver.done, driver.ids, polls)
    lat = [seconds for _sent, seconds in counted]
    results = _results(profile, faults, work, driver.done, started, sent, converged, want, got,
                       lat, ceiling, stats, city)  # fmt: skip
    return results | {
        "timeline": timeline.events,
        "recovery_s": measure.recoveries(counted, timeline.events, timeline.started),
        "driver_retries": driver.retries,
        "idle_before_stream": idle,
        "burst": {
            "supports": len(work.burst),
            "seconds": round(burst_seconds, 2),
            "per_s": round(len(work.burst) / max(1e-9, burst_seconds), 1),
        },
        "proxy": dict(proxy.counts) if proxy is not None else {},
        "malicious": asdict(plan) if plan is not None else None,
    }


def instances_cpu(city: City, hoods: list[str]) -> dict[str, float]:
    """CPU seconds the instances have used since they started: the city's own, and the
    neighbourhoods' (``hoods``: the city's own, not a malicious stranger) together and per
    instance (the Group's fan-out lands on them)."""
    cpu = {key: measure.proc_stats(cluster.pid_of(city, key)).get("cpu_seconds", 0.0)
           for key in city.sites}  # fmt: skip
    together = sum(cpu[key] for key in hoods)
    city_key = next((k for k, site in city.sites.items() if site.place and site.place.is_city), "")
    return {"city": cpu.get(city_key, 0.0), "neighbourhoods": round(together, 2),
            "per_neighbourhood": round(together / max(1, len(hoods)), 2)}  # fmt: skip


async def _sample(city: City, sampler: Sampler, progress: Callable[[], float]) -> None:
    """py-spy on the aggregator and the city's instance from 20 % of the stream (past warm-up)
    until the burst ends."""
    await _when(progress, 0.2)
    await sampler.start("aggregator", cluster.pid_of(city, "aggregator"))
    await sampler.start("instance", cluster.pid_of(city, "city"))


async def _attack(city: City, session: aiohttp.ClientSession, work: Workload, driver: Driver,
                  profile: Profile) -> Plan:  # fmt: skip
    """The malicious instance's crafted supports on city-wide proposals."""
    site = city.sites[MALLORY]
    owner_group = await _group_of(session, city.processes["city"])
    aggregator = city.aggregator.base_url + "/actor"
    mallory = Mallory(site.base_url, site.directory / "barri.sqlite3",
                      city.aggregator.base_url + "/inbox", aggregator, session)  # fmt: skip
    proposals = [(a.proposal, driver.ids[a.proposal]) for a in work.proposals
                 if a.process == "city"]  # fmt: skip
    victims = [city.actor(h.key, h.residents[0]) for h in work.hoods[1:3]]
    return await attack(mallory, proposals, owner_group, victims, profile.limit)


async def _group_of(session: aiohttp.ClientSession, process: str) -> str:
    """The process's owning Group (its ``attributedTo``)."""
    async with session.get(process, headers={"Accept": AS2}) as response:
        document = await response.json(content_type=None)
    owner = document.get("attributedTo")
    return str(owner if isinstance(owner, str) else owner[0])


def _results(profile: Profile, faults: Faults, work: Workload, done: list[tuple[float, Act]],
             started: float, sent: float, converged: float, want: dict[str, Any],
             got: dict[str, Any], lat: list[float], ceiling: dict[str, float],
             stats: dict[str, Any], city: City) -> dict[str, Any]:  # fmt: skip
    acts = len(work.proposals) + len(work.stream) + len(work.burst) + len(work.answers)
    counted = sum(1 for _t, a in done if a.kind in ("support", "withdraw"))
    ingest = counted / max(1e-9, converged - started)
    best = max(v for k, v in ceiling.items() if k.startswith("ed25519"))
    mismatches = sorted(key for key in want if got.get(key) != want[key])
    if not stats.get("cold_rebuild", {"exact": True})["exact"]:
        mismatches.append("cold_rebuild")
    return {
        "profile": profile.name, "faults": faults.names(), "exact": not mismatches,
        "mismatches": {key: {"want": want.get(key), "got": got.get(key)} for key in mismatches},
        "acts": acts, "send_seconds": sent - started,
        "acts_per_s": (len(work.stream) + len(work.burst)) / max(1e-9, sent - started),
        "converge_seconds": converged - sent, "ingest_per_s": ingest,
        "ceiling": ceiling, "ratio_to_ceiling": ingest * 2 / best,
        "aggregator_capacity": _capacity(stats.get("aggregator", {}), counted, acts, best),
        "latency_s": measure.percentiles(lat), "instance_nice": cluster.INSTANCE_NICE, **stats,
        "db_bytes": measure.db_sizes(city.directory),
        "totals": {iri: {"supports": w["supports"], "participants": w["participants"]}
                   for iri, w in want.items() if iri != "mallory"},
    }  # fmt: skip


def _capacity(
    aggregator: dict[str, float], counted: int, acts: int, best: float
) -> dict[str, float | None]:
    """What the aggregator's own CPU time says one core of it sustains (the wall-clock rate is
    bounded by what the instances, sharing the machine, manage to send). Its CPU also went to
    comments, proposals and answering the latency poller, so these are lower bounds."""
    cpu = aggregator.get("cpu_seconds") or 0.0
    if not cpu:
        return {"cpu_ms_per_act": None, "supports_per_cpu_s": None, "ratio_per_cpu_s": None}
    per_cpu_s = counted / cpu
    return {
        "cpu_ms_per_act": round(1000 * cpu / max(1, acts), 3),
        "supports_per_cpu_s": round(per_cpu_s, 1),
        "ratio_per_cpu_s": round(per_cpu_s * 2 / best, 4),
    }


def write(results: dict[str, Any]) -> Path:
    """``benchmarks/results/citysim-<profile>.json`` and its readable ``.txt`` summary."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    results.setdefault("code", code_version())  # the commit measured
    path = RESULTS / f"citysim-{results['profile']}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    path.with_suffix(".txt").write_text(measure.summary_of(results) + "\n")
    return path


__all__ = ["CityError", "Faults", "simulate", "write"]
