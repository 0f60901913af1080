"""The demo's child processes: ``barri serve`` servers and one-shot ``barri`` commands.

Every child is ``python -m federation.cli`` of the demo's own interpreter, without the
operator's ``BARRI_*`` overrides, in its own session (Ctrl-C at the terminal reaches only the
demo, which stops its children in order) and, on Linux, with a parent-death signal so that no
child outlives a demo killed outright. Servers are stopped with SIGTERM, then SIGKILL after a
grace period; a command interrupted half-way is killed.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from federation.demo_seed import Site

HEALTH_WAIT = 60.0  # seconds for a server to answer /healthz
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
Spawn = Callable[..., Awaitable[asyncio.subprocess.Process]]


class DemoError(Exception):
    """The demo cannot go on; the message is the one line shown."""


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGTERM when the demo dies (Linux prctl)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the demo died before the prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def make_spawn() -> Spawn:
    """Start ``python -m federation.cli ARGS``: same interpreter, no BARRI_* overrides."""
    hook = _die_with_parent()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BARRI_")}

    async def spawn(*args: str, **kwargs: Any) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "federation.cli", *args,
            env=environment, start_new_session=True, preexec_fn=hook, **kwargs,
        )  # fmt: skip

    return spawn


def make_cli(spawn: Spawn) -> Callable[..., Awaitable[str]]:
    """Run one ``barri`` command to its end; its output, or DemoError with its error line."""

    async def cli(*args: str, stdin: str | None = None) -> str:
        pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        source = pipe if stdin is not None else devnull
        process = await spawn(*args, stdin=source, stdout=pipe, stderr=pipe)
        try:
            out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        except asyncio.CancelledError:
            process.kill()  # interrupted: no command outlives the demo
            await process.wait()
            raise
        if process.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines() or ["(no message)"]
            words = " ".join(a for a in args[:4] if not a.startswith(("/", ".")))
            raise DemoError(f"`barri {words}` failed: {lines[-1]}")
        return out.decode()

    return cli


class Servers:
    """The demo's ``barri serve`` children: started, watched, stopped."""

    def __init__(self, spawn: Spawn) -> None:
        self._spawn = spawn
        self.running: dict[str, tuple[Site, asyncio.subprocess.Process]] = {}

    async def start(self, site: Site) -> None:
        """Start one server, its output going to ``serve.log`` in its folder."""
        with (site.directory / "serve.log").open("ab") as log:
            process = await self._spawn("serve", "--config", str(site.config),
                                        stdin=asyncio.subprocess.DEVNULL, stdout=log,
                                        stderr=asyncio.subprocess.STDOUT)  # fmt: skip
        self.running[site.key] = (site, process)

    async def healthy(self, site: Site, session: aiohttp.ClientSession) -> None:
        """Wait until the server answers ``/healthz``, directly then at its public origin."""
        _site, process = self.running[site.key]
        deadline = time.monotonic() + HEALTH_WAIT
        for origin in dict.fromkeys((site.local_url, site.base_url)):
            while not await _answers(session, origin + "/healthz"):
                if process.returncode is not None:
                    raise DemoError(self.exit_message(site.key))
                if time.monotonic() > deadline:
                    raise DemoError(
                        f"the {site.key} server did not answer at {origin} within"
                        f" {HEALTH_WAIT:.0f} s (behind a proxy: is it up, and its CA trusted?)"
                    )
                await asyncio.sleep(0.1)

    async def first_exit(self) -> str:
        """Wait until any server exits; the message says which and why."""
        waits = {asyncio.ensure_future(p.wait()): key for key, (_s, p) in self.running.items()}
        if not waits:
            await asyncio.Event().wait()  # nothing to watch: never
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return self.exit_message(waits[next(iter(done))])

    def exit_message(self, key: str) -> str:
        site, process = self.running[key]
        try:
            lines = (site.directory / "serve.log").read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        last = lines[-1] if lines else "no output"
        return f"the {key} server stopped (exit {process.returncode}): {last}"

    async def stop(self) -> None:
        """SIGTERM every child, wait up to STOP_GRACE, then SIGKILL what is left."""
        processes = [p for _s, p in self.running.values() if p.returncode is None]
        for process in processes:
            _signal(process, signal.SIGTERM)
        waits = [asyncio.ensure_future(p.wait()) for p in processes]
        if waits:
            _done, late = await asyncio.wait(waits, timeout=STOP_GRACE)
            if late:
                for process in processes:
                    _signal(process, signal.SIGKILL)
                await asyncio.wait(late)


async def _answers(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as response:
            return response.status == 200
    except (aiohttp.ClientError, OSError):
        return False


def _signal(process: asyncio.subprocess.Process, signum: int) -> None:
    if process.returncode is None:
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            pass
