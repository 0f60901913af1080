"""The Publisher with the real instance app and a fake remote server, both on 127.0.0.1.

What must hold (DESIGN.md §5, §6): every stored activity carries a proof that verifies with
its actor's key; delivery rows exist for exactly the expected inboxes; the outbox row exists;
the Group's Announce embeds the member's activity unchanged; supports go only to the owner
Group and the aggregator; a refusal (rule or unreachable recipient) writes nothing; pending
deliveries survive a restart and are delivered once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from activitypub import as2
from activitypub.errors import Problem
from activitypub.integrity import ProofError, verify_document
from activitypub.runtime import FEDERATION
from activitypub.storage import DeliveryState
from federation.config import InstanceConfig
from federation.instance.actors import LocalActors
from federation.instance.app import ACCOUNTS, ACTORS, CONFIG, DB, PUBLISHER, create_app
from federation.instance.deliberation import Deliberation
from federation.instance.outbox import Publisher
from federation.instance.ports import Role, User
from federation.instance.rules import RuleViolation
from federation.instance.wiring import open_instance
from federation.store.delivery import SqliteDeliveryStore
from federation.store.outbox import OutboxStore
from federation.store.sqlite import transaction
from federation.vocab.process import process_from_ap, process_to_ap
from tests.instance_fixtures import (
    IN_PROPOSALS,
    IN_SUPPORTS,
    Clock,
    count_rows,
    instance_config,
    process_draft,
)

PASSWORD = "correct horse battery"
AS2 = "application/activity+json"


@dataclass
class FakeRemote:
    """Another server: serves the documents a test puts in, records every POST to an inbox."""

    origin: str
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def actor(self, name: str, kind: str = "Person", *, shared: bool = True) -> str:
        actor_id = f"{self.origin}/users/{name}"
        doc: dict[str, Any] = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": actor_id,
            "type": kind,
            "inbox": f"{actor_id}/inbox",
            "outbox": f"{actor_id}/outbox",
        }
        if shared:
            doc["endpoints"] = {"sharedInbox": f"{self.origin}/inbox"}
        self.docs[actor_id] = doc
        return actor_id

    def received(self, activity_id: str) -> list[str]:
        """The inbox paths an activity was POSTed to (one entry per POST)."""
        return [path for path, body in self.posts if body.get("id") == activity_id]

    def app(self) -> web.Application:
        async def get(request: web.Request) -> web.Response:
            doc = self.docs.get(self.origin + request.path)
            if doc is None:
                return web.Response(status=404)
            return web.Response(body=json.dumps(doc).encode(), content_type=AS2)

        async def post(request: web.Request) -> web.Response:
            self.posts.append((request.path, json.loads(await request.read())))
            return web.Response(status=202)

        app = web.Application()
        app.router.add_get("/{tail:.*}", get)
        app.router.add_post("/{tail:.*}", post)
        return app


@asynccontextmanager
async def serve(app: web.Application, port: int) -> AsyncIterator[TestServer]:
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def remote(unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[FakeRemote]:
    port = unused_tcp_port_factory()
    fake = FakeRemote(f"http://127.0.0.1:{port}")
    async with serve(fake.app(), port):
        yield fake


@dataclass
class Node:
    """The running instance app with a service on a test clock."""

    server: TestServer
    service: Deliberation
    clock: Clock
    users: dict[str, User]

    @property
    def app(self) -> web.Application:
        return self.server.app

    @property
    def actors(self) -> LocalActors:
        return self.app[ACTORS]

    @property
    def outbox(self) -> OutboxStore:
        return OutboxStore(self.app[DB])

    async def rows(self, activity_id: str) -> set[str]:
        return {
            d.inbox for d in await SqliteDeliveryStore(self.app[DB]).list(activity_id=activity_id)
        }

    async def settle(self) -> None:
        worker = self.app[FEDERATION].worker
        assert worker is not None
        await worker.run_until_idle(timeout=20)


async def add_follower(db: Any, follower: str, target: str, remote: FakeRemote, name: str) -> None:
    async with transaction(db):
        await OutboxStore(db).put_follow(
            f"{remote.origin}/follows/{name}", follower, target,
            inbox=f"{follower}/inbox", shared_inbox=f"{remote.origin}/inbox",
            state="accepted", now=1.0,
        )  # fmt: skip


@asynccontextmanager
async def running(config: InstanceConfig) -> AsyncIterator[Node]:
    async with serve(create_app(config), config.listen_port) as server:
        app, clock = server.app, Clock()
        publisher = app[PUBLISHER]
        service = Deliberation(
            app[DB], app[ACTORS], app[CONFIG], publisher,
            federation=lambda: app.get(FEDERATION), clock=clock,
        )  # fmt: skip
        users: dict[str, User] = {}
        for name, role in (("admin", Role.ADMIN), ("alice", Role.RESIDENT), ("bob", Role.RESIDENT)):
            await app[ACCOUNTS].create_user(name, PASSWORD, role)
            users[name] = await app[ACCOUNTS].verify(name, "01", by="test")
        yield Node(server, service, clock, users)


async def verify_with_our_actors(actors: LocalActors, document: dict[str, Any]) -> str:
    """Verify a proof against our own actor documents, fetched from memory."""

    async def fetch(url: str, refresh: bool) -> dict[str, Any]:
        actor = await actors.find(url)
        assert actor is not None, url
        return await actors.document(actor)

    return (await verify_document(document, fetch)).controller


async def test_publish_proves_stores_and_queues_for_exactly_the_followers(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int], remote: FakeRemote
) -> None:
    aggregator = remote.actor("city", "Service", shared=False)
    fan = remote.actor("fan")
    config = instance_config(tmp_path, unused_tcp_port_factory(), report_to=(aggregator,))
    async with running(config) as node:
        group, alice = node.actors.group_id, node.actors.person_id("alice")
        await add_follower(node.app[DB], fan, group, remote, "g")
        await add_follower(node.app[DB], fan, alice, remote, "a")
        process = await node.service.create_process(process_draft(), by=node.users["admin"])
        node.clock.now = IN_PROPOSALS
        proposal = await node.service.create_proposal(
            node.users["alice"], process.id, name="Bancs", body_markdown="Més bancs"
        )
        create = (await node.outbox.activities_about(proposal.id))[0]
        announce = (await node.outbox.activities_about(create.activity_id))[0]
        assert await verify_with_our_actors(node.actors, create.document) == alice
        tampered = json.loads(
            json.dumps(create.document, ensure_ascii=False).replace("Més bancs", "Més cotxes")
        )
        with pytest.raises(ProofError):
            await verify_with_our_actors(node.actors, tampered)
        assert await verify_with_our_actors(node.actors, announce.document) == group
        inner = as2.embedded(announce.document, "object")
        assert inner == create.document
        assert await verify_with_our_actors(node.actors, inner) == alice
        shared = f"{remote.origin}/inbox"
        assert await node.rows(create.activity_id) == {shared}  # collapsed onto the shared inbox
        assert await node.rows(announce.activity_id) == {shared}
        node.clock.now = IN_SUPPORTS
        support = await node.service.support(node.users["bob"], proposal.id)
        stored = await node.outbox.get_activity(support.id)
        assert stored is not None and stored.document["to"] == [group, aggregator]
        assert await verify_with_our_actors(node.actors, stored.document) == node.actors.person_id(
            "bob"
        )
        # the local Group gets it in-process; over HTTP only the aggregator's own inbox
        assert await node.rows(support.id) == {f"{aggregator}/inbox"}
        await node.settle()
    assert remote.received(create.activity_id) == ["/inbox"]
    assert remote.received(announce.activity_id) == ["/inbox"]
    assert remote.received(support.id) == ["/users/city/inbox"]


async def test_a_proposal_into_a_remote_process_goes_to_its_group(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int], remote: FakeRemote
) -> None:
    city_group = remote.actor("city_group", "Group")
    process_id = f"{remote.origin}/processes/city-1"
    draft = process_draft() | {
        "id": process_id, "attributedTo": city_group, "published": "2026-01-10T10:00:00Z",
    }  # fmt: skip
    remote.docs[process_id] = process_to_ap(process_from_ap(draft))
    config = instance_config(tmp_path, unused_tcp_port_factory())
    async with running(config) as node:
        process = await node.service.follow_remote_process(process_id)
        assert process.owner == city_group
        assert [p.id for p in await node.service.list_processes()] == [process_id]
        follow = await node.outbox.find_follow(node.actors.group_id, city_group)
        assert follow is not None and follow.state == "pending"
        assert await node.rows(follow.follow_id) == {f"{remote.origin}/inbox"}
        node.clock.now = IN_PROPOSALS
        proposal = await node.service.create_proposal(
            node.users["alice"], process_id, name="Carril bici", body_markdown="Al carrer Gran"
        )
        assert proposal.id.startswith(config.base_url + "/proposals/")
        assert proposal.audience == city_group and proposal.process == process_id
        create = (await node.outbox.activities_about(proposal.id))[0]
        assert city_group in create.document["cc"]
        assert await node.rows(create.activity_id) == {f"{remote.origin}/inbox"}
        await node.settle()
    assert remote.received(create.activity_id) == ["/inbox"]


async def test_refusals_write_nothing(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int], remote: FakeRemote
) -> None:
    config = instance_config(tmp_path, unused_tcp_port_factory())
    async with running(config) as node:
        publisher: Publisher = node.app[PUBLISHER]
        group = node.actors.group_id
        await add_follower(node.app[DB], remote.actor("fan"), group, remote, "g")
        before = await count_rows(node.app[DB])

        async def write(db: Any) -> None:
            await OutboxStore(db).put_follow(
                "https://x.example/f", "https://x.example/u", group, inbox=None,
                shared_inbox=None, state="accepted", now=1.0,
            )  # fmt: skip
            raise RuleViolation("already_supported", 409, "refused inside the transaction")

        note = {
            "id": f"{config.base_url}/activities/t1",
            "type": "Create",
            "actor": group,
            "to": [as2.PUBLIC],
            "object": {"id": f"{config.base_url}/notes/1", "type": "Note"},
        }
        with pytest.raises(RuleViolation):
            await publisher.publish(
                note, actor=group, public=True, recipients=[group + "/followers"], write=write
            )
        assert await count_rows(node.app[DB]) == before
        with pytest.raises(Problem) as caught:
            await publisher.publish(
                note, actor=group, public=True, recipients=[f"{remote.origin}/users/nobody"]
            )
        assert caught.value.status == 503
        assert caught.value.extensions["reason"] == "recipient_unreachable"
        assert await count_rows(node.app[DB]) == before
        await publisher.publish(note, actor=group, public=True, recipients=[group + "/followers"])
        after = await count_rows(node.app[DB])
        assert after["activities"] == before["activities"] + 1
        assert after["deliveries"] == before["deliveries"] + 1


async def test_pending_deliveries_survive_a_restart_and_go_out_once(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int], remote: FakeRemote
) -> None:
    config = instance_config(tmp_path, unused_tcp_port_factory())
    fan = remote.actor("fan")
    # Published while the server is down (as `barri admin process create` does): rows wait.
    async with open_instance(config) as instance:
        await instance.actors.ensure_server_actors()
        admin = await instance.accounts.create_user("admin", PASSWORD, Role.ADMIN)
        await add_follower(instance.db, fan, instance.actors.group_id, remote, "g")
        publisher = Publisher(instance.db, instance.actors, config)
        service = Deliberation(instance.db, instance.actors, config, publisher)
        process = await service.create_process(process_draft(), by=admin)
        created = (await OutboxStore(instance.db).activities_about(process.id))[0]
        pending = await SqliteDeliveryStore(instance.db).list(activity_id=created.activity_id)
        assert [(d.inbox, d.state) for d in pending] == [
            (f"{remote.origin}/inbox", DeliveryState.NEW)
        ]
    assert remote.posts == []
    for _ in range(2):  # start, deliver, stop; start again: nothing more goes out
        async with serve(create_app(config), config.listen_port) as server:
            worker = server.app[FEDERATION].worker
            assert worker is not None
            await worker.run_until_idle(timeout=20)
            rows = await SqliteDeliveryStore(server.app[DB]).list(activity_id=created.activity_id)
            assert [d.state for d in rows] == [DeliveryState.SENT]
        await asyncio.sleep(0)
    assert remote.received(created.activity_id) == ["/inbox"]
    assert remote.posts[0][1] == created.document  # what was stored is what was delivered
