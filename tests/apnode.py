"""A minimal ActivityPub node built only from the protocol package, for loopback tests.

Each node is a real aiohttp server on 127.0.0.1 with a real SQLite file: actors with RSA and
Ed25519 keys, a shared inbox and per-actor inboxes through :class:`InboxPipeline`, signed
fetches and a durable delivery queue through :class:`Federation`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from activitypub.actors import ActorProfile, actor_document
from activitypub.errors import Problem, problem_middleware
from activitypub.keys import generate_ed25519, generate_rsa
from activitypub.runtime import FEDERATION, Federation, FederationConfig, LocalKeys, federation_ctx
from activitypub.storage import InboxRecord
from activitypub.webfinger import WebFingerAccount, webfinger_handler
from federation.store.delivery import SqliteDeliveryStore
from federation.store.inbox import SqliteInboxStore
from federation.store.sqlite import open_database


@dataclass
class NodeState:
    """What a test can observe and steer on a node."""

    origin: str
    db_path: Path
    keys: dict[str, LocalKeys] = field(default_factory=dict)
    handled: list[InboxRecord] = field(default_factory=list)
    fetched_by: list[str | None] = field(default_factory=list)
    fetch_keys: list[str] = field(default_factory=list)  # the keyIds signed GETs verified with
    actor_hits: dict[str, int] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def actor_id(self, name: str) -> str:
        """The id of local actor ``name``."""
        return f"{self.origin}/users/{name}"

    def add_actor(self, name: str) -> LocalKeys:
        """Create (or rotate) the keys of local actor ``name``."""
        keys = LocalKeys(self.actor_id(name), generate_rsa(), generate_ed25519())
        self.keys[name] = keys
        return keys

    def profile(self, name: str) -> ActorProfile:
        """The actor's profile as its document publishes it."""
        actor_id, keys = self.actor_id(name), self.keys[name]
        return ActorProfile(
            id=actor_id,
            type="Application" if name == "instance" else "Person",
            preferred_username=name,
            name=name.title(),
            summary=None,
            inbox=f"{actor_id}/inbox",
            outbox=f"{actor_id}/outbox",
            followers=f"{actor_id}/followers",
            following=f"{actor_id}/following",
            shared_inbox=f"{self.origin}/inbox",
            url=None,
            rsa_public_key=keys.rsa.public_key(),
            ed25519_public_key=keys.ed25519.public_key(),
        )


NODE = web.AppKey("node", NodeState)


def make_app(state: NodeState) -> web.Application:
    """A node app: actors, inboxes, WebFinger, and the protocol runtime in a cleanup_ctx."""
    app = web.Application(middlewares=[problem_middleware])
    app[NODE] = state
    app.cleanup_ctx.append(federation_ctx(_build_federation))
    app.router.add_get("/users/{name}", _actor)
    app.router.add_post("/users/{name}/inbox", _inbox)
    app.router.add_post("/inbox", _inbox)
    app.router.add_get("/.well-known/webfinger", webfinger_handler(_lookup(state)))
    return app


async def _build_federation(app: web.Application) -> Federation:
    state = app[NODE]
    db = await open_database(state.db_path)
    app.on_cleanup.append(lambda _app: db.close())

    async def local_keys(actor_id: str) -> LocalKeys:
        return state.keys[actor_id.rsplit("/", 1)[1]]

    federation = Federation(
        FederationConfig(origin=state.origin, allow_loopback=True, allow_http=True),
        delivery_store=SqliteDeliveryStore(db),
        inbox_store=SqliteInboxStore(db),
        instance_keys=state.keys["instance"],
        local_keys=local_keys,
    )

    @federation.dispatcher.on("Create", "Like", "Undo", "Announce", "Update", "Delete")
    async def collect(record: InboxRecord) -> None:
        state.handled.append(record)
        state.arrived.set()

    return federation


async def _actor(request: web.Request) -> web.Response:
    state, name = request.app[NODE], request.match_info["name"]
    if name not in state.keys:
        raise Problem(404, "Not Found", f"no actor {name}")
    # The instance actor is served without looking at signatures: verifying would make the
    # fetching server fetch ours, and so on, a mutual-dereference loop (GoToSocial's guard).
    if name != "instance":
        signer = await request.app[FEDERATION].authenticate_get(request)
        state.fetched_by.append(signer.owner if signer else None)
        if signer is not None:
            state.fetch_keys.append(signer.key_id)
    state.actor_hits[name] = state.actor_hits.get(name, 0) + 1
    return web.json_response(
        actor_document(state.profile(name)), content_type="application/activity+json"
    )


async def _inbox(request: web.Request) -> web.Response:
    return await request.app[FEDERATION].pipeline.handle(request)


def _lookup(state: NodeState) -> Any:
    async def lookup(resource: str) -> WebFingerAccount | None:
        name = resource.removeprefix("acct:").split("@", 1)[0]
        if name not in state.keys:
            return None
        host = state.origin.split("://", 1)[1]
        return WebFingerAccount(subject=f"acct:{name}@{host}", actor_id=state.actor_id(name))

    return lookup


async def start_node(
    tmp_path: Path, name: str, port: int
) -> AsyncIterator[tuple[NodeState, TestServer]]:
    """Start a node on 127.0.0.1:port with actors 'instance', 'alice' and 'bob'."""
    state = NodeState(origin=f"http://127.0.0.1:{port}", db_path=tmp_path / f"{name}.sqlite3")
    for actor in ("instance", "alice", "bob"):
        state.add_actor(actor)
    server = TestServer(make_app(state), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield state, server
    finally:
        await server.close()
