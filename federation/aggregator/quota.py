"""How often a server off the roster may deliver to the aggregator's inbox (a flood guard).

Anyone with a key can sign deliveries, and the aggregator keeps each verified one it is sent:
a support from off the roster is stored and reported (``unlisted``), since the roster may list
its instance later. A server off the roster has little to send the city's aggregator (a
``Follow`` of its Tallies, now and then), so past a budget its deliveries are answered 429 with
``Retry-After`` (RFC 6585 §4), which ActivityPub senders retry later: nothing countable is lost,
and a roster instance's later backfill reads its collections anyway. Each off-roster origin has
a token bucket of ``per_minute`` deliveries, and all of them together one of ``TOTAL_FACTOR``
times that (an attacker's many hostnames share it). Roster instances are never limited.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: All off-roster origins together may deliver this many times one origin's budget.
TOTAL_FACTOR = 10
#: Off-roster origins whose buckets are kept (the least recently seen is forgotten: full again).
ORIGINS_KEPT = 4096


@dataclass
class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``rate`` a second (RFC 2697's idea)."""

    capacity: float
    rate: float
    tokens: float
    at: float

    def take(self, now: float) -> float:
        """Take a token if there is one (0.0), else the seconds until there is."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class OffRosterQuota:
    """Per-origin and shared budgets for deliveries from origins off the roster."""

    def __init__(
        self,
        per_minute: int,
        on_roster: Callable[[str], bool],
        *,
        clock: Callable[[], float] = time.monotonic,
        origins_kept: int = ORIGINS_KEPT,
    ) -> None:
        self.per_minute, self._on_roster, self._clock = per_minute, on_roster, clock
        self._kept = origins_kept
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._total = self._bucket(TOTAL_FACTOR * per_minute)
        #: Deliveries answered 429 since start (``/metrics``).
        self.limited = 0

    def wait(self, origin: str) -> float:
        """Seconds the delivery of an authenticated ``origin`` must wait; 0.0: take it now."""
        if self.per_minute <= 0 or self._on_roster(origin):
            return 0.0
        bucket = self._buckets.pop(origin, None) or self._bucket(self.per_minute)
        self._buckets[origin] = bucket  # most recently seen last
        if len(self._buckets) > self._kept:
            self._buckets.popitem(last=False)
        now = self._clock()
        wait = bucket.take(now)
        if wait == 0.0:
            wait = self._total.take(now)
            if wait:
                bucket.tokens += 1.0  # not spent: the shared budget refused it
        if wait:
            self.limited += 1
        return wait

    def _bucket(self, per_minute: int) -> Bucket:
        return Bucket(float(per_minute), per_minute / 60.0, float(per_minute), self._clock())
