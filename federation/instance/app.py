"""The neighbourhood instance's aiohttp application: actors, inboxes, discovery, health.

``create_app(config)`` wires everything; the database and the protocol runtime are opened and
closed in ``cleanup_ctx`` (DESIGN.md §2), and every shared object sits under a ``web.AppKey``.
The process/proposal domain adds its routes, inbox handlers and NodeInfo counts on top.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import aiosqlite
from aiohttp import web

from activitypub import jsontext
from activitypub.errors import Handler, Problem, problem_middleware
from activitypub.fetch import AS2_PROFILE, parse_media_type
from activitypub.hostmeta import host_meta_routes
from activitypub.nodeinfo import nodeinfo_routes
from activitypub.runtime import FEDERATION, Federation, FederationConfig, federation_ctx
from activitypub.webfinger import WELL_KNOWN_PATH, webfinger_handler
from federation.config import InstanceConfig
from federation.instance.accounts import Accounts
from federation.instance.actors import (
    APPLICATION_PATH,
    GROUPS_PATH,
    SHARED_INBOX_PATH,
    USERS_PATH,
    ActorDocumentHook,
    LocalActor,
    LocalActors,
)
from federation.instance.deliberation import Deliberation
from federation.instance.discovery import InstanceNodeInfo, WebFingerDirectory
from federation.instance.inbound import admits_official_answer
from federation.instance.outbox import Publisher
from federation.instance.wiring import Instance, open_instance
from federation.store.delivery import SqliteDeliveryStore
from federation.store.group_inbox import GroupCommitInboxStore, KeptBodies
from federation.store.remote_actors import RemoteActors

AS2_TYPE = "application/activity+json"
LD_AS2_TYPE = f'application/ld+json; profile="{AS2_PROFILE}"'
COLLECTIONS = ("outbox", "followers", "following")

CONFIG = web.AppKey("barri.config", InstanceConfig)
INSTANCE = web.AppKey("barri.instance", Instance)
DB = web.AppKey("barri.db", aiosqlite.Connection)
ACCOUNTS = web.AppKey("barri.accounts", Accounts)
ACTORS = web.AppKey("barri.actors", LocalActors)
NODEINFO = web.AppKey("barri.nodeinfo", InstanceNodeInfo)
PUBLISHER = web.AppKey("barri.publisher", Publisher)
DELIBERATION = web.AppKey("barri.deliberation", Deliberation)


def create_app(
    config: InstanceConfig, *, document_hook: ActorDocumentHook | None = None
) -> web.Application:
    """The instance app; nothing is opened until the app starts (DESIGN.md §2, §3, §6)."""
    # Imported here, not at the top: both modules import this one for its AppKeys, so a
    # top-level import would fail whenever one of them is imported first.
    from federation.instance import c2s, readside
    from federation.instance.handlers import setup_handlers
    from federation.instance.oauth import setup_oauth
    from federation.instance.web import setup_pages

    app = web.Application(middlewares=[problem_middleware])
    app[CONFIG] = config
    app[NODEINFO] = InstanceNodeInfo(config)
    # Residents' documents name the OAuth endpoints and their client keys (FEP-d8c2, C2S).
    app.cleanup_ctx.append(_instance_ctx(c2s.document_hook(app, document_hook)))
    app.cleanup_ctx.append(federation_ctx(_build_federation))
    _add_actor_routes(app, c2s.collection_handler)  # the read side's, or C2S with a token
    _add_discovery_routes(app, config)
    app.router.add_get("/healthz", _healthz)
    setup_handlers(app)  # inbound activities, under the same rules as local acts
    readside.setup_readside(app)  # objects by id, process/thread collections, supports
    setup_pages(app)  # the HTML pages for residents and admins
    setup_oauth(app)  # OAuth 2.0 for C2S clients: metadata, consent, token, revocation
    c2s.setup_c2s(app)  # POST outbox, GET inbox, client keys (DESIGN.md §6 "C2S")
    return app


def _instance_ctx(document_hook: ActorDocumentHook | None) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_instance(app[CONFIG], document_hook=document_hook) as instance:
            # Keys of the server actors exist before the first request can ask for them.
            await instance.actors.ensure_server_actors()
            app[INSTANCE], app[DB] = instance, instance.db
            app[ACCOUNTS], app[ACTORS] = instance.accounts, instance.actors
            app[NODEINFO].users = instance.users.count_users

            # The runtime starts after this context: both find it through the app when needed.
            def federation() -> Federation | None:
                return app.get(FEDERATION)

            publisher = Publisher(instance.db, instance.actors, app[CONFIG], federation=federation)
            deliberation = Deliberation(
                instance.db, instance.actors, app[CONFIG], publisher, federation=federation
            )
            app[PUBLISHER], app[DELIBERATION] = publisher, deliberation
            app[NODEINFO].register_count("processes", deliberation.count_local_processes)
            yield

    return context


async def _build_federation(app: web.Application) -> Federation:
    """The protocol runtime: fetches signed as the instance actor, deliveries as their sender.

    The inbound handlers are registered before it starts, so rows left from the previous run
    find them; the inbox admits the owning Group's official answer (re-checked in full).
    """
    from federation.instance.handlers import register_handlers

    config, actors, db = app[CONFIG], app[ACTORS], app[DB]
    federation = Federation(
        FederationConfig(
            origin=config.base_url,
            allow_loopback=config.allow_loopback,
            allow_http=config.allow_loopback,
            delivery_concurrency=config.delivery_concurrency,
        ),
        delivery_store=SqliteDeliveryStore(db),
        # Deliveries waiting at the same moment share one INSERT (group commit); a handled row
        # keeps its body when a resident's C2S inbox may list it.
        inbox_store=GroupCommitInboxStore(
            db, keep_bodies=KeptBodies(actors.shared_inbox, actors.base + USERS_PATH)
        ),
        instance_keys=await actors.keys_for(actors.application_id),
        local_keys=actors.keys_for,
    )
    federation.pipeline.owner_exception = admits_official_answer
    # Actors fetched once stay readable past the memory cache (a city process hears from every
    # resident): kept on fetch, read back on a miss while younger than the cache's TTL.
    remote = RemoteActors(db)
    federation.actor_observers.append(remote.keep)
    federation.stored_actors = remote.stored
    register_handlers(app, federation.dispatcher)
    return federation


def _add_actor_routes(app: web.Application, collection: Handler) -> None:
    """Actors, their inboxes, and their collections (served by ``collection``)."""
    collections = "{collection:" + "|".join(COLLECTIONS) + "}"
    for prefix in (APPLICATION_PATH, GROUPS_PATH + "{name}", USERS_PATH + "{name}"):
        app.router.add_get(prefix, _actor)
        app.router.add_post(prefix + "/inbox", _actor_inbox)
        app.router.add_get(f"{prefix}/{collections}", collection)
    app.router.add_post(SHARED_INBOX_PATH, _shared_inbox)


def _add_discovery_routes(app: web.Application, config: InstanceConfig) -> None:
    async def lookup(resource: str) -> Any:
        return await WebFingerDirectory(app[ACTORS])(resource)

    app.router.add_get(WELL_KNOWN_PATH, webfinger_handler(lookup))
    instance_actor = config.base_url + APPLICATION_PATH
    app.add_routes(nodeinfo_routes(config.base_url, app[NODEINFO], instance_actor=instance_actor))
    app.add_routes(host_meta_routes(config.base_url))


def wants_ld_json(accept: str) -> bool:
    """True when the client asks for ``ld+json`` with the AS2 profile and not activity+json."""
    offered = [parse_media_type(part) for part in accept.split(",") if part.strip()]
    if any(media == AS2_TYPE for media, _ in offered):
        return False
    return any(
        media == "application/ld+json" and AS2_PROFILE in params.get("profile", "").split()
        for media, params in offered
    )


def as2_response(request: web.Request, document: dict[str, Any]) -> web.Response:
    """An AS2 document in the media type the client asked for (ActivityPub §3.2)."""
    # Browsers (text/html) get AS2 too until the HTML pages arrive with the domain.
    content_type = LD_AS2_TYPE if wants_ld_json(request.headers.get("Accept", "")) else AS2_TYPE
    return jsontext.json_response(document, content_type=content_type, headers={"Vary": "Accept"})


async def _local_actor(request: web.Request, suffix: str = "") -> LocalActor:
    """The local actor a route names; 404 problem when there is none."""
    path = request.path.removesuffix(suffix)
    actor = await request.app[ACTORS].find(request.app[CONFIG].base_url + path)
    if actor is None:
        raise Problem(404, "Not Found", f"There is no actor at {path} on this instance.")
    return actor


async def _actor(request: web.Request) -> web.Response:
    """GET an actor document. No signature is checked on actors: they are public, and the
    instance actor must be fetchable unsigned or two servers would fetch each other's
    actors forever to verify each other's fetches (GoToSocial's mutual-dereference guard)."""
    actor = await _local_actor(request)
    return as2_response(request, await request.app[ACTORS].document(actor))


async def _actor_inbox(request: web.Request) -> web.Response:
    """POST to an actor's inbox: authenticated, recorded, 202 (DESIGN.md §6)."""
    await _local_actor(request, "/inbox")
    return await request.app[FEDERATION].pipeline.handle(request)


async def _shared_inbox(request: web.Request) -> web.Response:
    """POST to the shared inbox (ActivityPub §7.1.3)."""
    return await request.app[FEDERATION].pipeline.handle(request)


async def _healthz(request: web.Request) -> web.Response:
    """Liveness and database check, for monitors and container health probes (DESIGN.md §8)."""
    try:
        await request.app[DB].execute_fetchall("SELECT COUNT(*) FROM schema_migrations")
    except (sqlite3.Error, ValueError) as exc:
        raise Problem(503, "Service Unavailable", f"database check failed: {exc}") from exc
    return web.json_response({"status": "ok", "database": "ok"})
