"""Actor and key cache: fetch actors once, resolve signature keyIds, refetch on rotation.

Implements the keyId → key rules of reference/activitypub.md §1.1 and DESIGN.md §5:

* ``actor#main-key`` (Mastodon, Fedify): fetch the actor without the fragment; it must list the
  key in ``publicKey`` (value or list) or as a Multikey in ``assertionMethod`` (FEP-521a).
* ``…/main-key`` without a fragment (GoToSocial): the key URL serves a stub whose id is not the
  key URL, so it is read as a *pointer* only: its ``owner``/``controller`` names the actor, which
  must be on the key's origin, and the key material comes from that actor, fetched with every
  ActivityPub check, which must list the very same key id (a reciprocal claim).
* A key the cached actor does not list is looked for once more in a fresh copy (rotation:
  the actor was cached before it published its new key); ``refresh=True`` forces a fresh copy,
  which is what a verifier does once after a signature fails with a cached key.

Concurrent requests for one URL share a single fetch. Cached documents are shared: treat them as
read-only. So is their ``@context``: every actor of one server states the same one (a Barri
actor inlines a 3.5 KB context that parses to about 19 KB of Python objects, four fifths of the
document), so documents with equal contexts hold one copy of it (:class:`SharedContexts`).
``min_refresh_interval`` (off by default) makes a refresh within that many seconds of the last
fetch serve the cached copy, so bad signatures cannot turn us into a refetch amplifier.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from activitypub import jsontext
from activitypub.fetch import AS2_ACCEPT, Fetcher, FetchError, FetchFailure
from activitypub.keys import ActorKey, KeyFormatError, multikey_decode, public_key_from_pem
from activitypub.origin import OriginError, origin_of, same_origin, strip_fragment

Kind = Literal["actor", "pointer"]
Document = dict[str, Any]
#: Told of every actor document fetched (its URL, the document), once it is cached.
ActorObserver = Callable[[str, Document], Awaitable[None]]
#: A second level behind the cache: a copy of the actor at a URL kept elsewhere, and its age
#: in seconds (None when there is none).
StoredActors = Callable[[str], Awaitable[tuple[Document, float] | None]]

log = logging.getLogger(__name__)


#: How many distinct @context values the cache shares (least recently met forgotten first).
SHARED_CONTEXTS = 64


class SharedContexts:
    """One copy of each distinct JSON-LD ``@context`` met, for documents that repeat it."""

    def __init__(self, limit: int = SHARED_CONTEXTS) -> None:
        self._known: OrderedDict[str, Any] = OrderedDict()
        self._limit = limit

    def share(self, document: Document) -> Document:
        """``document`` with its structured @context replaced by an equal one met before."""
        context = document.get("@context")
        if not isinstance(context, (dict, list)):
            return document  # a bare URL string costs little
        try:
            key = jsontext.dumps(context, sort_keys=True)  # in memory only: any exact spelling
        except (TypeError, ValueError):
            return document
        known = self._known.get(key)
        if known is None:
            self._known[key] = context
            if len(self._known) > self._limit:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(key)
            document["@context"] = known
        return document


class KeyUnavailable(Exception):
    """A keyId could not be resolved to a key its actor vouches for."""

    def __init__(self, key_id: str, detail: str, *, failure: FetchFailure | None = None) -> None:
        super().__init__(f"key {key_id!r}: {detail}")
        self.key_id = key_id
        self.detail = detail
        self.failure = failure  # set when a fetch failed (GONE tells a deleted actor)


def _as_list(value: Any) -> list[Any]:
    """AS2 allows a single value or an array wherever a property may repeat."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _as_id(value: Any) -> str | None:
    """An id given as a string or as an embedded object with an ``id``."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _has_type(entry: dict[str, Any], name: str) -> bool:
    return name in _as_list(entry.get("type"))


def _listed(document: Document, key_id: str) -> dict[str, Any] | None:
    """The entry of ``publicKey`` or ``assertionMethod`` whose id is ``key_id``, if any."""
    for prop in ("publicKey", "assertionMethod"):
        for entry in _as_list(document.get(prop)):
            if isinstance(entry, dict) and entry.get("id") == key_id:
                return entry
    return None


def _publickey_entry(actor_id: str, key_id: str, entry: dict[str, Any]) -> ActorKey:
    """A ``publicKey`` entry (security/v1): optional ``owner`` must be the actor; PEM key."""
    owner = _as_id(entry.get("owner"))
    if owner is not None and owner != actor_id:
        raise KeyUnavailable(key_id, f"publicKey.owner {owner!r} is not the actor {actor_id!r}")
    pem = entry.get("publicKeyPem")
    if not isinstance(pem, str):
        raise KeyUnavailable(key_id, "publicKey has no publicKeyPem string")
    try:
        return ActorKey(key_id, actor_id, public_key_from_pem(pem))
    except KeyFormatError as exc:
        raise KeyUnavailable(key_id, f"unusable publicKeyPem: {exc}") from exc


def _multikey_entry(actor_id: str, key_id: str, entry: dict[str, Any]) -> ActorKey:
    """An ``assertionMethod`` Multikey (FEP-521a): ``controller`` must be the actor."""
    if not _has_type(entry, "Multikey"):
        raise KeyUnavailable(key_id, "assertionMethod entry is not a Multikey")
    controller = _as_id(entry.get("controller"))
    if controller != actor_id:
        raise KeyUnavailable(key_id, f"Multikey controller {controller!r} is not the actor")
    value = entry.get("publicKeyMultibase")
    if not isinstance(value, str):
        raise KeyUnavailable(key_id, "Multikey has no publicKeyMultibase string")
    try:
        return ActorKey(key_id, actor_id, multikey_decode(value))
    except KeyFormatError as exc:
        raise KeyUnavailable(key_id, f"unusable publicKeyMultibase: {exc}") from exc


def key_from_actor(actor: Document, key_id: str) -> ActorKey | None:
    """The key ``actor`` lists under ``key_id``, None if it lists none (FEP-521a, security/v1)."""
    actor_id = actor.get("id")
    if not isinstance(actor_id, str) or not same_origin(actor_id, key_id):
        raise KeyUnavailable(key_id, f"actor {actor_id!r} is not on the key's origin")
    for entry in _as_list(actor.get("publicKey")):
        if isinstance(entry, dict) and entry.get("id") == key_id:
            return _publickey_entry(actor_id, key_id, entry)
    for entry in _as_list(actor.get("assertionMethod")):
        if isinstance(entry, dict) and entry.get("id") == key_id:
            return _multikey_entry(actor_id, key_id, entry)
    return None


def owner_from_pointer(document: Document, key_id: str) -> str:
    """The actor a fragment-less key URL names: the key's ``owner``/``controller``."""
    entry: dict[str, Any] | None = document if document.get("id") == key_id else None
    if entry is None:
        entry = _listed(document, key_id)  # GoToSocial's stub actor embeds the key
    if entry is None:
        raise KeyUnavailable(key_id, "the key URL does not describe this key")
    owner = _as_id(entry.get("owner")) or _as_id(entry.get("controller"))
    if owner is None and entry is not document:
        owner = _as_id(document.get("id"))  # a stub actor listing the key without owner
    if owner is None:
        raise KeyUnavailable(key_id, "the key names no owner or controller")
    return owner


class ActorCache:
    """TTL + LRU cache of actor documents with shared in-flight fetches and key resolution."""

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        ttl: float = 3600.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        min_refresh_interval: float = 0.0,
        observers: list[ActorObserver] | None = None,
        stored: StoredActors | None = None,
    ) -> None:
        self._fetcher = fetcher
        #: Called with each actor document fetched (e.g. to keep what it states elsewhere, so
        #: that it outlives its cache entry); a failing observer is logged, the fetch stands.
        self.observers = [] if observers is None else observers
        #: Asked on a miss before fetching: a stored copy younger than ``ttl`` is used as a
        #: cached one (a key it does not list is still looked for in a fresh copy).
        self.stored = stored
        self._ttl = ttl
        self._min_refresh = min_refresh_interval
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[Kind, str], tuple[float, Document]] = OrderedDict()
        self._inflight: dict[tuple[Kind, str], asyncio.Task[Document]] = {}
        self._contexts = SharedContexts()

    async def actor(self, url: str, refresh: bool = False) -> dict[str, Any]:
        """The actor at ``url``, cached; ``refresh`` refetches (integrity.ActorFetcher, AP §7)."""
        document, _ = await self._document("actor", strip_fragment(url), refresh)
        return document

    def cached(self, url: str) -> dict[str, Any] | None:
        """The actor at ``url`` if held and fresh, without fetching nor reading the store."""
        return self._cached(("actor", strip_fragment(url)))

    async def key(self, key_id: str, refresh: bool = False) -> ActorKey:
        """Resolve a signature keyId to the key its actor lists (httpsig.KeyResolver)."""
        try:
            origin_of(key_id)
        except OriginError as exc:
            raise KeyUnavailable(key_id, "keyId is not an absolute http(s) URL") from exc
        owner = await self._owner_url(key_id, refresh)
        actor, cached = await self._fetch(key_id, "actor", owner, refresh)
        found = key_from_actor(actor, key_id)
        if found is None and cached:
            # A key the cached copy does not know may be a new one: look once more.
            actor, _ = await self._fetch(key_id, "actor", owner, True)
            found = key_from_actor(actor, key_id)
        if found is None:
            raise KeyUnavailable(key_id, f"actor {owner!r} does not list this key")
        return found

    def forget(self, url: str) -> None:
        """Drop what is cached for ``url`` (e.g. after a Delete or an Update of the actor)."""
        plain = strip_fragment(url)
        self._entries.pop(("actor", plain), None)
        self._entries.pop(("pointer", plain), None)

    async def _owner_url(self, key_id: str, refresh: bool) -> str:
        """The actor URL to fetch for ``key_id``: its own document, or the pointer's owner."""
        document_url = strip_fragment(key_id)
        if document_url != key_id:
            return document_url
        pointer, _ = await self._fetch(key_id, "pointer", key_id, refresh)
        owner = owner_from_pointer(pointer, key_id)
        # Checked before fetching it: a key may only name an owner on its own origin.
        if not same_origin(owner, key_id):
            raise KeyUnavailable(key_id, f"owner {owner!r} is not on the key's origin")
        return strip_fragment(owner)

    async def _fetch(
        self, key_id: str, kind: Kind, url: str, refresh: bool
    ) -> tuple[Document, bool]:
        """:meth:`_document`, with fetch failures reported as KeyUnavailable."""
        try:
            return await self._document(kind, url, refresh)
        except FetchError as exc:
            raise KeyUnavailable(
                key_id,
                f"fetching {url!r} failed: {exc.reason.value}: {exc.detail}",
                failure=exc.reason,
            ) from exc

    async def _document(self, kind: Kind, url: str, refresh: bool) -> tuple[Document, bool]:
        """(document, came from cache); one shared fetch per (kind, URL) at a time."""
        slot = (kind, url)
        if refresh and self._fetched_within(slot, self._min_refresh):
            # Every forged signature would otherwise make us refetch its victim's actor.
            refresh = False
        if not refresh:
            hit = self._cached(slot) or await self._from_store(slot)
            if hit is not None:
                return hit, True
        task = self._inflight.get(slot)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(kind, url))
            self._inflight[slot] = task
            task.add_done_callback(lambda done: self._settled(slot, done))
        # shield: one caller giving up must not cancel the fetch the others wait for.
        return await asyncio.shield(task), False

    def _settled(self, slot: tuple[Kind, str], task: asyncio.Task[Document]) -> None:
        if self._inflight.get(slot) is task:
            del self._inflight[slot]
        if not task.cancelled():
            task.exception()  # retrieved here so an unawaited failure is not logged as lost

    async def _load(self, kind: Kind, url: str) -> Document:
        if kind == "actor":
            fetched = await self._fetcher.get_activity(url)
        else:
            # Only a pointer: its id may differ from its URL (GoToSocial), and nothing in it
            # is trusted except the owner it names, which is then fetched with every check.
            fetched = await self._fetcher.get_json(url, accept=AS2_ACCEPT, signed=True)
        document = self._contexts.share(fetched.document)
        self._store((kind, url), document)
        if kind == "actor":
            await self._observed(url, document)
        return document

    async def _observed(self, url: str, document: Document) -> None:
        for observe in self.observers:
            try:
                await observe(url, document)
            except Exception:  # an observer's failure is its own; the document is good
                log.exception("actor observer failed on %s", url)

    async def _from_store(self, slot: tuple[Kind, str]) -> Document | None:
        """An actor's stored copy while it is younger than the TTL, cached as of its age."""
        kind, url = slot
        if kind != "actor" or self.stored is None:
            return None
        found = await self.stored(url)
        if found is None or found[1] >= self._ttl:
            return None
        document = self._contexts.share(found[0])
        self._store(slot, document, age=found[1])
        return document

    def _fetched_within(self, slot: tuple[Kind, str], seconds: float) -> bool:
        entry = self._entries.get(slot)
        return entry is not None and self._clock() - entry[0] < seconds

    def _cached(self, slot: tuple[Kind, str]) -> Document | None:
        entry = self._entries.get(slot)
        if entry is None:
            return None
        fetched_at, document = entry
        if fetched_at + self._ttl <= self._clock():
            del self._entries[slot]
            return None
        self._entries.move_to_end(slot)
        return document

    def _store(self, slot: tuple[Kind, str], document: Document, *, age: float = 0.0) -> None:
        self._entries[slot] = (self._clock() - age, document)
        self._entries.move_to_end(slot)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
