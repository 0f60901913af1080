"""The protocol runtime of one server: guarded client, actor cache, inbox and delivery, wired.

Both Barri servers (the neighbourhood instance and the city aggregator) build one
:class:`Federation` in a ``cleanup_ctx`` and keep it under :data:`FEDERATION`. It knows nothing
of deliberation: the domain registers inbox handlers on :attr:`Federation.dispatcher` and hands
finished activities to :meth:`Federation.deliver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from activitypub import as2, jsontext
from activitypub.actorcache import ActorCache, ActorObserver, KeyUnavailable, StoredActors
from activitypub.actors import ed25519_key_id, main_key_id
from activitypub.delivery import DeliveryWorker, InboxTarget, recipients_to_inboxes
from activitypub.dispatch import InboxDispatcher, InboxProcessor
from activitypub.fetch import Fetcher, FetchError
from activitypub.httpsig import (
    Scheme,
    SignatureError,
    SignatureFailure,
    SigningKey,
    VerifiedSignature,
    sign_request,
    verify_request,
)
from activitypub.inbox import InboxPipeline, Received, refused
from activitypub.integrity import ContextMemo, ProofError, ProofFailure, create_proof
from activitypub.keys import ActorKey
from activitypub.knock import KnockMemory, post_signed
from activitypub.memo import EqualMemo
from activitypub.ssrf import make_client_session
from activitypub.storage import Delivery, DeliveryStore, InboxRecord, InboxStore

#: Actor fetches one inbox batch warms at once (a backlog of new senders is otherwise one
#: signed GET after another, each waiting on a busy peer).
WARM_CONCURRENCY = 16


@dataclass(frozen=True)
class LocalKeys:
    """A local actor's private keys: RSA for HTTP signatures, Ed25519 for FEP-8b32 proofs."""

    actor_id: str
    rsa: rsa.RSAPrivateKey
    ed25519: ed25519.Ed25519PrivateKey

    @property
    def signing_key(self) -> SigningKey:
        """The ``#main-key`` used for HTTP signatures (cavage-12 and RFC 9421)."""
        return SigningKey(main_key_id(self.actor_id), self.rsa)

    @property
    def ed25519_signing_key(self) -> SigningKey:
        """The ``#ed25519-key`` (assertionMethod, FEP-521a) for RFC 9421 ``alg=ed25519``."""
        return SigningKey(ed25519_key_id(self.actor_id), self.ed25519)

    def prove(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``document`` carrying this actor's eddsa-jcs-2022 proof (FEP-8b32)."""
        return create_proof(document, self.ed25519, ed25519_key_id(self.actor_id))


LocalKeyLookup = Callable[[str], Awaitable[LocalKeys]]


@dataclass(frozen=True)
class FederationConfig:
    """Protocol settings of one server; loopback/http only for tests, demos and benchmarks."""

    origin: str
    allow_loopback: bool = False
    allow_http: bool = False
    #: Sends at once, and at most per host: every host has lanes of its own while the
    #: followed hosts number up to concurrency / per_host (DeliveryWorker).
    delivery_concurrency: int = 16
    delivery_per_host: int = 2
    inbox_max_body: int = 1_048_576
    actor_cache_ttl: float = 3600.0
    actor_cache_entries: int = 10_000  # actor documents kept in memory (ActorCache)
    inbox_batch: int = 32  # recorded rows claimed and handled together
    #: Seconds the inbox processor waits after being woken, so rows arriving meanwhile share
    #: the batch (its claim, commit and marking done) instead of paying for one each.
    inbox_linger: float = 0.0


class Federation:
    """One server's outbound client, caches, inbox pipeline, processor and delivery worker."""

    def __init__(
        self,
        config: FederationConfig,
        *,
        delivery_store: DeliveryStore,
        inbox_store: InboxStore,
        instance_keys: LocalKeys,
        local_keys: LocalKeyLookup,
    ) -> None:
        self.config = config
        self.instance_keys = instance_keys
        self._local_keys = local_keys
        self.delivery_store, self.inbox_store = delivery_store, inbox_store
        self.knock = KnockMemory()
        self.dispatcher = InboxDispatcher()
        self.processor = InboxProcessor(
            inbox_store, self.dispatcher, batch=config.inbox_batch, linger=config.inbox_linger
        )
        self.session: aiohttp.ClientSession | None = None
        self.fetcher: Fetcher | None = None
        self.actors: ActorCache | None = None
        #: Told of every actor document the actor cache fetches (ActorCache.observers).
        self.actor_observers: list[ActorObserver] = []
        #: The actor cache's second level, if the server keeps actor documents (ActorCache.stored).
        self.stored_actors: StoredActors | None = None
        self.worker: DeliveryWorker | None = None
        #: JCS forms of the @context values met, for every proof this server checks: the inbox
        #: door's and its handlers' (an Announce's inner activity) share one.
        self.canonical: ContextMemo = EqualMemo()
        self.pipeline = InboxPipeline(
            store=inbox_store,
            canonical=self.canonical,
            resolve_key=self.resolve_key,
            fetch_actor=self.fetch_actor,
            origin=config.origin,
            max_body=config.inbox_max_body,
            on_recorded=self._on_recorded,
        )

    async def start(self) -> None:
        """Open the guarded session and start the inbox processor and delivery worker."""
        self.open_client()
        self.worker = DeliveryWorker(
            self.delivery_store,
            self._send,
            concurrency=self.config.delivery_concurrency,
            per_host=self.config.delivery_per_host,
        )
        await self.processor.start()
        await self.worker.start()

    def open_client(self) -> None:
        """Open the guarded session, the signed fetcher and the actor cache, and nothing else:
        what a helper process that only reads from peers needs (no inbox, no deliveries)."""
        self.session = make_client_session(allow_loopback=self.config.allow_loopback)
        self.fetcher = Fetcher(
            self.session, self._sign_fetch_ed25519, fallback_signers=[self._sign_fetch],
            allow_http=self.config.allow_http,
        )  # fmt: skip
        self.actors = ActorCache(
            self.fetcher,
            ttl=self.config.actor_cache_ttl,
            max_entries=self.config.actor_cache_entries,
            observers=self.actor_observers,
            stored=self.stored_actors,
        )

    async def stop(self) -> None:
        """Stop workers (pending rows stay stored for the next start); close the session."""
        if self.worker is not None:
            await self.worker.stop()
        await self.processor.stop()
        if self.session is not None:
            await self.session.close()

    def _sign_fetch_ed25519(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> Mapping[str, str]:
        """Signed GET as the instance actor, RFC 9421 ``ed25519`` (a tenth of RSA's CPU)."""
        key = self.instance_keys.ed25519_signing_key
        return sign_request(method, url, headers, None, key, Scheme.RFC9421)

    def _sign_fetch(self, method: str, url: str, headers: Mapping[str, str]) -> Mapping[str, str]:
        """Signed GET as the instance actor (cavage-12: what every server verifies); the
        fetcher knocks with it when a server refuses the Ed25519 signature."""
        return sign_request(
            method, url, headers, None, self.instance_keys.signing_key, Scheme.CAVAGE
        )

    def _cache(self) -> ActorCache:
        if self.actors is None:
            raise RuntimeError("Federation.start() has not run")
        return self.actors

    async def resolve_key(self, key_id: str, refresh: bool) -> ActorKey:
        """httpsig.KeyResolver over the actor cache; any failure is KEY_UNAVAILABLE."""
        try:
            return await self._cache().key(key_id, refresh)
        except (KeyUnavailable, FetchError) as exc:
            raise SignatureError(SignatureFailure.KEY_UNAVAILABLE, str(exc)) from exc

    async def fetch_actor(self, url: str, refresh: bool) -> Mapping[str, Any]:
        """integrity.ActorFetcher over the actor cache; a failed fetch means no usable key."""
        try:
            return await self._cache().actor(url, refresh)
        except FetchError as exc:
            raise ProofError(ProofFailure.KEY_UNKNOWN, f"cannot fetch {url}: {exc}") from exc

    async def warm_actors(self, records: Sequence[InboxRecord]) -> None:
        """Fetch a claimed batch's distinct authenticated actors into the actor cache, a few
        at a time (an :meth:`InboxDispatcher.preparing` step): handlers that need them then
        find them there instead of waiting for one signed GET per row. Only the actors the
        door authenticated are fetched, so no sender steers our fetches."""
        cache = self.actors
        if cache is None:
            return
        gate = asyncio.Semaphore(WARM_CONCURRENCY)

        async def one(url: str) -> None:
            async with gate:
                with contextlib.suppress(FetchError):  # the handler meets and reports it
                    await cache.actor(url)

        await asyncio.gather(*(one(url) for url in dict.fromkeys(r.actor for r in records)))

    async def _on_recorded(self, received: Received) -> None:
        self.processor.wake()

    async def deliver(self, activity: Mapping[str, Any], inboxes: Iterable[str]) -> int:
        """Queue ``activity`` (already proved) for each inbox; the body is signed at send time."""
        if self.worker is None:
            raise RuntimeError("Federation.start() has not run")
        body = jsontext.dumpb(activity)  # compact UTF-8; signed as is at send time
        sender = as2.first_id(activity, "actor") or self.instance_keys.actor_id
        count = await self.delivery_store.enqueue(
            str(activity["id"]), sender, body, list(dict.fromkeys(inboxes)), now=time.time()
        )
        self.worker.wake()
        return count

    async def inboxes_of(self, actor_ids: Iterable[str]) -> list[str]:
        """Inboxes of remote actors, shared inboxes collapsed (AP §7.1.3); unreachable skipped."""
        targets: list[InboxTarget] = []
        for actor_id in dict.fromkeys(actor_ids):
            try:
                actor = await self._cache().actor(actor_id)
            except FetchError:
                continue
            inbox = as2.first_id(actor, "inbox")
            endpoints = as2.embedded(actor, "endpoints") or {}
            if inbox:
                targets.append(InboxTarget(inbox, as2.first_id(endpoints, "sharedInbox")))
        return recipients_to_inboxes(targets)

    async def _send(self, delivery: Delivery) -> int:
        """DeliveryWorker sender: sign with the sender's key now, double-knocking per host."""
        if self.session is None:
            raise RuntimeError("Federation.start() has not run")
        keys = await self._local_keys(delivery.sender)
        return await post_signed(
            self.session, delivery.inbox, delivery.body, keys.signing_key, self.knock,
            ed25519_key=keys.ed25519_signing_key,
        )  # fmt: skip

    async def authenticate_get(self, request: web.Request) -> VerifiedSignature | None:
        """Authorised fetch: the verified signer of a GET, None when unsigned, 401 when forged."""
        if "Signature" not in request.headers and "Signature-Input" not in request.headers:
            return None
        url = self.config.origin + request.path_qs
        try:
            return await verify_request(
                request.method, url, request.headers, None, self.resolve_key
            )
        except SignatureError as exc:
            raise refused(exc.status, str(exc.reason), exc.detail) from exc


FEDERATION = web.AppKey("federation", Federation)


def federation_ctx(
    build: Callable[[web.Application], Awaitable[Federation]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry that builds, starts, stores and finally stops the runtime."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        federation = await build(app)
        await federation.start()
        app[FEDERATION] = federation
        yield
        await federation.stop()

    return context
