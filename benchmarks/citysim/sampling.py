"""py-spy over the simulation's servers: which code their CPU goes to (``--py-spy BINARY``).

A sampling profiler, attached to running servers by pid (``RATE`` Hz, idle samples left out),
so it sees the real run rather than a reconstruction. Each window's raw stacks are folded by
:func:`benchmarks.ingestkit.spy.summary` into ``benchmarks/results/citysim-<profile>-<name>-
pyspy.txt``: the functions' own and inclusive shares of the samples.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.ingestkit.spy import summary

#: Samples per second: at 250 Hz each py-spy took ~10 % of a core from a 2-core city.
RATE = 100


@dataclass
class Sampler:
    """py-spy processes started by name; stopped together, each summary written."""

    binary: str | None
    results: Path
    profile: str
    running: dict[str, tuple[asyncio.subprocess.Process, Path]] = field(default_factory=dict)

    async def start(self, name: str, pid: int, *, subprocesses: bool = False) -> None:
        """Sample ``pid`` (and, with ``subprocesses``, the processes it starts, such as the
        aggregator's backfill workers) until :meth:`stop` (nothing when no py-spy was given)."""
        if self.binary is None or name in self.running:
            return
        raw = self.results / f"citysim-{self.profile}-{name}-pyspy.raw"
        children = ["--subprocesses"] if subprocesses else []
        process = await asyncio.create_subprocess_exec(
            self.binary, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw",
            "--nonblocking", *children, "--output", str(raw),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.running[name] = (process, raw)

    async def stop(self, name: str) -> Path | None:
        """Stop one window (py-spy writes its file on SIGINT); the summary's path."""
        if name not in self.running:
            return None
        process, raw = self.running.pop(name)
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        await process.wait()
        if not raw.exists():
            return None
        out = raw.with_name(raw.name.replace("-pyspy.raw", "-pyspy.txt"))
        out.write_text(summary(raw))
        raw.unlink()
        return out

    async def stop_all(self) -> list[Path]:
        """Stop every window still running; the summaries written."""
        written = [await self.stop(name) for name in list(self.running)]
        return [path for path in written if path is not None]


__all__ = ["Sampler"]
