"""The instance's inbound handlers against a real instance and a real remote node on loopback.

Activities are handed to the handlers as the inbox processor would hand a recorded row (the
pipeline's own checks are tested in test_inbox_rules.py and end to end in
test_instance_federation.py). The remote node serves actor documents with Barri's
``verifiedResidentOf`` (alice: an eligible neighbourhood, bob: another district, carol: none,
as a Mastodon user) and, for refetches, activities by id. Every refusal asserts that no table
changed and names its rule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from activitypub import as2
from activitypub.actors import ActorProfile
from activitypub.runtime import FEDERATION
from activitypub.storage import InboxRecord
from federation.config import InstanceConfig
from federation.instance.app import ACCOUNTS, DB, DELIBERATION, create_app
from federation.instance.deliberation import Deliberation
from federation.instance.handlers import INBOUND, InboundHandlers
from federation.instance.ports import Role
from federation.model import (
    Alignment,
    Comment,
    LangText,
    Process,
    Proposal,
    ProposalState,
    Territory,
    TerritoryKind,
)
from federation.store.domain import DomainStore
from federation.store.outbox import OutboxStore
from federation.store.proposals import ProposalStore
from federation.store.sqlite import transaction
from federation.vocab.actors import person_extras
from federation.vocab.comment import comment_to_ap
from federation.vocab.context import document_context, format_datetime, plain_context
from federation.vocab.process import process_from_ap, process_to_ap
from federation.vocab.proposal import proposal_to_ap
from federation.vocab.wire import embed
from tests.apnode import NodeState, make_app
from tests.test_readside import instance_config

PASSWORD = "correct horse battery"
TABLES = (
    "processes", "proposals", "supports", "undone", "debates", "comments", "comment_votes",
    "follows", "activities", "tombstones",
)  # fmt: skip
GRACIA = Territory(TerritoryKind.NEIGHBOURHOOD, "31", "la Vila de Gràcia", "06")
RAVAL = Territory(TerritoryKind.NEIGHBOURHOOD, "01", "el Raval", "01")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def stamp(moment: datetime | None = None) -> str:
    return format_datetime(moment or now())


# --- a remote Barri-like node: residents with verifiedResidentOf, activities served by id ---------


@dataclass
class ResidentNode(NodeState):
    """A tests.apnode node whose people may be verified residents and whose Group is a Group."""

    territories: dict[str, Territory] = field(default_factory=dict)
    served: dict[str, dict[str, Any]] = field(default_factory=dict)
    accepts: asyncio.Queue[InboxRecord] = field(default_factory=asyncio.Queue)
    server: TestServer | None = None

    def profile(self, name: str) -> ActorProfile:
        profile = NodeState.profile(self, name)
        if name == "group":
            profile = dataclasses.replace(profile, type="Group")
        territory = self.territories.get(name)
        return (
            dataclasses.replace(profile, extra=person_extras(territory)) if territory else profile
        )

    def new_id(self, kind: str = "activities") -> str:
        return f"{self.origin}/{kind}/{uuid.uuid4().hex}"


RESIDENT_NODE = web.AppKey("resident_node", ResidentNode)


async def _serve(request: web.Request) -> web.Response:
    state = request.app[RESIDENT_NODE]
    document = state.served.get(str(request.url.with_query(None)).replace("localhost", "127.0.0.1"))
    if document is None:
        raise web.HTTPNotFound()
    return web.json_response(document, content_type="application/activity+json")


@asynccontextmanager
async def resident_node(tmp_path: Path, port: int) -> AsyncIterator[ResidentNode]:
    """A remote node on 127.0.0.1:port with residents alice, bob, carol and a Group."""
    state = ResidentNode(origin=f"http://127.0.0.1:{port}", db_path=tmp_path / f"n{port}.sqlite3")
    for name in ("instance", "alice", "bob", "carol", "group"):
        state.add_actor(name)
    state.territories.update(alice=GRACIA, bob=RAVAL)
    app = make_app(state)
    app[RESIDENT_NODE] = state
    app.router.add_get("/activities/{id}", _serve)
    server = state.server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()

    @server.app[FEDERATION].dispatcher.on("Accept")
    async def collect(record: InboxRecord) -> None:
        await state.accepts.put(record)

    try:
        yield state
    finally:
        await server.close()


# --- the instance ---------------------------------------------------------------------------------


@asynccontextmanager
async def instance(config: InstanceConfig) -> AsyncIterator[TestServer]:
    app = create_app(config)
    server = TestServer(app, host="127.0.0.1", port=config.listen_port)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def draft(*, supports_open: bool, eligible: tuple[str, str] = ("district", "06")) -> dict[str, Any]:
    """A process whose current phase allows proposals and comments, or supports and comments."""
    t = now()
    first = (
        (t - timedelta(days=1), t + timedelta(days=1))
        if not supports_open
        else (t - timedelta(days=10), t - timedelta(days=1))
    )
    second = (first[1], first[1] + timedelta(days=30))

    def phase(name: str, span: tuple[datetime, datetime], proposals: bool) -> dict[str, Any]:
        return {"type": "Phase", "name": name, "startTime": stamp(span[0]),
                "endTime": stamp(span[1]), "allowsProposals": proposals,
                "allowsSupports": not proposals, "allowsComments": True,
                "allowsDebates": proposals}  # fmt: skip

    return {
        "type": ["Page", "ParticipatoryProcess"],
        "name": "Pressupostos 2027",
        "phases": [phase("Propostes", first, True), phase("Suports", second, False)],
        "supportRules": {
            "type": "SupportRules",
            "supportsPerParticipant": 3,
            "thresholdPerProposal": 0,
            "accumulateBeyondThreshold": False,
            "minimumSupportsPerParticipant": 0,
        },
        "eligibleTerritories": [
            {"type": "Territory", "territoryKind": eligible[0], "territoryCode": eligible[1]}
        ],
    }


@dataclass
class World:
    server: TestServer
    config: InstanceConfig
    node: ResidentNode
    handlers: InboundHandlers
    deliberation: Deliberation
    db: aiosqlite.Connection
    open_process: Process
    supports_process: Process

    @property
    def group(self) -> str:
        return f"{self.config.base_url}/groups/assoc"


@pytest.fixture
async def world(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[World]:
    async with resident_node(tmp_path, unused_tcp_port_factory()) as node:
        config = instance_config(
            tmp_path, unused_tcp_port_factory(), name="Barcelona", territory="08019", kind="city"
        )
        async with instance(config) as server:
            app = server.app
            admin = await app[ACCOUNTS].create_user("admin", PASSWORD, Role.ADMIN)
            deliberation = app[DELIBERATION]
            open_process = await deliberation.create_process(draft(supports_open=False), by=admin)
            supports_process = await deliberation.create_process(
                draft(supports_open=True), by=admin
            )
            yield World(server, config, node, app[INBOUND], deliberation, app[DB], open_process,
                        supports_process)  # fmt: skip


# --- building remote activities -------------------------------------------------------------------


def proposal_doc(world: World, author: str, process: Process, **changes: Any) -> dict[str, Any]:
    """A remote resident's proposal document (vocab-spec "proposal")."""
    proposal_id = world.node.new_id("proposals")
    actor = world.node.actor_id(author)
    proposal = Proposal(
        id=proposal_id, author=actor, audience=process.owner, process=process.id,
        name=LangText("Ombra a la plaça"), content_html="<p>Arbres, si us plau.</p>",
        source_markdown="Arbres, si us plau.", published=now(), replies=proposal_id + "/replies",
        context=proposal_id + "/context", to=(as2.PUBLIC,),
        cc=(actor + "/followers", process.owner),
    )  # fmt: skip
    return proposal_to_ap(dataclasses.replace(proposal, **changes))


def comment_doc(world: World, author: str, parent: str, **changes: Any) -> dict[str, Any]:
    """A reply to ``parent`` (a Barri comment, or a Mastodon-style one without alignment)."""
    comment = Comment(
        id=world.node.new_id("comments"), author=world.node.actor_id(author), in_reply_to=parent,
        context=None, content_html="<p>D'acord!</p>", source_markdown=None,
        alignment=Alignment.IN_FAVOR, depth=1, published=now(), to=(as2.PUBLIC,),
    )  # fmt: skip
    return comment_to_ap(dataclasses.replace(comment, **changes))


def activity(world: World, kind: str, author: str, obj: Any, **extra: Any) -> dict[str, Any]:
    """A remote activity by ``author``; an object document is embedded without its context."""
    # Supports, withdrawals and votes use no Barri term: AS2 + data-integrity only (DESIGN §4).
    plain = kind in ("Like", "Dislike", "Undo")
    doc: dict[str, Any] = {
        "@context": plain_context() if plain else document_context(),
        "id": world.node.new_id(),
        "type": kind,
        "actor": world.node.actor_id(author),
        "object": embed(obj) if isinstance(obj, dict) else obj,
        "published": stamp(),
        "to": [as2.PUBLIC],
    }
    doc.update(extra)
    return doc


def like(world: World, author: str, proposal_id: str, *, public: bool = False) -> dict[str, Any]:
    """A support Like (private), or with ``public`` the same Like addressed publicly."""
    doc = activity(world, "Like", author, proposal_id, to=[world.group])
    doc["id"] = world.node.new_id("supports")
    if public:
        doc["to"] = [as2.PUBLIC]
    return doc


async def snapshot(db: aiosqlite.Connection) -> dict[str, list[Any]]:
    """Every row of every domain table: what "no state change" compares."""
    rows = {
        table: [tuple(row) for row in await db.execute_fetchall(f"SELECT * FROM {table}")]
        for table in TABLES
    }
    # What was queued, not how far the background worker got with it.
    queued = await db.execute_fetchall("SELECT activity_id, inbox FROM deliveries ORDER BY id")
    rows["deliveries"] = [tuple(row) for row in queued]
    return rows


async def refused(world: World, doc: dict[str, Any], rule: str) -> None:
    """Hand ``doc`` to the handlers: it must be refused with ``rule`` and change nothing."""
    before = await snapshot(world.db)
    count = len(world.handlers.refusals)
    await world.handlers.receive(doc)
    assert len(world.handlers.refusals) == count + 1, f"not refused: {doc['type']}"
    refusal = world.handlers.refusals[-1]
    assert (refusal.activity_id, refusal.rule) == (doc["id"], rule), refusal
    assert await snapshot(world.db) == before


async def accepted(world: World, doc: dict[str, Any]) -> None:
    """Hand ``doc`` to the handlers: it must not be refused."""
    count = len(world.handlers.refusals)
    await world.handlers.receive(doc)
    assert len(world.handlers.refusals) == count, world.handlers.refusals[-1]


async def propose(world: World, author: str = "alice", process: Process | None = None) -> str:
    doc = proposal_doc(world, author, process or world.open_process)
    await accepted(world, activity(world, "Create", author, doc))
    return str(doc["id"])


async def seed_proposal(world: World, process: Process, author: str = "alice") -> str:
    """A remote resident's proposal already stored in a process (e.g. now in its supports phase)."""
    doc = proposal_doc(world, author, process)
    proposal = dataclasses.replace(proposal_doc_to_model(doc), published=now() - timedelta(days=5))
    async with transaction(world.db):
        await ProposalStore(world.db).put_proposal(proposal, proposal_to_ap(proposal), local=False)
    return proposal.id


def proposal_doc_to_model(doc: dict[str, Any]) -> Proposal:
    from federation.vocab.proposal import proposal_from_ap

    return proposal_from_ap(doc)


# --- Create ---------------------------------------------------------------------------------------


async def test_a_remote_residents_proposal_is_stored_and_announced(world: World) -> None:
    doc = proposal_doc(world, "alice", world.open_process)
    create = activity(world, "Create", "alice", doc)
    await accepted(world, create)
    stored = await world.deliberation.get_proposal(doc["id"])
    assert stored is not None and stored.author == world.node.actor_id("alice")
    assert stored.state is ProposalState.NOT_ANSWERED and stored.support_count == 0
    page = await world.deliberation.list_proposals(world.open_process.id)
    assert [p.id for p in page.items] == [doc["id"]]
    # The owning Group Announces it (FEP-1b12), the activity embedded unchanged.
    announces = [
        json.loads(row[0])
        for row in await world.db.execute_fetchall(
            "SELECT document FROM activities WHERE type = 'Announce' AND actor = ?", (world.group,)
        )
    ]
    assert [a["object"] for a in announces] == [create]
    # The same Create again (another inbox of ours): nothing new.
    before = await snapshot(world.db)
    await accepted(world, create)
    assert await snapshot(world.db) == before


async def test_proposal_refusals_change_nothing(world: World) -> None:
    process = world.open_process
    not_hers = activity(world, "Create", "bob", proposal_doc(world, "alice", process))
    await refused(world, not_hers, "not_author")
    await refused(
        world, activity(world, "Create", "bob", proposal_doc(world, "bob", process)),
        "territory_not_eligible",
    )  # fmt: skip
    await refused(
        world, activity(world, "Create", "carol", proposal_doc(world, "carol", process)),
        "not_verified",
    )  # fmt: skip
    late = proposal_doc(world, "alice", world.supports_process)
    await refused(world, activity(world, "Create", "alice", late), "proposals_phase_closed")
    unknown = dataclasses.replace(process, id=world.config.base_url + "/processes/none")
    await refused(
        world, activity(world, "Create", "alice", proposal_doc(world, "alice", unknown)),
        "not_found",
    )  # fmt: skip
    broken = proposal_doc(world, "alice", process)
    del broken["content"]
    await refused(world, activity(world, "Create", "alice", broken), "invalid_proposal")
    elsewhere = proposal_doc(world, "alice", process)
    elsewhere["audience"] = world.node.actor_id("group")
    await refused(world, activity(world, "Create", "alice", elsewhere), "wrong_audience")


async def test_a_create_of_something_not_ours_is_ignored(world: World) -> None:
    note = {"id": world.node.new_id("notes"), "type": "Note", "content": "<p>hola</p>",
            "attributedTo": world.node.actor_id("carol"), "published": stamp()}  # fmt: skip
    before = await snapshot(world.db)
    await accepted(world, activity(world, "Create", "carol", note))
    assert await snapshot(world.db) == before


# --- comments and their votes ---------------------------------------------------------------------


async def test_residents_comment_and_mastodon_replies_are_external(world: World) -> None:
    proposal = await propose(world)
    earlier = now() - timedelta(minutes=2)
    resident = comment_doc(world, "bob", proposal, published=earlier)
    await accepted(world, activity(world, "Create", "bob", resident))
    # carol has no verifiedResidentOf (a Mastodon user): stored, shown, marked external.
    mastodon = comment_doc(
        world, "carol", proposal, alignment=Alignment.NEUTRAL, depth=None,
        published=earlier + timedelta(minutes=1),
    )  # fmt: skip
    del mastodon["alignment"]
    await accepted(world, activity(world, "Create", "carol", mastodon))
    thread = await world.deliberation.thread(proposal)
    assert [(e.comment.id, e.external) for e in thread] == [
        (resident["id"], False), (mastodon["id"], True),
    ]  # fmt: skip
    reply = comment_doc(world, "alice", resident["id"], depth=2)
    await accepted(world, activity(world, "Create", "alice", reply))
    assert [e.comment.id for e in await world.deliberation.thread(proposal)][1] == reply["id"]


async def test_comment_refusals_change_nothing(world: World) -> None:
    proposal = await propose(world)
    nowhere = comment_doc(world, "bob", world.config.base_url + "/proposals/none")
    await refused(world, activity(world, "Create", "bob", nowhere), "not_found")
    forged = comment_doc(world, "alice", proposal)
    await refused(world, activity(world, "Create", "bob", forged), "not_author")
    # Three levels deep, then no further (Decidim's MAX_DEPTH).
    parent = proposal
    for depth in (1, 2, 3):
        doc = comment_doc(world, "alice", parent, depth=depth)
        await accepted(world, activity(world, "Create", "alice", doc))
        parent = doc["id"]
    too_deep = comment_doc(world, "alice", parent, depth=3)
    await refused(world, activity(world, "Create", "alice", too_deep), "max_depth_reached")


async def test_comment_votes_and_their_undo(world: World) -> None:
    proposal = await propose(world)
    comment = comment_doc(world, "alice", proposal)
    await accepted(world, activity(world, "Create", "alice", comment))
    up = activity(world, "Like", "bob", comment["id"], cc=[world.group])
    down = activity(world, "Dislike", "carol", comment["id"])
    await accepted(world, up)
    await accepted(world, down)
    [entry] = await world.deliberation.thread(proposal)
    assert (entry.up, entry.down) == (1, 1)
    await refused(world, activity(world, "Dislike", "bob", proposal_doc(world, "bob",
                  world.open_process)["id"]), "not_found")  # fmt: skip
    stranger = activity(world, "Undo", "alice", up["id"])
    await refused(world, stranger, "not_author")
    await accepted(world, activity(world, "Undo", "bob", embed(up)))
    [entry] = await world.deliberation.thread(proposal)
    assert (entry.up, entry.down) == (0, 1)


# --- supports -------------------------------------------------------------------------------------


async def test_a_remote_residents_support_counts(world: World) -> None:
    proposal = await seed_proposal(world, world.supports_process)
    support = like(world, "alice", proposal)
    await accepted(world, support)
    assert await world.deliberation.support_count(proposal) == 1
    record = await ProposalStore(world.db).get_support(support["id"])
    assert record is not None and (record.state, record.local) == ("final", False)
    # Not Announced: supports are private (DESIGN.md §6).
    rows = await world.db.execute_fetchall(
        "SELECT document FROM activities WHERE type = 'Announce'"
    )
    assert "Like" not in [json.loads(row[0])["object"]["type"] for row in rows]
    await refused(world, like(world, "alice", proposal), "already_supported")
    undo = activity(world, "Undo", "alice", embed(support), to=support["to"])
    await accepted(world, undo)
    assert await world.deliberation.support_count(proposal) == 0
    # As an older version sent it, with the whole Barri context: it counts the same.
    old = {**like(world, "alice", proposal), "@context": document_context()}
    await accepted(world, old)
    assert await world.deliberation.support_count(proposal) == 1


async def test_support_refusals_change_nothing(world: World) -> None:
    proposal = await seed_proposal(world, world.supports_process)
    await refused(world, like(world, "bob", proposal), "territory_not_eligible")
    await refused(world, like(world, "carol", proposal), "not_verified")
    await refused(world, like(world, "alice", world.config.base_url + "/proposals/x"), "not_found")
    early = await seed_proposal(world, world.open_process)
    await refused(world, like(world, "alice", early), "supports_phase_closed")
    # A public Like is a comment vote (Mastodon's favourite), never a support.
    await refused(world, like(world, "alice", proposal, public=True), "not_found")
    no_date = like(world, "alice", proposal)
    del no_date["published"]
    await refused(world, no_date, "invalid_support")


async def test_undo_refusals_and_an_undo_before_its_like(world: World) -> None:
    proposal = await seed_proposal(world, world.supports_process)
    support = like(world, "alice", proposal)
    await accepted(world, support)
    # bob cannot withdraw alice's support, by id or by embedding it.
    await refused(world, activity(world, "Undo", "bob", support["id"], to=support["to"]),
                  "not_author")  # fmt: skip
    await refused(world, activity(world, "Undo", "bob", embed(support), to=support["to"]),
                  "invalid_undo-support")  # fmt: skip
    assert await world.deliberation.support_count(proposal) == 1
    # An Undo that arrives before its Like still wins.
    other = await seed_proposal(world, world.supports_process, author="bob")
    later = like(world, "alice", other)
    await accepted(world, activity(world, "Undo", "alice", later["id"], to=later["to"]))
    await accepted(world, later)
    assert await world.deliberation.support_count(other) == 0
    record = await ProposalStore(world.db).get_support(later["id"])
    assert record is not None and record.state == "withdrawn"


# --- Update and Delete ----------------------------------------------------------------------------


async def test_an_author_edits_and_deletes_a_remote_proposal(world: World) -> None:
    proposal = await seed_proposal(world, world.open_process)
    doc = proposal_doc(world, "alice", world.open_process, name=LangText("Més ombra"))
    doc["id"] = proposal
    await accepted(world, activity(world, "Update", "alice", doc))
    edited = await world.deliberation.get_proposal(proposal)
    assert edited is not None and edited.name.default == "Més ombra"
    await refused(world, activity(world, "Update", "bob", doc), "not_owner")
    tombstone = {"id": proposal, "type": "Tombstone", "formerType": "Proposal"}
    await refused(world, activity(world, "Delete", "bob", tombstone), "not_author")
    assert await world.deliberation.get_proposal(proposal) is not None
    await accepted(world, activity(world, "Delete", "alice", tombstone))
    assert await world.deliberation.get_proposal(proposal) is None
    status = await world.db.execute_fetchall("SELECT former_type FROM tombstones WHERE id = ?",
                                             (proposal,))  # fmt: skip
    assert [row[0] for row in status] == ["Proposal"]


async def cached_remote_process(world: World) -> Process:
    """A process owned by the remote node's Group, cached here (as the city's is)."""
    group = world.node.actor_id("group")
    doc = {"@context": document_context(), **draft(supports_open=False, eligible=("city", "08019"))}
    doc |= {"id": world.node.new_id("processes"), "attributedTo": group, "audience": group,
            "published": stamp(), "to": [as2.PUBLIC]}  # fmt: skip
    process = process_from_ap(doc)
    await world.deliberation.remember_remote_object(process)
    return process


async def test_the_owning_group_refreshes_its_process(world: World) -> None:
    process = await cached_remote_process(world)
    renamed = process_to_ap(dataclasses.replace(process, name=LangText("Nou nom")))
    await refused(world, activity(world, "Update", "alice", renamed), "not_owner")
    await accepted(world, activity(world, "Update", "group", renamed))
    cached = await world.deliberation.get_process(process.id)
    assert cached is not None and cached.name.default == "Nou nom"


async def test_the_owning_group_answers_our_residents_proposal(world: World) -> None:
    process = await cached_remote_process(world)
    resident = await world.server.app[ACCOUNTS].create_user("joan", PASSWORD)
    await world.server.app[ACCOUNTS].verify("joan", "08019", by="test")
    ours = await world.deliberation.create_proposal(
        await world.server.app[ACCOUNTS].get("joan"), process.id, name="Un banc",
        body_markdown="Un **banc**.",
    )  # fmt: skip
    assert resident.username == "joan"
    answered = dataclasses.replace(
        ours, state=ProposalState.ACCEPTED, answer=LangText("<p>Sí.</p>"), answered_at=now(),
        updated=now(),
    )  # fmt: skip
    doc = proposal_to_ap(answered)
    await refused(world, activity(world, "Update", "bob", doc), "not_owner")
    # Relayed in an Announce with the Group's proof: admitted as the same documented exception.
    relayed = world.node.keys["group"].prove(activity(world, "Update", "group", doc))
    await accepted(world, announce(world, relayed, by="bob"))
    stored = await world.deliberation.get_proposal(ours.id)
    assert stored is not None and stored.state is ProposalState.ACCEPTED
    assert stored.answer is not None and stored.answer.default == "<p>Sí.</p>"
    assert stored.content_html == ours.content_html  # the author's text is kept
    # Delivered directly, a later answer moves the state again.
    rejected = proposal_to_ap(dataclasses.replace(answered, state=ProposalState.REJECTED))
    await accepted(world, activity(world, "Update", "group", rejected))
    stored = await world.deliberation.get_proposal(ours.id)
    assert stored is not None and stored.state is ProposalState.REJECTED
    # A Group that does not own the process cannot answer, relayed or not.
    forged = dict(rejected, audience=world.node.actor_id("bob"))
    await refused(world, activity(world, "Update", "bob", forged), "not_owner")


# --- Follow, Accept, Reject, Undo{Follow} ---------------------------------------------------------


async def test_a_follow_of_the_group_is_accepted_and_undone(world: World) -> None:
    alice = world.node.actor_id("alice")
    follow = activity(world, "Follow", "alice", world.group, to=[world.group])
    await accepted(world, follow)
    stored = await OutboxStore(world.db).find_follow(alice, world.group)
    assert stored is not None and stored.state == "accepted"
    assert (stored.inbox, stored.shared_inbox) == (alice + "/inbox", world.node.origin + "/inbox")
    rows = await world.db.execute_fetchall("SELECT document FROM activities WHERE type = 'Accept'")
    [accept] = [json.loads(row[0]) for row in rows]
    assert (accept["actor"], accept["object"]["id"], accept["to"]) == (
        world.group, follow["id"], [alice],
    )  # fmt: skip
    assert "proof" in accept  # every activity carries its actor's proof (DESIGN.md §5)

    async with asyncio.timeout(30):
        received = await world.node.accepts.get()  # the follower's server got it, signed
    assert received.activity_id == accept["id"] and received.auth == "proof"
    # The same Follow again: no second Accept.
    before = await snapshot(world.db)
    await accepted(world, follow)
    assert await snapshot(world.db) == before
    await refused(world, activity(world, "Undo", "bob", follow["id"]), "not_owner")
    await accepted(world, activity(world, "Undo", "alice", embed(follow)))
    assert await OutboxStore(world.db).find_follow(alice, world.group) is None


async def test_follow_refusals_change_nothing(world: World) -> None:
    nobody = world.config.base_url + "/users/nobody"
    await refused(world, activity(world, "Follow", "alice", nobody), "unknown_actor")
    outside = world.node.actor_id("bob")
    await refused(world, activity(world, "Follow", "alice", outside), "unknown_actor")


async def test_accept_and_reject_of_our_follows(world: World) -> None:
    group = world.node.actor_id("group")
    follow_id = world.config.base_url + "/activities/f1"
    async with transaction(world.db):
        await OutboxStore(world.db).put_follow(
            follow_id, world.group, group, inbox=None, shared_inbox=None, state="pending", now=0.0
        )
    await refused(world, activity(world, "Accept", "alice", follow_id), "not_target")
    embedded = {"id": follow_id, "type": "Follow", "actor": world.group, "object": group}
    await accepted(world, activity(world, "Accept", "group", embedded))
    stored = await OutboxStore(world.db).get_follow(follow_id)
    assert stored is not None and stored.state == "accepted"
    # An Accept naming only the pair (Mitra-style matching falls back to actor + object).
    await accepted(world, activity(world, "Reject", "group", {**embedded, "id": "x:unknown"}))
    assert await OutboxStore(world.db).get_follow(follow_id) is None


# --- Announce (FEP-1b12) --------------------------------------------------------------------------


def announce(world: World, inner: Any, by: str = "group") -> dict[str, Any]:
    group = world.node.actor_id(by)
    doc = activity(world, "Announce", by, "", cc=[group + "/followers"], audience=group)
    doc["object"] = inner  # unchanged, @context and proof included (FEP-1b12)
    return doc


async def test_an_announced_activity_with_its_own_proof_is_handled(world: World) -> None:
    create = activity(world, "Create", "alice", proposal_doc(world, "alice", world.open_process))
    proved = world.node.keys["alice"].prove(create)
    await accepted(world, announce(world, proved))
    assert await world.deliberation.get_proposal(create["object"]["id"]) is not None


async def test_an_announced_activity_without_proof_is_refetched(world: World) -> None:
    create = activity(world, "Create", "alice", proposal_doc(world, "alice", world.open_process))
    world.node.served[create["id"]] = create
    # The embedded copy says something else: the origin's copy is what counts.
    altered = json.loads(json.dumps(create))
    altered["object"]["name"] = "Forged"
    await accepted(world, announce(world, altered))
    stored = await world.deliberation.get_proposal(create["object"]["id"])
    assert stored is not None and stored.name.default == "Ombra a la plaça"
    # Announced by id only (a boost): fetched from its origin too.
    second = activity(world, "Create", "alice", proposal_doc(world, "alice", world.open_process))
    world.node.served[second["id"]] = second
    await accepted(world, announce(world, second["id"]))
    assert await world.deliberation.get_proposal(second["object"]["id"]) is not None


async def test_announce_refusals_change_nothing(world: World) -> None:
    doc = proposal_doc(world, "alice", world.open_process)
    proved = world.node.keys["alice"].prove(activity(world, "Create", "alice", doc))
    tampered = json.loads(json.dumps(proved))
    tampered["object"]["name"] = "Tampered"
    await refused(world, announce(world, tampered), "proof_signature_invalid")
    # A proof made by someone else's key than the activity's actor.
    by_bob = world.node.keys["bob"].prove(activity(world, "Create", "alice", doc))
    await refused(world, announce(world, by_bob), "verification_method_not_owned")
    unserved = activity(world, "Create", "alice", doc)
    await refused(world, announce(world, unserved), "object_unavailable")
    nested = announce(world, world.node.keys["group"].prove(announce(world, proved)))
    await refused(world, nested, "nested_announce")
    # The inner activity is still checked by the rules once authentic.
    ineligible = world.node.keys["bob"].prove(
        activity(world, "Create", "bob", proposal_doc(world, "bob", world.open_process))
    )
    await refused(world, announce(world, ineligible), "territory_not_eligible")


# --- processes, debates, comment edits ----------------------------------------------------------


def process_doc(world: World, owner: str) -> dict[str, Any]:
    """A process owned by a remote actor (the city's Group, say), as its Create carries it."""
    group = world.node.actor_id(owner)
    doc = {"@context": document_context(), **draft(supports_open=False, eligible=("city", "08019"))}
    doc |= {"id": world.node.new_id("processes"), "attributedTo": group, "audience": group,
            "published": stamp(), "to": [as2.PUBLIC]}  # fmt: skip
    return doc


async def test_a_followed_groups_new_process_is_cached(world: World) -> None:
    group = world.node.actor_id("group")
    async with transaction(world.db):
        await OutboxStore(world.db).put_follow(
            world.config.base_url + "/activities/f2", world.group, group, inbox=None,
            shared_inbox=None, state="accepted", now=0.0,
        )  # fmt: skip
    opened = process_doc(world, "group")
    await accepted(world, activity(world, "Create", "group", opened))
    cached = await world.deliberation.get_process(opened["id"])
    assert cached is not None and cached.owner == group
    # A process of an actor we do not follow is not ours to show.
    before = await snapshot(world.db)
    await accepted(world, activity(world, "Create", "bob", process_doc(world, "bob")))
    assert await snapshot(world.db) == before
    stolen = process_doc(world, "group")
    await refused(world, activity(world, "Create", "bob", stolen), "not_author")


def debate_doc(world: World, author: str, process: Process, **extra: Any) -> dict[str, Any]:
    debate_id = world.node.new_id("debates")
    doc = {"@context": document_context(), "id": debate_id, "type": ["Page", "Debate"],
           "attributedTo": world.node.actor_id(author), "audience": process.owner,
           "process": process.id, "name": "Com fem la festa major?",
           "content": "<p>Idees</p>", "published": stamp(), "to": [as2.PUBLIC]}  # fmt: skip
    doc.update(extra)
    return doc


async def test_remote_debates_open_and_close(world: World) -> None:
    debate = debate_doc(world, "alice", world.open_process)
    await accepted(world, activity(world, "Create", "alice", debate))
    record = await DomainStore(world.db).get_debate(debate["id"])
    assert record is not None and record.debate.closed_at is None
    late = debate_doc(world, "alice", world.supports_process)
    await refused(world, activity(world, "Create", "alice", late), "debates_phase_closed")
    closed = dict(debate, closedAt=stamp(), conclusions="<p>Al juliol.</p>")
    await refused(world, activity(world, "Update", "bob", closed), "not_owner")
    await accepted(world, activity(world, "Update", "alice", closed))
    record = await DomainStore(world.db).get_debate(debate["id"])
    assert record is not None and record.debate.conclusions == LangText("<p>Al juliol.</p>")


async def test_remote_comments_are_edited_and_deleted_by_their_author(world: World) -> None:
    proposal = await propose(world)
    comment = comment_doc(world, "alice", proposal)
    await accepted(world, activity(world, "Create", "alice", comment))
    edited = dict(comment, content="<p>Molt d'acord!</p>")
    await refused(world, activity(world, "Update", "bob", edited), "not_owner")
    await accepted(world, activity(world, "Update", "alice", edited))
    [entry] = await world.deliberation.thread(proposal)
    assert entry.comment.content_html == "<p>Molt d'acord!</p>"
    tombstone = {"id": comment["id"], "type": "Tombstone", "formerType": "Note"}
    await refused(world, activity(world, "Delete", "bob", tombstone), "not_author")
    await accepted(world, activity(world, "Delete", "alice", tombstone))
    assert await world.deliberation.thread(proposal) == []
    rows = await world.db.execute_fetchall(
        "SELECT former_type FROM tombstones WHERE id = ?", (comment["id"],)
    )
    assert [row[0] for row in rows] == ["Note"]
