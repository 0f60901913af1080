"""The city simulation's ci profile, run on real ``barri serve`` processes over loopback.

Exactness only (no timing is asserted): residents act through C2S with personal tokens, the
city answers through its admin pages, and the aggregator's JSON API must then show exactly the
totals the generator's own model computed, per proposal, neighbourhood, district and process,
with the same participants and official answers — with every fault flag on at once: the
aggregator SIGKILLed and restarted, an instance stopped, deliveries duplicated, reordered and
dropped, two instances' clocks 2 minutes off (inside the 5 minutes an instance tolerates), a
malicious rostered instance whose forged, backdated and over-limit supports must be refused or
flagged and never counted, and finally the aggregator emptied and rebuilt by backfill alone.
Scaled to half the ci profile's acts so the run stays around two minutes on a 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.citysim.faults import Faults
from benchmarks.citysim.profiles import PROFILES, scaled
from benchmarks.citysim.rebuild import rebuild_again
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


async def test_ci_city_ends_exact_with_every_fault(tmp_path: Path) -> None:
    faults = Faults(kill_aggregator=True, instance_down=True, duplicate=True, reorder=True,
                    drop=0.05, clock_skew=120.0, malicious=True, cold_rebuild=True)  # fmt: skip
    profile = scaled(PROFILES["ci"], SCALE)
    results = await simulate(profile, tmp_path / "city", seed=8, faults=faults, scale=SCALE)
    assert results["mismatches"] == {}
    assert results["exact"] is True
    supports = sum(t["supports"] for t in results["totals"].values())
    assert supports > 500
    assert results["burst"]["supports"] == profile.burst
    # The aggregator's own account of its wall time was read (its /metrics).
    assert results["latency_hops"]["handled_s"]["n"] > 500  # act→handled from the records
    work = results["aggregator_work"]
    assert work["inbox_rows_total"] > 0 and work['fetches_total{outcome="ok"}'] > 0
    # The servers' own /proc figures: every instance worked, the RSS now is at most its peak.
    cpu = results["instances_cpu"]
    assert cpu["city"] > 0 and cpu["per_neighbourhood"] > 0
    assert abs(cpu["neighbourhoods"] - cpu["per_neighbourhood"] * profile.hoods) < 0.1
    assert 0 < results["aggregator"]["rss_mb"] <= results["aggregator"]["peak_rss_mb"] + 1
    # Every fault really happened, so exactness was earned under it.
    proxy = results["proxy"]
    assert proxy["dropped"] > 0 and proxy["duplicated"] > 0 and proxy["undo_before_like"] > 0
    assert [e for e, _t in results["timeline"]][:4] == [
        "aggregator killed", "aggregator back", "h01 down", "h01 back",
    ]  # fmt: skip
    assert results["driver_retries"] > 0  # residents' acts refused while h01 was down
    mallory = results["malicious"]
    assert mallory["forged"] > 0 and mallory["backdated"] > 0 and mallory["over_limit"] > 0
    assert mallory["statuses"][: mallory["forged"]] == [401] * mallory["forged"]
    # The emptied aggregator rebuilt the honest instances' totals from their collections (the
    # malicious instance's supports, sent straight to it, are in no collection).
    rebuilt = results["cold_rebuild"]
    assert rebuilt["exact"] is True
    assert rebuilt["supports"] == supports - len(mallory["counted"])
    assert rebuilt["instances_cpu_seconds"] > 0  # serving the pages cost them something
    # The finished city, started again from its folder, rebuilds the same totals again.
    again = await rebuild_again(tmp_path / "city", "ci-test", None)
    assert again["instances"] == profile.hoods + 2  # the city's, the neighbourhoods', Mallory's
    assert again["cold_rebuild"]["exact"] is True
    assert again["cold_rebuild"]["supports"] == rebuilt["supports"]
