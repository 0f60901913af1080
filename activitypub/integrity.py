"""FEP-8b32 object integrity proofs with the W3C ``eddsa-jcs-2022`` cryptosuite.

Everything here works on the JSON tree (RFC 8785 JCS), never on an RDF graph, so what is
verified is exactly what the caller reads (see reference/activitypub.md §security, item 4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from activitypub.jcs import ContextMemo, canonical_object, canonicalize, plain_json
from activitypub.keys import KeyFormatError, base58btc_decode, base58btc_encode, multikey_decode
from activitypub.origin import same_origin, strip_fragment
from activitypub.verifier import Verifier, verify_now

CRYPTOSUITE = "eddsa-jcs-2022"
PROOF_TYPE = "DataIntegrityProof"
PROOF_PURPOSE = "assertionMethod"
ACTOR_TYPES = frozenset({"Application", "Group", "Organization", "Person", "Service"})

ActorFetcher = Callable[[str, bool], Awaitable[Mapping[str, Any]]]
"""(actor URL without fragment, refresh) -> actor document; refresh=True bypasses caches."""


class ProofFailure(StrEnum):
    """Why a proof was refused; callers map these to HTTP statuses in one place."""

    MISSING = "proof_missing"
    MALFORMED = "proof_malformed"
    UNSUPPORTED = "unsupported_cryptosuite"
    PURPOSE = "wrong_proof_purpose"
    CONTEXT = "proof_context_mismatch"
    SIGNATURE = "proof_signature_invalid"
    KEY_UNKNOWN = "verification_method_unknown"
    NOT_OWNER = "verification_method_not_owned"


# How far a proof got through verification; with a proof set, the deepest failure is reported.
_DEPTH = {
    ProofFailure.MALFORMED: 0,
    ProofFailure.UNSUPPORTED: 1,
    ProofFailure.PURPOSE: 2,
    ProofFailure.CONTEXT: 3,
    ProofFailure.SIGNATURE: 4,
}


class ProofError(Exception):
    """A proof could not be verified; ``reason`` says why, ``detail`` says where."""

    def __init__(self, reason: ProofFailure, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VerifiedProof:
    """A proof that verified, with the key and the actor that made it."""

    verification_method: str
    controller: str
    created: str | None


def _hash_data(
    proof_options: Mapping[str, Any], unsecured: Mapping[str, Any], memo: ContextMemo | None = None
) -> bytes:
    """vc-di-eddsa §3.3.4 hashing: SHA-256(JCS(proof options)) ‖ SHA-256(JCS(document))."""
    return (
        hashlib.sha256(canonical_object(proof_options, memo)).digest()
        + hashlib.sha256(canonical_object(unsecured, memo)).digest()
    )


def _unsecured(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document without ``proof`` nor LD ``signature`` (FEP-8b32 §Backward compatibility)."""
    return {key: value for key, value in document.items() if key not in ("proof", "signature")}


def create_proof(
    document: Mapping[str, Any],
    private_key: Ed25519PrivateKey,
    verification_method: str,
    *,
    created: datetime | None = None,
) -> dict[str, Any]:
    """Return a copy of ``document`` with an eddsa-jcs-2022 proof (vc-di-eddsa §3.3.1, FEP-8b32).

    An existing ``proof`` is replaced. A document that already carries an LD ``signature``
    is refused: FEP-8b32 requires the proof to be made before the LD signature.
    """
    if "signature" in document:
        raise ValueError("create the proof before the LD signature (FEP-8b32)")
    when = datetime.now(UTC) if created is None else created
    if when.tzinfo is None:
        raise ValueError("created must be timezone-aware")
    options: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "verificationMethod": verification_method,
        "proofPurpose": PROOF_PURPOSE,
        "created": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if "@context" in document:
        # An exact copy: Mastodon compares the proof @context with the document's by equality.
        options["@context"] = plain_json(document["@context"])
    unsecured = _unsecured(document)
    signature = private_key.sign(_hash_data(options, unsecured))
    return {
        **plain_json(unsecured),
        "proof": {**options, "proofValue": "z" + base58btc_encode(signature)},
    }


def _proofs(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The proof or proof set of ``document`` (Data Integrity §2.1), each a JSON object."""
    proof = document.get("proof")
    if proof is None or proof == []:
        raise ProofError(ProofFailure.MISSING, "the document has no proof")
    proofs = proof if isinstance(proof, list) else [proof]
    if not all(isinstance(item, Mapping) for item in proofs):
        raise ProofError(ProofFailure.MALFORMED, "a proof is not a JSON object")
    return proofs


def _as_list(value: Any) -> list[Any]:
    """A JSON-LD value as a list: absent is empty, a single value is a list of one."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _check_options(proof: Mapping[str, Any], document: Mapping[str, Any]) -> None:
    """The checks of vc-di-eddsa §3.3.2 that need no key; raises ProofError."""
    if proof.get("type") != PROOF_TYPE or proof.get("cryptosuite") != CRYPTOSUITE:
        raise ProofError(
            ProofFailure.UNSUPPORTED,
            f"{proof.get('type')!r}/{proof.get('cryptosuite')!r} is not {PROOF_TYPE}/{CRYPTOSUITE}",
        )
    if proof.get("proofPurpose") != PROOF_PURPOSE:
        raise ProofError(ProofFailure.PURPOSE, f"proofPurpose {proof.get('proofPurpose')!r}")
    if "@context" in proof:
        # The document's @context must start with the proof's, in order (vc-di-eddsa §3.3.2).
        wanted, actual = _as_list(proof["@context"]), _as_list(document.get("@context"))
        if actual[: len(wanted)] != wanted:
            raise ProofError(ProofFailure.CONTEXT, "document @context does not start with proof's")
    if not isinstance(proof.get("verificationMethod"), str):
        raise ProofError(ProofFailure.MALFORMED, "verificationMethod is not a string")
    if not isinstance(proof.get("created", ""), str):
        raise ProofError(ProofFailure.MALFORMED, "created is not a string")


def _signature_bytes(proof: Mapping[str, Any]) -> bytes:
    """Decode ``proofValue``: multibase base58btc of a 64-byte Ed25519 signature."""
    value = proof.get("proofValue")
    if not isinstance(value, str) or not value.startswith("z"):
        raise ProofError(ProofFailure.MALFORMED, "proofValue is not base58btc multibase")
    try:
        signature = base58btc_decode(value[1:])
    except KeyFormatError as exc:
        raise ProofError(ProofFailure.MALFORMED, str(exc)) from exc
    if len(signature) != 64:
        raise ProofError(ProofFailure.MALFORMED, f"signature has {len(signature)} bytes, not 64")
    return signature


def _verify_one(
    proof: Mapping[str, Any],
    document: Mapping[str, Any],
    public_key: Ed25519PublicKey,
    memo: ContextMemo | None = None,
) -> None:
    """Verify one proof over ``document`` with ``public_key`` (vc-di-eddsa §3.3.2)."""
    _check_options(proof, document)
    _verify_checked(proof, document, public_key, memo)


def _signed(
    proof: Mapping[str, Any], document: Mapping[str, Any], memo: ContextMemo | None
) -> tuple[bytes, bytes]:
    """The bytes a proof signs and its signature (vc-di-eddsa §3.3.2 steps 1-5)."""
    signature = _signature_bytes(proof)
    options = {key: value for key, value in proof.items() if key != "proofValue"}
    try:
        return _hash_data(options, _unsecured(document), memo), signature
    except rfc8785.CanonicalizationError as exc:
        raise ProofError(ProofFailure.MALFORMED, f"not canonicalisable JSON: {exc}") from exc


def _verify_checked(
    proof: Mapping[str, Any],
    document: Mapping[str, Any],
    public_key: Ed25519PublicKey,
    memo: ContextMemo | None,
) -> None:
    """:func:`_verify_one` of a proof whose options passed :func:`_check_options` already."""
    hash_data, signature = _signed(proof, document, memo)
    # libsodium (PyNaCl) verifies x1.6 faster than OpenSSL here, and no more leniently.
    if not verify_now(public_key.public_bytes_raw(), hash_data, signature):
        raise ProofError(ProofFailure.SIGNATURE, "signature does not verify")


def verify_proof_with_key(
    document: Mapping[str, Any], public_key: Ed25519PublicKey
) -> dict[str, Any]:
    """The proof of ``document`` that verifies with ``public_key`` (FEP-8b32 §Proof verification).

    With a proof set, one verifying proof suffices; otherwise the failure of the proof that
    got furthest is raised as ProofError.
    """
    failures: list[ProofError] = []
    for proof in _proofs(document):
        try:
            _verify_one(proof, document, public_key)
        except ProofError as exc:
            failures.append(exc)
            continue
        return dict(proof)
    raise max(failures, key=lambda exc: _DEPTH[exc.reason])


def _assertion_entries(actor: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The embedded objects of the actor's ``assertionMethod`` (FEP-521a)."""
    for entry in _as_list(actor.get("assertionMethod")):
        # Bare references cannot be resolved without a fetch; FEP-521a embeds the Multikey.
        if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
            yield entry


def assertion_keys(actor: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """Ed25519 Multikeys of ``assertionMethod`` controlled by the actor (FEP-521a), by key id."""
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in _assertion_entries(actor):
        multibase = entry.get("publicKeyMultibase")
        if entry.get("type") != "Multikey" or entry.get("controller") != actor.get("id"):
            continue
        if not isinstance(multibase, str):
            continue
        try:
            key = multikey_decode(multibase)
        except KeyFormatError:
            continue  # FEP-521a: ignore entries that do not conform
        if isinstance(key, Ed25519PublicKey):
            keys.setdefault(entry["id"], key)
    return keys


def _id_of(value: Any) -> str | None:
    """The id of a reference: the string itself, or an embedded object's ``id``."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


def proof_owner(document: Mapping[str, Any]) -> str | None:
    """The actor that must own a proof on ``document`` (FEP-fe34 §Ownership)."""
    # An actor owns itself; checked first because a Group's attributedTo names its
    # moderators collection (FEP-1b12), not an owner.
    if any(kind in ACTOR_TYPES for kind in _as_list(document.get("type")) if isinstance(kind, str)):
        return _id_of(document.get("id"))
    if "actor" in document:
        return _id_of(document["actor"])
    if "attributedTo" in document:
        return _id_of(document["attributedTo"])
    return None


def _pick_proof(document: Mapping[str, Any], owner: str) -> Mapping[str, Any]:
    """The proof to check: prefer one by a key of the owner, then one in our cryptosuite."""

    def rank(proof: Mapping[str, Any]) -> int:
        method = proof.get("verificationMethod")
        owned = isinstance(method, str) and strip_fragment(method) == owner
        return 2 * owned + (proof.get("cryptosuite") == CRYPTOSUITE)

    proofs = _proofs(document)
    if len(proofs) == 1:
        return proofs[0]  # the usual case: nothing to rank
    return max(proofs, key=rank)  # max keeps the first of equal ranks


def _check_ownership(method: str, document: Mapping[str, Any], owner: str) -> None:
    """FEP-fe34: the key is the owner's and shares its origin with the owner and the document."""
    # The controller is the key URL without fragment; once it equals the owner, the key
    # necessarily shares the owner's origin.
    if strip_fragment(method) != owner:
        raise ProofError(ProofFailure.NOT_OWNER, f"{method} is not controlled by {owner}")
    object_id = document.get("id")
    # A transient object without id has no origin of its own to compare.
    if object_id is not None and not (
        isinstance(object_id, str) and same_origin(method, object_id)
    ):
        raise ProofError(ProofFailure.NOT_OWNER, f"{method} is not on the origin of {object_id!r}")


def _owner_key(actor: Mapping[str, Any], method: str, owner: str) -> Ed25519PublicKey | None:
    """The owner's assertion key ``method`` in ``actor``, None if it is not listed (FEP-521a)."""
    if actor.get("id") != owner:
        raise ProofError(
            ProofFailure.NOT_OWNER, f"fetched actor is {actor.get('id')!r}, not {owner}"
        )
    key = assertion_keys(actor).get(method)
    if key is None:
        for entry in _assertion_entries(actor):
            if entry["id"] == method and entry.get("controller") != owner:
                raise ProofError(
                    ProofFailure.NOT_OWNER, f"{method} is controlled by {entry.get('controller')!r}"
                )
    return key


def _prepared(document: Mapping[str, Any], owner: str) -> tuple[Mapping[str, Any], str]:
    """The proof to check and its key id, after the checks that need no key (FEP-fe34)."""
    proof = _pick_proof(document, owner)
    _check_options(proof, document)
    method: str = proof["verificationMethod"]
    _check_ownership(method, document, owner)
    return proof, method


def _listed_key(actor: Mapping[str, Any], method: str, owner: str) -> Ed25519PublicKey:
    """The owner's key ``method`` as its actor lists it; KEY_UNKNOWN when it does not."""
    key = _owner_key(actor, method, owner)
    if key is None:
        raise ProofError(ProofFailure.KEY_UNKNOWN, f"{owner} lists no Ed25519 key {method}")
    return key


def _verified(proof: Mapping[str, Any], owner: str) -> VerifiedProof:
    created = proof.get("created")
    return VerifiedProof(
        proof["verificationMethod"], owner, created if isinstance(created, str) else None
    )


def _attempt(
    document: Mapping[str, Any],
    proof: Mapping[str, Any],
    actor: Mapping[str, Any],
    owner: str,
    memo: ContextMemo | None,
) -> VerifiedProof:
    """Verify a :func:`_prepared` proof with the key ``actor`` lists (vc-di-eddsa §3.3.2)."""
    key = _listed_key(actor, proof["verificationMethod"], owner)
    _verify_checked(proof, document, key, memo)  # its options were checked already
    return _verified(proof, owner)


async def _attempt_on(
    verifier: Verifier,
    document: Mapping[str, Any],
    proof: Mapping[str, Any],
    actor: Mapping[str, Any],
    owner: str,
    memo: ContextMemo | None,
) -> VerifiedProof:
    """:func:`_attempt` with the signature itself checked by ``verifier`` (another thread)."""
    key = _listed_key(actor, proof["verificationMethod"], owner)
    hash_data, signature = _signed(proof, document, memo)
    if not await verifier(key.public_bytes_raw(), hash_data, signature):
        raise ProofError(ProofFailure.SIGNATURE, "signature does not verify")
    return _verified(proof, owner)


def verify_with_actor(
    document: Mapping[str, Any],
    actor: Mapping[str, Any],
    *,
    owner: str,
    memo: ContextMemo | None = None,
) -> VerifiedProof:
    """:func:`verify_document` with the owner's actor document at hand: one attempt, no
    refetch (FEP-8b32 §Proof verification, FEP-fe34); raises ProofError."""
    proof, _ = _prepared(document, owner)
    return _attempt(document, proof, actor, owner, memo)


async def verify_document(
    document: Mapping[str, Any],
    fetch_actor: ActorFetcher,
    *,
    owner: str | None = None,
    memo: ContextMemo | None = None,
    verifier: Verifier | None = None,
) -> VerifiedProof:
    """Verify the owner's FEP-8b32 proof on ``document``, refetching the actor once on failure.

    Implements FEP-8b32 §Proof verification with the FEP-fe34 origin and ownership rules;
    the refetch covers key rotation. Errors of ``fetch_actor`` propagate unchanged. ``memo``
    (the caller's) keeps the canonical form of the @context values it met. ``verifier``
    checks the signature itself (:class:`~activitypub.verifier.ThreadedVerifier`: off the
    event loop's thread); without one it is checked here.
    """
    owner = owner if owner is not None else proof_owner(document)
    if owner is None:
        raise ProofError(ProofFailure.NOT_OWNER, "the document names no owner")
    proof, _ = _prepared(document, owner)
    failure: ProofError | None = None
    for refresh in (False, True):
        actor = await fetch_actor(owner, refresh)
        try:
            if verifier is not None:
                return await _attempt_on(verifier, document, proof, actor, owner, memo)
            return _attempt(document, proof, actor, owner, memo)
        except ProofError as exc:
            if exc.reason not in (ProofFailure.KEY_UNKNOWN, ProofFailure.SIGNATURE):
                raise
            failure = exc  # an unknown key or a bad signature: perhaps a rotated key
    assert failure is not None
    raise failure


__all__ = [
    "ACTOR_TYPES", "CRYPTOSUITE", "PROOF_PURPOSE", "PROOF_TYPE", "ActorFetcher", "ContextMemo",
    "ProofError", "ProofFailure", "VerifiedProof", "assertion_keys", "canonicalize",
    "create_proof", "proof_owner", "verify_document", "verify_proof_with_key",
    "verify_with_actor",
]  # fmt: skip
