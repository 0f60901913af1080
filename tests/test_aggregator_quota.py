"""A server off the roster gets a budget of deliveries; past it the aggregator answers 429.

Unit tests drive :class:`OffRosterQuota` with a hand-moved clock; the loopback test sends
real proved supports from an instance off the roster and one on it to a real aggregator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from federation.aggregator.quota import TOTAL_FACTOR, OffRosterQuota
from tests.aggregator_env import city
from tests.barri_node import hood

ROSTERED = "https://gracia.barri.example"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def quota(per_minute: int, clock: Clock, **kw: int) -> OffRosterQuota:
    return OffRosterQuota(per_minute, lambda origin: origin == ROSTERED, clock=clock, **kw)


def test_an_origin_off_the_roster_spends_its_budget_then_waits_for_a_refill() -> None:
    clock = Clock()
    guard = quota(60, clock)  # one a second, 60 at once
    assert [guard.wait("https://rogue.example") for _ in range(60)] == [0.0] * 60
    wait = guard.wait("https://rogue.example")
    assert wait == pytest.approx(1.0)
    clock.now += 0.5
    assert guard.wait("https://rogue.example") == pytest.approx(0.5)
    clock.now += 0.5
    assert guard.wait("https://rogue.example") == 0.0
    assert guard.limited == 2
    # Another origin has a budget of its own; the roster instance has none to spend.
    assert guard.wait("https://other.example") == 0.0
    assert all(guard.wait(ROSTERED) == 0.0 for _ in range(1000))


def test_many_origins_share_one_budget_and_zero_means_no_limit() -> None:
    clock = Clock()
    guard = quota(2, clock)
    waits = [guard.wait(f"https://host{i}.rogue.example") for i in range(TOTAL_FACTOR * 2 + 5)]
    assert waits[: TOTAL_FACTOR * 2] == [0.0] * (TOTAL_FACTOR * 2)
    assert all(wait > 0 for wait in waits[TOTAL_FACTOR * 2 :])
    # A refusal by the shared budget does not spend the origin's own token.
    clock.now += 60.0
    assert guard.wait("https://host0.rogue.example") == 0.0
    assert guard.wait("https://host0.rogue.example") == 0.0
    assert guard.wait("https://host0.rogue.example") > 0
    unlimited = quota(0, clock)
    assert all(unlimited.wait("https://rogue.example") == 0.0 for _ in range(10_000))
    assert unlimited.limited == 0


def test_the_origins_remembered_are_bounded() -> None:
    clock = Clock()
    guard = quota(1, clock, origins_kept=3)
    for i in range(10):
        guard.wait(f"https://host{i}.rogue.example")
    assert len(guard._buckets) == 3
    assert list(guard._buckets) == [f"https://host{i}.rogue.example" for i in (7, 8, 9)]


async def test_the_aggregator_answers_a_flood_from_off_the_roster_429(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    environ = {"BARRI_OFFROSTER_DELIVERIES_PER_MINUTE": "3"}
    async with city(tmp_path, unused_tcp_port_factory, environ) as c:
        a = await c.add_node("a", hood("31", "06"))
        outsider = await c.add_node("c", hood("40", "07"))
        await c.add_to_roster(a)
        process = a.add_process(limit=0)
        assert await a.deliver(a.create(a.group, process), c.inbox) == 202
        await c.settle()
        proposal = a.add_proposal(a.add_resident("author"), process, "Proposta")
        rogue, anna = outsider.add_resident("rogue"), a.add_resident("anna")
        statuses, last = [], None
        async with aiohttp.ClientSession() as session:
            for _ in range(5):
                like = outsider.support(rogue, proposal)  # proved: no HTTP signature needed
                async with session.post(
                    c.inbox, json=like, headers={"Content-Type": "application/activity+json"}
                ) as response:
                    statuses.append(response.status)
                    if response.status == 429:
                        last = (dict(response.headers), await response.json())
        assert statuses == [202, 202, 202, 429, 429]
        assert last is not None
        headers, problem = last
        assert headers["Content-Type"].startswith("application/problem+json")
        assert int(headers["Retry-After"]) >= 1
        assert problem["status"] == 429 and problem["reason"] == "rate_limited"
        assert rogue in problem["detail"]
        # A roster instance is never limited.
        for _ in range(6):
            assert await a.deliver(a.support(anna, proposal), c.inbox) == 202
        await c.settle()
        body = await c.get("/api/v1/instances")
        assert body["unlisted"] == [
            {"origin": outsider.origin, "anomalies": {"not_on_roster": 3}, "refused": {}}
        ]
        async with aiohttp.ClientSession() as session:
            async with session.get(c.config.base_url + "/metrics") as response:
                metrics = await response.text()
        assert "\nbarri_inbox_rate_limited_total 2\n" in metrics
