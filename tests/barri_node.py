"""A stand-in Barri neighbourhood instance for aggregator tests, built from real parts.

Each node is a real aiohttp server on 127.0.0.1 with real RSA and Ed25519 keys and a real
SQLite file behind its protocol runtime. It serves what the aggregator reads from an instance:
NodeInfo (FEP-2677 instance actor, ``metadata.barri`` territory and Group), the instance actor
(Application), the association's Group (with ``territory``), residents (``verifiedResidentOf``
once verified), process and proposal documents built with ``federation.vocab``, and outbox
OrderedCollections readable only with a signed GET. It accepts the aggregator's Follows with a
signed, proved Accept, and makes signed, proved supports a test can deliver or publish.

Until the instance domain lands, this is the instance the aggregator tests talk to.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from activitypub.actors import ActorProfile
from activitypub.collections import (
    first_page_url,
    ordered_collection,
    ordered_collection_page,
    page_sequence,
    page_url_for,
    parse_page_request,
)
from activitypub.errors import Problem, problem_middleware
from activitypub.keys import generate_ed25519, generate_rsa
from activitypub.knock import KnockMemory, post_signed
from activitypub.nodeinfo import NodeInfoData, nodeinfo_routes
from activitypub.runtime import FEDERATION, Federation, FederationConfig, LocalKeys, federation_ctx
from activitypub.storage import InboxRecord
from federation.model import (
    Announcement,
    LangText,
    OfficialAnswer,
    Phase,
    Process,
    Proposal,
    ProposalState,
    Support,
    SupportRules,
    Territory,
    TerritoryKind,
    UndoSupport,
)
from federation.store.delivery import SqliteDeliveryStore
from federation.store.inbox import SqliteInboxStore
from federation.store.sqlite import open_database
from federation.vocab.actors import barri_actor_document, group_extras, person_extras
from federation.vocab.announce import announce_to_ap
from federation.vocab.answer import official_answer_to_ap
from federation.vocab.context import document_context, format_datetime
from federation.vocab.process import process_to_ap
from federation.vocab.proposal import proposal_from_ap, proposal_to_ap
from federation.vocab.support import support_to_ap, undo_support_to_ap

AS2 = "application/activity+json"
GROUP = "assoc"
CITY = "08019"
NOW = datetime.now(UTC).replace(microsecond=0)


def hood(code: str, district: str) -> Territory:
    """A neighbourhood inside its district."""
    return Territory(TerritoryKind.NEIGHBOURHOOD, code, district_code=district)


def supports_phase(
    start: datetime | None = None, end: datetime | None = None, *, limit: int = 0
) -> tuple[tuple[Phase, ...], SupportRules]:
    """One open supports phase around now (a day each side) and the support rules."""
    phase = Phase(
        name=LangText("Suports"),
        start=start or NOW - timedelta(days=1),
        end=end or NOW + timedelta(days=1),
        allows_proposals=True,
        allows_supports=True,
        allows_comments=True,
        allows_debates=False,
    )
    return (phase,), SupportRules(supports_per_participant=limit)


@dataclass
class InstanceNode:
    """One stand-in instance: its actors, documents, outboxes and what it received."""

    origin: str
    territory: Territory
    db_path: Path
    aggregator: str = ""
    keys: dict[str, LocalKeys] = field(default_factory=dict)
    residents: dict[str, Territory | None] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    outboxes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    accept_follows: bool = True
    fail_next_pages: int = 0  # answer 503 to this many "next" pages (a backfill interrupted)
    # Hold each actor or document GET until this many are in flight (or a second passed):
    # ``peak`` then shows whether a client's fetches overlapped.
    overlap: int = 0
    in_flight: int = 0
    peak: int = 0
    # Answer the first outbox head only once every node sharing this barrier asked for theirs
    # (a 503 after 2 s): shows whether a client walks several instances at once.
    meet: asyncio.Barrier | None = None

    def __post_init__(self) -> None:
        for actor in (self.instance_actor, self.group):
            self.keys[actor] = LocalKeys(actor, generate_rsa(), generate_ed25519())
            self.outboxes[actor] = []

    # --- ids ------------------------------------------------------------------------------

    @property
    def instance_actor(self) -> str:
        return f"{self.origin}/actor"

    @property
    def group(self) -> str:
        return f"{self.origin}/groups/{GROUP}"

    def person(self, name: str) -> str:
        return f"{self.origin}/users/{name}"

    def new_id(self, kind: str) -> str:
        return f"{self.origin}/{kind}/{uuid.uuid4()}"

    # --- what a test sets up --------------------------------------------------------------

    def add_resident(self, name: str, territory: Territory | bool | None = True) -> str:
        """A resident with keys; verified in the node's territory unless told otherwise."""
        actor = self.person(name)
        self.keys[actor] = LocalKeys(actor, generate_rsa(), generate_ed25519())
        if territory is True:
            self.residents[actor] = self.territory
        elif territory is False:
            self.residents[actor] = None
        else:
            self.residents[actor] = territory
        return actor

    def add_process(
        self,
        *,
        limit: int = 0,
        start: datetime | None = None,
        end: datetime | None = None,
        eligible: tuple[Territory, ...] | None = None,
        name: str = "Pressupostos participatius",
    ) -> str:
        """A process owned by the Group, eligible for the whole city by default."""
        phases, rules = supports_phase(start, end, limit=limit)
        process = Process(
            id=self.new_id("processes"),
            owner=self.group,
            name=LangText(name),
            summary=None,
            phases=phases,
            rules=rules,
            eligible=eligible or (Territory(TerritoryKind.CITY, CITY),),
            published=NOW - timedelta(days=2),
        )
        self.documents[process.id] = process_to_ap(process)
        return process.id

    def add_proposal(self, author: str, process: str, name: str = "Més arbres") -> str:
        """A resident's proposal in a process (which may live on another node)."""
        proposal = Proposal(
            id=self.new_id("proposals"),
            author=author,
            audience=self.group,
            process=process,
            name=LangText(name),
            content_html=f"<p>{name}</p>",
            source_markdown=name,
            published=NOW - timedelta(hours=12),
        )
        self.documents[proposal.id] = proposal_to_ap(proposal)
        return proposal.id

    def support(
        self,
        actor: str,
        proposal: str,
        *,
        published: datetime | None = None,
        signer: str | None = None,
    ) -> dict[str, Any]:
        """A proved ``Like``; ``signer`` (an actor of this node) forges the proof."""
        like = Support(
            id=f"{actor}/supports/{uuid.uuid4()}",
            actor=actor,
            proposal=proposal,
            published=published or NOW - timedelta(hours=1),
            to=(self.group, self.aggregator),
        )
        return self.keys[signer or actor].prove(support_to_ap(like))

    def undo(self, like: dict[str, Any], *, published: datetime | None = None) -> dict[str, Any]:
        """The proved ``Undo`` of a support, by its own actor."""
        actor = like["actor"]
        undo = UndoSupport(
            id=f"{actor}/undos/{uuid.uuid4()}",
            actor=actor,
            support=like["id"],
            published=published or NOW - timedelta(minutes=30),
            to=(self.group, self.aggregator),
        )
        return self.keys[actor].prove(undo_support_to_ap(undo))

    def announce(self, activity: dict[str, Any]) -> dict[str, Any]:
        """The Group's proved ``Announce`` of an activity, embedded unchanged (FEP-1b12)."""
        announcement = Announcement(
            id=self.new_id("announces"),
            group=self.group,
            activity=activity,
            published=NOW,
            to=(self.aggregator,),
        )
        return self.keys[self.group].prove(announce_to_ap(announcement))

    def create(self, actor: str, object_id: str, kind: str = "Create") -> dict[str, Any]:
        """A proved ``Create`` (or ``Update``) of one of this node's documents by ``actor``."""
        document = {k: v for k, v in self.documents[object_id].items() if k != "@context"}
        activity = {
            "@context": document_context(),
            "id": self.new_id(kind.lower() + "s"),
            "type": kind,
            "actor": actor,
            "object": document,
            "published": format_datetime(NOW),
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
        }
        return self.keys[actor].prove(activity)

    def update_actor(self, actor: str) -> dict[str, Any]:
        """The actor's own proved ``Update`` of its document (e.g. once verified)."""
        document = self.actor_document(actor)
        activity = {
            "@context": document["@context"],
            "id": self.new_id("updates"),
            "type": "Update",
            "actor": actor,
            "object": {k: v for k, v in document.items() if k != "@context"},
            "published": format_datetime(NOW),
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
        }
        return self.keys[actor].prove(activity)

    def answer(self, proposal_id: str, state: ProposalState, text: str) -> dict[str, Any]:
        """The Group's proved official answer (``Update`` of the proposal); the node keeps it."""
        proposal = replace(
            proposal_from_ap(self.documents[proposal_id]),
            state=state,
            answer=LangText(f"<p>{text}</p>"),
            answered_at=NOW,
        )
        self.documents[proposal_id] = proposal_to_ap(proposal)
        update = OfficialAnswer(
            id=self.new_id("answers"),
            group=self.group,
            proposal=proposal,
            published=NOW,
            to=("https://www.w3.org/ns/activitystreams#Public",),
        )
        return self.keys[self.group].prove(official_answer_to_ap(update))

    def publish(self, owner: str, activity: dict[str, Any]) -> None:
        """Put an activity at the head of ``owner``'s outbox."""
        self.outboxes[owner].append(activity)

    async def deliver(
        self, activity: dict[str, Any], inbox: str, *, sender: str | None = None
    ) -> int:
        """POST ``activity`` to ``inbox`` HTTP-signed by ``sender`` (default: its actor)."""
        keys = self.keys[sender or activity["actor"]]
        body = json.dumps(activity).encode()
        async with aiohttp.ClientSession() as session:
            return await post_signed(session, inbox, body, keys.signing_key, KnockMemory())

    # --- documents served -----------------------------------------------------------------

    def actor_document(self, actor: str) -> dict[str, Any]:
        keys = self.keys[actor]
        if actor == self.instance_actor:
            kind, handle, extra = "Application", "instance", {}
        elif actor == self.group:
            kind, handle, extra = "Group", GROUP, group_extras(self.territory)
        else:
            kind, handle = "Person", actor.rsplit("/", 1)[1]
            extra = person_extras(self.residents.get(actor))
        profile = ActorProfile(
            id=actor,
            type=kind,
            preferred_username=handle,
            name=handle.title(),
            summary=None,
            inbox=f"{actor}/inbox",
            outbox=f"{actor}/outbox",
            followers=f"{actor}/followers",
            following=f"{actor}/following",
            shared_inbox=f"{self.origin}/inbox",
            url=None,
            rsa_public_key=keys.rsa.public_key(),
            ed25519_public_key=keys.ed25519.public_key(),
            extra=extra,
        )
        return barri_actor_document(profile)

    def nodeinfo(self) -> NodeInfoData:
        territory = {
            "kind": "neighbourhood",
            "code": self.territory.code,
            "districtCode": self.territory.district_code,
        }
        return NodeInfoData(
            software_name="barri",
            software_version="0.1.0",
            open_registrations=True,
            users_total=len(self.residents),
            users_active_month=None,
            users_active_halfyear=None,
            local_posts=None,
            metadata={
                "nodeName": self.origin,
                "barri": {"territory": territory, "group": self.group},
            },
        )

    def hit(self, path: str) -> None:
        self.hits[path] = self.hits.get(path, 0) + 1

    async def held(self) -> None:
        """Count this GET in flight and wait for ``overlap`` of them (at most a second)."""
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            for _ in range(100):
                if self.in_flight >= self.overlap:
                    break
                await asyncio.sleep(0.01)
        finally:
            self.in_flight -= 1


NODE = web.AppKey("barri_node", InstanceNode)


def _as2(document: dict[str, Any]) -> web.Response:
    return web.Response(body=json.dumps(document).encode(), content_type=AS2)


async def _actor(request: web.Request) -> web.Response:
    node = request.app[NODE]
    actor = node.origin + request.path
    if actor not in node.keys:
        raise Problem(404, "Not Found", f"no actor {request.path}")
    node.hit(request.path)
    await node.held()
    return _as2(node.actor_document(actor))


async def _document(request: web.Request) -> web.Response:
    node = request.app[NODE]
    doc = node.documents.get(node.origin + request.path)
    if doc is None:
        raise Problem(404, "Not Found", f"nothing at {request.path}")
    node.hit(request.path)
    await node.held()
    return _as2(doc)


async def _outbox(request: web.Request) -> web.Response:
    """Signed GETs only (authorised fetch): supports are not public (DESIGN.md §6)."""
    node = request.app[NODE]
    signer = await request.app[FEDERATION].authenticate_get(request)
    if signer is None or signer.owner != node.aggregator:
        raise Problem(401, "Unauthorized", "sign the GET as the aggregator")
    owner = node.origin + request.path.removesuffix("/outbox")
    collection_id = f"{owner}/outbox"
    items = node.outboxes.get(owner)
    if items is None:
        raise Problem(404, "Not Found", "no such outbox")
    node.hit(request.path)
    page = parse_page_request(request.query, default_limit=2, max_limit=2)  # several pages
    if page is not None and page.after is not None and node.fail_next_pages > 0:
        node.fail_next_pages -= 1
        raise Problem(503, "Service Unavailable", "try again later")
    if page is None:
        if node.meet is not None:
            await _meet(node.meet)
            node.meet = None
        return _as2(
            ordered_collection(collection_id, len(items), first=first_page_url(collection_id))
        )
    keyed = [((index,), item) for index, item in enumerate(items)]
    result = page_sequence(keyed, page)
    page_id = node.origin + request.path_qs
    return _as2(
        ordered_collection_page(
            collection_id,
            page_id,
            result,
            page_url=page_url_for(collection_id),
            total_items=len(items),
        )
    )


async def _meet(barrier: asyncio.Barrier) -> None:
    try:
        await asyncio.wait_for(barrier.wait(), 2.0)
    except TimeoutError:
        raise Problem(503, "Service Unavailable", "nobody else came") from None


async def _inbox(request: web.Request) -> web.Response:
    return await request.app[FEDERATION].pipeline.handle(request)


async def _build_federation(app: web.Application) -> Federation:
    node = app[NODE]
    db = await open_database(node.db_path)
    app.on_cleanup.append(lambda _app: db.close())

    async def local_keys(actor_id: str) -> LocalKeys:
        return node.keys[actor_id]

    federation = Federation(
        FederationConfig(origin=node.origin, allow_loopback=True, allow_http=True),
        delivery_store=SqliteDeliveryStore(db),
        inbox_store=SqliteInboxStore(db),
        instance_keys=node.keys[node.instance_actor],
        local_keys=local_keys,
    )

    @federation.dispatcher.on("Follow", "Undo", "Like", "Announce", "Create", "Accept")
    async def received(record: InboxRecord) -> None:
        node.received.append(record.activity)
        if record.activity.get("type") == "Follow" and node.accept_follows:
            await _accept(federation, node, record.activity)

    return federation


async def _accept(federation: Federation, node: InstanceNode, follow: dict[str, Any]) -> None:
    """Answer a Follow of one of our actors with a proved Accept (ActivityPub §7.2)."""
    target = follow["object"]
    accept = {
        "@context": [
            "https://www.w3.org/ns/activitystreams",
            "https://w3id.org/security/data-integrity/v2",
        ],
        "id": node.new_id("accepts"),
        "type": "Accept",
        "actor": target,
        "object": {k: v for k, v in follow.items() if k not in ("@context", "proof")},
        "to": [follow["actor"]],
    }
    proved = node.keys[target].prove(accept)
    await federation.deliver(proved, await federation.inboxes_of([follow["actor"]]))


def make_app(node: InstanceNode) -> web.Application:
    app = web.Application(middlewares=[problem_middleware])
    app[NODE] = node
    app.cleanup_ctx.append(federation_ctx(_build_federation))
    for prefix in ("/actor", f"/groups/{GROUP}", "/users/{name}"):
        app.router.add_get(prefix, _actor)
        app.router.add_post(prefix + "/inbox", _inbox)
        app.router.add_get(prefix + "/outbox", _outbox)
    app.router.add_post("/inbox", _inbox)
    app.router.add_get("/processes/{id}", _document)
    app.router.add_get("/proposals/{id}", _document)

    async def nodeinfo() -> NodeInfoData:
        return node.nodeinfo()

    app.add_routes(nodeinfo_routes(node.origin, nodeinfo, instance_actor=node.instance_actor))
    return app


@asynccontextmanager
async def running_node(
    tmp_path: Path, name: str, port: int, territory: Territory, aggregator: str
) -> AsyncIterator[tuple[InstanceNode, TestServer]]:
    """Start a node on 127.0.0.1:port serving ``territory``, reporting to ``aggregator``."""
    node = InstanceNode(
        origin=f"http://127.0.0.1:{port}",
        territory=territory,
        db_path=tmp_path / f"{name}.sqlite3",
        aggregator=aggregator,
    )
    server = TestServer(make_app(node), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield node, server
    finally:
        await server.close()
