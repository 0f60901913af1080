"""ActorCache against a real loopback server: caching, de-dup, keyId resolution, rotation."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from activitypub.actorcache import ActorCache, KeyUnavailable
from activitypub.fetch import Fetcher, FetchError, FetchFailure
from activitypub.keys import (
    generate_ed25519,
    generate_rsa,
    multikey_encode,
    public_key_to_pem,
)
from activitypub.ssrf import make_client_session
from tests.netguard import (
    NetGuard,
    no_outside_connections_fixture,  # noqa: F401 (registers the fixture)
)

ServerFactory = Callable[..., Awaitable[TestServer]]
DOCS = web.AppKey("docs", dict[str, dict[str, Any]])
HITS = web.AppKey("hits", Counter[str])
HEADERS = web.AppKey("headers", list[dict[str, str]])
GATE = web.AppKey("gate", dict[str, asyncio.Event])
AS2 = "application/activity+json"
ELSEWHERE = "https://elsewhere.example"


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [generate_rsa(), generate_rsa()]


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return generate_ed25519()


@pytest.fixture(autouse=True)
def guard(no_outside_connections: NetGuard) -> NetGuard:
    return no_outside_connections


async def serve(request: web.Request) -> web.Response:
    """Serve whatever DOCS holds for the path, counting hits; a gate can park a request."""
    app = request.app
    app[HITS][request.path] += 1
    app[HEADERS].append(dict(request.headers))
    if (gate := app[GATE].get(request.path)) is not None:
        app[GATE][request.path + "!arrived"].set()
        await gate.wait()
    if request.path == "/gone":
        raise web.HTTPGone()
    doc = app[DOCS].get(request.path)
    if doc is None:
        raise web.HTTPNotFound()
    return web.json_response(doc, content_type=AS2)


@pytest.fixture
async def remote(aiohttp_server: ServerFactory) -> AsyncIterator[TestServer]:
    app = web.Application()
    app[DOCS] = {}
    app[HITS] = Counter()
    app[HEADERS] = []
    app[GATE] = {}
    app.router.add_get("/{tail:.*}", serve)
    server = await aiohttp_server(app)
    yield server
    for event in app[GATE].values():
        event.set()


@pytest.fixture
def base(remote: TestServer) -> str:
    return f"http://127.0.0.1:{remote.port}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    client = make_client_session(allow_loopback=True)
    yield client
    await client.close()


def recording_signer(method: str, url: str, headers: Mapping[str, str]) -> Mapping[str, str]:
    return {**headers, "Signature": f"test {method} {url}"}


@pytest.fixture
def cache(session: aiohttp.ClientSession) -> ActorCache:
    return ActorCache(Fetcher(session, recording_signer, allow_http=True))


def actor_doc(
    actor_id: str,
    rsa_key: rsa.RSAPrivateKey,
    *,
    key_id: str | None = None,
    owner: str | None = None,
    multikey: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Mastodon-shaped actor with one publicKey and optionally a Multikey."""
    doc: dict[str, Any] = {
        "id": actor_id,
        "type": "Person",
        "inbox": f"{actor_id}/inbox",
        "publicKey": {
            "id": key_id or f"{actor_id}#main-key",
            "owner": owner or actor_id,
            "publicKeyPem": public_key_to_pem(rsa_key.public_key()),
        },
    }
    if multikey is not None:
        doc["assertionMethod"] = [multikey]
    return doc


def publish(remote: TestServer, path: str, doc: dict[str, Any]) -> None:
    remote.app[DOCS][path] = doc


# -- actor documents -----------------------------------------------------------------------


async def test_actor_is_cached(
    cache: ActorCache, remote: TestServer, base: str, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    publish(remote, "/users/alice", actor_doc(f"{base}/users/alice", rsa_keys[0]))
    first = await cache.actor(f"{base}/users/alice")
    second = await cache.actor(f"{base}/users/alice#main-key")
    assert first["id"] == second["id"] == f"{base}/users/alice"
    assert remote.app[HITS]["/users/alice"] == 1
    assert remote.app[HEADERS][0]["Signature"] == f"test GET {base}/users/alice"


async def test_equal_contexts_are_held_once(
    cache: ActorCache, remote: TestServer, base: str, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    context = ["https://www.w3.org/ns/activitystreams", {"toot": "http://joinmastodon.org/ns#"}]
    other = ["https://www.w3.org/ns/activitystreams", {"schema": "http://schema.org#"}]
    for name, stated in (("alice", context), ("bob", context), ("carol", other)):
        doc = {"@context": stated, **actor_doc(f"{base}/users/{name}", rsa_keys[0])}
        publish(remote, f"/users/{name}", doc)
    alice, bob, carol = [await cache.actor(f"{base}/users/{n}") for n in ("alice", "bob", "carol")]
    # Each document reads as served; the two equal contexts are one object in memory.
    assert alice["@context"] == bob["@context"] == context and carol["@context"] == other
    assert alice["@context"] is bob["@context"]
    assert carol["@context"] is not alice["@context"]
    assert bob["id"] == f"{base}/users/bob" and bob["publicKey"]["owner"] == bob["id"]


async def test_observers_hear_of_fetches_only_and_a_failing_one_is_contained(
    cache: ActorCache, remote: TestServer, base: str, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    heard: list[str] = []

    async def note(url: str, document: dict[str, Any]) -> None:
        heard.append(f"{url} {document['id']}")

    async def broken(url: str, document: dict[str, Any]) -> None:
        raise RuntimeError("the store is down")

    cache.observers += [broken, note]
    publish(remote, "/users/alice", actor_doc(f"{base}/users/alice", rsa_keys[0]))
    alice = f"{base}/users/alice"
    assert (await cache.actor(alice))["id"] == alice  # the broken observer does not fail it
    await cache.actor(alice)  # a cache hit is not news
    await cache.key(f"{alice}#main-key")
    await cache.actor(alice, True)  # a refresh is
    assert heard == [f"{alice} {alice}", f"{alice} {alice}"]


async def test_a_stored_copy_younger_than_the_ttl_stands_in_for_a_fetch(
    session: aiohttp.ClientSession,
    remote: TestServer,
    base: str,
    rsa_keys: list[rsa.RSAPrivateKey],
) -> None:
    alice, bob = f"{base}/users/alice", f"{base}/users/bob"
    old = actor_doc(alice, rsa_keys[0])
    kept = {alice: (old, 10.0), bob: (actor_doc(bob, rsa_keys[0]), 120.0)}

    async def stored(url: str) -> tuple[dict[str, Any], float] | None:
        return kept.get(url)

    fetcher = Fetcher(session, recording_signer, allow_http=True)
    cache = ActorCache(fetcher, ttl=60.0, stored=stored)
    publish(remote, "/users/alice", actor_doc(alice, rsa_keys[1], key_id=f"{alice}#key-2"))
    publish(remote, "/users/bob", {**actor_doc(bob, rsa_keys[1]), "name": "Bob"})
    assert await cache.actor(alice) == old  # 10 s old: used as cached, not fetched
    assert remote.app[HITS]["/users/alice"] == 0
    assert (await cache.actor(bob))["name"] == "Bob"  # 120 s old: past the TTL, fetched
    assert remote.app[HITS]["/users/bob"] == 1
    # The stored copy lists the old key only: a signature by the new one looks once more.
    found = await cache.key(f"{alice}#key-2")
    assert found.public_key.public_numbers() == rsa_keys[1].public_key().public_numbers()
    assert remote.app[HITS]["/users/alice"] == 1


async def test_refresh_bypasses_cache(
    cache: ActorCache, remote: TestServer, base: str, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    publish(remote, "/users/alice", actor_doc(f"{base}/users/alice", rsa_keys[0]))
    await cache.actor(f"{base}/users/alice")
    publish(remote, "/users/alice", {**remote.app[DOCS]["/users/alice"], "name": "Alícia"})
    assert "name" not in await cache.actor(f"{base}/users/alice")
    assert (await cache.actor(f"{base}/users/alice", True))["name"] == "Alícia"
    assert (await cache.actor(f"{base}/users/alice"))["name"] == "Alícia"  # refreshed copy kept
    assert remote.app[HITS]["/users/alice"] == 2


async def test_ttl_expiry_lru_and_forget(
    session: aiohttp.ClientSession,
    remote: TestServer,
    base: str,
    rsa_keys: list[rsa.RSAPrivateKey],
) -> None:
    now = [0.0]
    cache = ActorCache(
        Fetcher(session, allow_http=True), ttl=10, max_entries=2, clock=lambda: now[0]
    )
    for name in ("a", "b", "c"):
        publish(remote, f"/users/{name}", actor_doc(f"{base}/users/{name}", rsa_keys[0]))
    await cache.actor(f"{base}/users/a")
    now[0] = 9.9
    await cache.actor(f"{base}/users/a")
    assert remote.app[HITS]["/users/a"] == 1
    now[0] = 10.0  # expired
    await cache.actor(f"{base}/users/a")
    assert remote.app[HITS]["/users/a"] == 2
    await cache.actor(f"{base}/users/b")
    await cache.actor(f"{base}/users/c")  # evicts a, the least recently used
    await cache.actor(f"{base}/users/c")
    await cache.actor(f"{base}/users/a")
    assert remote.app[HITS] == Counter({"/users/a": 3, "/users/b": 1, "/users/c": 1})
    cache.forget(f"{base}/users/a")
    await cache.actor(f"{base}/users/a")
    assert remote.app[HITS]["/users/a"] == 4


async def test_min_refresh_interval_limits_refetches(
    session: aiohttp.ClientSession,
    remote: TestServer,
    base: str,
    rsa_keys: list[rsa.RSAPrivateKey],
) -> None:
    now = [0.0]
    fetcher = Fetcher(session, allow_http=True)
    cache = ActorCache(fetcher, clock=lambda: now[0], min_refresh_interval=30)
    publish(remote, "/users/alice", actor_doc(f"{base}/users/alice", rsa_keys[0]))
    await cache.key(f"{base}/users/alice#main-key")
    now[0] = 29.0
    await cache.key(f"{base}/users/alice#main-key", refresh=True)
    with pytest.raises(KeyUnavailable):  # an unknown key id does not force a refetch either
        await cache.key(f"{base}/users/alice#forged")
    assert remote.app[HITS]["/users/alice"] == 1
    now[0] = 30.0
    await cache.key(f"{base}/users/alice#main-key", refresh=True)
    assert remote.app[HITS]["/users/alice"] == 2


async def test_concurrent_callers_share_one_request(
    cache: ActorCache, remote: TestServer, base: str, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    publish(remote, "/users/alice", actor_doc(f"{base}/users/alice", rsa_keys[0]))
    gate = remote.app[GATE]
    gate["/users/alice"] = asyncio.Event()
    gate["/users/alice!arrived"] = asyncio.Event()
    callers = [asyncio.create_task(cache.actor(f"{base}/users/alice")) for _ in range(10)]
    callers.append(asyncio.create_task(cache.actor(f"{base}/users/alice", True)))
    await gate["/users/alice!arrived"].wait()
    callers[0].cancel()  # one caller giving up must not cancel the shared fetch
    gate["/users/alice"].set()
    results = await asyncio.gather(*callers[1:])
    assert all(doc["id"] == f"{base}/users/alice" for doc in results)
    assert callers[0].cancelled()
    assert remote.app[HITS]["/users/alice"] == 1


async def test_fetch_errors_propagate_from_actor(
    cache: ActorCache, remote: TestServer, base: str
) -> None:
    publish(remote, "/users/liar", {"id": f"{base}/users/someone-else", "type": "Person"})
    with pytest.raises(FetchError) as caught:
        await cache.actor(f"{base}/users/liar")
    assert caught.value.reason is FetchFailure.ID_MISMATCH
    with pytest.raises(FetchError):  # failures are not cached as successes
        await cache.actor(f"{base}/users/liar")
    assert remote.app[HITS]["/users/liar"] == 2


# -- keys ----------------------------------------------------------------------------------


async def test_key_with_fragment(
    cache: ActorCache, remote: TestServer, base: str, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    publish(remote, "/users/alice", actor_doc(f"{base}/users/alice", rsa_keys[0]))
    key = await cache.key(f"{base}/users/alice#main-key")
    assert key.key_id == f"{base}/users/alice#main-key"
    assert key.owner == f"{base}/users/alice"
    assert public_key_to_pem(key.public_key) == public_key_to_pem(rsa_keys[0].public_key())
    await cache.actor(f"{base}/users/alice")  # the key lookup filled the actor cache
    assert remote.app[HITS]["/users/alice"] == 1


async def test_key_list_and_multikey_in_assertion_method(
    cache: ActorCache,
    remote: TestServer,
    base: str,
    rsa_keys: list[rsa.RSAPrivateKey],
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    actor_id = f"{base}/users/alice"
    multikey = {
        "id": f"{actor_id}#ed25519-key",
        "type": "Multikey",
        "controller": actor_id,
        "publicKeyMultibase": multikey_encode(ed_key.public_key()),
    }
    doc = actor_doc(actor_id, rsa_keys[0], multikey=multikey)
    doc["publicKey"] = [
        {
            "id": f"{actor_id}#other",
            "owner": actor_id,
            "publicKeyPem": public_key_to_pem(rsa_keys[1].public_key()),
        },
        doc["publicKey"],
    ]
    publish(remote, "/users/alice", doc)
    ed = await cache.key(f"{actor_id}#ed25519-key")
    assert isinstance(ed.public_key, ed25519.Ed25519PublicKey)
    assert ed.public_key.public_bytes_raw() == ed_key.public_key().public_bytes_raw()
    second = await cache.key(f"{actor_id}#other")
    assert public_key_to_pem(second.public_key) == public_key_to_pem(rsa_keys[1].public_key())
    # The same Multikey with a foreign controller is refused.
    publish(
        remote,
        "/users/alice",
        actor_doc(
            actor_id, rsa_keys[0], multikey={**multikey, "controller": f"{ELSEWHERE}/users/alice"}
        ),
    )
    with pytest.raises(KeyUnavailable, match="controller"):
        await cache.key(f"{actor_id}#ed25519-key", refresh=True)


async def test_key_without_fragment_reciprocal(
    cache: ActorCache, remote: TestServer, base: str, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    actor_id, key_id = f"{base}/gts/bob", f"{base}/gts/bob/main-key"
    publish(remote, "/gts/bob", actor_doc(actor_id, rsa_keys[0], key_id=key_id))
    # GoToSocial's stub: id is the actor, not the key URL; it is only a pointer.
    stub = actor_doc(actor_id, rsa_keys[1], key_id=key_id)
    publish(remote, "/gts/bob/main-key", stub)
    key = await cache.key(key_id)
    assert (key.key_id, key.owner) == (key_id, actor_id)
    # The key material comes from the actor, never from the pointer.
    assert public_key_to_pem(key.public_key) == public_key_to_pem(rsa_keys[0].public_key())
    assert remote.app[HITS]["/gts/bob/main-key"] == 1
    assert remote.app[HITS]["/gts/bob"] == 1
    assert all("Signature" in h for h in remote.app[HEADERS])  # both fetches signed


async def test_bare_key_document_without_fragment(
    cache: ActorCache, remote: TestServer, base: str, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    actor_id, key_id = f"{base}/users/dan", f"{base}/keys/dan"
    publish(remote, "/keys/dan", {"id": key_id, "type": "Key", "owner": actor_id})
    publish(remote, "/users/dan", actor_doc(actor_id, rsa_keys[0], key_id=key_id))
    assert (await cache.key(key_id)).owner == actor_id


async def test_key_without_fragment_not_reciprocal_refused(
    cache: ActorCache, remote: TestServer, base: str, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    actor_id, key_id = f"{base}/gts/carol", f"{base}/gts/carol/main-key"
    publish(remote, "/gts/carol/main-key", actor_doc(actor_id, rsa_keys[1], key_id=key_id))
    publish(remote, "/gts/carol", actor_doc(actor_id, rsa_keys[0]))  # lists #main-key only
    with pytest.raises(KeyUnavailable, match="does not list this key"):
        await cache.key(key_id)
    assert remote.app[HITS]["/gts/carol"] == 1
    with pytest.raises(KeyUnavailable, match="does not list this key"):
        await cache.key(key_id)
    # Not listed in the cached copy: looked for once more in a fresh one, then refused.
    assert remote.app[HITS]["/gts/carol"] == 2


async def test_owner_on_another_origin_refused(
    cache: ActorCache,
    remote: TestServer,
    base: str,
    rsa_keys: list[rsa.RSAPrivateKey],
    guard: NetGuard,
) -> None:
    key_id = f"{base}/gts/mallory/main-key"
    publish(remote, "/gts/mallory/main-key", {"id": key_id, "owner": f"{ELSEWHERE}/users/m"})
    with pytest.raises(KeyUnavailable, match="origin"):
        await cache.key(key_id)
    # A fragment key whose publicKey names a foreign owner is refused too.
    publish(
        remote,
        "/users/eve",
        actor_doc(f"{base}/users/eve", rsa_keys[0], owner=f"{ELSEWHERE}/users/eve"),
    )
    with pytest.raises(KeyUnavailable, match="owner"):
        await cache.key(f"{base}/users/eve#main-key")
    assert guard.attempts == []  # elsewhere.example was never even resolved


async def test_rotation(
    cache: ActorCache, remote: TestServer, base: str, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    actor_id = f"{base}/users/alice"
    publish(remote, "/users/alice", actor_doc(actor_id, rsa_keys[0]))
    old = await cache.key(f"{actor_id}#main-key")
    # Same key id, new key: the cached key stands until the verifier asks for a refresh.
    publish(remote, "/users/alice", actor_doc(actor_id, rsa_keys[1]))
    assert (await cache.key(f"{actor_id}#main-key")).public_key == old.public_key
    fresh = await cache.key(f"{actor_id}#main-key", refresh=True)
    assert public_key_to_pem(fresh.public_key) == public_key_to_pem(rsa_keys[1].public_key())
    # A new key id the cached copy does not list triggers exactly one refetch.
    publish(remote, "/users/alice", actor_doc(actor_id, rsa_keys[0], key_id=f"{actor_id}#key-2"))
    hits = remote.app[HITS]["/users/alice"]
    rotated = await cache.key(f"{actor_id}#key-2")
    assert public_key_to_pem(rotated.public_key) == public_key_to_pem(rsa_keys[0].public_key())
    assert remote.app[HITS]["/users/alice"] == hits + 1


@pytest.mark.parametrize("key_id", ["main-key", "urn:uuid:1234", "ftp://x/y#k", ""])
async def test_unusable_key_ids(cache: ActorCache, key_id: str) -> None:
    with pytest.raises(KeyUnavailable, match="absolute"):
        await cache.key(key_id)


async def test_unavailable_actor_reports_the_fetch_failure(
    cache: ActorCache, remote: TestServer, base: str
) -> None:
    with pytest.raises(KeyUnavailable) as gone:
        await cache.key(f"{base}/gone#main-key")
    assert gone.value.failure is FetchFailure.GONE
    with pytest.raises(KeyUnavailable) as missing:
        await cache.key(f"{base}/nobody#main-key")
    assert missing.value.failure is FetchFailure.STATUS
    publish(
        remote,
        "/users/badpem",
        {
            "id": f"{base}/users/badpem",
            "type": "Person",
            "publicKey": {"id": f"{base}/users/badpem#main-key", "publicKeyPem": "-----BEGIN nope"},
        },
    )
    with pytest.raises(KeyUnavailable, match="publicKeyPem"):
        await cache.key(f"{base}/users/badpem#main-key")
