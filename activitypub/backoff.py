"""Retry policy for outgoing deliveries: backoff schedule, retryable statuses, per-host breaker.

Everything here is pure (no I/O, clock and randomness injected), so the policy is unit-tested on
its own, the way Fedify keeps ``RetryPolicy`` apart from its queue (DESIGN.md §6).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

#: Total send attempts for one delivery (the first try plus ``MAX_ATTEMPTS - 1`` retries).
#: With the defaults of :func:`retry_delay` the 17 waits add up to about 50.5 hours.
MAX_ATTEMPTS = 18


def retry_delay(
    attempt: int,
    *,
    base: float = 30.0,
    factor: float = 2.0,
    cap: float = 6 * 3600,
    jitter: float = 0.5,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after the ``attempt``-th failed send (DESIGN.md §6, exponential + jitter).

    The nominal delay is ``min(cap, base * factor ** (attempt - 1))``; jitter then scales it by a
    uniform factor in ``[1 - jitter, 1 + jitter)`` so the *expected* schedule is the nominal one,
    and the result never exceeds ``cap``. With the defaults and no jitter the waits are
    30 s, 1, 2, 4, 8, 16, 32 min, 1 h 4, 2 h 8, 4 h 16, then 6 h seven times: the 17 waits
    between the ``MAX_ATTEMPTS`` = 18 attempts sum to 181 890 s ≈ 50.5 h, about two days
    (Mastodon retries for 2-3 days, Fedify for about 12 h).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be within [0, 1], got {jitter}")
    # Clamp the exponent so huge attempt numbers cannot overflow a float before the cap applies.
    exponent = min(attempt - 1, 1024)
    try:
        nominal = min(cap, base * factor**exponent)
    except OverflowError:
        nominal = cap
    spread = 1.0 - jitter + 2.0 * jitter * rand()
    return max(0.0, min(cap, nominal * spread))


def retryable(status: int | None) -> bool:
    """Whether a failed send may succeed later (Mastodon ``response_error_unsalvageable?``).

    ``None`` (timeout, refused connection, TLS error) and 401, 408, 429 and 5xx except 501 are
    transient; 404, 410, 501 and every other 4xx are permanent. A 2xx is a success, never retried;
    1xx/3xx are unexpected answers to a POST and are treated as transient, as Mastodon does.
    """
    if status is None:
        return True
    if 200 <= status < 300:
        return False
    if status in (401, 408, 429):
        return True
    if 400 <= status < 500 or status == 501:
        return False
    return True


class BreakerState(StrEnum):
    """Circuit states: CLOSED lets traffic through, OPEN blocks it, HALF_OPEN lets a probe by."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None


class CircuitBreaker:
    """A per-host circuit breaker (Mastodon wraps each delivery in a Stoplight: 10 failures, 60 s).

    After ``threshold`` consecutive failures a host is OPEN for ``cool_off`` seconds, then
    HALF_OPEN: the next result decides, a success closes it, a failure re-opens it at once.
    """

    def __init__(
        self,
        *,
        threshold: int = 10,
        cool_off: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self._threshold = threshold
        self._cool_off = cool_off
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def state(self, host: str) -> BreakerState:
        """The host's current state, computed from the injected clock."""
        circuit = self._circuits.get(host)
        if circuit is None or circuit.opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - circuit.opened_at < self._cool_off:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allows(self, host: str) -> bool:
        """True unless the host's circuit is OPEN."""
        return self.state(host) is not BreakerState.OPEN

    def blocked_hosts(self) -> frozenset[str]:
        """The hosts whose circuit is OPEN now (to exclude them from claims)."""
        return frozenset(h for h in self._circuits if self.state(h) is BreakerState.OPEN)

    def reopens_in(self) -> float | None:
        """Seconds until the first OPEN circuit turns HALF_OPEN, or None when none is open."""
        now = self._clock()
        waits = [
            c.opened_at + self._cool_off - now
            for c in self._circuits.values()
            if c.opened_at is not None and now - c.opened_at < self._cool_off
        ]
        return max(0.0, min(waits)) if waits else None

    def record_success(self, host: str) -> None:
        """The host answered: close its circuit and forget its failures."""
        self._circuits.pop(host, None)

    def record_failure(self, host: str) -> None:
        """The host failed transiently: count it, and open (or re-open) the circuit if due."""
        state = self.state(host)
        circuit = self._circuits.setdefault(host, _Circuit())
        if state is BreakerState.OPEN:
            return  # late results of requests sent before it opened do not extend the cool-off
        circuit.failures += 1
        if state is BreakerState.HALF_OPEN or circuit.failures >= self._threshold:
            circuit.opened_at = self._clock()
