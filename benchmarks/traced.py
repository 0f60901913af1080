"""``barri`` under tracemalloc from its start; SIGUSR1 writes what holds its memory then.

``python benchmarks/traced.py OUT serve --config …`` runs the ``federation.cli.main`` its
environment imports (citysim sets ``PYTHONPATH`` to the checkout measured; the file is run by
path). tracemalloc traces one frame per allocation from the start; on SIGUSR1 the process
writes OUT as JSON while it runs (so a live server's state is measured, not what is left after
shutdown): its RSS, what tracemalloc holds, the allocation sites holding the most and the live
objects by type (:func:`benchmarks.aggregator_memory.traced_report`). citysim sends the
signal once the city has converged (``CITYSIM_TRACEMALLOC=aggregator``).
"""

from __future__ import annotations

import gc
import json
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from benchmarks.aggregator_memory import _current_rss_mb, _rss_mb, traced_report
from federation.cli import main as barri

TOP = 40


def main(argv: list[str]) -> int:
    """OUT, then the ``barri`` arguments."""
    out, args = Path(argv[0]), argv[1:]
    tracemalloc.start(1)

    def report(_signum: int, _frame: FrameType | None) -> None:
        gc.collect()
        result = {"rss_mb": round(_current_rss_mb(), 1), "peak_rss_mb": round(_rss_mb(), 1)}
        result |= traced_report(TOP)
        partial = out.with_suffix(".part")
        partial.write_text(json.dumps(result, indent=1) + "\n")
        partial.replace(out)  # whole or absent: citysim waits for the file

    signal.signal(signal.SIGUSR1, report)
    return barri(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
