"""The A/B harness's verdict (benchmarks/ab_ingest.py): round by round, each figure's way up."""

from __future__ import annotations

import pytest

from benchmarks.ab_ingest import sign_test, summarise, verdict


def test_the_sign_test_is_the_binomial_tail_both_ways() -> None:
    assert sign_test(8, 8) == sign_test(0, 8) == pytest.approx(2 / 256)
    assert sign_test(7, 8) == pytest.approx(2 * 9 / 256)
    assert sign_test(4, 8) == 1.0


def test_less_cpu_and_more_supports_per_second_are_both_better() -> None:
    base, head = [0.40, 0.30, 0.50], [0.36, 0.33, 0.45]
    cpu = verdict("cpu_ms_per_support", base, head)
    assert cpu["head_better_rounds"] == 2 and cpu["rounds"] == 3
    assert cpu["median_change"] == pytest.approx(-0.1)
    rate = verdict("supports_per_s", base, head)
    assert rate["head_better_rounds"] == 1
    assert verdict("cold_supports_per_s", base, head)["head_better_rounds"] == 1
    assert verdict("cold_cpu_ms_per_support", base, head)["head_better_rounds"] == 2


def test_a_drift_that_touches_both_sides_cancels_out() -> None:
    # The machine slows down run after run; head is 5 % cheaper in every round all the same.
    base = [0.30, 0.34, 0.38, 0.42]
    head = [value * 0.95 for value in base]
    found = verdict("event_loop_cpu_ms_per_support", base, head)
    assert found["head_better_rounds"] == 4
    assert found["median_change"] == pytest.approx(-0.05)
    spread = summarise([{f: v for f in ("event_loop_cpu_ms_per_support", "cpu_ms_per_support",
                                        "supports_per_s")} for v in base])  # fmt: skip
    assert spread["cpu_ms_per_support"] == {"median": 0.36, "min": 0.30, "max": 0.42}
