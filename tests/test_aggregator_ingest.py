"""Ingest on loopback: what three instances send is counted exactly, or refused and flagged.

Instances A (neighbourhood 31) and B (32), both in district 06, are on the roster; C (40, in
07) is not. A's Group owns a city-wide process allowing two supports per participant. Every
support is a real signed, proved ``Like`` POSTed to the aggregator's shared inbox (or relayed
in a Group's ``Announce``); the totals the API reports are compared with what the test sent.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from federation.aggregator.ingest import Outcome, Provenance, Route
from federation.aggregator.recompute import recompute
from federation.config import load_config
from federation.config_writer import InitOptions, write_instance_config
from federation.instance.app import ACCOUNTS, DELIBERATION
from federation.instance.app import create_app as create_instance_app
from federation.instance.ports import Role
from federation.tally.large import LARGE_AT
from federation.tally.records import normal_origin
from federation.vocab.context import format_datetime
from tests.aggregator_env import City, city
from tests.barri_node import NOW, InstanceNode, hood


@dataclass
class Scene:
    """The city, its three nodes, the process and four proposals."""

    city: City
    a: InstanceNode
    b: InstanceNode
    c: InstanceNode
    process: str
    proposals: list[str]

    async def send(self, node: InstanceNode, activity: dict[str, Any], **kw: Any) -> int:
        status = await node.deliver(activity, self.city.inbox, **kw)
        await self.city.settle()
        return status

    async def results(self) -> Any:
        return await self.city.results(self.process)

    async def supports(self) -> dict[str, int]:
        body = await self.results()
        return {p["id"]: p["supports"] for p in body["proposals"] if p["supports"]}

    async def anomalies(self) -> dict[str, dict[str, int]]:
        body = await self.city.get("/api/v1/instances")
        return {i["origin"]: i["anomalies"] for i in body["instances"]}

    async def refused(self) -> dict[str, dict[str, int]]:
        body = await self.city.get("/api/v1/instances")
        return {i["origin"]: i["refused"] for i in body["instances"]}

    async def agrees(self) -> bool:
        comparison = await recompute(self.city.aggregator)
        assert comparison.agree, comparison.differences()
        return comparison.agree


@asynccontextmanager
async def scene(tmp_path: Path, ports: Callable[[], int]) -> AsyncIterator[Scene]:
    async with city(tmp_path, ports) as c:
        a = await c.add_node("a", hood("31", "06"))
        b = await c.add_node("b", hood("32", "06"))
        outsider = await c.add_node("c", hood("40", "07"))
        for node in (a, b):
            await c.add_to_roster(node)
        process = a.add_process(limit=2)
        # A's Group publishes the process; the aggregator learns it before any support.
        assert await a.deliver(a.create(a.group, process), c.inbox) == 202
        await c.settle()
        author = a.add_resident("author")
        proposals = [a.add_proposal(author, process, f"Proposta {i}") for i in range(3)]
        proposals.append(b.add_proposal(b.add_resident("bauthor"), process, "Proposta B"))
        yield Scene(c, a, b, outsider, process, proposals)


async def test_supports_from_two_instances_are_counted_by_territory(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        p0, p1, _, pb = s.proposals
        anna, berta = s.a.add_resident("anna"), s.a.add_resident("berta")
        carles = s.b.add_resident("carles")
        for node, actor, proposal in (
            (s.a, anna, p0), (s.a, berta, p0), (s.b, carles, p0), (s.b, carles, pb),
            (s.a, anna, p1),
        ):  # fmt: skip
            assert await s.send(node, node.support(actor, proposal)) == 202
        body = await s.results()
        assert body["supports"] == 5 and body["participants"] == 3
        assert body["totals"] == {
            "city": {"08019": 5},
            "districts": {"06": 5},
            "neighbourhoods": {"31": 3, "32": 2},
        }
        ranked = [(p["id"], p["supports"], p["byTerritory"]) for p in body["proposals"]]
        assert ranked[0] == (p0, 3, {"31": 2, "32": 1})
        assert {(pid, n) for pid, n, _ in ranked[1:3]} == {(p1, 1), (pb, 1)}
        first = body["proposals"][0]
        assert (first["name"], first["host"], first["state"]) == (
            "Proposta 0",
            s.a.origin,
            "notAnswered",
        )
        assert await s.anomalies() == {s.a.origin: {}, s.b.origin: {}}
        assert await s.agrees()


async def test_a_support_counts_once_whatever_the_route_and_a_replay_is_flagged(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        anna = s.a.add_resident("anna")
        like = s.a.support(anna, s.proposals[0])
        assert await s.send(s.a, like) == 202
        assert await s.send(s.a, like) == 409  # the same delivery again
        assert await s.send(s.a, s.a.announce(like), sender=s.a.group) == 202
        status = await s.a.deliver(like, s.city.actor + "/inbox")
        assert status == 202  # another inbox: recorded, then deduplicated by id
        await s.city.settle()
        assert await s.supports() == {s.proposals[0]: 1}
        assert (await s.refused())[s.a.origin] == {"replayed": 1}
        rows = await s.city.aggregator.db.execute_fetchall("SELECT COUNT(*) FROM activities")
        assert next(iter(rows))[0] == 1
        assert await s.agrees()


async def test_an_undo_wins_whichever_arrives_first(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        anna, berta = s.a.add_resident("anna"), s.a.add_resident("berta")
        early = s.a.support(anna, s.proposals[0])
        assert await s.send(s.a, s.a.undo(early)) == 202
        assert await s.send(s.a, early) == 202
        late = s.a.support(berta, s.proposals[0])
        assert await s.send(s.a, late) == 202
        assert await s.supports() == {s.proposals[0]: 1}
        assert await s.send(s.a, s.a.undo(late)) == 202
        assert await s.supports() == {}
        assert await s.agrees()


async def test_forged_signer_is_refused_at_the_door_and_flagged_when_relayed(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        anna = s.a.add_resident("anna")
        mallory = s.b.add_resident("mallory")
        # B proves a support "by" A's resident with B's own key, and delivers it as B.
        forged = s.a.support(anna, s.proposals[0])
        forged = s.b.keys[mallory].prove({k: v for k, v in forged.items() if k != "proof"})
        assert await s.send(s.b, forged, sender=mallory) == 401
        assert (await s.refused())[s.b.origin] == {"verification_method_not_owned": 1}
        # Relayed by B's Group, the inner proof is checked on its own and blamed on B.
        assert await s.send(s.b, s.b.announce(forged), sender=s.b.group) == 202
        assert await s.supports() == {}
        anomalies = await s.anomalies()
        assert anomalies[s.b.origin] == {"forged": 1} and anomalies[s.a.origin] == {}
        # The genuine support by the same id still counts when it comes.
        genuine = s.a.keys[anna].prove({k: v for k, v in forged.items() if k != "proof"})
        assert await s.send(s.a, genuine) == 202
        assert await s.supports() == {s.proposals[0]: 1}
        assert await s.agrees()


async def test_stripped_or_altered_proofs_never_count(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        anna, berta = s.a.add_resident("anna"), s.a.add_resident("berta")
        stripped = s.a.support(anna, s.proposals[0])
        del stripped["proof"]
        # HTTP-signed by its own actor, so the door lets it in; its missing proof is flagged.
        assert await s.send(s.a, stripped) == 202
        altered = s.a.support(berta, s.proposals[0])
        altered["object"] = s.proposals[1]
        assert await s.send(s.a, altered) == 401
        assert await s.supports() == {}
        assert (await s.anomalies())[s.a.origin] == {"forged": 1}
        assert (await s.refused())[s.a.origin] == {"proof_signature_invalid": 1}
        # Relayed by another instance, an unverifiable copy is blamed on the relay, not on A.
        carla = s.a.add_resident("carla")
        junk = s.a.support(carla, s.proposals[0])
        del junk["proof"]
        assert await s.send(s.b, s.b.announce(junk), sender=s.b.group) == 202
        assert (await s.anomalies())[s.a.origin] == {"forged": 1}
        assert (await s.refused())[s.b.origin] == {"unverifiable_copy": 1}
        assert await s.supports() == {}
        assert await s.agrees()


async def test_outsiders_unverified_over_limit_and_out_of_phase_are_flagged(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        p0, p1, p2, _ = s.proposals
        outsider = s.c.add_resident("oriol")
        assert await s.send(s.c, s.c.support(outsider, p0)) == 202
        ghost = s.a.add_resident("ghost", territory=False)
        assert await s.send(s.a, s.a.support(ghost, p0)) == 202
        anna = s.a.add_resident("anna")
        for hours, proposal in ((3, p0), (2, p1), (1, p2)):
            like = s.a.support(anna, proposal, published=NOW - timedelta(hours=hours))
            assert await s.send(s.a, like) == 202
        berta = s.a.add_resident("berta")
        early = s.a.support(berta, p2, published=NOW - timedelta(days=3))
        assert await s.send(s.a, early) == 202
        # The earliest two of anna's count; the third is over the limit.
        assert await s.supports() == {p0: 1, p1: 1}
        assert (await s.anomalies())[s.a.origin] == {
            "not_verified": 1,
            "out_of_phase": 1,
            "over_limit": 1,
        }
        body = await s.city.get("/api/v1/instances")
        assert body["unlisted"] == [
            {"origin": s.c.origin, "anomalies": {"not_on_roster": 1}, "refused": {}}
        ]
        assert await s.agrees()


async def test_a_flood_of_likes_by_one_actor_is_stored_flagged_and_counted_once(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """Any server with a key can send many likes by one actor; each one is stored and flagged,
    and the group they share is counted one like at a time (tests/test_tally_flood.py)."""
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        p0, p1, p2, _ = s.proposals
        flood = LARGE_AT + 16
        rogue = s.c.add_resident("rogue")
        mallory = s.a.add_resident("mallory")
        for i in range(flood):
            for node, actor in ((s.c, rogue), (s.a, mallory)):
                proposal = (p0, p1, p2)[i % 3]
                published = NOW - timedelta(minutes=flood - i)
                status = await node.deliver(
                    node.support(actor, proposal, published=published), s.city.inbox
                )
                assert status == 202
        await s.city.settle()
        # Mallory's earliest support of each proposal wins it; two of those count (limit 2).
        assert await s.supports() == {p0: 1, p1: 1}
        assert (await s.anomalies())[s.a.origin] == {"duplicate": flood - 3, "over_limit": 1}
        body = await s.city.get("/api/v1/instances")
        assert body["unlisted"] == [
            {"origin": s.c.origin, "anomalies": {"not_on_roster": flood}, "refused": {}}
        ]
        assert await s.agrees()


async def test_a_resident_verified_later_counts_after_its_update(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        late = s.a.add_resident("late", territory=False)
        assert await s.send(s.a, s.a.support(late, s.proposals[0])) == 202
        assert await s.supports() == {}
        assert (await s.anomalies())[s.a.origin] == {"not_verified": 1}
        s.a.residents[late] = s.a.territory  # the association verifies the resident
        assert await s.send(s.a, s.a.update_actor(late)) == 202
        assert await s.supports() == {s.proposals[0]: 1}
        assert (await s.anomalies())[s.a.origin] == {}
        # Another actor's "update" of that resident is not a reason to refetch it.
        hits = s.a.hits.get("/users/late", 0)
        forged = {**s.a.update_actor(late), "actor": s.a.group, "id": s.a.new_id("updates")}
        forged = s.a.keys[s.a.group].prove({k: v for k, v in forged.items() if k != "proof"})
        await s.send(s.a, forged)
        assert s.a.hits.get("/users/late", 0) == hits
        assert await s.agrees()


async def test_ingest_outcomes_for_relayed_and_foreign_votes(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        ingest = s.city.runtime.ingest
        anna = s.a.add_resident("anna")
        like = s.a.support(anna, s.proposals[0])
        relayed = Provenance(Route.ANNOUNCE, s.b.group, None)
        assert await ingest.accept(like, relayed) is Outcome.STORED
        assert await ingest.accept(like, relayed) is Outcome.DUPLICATE
        vote = {**like, "to": ["https://www.w3.org/ns/activitystreams#Public"]}
        assert await ingest.accept(vote, relayed) is Outcome.IGNORED  # a comment vote
        broken = {**like, "id": "https://elsewhere.example/likes/1"}
        assert await ingest.accept(broken, Provenance.inbox(s.b.group)) is Outcome.INVALID
        refusals = await s.city.aggregator.store.refusals(s.b.origin)
        assert [r.reason for r in refusals] == ["invalid_support"]
        await s.city.aggregator.state.sync()
        assert await s.supports() == {s.proposals[0]: 1}


async def test_a_shuffled_duplicated_relayed_stream_gives_the_ground_truth(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """Every activity twice, in a random order, directly and through Announces, with forged
    copies mixed in: the totals equal what the test itself counts, and recompute agrees."""
    rng = random.Random(20260301)
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        # No per-participant limit here, so the ground truth is a plain set.
        process = s.a.add_process(limit=0, name="Sense límit")
        assert await s.send(s.a, s.a.create(s.a.group, process)) == 202
        author = s.a.add_resident("author2")
        proposals = [s.a.add_proposal(author, process, f"Q{i}") for i in range(4)]
        stream: list[tuple[dict[str, Any], Provenance]] = []
        truth: dict[str, dict[str, int]] = {p: {} for p in proposals}
        forged_ids: set[str] = set()
        for index in range(24):
            node = (s.a, s.b, s.c)[index % 3]
            actor = node.add_resident(f"r{index}", territory=index % 7 != 0)
            for proposal in rng.sample(proposals, rng.randint(1, 3)):
                like = node.support(actor, proposal)
                copies = [like, node.announce(like)]
                withdrawn = rng.random() < 0.25
                if withdrawn:
                    copies.append(node.undo(like))
                if node is s.a and rng.random() < 0.3:
                    # B's key proves a copy of A's support: never counts, never hides it.
                    unproved = {k: v for k, v in like.items() if k != "proof"}
                    copies.append(s.b.keys[s.b.group].prove(unproved))
                    forged_ids.add(like["id"])
                for copy in copies:
                    via = node.group if copy.get("type") == "Announce" else actor
                    stream += [(copy, Provenance.inbox(via))] * 2
                counted = node is not s.c and index % 7 != 0 and not withdrawn
                if counted:
                    code = node.territory.code
                    truth[proposal][code] = truth[proposal].get(code, 0) + 1
        rng.shuffle(stream)
        stream.reverse()
        ingest = s.city.runtime.ingest
        for activity, provenance in stream:
            await ingest.accept(activity, provenance)
        results = await s.city.results(process)
        got = {p["id"]: p["byTerritory"] for p in results["proposals"]}
        assert got == truth
        assert results["supports"] == sum(sum(v.values()) for v in truth.values())
        flagged = (await s.city.aggregator.state.result()).anomalies
        assert {a.like_id for a in flagged if a.rule.value == "forged"} == forged_ids
        assert {a.instance for a in flagged if a.rule.value == "forged"} == {s.b.origin}
        assert await s.agrees()
        await s.city.stop()
        await s.city.start()
        assert {
            p["id"]: p["byTerritory"] for p in (await s.city.results(process))["proposals"]
        } == truth


def city_process_draft() -> dict[str, Any]:
    """A city-wide process in its draft JSON form: one phase open for proposals and supports."""
    phase = {
        "type": "Phase", "name": "Propostes i suports",
        "startTime": format_datetime(NOW - timedelta(days=1)),
        "endTime": format_datetime(NOW + timedelta(days=30)),
        "allowsProposals": True, "allowsSupports": True,
        "allowsComments": True, "allowsDebates": True,
    }  # fmt: skip
    return {
        "type": ["Page", "ParticipatoryProcess"],
        "name": "Pressupostos 2027",
        "phases": [phase],
        "supportRules": {"type": "SupportRules", "supportsPerParticipant": 3},
        "eligibleTerritories": [
            {"type": "Territory", "territoryKind": "city", "territoryCode": "08019"}
        ],
    }


async def test_a_real_barri_instance_reports_to_the_aggregator(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """The instance domain's own app (not a stand-in): follow, supports, withdrawal, backfill."""
    async with city(tmp_path, unused_tcp_port_factory) as c:
        port = unused_tcp_port_factory()
        options = InitOptions(
            base_url=f"http://127.0.0.1:{port}", name="AV Vila de Gràcia", secret="s" * 43,
            group="assoc", territory="31", district="06", report_to=(c.actor,),
            allow_loopback=True, listen=f"127.0.0.1:{port}",
        )  # fmt: skip
        config = load_config(write_instance_config(tmp_path / "gracia", options), environ={})
        app = create_instance_app(config)
        server = TestServer(app, host="127.0.0.1", port=config.listen_port)
        await server.start_server()
        c.stack.push_async_callback(server.close)
        c.others.append(server)
        accounts, deliberation = app[ACCOUNTS], app[DELIBERATION]
        admin = await accounts.create_user("admin", "correct horse battery", Role.ADMIN)
        process = await deliberation.create_process(city_process_draft(), by=admin)
        people = {}
        for name in ("ana", "pau", "joan"):
            await accounts.create_user(name, "correct horse battery", Role.RESIDENT)
            people[name] = await accounts.verify(name, "31", by="test")
        proposal = await deliberation.create_proposal(
            people["ana"], process.id, name="Més arbres", body_markdown="Ombra."
        )
        # The instance's NodeInfo does not name its Group (yet): the operator gives it.
        group = f"{config.base_url}/groups/{config.group}"
        await c.runtime.roster.add(config.base_url, "31", "06", group=group)
        await c.settle()
        follows = await c.aggregator.store.follows(normal_origin(config.base_url))
        assert {f.state for f in follows} == {"accepted"}
        for name in ("ana", "pau", "joan"):
            await deliberation.support(people[name], proposal.id)
        await c.settle()
        await deliberation.withdraw_support(people["joan"], proposal.id)
        await c.settle()
        results = await c.results(process.id)
        assert [(p["id"], p["supports"], p["byTerritory"]) for p in results["proposals"]] == [
            (proposal.id, 2, {"31": 2})
        ]
        assert results["proposals"][0]["name"] == "Més arbres"
        report = await c.runtime.backfill.run()
        assert isinstance(report[config.base_url], int), report
        [entry] = (await c.get("/api/v1/instances"))["instances"]
        assert (entry["anomalies"], entry["refused"], entry["backlog"]) == ({}, {}, 0)
        assert (await c.results(process.id))["supports"] == 2
        assert (await recompute(c.aggregator)).agree


async def test_a_voter_gone_from_the_actor_cache_is_read_back_from_the_store_not_refetched(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """A city has more voters than the actor cache holds: the door's fetch leaves the actor's
    document and residency in the store, where verifying later proofs finds them."""
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        p0, p1, _, _ = s.proposals
        anna = s.a.add_resident("anna")
        path = anna.removeprefix(s.a.origin)
        assert await s.send(s.a, s.a.support(anna, p0)) == 202
        assert s.a.hits[path] == 1
        cache = s.city.runtime.federation.actors
        assert cache is not None
        cache.forget(anna)  # as a busy city's least recent voters are
        assert await s.send(s.a, s.a.support(anna, p1)) == 202
        assert s.a.hits[path] == 1  # both signatures and both proofs checked, one fetch
        assert await s.supports() == {p0: 1, p1: 1}
        stored = await s.city.aggregator.log.resident(anna)
        assert stored is not None and "@context" not in json.loads(stored.document)
        assert "assertionMethod" in json.loads(stored.document)
        # A refresh (an Update of the actor) still fetches it, and the store follows.
        s.a.residents[anna] = None
        assert await s.send(s.a, s.a.update_actor(anna)) == 202
        assert s.a.hits[path] == 2
        assert await s.supports() == {}
        assert await s.agrees()
