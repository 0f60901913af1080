"""FEP-8b32 / eddsa-jcs-2022 proofs: the W3C and FEP vectors byte for byte, then every refusal."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from activitypub.integrity import (
    CRYPTOSUITE,
    ContextMemo,
    ProofError,
    ProofFailure,
    VerifiedProof,
    assertion_keys,
    canonicalize,
    create_proof,
    proof_owner,
    verify_document,
    verify_proof_with_key,
    verify_with_actor,
)
from activitypub.jcs import canonical_object, plain_json
from activitypub.keys import (
    base58btc_decode,
    base58btc_encode,
    ed25519_seed_from_multibase,
    multikey_decode,
    multikey_encode,
)
from activitypub.memo import EqualMemo

VECTORS = Path(__file__).resolve().parent / "vectors"
JCS = VECTORS / "vc-di-eddsa" / "eddsa-jcs-2022"
ALICE = "https://server.example/users/alice"
ALICE_KEY = ALICE + "#ed25519-key"
BOB = "https://server.example/users/bob"
CREATED = datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC)
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def _text(name: str) -> str:
    return (JCS / name).read_text(encoding="utf-8")


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _w3c_private() -> Ed25519PrivateKey:
    pair = _json(VECTORS / "vc-di-eddsa" / "keyPair.json")
    return ed25519_seed_from_multibase(pair["privateKeyMultibase"])


def _fep() -> dict[str, Any]:
    data: dict[str, Any] = _json(VECTORS / "fep" / "fep-8b32-vector.json")
    return data


def _feature_blocks() -> list[Any]:
    """The JSON docstrings of fep-8b32.feature, in order."""
    text = (VECTORS / "fep" / "fep-8b32.feature").read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r'"""(.*?)"""', text, re.S)]


def _signed() -> dict[str, Any]:
    signed: dict[str, Any] = _fep()["signed_document"]
    return signed


def _actor() -> dict[str, Any]:
    actor: dict[str, Any] = _fep()["actor"]
    return actor


def _alice_actor(*keys: Ed25519PublicKey, controller: str = ALICE) -> dict[str, Any]:
    """An FEP-521a actor listing ``keys`` as #ed25519-key, #key-1, #key-2..."""
    names = ["#ed25519-key"] + [f"#key-{n}" for n in range(1, len(keys))]
    entries = [
        {
            "id": ALICE + name,
            "type": "Multikey",
            "controller": controller,
            "publicKeyMultibase": multikey_encode(key),
        }
        for name, key in zip(names, keys, strict=True)
    ]
    return {**_actor(), "assertionMethod": entries}


def _sign_options(
    document: Mapping[str, Any], key: Ed25519PrivateKey, options: dict[str, Any]
) -> dict[str, Any]:
    """Sign arbitrary proof options by the vc-di-eddsa formula, to build adversarial proofs."""
    unsecured = {k: v for k, v in document.items() if k not in ("proof", "signature")}
    data = (
        hashlib.sha256(canonicalize(options)).digest()
        + hashlib.sha256(canonicalize(unsecured)).digest()
    )
    return {**options, "proofValue": "z" + base58btc_encode(key.sign(data))}


def _options(**changes: Any) -> dict[str, Any]:
    """The FEP vector's proof options (no proofValue), with ``changes`` applied."""
    options = {k: v for k, v in _signed()["proof"].items() if k != "proofValue"}
    options.update(changes)
    return {k: v for k, v in options.items() if v is not None}


def _with_proof(proof: Any) -> dict[str, Any]:
    return {**_fep()["unsigned_document"], "proof": proof}


def _reason(document: Mapping[str, Any], key: Ed25519PublicKey) -> ProofFailure:
    with pytest.raises(ProofError) as info:
        verify_proof_with_key(document, key)
    return info.value.reason


def _flip_signature_byte(proof_value: str, index: int) -> str:
    signature = bytearray(base58btc_decode(proof_value[1:]))
    signature[index] ^= 0x01
    return "z" + base58btc_encode(bytes(signature))


class Actors:
    """An in-memory ActorFetcher: ``cached`` answers refresh=False, ``fresh`` refresh=True."""

    def __init__(self, cached: Mapping[str, Any], fresh: Mapping[str, Any] | None = None) -> None:
        self.cached = cached
        self.fresh = cached if fresh is None else fresh
        self.calls: list[tuple[str, bool]] = []

    async def __call__(self, url: str, refresh: bool) -> Mapping[str, Any]:
        self.calls.append((url, refresh))
        source = self.fresh if refresh else self.cached
        if url not in source:
            raise LookupError(url)
        found: Mapping[str, Any] = source[url]
        return found


async def _fails(
    document: Mapping[str, Any], actors: Actors, owner: str | None = None
) -> ProofFailure:
    with pytest.raises(ProofError) as info:
        await verify_document(document, actors, owner=owner)
    return info.value.reason


# --- W3C vc-di-eddsa eddsa-jcs-2022, step by step --------------------------------------------


def test_w3c_unsigned_document_is_the_signed_one_without_proof() -> None:
    signed = _json(JCS / "signedJCS.json")
    del signed["proof"]
    assert signed == _json(VECTORS / "vc-di-eddsa" / "unsigned.json")


def test_w3c_canonical_document_and_its_hash() -> None:
    canonical = canonicalize(_json(VECTORS / "vc-di-eddsa" / "unsigned.json"))
    assert canonical == _text("canonDocJCS.txt").encode("utf-8")
    assert hashlib.sha256(canonical).hexdigest() == _text("docHashJCS.txt")


def test_w3c_canonical_proof_options_and_their_hash() -> None:
    config = _json(JCS / "proofConfigJCS.json")
    assert config["@context"] == _json(VECTORS / "vc-di-eddsa" / "unsigned.json")["@context"]
    canonical = canonicalize(config)
    assert canonical == _text("proofCanonJCS.txt").encode("utf-8")
    assert hashlib.sha256(canonical).hexdigest() == _text("proofHashJCS.txt")


def test_w3c_combined_hash_is_proof_hash_then_document_hash() -> None:
    assert _text("combinedHashJCS.txt") == _text("proofHashJCS.txt") + _text("docHashJCS.txt")


def test_w3c_signature_over_the_combined_hash() -> None:
    signature = _w3c_private().sign(bytes.fromhex(_text("combinedHashJCS.txt")))
    assert signature.hex() == _text("sigHexJCS.txt")
    assert "z" + base58btc_encode(signature) == _text("sigBTC58JCS.txt")


def test_w3c_create_proof_reproduces_signed_document_exactly() -> None:
    unsigned = _json(VECTORS / "vc-di-eddsa" / "unsigned.json")
    config = _json(JCS / "proofConfigJCS.json")
    signed = create_proof(unsigned, _w3c_private(), config["verificationMethod"], created=CREATED)
    assert signed == _json(JCS / "signedJCS.json")
    assert signed["proof"]["proofValue"] == _text("sigBTC58JCS.txt")
    assert {k: v for k, v in signed["proof"].items() if k != "proofValue"} == config


def test_w3c_signed_document_verifies_with_the_published_key() -> None:
    signed = _json(JCS / "signedJCS.json")
    public = multikey_decode(_json(VECTORS / "vc-di-eddsa" / "keyPair.json")["publicKeyMultibase"])
    assert isinstance(public, Ed25519PublicKey)
    assert verify_proof_with_key(signed, public) == signed["proof"]


def test_w3c_flipped_document_byte_fails() -> None:
    signed = _json(JCS / "signedJCS.json")
    signed["credentialSubject"]["alumniOf"] = "The School of Examplex"
    assert _reason(signed, _w3c_private().public_key()) is ProofFailure.SIGNATURE


# --- FEP-8b32 vector -------------------------------------------------------------------------


def test_fep_json_vector_matches_the_feature_file() -> None:
    unsigned, signed, signed_again, actor = _feature_blocks()
    fep = _fep()
    assert unsigned == fep["unsigned_document"]
    assert signed == signed_again == fep["signed_document"]
    assert actor == fep["actor"]


def test_fep_canonical_forms_and_hashes_with_floats() -> None:
    fep = _fep()
    derived = fep["derived_by_this_repo_and_checked"]
    canonical = canonicalize(fep["unsigned_document"])
    assert canonical == derived["canonical_document_jcs"].encode("utf-8")
    assert b'"latitude":25.273962,"longitude":-71.184902' in canonical
    assert hashlib.sha256(canonical).hexdigest() == derived["document_hash_hex"]
    options = _options()
    assert canonicalize(options) == derived["canonical_proof_options_jcs"].encode("utf-8")
    assert hashlib.sha256(canonicalize(options)).hexdigest() == derived["proof_options_hash_hex"]


def test_fep_create_proof_reproduces_the_proof_value() -> None:
    fep = _fep()
    key = ed25519_seed_from_multibase(fep["secret_key_multibase"])
    signed = create_proof(
        fep["unsigned_document"], key, fep["verification_method"], created=CREATED
    )
    assert signed == fep["signed_document"]
    derived = fep["derived_by_this_repo_and_checked"]
    signature = base58btc_decode(signed["proof"]["proofValue"][1:])
    assert signature.hex() == derived["signature_hex"]


async def test_fep_signed_document_verifies_against_the_fep521a_actor() -> None:
    actors = Actors({ALICE: _actor()})
    result = await verify_document(_signed(), actors)
    assert result == VerifiedProof(ALICE_KEY, ALICE, "2023-02-24T23:36:38Z")
    assert actors.calls == [(ALICE, False)]


async def test_fep_flipped_document_byte_fails_after_one_refetch() -> None:
    text = json.dumps(_signed()).replace("Hello world", "Hello worle")
    actors = Actors({ALICE: _actor()})
    assert await _fails(json.loads(text), actors) is ProofFailure.SIGNATURE
    assert actors.calls == [(ALICE, False), (ALICE, True)]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("object", "location", "latitude"), 25.273963),
        (("object", "location", "longitude"), -71.184901),
        (("object", "attributedTo"), BOB),
        (("type",), "Update"),
    ],
)
def test_fep_any_changed_value_fails(path: tuple[str, ...], value: Any) -> None:
    signed = _signed()
    target = signed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert _reason(
        signed, ed25519_seed_from_multibase(_fep()["secret_key_multibase"]).public_key()
    ) is (ProofFailure.SIGNATURE)


def test_fep_added_or_removed_member_fails() -> None:
    public = multikey_decode(_fep()["public_key_multibase"])
    assert isinstance(public, Ed25519PublicKey)
    added = {**_signed(), "to": ["https://www.w3.org/ns/activitystreams#Public"]}
    assert _reason(added, public) is ProofFailure.SIGNATURE
    removed = {k: v for k, v in _signed().items() if k != "actor"}
    assert _reason(removed, public) is ProofFailure.SIGNATURE


@pytest.mark.parametrize("index", [0, 17, 63])
def test_fep_flipped_signature_byte_fails(index: int) -> None:
    signed = _signed()
    signed["proof"]["proofValue"] = _flip_signature_byte(signed["proof"]["proofValue"], index)
    public = multikey_decode(_fep()["public_key_multibase"])
    assert isinstance(public, Ed25519PublicKey)
    assert _reason(signed, public) is ProofFailure.SIGNATURE


def test_fep_flipped_proof_value_character_fails() -> None:
    signed = _signed()
    value = signed["proof"]["proofValue"]
    signed["proof"]["proofValue"] = value[:40] + ("A" if value[40] != "A" else "B") + value[41:]
    public = multikey_decode(_fep()["public_key_multibase"])
    assert isinstance(public, Ed25519PublicKey)
    assert _reason(signed, public) is ProofFailure.SIGNATURE


@pytest.mark.parametrize(
    ("member", "value"),
    [("created", "2023-02-24T23:36:39Z"), ("verificationMethod", ALICE + "#ed25519-kez")],
)
def test_fep_changed_proof_option_fails(member: str, value: str) -> None:
    signed = _signed()
    signed["proof"][member] = value
    public = multikey_decode(_fep()["public_key_multibase"])
    assert isinstance(public, Ed25519PublicKey)
    assert _reason(signed, public) is ProofFailure.SIGNATURE


async def test_fep_flipped_key_byte_fails() -> None:
    public = multikey_decode(_fep()["public_key_multibase"])
    assert isinstance(public, Ed25519PublicKey)
    raw = bytearray(public.public_bytes_raw())
    raw[5] ^= 0x01
    flipped = Ed25519PublicKey.from_public_bytes(bytes(raw))
    assert _reason(_signed(), flipped) is ProofFailure.SIGNATURE
    actors = Actors({ALICE: _alice_actor(flipped)})
    assert await _fails(_signed(), actors) is ProofFailure.SIGNATURE
    assert actors.calls == [(ALICE, False), (ALICE, True)]


# --- proof shapes ----------------------------------------------------------------------------


def test_proof_set_verifies_when_one_proof_is_by_the_key() -> None:
    own = _signed()["proof"]
    other = _sign_options(_fep()["unsigned_document"], OTHER_KEY, _options())
    public = _w3c_private().public_key()
    assert verify_proof_with_key(_with_proof([other, own]), public) == own
    assert verify_proof_with_key(_with_proof([own, other]), public) == own
    assert verify_proof_with_key(_with_proof([other]), OTHER_KEY.public_key()) == other


async def test_proof_set_verifies_through_verify_document() -> None:
    unrelated = _sign_options(
        _fep()["unsigned_document"], OTHER_KEY, _options(verificationMethod=BOB + "#ed25519-key")
    )
    document = _with_proof([unrelated, _signed()["proof"]])
    result = await verify_document(document, Actors({ALICE: _actor()}))
    assert result.verification_method == ALICE_KEY


def test_proof_set_reports_the_deepest_failure() -> None:
    bad_suite = {**_signed()["proof"], "cryptosuite": "eddsa-rdfc-2022"}
    bad_sig = {
        **_signed()["proof"],
        "proofValue": _flip_signature_byte(_signed()["proof"]["proofValue"], 3),
    }
    public = _w3c_private().public_key()
    assert _reason(_with_proof([bad_suite, bad_sig]), public) is ProofFailure.SIGNATURE
    assert _reason(_with_proof([bad_suite]), public) is ProofFailure.UNSUPPORTED


@pytest.mark.parametrize("proof", [None, []])
def test_missing_proof(proof: Any) -> None:
    document = _fep()["unsigned_document"] if proof is None else _with_proof(proof)
    assert _reason(document, _w3c_private().public_key()) is ProofFailure.MISSING


async def test_missing_proof_through_verify_document() -> None:
    actors = Actors({ALICE: _actor()})
    assert await _fails(_fep()["unsigned_document"], actors) is ProofFailure.MISSING
    assert actors.calls == []


@pytest.mark.parametrize(
    "proof",
    [
        "z42ffGu6AUKPCFcFPiabmUvnGLPJzC7e4DGWC52NUasSSH37UMa9c58tdgVszUcZfytxa4fQ5TYHaJENCxUDe9SdL",
        ["not an object"],
        {**_options(), "proofValue": None},
        {**_options(), "proofValue": "u" + "A" * 86},
        {**_options(), "proofValue": "z0OIl"},
        {**_options(), "proofValue": "z" + base58btc_encode(b"\x01" * 63)},
        {**_options(), "proofValue": 42},
        _options(verificationMethod=None) | {"proofValue": "z1"},
        _options(created=1677281798) | {"proofValue": "z1"},
    ],
)
def test_malformed_proofs(proof: Any) -> None:
    assert _reason(_with_proof(proof), _w3c_private().public_key()) is ProofFailure.MALFORMED


def test_uncanonicalisable_document_is_malformed() -> None:
    document = {**_signed(), "big": 2**60}
    assert _reason(document, _w3c_private().public_key()) is ProofFailure.MALFORMED


@pytest.mark.parametrize(
    "changes",
    [
        {"cryptosuite": "eddsa-rdfc-2022"},
        {"cryptosuite": "jcs-eddsa-2022"},
        {"cryptosuite": None},
        {"type": "Ed25519Signature2020"},
    ],
)
def test_wrong_cryptosuite_is_unsupported(changes: dict[str, Any]) -> None:
    proof = _sign_options(_fep()["unsigned_document"], _w3c_private(), _options(**changes))
    assert _reason(_with_proof(proof), _w3c_private().public_key()) is ProofFailure.UNSUPPORTED


@pytest.mark.parametrize("purpose", ["authentication", "capabilityInvocation", None])
def test_validly_signed_wrong_purpose_fails(purpose: str | None) -> None:
    proof = _sign_options(
        _fep()["unsigned_document"], _w3c_private(), _options(proofPurpose=purpose)
    )
    assert _reason(_with_proof(proof), _w3c_private().public_key()) is ProofFailure.PURPOSE


async def test_wrong_purpose_fails_before_any_fetch() -> None:
    proof = _sign_options(
        _fep()["unsigned_document"], _w3c_private(), _options(proofPurpose="authentication")
    )
    actors = Actors({ALICE: _actor()})
    assert await _fails(_with_proof(proof), actors) is ProofFailure.PURPOSE
    assert actors.calls == []


@pytest.mark.parametrize(
    "context",
    [
        ["https://w3id.org/security/data-integrity/v2", "https://www.w3.org/ns/activitystreams"],
        ["https://www.w3.org/ns/activitystreams", "https://example.org/other"],
        [
            "https://www.w3.org/ns/activitystreams",
            "https://w3id.org/security/data-integrity/v2",
            "https://w3id.org/security/multikey/v1",
        ],
        "https://w3id.org/security/data-integrity/v2",
    ],
)
def test_validly_signed_proof_context_not_a_prefix_fails(context: Any) -> None:
    proof = _sign_options(
        _fep()["unsigned_document"], _w3c_private(), _options(**{"@context": context})
    )
    assert _reason(_with_proof(proof), _w3c_private().public_key()) is ProofFailure.CONTEXT


def test_proof_context_on_a_document_without_context_fails() -> None:
    document = {k: v for k, v in _fep()["unsigned_document"].items() if k != "@context"}
    proof = _sign_options(document, _w3c_private(), _options())
    assert _reason({**document, "proof": proof}, _w3c_private().public_key()) is (
        ProofFailure.CONTEXT
    )


@pytest.mark.parametrize(
    "context", [["https://www.w3.org/ns/activitystreams"], "https://www.w3.org/ns/activitystreams"]
)
def test_proof_context_that_is_a_strict_prefix_verifies(context: Any) -> None:
    proof = _sign_options(
        _fep()["unsigned_document"], _w3c_private(), _options(**{"@context": context})
    )
    assert verify_proof_with_key(_with_proof(proof), _w3c_private().public_key()) == proof


def test_string_context_is_copied_and_verifies() -> None:
    document = {**_fep()["unsigned_document"], "@context": "https://www.w3.org/ns/activitystreams"}
    signed = create_proof(document, _w3c_private(), ALICE_KEY, created=CREATED)
    assert signed["proof"]["@context"] == "https://www.w3.org/ns/activitystreams"
    assert verify_proof_with_key(signed, _w3c_private().public_key()) == signed["proof"]


def test_ld_signature_is_stripped_before_verifying() -> None:
    signed = {**_signed(), "signature": {"type": "RsaSignature2017", "signatureValue": "xyz"}}
    public = _w3c_private().public_key()
    assert verify_proof_with_key(signed, public) == _signed()["proof"]


# --- verify_document: ownership and origins --------------------------------------------------


async def test_verification_method_on_another_origin_fails_without_fetching() -> None:
    evil = "https://evil.example/users/alice#ed25519-key"
    proof = _sign_options(
        _fep()["unsigned_document"], _w3c_private(), _options(verificationMethod=evil)
    )
    actors = Actors({ALICE: _actor(), "https://evil.example/users/alice": _actor()})
    assert await _fails(_with_proof(proof), actors) is ProofFailure.NOT_OWNER
    assert actors.calls == []


async def test_document_id_on_another_origin_fails() -> None:
    document = {**_fep()["unsigned_document"], "id": "https://other.example/activities/1"}
    signed = create_proof(document, _w3c_private(), ALICE_KEY, created=CREATED)
    actors = Actors({ALICE: _actor()})
    assert await _fails(signed, actors) is ProofFailure.NOT_OWNER
    assert actors.calls == []


async def test_transient_document_without_id_verifies() -> None:
    document = {k: v for k, v in _fep()["unsigned_document"].items() if k != "id"}
    signed = create_proof(document, _w3c_private(), ALICE_KEY, created=CREATED)
    assert (await verify_document(signed, Actors({ALICE: _actor()}))).controller == ALICE


@pytest.mark.parametrize("object_id", [42, "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33"])
async def test_document_id_without_origin_fails(object_id: Any) -> None:
    document = {**_fep()["unsigned_document"], "id": object_id}
    signed = create_proof(document, _w3c_private(), ALICE_KEY, created=CREATED)
    assert await _fails(signed, Actors({ALICE: _actor()})) is ProofFailure.NOT_OWNER


async def test_origin_comparison_is_normalised() -> None:
    document = {**_fep()["unsigned_document"], "id": "HTTPS://Server.Example:443/activities/1"}
    signed = create_proof(document, _w3c_private(), ALICE_KEY, created=CREATED)
    result = await verify_document(signed, Actors({ALICE: _actor()}))
    assert result.controller == ALICE


async def test_owner_other_than_the_controller_fails() -> None:
    bob_key = BOB + "#ed25519-key"
    proof = _sign_options(
        _fep()["unsigned_document"], _w3c_private(), _options(verificationMethod=bob_key)
    )
    bob = {
        **_actor(),
        "id": BOB,
        "assertionMethod": [{**_actor()["assertionMethod"][0], "id": bob_key, "controller": BOB}],
    }
    actors = Actors({ALICE: _actor(), BOB: bob})
    assert await _fails(_with_proof(proof), actors) is ProofFailure.NOT_OWNER
    assert actors.calls == []


async def test_explicit_owner_overrides_the_document() -> None:
    actors = Actors({ALICE: _actor()})
    assert await _fails(_signed(), actors, owner=BOB) is ProofFailure.NOT_OWNER
    result = await verify_document(_signed(), actors, owner=ALICE)
    assert result.controller == ALICE


async def test_key_entry_controlled_by_another_actor_fails() -> None:
    actor = _alice_actor(_w3c_private().public_key(), controller=BOB)
    actors = Actors({ALICE: actor})
    assert await _fails(_signed(), actors) is ProofFailure.NOT_OWNER


async def test_fetched_document_of_another_actor_fails() -> None:
    actors = Actors({ALICE: {**_actor(), "id": BOB}})
    assert await _fails(_signed(), actors) is ProofFailure.NOT_OWNER


async def test_document_without_owner_fails() -> None:
    document = {k: v for k, v in _fep()["unsigned_document"].items() if k != "actor"}
    signed = create_proof(document, _w3c_private(), ALICE_KEY, created=CREATED)
    actors = Actors({ALICE: _actor()})
    assert await _fails(signed, actors) is ProofFailure.NOT_OWNER
    assert actors.calls == []


@pytest.mark.parametrize(
    "assertion_method",
    [
        None,
        [],
        [ALICE_KEY],  # a bare reference, not an embedded Multikey
        [{**_actor()["assertionMethod"][0], "id": ALICE + "#other-key"}],
        [{**_actor()["assertionMethod"][0], "type": "JsonWebKey"}],
    ],
)
async def test_unlisted_key_is_unknown_after_one_refetch(assertion_method: Any) -> None:
    actor = {k: v for k, v in _actor().items() if k != "assertionMethod"}
    if assertion_method is not None:
        actor["assertionMethod"] = assertion_method
    actors = Actors({ALICE: actor})
    assert await _fails(_signed(), actors) is ProofFailure.KEY_UNKNOWN
    assert actors.calls == [(ALICE, False), (ALICE, True)]


async def test_key_rotation_verifies_after_exactly_one_refetch() -> None:
    old, new = OTHER_KEY, _w3c_private()
    actors = Actors(
        {ALICE: _alice_actor(old.public_key())}, {ALICE: _alice_actor(new.public_key())}
    )
    result = await verify_document(_signed(), actors)
    assert result.verification_method == ALICE_KEY
    assert actors.calls == [(ALICE, False), (ALICE, True)]


async def test_new_key_verifies_after_exactly_one_refetch() -> None:
    signed = create_proof(_fep()["unsigned_document"], OTHER_KEY, ALICE + "#key-1", created=CREATED)
    stale = _alice_actor(_w3c_private().public_key())
    fresh = _alice_actor(_w3c_private().public_key(), OTHER_KEY.public_key())
    actors = Actors({ALICE: stale}, {ALICE: fresh})
    result = await verify_document(signed, actors)
    assert result == VerifiedProof(ALICE + "#key-1", ALICE, "2023-02-24T23:36:38Z")
    assert actors.calls == [(ALICE, False), (ALICE, True)]


async def test_verified_object_owned_through_attributed_to() -> None:
    note = _fep()["unsigned_document"]["object"]
    signed = create_proof(note, _w3c_private(), ALICE_KEY, created=CREATED)
    result = await verify_document(signed, Actors({ALICE: _actor()}))
    assert result.controller == ALICE


async def test_verified_actor_owns_itself() -> None:
    actor = _actor()
    signed = create_proof(actor, _w3c_private(), ALICE_KEY, created=CREATED)
    result = await verify_document(signed, Actors({ALICE: actor}))
    assert result.controller == ALICE


async def test_fetcher_errors_propagate() -> None:
    with pytest.raises(LookupError):
        await verify_document(_signed(), Actors({}))


def test_with_the_actor_at_hand_one_attempt_verifies() -> None:
    result = verify_with_actor(_signed(), _actor(), owner=ALICE)
    assert result == VerifiedProof(ALICE_KEY, ALICE, "2023-02-24T23:36:38Z")


@pytest.mark.parametrize(
    ("actor", "reason"),
    [
        # A rotated key, or none listed: verify_document would refetch; this one only says so.
        (lambda: _alice_actor(OTHER_KEY.public_key()), ProofFailure.SIGNATURE),
        (lambda: {k: v for k, v in _actor().items() if k != "assertionMethod"},
         ProofFailure.KEY_UNKNOWN),
        # The document of another actor, or a key it says someone else controls.
        (lambda: {**_actor(), "id": "https://server.example/users/bob"}, ProofFailure.NOT_OWNER),
        (lambda: _alice_actor(_w3c_private().public_key(), controller="https://server.example/x"),
         ProofFailure.NOT_OWNER),
    ],
)  # fmt: skip
def test_with_the_actor_at_hand_a_failure_is_the_one_verify_document_meets_first(
    actor: Any, reason: ProofFailure
) -> None:
    with pytest.raises(ProofError) as info:
        verify_with_actor(_signed(), actor(), owner=ALICE)
    assert info.value.reason is reason


def test_with_the_actor_at_hand_a_tampered_document_fails() -> None:
    tampered = {**_signed(), "id": _signed()["id"] + "x"}
    with pytest.raises(ProofError) as info:
        verify_with_actor(tampered, _actor(), owner=ALICE)
    assert info.value.reason is ProofFailure.SIGNATURE


# --- create_proof ----------------------------------------------------------------------------


def test_create_proof_never_mutates_its_input() -> None:
    document = _fep()["unsigned_document"]
    before = copy.deepcopy(document)
    signed = create_proof(document, _w3c_private(), ALICE_KEY, created=CREATED)
    assert document == before
    assert "proof" not in document
    signed["object"]["content"] = "changed"
    signed["@context"].append("changed")
    assert document == before


async def test_verification_never_mutates_its_input() -> None:
    signed = {**_signed(), "signature": {"type": "RsaSignature2017"}}
    before = copy.deepcopy(signed)
    verify_proof_with_key(signed, _w3c_private().public_key())
    await verify_document(signed, Actors({ALICE: _actor()}))
    assert signed == before


def test_create_proof_accepts_any_mapping() -> None:
    document = MappingProxyType(_fep()["unsigned_document"])
    signed = create_proof(document, _w3c_private(), ALICE_KEY, created=CREATED)
    assert signed == _signed()


def test_create_proof_defaults_created_to_now_in_utc_seconds() -> None:
    signed = create_proof(_fep()["unsigned_document"], _w3c_private(), ALICE_KEY)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", signed["proof"]["created"])
    assert verify_proof_with_key(signed, _w3c_private().public_key()) == signed["proof"]


def test_create_proof_converts_created_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    created = datetime(2023, 2, 25, 0, 36, 38, 999_999, tzinfo=paris)
    signed = create_proof(_fep()["unsigned_document"], _w3c_private(), ALICE_KEY, created=created)
    assert signed == _signed()


def test_create_proof_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone"):
        create_proof(
            _fep()["unsigned_document"], _w3c_private(), ALICE_KEY, created=datetime(2023, 2, 24)
        )


def test_create_proof_refuses_a_document_with_an_ld_signature() -> None:
    document = {**_fep()["unsigned_document"], "signature": {"type": "RsaSignature2017"}}
    with pytest.raises(ValueError, match="LD signature"):
        create_proof(document, _w3c_private(), ALICE_KEY, created=CREATED)


def test_create_proof_replaces_an_existing_proof() -> None:
    stale = {**_fep()["unsigned_document"], "proof": {"type": "DataIntegrityProof"}}
    assert create_proof(stale, _w3c_private(), ALICE_KEY, created=CREATED) == _signed()


def test_create_proof_without_context_has_no_proof_context() -> None:
    document = {k: v for k, v in _fep()["unsigned_document"].items() if k != "@context"}
    signed = create_proof(document, _w3c_private(), ALICE_KEY, created=CREATED)
    assert "@context" not in signed["proof"]
    assert signed["proof"]["cryptosuite"] == CRYPTOSUITE
    assert verify_proof_with_key(signed, _w3c_private().public_key()) == signed["proof"]


def test_canonicalize_follows_rfc8785() -> None:
    value = {"b": [1.0, 1e-7, 1e21, -0.0, 4.5], "a": "\u20ac\n", "\u00e9": None, "A": True}
    assert canonicalize(value) == (
        '{"A":true,"a":"\u20ac\\n","b":[1,1e-7,1e+21,0,4.5],"\u00e9":null}'.encode()
    )
    assert canonicalize(MappingProxyType({"z": (1, 2)})) == b'{"z":[1,2]}'


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6) | st.sampled_from(["a", "A", "é", "\uffff", "𝄞", "\x7f"]),
                      inner, max_size=5),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_JSON)
def test_canonicalize_equals_the_reference_implementation(value: Any) -> None:
    # The C encoder's fast path and rfc8785 agree byte for byte, or refuse alike.
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonicalize(value)
        return
    assert canonicalize(value) == expected


def test_canonicalize_escapes_and_refuses_as_rfc8785() -> None:
    controls = "".join(chr(n) for n in range(0x20)) + '"\\\x7f\u2028/'
    value = {"k": controls, "safe": [2**53 - 1, -(2**53) + 1, True, None]}
    assert canonicalize(value) == rfc8785.dumps(value)
    assert b"\\u001f" in canonicalize(value) and b"\\b" in canonicalize(value)
    for bad in ({"x": "\ud800"}, {"n": 2**53}, {"n": -(2**53)}, {1: "not a string key"}):
        with pytest.raises(rfc8785.CanonicalizationError):
            canonicalize(bad)


def test_plain_json_copies_containers_and_keeps_what_json_cannot_say() -> None:
    inner = {"b": [1, 2.5, None, True], "a": "\u00e9"}
    value = {"x": MappingProxyType({"y": inner}), "t": (1, 2)}
    copied = plain_json(value)
    assert copied == {"x": {"y": inner}, "t": [1, 2]}
    assert type(copied["x"]) is dict and type(copied["t"]) is list
    assert copied["x"]["y"] is not inner and copied["x"]["y"]["b"] is not inner["b"]
    # What an orjson round trip would change or refuse is walked instead, values kept.
    when = datetime(2026, 11, 28, tzinfo=UTC)
    for odd in (float("nan"), float("inf"), when, 2**70, "\ud800"):
        assert plain_json({"k": [odd]})["k"][0] is odd
    assert plain_json({"k": {1: "a"}}) == {"k": {1: "a"}}


def test_canonicalize_writes_every_code_point_as_rfc8785() -> None:
    # The orjson fast path escapes (or not) each code point exactly as RFC 8785 does.
    text = "".join(chr(n) for n in range(0x110000) if not 0xD800 <= n <= 0xDFFF)
    value = {"every": text, "in": [text[:300], {"k": text[-300:]}]}
    assert canonicalize(value) == rfc8785.dumps(value)


def test_canonicalize_nesting_past_orjsons_limit_still_canonical() -> None:
    deep: list[Any] = ["leaf"]
    for _ in range(300):  # orjson stops at 255 levels: the json encoder writes it
        deep = [deep, {"b": 1, "a": "x"}]
    assert canonicalize({"deep": deep}) == rfc8785.dumps({"deep": deep})


# --- assertion_keys and proof_owner ----------------------------------------------------------


def test_assertion_keys_of_the_fep_actor() -> None:
    keys = assertion_keys(_actor())
    assert list(keys) == [ALICE_KEY]
    assert multikey_encode(keys[ALICE_KEY]) == _fep()["public_key_multibase"]


def test_assertion_keys_accepts_a_single_embedded_object() -> None:
    actor = {**_actor(), "assertionMethod": _actor()["assertionMethod"][0]}
    assert list(assertion_keys(actor)) == [ALICE_KEY]


def test_assertion_keys_ignores_non_conforming_entries() -> None:
    good = _actor()["assertionMethod"][0]
    rsa = (VECTORS / "fep" / "fep-521a.feature").read_text()
    rsa_multibase = re.findall(r'"publicKeyMultibase": "(z4MX\w+)"', rsa)[0]
    actor = {
        **_actor(),
        "assertionMethod": [
            ALICE + "#by-reference",
            {**good, "id": ALICE + "#rsa", "publicKeyMultibase": rsa_multibase},
            {**good, "id": ALICE + "#bob", "controller": BOB},
            {**good, "id": ALICE + "#jwk", "type": "JsonWebKey"},
            {**good, "id": ALICE + "#bad", "publicKeyMultibase": "z6Mk0"},
            {**good, "id": ALICE + "#none", "publicKeyMultibase": None},
            {k: v for k, v in good.items() if k != "id"},
            good,
        ],
    }
    assert list(assertion_keys(actor)) == [ALICE_KEY]


@pytest.mark.parametrize(
    ("document", "owner"),
    [
        ({"type": "Create", "actor": ALICE, "object": {"attributedTo": BOB}}, ALICE),
        ({"type": "Like", "actor": {"id": ALICE, "type": "Person"}}, ALICE),
        ({"type": "Note", "attributedTo": ALICE}, ALICE),
        ({"type": "Note", "attributedTo": [{"id": ALICE, "type": "Person"}]}, ALICE),
        ({"type": "Note", "attributedTo": [ALICE, BOB]}, None),
        ({"type": "Person", "id": ALICE}, ALICE),
        ({"type": ["Group"], "id": ALICE, "attributedTo": ALICE + "/moderators"}, ALICE),
        ({"type": "Note", "id": "https://server.example/notes/1"}, None),
        ({"type": "Create", "actor": 42}, None),
    ],
)
def test_proof_owner(document: dict[str, Any], owner: str | None) -> None:
    assert proof_owner(document) == owner


# --- the caller's memo of canonical @contexts --------------------------------------------------

_CONTEXTS = st.lists(
    st.text(max_size=8) | st.dictionaries(st.sampled_from(["a", "b", "@id", "é"]), st.text()),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(_CONTEXTS, _JSON, st.sampled_from(["type", "Z", "0", "!x", "@id", "é"]))
def test_canonical_object_equals_canonicalize(context: Any, value: Any, key: str) -> None:
    memo: ContextMemo = EqualMemo()
    document = {"@context": context, key: value, "id": "https://server.example/x"}
    try:
        expected = canonicalize(document)
    except rfc8785.CanonicalizationError:
        return
    assert canonical_object(document, memo) == expected
    assert canonical_object(copy.deepcopy(document), memo) == expected  # from the memo
    assert canonical_object({"@context": context}, memo) == canonicalize({"@context": context})


async def test_a_remembered_context_never_stands_for_a_different_one() -> None:
    # Python's == takes true for 1: a document whose context says 1 where the signed one
    # said true must not be hashed with the remembered canonical form of the signed one.
    unsigned = {k: v for k, v in _fep()["unsigned_document"].items() if k != "@context"}
    signed_context = ["https://www.w3.org/ns/activitystreams", {"@protected": True, "x": "y"}]
    signed = create_proof({"@context": signed_context, **unsigned}, _w3c_private(), ALICE_KEY)
    memo: ContextMemo = EqualMemo()
    actors = Actors({ALICE: _actor()})
    await verify_document(signed, actors, memo=memo)
    await verify_document(signed, actors, memo=memo)
    forged = copy.deepcopy(signed)
    forged["@context"][1]["@protected"] = 1
    forged["proof"]["@context"][1]["@protected"] = 1
    assert forged == signed  # as far as Python's == can tell
    with pytest.raises(ProofError) as caught:
        await verify_document(forged, actors, memo=memo)
    assert caught.value.reason is ProofFailure.SIGNATURE
    # A context of strings only is remembered, and gives the same answer.
    plain = create_proof({"@context": ["https://www.w3.org/ns/activitystreams"], **unsigned},
                         _w3c_private(), ALICE_KEY)  # fmt: skip
    for _ in range(2):
        assert (await verify_document(plain, actors, memo=memo)).controller == ALICE
    assert len(memo) == 1
