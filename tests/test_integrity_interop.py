"""Cross-implementation check of FEP-8b32 ``eddsa-jcs-2022`` against ``apsig`` 0.6.

apsig (PyPI, listed by FEP-8b32 as an implementation) is written independently: it
canonicalises with the ``jcs`` package instead of ``rfc8785`` and encodes with
``multiformats``. Its signer copies the document ``@context`` into the proof exactly as
we do, so on everything either side produces the two implementations agree byte for byte.

Where apsig 0.6 differs (read in ``apsig/proof/verify.py``), and how these tests cope:

* ``ProofVerifier.verify`` mutates its argument: it shallow-copies the document and then
  pops ``proofValue`` from the shared ``proof`` dict. Every document handed to it here is a
  deep copy.
* It verifies a single ``proof`` object only (a proof set raises TypeError), does not
  check ``proofPurpose``, and does not strip an LD ``signature`` first. We never produce
  proof sets, other purposes, or a proof next to an LD signature (``create_proof`` refuses
  one), so the compatible subset is one ``assertionMethod`` proof per document.
* Its ``@context`` check only asks that some document context string start with some proof
  context string, far weaker than the ordered-prefix rule of vc-di-eddsa §3.3.2 that we
  enforce. apsig's signer always copies the whole context, so what it makes passes ours.
* It leaves proof options to the caller: the test passes the same ``type``,
  ``cryptosuite``, ``verificationMethod``, ``proofPurpose`` and ``created`` that
  ``create_proof`` writes.
* ``KeyUtil.encode_multibase`` cannot encode RSA keys (the Ed25519 branch overwrites the
  RSA one), so Multikey interop is checked for Ed25519 both ways and for RSA decoding only.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from apsig import KeyUtil, ProofSigner, ProofVerifier
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from activitypub.integrity import (
    CRYPTOSUITE,
    ActorFetcher,
    ProofError,
    ProofFailure,
    VerifiedProof,
    canonicalize,
    create_proof,
    verify_document,
    verify_proof_with_key,
)
from activitypub.keys import (
    base58btc_decode,
    base58btc_encode,
    ed25519_seed_from_multibase,
    generate_ed25519,
    generate_rsa,
    multikey_decode,
    multikey_encode,
)

VECTOR = Path(__file__).resolve().parent / "vectors" / "fep" / "fep-8b32-vector.json"
ALICE = "https://server.example/users/alice"
ALICE_KEY = ALICE + "#ed25519-key"
CREATED = datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC)

# A document that stresses JCS: UTF-16 key order, escapes, ES6 numbers, empty containers.
RICH: dict[str, Any] = {
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/data-integrity/v2",
        {"barri": "https://barri.example/ns#", "quorum": "barri:quorum"},
    ],
    "id": "https://server.example/votes/7",
    "type": "Note",
    "attributedTo": ALICE,
    "name": "Banc al carrer d'Aragó \u20ac \U0001f600",
    "content": '<p>l\u00ednia\r\n\u2028\u0001\t"quoted" \\ /</p>',
    "quorum": [0.1, 1e-7, 1e21, 333333333.3333333, -0.0, 9007199254740991, 0.30000000000000004],
    "\ufb33": "sorted after the emoji key in UTF-16",
    "\U0001f600": "sorted before U+FB33 in UTF-16",
    "tag": [],
    "replies": {"type": "Collection", "totalItems": 0, "items": [None, True, False]},
}


def _vector() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTOR.read_text(encoding="utf-8"))
    return data


def _key() -> Ed25519PrivateKey:
    return ed25519_seed_from_multibase(_vector()["secret_key_multibase"])


def _actor(private: Ed25519PrivateKey) -> dict[str, Any]:
    actor: dict[str, Any] = _vector()["actor"]
    actor["assertionMethod"][0]["publicKeyMultibase"] = multikey_encode(private.public_key())
    return actor


def _apsig_options(verification_method: str = ALICE_KEY) -> dict[str, str]:
    """The proof options create_proof writes, minus @context (apsig copies that itself)."""
    return {
        "type": "DataIntegrityProof",
        "cryptosuite": CRYPTOSUITE,
        "verificationMethod": verification_method,
        "proofPurpose": "assertionMethod",
        "created": "2023-02-24T23:36:38Z",
    }


def _apsig_accepts(document: dict[str, Any], private: Ed25519PrivateKey) -> Any:
    """apsig's verdict: the verificationMethod on success, None on failure."""
    return ProofVerifier(private.public_key()).verify(copy.deepcopy(document))


def _fetcher(actor: dict[str, Any]) -> ActorFetcher:
    """An in-memory ActorFetcher serving one actor document."""

    async def fetch(url: str, refresh: bool) -> Mapping[str, Any]:
        assert url == actor["id"]
        return actor

    return fetch


# --- apsig verifies what we sign -------------------------------------------------------------


def test_apsig_verifies_our_fep_vector_proof() -> None:
    fep = _vector()
    ours = create_proof(fep["unsigned_document"], _key(), ALICE_KEY, created=CREATED)
    assert ProofVerifier(fep["public_key_multibase"]).verify(copy.deepcopy(ours)) == ALICE_KEY


@pytest.mark.parametrize("with_context", [True, False])
def test_apsig_verifies_our_proof_on_a_rich_document(with_context: bool) -> None:
    private = generate_ed25519()
    document = RICH if with_context else {k: v for k, v in RICH.items() if k != "@context"}
    ours = create_proof(document, private, ALICE_KEY)
    assert ("@context" in ours["proof"]) is with_context
    assert _apsig_accepts(ours, private) == ALICE_KEY


def test_apsig_rejects_our_proof_after_a_flipped_byte() -> None:
    private = generate_ed25519()
    ours = create_proof(RICH, private, ALICE_KEY)
    tampered = copy.deepcopy(ours)
    tampered["quorum"][0] = 0.2
    assert _apsig_accepts(tampered, private) is None
    signature = bytearray(base58btc_decode(ours["proof"]["proofValue"][1:]))
    signature[10] ^= 0x01
    forged = {
        **ours,
        "proof": {**ours["proof"], "proofValue": "z" + base58btc_encode(bytes(signature))},
    }
    assert _apsig_accepts(forged, private) is None
    assert _apsig_accepts(ours, private) == ALICE_KEY


# --- we verify what apsig signs --------------------------------------------------------------


def test_apsig_reproduces_the_fep_vector_and_our_output() -> None:
    fep = _vector()
    theirs = ProofSigner(fep["secret_key_multibase"]).sign(
        fep["unsigned_document"], _apsig_options()
    )
    ours = create_proof(fep["unsigned_document"], _key(), ALICE_KEY, created=CREATED)
    assert theirs == fep["signed_document"]
    assert canonicalize(theirs) == canonicalize(ours)


async def test_we_verify_apsig_proof_through_verify_document() -> None:
    private = generate_ed25519()
    theirs = ProofSigner(private).sign(copy.deepcopy(RICH), _apsig_options())
    assert verify_proof_with_key(theirs, private.public_key()) == theirs["proof"]
    result = await verify_document(theirs, _fetcher(_actor(private)))
    assert result == VerifiedProof(ALICE_KEY, ALICE, "2023-02-24T23:36:38Z")


def test_apsig_and_we_sign_the_rich_document_identically() -> None:
    private = generate_ed25519()
    theirs = ProofSigner(private).sign(copy.deepcopy(RICH), _apsig_options())
    ours = create_proof(RICH, private, ALICE_KEY, created=CREATED)
    assert canonicalize(theirs) == canonicalize(ours)


def test_we_reject_apsig_proof_after_a_flipped_byte() -> None:
    private = generate_ed25519()
    theirs = ProofSigner(private).sign(copy.deepcopy(RICH), _apsig_options())
    theirs["name"] = theirs["name"].replace("Aragó", "Aragò")
    with pytest.raises(ProofError) as info:
        verify_proof_with_key(theirs, private.public_key())
    assert info.value.reason is ProofFailure.SIGNATURE


# --- Multikey and base58btc agree ------------------------------------------------------------


def test_ed25519_multikey_agrees_both_ways() -> None:
    private = generate_ed25519()
    theirs = KeyUtil(private_key=private).encode_multibase()
    assert theirs == multikey_encode(private.public_key())
    decoded = KeyUtil(public_key=private.public_key()).decode_multibase(theirs)
    assert decoded.public_bytes_raw() == private.public_key().public_bytes_raw()
    ours = multikey_decode(theirs)
    assert isinstance(ours, Ed25519PublicKey)
    assert ours.public_bytes_raw() == private.public_key().public_bytes_raw()


def test_apsig_decodes_our_rsa_multikey() -> None:
    public = generate_rsa().public_key()
    decoded = KeyUtil(public_key=public).decode_multibase(multikey_encode(public))
    assert isinstance(decoded, RSAPublicKey)
    assert decoded.public_numbers() == public.public_numbers()


def test_apsig_accepts_our_fep_vector_key_encoding() -> None:
    fep = _vector()
    assert ProofSigner(fep["secret_key_multibase"]).public_key.public_bytes_raw() == (
        _key().public_key().public_bytes_raw()
    )
