"""How long inbox rows waited from their receipt until handled: a Prometheus-style histogram.

The buckets are cumulative upper bounds in seconds (the exposition format's ``le``), fixed at
construction, so an observation costs one bisection and the memory does not grow with load.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

#: From "handled in the same batch" to "a backlog of minutes": where an operator looks.
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class LagHistogram:
    """Counts of observations at or below each bound, their sum and their count."""

    def __init__(self, bounds: Sequence[float] = LAG_BUCKETS) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """One row's lag (a negative one, a clock step back, counts as 0)."""
        seconds = max(0.0, seconds)
        self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> Iterator[tuple[float, int]]:
        """(upper bound, observations at or below it), ending with (inf, count)."""
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self._counts, strict=True):
            total += n
            yield bound, total


__all__ = ["LAG_BUCKETS", "LagHistogram"]
