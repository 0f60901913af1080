"""py-spy (a sampling profiler, when installed) over the aggregator during a measured window.

cProfile counts every call, so it inflates code that makes many small calls and counts each
resumption of a coroutine as a call; py-spy samples the running stacks instead (250 Hz, idle
samples left out), which is what the share of time per function should be read from.
``summary`` folds py-spy's raw (collapsed) stacks into the functions' own and inclusive shares.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path


async def record(binary: str, pid: int, seconds: float, out: Path) -> asyncio.subprocess.Process:
    """Start ``py-spy record`` on ``pid`` and the processes it starts (the aggregator's
    backfill workers) for ``seconds``, raw output to ``out``."""
    return await asyncio.create_subprocess_exec(
        binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", "250", "--format", "raw", "--nonblocking", "--subprocesses", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def _name(frame: str) -> str:
    function, _, where = frame.partition(" (")
    return f"{function} {where.rstrip(')').rsplit('/', 1)[-1]}".strip()


def summary(raw: Path, top: int = 100) -> str:
    """The functions' own and inclusive shares of the samples, most first."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    skipped = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():  # py-spy sometimes writes a stack without its count
            skipped += 1
            continue
        frames = stack.split(";")
        samples = int(count)
        total += samples
        threads[frames[0]] += samples
        names = [_name(frame) for frame in frames[1:]]
        if names:
            own[names[-1]] += samples
        for name in set(names):
            inclusive[name] += samples
    lines = [f"py-spy: {total} samples (idle left out, {skipped} malformed lines skipped);"]
    lines += ["by thread root:"]
    lines += [f"  {100 * n / total:5.1f}% {name}" for name, n in threads.most_common(4)]
    for title, counts in (("own", own), ("inclusive", inclusive)):
        lines.append(f"===== {title} time, share of samples =====")
        lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in counts.most_common(top)]
    return "\n".join(lines) + "\n"
