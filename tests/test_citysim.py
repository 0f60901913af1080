"""The city simulation's ci profile, run on real ``barri serve`` processes over loopback.

Exactness only (no timing is asserted): residents act through C2S with personal tokens, the
city answers through its admin pages, and the aggregator's JSON API must then show exactly the
totals the generator's own model computed, per proposal, neighbourhood, district and process,
with the same participants and official answers. Scaled to half the ci profile's acts so the
run stays around a minute on a 2-core machine. The fault flags are exercised by
``python -m benchmarks.citysim --all-faults`` (not yet reliable enough for the suite).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.citysim.profiles import PROFILES, scaled
from benchmarks.citysim.runner import simulate
from benchmarks.citysim.workload import generate

SCALE = 0.5


def test_generator_is_seeded_and_within_limits() -> None:
    profile = scaled(PROFILES["ci"], SCALE)
    first, again = generate(profile, 8), generate(profile, 8)
    assert first.stream == again.stream and first.stream != generate(profile, 9).stream
    likes: dict[tuple[str, str, str], int] = {}
    for act in [*first.stream, *first.burst]:
        if act.kind == "support":
            key = (act.place, act.resident, first.process_of[act.proposal])
            likes[key] = likes.get(key, 0) + 1
    assert likes and max(likes.values()) <= profile.limit
    # Scaling multiplies the acts, never the servers or the concurrency.
    assert (profile.hoods, profile.concurrency, profile.limit) == (5, 12, 20)
    assert len(first.burst) == profile.burst == 300


async def test_ci_city_ends_exact(tmp_path: Path) -> None:
    # The fault flags (benchmarks/citysim/faults.py) are not run here yet: with them on, about
    # one run in three under load ends one support short (cause open, see issue 8's note).
    profile = scaled(PROFILES["ci"], SCALE)
    results = await simulate(profile, tmp_path / "city", seed=8, scale=SCALE)
    assert results["mismatches"] == {}
    assert results["exact"] is True
    supports = sum(t["supports"] for t in results["totals"].values())
    assert supports > 500
    assert results["burst"]["supports"] == profile.burst
