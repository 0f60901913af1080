"""The aggregator's own ``barri serve`` process: started (under cProfile if asked), measured
from /proc, polled until its API counts what was sent, stopped, and emptied for a cold rebuild.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import aiohttp

from benchmarks.citysim.cluster import ROOT, City, CityError

#: ``barri serve`` under a signal-switched cProfile, run by path in the checkout measured.
PROFILED = Path(__file__).parents[1] / "profiled.py"

#: Tables a cold rebuild starts without: everything learnt from the instances. The Service's
#: keys, the roster and the Follows stay (the instances know that actor and its key).
LEARNT = (
    "activities",
    "residents",
    "processes",
    "proposals",
    "refusals",
    "tallies",
    "objects",
    "deletions",
    "cursors",
    "inbox_messages",
    "deliveries",
)
STOP_WAIT = 60.0


async def start(
    city: City,
    session: aiohttp.ClientSession,
    profile_to: Path | None,
    *,
    from_start: bool = False,
    code: Path = ROOT,
) -> None:
    """Start ``barri serve`` for the aggregator (under :mod:`benchmarks.profiled` when
    profiling), from the checkout ``code`` (another one than this, to compare two versions on
    one city)."""
    site = city.aggregator
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BARRI_")}
    environment["PYTHONPATH"] = str(code)
    command = ["-m", "federation.cli"]
    if profile_to is not None:
        command = [str(PROFILED), str(profile_to)]
        command += ["--from-start"] if from_start else []
    with (site.directory / "serve.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            "serve",
            "--config",
            str(site.config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=environment,
            start_new_session=True,
            cwd=code,
        )
    city.servers.running["aggregator"] = (site, process)
    await city.servers.healthy(site, session)


async def stop(city: City) -> int:
    """SIGTERM the aggregator and wait for a clean exit (cProfile writes its file then)."""
    _site, process = city.servers.running.pop("aggregator")
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(process.wait(), STOP_WAIT)
    return int(code)


def profile(city: City, on: bool) -> None:
    """Switch the profiler of an aggregator started with ``profile_to`` on or off."""
    os.kill(pid(city), signal.SIGUSR1 if on else signal.SIGUSR2)


def pid(city: City) -> int:
    """The aggregator's OS process id."""
    return int(city.servers.running["aggregator"][1].pid)


def cpu_seconds(process_id: int) -> float:
    """utime + stime of a live process and of its child processes (the aggregator's backfill
    workers): those it reaped (cutime + cstime) and those still running, in seconds
    (/proc/PID/stat fields 14 to 17)."""
    fields = Path(f"/proc/{process_id}/stat").read_text().rsplit(")", 1)[1].split()
    own = sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(_own_cpu(child) for child in _children(process_id))


def _own_cpu(process_id: int) -> float:
    """utime + stime of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{process_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(process_id: int) -> list[int]:
    try:
        listed = Path(f"/proc/{process_id}/task/{process_id}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in listed.split()]


def thread_cpu(process_id: int) -> dict[str, float]:
    """CPU seconds of each thread of a live process: the event loop ("main") and the others
    (aiosqlite's connection thread, the default executor), by thread id."""
    found: dict[str, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{process_id}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        name = "main" if int(task.name) == process_id else f"thread-{task.name}"
        found[name] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def peak_rss_mb(process_id: int) -> float:
    """VmHWM of a live process, in MB."""
    for line in Path(f"/proc/{process_id}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def counted(session: aiohttp.ClientSession, base_url: str) -> int:
    """Supports counted in every process, as ``GET /api/v1/processes`` says."""
    async with session.get(base_url + "/api/v1/processes") as response:
        if response.status != 200:
            return -1
        body = await response.json()
    return sum(int(p["supports"]) for p in body.get("processes", []))


async def wait_counted(
    session: aiohttp.ClientSession, base_url: str, target: int, wait: float, base: int = 0
) -> tuple[float, int]:
    """Poll until ``target`` supports are counted; (time.time() when seen, last count).

    Each poll makes the aggregator compute its results, so it polls every half second until
    95 % of the new ones (beyond ``base``) are counted, then every 20 ms.
    """
    deadline = time.monotonic() + wait
    near = base + 0.95 * (target - base)
    seen = -1
    while time.monotonic() < deadline:
        try:
            seen = await counted(session, base_url)
        except (aiohttp.ClientError, OSError):
            seen = -1
        if seen >= target:
            return time.time(), seen
        await asyncio.sleep(0.02 if seen >= near else 0.5)
    raise CityError(f"the aggregator counted {seen} supports, not {target}, in {wait:.0f} s")


def wipe(database: Path) -> None:
    """Empty what the aggregator learnt, keeping its keys, roster and Follows (cold rebuild)."""
    with sqlite3.connect(database) as db:
        for table in LEARNT:
            db.execute(f"DELETE FROM {table}")  # fixed names
        db.execute("UPDATE roster SET last_activity_at = NULL")
    with sqlite3.connect(database) as db:
        db.execute("VACUUM")
