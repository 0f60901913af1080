"""Regenerate ``schemas/examples`` from the hand-written templates and the fixed TEST keys.

``python -m schemas.make_examples`` writes one ``<shape>.json`` per shape; ``--check`` writes
nothing and exits 1 if any file would change. Every run is byte-identical: the keys are fixed,
Ed25519 signatures are deterministic and each proof's ``created`` is the document's own
``published`` (or ``deleted``) time.

What the script adds to a template (schemas/examples/templates/<shape>.json):
- ``@context``: [AS2, data-integrity/v2, the inline barri object] for objects and activities,
  [AS2, data-integrity/v2] alone for the shapes that use no Barri term (``PLAIN_SHAPES``:
  supports, withdrawals, comment votes, the Announce around a signed activity),
  ``activitypub.actors.ACTOR_CONTEXT`` + the inline barri object for actors (DESIGN.md §4);
- actors: the whole document is made by ``actor_document()`` from the template's fields and
  the actor's fixed keys, so the examples show exactly what a server publishes (unsigned);
- everything else: an FEP-8b32 ``eddsa-jcs-2022`` proof by the owner's Ed25519 key. The
  Announce's inner activity is signed first, by its own actor, and embedded unchanged.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from activitypub.actors import ACTOR_CONTEXT, ActorProfile, actor_document, ed25519_key_id
from activitypub.integrity import create_proof, proof_owner
from activitypub.keys import private_key_from_pem
from schemas import CONTEXTS_DIR, SCHEMAS_DIR

AS2 = "https://www.w3.org/ns/activitystreams"
DATA_INTEGRITY_V2 = "https://w3id.org/security/data-integrity/v2"

EXAMPLES_DIR = SCHEMAS_DIR / "examples"
TEMPLATES_DIR = EXAMPLES_DIR / "templates"
KEYS_DIR = EXAMPLES_DIR / "keys"
TALLY_INPUTS = TEMPLATES_DIR / "tally-inputs.txt"

# Actor shape -> stem of its key files in keys/ (<stem>.ed25519.pem, <stem>.rsa.pem).
ACTOR_SHAPES: Mapping[str, str] = {
    "actor-person": "ana",
    "actor-group": "association",
    "actor-application": "instance",
    "actor-service": "aggregator",
}
SHAPES: tuple[str, ...] = (
    *ACTOR_SHAPES,
    "process",
    "proposal",
    "debate",
    "comment",
    "support",
    "undo-support",
    "comment-vote",
    "undo-comment-vote",
    "official-answer",
    "announce",
    "delete",
    "tombstone",
    "tally",
)
# Shapes that use no Barri term (only AS2 and the proof's): they carry no Barri context.
PLAIN_SHAPES: frozenset[str] = frozenset(
    {"support", "undo-support", "comment-vote", "undo-comment-vote", "announce"}
)
# A Tombstone names no owner (no actor, no attributedTo): it is signed by the deleted
# object's author, whom a verifier already knows from the object it had.
OWNER_OVERRIDES: Mapping[str, str] = {"tombstone": "actor-person"}
# Shapes whose ``object`` is a whole signed activity, embedded unchanged (FEP-1b12).
SIGNED_INNER: frozenset[str] = frozenset({"announce"})

# ActorProfile field <- actor document key, for the fields actor_document() writes itself.
_PROFILE_FIELDS = {
    "id": "id",
    "type": "type",
    "preferred_username": "preferredUsername",
    "name": "name",
    "summary": "summary",
    "inbox": "inbox",
    "outbox": "outbox",
    "followers": "followers",
    "following": "following",
    "url": "url",
    "published": "published",
    "manually_approves_followers": "manuallyApprovesFollowers",
    "discoverable": "discoverable",
}
_PROFILE_KEYS = frozenset(_PROFILE_FIELDS.values()) | {"endpoints"}


@dataclass(frozen=True)
class ExampleKeys:
    """One example actor's fixed TEST keys."""

    ed25519: Ed25519PrivateKey
    rsa: RSAPrivateKey


def barri_context() -> dict[str, Any]:
    """The inline context object: the ``@context`` value of barri-v1.jsonld (DESIGN.md §4)."""
    document = json.loads((CONTEXTS_DIR / "barri-v1.jsonld").read_text(encoding="utf-8"))
    context: dict[str, Any] = document["@context"]
    return context


def document_context() -> list[Any]:
    """The ``@context`` of an object or activity that uses our terms (DESIGN.md §4)."""
    return [AS2, DATA_INTEGRITY_V2, barri_context()]


def plain_context() -> list[Any]:
    """The ``@context`` of a document that uses no Barri term (DESIGN.md §4): AS2 + DI only."""
    return [AS2, DATA_INTEGRITY_V2]


def context_for(shape: str) -> list[Any]:
    """The ``@context`` a published document of ``shape`` carries."""
    return plain_context() if shape in PLAIN_SHAPES else document_context()


def actor_context() -> list[Any]:
    """The ``@context`` of actor documents: ACTOR_CONTEXT plus the inline barri object."""
    return [*copy.deepcopy(ACTOR_CONTEXT), barri_context()]


def inputs_digest(support_ids: Iterable[str]) -> str:
    """A Tally's ``inputsDigest``: SHA-256 over the sorted, LF-joined support ids (vocab-spec)."""
    joined = "\n".join(sorted(support_ids)).encode("utf-8")
    return "sha-256=:" + base64.b64encode(hashlib.sha256(joined).digest()).decode("ascii") + ":"


def read_tally_inputs(path: Path = TALLY_INPUTS) -> list[str]:
    """The support ids the example Tally counted, one per line."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]


def load_keys(stem: str, keys_dir: Path = KEYS_DIR) -> ExampleKeys:
    """Load an example actor's Ed25519 and RSA TEST keys from PEM."""
    ed = private_key_from_pem((keys_dir / f"{stem}.ed25519.pem").read_bytes())
    rsa = private_key_from_pem((keys_dir / f"{stem}.rsa.pem").read_bytes())
    if not isinstance(ed, Ed25519PrivateKey) or not isinstance(rsa, RSAPrivateKey):
        raise ValueError(f"keys/{stem}.*.pem must hold an Ed25519 and an RSA private key")
    return ExampleKeys(ed, rsa)


def load_template(shape: str, templates_dir: Path = TEMPLATES_DIR) -> dict[str, Any]:
    """A template: the unsigned document without ``@context`` nor ``proof``."""
    template: dict[str, Any] = json.loads(
        (templates_dir / f"{shape}.json").read_text(encoding="utf-8")
    )
    for key in ("@context", "proof"):
        if key in template:
            raise ValueError(f"templates/{shape}.json must not carry {key!r}: the script adds it")
    return template


def actor_profile(template: Mapping[str, Any], keys: ExampleKeys) -> ActorProfile:
    """The ActorProfile a template describes; keys not written by actor_document() go to extra."""
    fields = {name: template[key] for name, key in _PROFILE_FIELDS.items() if key in template}
    endpoints = dict(template.get("endpoints", {}))
    shared_inbox = endpoints.pop("sharedInbox", None)
    extra = {key: value for key, value in template.items() if key not in _PROFILE_KEYS}
    return ActorProfile(
        **fields,
        shared_inbox=shared_inbox,
        rsa_public_key=keys.rsa.public_key(),
        ed25519_public_key=keys.ed25519.public_key(),
        extra_endpoints=endpoints,
        extra=extra,
    )


def build_actor(template: Mapping[str, Any], keys: ExampleKeys) -> dict[str, Any]:
    """The actor document a server publishes for this template (DESIGN.md §3), unsigned."""
    document = actor_document(actor_profile(template, keys))
    document["@context"] = actor_context()
    made = {
        k: v for k, v in document.items() if k not in ("@context", "publicKey", "assertionMethod")
    }
    if made != dict(template):
        # The template must say everything the document says, so readers can trust it.
        raise ValueError(f"actor template {template.get('id')!r} differs from actor_document()")
    return document


def _created(document: Mapping[str, Any]) -> datetime:
    """The proof's fixed ``created``: the document's own publication (or deletion) time."""
    stamp = document.get("published", document.get("deleted"))
    if not isinstance(stamp, str):
        raise ValueError(f"{document.get('id')!r} has no published/deleted time to sign at")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def sign(
    document: Mapping[str, Any], owner: str, keys: ExampleKeys, context: list[Any]
) -> dict[str, Any]:
    """Add ``context`` and the owner's FEP-8b32 proof (DESIGN.md §5)."""
    with_context = {"@context": context, **document}
    return create_proof(
        with_context, keys.ed25519, ed25519_key_id(owner), created=_created(document)
    )


def build_document(
    shape: str, template: Mapping[str, Any], signers: Mapping[str, ExampleKeys]
) -> dict[str, Any]:
    """A signed example; an embedded activity is signed first, by its own actor (FEP-1b12)."""
    document = dict(template)
    if shape == "tally":
        _check_tally_inputs(document)
    if shape in SIGNED_INNER:
        inner = document["object"]
        inner_owner = _owner(inner, shape, signers)
        # The announced activity is a Create of a Proposal: it uses our terms.
        document["object"] = sign(inner, inner_owner, signers[inner_owner], document_context())
    owner = _owner(document, shape, signers)
    return sign(document, owner, signers[owner], context_for(shape))


def _check_tally_inputs(tally: Mapping[str, Any]) -> None:
    """The template's inputsCount and inputsDigest must match templates/tally-inputs.txt."""
    ids = read_tally_inputs()
    if tally.get("inputsCount") != len(ids) or tally.get("inputsDigest") != inputs_digest(ids):
        raise ValueError(
            f"tally template: inputsCount/inputsDigest must be {len(ids)} / {inputs_digest(ids)}"
        )


def _owner(document: Mapping[str, Any], shape: str, signers: Mapping[str, ExampleKeys]) -> str:
    owner = proof_owner(document)
    if owner is None and shape in OWNER_OVERRIDES:
        owner = load_template(OWNER_OVERRIDES[shape])["id"]
    if owner is None or owner not in signers:
        raise ValueError(f"{shape}: no example key for owner {owner!r}")
    return owner


def build_all() -> dict[str, dict[str, Any]]:
    """Every example, by shape, built from the templates and the fixed keys."""
    signers: dict[str, ExampleKeys] = {}
    built: dict[str, dict[str, Any]] = {}
    for shape, stem in ACTOR_SHAPES.items():
        keys = load_keys(stem)
        template = load_template(shape)
        built[shape] = build_actor(template, keys)
        signers[template["id"]] = keys
    for shape in SHAPES:
        if shape not in built:
            built[shape] = build_document(shape, load_template(shape), signers)
    return built


def render(document: Mapping[str, Any]) -> bytes:
    """The file bytes: UTF-8 JSON, two-space indent, keys in document order, final newline."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _stale(rendered: Mapping[str, bytes], out_dir: Path) -> list[str]:
    """Names of example files that are missing, different, or no longer generated."""
    stale = [
        name
        for name, data in rendered.items()
        if not (out_dir / name).is_file() or (out_dir / name).read_bytes() != data
    ]
    extra = {path.name for path in out_dir.glob("*.json")} - set(rendered)
    return sorted([*stale, *extra])


def main(argv: Sequence[str] | None = None) -> int:
    """Write the examples, or with ``--check`` report (exit 1) the ones that would change."""
    parser = argparse.ArgumentParser(prog="python -m schemas.make_examples")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    rendered = {f"{shape}.json": render(doc) for shape, doc in build_all().items()}
    stale = _stale(rendered, EXAMPLES_DIR)
    if args.check:
        for name in stale:
            print(f"stale: schemas/examples/{name}", file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        if name in rendered:
            (EXAMPLES_DIR / name).write_bytes(rendered[name])
            print(f"wrote schemas/examples/{name}")
        else:
            print(f"not generated (remove it by hand): schemas/examples/{name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
