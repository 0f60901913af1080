"""Three real instances and a Mastodon-like server federating over loopback (issue 4).

The city instance (C) owns a city-wide process; two neighbourhood instances (A: la Vila de
Gràcia, B: el Raval) follow its Group; a tests.apnode node (M) plays Mastodon (alice replies),
a follower of the city's Group (bob) and the aggregator (its instance actor, in every
instance's ``report_to``). Everything goes through HTTP: signed deliveries, the inbox pipeline,
the handlers, the Deliberation service, the Publisher and the read side.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from activitypub import as2
from activitypub.runtime import FEDERATION
from activitypub.storage import InboxRecord
from federation.config import InstanceConfig
from federation.instance.app import ACCOUNTS, ACTORS, DB, DELIBERATION, create_app
from federation.instance.deliberation import Deliberation
from federation.instance.handlers import INBOUND, InboundHandlers
from federation.instance.ports import Role, User
from federation.model import Alignment, LangText, Process, ProposalState
from federation.store.outbox import OutboxStore
from federation.validation import validate
from tests.test_handlers import ResidentNode, draft, now, resident_node, stamp
from tests.test_readside import get, instance_config, signed_get

PASSWORD = "correct horse battery"
OBSERVED = ("Create", "Like", "Dislike", "Undo", "Update", "Delete", "Follow", "Accept",
            "Reject", "Announce")  # fmt: skip


class Observer:
    """Every inbox row a server handled, in order; registered after the real handlers."""

    def __init__(self, app: web.Application) -> None:
        self.records: list[InboxRecord] = []
        self._changed = asyncio.Condition()
        app[FEDERATION].dispatcher.on(*OBSERVED)(self._seen)

    async def _seen(self, record: InboxRecord) -> None:
        async with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    async def wait(self, predicate: Callable[[Mapping[str, Any]], bool]) -> InboxRecord:
        """The first handled activity matching ``predicate`` (waiting for it if needed)."""

        def found() -> InboxRecord | None:
            return next((r for r in self.records if predicate(r.activity)), None)

        async with asyncio.timeout(60), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
        record = found()
        assert record is not None
        return record


def of_type(kind: str, **fields: str) -> Callable[[Mapping[str, Any]], bool]:
    """Matches an activity of ``kind`` whose fields (or its object's id) have these values."""

    def match(activity: Mapping[str, Any]) -> bool:
        if kind not in as2.types(activity):
            return False
        values = {
            "actor": as2.first_id(activity, "actor"),
            "object": as2.first_id(activity, "object"),
            "inner": as2.first_id(as2.embedded(activity, "object") or {}, "object"),
        }
        return all(values[key] == value for key, value in fields.items())

    return match


@dataclass
class Instance:
    """One running Barri instance as the test drives it."""

    server: TestServer
    config: InstanceConfig
    observer: Observer

    @property
    def app(self) -> web.Application:
        return self.server.app

    @property
    def deliberation(self) -> Deliberation:
        return self.app[DELIBERATION]

    @property
    def handlers(self) -> InboundHandlers:
        return self.app[INBOUND]

    @property
    def group(self) -> str:
        return f"{self.config.base_url}/groups/assoc"

    async def resident(self, name: str, code: str | None, role: Role = Role.RESIDENT) -> User:
        await self.app[ACCOUNTS].create_user(name, PASSWORD, role)
        if code is None:
            return await self.app[ACCOUNTS].get(name)
        return await self.app[ACCOUNTS].verify(name, code, by="test")

    def actor(self, name: str) -> str:
        return f"{self.config.base_url}/users/{name}"


async def start(stack: AsyncExitStack, config: InstanceConfig) -> Instance:
    app = create_app(config)
    server = TestServer(app, host="127.0.0.1", port=config.listen_port)
    await server.start_server()
    stack.push_async_callback(server.close)
    return Instance(server, config, Observer(app))


@dataclass
class City:
    """The whole federation, set up: C's process followed by A and B, bob following C."""

    city: Instance
    gracia: Instance
    raval: Instance
    mastodon: ResidentNode
    mastodon_seen: Observer
    process: Process
    draft: dict[str, Any]


def process_draft() -> dict[str, Any]:
    """A city-wide process whose one current phase allows proposals, supports and comments."""
    doc = draft(supports_open=False, eligible=("city", "08019"))
    doc["phases"] = [doc["phases"][0]]
    doc["phases"][0] |= {"allowsSupports": True, "endTime": stamp(now() + timedelta(days=30))}
    return doc


@pytest.fixture
async def city(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[City]:
    async with (
        AsyncExitStack() as stack,
        resident_node(tmp_path, unused_tcp_port_factory()) as mastodon,
    ):
        mastodon.territories.clear()  # Mastodon users carry no verifiedResidentOf
        assert mastodon.server is not None
        seen = Observer(mastodon.server.app)
        aggregator = (mastodon.actor_id("instance"),)
        configs = [
            instance_config(tmp_path, unused_tcp_port_factory(), name="Barcelona",
                            territory="08019", kind="city", report_to=aggregator),
            instance_config(tmp_path, unused_tcp_port_factory(), name="AV Vila de Gràcia",
                            territory="31", district="06", report_to=aggregator),
            instance_config(tmp_path, unused_tcp_port_factory(), name="AV del Raval",
                            territory="01", district="01", report_to=aggregator),
        ]  # fmt: skip
        c, a, b = [await start(stack, config) for config in configs]
        admin = await c.resident("admin", None, Role.ADMIN)
        original = process_draft()
        process = await c.deliberation.create_process(original, by=admin)
        for neighbourhood in (a, b):
            cached = await neighbourhood.deliberation.follow_remote_process(process.id)
            assert cached == process
            await c.observer.wait(of_type("Follow", actor=neighbourhood.group))
            await neighbourhood.observer.wait(of_type("Accept", actor=c.group))
            follow = await OutboxStore(neighbourhood.app[DB]).find_follow(
                neighbourhood.group, c.group
            )
            assert follow is not None and follow.state == "accepted"
        yield City(c, a, b, mastodon, seen, process, original)


async def follow_from_mastodon(city: City) -> dict[str, Any]:
    """bob on the Mastodon-like server follows the city's Group; returns the Follow."""
    m, c = city.mastodon, city.city
    follow = {"@context": "https://www.w3.org/ns/activitystreams", "id": m.new_id(),
              "type": "Follow", "actor": m.actor_id("bob"), "object": c.group}  # fmt: skip
    assert m.server is not None
    await m.server.app[FEDERATION].deliver(follow, [f"{c.config.base_url}/inbox"])
    async with asyncio.timeout(60):
        accept = await m.accepts.get()
    assert accept.activity["object"]["id"] == follow["id"] and accept.actor == c.group
    return follow


async def test_a_neighbourhood_proposal_in_the_city_process(city: City) -> None:
    c, a, b = city.city, city.gracia, city.raval
    await follow_from_mastodon(city)
    ana = await a.resident("ana", "31")
    pau = await a.resident("pau", "31")
    rita = await b.resident("rita", "01")

    # A resident of A proposes into the city's process, on her own instance.
    proposal = await a.deliberation.create_proposal(
        ana, city.process.id, name="Més arbres al carrer Verdi", body_markdown="**Ombra**, sisplau."
    )
    create = await c.observer.wait(of_type("Create", actor=a.actor("ana")))
    assert create.auth == "proof"
    stored = await c.deliberation.get_proposal(proposal.id)
    assert stored is not None and (stored.author, stored.audience) == (a.actor("ana"), c.group)

    # The city's Group Announces it (FEP-1b12): bob on Mastodon and the Raval instance get it.
    announce = await city.mastodon_seen.wait(of_type("Announce", actor=c.group))
    assert announce.activity["object"]["id"] == create.activity_id
    assert "proof" in announce.activity["object"]  # relayed unchanged, with ana's proof
    await b.observer.wait(of_type("Announce", actor=c.group))
    relayed = await b.deliberation.get_proposal(proposal.id)
    assert relayed is not None and relayed.name.default == "Més arbres al carrer Verdi"

    # Residents of A and B support it; the city counts both, the aggregator receives both.
    await a.deliberation.support(pau, proposal.id)
    await b.deliberation.support(rita, proposal.id)
    for who in (a.actor("pau"), b.actor("rita")):
        await c.observer.wait(of_type("Like", actor=who))
        await city.mastodon_seen.wait(of_type("Like", actor=who))
    assert await c.deliberation.support_count(proposal.id) == 2
    status, collection, _ = await get(city.process.id + "/proposals")
    assert isinstance(collection, dict) and (status, collection["totalItems"]) == (200, 1)
    status, page, _ = await get(collection["first"])
    assert isinstance(page, dict)
    [item] = page["orderedItems"]
    assert (item["id"], item["supportCount"]) == (proposal.id, 2)
    validate("proposal", {"@context": page["@context"], **item})
    # pau changes his mind: the withdrawal reaches the city and the count drops.
    await a.deliberation.withdraw_support(pau, proposal.id)
    await c.observer.wait(of_type("Undo", actor=a.actor("pau")))
    assert await c.deliberation.support_count(proposal.id) == 1
    status, page, _ = await get(collection["first"])
    assert isinstance(page, dict) and page["orderedItems"][0]["supportCount"] == 1
    # Supports are never Announced (DESIGN.md §6): bob saw no relayed Like.
    relayed_types = [
        as2.types(r.activity["object"])[0]
        for r in city.mastodon_seen.records
        if "Announce" in as2.types(r.activity) and isinstance(r.activity["object"], dict)
    ]
    assert "Like" not in relayed_types and "Create" in relayed_types
    no_refusals(c, a, b)


async def test_comments_thread_across_instances_and_mastodon_replies(city: City) -> None:
    c, a, b = city.city, city.gracia, city.raval
    ana = await a.resident("ana", "31")
    rita = await b.resident("rita", "01")
    proposal = await a.deliberation.create_proposal(
        ana, city.process.id, name="Un banc a la plaça", body_markdown="Per seure."
    )
    await b.observer.wait(of_type("Announce", actor=c.group))
    assert await b.deliberation.get_proposal(proposal.id) is not None

    # rita (B) comments; ana (A) answers her; both land on the city and on A.
    first = await b.deliberation.comment(
        rita, proposal.id, body_markdown="A favor!", alignment=Alignment.IN_FAVOR
    )
    await a.observer.wait(of_type("Create", actor=b.actor("rita")))
    reply = await a.deliberation.comment(ana, first.id, body_markdown="Gràcies, Rita.")
    await c.observer.wait(of_type("Create", actor=a.actor("ana"), object=reply.id))
    for instance in (c, a):
        thread = await instance.deliberation.thread(proposal.id)
        assert [(e.comment.id, e.comment.depth, e.external) for e in thread] == [
            (first.id, 1, False), (reply.id, 2, False),
        ], instance.config.name  # fmt: skip
        assert thread[0].comment.alignment is Alignment.IN_FAVOR

    # A Mastodon user replies to the proposal: an external comment on the author's instance.
    m = city.mastodon
    note_id = m.new_id("statuses")
    note = {"id": note_id, "type": "Note", "attributedTo": m.actor_id("alice"),
            "inReplyTo": proposal.id, "published": stamp(),
            "content": '<p>Molt d\'acord! <script>alert(1)</script></p>',
            "to": [as2.PUBLIC], "cc": [a.actor("ana")]}  # fmt: skip
    create = {"@context": "https://www.w3.org/ns/activitystreams", "id": note_id + "/activity",
              "type": "Create", "actor": m.actor_id("alice"), "object": note,
              "to": [as2.PUBLIC], "cc": [a.actor("ana")]}  # fmt: skip
    assert m.server is not None
    await m.server.app[FEDERATION].deliver(create, [f"{a.config.base_url}/inbox"])
    received = await a.observer.wait(of_type("Create", actor=m.actor_id("alice")))
    assert received.auth == "httpsig"
    thread = await a.deliberation.thread(proposal.id)
    external = [e for e in thread if e.comment.id == note_id]
    assert len(external) == 1 and external[0].external
    assert "<script>" not in external[0].comment.content_html
    assert external[0].comment.alignment is Alignment.NEUTRAL
    # The author's instance serves the whole conversation (FEP-7888 context collection).
    status, context, _ = await get(proposal.id + "/context?page=true")
    assert isinstance(context, dict) and status == 200
    assert [item["id"] for item in context["orderedItems"]] == [first.id, reply.id, note_id]
    no_refusals(c, a, b)


async def test_supports_collection_is_private_across_instances(city: City) -> None:
    c, a = city.city, city.gracia
    ana = await a.resident("ana", "31")
    pau = await a.resident("pau", "31")
    proposal = await a.deliberation.create_proposal(
        ana, city.process.id, name="Fonts", body_markdown="Aigua."
    )
    support = await a.deliberation.support(pau, proposal.id)
    await c.observer.wait(of_type("Like", actor=a.actor("pau")))
    url = proposal.id + "/supports"
    status, problem, content_type = await get(url)
    assert isinstance(problem, dict)
    assert (status, content_type, problem["reason"]) == (
        403, "application/problem+json", "supports_private",
    )  # fmt: skip
    # The aggregator (listed in report_to) lists the Like ids with a signed GET.
    status, collection = await signed_get(url, city.mastodon.keys["instance"])
    assert (status, collection["totalItems"]) == (200, 1)
    status, page = await signed_get(collection["first"], city.mastodon.keys["instance"])
    assert page["orderedItems"] == [support.id]
    # So does the owning Group's instance (the city's instance actor signs its fetches).
    fetcher = c.app[FEDERATION].fetcher
    assert fetcher is not None
    fetched = await fetcher.get_json(url, accept="application/activity+json", signed=True)
    assert fetched.document["totalItems"] == 1
    # A Mastodon user does not.
    status, refused = await signed_get(url, city.mastodon.keys["alice"])
    assert (status, refused["reason"]) == (403, "supports_private")

    # The city counts supports of the Gràcia resident's proposal too: a Raval resident's as well.
    b = city.raval
    await b.observer.wait(of_type("Announce", actor=c.group))
    rita = await b.resident("rita", "01")
    rita_support = await b.deliberation.support(rita, proposal.id)
    await c.observer.wait(of_type("Like", actor=b.actor("rita")))
    assert await c.deliberation.support_count(proposal.id) == 2
    # {process}/supports at the owner lists every support it counts, received ones included.
    process_url = city.process.id + "/supports"
    status, problem, _ = await get(process_url)
    assert isinstance(problem, dict) and (status, problem["reason"]) == (403, "supports_private")
    status, collection = await signed_get(process_url, city.mastodon.keys["instance"])
    assert (status, collection["totalItems"]) == (200, 2)
    status, page = await signed_get(collection["first"], city.mastodon.keys["instance"])
    assert page["orderedItems"] == [rita_support.id, support.id]
    # The owner's own server actor may read it; another instance's server actor may not.
    fetched = await fetcher.get_json(process_url, accept="application/activity+json", signed=True)
    assert fetched.document["totalItems"] == 2
    gracia_server = await a.app[ACTORS].keys_for(a.app[ACTORS].application_id)
    status, refused = await signed_get(process_url, gracia_server)
    assert (status, refused["reason"]) == (403, "supports_private")

    # {process}/support-log: the signed Likes, then the Undo of one, newest first, with proofs.
    log_url = city.process.id + "/support-log"
    status, problem, _ = await get(log_url)
    assert isinstance(problem, dict) and (status, problem["reason"]) == (403, "supports_private")
    await b.deliberation.withdraw_support(rita, proposal.id)
    await c.observer.wait(of_type("Undo", actor=b.actor("rita")))
    status, log = await signed_get(log_url, city.mastodon.keys["instance"])
    assert (status, log["totalItems"]) == (200, 3)
    status, page = await signed_get(log["first"], city.mastodon.keys["instance"])
    items = page["orderedItems"]
    assert [i["type"] for i in items] == ["Undo", "Like", "Like"]
    assert [i["id"] for i in items[1:]] == [rita_support.id, support.id]
    assert as2.id_of(items[0]["object"]) == rita_support.id
    assert all(i["proof"]["verificationMethod"].startswith(i["actor"]) for i in items)
    status, refused = await signed_get(log_url, gracia_server)
    assert (status, refused["reason"]) == (403, "supports_private")
    # /support-log on rita's own instance: what its residents gave in the city's process,
    # for the aggregator only (the author's word, when the owner's log lacks a support).
    own_log = b.config.base_url + "/support-log"
    status, problem, _ = await get(own_log)
    assert isinstance(problem, dict) and (status, problem["reason"]) == (403, "supports_private")
    status, refused = await signed_get(own_log, gracia_server)
    assert (status, refused["reason"]) == (403, "supports_private")
    status, log = await signed_get(own_log, city.mastodon.keys["instance"])
    assert (status, log["totalItems"]) == (200, 2)
    status, page = await signed_get(log["first"], city.mastodon.keys["instance"])
    assert [(i["type"], i["actor"]) for i in page["orderedItems"]] == [
        ("Undo", b.actor("rita")), ("Like", b.actor("rita")),
    ]  # fmt: skip
    assert page["orderedItems"][1] == items[1]  # the same signed Like as the owner's
    no_refusals(c, a, b)


def announced(kind: str, group: str, object_id: str) -> Callable[[Mapping[str, Any]], bool]:
    """Matches ``group``'s Announce of a ``kind`` activity about ``object_id``."""

    def match(activity: Mapping[str, Any]) -> bool:
        inner = as2.embedded(activity, "object") or {}
        return (
            as2.has_type(activity, "Announce")
            and as2.first_id(activity, "actor") == group
            and as2.has_type(inner, kind)
            and as2.first_id(inner, "object") == object_id
        )

    return match


async def test_a_deleted_proposal_is_gone_from_the_city_and_the_other_neighbourhood(
    city: City,
) -> None:
    c, a, b = city.city, city.gracia, city.raval
    ana = await a.resident("ana", "31")
    proposal = await a.deliberation.create_proposal(
        ana, city.process.id, name="Una font", body_markdown="Aigua."
    )
    await b.observer.wait(of_type("Announce", actor=c.group))
    assert await b.deliberation.get_proposal(proposal.id) is not None
    # ana deletes it on her instance: the Delete reaches the city, whose Group relays it.
    await a.deliberation.delete_proposal(ana, proposal.id)
    delete = await c.observer.wait(of_type("Delete", actor=a.actor("ana")))
    assert delete.activity["object"]["id"] == proposal.id
    await b.observer.wait(announced("Delete", c.group, proposal.id))
    for instance in (a, c, b):
        assert await instance.deliberation.get_proposal(proposal.id) is None, instance.config.name
        tombstone = await instance.deliberation.domain.get_tombstone(proposal.id)
        assert tombstone is not None and tombstone.former_type == "Proposal"
    status, _, _ = await get(proposal.id)
    assert status == 410
    status, page, _ = await get(city.process.id + "/proposals?page=true")
    assert isinstance(page, dict) and page["orderedItems"] == []
    no_refusals(c, a, b)


async def test_the_city_keeps_a_proposal_it_counts_supports_for(city: City) -> None:
    """Gràcia knows none of the supports the city counts: its Delete is refused there."""
    c, a, b = city.city, city.gracia, city.raval
    ana = await a.resident("ana", "31")
    rita = await b.resident("rita", "01")
    proposal = await a.deliberation.create_proposal(
        ana, city.process.id, name="Una font", body_markdown="Aigua."
    )
    await b.observer.wait(of_type("Announce", actor=c.group))
    await b.deliberation.support(rita, proposal.id)
    await c.observer.wait(of_type("Like", actor=b.actor("rita")))
    assert await a.deliberation.support_count(proposal.id) == 0  # Gràcia cannot know
    await a.deliberation.delete_proposal(ana, proposal.id)
    await c.observer.wait(of_type("Delete", actor=a.actor("ana")))
    kept = await c.deliberation.get_proposal(proposal.id)
    assert kept is not None and kept.support_count == 1
    assert [(r.actor, r.rule) for r in c.handlers.refusals] == [
        (a.actor("ana"), "proposal_has_supports")
    ]
    assert await c.deliberation.domain.get_tombstone(proposal.id) is None


async def test_the_city_groups_followers_and_outbox(city: City) -> None:
    c = city.city
    await follow_from_mastodon(city)
    followers = await OutboxStore(c.app[DB]).followers(c.group)
    assert {f.follower for f in followers} == {
        city.gracia.group, city.raval.group, city.mastodon.actor_id("bob"),
    }  # fmt: skip
    status, collection, _ = await get(c.group + "/followers")
    assert isinstance(collection, dict) and status == 200
    if collection["totalItems"] == 0:
        pytest.skip("app.py still serves the empty collections (collection_handler not wired)")
    assert collection["totalItems"] == 3
    status, outbox, _ = await get(c.group + "/outbox?page=true")
    assert isinstance(outbox, dict)
    kinds = [item["type"] for item in outbox["orderedItems"]]
    assert "Create" in kinds and "Accept" not in kinds  # Accepts are not public


async def test_the_city_renames_its_process_and_followers_refresh(city: City) -> None:
    c = city.city
    admin = await c.app[ACCOUNTS].get("admin")
    renamed = dict(city.draft, name="Pressupostos participatius de Barcelona")
    await c.deliberation.update_process(city.process.id, renamed, by=admin)
    for neighbourhood in (city.gracia, city.raval):
        await neighbourhood.observer.wait(of_type("Update", actor=c.group))
        cached = await neighbourhood.deliberation.get_process(city.process.id)
        assert cached is not None and cached.name.default == renamed["name"]
        assert cached.phases == city.process.phases
    no_refusals(c, city.gracia, city.raval)


async def test_the_city_answers_a_neighbourhood_proposal(city: City) -> None:
    c, a, b = city.city, city.gracia, city.raval
    ana = await a.resident("ana", "31")
    admin = await c.app[ACCOUNTS].get("admin")
    proposal = await a.deliberation.create_proposal(
        ana, city.process.id, name="Carril bici", body_markdown="Segur."
    )
    await c.observer.wait(of_type("Create", actor=a.actor("ana")))
    await b.observer.wait(of_type("Announce", actor=c.group))
    await c.deliberation.answer_proposal(
        admin, proposal.id, state=ProposalState.ACCEPTED, answer=LangText("Ho farem.")
    )
    # The Group's Update reaches the author's instance (the documented non-owner Update)
    # and the other follower of the Group, and both keep the author's text.
    for instance in (a, b):
        await instance.observer.wait(of_type("Update", actor=c.group))
        answered = await instance.deliberation.get_proposal(proposal.id)
        assert answered is not None and answered.state is ProposalState.ACCEPTED
        assert answered.answer is not None and "Ho farem." in answered.answer.default
        assert answered.content_html == proposal.content_html
    status, doc, _ = await get(proposal.id)
    assert isinstance(doc, dict) and (status, doc["proposalState"]) == (200, "accepted")
    validate("proposal", doc)
    no_refusals(c, a, b)


def no_refusals(*instances: Instance) -> None:
    """Nothing in the scenario was refused anywhere (a refusal names its rule)."""
    for instance in instances:
        assert list(instance.handlers.refusals) == [], (
            instance.config.name,
            json.dumps([r.rule for r in instance.handlers.refusals]),
        )


async def test_a_remote_resident_is_not_fetched_again_once_out_of_the_memory_cache(
    city: City,
) -> None:
    """The city's instance hears from every resident of the city, more than its actor cache
    holds: an actor fetched once is kept in the database and read back from there."""
    c, a = city.city, city.gracia
    ana, pau = await a.resident("ana", "31"), await a.resident("pau", "31")
    first, second = [
        await a.deliberation.create_proposal(ana, city.process.id, name=n, body_markdown=n)
        for n in ("Fonts", "Arbres")
    ]
    await a.deliberation.support(pau, first.id)
    await c.observer.wait(of_type("Like", actor=a.actor("pau"), object=first.id))
    federation = c.app[FEDERATION]
    assert federation.fetcher is not None and federation.actors is not None
    fetched: list[str] = []
    real = federation.fetcher.get_activity

    async def counting(url: str, *args: Any, **kwargs: Any) -> Any:
        fetched.append(url)
        return await real(url, *args, **kwargs)

    federation.fetcher.get_activity = counting  # type: ignore[method-assign]
    federation.actors.forget(a.actor("pau"))  # as a busy city's least recent voters are
    await a.deliberation.support(pau, second.id)
    await c.observer.wait(of_type("Like", actor=a.actor("pau"), object=second.id))
    assert await c.deliberation.support_count(second.id) == 1  # signature and residency read
    assert a.actor("pau") not in fetched
    rows = await c.app[DB].execute_fetchall(
        "SELECT COUNT(*) FROM remote_actors WHERE id = ?", (a.actor("pau"),)
    )
    assert next(iter(rows))[0] == 1
