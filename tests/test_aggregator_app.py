"""The aggregator app on 127.0.0.1: Service actor, keys, discovery, inbox, health, config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest

from activitypub.actors import actor_keys, ed25519_key_id, main_key_id
from activitypub.nodeinfo import INSTANCE_ACTOR_REL, SCHEMA_2_1
from federation.aggregator.config import (
    AggregatorInit,
    load_aggregator_config,
    parse_aggregator_config,
    write_aggregator_config,
)
from federation.config_values import ConfigError
from federation.model import TerritoryKind
from federation.validation import validate
from federation.vocab.actors import actor_territory_from_ap
from tests.aggregator_env import city
from tests.barri_node import hood

AS2 = "application/activity+json"
REPO = Path(__file__).resolve().parent.parent


async def fetch(url: str, accept: str = AS2) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Accept": accept}) as response:
            return response.status, dict(response.headers), await response.read()


async def test_service_actor_is_a_valid_barri_service_with_the_city(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        async with aiohttp.ClientSession() as session:
            async with session.get(c.actor, headers={"Accept": AS2}) as response:
                assert response.status == 200
                assert response.content_type == AS2
                document = await response.json()
        validate("actor-service", document)
        assert document["id"] == c.actor and document["type"] == "Service"
        assert document["endpoints"]["sharedInbox"] == c.inbox
        territory = actor_territory_from_ap(document)
        assert territory is not None and territory.kind is TerritoryKind.CITY
        assert territory.code == "08019"
        key_ids = {key.key_id for key in actor_keys(document)}
        assert key_ids == {main_key_id(c.actor), ed25519_key_id(c.actor)}


async def test_keys_are_generated_once_and_kept_across_restarts(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        first = await c.aggregator.service.document()
        await c.stop()
        await c.start()
        second = await c.aggregator.service.document()
        assert first["publicKey"] == second["publicKey"]
        assert first["assertionMethod"] == second["assertionMethod"]


async def test_webfinger_nodeinfo_and_host_meta_point_at_the_service(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        base, host = c.config.base_url, c.config.host
        status, _, body = await fetch(
            f"{base}/.well-known/webfinger?resource=acct:127.0.0.1@{host}"
        )
        assert status == 200
        jrd = json.loads(body)
        assert any(link.get("href") == c.actor for link in jrd["links"])
        status, _, body = await fetch(f"{base}/.well-known/webfinger?resource={base}")
        assert status == 200 and json.loads(body)["subject"] == base
        status, _, _ = await fetch(f"{base}/.well-known/webfinger?resource=acct:nobody@{host}")
        assert status == 404
        status, _, body = await fetch(f"{base}/.well-known/nodeinfo", "application/json")
        links = {link["rel"]: link["href"] for link in json.loads(body)["links"]}
        assert links[INSTANCE_ACTOR_REL] == c.actor
        status, _, body = await fetch(links[SCHEMA_2_1], "application/json")
        nodeinfo = json.loads(body)
        assert nodeinfo["metadata"]["barri"] == {"kind": "aggregator", "city": "08019"}
        status, _, body = await fetch(f"{base}/.well-known/host-meta", "application/xrd+xml")
        assert status == 200 and b"/.well-known/webfinger?resource={uri}" in body


async def test_healthz_and_empty_collections(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        assert await c.get("/healthz") == {"status": "ok", "database": "ok", "instances": 0}
        status, _, body = await fetch(c.actor + "/outbox")
        outbox = json.loads(body)
        assert status == 200 and outbox["type"] == "OrderedCollection"
        assert outbox["totalItems"] == 0


async def test_unsigned_delivery_is_refused_and_nothing_is_recorded(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        node = await c.add_node("gracia", hood("31", "06"))
        actor = node.add_resident("anna")
        process = node.add_process()
        like = node.support(actor, node.add_proposal(actor, process))
        del like["proof"]
        async with aiohttp.ClientSession() as session:
            async with session.post(c.inbox, json=like, headers={"Content-Type": AS2}) as response:
                assert response.status == 401
                problem = await response.json()
        assert problem["reason"] == "signature_missing"
        rows = await c.aggregator.db.execute_fetchall("SELECT COUNT(*) FROM inbox_messages")
        assert next(iter(rows))[0] == 0


def test_config_round_trips_and_refuses_instance_files(tmp_path: Path) -> None:
    options = AggregatorInit(base_url="https://Participa.Example.CITY/", allow_loopback=False)
    path = write_aggregator_config(tmp_path / "agg", options)
    assert path.stat().st_mode & 0o777 == 0o600
    config = load_aggregator_config(path, environ={})
    assert config.base_url == "https://participa.example.city"
    assert (config.city, config.grace_minutes, config.kind) == ("08019", 60, "aggregator")
    overridden = load_aggregator_config(path, environ={"BARRI_GRACE_MINUTES": "15"})
    assert overridden.grace_minutes == 15
    with pytest.raises(ConfigError, match="kind"):
        parse_aggregator_config('kind = "instance"\n', tmp_path / "x.toml", environ={})
    with pytest.raises(ConfigError, match="already exists"):
        write_aggregator_config(tmp_path / "agg", options)
    with pytest.raises(ConfigError, match="unknown key"):
        parse_aggregator_config(
            'kind = "aggregator"\nbase_url = "https://a.example"\nname = "x"\nsecret = "y"\n',
            tmp_path / "x.toml",
            environ={},
        )
    with pytest.raises(ConfigError, match="grace_minutes"):
        text = (
            'kind = "aggregator"\nbase_url = "https://a.example"\nname = "x"\ngrace_minutes = -1\n'
        )
        parse_aggregator_config(text, tmp_path / "x.toml", environ={})


def _http_get(url: str) -> tuple[int, bytes]:
    # No proxies: these requests must go straight to 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, headers={"Accept": AS2}), timeout=30) as response:
        return response.status, response.read()


def test_serve_runs_an_aggregator_config_and_stops_on_sigterm(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    port = unused_tcp_port_factory()
    base = f"http://127.0.0.1:{port}"
    options = AggregatorInit(base_url=base, allow_loopback=True, listen=f"127.0.0.1:{port}")
    config_path = write_aggregator_config(tmp_path / "city", options)
    command = [sys.executable, "-m", "federation.aggregator.cli", "serve", "--config"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BARRI_")}
    server = subprocess.Popen(
        [*command, str(config_path)],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stderr is not None
        with ThreadPoolExecutor(1) as pool:
            ready = pool.submit(server.stdout.readline).result(timeout=120)
        assert f"serving aggregator {base} on {base}" in ready
        status, body = _http_get(base + "/actor")
        assert status == 200 and json.loads(body)["type"] == "Service"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=120) == 0
        assert "Traceback" not in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
