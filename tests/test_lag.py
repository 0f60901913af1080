"""The inbox lag histogram: cumulative buckets as the Prometheus exposition format counts them."""

from __future__ import annotations

from activitypub.lag import LagHistogram


def test_each_observation_counts_in_the_first_bucket_at_or_above_it() -> None:
    lag = LagHistogram((0.1, 1.0))
    for seconds in (0.1, 0.1000001, 1.0, 2.0, -3.0):
        lag.observe(seconds)
    # 0.1 and the clock step back (as 0) fit 0.1; 0.1000001 and 1.0 fit 1.0; 2.0 only +Inf.
    assert list(lag.cumulative()) == [(0.1, 2), (1.0, 4), (float("inf"), 5)]
    assert lag.count == 5
    assert abs(lag.sum - (0.1 + 0.1000001 + 1.0 + 2.0)) < 1e-9


def test_an_empty_histogram_has_every_bucket_at_zero() -> None:
    lag = LagHistogram()
    assert [seen for _, seen in lag.cumulative()] == [0] * (len(lag.bounds) + 1)
    assert (lag.sum, lag.count) == (0.0, 0)
