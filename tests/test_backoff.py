"""activitypub.backoff: the retry schedule, the retryable-status table and the circuit breaker."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from activitypub.backoff import (
    MAX_ATTEMPTS,
    BreakerState,
    CircuitBreaker,
    retry_delay,
    retryable,
)

HOUR = 3600.0


def _no_jitter(
    attempt: int, *, base: float = 30.0, factor: float = 2.0, cap: float = 6 * HOUR
) -> float:
    return retry_delay(attempt, base=base, factor=factor, cap=cap, jitter=0.0)


def _const(value: float) -> Callable[[], float]:
    return lambda: value


def test_schedule_without_jitter_doubles_from_base() -> None:
    assert [_no_jitter(n) for n in range(1, 7)] == [30.0, 60.0, 120.0, 240.0, 480.0, 960.0]
    assert _no_jitter(10) == 30.0 * 2**9
    assert _no_jitter(1, base=1.0, factor=3.0) == 1.0
    assert _no_jitter(3, base=1.0, factor=3.0) == 9.0


def test_cap_bounds_every_delay() -> None:
    assert _no_jitter(11) == 6 * HOUR
    assert _no_jitter(MAX_ATTEMPTS - 1) == 6 * HOUR
    assert _no_jitter(5000) == 6 * HOUR  # no overflow for absurd attempt numbers
    assert _no_jitter(3, cap=100.0) == 100.0
    # Jitter never pushes a capped delay above the cap.
    assert retry_delay(20, rand=lambda: 0.999999) <= 6 * HOUR


def test_jitter_bounds() -> None:
    nominal = _no_jitter(4)
    low = retry_delay(4, rand=lambda: 0.0)
    high = retry_delay(4, rand=lambda: 0.999999)
    assert low == pytest.approx(nominal * 0.5)
    assert high == pytest.approx(nominal * 1.5, rel=1e-5)
    assert retry_delay(4, rand=lambda: 0.5) == pytest.approx(nominal)
    for r in (0.0, 0.1, 0.37, 0.5, 0.8, 0.999):
        assert nominal * 0.5 <= retry_delay(4, rand=_const(r)) < nominal * 1.5
    assert retry_delay(4, jitter=0.2, rand=lambda: 0.0) == pytest.approx(nominal * 0.8)


def test_jitter_with_the_real_random_source_stays_in_bounds() -> None:
    nominal = _no_jitter(6)
    values = {retry_delay(6) for _ in range(200)}
    assert all(nominal * 0.5 <= v < nominal * 1.5 for v in values)
    assert len(values) > 1  # it does jitter


def test_total_schedule_is_about_two_days() -> None:
    total = sum(_no_jitter(n) for n in range(1, MAX_ATTEMPTS))
    assert 40 * HOUR <= total <= 60 * HOUR
    assert total == 30.0 * (2**10 - 1) + 7 * 6 * HOUR  # the docstring's 181 890 s


@pytest.mark.parametrize("bad", [{"attempt": 0}, {"attempt": 1, "jitter": 1.5}])
def test_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        retry_delay(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, True),
        (401, True),
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (599, True),
        (501, False),
        (400, False),
        (403, False),
        (404, False),
        (405, False),
        (410, False),
        (413, False),
        (422, False),
        (499, False),
        (200, False),
        (202, False),
        (301, True),
    ],
)
def test_retryable_table(status: int | None, expected: bool) -> None:
    assert retryable(status) is expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cool_off=60.0, clock=clock)
    host = "a.example"
    assert breaker.state(host) is BreakerState.CLOSED
    breaker.record_failure(host)
    breaker.record_failure(host)
    assert breaker.allows(host)
    breaker.record_success(host)  # a success resets the count: failures must be consecutive
    breaker.record_failure(host)
    breaker.record_failure(host)
    assert breaker.state(host) is BreakerState.CLOSED
    breaker.record_failure(host)
    assert breaker.state(host) is BreakerState.OPEN
    assert not breaker.allows(host)
    assert breaker.blocked_hosts() == {host}
    assert breaker.allows("b.example")
    assert breaker.reopens_in() == 60.0


def test_breaker_half_opens_after_cool_off_and_closes_on_success() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=2, cool_off=60.0, clock=clock)
    breaker.record_failure("h")
    breaker.record_failure("h")
    clock.now += 30
    assert breaker.state("h") is BreakerState.OPEN
    assert breaker.reopens_in() == 30.0
    breaker.record_failure("h")  # a late failure while open does not extend the cool-off
    clock.now += 30
    assert breaker.state("h") is BreakerState.HALF_OPEN
    assert breaker.allows("h")
    assert breaker.blocked_hosts() == frozenset()
    assert breaker.reopens_in() is None
    breaker.record_success("h")
    assert breaker.state("h") is BreakerState.CLOSED
    breaker.record_failure("h")
    assert breaker.state("h") is BreakerState.CLOSED  # the count started again from zero


def test_breaker_half_open_failure_reopens_at_once() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=10, cool_off=60.0, clock=clock)
    for _ in range(10):
        breaker.record_failure("h")
    assert breaker.state("h") is BreakerState.OPEN
    clock.now += 61
    assert breaker.state("h") is BreakerState.HALF_OPEN
    breaker.record_failure("h")  # one failed probe is enough
    assert breaker.state("h") is BreakerState.OPEN
    clock.now += 59
    assert breaker.state("h") is BreakerState.OPEN
    clock.now += 1
    assert breaker.state("h") is BreakerState.HALF_OPEN


def test_breaker_defaults_follow_mastodon() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock)
    for _ in range(9):
        breaker.record_failure("h")
    assert breaker.state("h") is BreakerState.CLOSED
    breaker.record_failure("h")
    assert breaker.state("h") is BreakerState.OPEN
    clock.now += 60
    assert breaker.state("h") is BreakerState.HALF_OPEN
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=0)
