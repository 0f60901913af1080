"""The JSON API over a loopback city: processes, results, instances; roster removal and
restoration; backfill after downtime reaching the same totals as live delivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from federation.aggregator.app import BACKFILL_TASK
from federation.aggregator.backfill import BackfillError, without_comments
from federation.aggregator.recompute import recompute
from federation.model import ProposalState
from tests.aggregator_env import City, city
from tests.barri_node import InstanceNode, hood


@dataclass
class Two:
    """A city with instances A (31) and B (32) on its roster and A's process known."""

    city: City
    a: InstanceNode
    b: InstanceNode
    process: str
    proposals: list[str]


@asynccontextmanager
async def two(tmp_path: Path, ports: Callable[[], int]) -> AsyncIterator[Two]:
    async with city(tmp_path, ports) as c:
        a = await c.add_node("a", hood("31", "06"))
        b = await c.add_node("b", hood("32", "06"))
        for node in (a, b):
            await c.add_to_roster(node)
        process = a.add_process(name="Superilles")
        assert await a.deliver(a.create(a.group, process), c.inbox) == 202
        author = a.add_resident("author")
        proposals = [a.add_proposal(author, process, f"P{i}") for i in range(2)]
        await c.settle()
        yield Two(c, a, b, process, proposals)


async def vote(t: Two, node: InstanceNode, name: str, proposal: str) -> dict[str, Any]:
    like = node.support(node.add_resident(name), proposal)
    assert await node.deliver(like, t.city.inbox) == 202
    return like


async def counts(t: Two) -> dict[str, int]:
    body = await t.city.results(t.process)
    found: dict[str, int] = body["totals"]["neighbourhoods"]
    return found


async def test_processes_and_results_documents(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with two(tmp_path, unused_tcp_port_factory) as t:
        p0, p1 = t.proposals
        await vote(t, t.a, "anna", p0)
        await vote(t, t.b, "biel", p0)
        await vote(t, t.b, "bea", p1)
        await t.city.settle()
        listing = await t.city.get("/api/v1/processes")
        assert listing["asOf"].endswith("Z")
        [entry] = listing["processes"]
        assert entry["id"] == t.process and entry["name"] == "Superilles"
        assert (entry["owner"], entry["host"]) == (t.a.group, t.a.origin)
        assert (entry["proposals"], entry["supports"], entry["participants"]) == (2, 3, 3)
        async with aiohttp.ClientSession() as session:
            async with session.get(entry["results"]) as response:
                assert response.status == 200
                results = await response.json()
        assert [(p["id"], p["supports"]) for p in results["proposals"]] == [(p0, 2), (p1, 1)]
        assert results["proposals"][0]["byTerritory"] == {"31": 1, "32": 1}
        assert results["totals"]["city"] == {"08019": 3}
        assert results["inputsDigest"].startswith("sha-256=:")


async def test_unknown_process_is_a_problem_document(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        encoded = quote("https://x.example/p/1", safe="")
        url = f"{c.config.base_url}/api/v1/processes/{encoded}/results"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                assert response.status == 404
                assert response.content_type == "application/problem+json"
                assert "https://x.example/p/1" in (await response.json())["detail"]


async def test_official_answers_set_the_state_only_from_the_owning_group(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with two(tmp_path, unused_tcp_port_factory) as t:
        p0 = t.proposals[0]
        await vote(t, t.a, "anna", p0)
        await t.city.settle()
        answer = t.a.answer(p0, ProposalState.ACCEPTED, "Ho farem")
        # B's Group relays it: authentic by A's Group's proof, so it is believed.
        assert await t.b.deliver(t.b.announce(answer), t.city.inbox, sender=t.b.group) == 202
        await t.city.settle()
        states = {p["id"]: p["state"] for p in (await t.city.results(t.process))["proposals"]}
        assert states[p0] == "accepted"
        # Sent directly by the owning Group, the door admits it (the one non-owner Update).
        evaluating = t.a.answer(p0, ProposalState.EVALUATING, "Ho estudiem")
        assert await t.a.deliver(evaluating, t.city.inbox) == 202
        await t.city.settle()
        states = {p["id"]: p["state"] for p in (await t.city.results(t.process))["proposals"]}
        assert states[p0] == "evaluating"
        # An answer "by" B's Group, which does not own the process, changes nothing.
        t.b.documents[p0] = t.a.documents[p0]
        rejected = t.a.answer(p0, ProposalState.REJECTED, "No")
        rejected = {**rejected, "actor": t.b.group, "id": t.b.new_id("answers")}
        rejected["object"] = {**rejected["object"], "audience": t.b.group}
        forged = t.b.keys[t.b.group].prove({k: v for k, v in rejected.items() if k != "proof"})
        relayed = t.b.announce(forged)
        assert await t.b.deliver(relayed, t.city.inbox, sender=t.b.group) == 202
        await t.city.settle()
        states = {p["id"]: p["state"] for p in (await t.city.results(t.process))["proposals"]}
        assert states[p0] == "evaluating"


async def test_instances_report_follows_activity_backlog_and_anomalies(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with two(tmp_path, unused_tcp_port_factory) as t:
        await vote(t, t.a, "anna", t.proposals[0])
        ghost = t.b.add_resident("ghost", territory=False)
        assert await t.b.deliver(t.b.support(ghost, t.proposals[0]), t.city.inbox) == 202
        await t.city.settle()
        body = await t.city.get("/api/v1/instances")
        by_origin = {i["origin"]: i for i in body["instances"]}
        a, b = by_origin[t.a.origin], by_origin[t.b.origin]
        assert {f["state"] for f in a["follows"]} == {"accepted"}
        assert {f["target"] for f in a["follows"]} == {t.a.instance_actor, t.a.group}
        assert (a["territory"], a["district"], a["active"], a["backlog"]) == ("31", "06", True, 0)
        assert a["lastActivity"] is not None and a["anomalies"] == {}
        assert b["anomalies"] == {"not_verified": 1}


async def test_removing_an_instance_drops_its_supports_and_restoring_refetches_nothing(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with two(tmp_path, unused_tcp_port_factory) as t:
        await vote(t, t.a, "anna", t.proposals[0])
        await vote(t, t.b, "biel", t.proposals[0])
        await vote(t, t.b, "bea", t.proposals[1])
        await t.city.settle()
        assert await counts(t) == {"31": 1, "32": 2}
        await t.city.runtime.roster.remove(t.b.origin)
        assert await counts(t) == {"31": 1}
        fetched = {path: n for path, n in t.b.hits.items() if path.startswith("/users/")}
        await t.city.add_to_roster(t.b)
        assert await counts(t) == {"31": 1, "32": 2}
        # Restoring read no resident again: it came from the stored activities and caches.
        assert {p: n for p, n in t.b.hits.items() if p.startswith("/users/")} == fetched
        assert (await recompute(t.city.aggregator)).agree


async def test_backfill_after_downtime_reaches_the_same_totals_and_resumes(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with two(tmp_path, unused_tcp_port_factory) as t:
        p0, p1 = t.proposals
        live = await vote(t, t.a, "anna", p0)
        t.a.publish(t.a.group, t.a.announce(live))  # what it delivered is in its outbox too
        await t.city.settle()
        await t.city.stop()
        # While the aggregator is down: five more supports, one withdrawn, none delivered.
        for name, proposal in (("b1", p0), ("b2", p0), ("b3", p1), ("b4", p1), ("b5", p1)):
            like = t.a.support(t.a.add_resident(name), proposal)
            t.a.publish(t.a.group, t.a.announce(like))
        t.a.publish(t.a.group, t.a.announce(t.a.undo(like)))
        t.b.publish(t.b.instance_actor, t.b.support(t.b.add_resident("bel"), p1))
        await t.city.start()
        runtime = t.city.runtime
        rows = await t.city.aggregator.store.roster()
        a_row = next(r for r in rows if r.origin == t.a.origin)
        t.a.fail_next_pages = 1
        try:
            await runtime.backfill.instance(a_row)
            raise AssertionError("the interrupted backfill should have stopped")
        except BackfillError:
            pass
        cursor = await t.city.aggregator.store.cursor(t.a.origin, t.a.group + "/outbox")
        assert cursor is not None and cursor.next_url is not None  # resumes from here
        # This instance ignores ``exclude=comments`` (its answer names the whole outbox): the
        # whole outbox is read, and no cursor is kept for the part.
        part = without_comments(t.a.group + "/outbox")
        assert await t.city.aggregator.store.cursor(t.a.origin, part) is None
        report = await runtime.backfill.run()
        assert set(report) == {t.a.origin, t.b.origin}
        assert await counts(t) == {"31": 5, "32": 1}
        body = await t.city.results(t.process)
        assert {p["id"]: p["supports"] for p in body["proposals"]} == {p0: 3, p1: 3}
        # A second pass reads nothing new and changes nothing.
        assert await runtime.backfill.run() == {t.a.origin: 0, t.b.origin: 0}
        assert await counts(t) == {"31": 5, "32": 1}
        assert (await recompute(t.city.aggregator)).agree


async def test_backfill_fetches_a_pages_voters_and_proposals_together_and_no_forgers_target(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with two(tmp_path, unused_tcp_port_factory) as t:
        await t.city.stop()
        author = t.a.person("author")
        fresh = [t.a.add_proposal(author, t.process, f"N{i}") for i in range(3)]
        # B's outbox (newest first, two items a page): B forges a support by A's resident for a
        # proposal the aggregator has never seen; then its residents support A's proposals.
        ghost = t.a.add_resident("ghost")
        forged = t.b.keys[t.b.instance_actor].prove(
            {k: v for k, v in t.a.support(ghost, fresh[2]).items() if k != "proof"}
        )
        t.b.publish(t.b.instance_actor, forged)
        for index, name in enumerate(("b1", "b2", "b3", "b4")):
            like = t.b.support(t.b.add_resident(name), fresh[index % 2])
            t.b.publish(t.b.instance_actor, like)
        await t.city.start()
        t.a.overlap = t.b.overlap = 2
        rows = await t.city.aggregator.store.roster()
        await t.city.runtime.backfill.instance(next(r for r in rows if r.origin == t.b.origin))
        # Each page's two residents, and the two proposals they support, were fetched at once.
        assert (t.b.peak, t.a.peak) == (2, 2)
        body = await t.city.results(t.process)
        supports = {p["id"]: p["supports"] for p in body["proposals"]}
        assert (supports[fresh[0]], supports[fresh[1]]) == (2, 2)
        assert fresh[2] not in supports
        # The forgery made the aggregator fetch its victim (to verify it), never its target.
        assert t.a.hits.get(fresh[2].removeprefix(t.a.origin)) is None


async def test_backfill_walks_the_roster_instances_at_once(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with two(tmp_path, unused_tcp_port_factory) as t:
        await t.city.stop()
        for node, name, proposal in ((t.a, "ada", t.proposals[0]), (t.b, "bo", t.proposals[1])):
            node.publish(node.instance_actor, node.support(node.add_resident(name), proposal))
        await t.city.start()
        # Each instance answers its first outbox head only once the other one was asked too:
        # a walk of one instance after the other fails that head (503 after 2 s).
        t.a.meet = t.b.meet = barrier = asyncio.Barrier(2)
        report = await t.city.runtime.backfill.run()
        assert barrier.n_waiting == 0
        assert report == {t.a.origin: 1, t.b.origin: 1}
        assert await counts(t) == {"31": 1, "32": 1}


async def test_a_restart_rebuilds_the_same_totals_from_the_store(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with two(tmp_path, unused_tcp_port_factory) as t:
        await vote(t, t.a, "anna", t.proposals[0])
        await vote(t, t.b, "biel", t.proposals[1])
        await t.city.settle()
        before = await t.city.results(t.process)
        await t.city.stop()
        await t.city.start()
        after = await t.city.results(t.process)
        assert {k: v for k, v in after.items() if k != "asOf"} == {
            k: v for k, v in before.items() if k != "asOf"
        }


async def test_a_start_catches_up_in_the_background(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with two(tmp_path, unused_tcp_port_factory) as t:
        await t.city.stop()
        for name in ("m1", "m2", "m3"):
            like = t.a.support(t.a.add_resident(name), t.proposals[1])
            t.a.publish(t.a.instance_actor, like)
        await t.city.start(backfill_on_start=True)
        assert t.city.server is not None
        await t.city.server.app[BACKFILL_TASK]
        assert await counts(t) == {"31": 3}
        cursor = await t.city.aggregator.store.cursor(t.a.origin, t.a.instance_actor + "/outbox")
        assert cursor is not None and (cursor.items, cursor.total, cursor.passes) == (3, 3, 1)
