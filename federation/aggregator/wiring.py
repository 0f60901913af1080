"""One aggregator's database, stores, Service actor and tally, for the app and the CLI.

:func:`open_aggregator` opens the SQLite file (applying ``AGGREGATOR_MIGRATIONS``), makes sure
the Service has keys and rebuilds the tally from the stored verified activities.
:func:`build_federation` and :func:`build_runtime` add the protocol runtime and what needs it
(ingest, roster, backfill); :func:`register_handlers` plugs ingest into the inbox dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiosqlite

from activitypub import as2
from activitypub.fetch import Fetcher, FetchError
from activitypub.runtime import WARM_CONCURRENCY, Federation, FederationConfig
from activitypub.storage import InboxRecord
from activitypub.verifier import shared_verifier
from federation.aggregator.backfill import Backfiller
from federation.aggregator.config import AggregatorConfig
from federation.aggregator.documents import Documents
from federation.aggregator.door import DoorPipeline, ReplayRecordingStore, admits_official_answer
from federation.aggregator.followers import Followers
from federation.aggregator.ingest import Ingest, Provenance
from federation.aggregator.merge import Merger
from federation.aggregator.publish import TallyPublisher
from federation.aggregator.quota import OffRosterQuota
from federation.aggregator.roster import RosterService
from federation.aggregator.service import ServiceActor
from federation.aggregator.state import TallyState
from federation.serving import StartupError
from federation.store.aggregator import AggregatorStore, Refusal
from federation.store.aggregator_log import ActivityLog
from federation.store.aggregator_merge import MergeStore
from federation.store.aggregator_publish import PublishStore
from federation.store.aggregator_schema import AGGREGATOR_MIGRATIONS
from federation.store.delivery import SqliteDeliveryStore
from federation.store.group_inbox import GroupCommitInboxStore
from federation.store.sqlite import SchemaError, open_database
from federation.tally.records import normal_origin

#: Recorded inbox rows handled (and their votes written) together.
INBOX_BATCH = 128
#: Seconds the inbox waits once woken after a batch that was not full, so deliveries arriving
#: meanwhile share a batch: keeping up with the ci city at 171 acts/s it handled 1.45 rows per
#: batch, and each batch's claim, commit (with a tally sync) and marking done cost more than
#: its rows (2.6 ms CPU per act); at a sustained 1,000 supports/s (bench_latency) batches grew
#: from 8 to 65 rows and the aggregator's CPU per support fell 0.96 -> 0.76 ms.
INBOX_LINGER = 0.05
#: Actor documents the aggregator keeps in memory. A city's voters outnumber any sensible
#: cache (22,450 in Barcelona), and each one's document is also in the residents table without
#: its @context, where a miss reads it back in a point SELECT and a 1.3 KB parse (~15 µs):
#: 2,000 entries rather than the default 10,000 leave ~30 MB to the tally.
ACTOR_CACHE_ENTRIES = 2_000
#: The activity types the aggregator's inbox handles.
VOTE_TYPES = frozenset({"Like", "Undo"})
HANDLED_TYPES = (
    "Like", "Undo", "Announce", "Create", "Update", "Delete", "Accept", "Reject", "Follow",
)  # fmt: skip


@dataclass(frozen=True)
class Aggregator:
    """What the aggregator's code shares: config, connection, stores, Service actor, tally."""

    config: AggregatorConfig
    db: aiosqlite.Connection
    store: AggregatorStore
    log: ActivityLog
    service: ServiceActor
    state: TallyState
    merged: MergeStore
    published: PublishStore


@dataclass(frozen=True)
class Runtime:
    """What needs the protocol runtime: caches, ingest, roster, backfill and publication."""

    federation: Federation
    documents: Documents
    ingest: Ingest
    roster: RosterService
    backfill: Backfiller
    door: DoorPipeline
    followers: Followers
    publisher: TallyPublisher


async def _open(config: AggregatorConfig) -> aiosqlite.Connection:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        return await open_database(config.database, migrations=AGGREGATOR_MIGRATIONS)
    except (OSError, sqlite3.Error, SchemaError, ValueError) as exc:
        raise StartupError(f"cannot open the database {config.database}: {exc}") from exc


@asynccontextmanager
async def open_aggregator(
    config: AggregatorConfig, *, counting: bool = True
) -> AsyncIterator[Aggregator]:
    """Open the database, ensure the Service's keys, rebuild the tally (only the roster when
    not ``counting``: a process that writes rows for the server to count); close at the end."""
    db = await _open(config)
    try:
        store, log = AggregatorStore(db), ActivityLog(db)
        service = ServiceActor(config, store)
        await service.keys()
        grace = timedelta(minutes=config.grace_minutes)
        state = TallyState(store, log, city=config.city, grace=grace, counting=counting)
        await state.sync()  # the rebuild: everything stored, in a few batched reads
        yield Aggregator(config, db, store, log, service, state, MergeStore(db), PublishStore(db))
    finally:
        await db.close()


def refusal_sink(aggregator: Aggregator) -> Any:
    """File a door refusal under the origin of the actor that authenticated the delivery."""

    async def sink(actor: str, activity_id: str, reason: str, detail: str) -> None:
        origin = normal_origin(actor)
        if origin is not None:
            refusal = Refusal(origin, activity_id, reason, detail, time.time())
            await aggregator.store.add_refusal(refusal)

    return sink


async def build_federation(aggregator: Aggregator) -> Federation:
    """The protocol runtime: fetches and deliveries signed by the Service (not started)."""
    config, db = aggregator.config, aggregator.db
    inbox_store = ReplayRecordingStore(GroupCommitInboxStore(db), refusal_sink(aggregator))
    return Federation(
        FederationConfig(
            origin=config.base_url,
            allow_loopback=config.allow_loopback,
            allow_http=config.allow_loopback,
            inbox_batch=INBOX_BATCH,
            inbox_linger=INBOX_LINGER,
            actor_cache_entries=ACTOR_CACHE_ENTRIES,
            delivery_concurrency=config.delivery_concurrency,
        ),
        delivery_store=SqliteDeliveryStore(db),
        inbox_store=inbox_store,
        instance_keys=await aggregator.service.keys(),
        local_keys=aggregator.service.keys_for,
    )


def _fetcher(federation: Federation) -> Fetcher:
    if federation.fetcher is None:
        raise RuntimeError("Federation.start() has not run")
    return federation.fetcher


def build_runtime(aggregator: Aggregator, federation: Federation) -> Runtime:
    """Ingest, roster and backfill over the runtime's fetcher and actor cache (read lazily,
    so this may run before ``Federation.start``)."""

    async def fetch(url: str) -> Mapping[str, Any]:
        return (await _fetcher(federation).get_activity(url)).document

    async def actor(url: str, refresh: bool) -> Mapping[str, Any]:
        if federation.actors is None:
            raise RuntimeError("Federation.start() has not run")
        return await federation.actors.actor(url, refresh)

    def peek(url: str) -> Mapping[str, Any] | None:
        return None if federation.actors is None else federation.actors.cached(url)

    refresh = aggregator.config.refresh_minutes * 60.0
    documents = Documents(aggregator.log, fetch, actor, refresh_seconds=refresh, peek=peek)

    # Every actor fetched (mostly by the door, to check a signature) leaves its residency and
    # document in the store, where the actor cache looks before fetching it again.
    async def learn(actor_id: str, document: dict[str, Any]) -> None:
        # Only the roster's residents count (rule 1): anyone can make the door fetch actors
        # it mints, and those must not grow the residents table (and the tally with it).
        origin = normal_origin(actor_id)
        if origin is not None and aggregator.state.tally.roster.entry(origin) is not None:
            await documents.learn(actor_id, document)

    federation.actor_observers.append(learn)
    federation.stored_actors = documents.stored_actor
    if federation.actors is not None:
        federation.actors.stored = documents.stored_actor
    followers = Followers(aggregator, federation)
    ingest = Ingest(
        store=aggregator.store, log=aggregator.log, documents=documents, fetch=fetch,
        merger=Merger(aggregator.merged, fetch), followers=followers,
    )  # fmt: skip
    roster = RosterService(aggregator, federation)
    backfill = Backfiller(aggregator, ingest, fetch, actor)
    door = DoorPipeline(
        store=federation.inbox_store,
        resolve_key=federation.resolve_key,
        fetch_actor=federation.fetch_actor,
        origin=aggregator.config.base_url,
        max_body=federation.config.inbox_max_body,
        on_recorded=_waker(federation),
        on_refused=refusal_sink(aggregator),
        owner_exception=admits_official_answer,
        verifier=shared_verifier(),
        quota=OffRosterQuota(
            aggregator.config.offroster_deliveries_per_minute,
            lambda origin: aggregator.state.tally.roster.entry(origin) is not None,
        ),
    )
    publisher = TallyPublisher(aggregator, federation, followers)
    aggregator.state.listeners.append(publisher.changed)
    return Runtime(federation, documents, ingest, roster, backfill, door, followers, publisher)


def _waker(federation: Federation) -> Any:
    async def wake(_received: Any) -> None:
        federation.processor.wake()

    return wake


def register_handlers(aggregator: Aggregator, runtime: Runtime) -> None:
    """Run ingest for every recorded inbox row; each batch's votes are written together,
    then the tally is fed what the batch stored."""
    dispatcher = runtime.federation.dispatcher
    store = runtime.federation.inbox_store

    @dispatcher.preparing
    async def residents(records: Sequence[InboxRecord]) -> None:
        """The residency of a batch's new voters, fetched a few at a time (ingest would fetch
        them one by one). Only self-authored votes: the door authenticated their actor."""
        voters = {
            r.actor for r in records
            if VOTE_TYPES & set(as2.types(r.activity))
            and as2.first_id(r.activity, "actor") == r.actor
            and not runtime.documents.resident_fresh(r.actor)
        }  # fmt: skip
        if not voters:
            return  # a city that has run a while knows its voters: no task to start
        gate = asyncio.Semaphore(WARM_CONCURRENCY)

        async def one(actor: str) -> None:
            async with gate:
                with contextlib.suppress(FetchError):  # ingest meets and reports it
                    await runtime.documents.known_resident(actor)

        await asyncio.gather(*(one(actor) for actor in voters))

    @dispatcher.on(*HANDLED_TYPES)
    async def handle(record: InboxRecord) -> None:
        # auth "proof": the pipeline verified this very activity's proof by its actor.
        provenance = Provenance.inbox(record.actor, proved=record.auth == "proof")
        # The row's stored JSON (the body as received) is kept as is: no need to serialise again.
        text = store.text_of(record.id) if isinstance(store, ReplayRecordingStore) else None
        await runtime.ingest.accept(record.activity, provenance, text=text)

    @dispatcher.around_batch
    @asynccontextmanager
    async def batch() -> AsyncIterator[None]:
        async with runtime.ingest.batch():
            yield
        await aggregator.state.sync()


@asynccontextmanager
async def running_federation(aggregator: Aggregator) -> AsyncIterator[Runtime]:
    """Start the runtime for a CLI command (fetches, deliveries); stop it at the end."""
    federation = await build_federation(aggregator)
    runtime = build_runtime(aggregator, federation)
    # Handlers first: a processor started without them would mark rows done unhandled.
    register_handlers(aggregator, runtime)
    await federation.start()
    try:
        yield runtime
    finally:
        await federation.stop()
