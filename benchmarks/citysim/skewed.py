"""``python -m benchmarks.citysim.skewed SECONDS serve --config FILE``: a server whose clock is off.

The city simulation's clock-skew fault: this process's wall clock (``time.time`` and
``datetime.now``) runs ``SECONDS`` ahead (or behind, if negative) of the machine's, as on a
neighbourhood server whose NTP is broken; monotonic time, which timers use, is untouched.
Installed before Barri is imported, so every ``from datetime import datetime`` sees it.
"""

from __future__ import annotations

import datetime as _datetime
import sys
import time
from typing import Any


def install(seconds: float) -> None:
    """Shift this process's wall clock by ``seconds``."""
    real_time = time.time
    shift = _datetime.timedelta(seconds=seconds)
    base = _datetime.datetime

    class SkewedDatetime(base):  # type: ignore[misc,valid-type]
        """``datetime`` whose ``now``/``utcnow`` read the shifted clock."""

        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return base.now(tz) + shift

        @classmethod
        def utcnow(cls) -> Any:
            return base.now(_datetime.UTC).replace(tzinfo=None) + shift

    time.time = lambda: real_time() + seconds
    _datetime.datetime = SkewedDatetime  # type: ignore[misc]


def main(argv: list[str]) -> int:
    """Shift the clock, then run ``barri ARGV``."""
    install(float(argv[0]))
    from federation.cli import main as barri

    return barri(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
