"""The Service publishes signed Tallies: on change (debounced), and a final one that never changes.

A stand-in instance (tests/barri_node.py) on the roster owns a process; its instance actor
follows the aggregator's Service, so every Tally reaches it as a proved ``Create``. One test
runs the app's own publisher loop with a tiny debounce; the others drive a
``TallyPublisher`` with a settable clock, so debouncing and closing are shown without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from activitypub.integrity import ProofError, verify_document
from federation.aggregator.publish import TallyPublisher, close_time
from federation.aggregator.recompute import recompute
from federation.store.aggregator_publish import PublishStore, TallyRow
from federation.validation import validate
from federation.vocab.context import document_context, format_datetime
from federation.vocab.tally import inputs_digest, tally_from_ap
from tests.aggregator_env import City, city
from tests.barri_node import NOW, InstanceNode, hood

AS2 = "application/activity+json"


@dataclass
class Scene:
    """A city with instance A on its roster, A's process, two proposals; A follows the Service."""

    city: City
    a: InstanceNode
    process: str
    proposals: list[str]

    async def vote(self, name: str, proposal: str) -> dict[str, Any]:
        like = self.a.support(self.a.add_resident(name), proposal)
        assert await self.a.deliver(like, self.city.inbox) == 202
        await self.city.settle()
        return like

    def tallies_received(self) -> list[dict[str, Any]]:
        """The Tallies delivered to A, each read in its Create's @context (JSON-LD §4.1)."""
        return [
            {"@context": a["@context"], **a["object"]}
            for a in self.a.received
            if a.get("type") == "Create"
        ]


@asynccontextmanager
async def scene(
    tmp_path: Path, ports: Callable[[], int], debounce: str = "3600"
) -> AsyncIterator[Scene]:
    environ = {"BARRI_TALLY_DEBOUNCE_SECONDS": debounce}
    async with city(tmp_path, ports, environ) as c:
        a = await c.add_node("a", hood("31", "06"))
        await c.add_to_roster(a)
        process = a.add_process(name="Pressupostos 2027", end=NOW + timedelta(days=1))
        assert await a.deliver(a.create(a.group, process), c.inbox) == 202
        author = a.add_resident("author")
        proposals = [a.add_proposal(author, process, f"P{i}") for i in range(2)]
        follow = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": a.new_id("follows"),
            "type": "Follow",
            "actor": a.instance_actor,
            "object": c.actor,
        }
        assert await a.deliver(follow, c.inbox) == 202
        await c.settle()
        yield Scene(c, a, process, proposals)


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Accept": AS2}) as response:
            return response.status, await response.json(content_type=None)


async def service_actor(url: str, refresh: bool) -> dict[str, Any]:
    status, body = await get(url)
    assert status == 200
    return dict(body)


def delete_support(node: InstanceNode, like: dict[str, Any]) -> dict[str, Any]:
    """The resident's own proved ``Delete`` of its support (a withdrawal, like an Undo)."""
    actor = like["actor"]
    delete = {
        "@context": document_context(),
        "id": f"{actor}/deletes/{len(node.received)}",
        "type": "Delete",
        "actor": actor,
        "object": like["id"],
        "published": format_datetime(NOW),
        "to": like["to"],
    }
    return node.keys[actor].prove(delete)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def publisher(s: Scene, clock: Clock) -> TallyPublisher:
    """A publisher on a settable clock with a 30 s debounce (the app's own one waits 3600 s)."""
    runtime = s.city.runtime
    return TallyPublisher(
        s.city.aggregator, runtime.federation, runtime.followers, debounce=30, clock=clock
    )


async def test_a_follower_gets_each_changed_tally_signed_by_the_service(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """The app's own loop, with a tiny debounce: a change is published, no change is not."""
    async with scene(tmp_path, unused_tcp_port_factory, debounce="0.05") as s:
        followers = await s.city.aggregator.published.followers()
        assert [f.actor for f in followers] == [s.a.instance_actor]
        assert any(a.get("type") == "Accept" for a in s.a.received)
        await s.vote("anna", s.proposals[0])
        # (A Tally of the proposals alone may come first: the loop runs from the start.)
        tally = await counted(s, 1)
        validate("tally", tally)
        assert (tally["attributedTo"], tally["final"], tally["inputsCount"]) == (
            s.city.actor,
            False,
            1,
        )
        assert await verify_document(tally, service_actor, owner=s.city.actor)
        forged = {**tally, "inputsCount": 2}
        try:
            await verify_document(forged, service_actor, owner=s.city.actor)
            raise AssertionError("an altered Tally verified")
        except ProofError:
            pass
        # Served at its id, exactly as delivered, and listed in the outbox.
        status, served = await get(tally["id"])
        assert status == 200 and served == tally
        assert await verify_document(served, service_actor, owner=s.city.actor)
        status, outbox = await get(s.city.actor + "/outbox")
        assert outbox["totalItems"] == 1
        status, page = await get(outbox["first"])
        assert [item["object"]["id"] for item in page["orderedItems"]] == [tally["id"]]
        # Nothing changed: nothing new to publish.
        assert await s.city.runtime.publisher.publish_changed() == []
        await s.vote("biel", s.proposals[1])
        newest = await counted(s, 2)
        assert s.tallies_received()[-1] == newest
        # The first is superseded: gone (a Tombstone), the outbox lists the newest only.
        status, gone = await get(tally["id"])
        assert status == 410 and (gone["type"], gone["formerType"]) == ("Tombstone", "Tally")
        status, outbox = await get(s.city.actor + "/outbox")
        assert outbox["totalItems"] == 1
        _, page = await get(outbox["first"])
        assert [item["object"]["id"] for item in page["orderedItems"]] == [newest["id"]]
        status, served = await get(newest["id"])
        assert status == 200 and served == newest


async def counted(s: Scene, inputs: int) -> dict[str, Any]:
    """The first Tally delivered to A that counts ``inputs`` supports (waiting for it)."""
    async with asyncio.timeout(30):
        while True:
            found = [t for t in s.tallies_received() if t["inputsCount"] == inputs]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
            await s.city.settle()


async def test_changes_within_the_debounce_go_into_one_tally(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        clock = Clock(NOW.timestamp())
        pub = publisher(s, clock)
        s.city.aggregator.state.listeners.append(pub.changed)
        await s.vote("anna", s.proposals[0])
        clock.now += 10
        await s.vote("biel", s.proposals[0])
        clock.now += 10
        assert await pub.tick() == []  # 20 s after the first change: still waiting
        clock.now += 15
        [row] = await pub.tick()
        document = row.tally()
        assert (document["inputsCount"], document["participants"]) == (2, 2)
        assert [(r["proposal"], r["supports"]) for r in document["results"]] == [
            (s.proposals[0], 2)
        ]
        assert await pub.tick() == []  # no change since
        assert s.city.config.tally_debounce_seconds == 3600


class Counting(TallyPublisher):
    """A publisher that counts its rounds."""

    ticks = 0

    async def tick(self) -> list[TallyRow]:
        self.ticks += 1
        return await super().tick()


@asynccontextmanager
async def looping(pub: TallyPublisher) -> AsyncIterator[None]:
    """``pub``'s own loop running, past its start's round, until the block ends."""
    loop = asyncio.create_task(pub.run())
    try:
        for _ in range(3):
            await asyncio.sleep(0.05)  # the start's own round
        yield
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_changes_within_the_debounce_wake_the_loop_once(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        runtime = s.city.runtime
        pub = Counting(
            s.city.aggregator, runtime.federation, runtime.followers, debounce=30,
            clock=Clock(NOW.timestamp()),
        )  # fmt: skip
        async with looping(pub):
            started = pub.ticks
            for _ in range(20):
                pub.changed()  # a backfill's pages, each counted before the debounce is over
                await asyncio.sleep(0.01)
            assert (started, pub.ticks) == (1, 1)  # the start set the debounce going


async def test_a_held_publisher_publishes_nothing_until_released(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """A rebuild from empty holds the publisher: its partial counts make no Tally (nor close
    a process) until it ends, then what changed is published."""
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        runtime = s.city.runtime
        pub = Counting(s.city.aggregator, runtime.federation, runtime.followers, debounce=0)
        store = PublishStore(s.city.aggregator.db)
        async with looping(pub):
            started = pub.ticks
            async with pub.held():
                for n in range(5):
                    pub.changed()
                    await s.vote(f"r{n}", s.proposals[0])
                    await asyncio.sleep(0.02)
                assert pub.ticks == started  # nothing while held, changes or not
                assert await store.latest_fingerprint(s.process) is None
            # Published once released: waited for by its stored row, not by the round's start
            # (a round counted but cancelled before it stored its Tally made this flaky).
            async with asyncio.timeout(10):
                while await store.latest_fingerprint(s.process) is None:  # noqa: ASYNC110 (a row)
                    await asyncio.sleep(0.02)
            assert pub.ticks > started


async def test_the_final_tally_closes_the_process_and_nothing_changes_it_later(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        clock = Clock(NOW.timestamp())
        pub = publisher(s, clock)
        anna = await s.vote("anna", s.proposals[0])
        biel = await s.vote("biel", s.proposals[1])
        [record] = s.city.aggregator.state.tally.process_records()
        closing = close_time(record)
        assert closing == NOW + timedelta(days=1, minutes=s.city.config.grace_minutes)
        clock.now = closing.timestamp() - 1
        assert await pub.close_due(clock.now) == []
        clock.now = closing.timestamp()
        [final] = await pub.close_due(clock.now)
        document = final.tally()
        tally = tally_from_ap(document)
        assert tally.final and tally.inputs_count == 2
        assert (await s.city.aggregator.log.process(s.process)).closed_at == clock.now  # type: ignore[union-attr]
        closed = await s.city.results(s.process)
        assert closed["final"] is True and closed["supports"] == 2
        # Later: a withdrawal, a deletion of a support, a new support, the instance removed.
        assert await s.a.deliver(s.a.undo(anna), s.city.inbox) == 202
        assert await s.a.deliver(delete_support(s.a, biel), s.city.inbox) == 202
        await s.vote("carla", s.proposals[1])
        await s.city.runtime.roster.remove(s.a.origin)
        await s.city.settle()
        after = await s.city.results(s.process)
        assert after == closed
        assert await pub.close_due(clock.now + 3600) == []
        assert await pub.publish_changed() == []
        assert await s.city.runtime.publisher.publish_changed() == []
        _, outbox = await get(s.city.actor + "/outbox")
        assert outbox["totalItems"] == 1
        counted = await s.city.aggregator.published.counted(s.process)
        assert counted == tuple(sorted([anna["id"], biel["id"]]))
        assert tally.inputs_digest == inputs_digest(counted)


async def test_undo_follow_stops_deliveries_and_unknown_ids_are_404(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        follow = next(a for a in s.a.received if a.get("type") == "Accept")["object"]
        undo = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": s.a.new_id("undos"),
            "type": "Undo",
            "actor": s.a.instance_actor,
            "object": follow,
        }
        assert await s.a.deliver(undo, s.city.inbox) == 202
        await s.city.settle()
        assert await s.city.aggregator.published.followers() == []
        status, followers = await get(s.city.actor + "/followers")
        assert followers["totalItems"] == 0
        status, _ = await get(s.city.config.base_url + "/tallies/nothing")
        assert status == 404


async def test_a_proved_delete_of_a_support_withdraws_it_whatever_the_order(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        anna = await s.vote("anna", s.proposals[0])
        berta = s.a.support(s.a.add_resident("berta"), s.proposals[0])
        assert await s.a.deliver(delete_support(s.a, berta), s.city.inbox) == 202
        assert await s.a.deliver(berta, s.city.inbox) == 202  # the Like after its Delete
        await s.city.settle()
        assert (await s.city.results(s.process))["supports"] == 1
        assert await s.a.deliver(delete_support(s.a, anna), s.city.inbox) == 202
        await s.city.settle()
        assert (await s.city.results(s.process))["supports"] == 0
        comparison = await recompute(s.city.aggregator)
        assert comparison.agree, comparison.differences()
        assert comparison.undos == 2
