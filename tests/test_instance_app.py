"""The instance app on 127.0.0.1: actors, keys, discovery, collections, inboxes, federation."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import aiohttp
import jsonschema
import pytest
from aiohttp.test_utils import TestServer

from activitypub.actors import DID_V1, actor_keys, ed25519_key_id, main_key_id
from activitypub.keys import public_key_to_pem
from activitypub.nodeinfo import INSTANCE_ACTOR_REL, NODEINFO_2_1_TYPE, SCHEMA_2_1
from activitypub.runtime import FEDERATION
from activitypub.storage import InboxRecord
from federation.config import InstanceConfig, load_config
from federation.config_writer import InitOptions, write_instance_config
from federation.instance.actors import instance_territory, resident_territory
from federation.instance.app import ACCOUNTS, ACTORS, DB, NODEINFO, create_app
from federation.model import Territory, TerritoryKind
from federation.validation import validate
from federation.vocab.actors import actor_territory_from_ap, resident_territory_from_ap
from tests.apnode import NodeState, start_node

AS2 = "application/activity+json"
LD_AS2 = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
PASSWORD = "correct horse battery"
GROUP = "av_raval"


def make_config(tmp_path: Path, port: int) -> InstanceConfig:
    """A loopback instance whose ids use the port it will listen on."""
    options = InitOptions(
        base_url=f"http://127.0.0.1:{port}",
        name="AV Raval",
        secret="t" * 43,
        group=GROUP,
        territory="08019-01",
        district="08019-1",
        allow_loopback=True,
        listen=f"127.0.0.1:{port}",
    )
    return load_config(write_instance_config(tmp_path / "raval", options), environ={})


@asynccontextmanager
async def running(config: InstanceConfig) -> AsyncIterator[TestServer]:
    """The instance app served on its configured loopback port."""
    server = TestServer(create_app(config), host="127.0.0.1", port=config.listen_port)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def config(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> InstanceConfig:
    return make_config(tmp_path, unused_tcp_port_factory())


@pytest.fixture
async def server(config: InstanceConfig) -> AsyncIterator[TestServer]:
    async with running(config) as started:
        await started.app[ACCOUNTS].create_user("alice", PASSWORD)
        yield started


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get_json(
    http: aiohttp.ClientSession, url: str, accept: str = AS2, status: int = 200
) -> tuple[dict[str, Any], str]:
    async with http.get(url, headers={"Accept": accept}) as response:
        assert response.status == status, await response.text()
        return json.loads(await response.read()), response.headers["Content-Type"]


def actor_urls(config: InstanceConfig) -> dict[str, str]:
    base = config.base_url
    return {
        "Application": f"{base}/actor",
        "Group": f"{base}/groups/{GROUP}",
        "Person": f"{base}/users/alice",
    }


async def test_actors_are_mastodon_ready(
    server: TestServer, config: InstanceConfig, http: aiohttp.ClientSession
) -> None:
    for kind, url in actor_urls(config).items():
        doc, content_type = await get_json(http, url)
        assert content_type == AS2
        assert (doc["id"], doc["type"]) == (url, kind)
        assert DID_V1 in doc["@context"]  # defines assertionMethod for standard verifiers
        for name in ("inbox", "outbox", "followers", "following"):
            assert doc[name] == f"{url}/{name}"
        assert doc["endpoints"]["sharedInbox"] == f"{config.base_url}/inbox"
        assert doc["manuallyApprovesFollowers"] is False
        keys = {key.key_id: key for key in actor_keys(doc)}
        assert set(keys) == {main_key_id(url), ed25519_key_id(url)}
        private = await server.app[ACTORS].keys_for(url)
        assert public_key_to_pem(keys[main_key_id(url)].public_key) == public_key_to_pem(
            private.rsa.public_key()
        )
        assert keys[ed25519_key_id(url)].public_key == private.ed25519.public_key()
        assert private.rsa.key_size == 2048
        assert "PRIVATE" not in json.dumps(doc)


async def test_actors_carry_barri_terms_and_validate(
    server: TestServer, config: InstanceConfig, http: aiohttp.ClientSession
) -> None:
    urls = actor_urls(config)
    shapes = {"Application": "actor-application", "Group": "actor-group", "Person": "actor-person"}
    for kind, url in urls.items():
        doc, _ = await get_json(http, url)
        validate(shapes[kind], doc)
        assert doc["@context"][-1]["barri"] == "https://w3id.org/barri/ns#"
    group, _ = await get_json(http, urls["Group"])
    assert actor_territory_from_ap(group) == Territory(
        TerritoryKind.NEIGHBOURHOOD, "08019-01", district_code="08019-1"
    )
    person, _ = await get_json(http, urls["Person"])
    assert "verifiedResidentOf" not in person  # not verified yet
    await server.app[ACCOUNTS].verify("alice", "08019-01", by="test")
    verified, _ = await get_json(http, urls["Person"])
    validate("actor-person", verified)
    resident = resident_territory_from_ap(verified)
    assert resident is not None and resident.code == "08019-01"


async def test_actor_handles(
    server: TestServer, config: InstanceConfig, http: aiohttp.ClientSession
) -> None:
    urls = actor_urls(config)
    app, _ = await get_json(http, urls["Application"])
    group, _ = await get_json(http, urls["Group"])
    person, _ = await get_json(http, urls["Person"])
    assert app["preferredUsername"] == "127.0.0.1"  # the host, as Mastodon's instance actor
    assert app["discoverable"] is False
    assert (group["preferredUsername"], group["name"]) == (GROUP, "AV Raval")
    assert person["preferredUsername"] == "alice"


async def test_webfinger_round_trip_for_every_actor(
    server: TestServer, config: InstanceConfig, http: aiohttp.ClientSession
) -> None:
    handles = {"Application": "127.0.0.1", "Group": GROUP, "Person": "alice"}
    for kind, url in actor_urls(config).items():
        acct = f"acct:{handles[kind]}@{config.host}"
        jrd, content_type = await get_json(
            http, f"{config.base_url}/.well-known/webfinger?resource={acct}"
        )
        assert content_type == "application/jrd+json"
        assert jrd["subject"] == acct
        [self_link] = [link for link in jrd["links"] if link["rel"] == "self"]
        assert (self_link["type"], self_link["href"]) == (AS2, url)
        # Mastodon's check: the actor's preferredUsername and host lead back to the same id.
        doc, _ = await get_json(http, self_link["href"])
        assert doc["id"] == url and doc["preferredUsername"] == handles[kind]


async def test_webfinger_instance_url_and_unknowns(
    server: TestServer, config: InstanceConfig, http: aiohttp.ClientSession
) -> None:
    wf = f"{config.base_url}/.well-known/webfinger?resource="
    jrd, _ = await get_json(http, wf + config.base_url + "/")  # FEP-d556
    assert jrd["subject"] == config.base_url + "/"
    assert jrd["links"][0]["href"] == f"{config.base_url}/actor"
    by_id, _ = await get_json(http, wf + f"{config.base_url}/users/alice")
    assert by_id["subject"] == f"acct:alice@{config.host}"
    for resource in (
        f"acct:nobody@{config.host}",
        "acct:alice@elsewhere.example",
        f"{config.base_url}/users/nobody",
        "https://elsewhere.example/",
    ):
        problem, content_type = await get_json(http, wf + resource, status=404)
        assert content_type == "application/problem+json" and problem["status"] == 404


async def test_content_negotiation(
    server: TestServer, config: InstanceConfig, http: aiohttp.ClientSession
) -> None:
    url = actor_urls(config)["Group"]
    _, content_type = await get_json(http, url, accept=LD_AS2)
    assert content_type == LD_AS2
    _, both = await get_json(http, url, accept=f"{LD_AS2}, {AS2}")
    assert both == AS2
    async with http.get(url) as response:
        assert response.headers["Content-Type"] == AS2
        assert response.headers["Vary"] == "Accept"


async def test_unknown_actors_are_problems(
    server: TestServer, config: InstanceConfig, http: aiohttp.ClientSession
) -> None:
    for path in ("/users/nobody", "/groups/other", "/users/Alice", "/users/nobody/outbox"):
        problem, content_type = await get_json(http, config.base_url + path, status=404)
        assert content_type == "application/problem+json" and problem["status"] == 404
    async with http.post(
        config.base_url + "/users/nobody/inbox", data=b"{}", headers={"Content-Type": AS2}
    ) as response:
        assert response.status == 404


async def test_keys_persist_across_restarts(config: InstanceConfig) -> None:
    async def published() -> list[list[str]]:
        async with running(config) as started, aiohttp.ClientSession() as session:
            if await started.app[ACCOUNTS].users.get_user("alice") is None:
                await started.app[ACCOUNTS].create_user("alice", PASSWORD)
            docs = [(await get_json(session, url))[0] for url in actor_urls(config).values()]
            return [
                [doc["publicKey"]["publicKeyPem"], doc["assertionMethod"][0]["publicKeyMultibase"]]
                for doc in docs
            ]

    first = await published()
    assert await published() == first
    assert len({pem for pem, _ in first}) == 3  # every actor has its own key


async def test_nodeinfo_validates(
    server: TestServer,
    config: InstanceConfig,
    http: aiohttp.ClientSession,
    vectors: Path,
) -> None:
    links, _ = await get_json(http, f"{config.base_url}/.well-known/nodeinfo")
    hrefs = {link["rel"]: link["href"] for link in links["links"]}
    assert hrefs[INSTANCE_ACTOR_REL] == f"{config.base_url}/actor"  # FEP-2677
    await server.app[ACCOUNTS].create_user("bob", PASSWORD)
    doc, content_type = await get_json(http, hrefs[SCHEMA_2_1])
    assert content_type == NODEINFO_2_1_TYPE
    schema = json.loads((vectors / "nodeinfo" / "nodeinfo-2.1.schema.json").read_text())
    jsonschema.Draft4Validator(schema).validate(doc)
    assert doc["software"]["name"] == "barri"
    assert doc["openRegistrations"] is True
    assert doc["usage"]["users"] == {"total": 2}
    assert doc["metadata"]["nodeName"] == "AV Raval"
    assert doc["metadata"]["barri"] == {
        "group": f"{config.base_url}/groups/av_raval",
        "territory": {"kind": "neighbourhood", "code": "08019-01", "districtCode": "08019-1"},
        "processes": 0,
    }

    async def three() -> int:
        return 3

    server.app[NODEINFO].register_count("processes", three)
    later, _ = await get_json(http, hrefs[SCHEMA_2_1])
    assert later["metadata"]["barri"]["processes"] == 3
    broken = dict(doc, usage={"users": {"total": -1}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate(broken)


async def test_host_meta_and_healthz(
    server: TestServer, config: InstanceConfig, http: aiohttp.ClientSession
) -> None:
    async with http.get(config.base_url + "/.well-known/host-meta") as response:
        assert response.status == 200
        template = f"{config.base_url}/.well-known/webfinger?resource={{uri}}"
        assert f'template="{template}"' in await response.text()
    health, content_type = await get_json(http, config.base_url + "/healthz")
    assert content_type.startswith("application/json")
    assert health == {"status": "ok", "database": "ok"}


async def test_collections_are_empty_and_paged(
    server: TestServer, config: InstanceConfig, http: aiohttp.ClientSession
) -> None:
    for url in actor_urls(config).values():
        for name in ("outbox", "followers", "following"):
            collection, _ = await get_json(http, f"{url}/{name}")
            assert collection["type"] == "OrderedCollection"
            assert (collection["id"], collection["totalItems"]) == (f"{url}/{name}", 0)
            page, _ = await get_json(http, collection["first"])
            assert page["type"] == "OrderedCollectionPage"
            assert (page["partOf"], page["orderedItems"]) == (f"{url}/{name}", [])
            assert "next" not in page and "prev" not in page
    problem, content_type = await get_json(
        http, actor_urls(config)["Person"] + "/outbox?after=%%%", status=400
    )
    assert content_type == "application/problem+json" and problem["status"] == 400


async def test_unsigned_inbox_post_is_refused(
    server: TestServer, config: InstanceConfig, http: aiohttp.ClientSession
) -> None:
    activity = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "https://elsewhere.example/activities/1",
        "type": "Create",
        "actor": "https://elsewhere.example/users/mallory",
        "object": {"id": "https://elsewhere.example/notes/1", "type": "Note"},
    }
    for path in ("/inbox", "/users/alice/inbox", f"/groups/{GROUP}/inbox", "/actor/inbox"):
        async with http.post(
            config.base_url + path, data=json.dumps(activity), headers={"Content-Type": AS2}
        ) as response:
            assert response.status == 401
            assert response.headers["Content-Type"] == "application/problem+json"
    rows = list(await server.app[DB].execute_fetchall("SELECT COUNT(*) FROM inbox_messages"))
    assert rows[0][0] == 0


async def test_federates_with_a_real_node(
    server: TestServer,
    config: InstanceConfig,
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    nodes = cast(
        AsyncGenerator[tuple[NodeState, TestServer], None],
        start_node(tmp_path, "remote", unused_tcp_port_factory()),
    )
    remote, remote_server = await anext(nodes)
    try:
        # Out: alice's activity, HTTP-signed at send time with alice's stored key.
        alice = actor_urls(config)["Person"]
        note = {"id": f"{alice}/notes/1", "type": "Note", "attributedTo": alice}
        activity: dict[str, Any] = {"@context": "https://www.w3.org/ns/activitystreams"}
        activity |= {"type": "Create", "id": f"{alice}/activities/1", "actor": alice}
        activity["object"] = note
        federation = server.app[FEDERATION]
        assert await federation.deliver(activity, [remote.origin + "/inbox"]) == 1
        async with asyncio.timeout(30):
            await remote.arrived.wait()
        assert [r.activity["id"] for r in remote.handled] == [activity["id"]]

        # In: the remote alice's activity reaches our shared inbox; verifying it made us fetch
        # her actor with a GET signed by our instance actor.
        received: asyncio.Queue[InboxRecord] = asyncio.Queue()

        @federation.dispatcher.on("Create")
        async def collect(record: InboxRecord) -> None:
            await received.put(record)

        incoming = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{remote.origin}/activities/9",
            "type": "Create",
            "actor": remote.actor_id("alice"),
            "object": {"id": f"{remote.origin}/notes/9", "type": "Note"},
        }
        await remote_server.app[FEDERATION].deliver(incoming, [f"{config.base_url}/inbox"])
        async with asyncio.timeout(30):
            record = await received.get()
        assert (record.activity_id, record.auth) == (incoming["id"], "httpsig")
        assert f"{config.base_url}/actor" in remote.fetched_by
    finally:
        await nodes.aclose()


def test_resident_territory_follows_the_instance(config: InstanceConfig) -> None:
    own = resident_territory(config, "08019-01")
    assert own == Territory(TerritoryKind.NEIGHBOURHOOD, "08019-01", district_code="08019-1")
    neighbour = resident_territory(config, "08019-02")
    assert neighbour == Territory(TerritoryKind.NEIGHBOURHOOD, "08019-02", district_code="08019-1")
    district = replace(config, territory="08019-1", territory_kind="district", district=None)
    assert instance_territory(district) == Territory(TerritoryKind.DISTRICT, "08019-1")
    inner = resident_territory(district, "08019-05")
    assert inner == Territory(TerritoryKind.NEIGHBOURHOOD, "08019-05", district_code="08019-1")
    assert instance_territory(replace(config, territory=None)) is None


async def test_the_delivery_concurrency_setting_reaches_the_federation(
    config: InstanceConfig,
) -> None:
    assert config.delivery_concurrency == 16  # the written file's default
    async with running(dataclasses.replace(config, delivery_concurrency=150)) as server:
        assert server.app[FEDERATION].config.delivery_concurrency == 150
