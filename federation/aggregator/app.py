"""The city aggregator's aiohttp application (DESIGN.md §2, §3, §7).

``create_app(config)`` serves the ``Service`` actor at ``/actor`` (keys generated on first
start), WebFinger, NodeInfo 2.1 (FEP-2677 instance actor), host-meta, the shared inbox
``/inbox`` (and ``/actor/inbox``) into the protocol pipeline, the Service's outbox (its
Tallies), each Tally at its id, the JSON API and exports, the results pages, ``/metrics`` and
``/healthz``. The database, the tally rebuild, the protocol runtime, the Tally publisher and
the backfill loop (at start, then every ``backfill_minutes``) are opened and closed in
``cleanup_ctx``; shared objects sit under ``web.AppKey``s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from activitypub.collections import (
    PageResult,
    first_page_url,
    ordered_collection,
    ordered_collection_page,
    page_sequence,
    page_url_for,
    parse_page_request,
)
from activitypub.errors import Problem, problem_middleware
from activitypub.hostmeta import host_meta_routes
from activitypub.nodeinfo import NodeInfoData, nodeinfo_routes
from activitypub.runtime import FEDERATION, Federation
from activitypub.webfinger import WELL_KNOWN_PATH, WebFingerAccount, acct_uri, webfinger_handler
from federation.aggregator.api import add_api_routes
from federation.aggregator.backfill_pool import backfill_at_start
from federation.aggregator.config import AggregatorConfig
from federation.aggregator.exports import add_export_routes
from federation.aggregator.metrics import metrics_handler
from federation.aggregator.pages import add_page_routes
from federation.aggregator.service import ACTOR_PATH, COLLECTIONS, SHARED_INBOX_PATH
from federation.aggregator.wiring import (
    Aggregator,
    Runtime,
    build_federation,
    build_runtime,
    open_aggregator,
    register_handlers,
)
from federation.model import Tombstone
from federation.store.paging import SEQ_SHAPE
from federation.vocab.deletion import tombstone_to_ap

log = logging.getLogger(__name__)

AS2_TYPE = "application/activity+json"
SOFTWARE_NAME = "barri"

CONFIG = web.AppKey("barri.aggregator.config", AggregatorConfig)
AGGREGATOR = web.AppKey("barri.aggregator", Aggregator)
RUNTIME = web.AppKey("barri.aggregator.runtime", Runtime)
BACKFILL_TASK = web.AppKey("barri.aggregator.backfill_task", asyncio.Task[Any])
PUBLISHER_TASK = web.AppKey("barri.aggregator.publisher_task", asyncio.Task[Any])


def create_app(config: AggregatorConfig, *, backfill_on_start: bool = True) -> web.Application:
    """The aggregator app; nothing is opened until it starts (DESIGN.md §2)."""
    app = web.Application(middlewares=[problem_middleware])
    app[CONFIG] = config
    app.cleanup_ctx.append(_aggregator_ctx)
    app.cleanup_ctx.append(_federation_ctx)
    app.cleanup_ctx.append(_publisher_ctx)
    app.cleanup_ctx.append(_backfill_ctx(backfill_on_start))
    app.router.add_get(ACTOR_PATH, _actor)
    app.router.add_post(ACTOR_PATH + "/inbox", _inbox)
    app.router.add_post(SHARED_INBOX_PATH, _inbox)
    collections = "{collection:" + "|".join(COLLECTIONS) + "}"
    app.router.add_get(f"{ACTOR_PATH}/{collections}", _collection)
    app.router.add_get("/tallies/{id}", _published)
    app.router.add_get("/activities/{id}", _published)
    _add_discovery_routes(app, config)
    add_api_routes(app, _aggregator, _roster)
    add_export_routes(app, _aggregator)
    add_page_routes(app, _aggregator, _roster)
    app.router.add_get("/metrics", metrics_handler(_aggregator, _runtime))
    app.router.add_get("/healthz", _healthz)
    return app


async def _aggregator_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_aggregator(app[CONFIG]) as aggregator:
        app[AGGREGATOR] = aggregator
        yield


async def _federation_ctx(app: web.Application) -> AsyncIterator[None]:
    """The protocol runtime, with the inbox handlers registered before it starts."""
    aggregator = app[AGGREGATOR]
    federation = await build_federation(aggregator)
    runtime = build_runtime(aggregator, federation)
    register_handlers(aggregator, runtime)
    await federation.start()
    app[FEDERATION], app[RUNTIME] = federation, runtime
    yield
    await federation.stop()


async def _publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Tally publisher's loop: debounced Tallies on change, final ones on time."""
    task = asyncio.create_task(app[RUNTIME].publisher.run(), name="aggregator-publisher")
    app[PUBLISHER_TASK] = task
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _backfill_ctx(at_start: bool) -> Any:
    """Catch up with every roster instance: at start (unless told not to), then periodically."""

    async def catch_up(app: web.Application, what: str, *, first: bool = False) -> None:
        try:
            if first:  # shared among worker processes when it is a rebuild from nothing
                report = await backfill_at_start(app[AGGREGATOR], app[RUNTIME])
            else:
                report = await app[RUNTIME].backfill.run()
        except Exception:
            # A background task has nobody to raise to: say it, the next pass tries again.
            log.exception("%s failed", what)
            return
        log.info("%s: %s", what, report)

    async def periodically(app: web.Application) -> None:
        interval = app[CONFIG].backfill_minutes * 60.0
        if at_start:
            await app[BACKFILL_TASK]
        while interval > 0:
            await asyncio.sleep(interval)
            await catch_up(app, "periodic backfill")

    async def context(app: web.Application) -> AsyncIterator[None]:
        tasks = []
        if at_start:
            first = asyncio.create_task(
                catch_up(app, "backfill at start", first=True), name="backfill"
            )
            app[BACKFILL_TASK] = first
            tasks.append(first)
        tasks.append(asyncio.create_task(periodically(app), name="aggregator-backfill-loop"))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context


def software_version() -> str:
    """The installed ``barri`` version (``0+unknown`` when run from a bare tree)."""
    try:
        return version(SOFTWARE_NAME)
    except PackageNotFoundError:
        return "0+unknown"


def _roster(request: web.Request) -> Any:
    return request.app[RUNTIME].roster


def _aggregator(request: web.Request) -> Aggregator:
    return request.app[AGGREGATOR]


def _runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def _add_discovery_routes(app: web.Application, config: AggregatorConfig) -> None:
    actor_id = config.base_url + ACTOR_PATH
    handle = config.hostname

    async def lookup(resource: str) -> WebFingerAccount | None:
        acct = acct_uri(handle, config.host)
        if resource.lower() == acct.lower() or resource == actor_id:
            return WebFingerAccount(subject=acct, actor_id=actor_id, aliases=(actor_id,))
        if resource.rstrip("/") == config.base_url:
            # FEP-d556: the server's own URL names its server-level actor.
            return WebFingerAccount(subject=resource, actor_id=actor_id, aliases=(acct, actor_id))
        return None

    async def nodeinfo() -> NodeInfoData:
        return NodeInfoData(
            software_name=SOFTWARE_NAME,
            software_version=software_version(),
            open_registrations=False,
            users_total=None,
            users_active_month=None,
            users_active_halfyear=None,
            local_posts=None,
            metadata={
                "nodeName": config.name,
                "barri": {"kind": "aggregator", "city": config.city},
            },
        )

    app.router.add_get(WELL_KNOWN_PATH, webfinger_handler(lookup))
    app.add_routes(nodeinfo_routes(config.base_url, nodeinfo, instance_actor=actor_id))
    app.add_routes(host_meta_routes(config.base_url))


def _as2(document: dict[str, Any]) -> web.Response:
    body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    return web.Response(body=body, headers={"Content-Type": AS2_TYPE, "Vary": "Accept"})


async def _actor(request: web.Request) -> web.Response:
    """GET the Service actor; unsigned, as instance actors are (no mutual-fetch loops)."""
    return _as2(await request.app[AGGREGATOR].service.document())


async def _inbox(request: web.Request) -> web.Response:
    """POST to the Service's inbox or the shared inbox: authenticated, recorded, 202 (§6)."""
    return await request.app[RUNTIME].door.handle(request)


async def _collection(request: web.Request) -> web.Response:
    """The Service's outbox (its Tallies' ``Create``s), followers and following (AS2 §5.3)."""
    name = request.match_info["collection"]
    collection_id = f"{request.app[CONFIG].base_url}{ACTOR_PATH}/{name}"
    aggregator = request.app[AGGREGATOR]
    try:
        page = parse_page_request(request.query, key_shape=SEQ_SHAPE)
    except ValueError as exc:
        raise Problem(400, "Bad Request", f"Bad paging parameters: {exc}.") from exc
    if name == "outbox":
        total = await aggregator.published.count()
    else:
        listed = await _listed(aggregator, name)
        total = len(listed)
    if page is None:
        return _as2(ordered_collection(collection_id, total, first=first_page_url(collection_id)))
    if name == "outbox":
        try:
            rows = await aggregator.published.page(page)
        except ValueError as exc:
            raise Problem(400, "Bad Request", f"Bad paging parameters: {exc}.") from exc
        items = [json.loads(row.activity) for row in rows.items]
        result = PageResult(items, rows.next_cursor, rows.prev_cursor)
    else:
        result = page_sequence([((n,), actor) for n, actor in enumerate(listed)], page)
    page_id = request.app[CONFIG].base_url + request.path_qs
    return _as2(
        ordered_collection_page(
            collection_id, page_id, result, page_url=page_url_for(collection_id), total_items=total
        )
    )


async def _listed(aggregator: Aggregator, name: str) -> list[str]:
    """Who follows the Service, or whom it follows (accepted Follows of roster instances)."""
    if name == "followers":
        return [row.actor for row in await aggregator.published.followers()]
    return sorted({f.target for f in await aggregator.store.follows() if f.state == "accepted"})


async def _published(request: web.Request) -> web.Response:
    """A Tally, or the ``Create`` that carried it, at its id (signed, as published); 410 and
    a Tombstone once a newer Tally of its process superseded it (ActivityPub §6.4)."""
    object_id = request.app[CONFIG].base_url + request.path
    published = request.app[AGGREGATOR].published
    row = await published.by_id(object_id)
    if row is not None:
        return _as2(row.tally() if row.id == object_id else json.loads(row.activity))
    gone = await published.superseded(object_id)
    if gone is None:
        raise Problem(404, "Not Found", f"The aggregator published nothing at {request.path}.")
    kind = "Tally" if gone.id == object_id else "Create"
    when = datetime.fromtimestamp(gone.superseded_at, UTC)
    response = _as2(tombstone_to_ap(Tombstone(object_id, kind, when)))
    response.set_status(410)
    return response


async def _healthz(request: web.Request) -> web.Response:
    """Liveness and database check (DESIGN.md §8)."""
    aggregator = request.app[AGGREGATOR]
    try:
        await aggregator.db.execute_fetchall("SELECT COUNT(*) FROM schema_migrations")
    except (sqlite3.Error, ValueError) as exc:
        raise Problem(503, "Service Unavailable", f"database check failed: {exc}") from exc
    roster = await aggregator.store.roster(active_only=True)
    return web.json_response({"status": "ok", "database": "ok", "instances": len(roster)})


__all__ = ["AGGREGATOR", "CONFIG", "RUNTIME", "Federation", "create_app"]
