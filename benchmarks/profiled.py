"""``barri`` under a cProfile that the benchmark switches on and off by signal.

``python benchmarks/profiled.py OUT [--from-start] serve --config …`` runs the
``federation.cli.main`` its environment imports (the benchmarks set ``PYTHONPATH`` to the
checkout measured, which may be another worktree; the file is run by path). SIGUSR1 starts
profiling the main thread (the event loop), SIGUSR2 stops it, and the stats are written to OUT
when the server exits (SIGTERM/SIGINT end ``barri serve`` cleanly). So the profile covers
exactly the measured window, not the start-up nor the set-up of the city; ``--from-start``
profiles from the start (a cold rebuild begins there). Used by ``bench_ingest`` and
``bench_c2s``.
"""

from __future__ import annotations

import cProfile
import signal
import sys
from types import FrameType

from federation.cli import main as barri


def main(argv: list[str]) -> int:
    """OUT, then ``--from-start`` or not, then the ``barri`` arguments."""
    out, args = argv[0], argv[1:]
    profiler = cProfile.Profile()
    if args[:1] == ["--from-start"]:
        args = args[1:]
        profiler.enable()

    def on(_signum: int, _frame: FrameType | None) -> None:
        profiler.enable()

    def off(_signum: int, _frame: FrameType | None) -> None:
        profiler.disable()

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    try:
        return barri(args)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
