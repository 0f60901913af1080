"""The aggregator's one actor: a ``Service`` at ``{base_url}/actor`` (DESIGN.md §3).

It signs every fetch and delivery (RSA-2048 ``#main-key``) and every activity it publishes
(Ed25519 FEP-8b32 proofs). Its keys are generated on first start and kept in the store; private
keys never leave it except to sign. Its document carries the city ``territory``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from activitypub.actors import ActorProfile
from activitypub.keys import (
    generate_ed25519,
    generate_rsa,
    private_key_from_pem,
    private_key_to_pem,
)
from activitypub.runtime import LocalKeys
from federation.aggregator.config import AggregatorConfig
from federation.model import Territory, TerritoryKind
from federation.store.aggregator import AggregatorStore, StoredKeys
from federation.vocab.actors import barri_actor_document, service_extras

ACTOR_PATH = "/actor"
SHARED_INBOX_PATH = "/inbox"
COLLECTIONS = ("outbox", "followers", "following")


class UnknownActor(LookupError):
    """The id names no local actor (the aggregator has exactly one)."""


def _generate(actor_id: str, now: float) -> StoredKeys:
    return StoredKeys(
        actor_id, private_key_to_pem(generate_rsa()), private_key_to_pem(generate_ed25519()), now
    )


def _load(stored: StoredKeys) -> LocalKeys:
    rsa_key = private_key_from_pem(stored.rsa_private_pem)
    ed_key = private_key_from_pem(stored.ed25519_private_pem)
    if not isinstance(rsa_key, rsa.RSAPrivateKey) or not isinstance(
        ed_key, ed25519.Ed25519PrivateKey
    ):
        raise ValueError(f"stored keys of {stored.actor_id} are not RSA and Ed25519")
    return LocalKeys(stored.actor_id, rsa_key, ed_key)


def uuid7(now: float) -> uuid.UUID:
    """A time-ordered UUID version 7 (RFC 9562 §5.7): 48-bit ms timestamp, then random bits."""
    value = (int(now * 1000) & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return uuid.UUID(int=value)


def city_territory(config: AggregatorConfig) -> Territory:
    """The city the aggregator counts for (its Service's ``territory``)."""
    return Territory(TerritoryKind.CITY, config.city, name=config.city_name)


class ServiceActor:
    """Id, keys and document of the aggregator's Service actor."""

    def __init__(
        self,
        config: AggregatorConfig,
        store: AggregatorStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.id = config.base_url + ACTOR_PATH
        self._store, self._clock = store, clock
        self._keys: LocalKeys | None = None
        self._created: float = 0.0

    @property
    def shared_inbox(self) -> str:
        """The shared inbox the Service lists (ActivityPub §7.1.3)."""
        return self.config.base_url + SHARED_INBOX_PATH

    @property
    def handle(self) -> str:
        """The preferredUsername: the host name, as Mastodon's instance actor."""
        return self.config.hostname

    async def keys(self) -> LocalKeys:
        """The Service's private keys, generated and stored on first use."""
        if self._keys is None:
            stored = await self._store.get_keys(self.id)
            if stored is None:
                # RSA generation takes CPU time: keep it off the event loop.
                fresh = await asyncio.to_thread(_generate, self.id, self._clock())
                stored = await self._store.add_keys(fresh)
            self._keys, self._created = _load(stored), stored.created_at
        return self._keys

    async def keys_for(self, actor_id: str) -> LocalKeys:
        """``LocalKeyLookup`` for the delivery worker: only the Service sends."""
        if actor_id != self.id:
            raise UnknownActor(f"{actor_id} is not this aggregator's actor")
        return await self.keys()

    async def document(self) -> dict[str, Any]:
        """The Service's AS2 document with the city ``territory`` (vocab-spec actor-service)."""
        keys = await self.keys()
        profile = ActorProfile(
            id=self.id,
            type="Service",
            preferred_username=self.handle,
            name=self.config.name,
            summary=None,
            inbox=self.id + "/inbox",
            outbox=self.id + "/outbox",
            followers=self.id + "/followers",
            following=self.id + "/following",
            shared_inbox=self.shared_inbox,
            url=None,
            rsa_public_key=keys.rsa.public_key(),
            ed25519_public_key=keys.ed25519.public_key(),
            manually_approves_followers=False,
            discoverable=True,
            published=datetime.fromtimestamp(self._created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            extra=service_extras(city_territory(self.config)),
        )
        return barri_actor_document(profile)

    def new_id(self, kind: str) -> str:
        """A fresh opaque, time-ordered id ``{base}/{kind}/{uuid7}`` (DESIGN.md §3)."""
        return f"{self.config.base_url}/{kind}/{uuid7(self._clock())}"
