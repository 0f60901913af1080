"""Two real nodes on 127.0.0.1: signed delivery, signed fetch, refusals, key rotation, proofs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from activitypub.httpsig import Scheme, sign_request
from activitypub.knock import Knock
from activitypub.runtime import FEDERATION, Federation
from tests.apnode import NodeState, start_node

Nodes = tuple[NodeState, NodeState, Federation, Federation]


@pytest.fixture
async def nodes(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[Nodes]:
    """Node A and node B, each a real server with its own SQLite file."""
    gen_a = start_node(tmp_path, "a", unused_tcp_port_factory())
    gen_b = start_node(tmp_path, "b", unused_tcp_port_factory())
    (a, server_a), (b, server_b) = await anext(gen_a), await anext(gen_b)
    try:
        yield a, b, server_a.app[FEDERATION], server_b.app[FEDERATION]
    finally:
        await gen_b.aclose()
        await gen_a.aclose()


def _activity(node: NodeState, actor: str, n: int, kind: str = "Create") -> dict[str, Any]:
    actor_id = node.actor_id(actor)
    return {
        "@context": ["https://www.w3.org/ns/activitystreams"],
        "id": f"{node.origin}/activities/{n}",
        "type": kind,
        "actor": actor_id,
        "object": {
            "id": f"{node.origin}/notes/{n}",
            "type": "Note",
            "attributedTo": actor_id,
            "content": f"note {n}",
        },
    }


async def _wait_handled(node: NodeState, count: int) -> None:
    async with asyncio.timeout(10):
        while len(node.handled) < count:
            node.arrived.clear()
            await node.arrived.wait()


async def _post(
    url: str,
    body: bytes,
    node: NodeState,
    actor: str,
    *,
    scheme: Scheme = Scheme.CAVAGE,
    sign_body: bytes | None = None,
    now: datetime | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` signed (over ``sign_body`` if given) with ``actor``'s key on ``node``."""
    headers = sign_request(
        "POST",
        url,
        {"Content-Type": "application/activity+json"},
        sign_body if sign_body is not None else body,
        node.keys[actor].signing_key,
        scheme,
        now=now,
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, (json.loads(text) if text else {})


async def test_a_delivers_a_signed_activity_to_b(nodes: Nodes) -> None:
    a, b, fed_a, _ = nodes
    activity = _activity(a, "alice", 1)
    inboxes = await fed_a.inboxes_of([b.actor_id("alice"), b.actor_id("bob")])
    assert inboxes == [f"{b.origin}/inbox"]  # collapsed to B's shared inbox
    assert await fed_a.deliver(activity, inboxes) == 1
    await _wait_handled(b, 1)
    record = b.handled[0]
    assert (record.activity_id, record.actor, record.auth) == (
        activity["id"],
        a.actor_id("alice"),
        "httpsig",
    )
    assert record.activity == activity
    # B's fetch of alice's actor (to get her key) was signed by B's instance actor.
    assert b.actor_id("instance") in a.fetched_by
    # With RFC 9421 and B's instance actor's Ed25519 key, its first knock, which A verified.
    assert a.fetch_keys[0] == b.actor_id("instance") + "#ed25519-key"
    # RFC 9421 with alice's Ed25519 key was tried first, and B verified it (the activity has
    # no proof: the HTTP signature alone authenticated it), so A remembers it for B.
    host = b.origin.split("://")[1]
    assert fed_a.knock.knock_for(host) is Knock.RFC9421_ED25519
    assert fed_a.knock.scheme_for(host) is Scheme.RFC9421
    assert fed_a.worker is not None
    await fed_a.worker.run_until_idle(timeout=10)
    [row] = await fed_a.delivery_store.list(activity_id=activity["id"])
    assert (row.state, row.last_status) == ("sent", 202)


async def test_b_fetches_a_actor_with_a_signed_get(nodes: Nodes) -> None:
    a, b, _, fed_b = nodes
    assert fed_b.actors is not None
    actor = await fed_b.actors.actor(a.actor_id("bob"))
    assert actor["id"] == a.actor_id("bob")
    assert actor["publicKey"]["owner"] == a.actor_id("bob")
    # A verified the signature: the signer is B's instance actor.
    assert a.fetched_by[-1] == b.actor_id("instance")


@pytest.mark.parametrize("scheme", [Scheme.CAVAGE, Scheme.RFC9421])
async def test_tampered_body_is_refused(nodes: Nodes, scheme: Scheme) -> None:
    a, b, _, _ = nodes
    signed = json.dumps(_activity(a, "alice", 2)).encode()
    tampered = signed.replace(b"note 2", b"note X")
    status, problem = await _post(
        f"{b.origin}/inbox", tampered, a, "alice", scheme=scheme, sign_body=signed
    )
    assert (status, problem["reason"]) == (400, "digest_mismatch")
    assert b.handled == []


async def test_stale_date_is_refused(nodes: Nodes) -> None:
    a, b, _, _ = nodes
    body = json.dumps(_activity(a, "alice", 3)).encode()
    stale = datetime.now(UTC) - timedelta(hours=2)
    status, problem = await _post(f"{b.origin}/inbox", body, a, "alice", now=stale)
    assert (status, problem["reason"]) == (401, "date_outside_window")


async def test_key_of_another_actor_is_refused(nodes: Nodes) -> None:
    a, b, _, _ = nodes
    body = json.dumps(_activity(a, "alice", 4)).encode()  # actor alice, signed by bob
    status, problem = await _post(f"{b.origin}/inbox", body, a, "bob")
    assert (status, problem["reason"]) == (401, "key_not_owned_by_actor")


async def test_id_and_actor_on_different_origins_is_refused(nodes: Nodes) -> None:
    a, b, _, _ = nodes
    activity = _activity(a, "alice", 5)
    activity["id"] = f"{b.origin}/activities/forged"
    status, problem = await _post(f"{b.origin}/inbox", json.dumps(activity).encode(), a, "alice")
    assert (status, problem["reason"]) == (403, "origin_mismatch")


async def test_replay_is_refused_and_processed_once(nodes: Nodes) -> None:
    a, b, _, _ = nodes
    body = json.dumps(_activity(a, "alice", 6)).encode()
    first, _ = await _post(f"{b.origin}/inbox", body, a, "alice")
    second, problem = await _post(f"{b.origin}/inbox", body, a, "alice")
    assert first == 202
    assert (second, problem["reason"]) == (409, "duplicate_activity")
    await _wait_handled(b, 1)
    await asyncio.sleep(0.1)
    assert [r.activity_id for r in b.handled] == [f"{a.origin}/activities/6"]


async def test_rotated_key_is_picked_up_after_one_refetch(nodes: Nodes) -> None:
    a, b, _, _ = nodes
    body = json.dumps(_activity(a, "alice", 7)).encode()
    assert (await _post(f"{b.origin}/inbox", body, a, "alice"))[0] == 202
    hits = a.actor_hits["alice"]
    a.add_actor("alice")  # rotate: alice's actor now serves new keys; B has the old one cached
    body = json.dumps(_activity(a, "alice", 8)).encode()
    status, _ = await _post(f"{b.origin}/inbox", body, a, "alice")
    assert status == 202
    assert a.actor_hits["alice"] == hits + 1  # exactly one refetch
    await _wait_handled(b, 2)


async def test_unsigned_relay_with_a_valid_proof_is_accepted(nodes: Nodes) -> None:
    a, b, _, _ = nodes
    proved = a.keys["alice"].prove(_activity(a, "alice", 9))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{b.origin}/inbox", json=proved, headers={"Content-Type": "application/activity+json"}
        ) as response,
    ):
        assert response.status == 202
    await _wait_handled(b, 1)
    assert b.handled[0].auth == "proof"


async def test_forged_proof_is_refused_even_with_a_valid_http_signature(nodes: Nodes) -> None:
    a, b, _, _ = nodes
    proved = a.keys["alice"].prove(_activity(a, "alice", 10))
    proved["object"]["content"] = "forged"
    status, problem = await _post(f"{b.origin}/inbox", json.dumps(proved).encode(), a, "alice")
    assert (status, problem["reason"]) == (401, "proof_signature_invalid")


async def test_unsigned_activity_without_proof_is_refused(nodes: Nodes) -> None:
    a, b, _, _ = nodes
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{b.origin}/inbox",
            json=_activity(a, "alice", 11),
            headers={"Content-Type": "application/activity+json"},
        ) as response,
    ):
        problem = await response.json(content_type=None)
        assert (response.status, problem["reason"]) == (401, "signature_missing")
        assert response.headers["Content-Type"].startswith("application/problem+json")
