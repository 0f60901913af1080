"""Client-held keys (issue 5): a support signed by a key only the resident's client holds.

The resident registers an Ed25519 public key; it appears in their actor's assertionMethod. A
``Like`` the client proves with it is stored, delivered and received byte for byte as signed,
and counts at the city. A proof by any other key is refused at the outbox, and a forged one
smuggled straight into the city's inbox (with a valid HTTP signature) is refused there.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from activitypub.httpsig import Scheme, sign_request
from activitypub.integrity import create_proof, verify_proof_with_key
from activitypub.keys import generate_ed25519, multikey_encode
from federation.instance.app import ACTORS, DB
from federation.validation import validate
from federation.vocab.context import document_context, plain_context
from tests.instance_fixtures import count_rows
from tests.test_c2s import LD, PROBLEM, Net, call, net, post, propose
from tests.test_handlers import now, stamp
from tests.test_instance_federation import of_type

__all__ = ["net"]  # the fixture, imported from test_c2s


def compact(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


async def register(net: Net, name: str, key: Ed25519PrivateKey, token: str | None = None) -> str:
    body = {"name": name, "publicKeyMultibase": multikey_encode(key.public_key())}
    url = net.gracia.actor("ana") + "/client-keys"
    status, created, headers = await call(
        net, "POST", url, token or net.pats["ana"], body, content_type="application/json"
    )
    assert status == 201, created
    assert headers["Location"] == created["id"] == net.gracia.actor("ana") + "#client-" + name
    return str(created["id"])


def like(net: Net, proposal_id: str, **changes: Any) -> dict[str, Any]:
    """A support Like as a client builds it: its own fresh id, now, to the owning Group."""
    base = net.gracia.config.base_url
    doc = {
        "@context": plain_context(),
        "id": f"{base}/supports/{uuid.uuid4().hex}",
        "type": "Like",
        "actor": net.gracia.actor("ana"),
        "object": proposal_id,
        "published": stamp(),
        "to": [net.city.group],
    }
    doc.update(changes)
    return doc


async def refused(net: Net, body: bytes, status: int, reason: str) -> None:
    """POST raw bytes to ana's outbox: refused with the rule, and nothing stored anywhere."""
    before = (await count_rows(net.gracia.app[DB]), await count_rows(net.city.app[DB]))
    got, problem, headers = await call(
        net, "POST", net.outbox("ana"), net.pats["ana"], raw=body, content_type=LD
    )
    assert (got, problem.get("reason")) == (status, reason), problem
    assert headers["Content-Type"].startswith(PROBLEM) and problem["type"].endswith("#" + reason)
    assert (await count_rows(net.gracia.app[DB]), await count_rows(net.city.app[DB])) == before


async def test_registering_listing_and_deleting_client_keys(net: Net) -> None:
    a = net.gracia
    key = generate_ed25519()
    key_id = await register(net, "phone", key)
    status, actor, _ = await call(net, "GET", a.actor("ana"), None)
    assert status == 200
    entries = {entry["id"]: entry for entry in actor["assertionMethod"]}
    assert entries[key_id] == {
        "id": key_id,
        "type": "Multikey",
        "controller": a.actor("ana"),
        "publicKeyMultibase": multikey_encode(key.public_key()),
    }
    assert a.actor("ana") + "#ed25519-key" in entries  # the server's own key stays listed
    validate("actor-person", actor)
    url = a.actor("ana") + "/client-keys"
    status, listed, _ = await call(net, "GET", url, net.pats["ana_read"])
    assert status == 200 and [entry["id"] for entry in listed["items"]] == [key_id]

    again = {"name": "tablet", "publicKeyMultibase": multikey_encode(key.public_key())}
    rsa_like = {"name": "x", "publicKeyMultibase": "z" + "1" * 40}
    for token, body, status, reason in (
        (net.pats["ana_read"], {"name": "x"}, 403, "insufficient_scope"),
        (net.pats["pau"], {"name": "x"}, 403, "not_your_keys"),
        (
            net.pats["ana"],
            {
                "name": "phone",
                "publicKeyMultibase": multikey_encode(generate_ed25519().public_key()),
            },
            409,
            "key_name_taken",
        ),
        (net.pats["ana"], again, 409, "key_already_registered"),
        (net.pats["ana"], rsa_like, 422, "invalid_key"),
        (net.pats["ana"], {"name": "Bad Name!", "publicKeyMultibase": "z"}, 422, "invalid_input"),
    ):
        before = await count_rows(a.app[DB])
        got, problem, _ = await call(net, "POST", url, token, body, content_type="application/json")
        assert (got, problem["reason"]) == (status, reason), problem
        assert await count_rows(a.app[DB]) == before

    status, _, _ = await call(net, "DELETE", url + "/phone", net.pats["ana"])
    assert status == 204
    status, actor, _ = await call(net, "GET", a.actor("ana"), None)
    assert key_id not in {entry["id"] for entry in actor["assertionMethod"]}
    status, problem, _ = await call(net, "DELETE", url + "/phone", net.pats["ana"])
    assert (status, problem["reason"]) == (404, "not_found")


async def test_a_client_signed_support_keeps_its_proof_through_delivery(net: Net) -> None:
    a, c = net.gracia, net.city
    proposal_id = (await propose(net, "pau"))["object"]["id"]
    await c.observer.wait(of_type("Create", object=proposal_id))
    key = generate_ed25519()
    key_id = await register(net, "phone", key)
    signed = create_proof(like(net, proposal_id), key, key_id)
    body = compact(signed)

    status, stored, headers = await call(
        net, "POST", net.outbox("ana"), net.pats["ana"], raw=body, content_type=LD
    )
    assert status == 201, stored
    assert headers["Location"] == signed["id"]
    assert compact(stored) == body  # the server changed nothing, added no proof
    outbox_row = await a.deliberation.outbox.get_activity(signed["id"])
    assert outbox_row is not None and compact(outbox_row.document) == body

    record = await c.observer.wait(of_type("Like", object=proposal_id))
    assert record.auth == "proof"  # the city authenticated it by the client's proof
    assert json.dumps(record.activity["proof"]) == json.dumps(signed["proof"])
    verify_proof_with_key(record.activity, key.public_key())
    assert await c.deliberation.support_count(proposal_id) == 1
    # Stored by the city as signed (its inbox row, addressed to no resident of the city,
    # keeps only its id once handled).
    rows = await c.app[DB].execute_fetchall(
        "SELECT document FROM supports WHERE id = ?", (signed["id"],)
    )
    assert [json.loads(row[0]) for row in rows] == [signed]

    undo_doc = {
        "@context": plain_context(),
        "id": f"{a.config.base_url}/activities/{uuid.uuid4().hex}",
        "type": "Undo",
        "actor": a.actor("ana"),
        "object": signed["id"],
        "published": stamp(),
        "to": [c.group],
    }
    undo = create_proof(undo_doc, key, key_id)
    withdrawn = await post(net, "ana", undo)
    assert withdrawn == undo
    await c.observer.wait(of_type("Undo", actor=a.actor("ana")))
    assert await c.deliberation.support_count(proposal_id) == 0


async def test_proofs_by_other_keys_and_broken_rules_are_refused(net: Net) -> None:
    a, c = net.gracia, net.city
    proposal_id = (await propose(net, "pau"))["object"]["id"]
    await c.observer.wait(of_type("Create", object=proposal_id))
    key, other = generate_ed25519(), generate_ed25519()
    key_id = await register(net, "phone", key)
    server_keys = await a.app[ACTORS].keys_for(a.actor("ana"))

    def signed(by: Ed25519PrivateKey = key, method: str = key_id, **changes: Any) -> bytes:
        return compact(create_proof(like(net, proposal_id, **changes), by, method))

    tampered = create_proof(like(net, proposal_id), key, key_id)
    tampered["object"] = a.config.base_url + "/proposals/other"
    old = stamp(now() - timedelta(hours=1))
    note = create_proof(
        {
            "@context": document_context(),
            "type": "Create",
            "id": f"{a.config.base_url}/activities/{uuid.uuid4().hex}",
            "actor": a.actor("ana"),
            "object": {"type": "Note"},
        },
        key,
        key_id,
    )
    for body, status, reason in (
        (signed(by=other), 403, "proof_signature_invalid"),  # forged: another key, our key id
        (
            signed(by=other, method=a.actor("ana") + "#client-laptop"),
            403,
            "verification_method_unknown",
        ),
        (compact(server_keys.prove(like(net, proposal_id))), 403, "proof_not_by_client_key"),
        (compact(tampered), 403, "proof_signature_invalid"),
        (signed(id=a.config.base_url + "/supports/1"), 422, "client_id_invalid"),
        (signed(id=f"{a.config.base_url}/activities/{uuid.uuid4().hex}"), 422, "client_id_invalid"),
        (
            signed(id=f"{c.config.base_url}/supports/{uuid.uuid4().hex}"),
            422,
            "invalid_support",
        ),  # another origin than the actor's
        (signed(published=old), 422, "published_out_of_range"),
        (signed(cc=[a.actor("ana") + "/followers"]), 422, "wrong_addressing"),
        (signed(to=[c.group, "https://other.example/actor"]), 422, "wrong_addressing"),
        (signed(to=[a.group]), 422, "wrong_addressing"),
        (signed(actor=a.actor("pau")), 403, "actor_mismatch"),
        (compact(note), 422, "signed_activity_unsupported"),
    ):
        await refused(net, body, status, reason)
    accepted = signed()
    status, _, _ = await call(net, "POST", net.outbox("ana"), net.pats["ana"], raw=accepted)
    assert status == 201
    # The owner handles the delivered support first: its writes are not the refusal's.
    await c.observer.wait(of_type("Like", actor=a.actor("ana")))
    again = json.loads(accepted)
    await refused(
        net, compact(create_proof({**again, "published": stamp()}, key, key_id)), 409, "id_in_use"
    )


async def test_a_forged_support_smuggled_into_the_citys_inbox_is_refused(net: Net) -> None:
    a, c = net.gracia, net.city
    proposal_id = (await propose(net, "pau"))["object"]["id"]
    await c.observer.wait(of_type("Create", object=proposal_id))
    key_id = await register(net, "phone", generate_ed25519())
    # Signed by someone else under ana's client key id; sent with a VALID HTTP signature by
    # ana's own server key, as her server (or any peer relaying it) could do.
    forged = compact(create_proof(like(net, proposal_id), generate_ed25519(), key_id))
    inbox = c.config.base_url + "/inbox"
    server_keys = await a.app[ACTORS].keys_for(a.actor("ana"))
    headers = sign_request(
        "POST",
        inbox,
        {"Content-Type": "application/activity+json"},
        forged,
        server_keys.signing_key,
        Scheme.CAVAGE,
    )
    before = await count_rows(c.app[DB])
    async with (
        aiohttp.ClientSession() as session,
        session.post(inbox, data=forged, headers=headers) as response,
    ):
        problem = await response.json(content_type=None)
    assert (response.status, problem["reason"]) == (401, "proof_signature_invalid")
    assert await count_rows(c.app[DB]) == before
    assert await c.deliberation.support_count(proposal_id) == 0
