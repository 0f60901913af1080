"""An instance keeps a bounded number of actors' keys in memory (federation.instance.actors):
serving ``/residents`` loads every resident's, and the least recently used are let go, never
the Application's nor the Group's; a resident's keys read back later are the same keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from activitypub.runtime import LocalKeys
from federation.instance import actors as actors_module
from federation.instance.app import ACTORS
from federation.instance.ports import StoredKeys
from federation.store.instance import SqliteActorKeyStore
from tests.test_instance_federation import City, city
from tests.test_readside import signed_get, signed_walk

__all__ = ["city"]  # the fixture, imported from test_instance_federation

HELD = 3


def _public(keys: LocalKeys) -> bytes:
    return keys.signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


async def test_serving_residents_keeps_a_bounded_number_of_keys(
    city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = city.gracia
    actors = a.app[ACTORS]
    names = [f"veina{n}" for n in range(2 * HELD)]
    for name in names:
        await a.resident(name, "31")
    first = _public(await actors.keys_for(a.actor(names[-1])))
    monkeypatch.setattr(actors_module, "KEYS_REMEMBERED", HELD)

    _, listed = await signed_walk(a.config.base_url + "/residents", city.mastodon.keys["instance"])
    assert {item["id"] for item in listed} >= {a.actor(name) for name in names}
    assert actors.keys_held <= HELD
    # The server actors' keys stay (no store read for them), and their documents are served.
    read: list[str] = []
    original = SqliteActorKeyStore.get_keys

    async def counted(store: SqliteActorKeyStore, actor_id: str) -> StoredKeys | None:
        read.append(actor_id)
        return await original(store, actor_id)

    monkeypatch.setattr(SqliteActorKeyStore, "get_keys", counted)
    keys = city.mastodon.keys["instance"]
    for url in (actors.application_id, actors.group_id):
        await actors.keys_for(url)
        status, document = await signed_get(url, keys)
        assert status == 200 and document["id"] == url
    assert read == []
    # The newest resident, served first, was let go: the same keys come back from the store.
    assert _public(await actors.keys_for(a.actor(names[-1]))) == first
    assert read == [a.actor(names[-1])]
    assert actors.keys_held <= HELD
