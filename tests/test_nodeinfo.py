"""NodeInfo 2.1 (nodeinfo.diaspora.software), FEP-2677 and FEP-0151, served on loopback."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpServer

from activitypub.nodeinfo import (
    INSTANCE_ACTOR_REL,
    SCHEMA_2_1,
    NodeInfoData,
    nodeinfo_document,
    nodeinfo_links,
    nodeinfo_routes,
)

Client = TestClient[web.Request, web.Application]
ORIGIN = "http://127.0.0.1"
INSTANCE_ACTOR = "https://raval.barri.example/actor"

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Check ``value`` against the draft-04 keywords the NodeInfo 2.1 schema uses.

    Deliberately small (jsonschema is not a dependency): type, enum, pattern, minimum,
    required, properties, additionalProperties, items, minItems, minProperties. A keyword
    outside that list makes the check fail loudly rather than pass silently.
    """
    known = {
        "$schema", "id", "description", "type", "enum", "pattern", "minimum", "required",
        "properties", "additionalProperties", "items", "minItems", "minProperties",
    }  # fmt: skip
    unknown = set(schema) - known
    assert not unknown, f"schema keyword(s) this checker does not implement: {unknown}"
    errors: list[str] = []
    if "type" in schema and not _TYPES[schema["type"]](value):
        return [f"{path}: not of type {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, path)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{path}[{i}]")
    return errors


def _object_errors(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    errors = [f"{path}: missing {key}" for key in schema.get("required", []) if key not in value]
    if len(value) < schema.get("minProperties", 0):
        errors.append(f"{path}: too few properties")
    properties = schema.get("properties", {})
    for key, item in value.items():
        if key in properties:
            errors += schema_errors(item, properties[key], f"{path}.{key}")
        elif schema.get("additionalProperties", True) is False:
            errors.append(f"{path}: unexpected property {key}")
    return errors


@pytest.fixture
def schema(vectors: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (vectors / "nodeinfo" / "nodeinfo-2.1.schema.json").read_text()
    )
    return loaded


def _data(**changes: Any) -> NodeInfoData:
    fields: dict[str, Any] = {
        "software_name": "barri",
        "software_version": "0.1.0",
        "open_registrations": False,
        "users_total": 120,
        "users_active_month": 40,
        "users_active_halfyear": 80,
        "local_posts": 512,
        "metadata": {"nodeName": "Associació de Veïns del Raval", "federation": {"enabled": True}},
        "software_repository": "https://codeberg.org/barri/barri",
        "software_homepage": "https://barri.example/",
    }
    fields.update(changes)
    return NodeInfoData(**fields)


# --- the checker itself is trustworthy --------------------------------------------------


def test_checker_accepts_the_official_example(vectors: Path, schema: dict[str, Any]) -> None:
    example = json.loads((vectors / "nodeinfo" / "nodeinfo-2.1.example.json").read_text())
    assert schema_errors(example, schema) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("usage"),
        lambda d: d.__setitem__("version", "2.0"),
        lambda d: d["software"].__setitem__("name", "Diaspora"),
        lambda d: d.__setitem__("protocols", []),
        lambda d: d.__setitem__("protocols", ["activitypubx"]),
        lambda d: d["services"].__setitem__("inbound", ["myspace"]),
        lambda d: d.__setitem__("openRegistrations", "yes"),
        lambda d: d["usage"]["users"].__setitem__("total", -1),
        lambda d: d["usage"]["users"].__setitem__("total", True),
        lambda d: d["usage"]["users"].__setitem__("banned", 3),
        lambda d: d.__setitem__("extra", 1),
    ],
)
def test_checker_rejects_each_schema_violation(
    vectors: Path, schema: dict[str, Any], mutate: Callable[[dict[str, Any]], Any]
) -> None:
    example = json.loads((vectors / "nodeinfo" / "nodeinfo-2.1.example.json").read_text())
    broken = copy.deepcopy(example)
    mutate(broken)
    assert schema_errors(broken, schema) != []


# --- the document ------------------------------------------------------------------------


def test_document_validates_against_the_2_1_schema(schema: dict[str, Any]) -> None:
    doc = nodeinfo_document(_data())
    assert schema_errors(doc, schema) == []
    assert doc["version"] == "2.1"
    assert doc["software"] == {
        "name": "barri",
        "version": "0.1.0",
        "repository": "https://codeberg.org/barri/barri",
        "homepage": "https://barri.example/",
    }
    assert doc["protocols"] == ["activitypub"]
    assert doc["services"] == {"inbound": [], "outbound": []}
    assert doc["openRegistrations"] is False
    assert doc["usage"] == {
        "users": {"total": 120, "activeMonth": 40, "activeHalfyear": 80},
        "localPosts": 512,
    }
    assert doc["metadata"]["nodeName"] == "Associació de Veïns del Raval"


def test_unknown_usage_is_omitted_never_invented(schema: dict[str, Any]) -> None:
    """FEP-0151: leave unknown numbers out (keep users: {}), never publish false ones."""
    doc = nodeinfo_document(
        _data(
            users_total=None,
            users_active_month=None,
            users_active_halfyear=None,
            local_posts=None,
            software_repository=None,
            software_homepage=None,
            metadata={},
        )
    )
    assert doc["usage"] == {"users": {}}
    assert doc["software"] == {"name": "barri", "version": "0.1.0"}
    assert schema_errors(doc, schema) == []
    partial = nodeinfo_document(_data(users_active_month=None, local_posts=0))
    assert partial["usage"] == {"users": {"total": 120, "activeHalfyear": 80}, "localPosts": 0}


@pytest.mark.parametrize(
    "changes",
    [
        {"software_name": "Barri"},
        {"software_name": "barri server"},
        {"software_version": ""},
        {"open_registrations": "no"},
        {"users_total": -1},
        {"users_active_month": True},
        {"local_posts": 1.5},
        {"metadata": {"when": object()}},
    ],
)
def test_data_the_schema_would_reject_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _data(**changes)


def test_links_need_an_origin() -> None:
    with pytest.raises(ValueError):
        nodeinfo_links("raval.barri.example")


# --- served on loopback -----------------------------------------------------------------


def _app(data: NodeInfoData, origin: str, instance_actor: str | None) -> web.Application:
    async def source() -> NodeInfoData:
        return data

    app = web.Application()
    app.add_routes(nodeinfo_routes(origin, source, instance_actor=instance_actor))
    return app


AppClient = Callable[[web.Application], Awaitable[Client]]


async def test_well_known_links_to_the_document_that_is_served(
    aiohttp_server: AiohttpServer, unused_tcp_port: int, schema: dict[str, Any]
) -> None:
    origin = f"http://127.0.0.1:{unused_tcp_port}"
    server = await aiohttp_server(_app(_data(), origin, INSTANCE_ACTOR), port=unused_tcp_port)
    async with ClientSession() as session:
        async with session.get(origin + "/.well-known/nodeinfo") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            jrd = await resp.json()
        assert jrd == {
            "links": [
                {"rel": SCHEMA_2_1, "href": origin + "/nodeinfo/2.1"},
                {"rel": INSTANCE_ACTOR_REL, "href": INSTANCE_ACTOR},
            ]
        }
        # Follow the advertised link exactly, as a crawler does.
        async with session.get(jrd["links"][0]["href"]) as doc_resp:
            assert doc_resp.status == 200
            assert doc_resp.headers["Content-Type"] == (
                'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"'
            )
            assert doc_resp.headers["Access-Control-Allow-Origin"] == "*"
            doc = json.loads(await doc_resp.read())
    assert server.port == unused_tcp_port
    assert schema_errors(doc, schema) == []
    assert doc == nodeinfo_document(_data())


async def test_without_an_instance_actor_only_the_schema_link_is_listed(
    aiohttp_client: AppClient,
) -> None:
    client = await aiohttp_client(_app(_data(), "https://Raval.Barri.example:443/", None))
    jrd = await (await client.get("/.well-known/nodeinfo")).json(content_type=None)
    assert jrd == {
        "links": [{"rel": SCHEMA_2_1, "href": "https://raval.barri.example/nodeinfo/2.1"}]
    }


async def test_the_document_reflects_the_source_on_every_request(
    aiohttp_client: AppClient,
) -> None:
    counts = iter([3, 4])

    async def source() -> NodeInfoData:
        return _data(users_total=next(counts))

    app = web.Application()
    app.add_routes(nodeinfo_routes(ORIGIN, source))
    client = await aiohttp_client(app)
    first = json.loads(await (await client.get("/nodeinfo/2.1")).read())
    second = json.loads(await (await client.get("/nodeinfo/2.1")).read())
    assert (first["usage"]["users"]["total"], second["usage"]["users"]["total"]) == (3, 4)
