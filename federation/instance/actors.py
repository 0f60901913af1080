"""The instance's local actors: the Application, the association's Group, one Person per resident.

Ids (DESIGN.md §3): ``{base_url}/actor`` (Application, the instance actor that signs fetches),
``{base_url}/groups/{group}`` (the Group that announces local activity and owns processes) and
``{base_url}/users/{username}`` (a resident). Each has an RSA-2048 key for HTTP signatures and
an Ed25519 key for FEP-8b32 proofs, generated once and kept in the store; private keys never
leave it except to sign.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from activitypub.actors import ActorProfile, actor_document
from activitypub.collections import PageRequest, PageResult
from activitypub.keys import (
    generate_ed25519,
    generate_rsa,
    private_key_from_pem,
    private_key_to_pem,
)
from activitypub.runtime import LocalKeys
from federation.config import InstanceConfig
from federation.instance.ports import ActorKeyStore, StoredKeys, User, UserStore
from federation.model import Territory, TerritoryKind
from federation.vocab.actors import barri_actor_document, group_extras, person_extras
from federation.vocab.wire import embed

APPLICATION_PATH = "/actor"
GROUPS_PATH = "/groups/"
USERS_PATH = "/users/"
SHARED_INBOX_PATH = "/inbox"
#: Actors whose loaded keys stay in memory, the least recently used dropped first (the
#: Application's and the Group's always stay): serving ``/residents`` loads every resident's,
#: and each holds an RSA and an Ed25519 private key.
KEYS_REMEMBERED = 2_048


class ActorKind(StrEnum):
    """The three kinds of local actor (DESIGN.md §3)."""

    APPLICATION = "Application"
    GROUP = "Group"
    PERSON = "Person"


@dataclass(frozen=True)
class LocalActor:
    """One local actor: its kind, id, handle (preferredUsername) and, for a Person, its account."""

    kind: ActorKind
    id: str
    handle: str
    user: User | None = None


#: Hook for later domain code: given a local actor and its finished AS2 document (Barri's
#: ``territory``/``verifiedResidentOf`` already in), return the document to publish.
ActorDocumentHook = Callable[[LocalActor, dict[str, Any]], Awaitable[dict[str, Any]]]


class UnknownActor(LookupError):
    """The id names no local actor."""


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _generate(actor_id: str, now: float) -> StoredKeys:
    """Fresh RSA-2048 and Ed25519 keys as PKCS#8 PEM."""
    return StoredKeys(
        actor_id,
        private_key_to_pem(generate_rsa()),
        private_key_to_pem(generate_ed25519()),
        now,
    )


def instance_territory(config: InstanceConfig) -> Territory | None:
    """The territory the instance serves, from its config (None when it names none)."""
    if config.territory is None:
        return None
    kind = TerritoryKind(config.territory_kind)
    district = config.district if kind is TerritoryKind.NEIGHBOURHOOD else None
    return Territory(kind, config.territory, district_code=district)


def resident_territory(config: InstanceConfig, code: str) -> Territory:
    """The territory of a resident verified with ``code``.

    The instance's own code has the instance's kind; any other code is taken as a
    neighbourhood, inside the instance's district (a district instance verifies residents of
    its neighbourhoods; a neighbourhood instance's other codes are its district's neighbours).
    """
    own = instance_territory(config)
    if own is not None and own.code == code:
        return own
    district = config.territory if config.territory_kind == "district" else config.district
    return Territory(TerritoryKind.NEIGHBOURHOOD, code, district_code=district)


def _load(stored: StoredKeys) -> LocalKeys:
    # Our own keys from our own store: loaded without the slow RSA check (keys.py).
    rsa_key = private_key_from_pem(stored.rsa_private_pem, own=True)
    ed_key = private_key_from_pem(stored.ed25519_private_pem, own=True)
    if not isinstance(rsa_key, rsa.RSAPrivateKey) or not isinstance(
        ed_key, ed25519.Ed25519PrivateKey
    ):
        raise ValueError(f"stored keys of {stored.actor_id} are not RSA and Ed25519")
    return LocalKeys(stored.actor_id, rsa_key, ed_key)


class LocalActors:
    """Ids, keys and documents of this instance's actors."""

    def __init__(
        self,
        config: InstanceConfig,
        keys: ActorKeyStore,
        users: UserStore,
        *,
        document_hook: ActorDocumentHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.base = config.base_url
        self._store, self._users = keys, users
        self._hook = document_hook
        self._clock = clock
        # Per-instance caches (not module globals): loaded keys and their creation times,
        # bounded (KEYS_REMEMBERED), least recently used last out.
        self._keys: OrderedDict[str, LocalKeys] = OrderedDict()
        self._created: dict[str, float] = {}

    @property
    def application_id(self) -> str:
        """The instance actor's id."""
        return self.base + APPLICATION_PATH

    @property
    def group_id(self) -> str:
        """The association Group's id."""
        return self.base + GROUPS_PATH + self.config.group

    @property
    def shared_inbox(self) -> str:
        """The shared inbox every local actor lists (ActivityPub §7.1.3)."""
        return self.base + SHARED_INBOX_PATH

    @property
    def application_handle(self) -> str:
        """The instance actor's preferredUsername: the host name (as Mastodon's instance actor)."""
        return self.config.hostname

    @property
    def reserved_usernames(self) -> frozenset[str]:
        """Handles a resident may not take, because WebFinger would find another actor."""
        return frozenset({self.config.group, self.application_handle})

    def person_id(self, username: str) -> str:
        """A resident's actor id."""
        return self.base + USERS_PATH + username

    async def find(self, actor_id: str) -> LocalActor | None:
        """The local actor with this id, or None."""
        if actor_id == self.application_id:
            return LocalActor(ActorKind.APPLICATION, actor_id, self.application_handle)
        if actor_id == self.group_id:
            return LocalActor(ActorKind.GROUP, actor_id, self.config.group)
        prefix = self.base + USERS_PATH
        if actor_id.startswith(prefix):
            user = await self._users.get_user(actor_id[len(prefix) :])
            if user is not None and self.person_id(user.username) == actor_id:
                return LocalActor(ActorKind.PERSON, actor_id, user.username, user)
        return None

    async def resident_page(self, page: PageRequest) -> PageResult:
        """One page of ``/residents``: verified residents' actor documents, embedded."""
        users, after, before = await self._users.page_residents(page)
        ids = [self.person_id(user.username) for user in users]
        # The page's keys in one query, not one each (they show in every document).
        for stored in await self._store.get_keys_many([i for i in ids if i not in self._keys]):
            self._remember(stored)
        documents = []
        for user in users:
            actor = LocalActor(ActorKind.PERSON, self.person_id(user.username), user.username, user)
            documents.append(await self.document(actor, embedded=True))
        return PageResult(documents, after, before)

    async def count_residents(self) -> int:
        """How many verified residents ``/residents`` lists."""
        return await self._users.count_residents()

    async def ensure_server_actors(self) -> None:
        """Generate and store the Application's and the Group's keys on first start."""
        await self._stored_keys(self.application_id)
        await self._stored_keys(self.group_id)

    async def keys_for(self, actor_id: str) -> LocalKeys:
        """The private keys of a local actor (``LocalKeyLookup``); generated if it has none yet."""
        cached = self._keys.get(actor_id)
        if cached is not None:
            self._keys.move_to_end(actor_id)
            return cached
        if await self.find(actor_id) is None:
            raise UnknownActor(f"{actor_id} is not a local actor")
        return await self._stored_keys(actor_id)

    async def _stored_keys(self, actor_id: str) -> LocalKeys:
        stored = await self._store.get_keys(actor_id)
        if stored is None:
            # Key generation (RSA especially) takes CPU time: keep it off the event loop.
            fresh = await asyncio.to_thread(_generate, actor_id, self._clock())
            stored = await self._store.add_keys(fresh)
        return self._remember(stored)

    def _remember(self, stored: StoredKeys) -> LocalKeys:
        """Load stored keys and keep them for their actor (forgetting the least recently used
        resident's beyond ``KEYS_REMEMBERED``)."""
        keys = _load(stored)
        self._keys[stored.actor_id], self._created[stored.actor_id] = keys, stored.created_at
        self._keys.move_to_end(stored.actor_id)
        if len(self._keys) > KEYS_REMEMBERED:
            server = (self.application_id, self.group_id)
            oldest = next((a for a in self._keys if a not in server), None)
            if oldest is not None:
                del self._keys[oldest], self._created[oldest]
        return keys

    @property
    def keys_held(self) -> int:
        """How many actors' keys are in memory now."""
        return len(self._keys)

    async def profile(self, actor: LocalActor) -> ActorProfile:
        """What the actor's document says (DESIGN.md §3, Mastodon's required fields)."""
        keys = await self.keys_for(actor.id)
        published = actor.user.created_at if actor.user else self._created[actor.id]
        return ActorProfile(
            id=actor.id,
            type=str(actor.kind),
            preferred_username=actor.handle,
            name=self._display_name(actor),
            summary=None,
            inbox=actor.id + "/inbox",
            outbox=actor.id + "/outbox",
            followers=actor.id + "/followers",
            following=actor.id + "/following",
            shared_inbox=self.shared_inbox,
            url=None,
            rsa_public_key=keys.rsa.public_key(),
            ed25519_public_key=keys.ed25519.public_key(),
            # The instance actor is plumbing, not someone to show in directories.
            discoverable=actor.kind is not ActorKind.APPLICATION,
            published=_iso(published),
            extra=self._extras(actor),
        )

    def _extras(self, actor: LocalActor) -> dict[str, Any]:
        """Barri's actor terms (vocab-spec): the Group's territory, a resident's verification."""
        if actor.kind is ActorKind.GROUP:
            territory = instance_territory(self.config)
            return group_extras(territory) if territory is not None else {}
        if actor.kind is ActorKind.PERSON and actor.user and actor.user.verification:
            code = actor.user.verification.territory
            return person_extras(resident_territory(self.config, code))
        return {}

    def _display_name(self, actor: LocalActor) -> str:
        if actor.kind is ActorKind.GROUP:
            return self.config.name
        if actor.kind is ActorKind.APPLICATION:
            return f"{self.config.name} (Barri instance)"
        user = actor.user
        return (user.display_name or user.username) if user else actor.handle

    async def document(self, actor: LocalActor, *, embedded: bool = False) -> dict[str, Any]:
        """The actor's AS2 document with Barri's inline context (none when ``embedded`` in
        another document, whose context covers it), then the hook if one is set."""
        profile = await self.profile(actor)
        doc = embed(actor_document(profile)) if embedded else barri_actor_document(profile)
        return await self._hook(actor, doc) if self._hook is not None else doc
