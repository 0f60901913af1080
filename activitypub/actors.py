"""Actor documents: what Mastodon needs plus FEP-521a Multikeys, and reading keys back."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .keys import (
    ActorKey,
    KeyFormatError,
    multikey_decode,
    multikey_encode,
    public_key_from_pem,
    public_key_to_pem,
)
from .origin import OriginError, origin_of, same_origin

ACTOR_TYPES = ("Person", "Group", "Application", "Service")

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_V1 = "https://w3id.org/security/v1"
DID_V1 = "https://www.w3.org/ns/did/v1"
MULTIKEY_V1 = "https://w3id.org/security/multikey/v1"
DATA_INTEGRITY_V2 = "https://w3id.org/security/data-integrity/v2"

# Why did/v1: neither multikey/v1 nor data-integrity/v2 defines a top-level ``assertionMethod``
# (data-integrity/v2 only scopes it inside ``proofPurpose``); did/v1 does, as
# {"@id": "sec:assertionMethod", "@type": "@id", "@container": "@set"}. Fedify ships the same
# order (security/v1, did/v1, multikey/v1). Checked in tests/test_actors.py against the bundled
# files in schemas/contexts and with an independent JSON-LD processor.
ACTOR_CONTEXT: list[Any] = [
    AS_CONTEXT,
    SECURITY_V1,
    DID_V1,
    MULTIKEY_V1,
    DATA_INTEGRITY_V2,
    {
        "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
        "toot": "http://joinmastodon.org/ns#",
        "discoverable": "toot:discoverable",
        "indexable": "toot:indexable",
    },
]

# Keys actor_document() writes itself; ``extra`` may not replace them.
_CORE_KEYS = frozenset(
    {
        "@context",
        "id",
        "type",
        "preferredUsername",
        "name",
        "summary",
        "inbox",
        "outbox",
        "followers",
        "following",
        "endpoints",
        "manuallyApprovesFollowers",
        "discoverable",
        "url",
        "published",
        "publicKey",
        "assertionMethod",
    }
)


@dataclass(frozen=True)
class ActorProfile:
    """Everything an actor document says about one local actor (DESIGN.md §3)."""

    id: str
    type: str
    preferred_username: str
    name: str | None
    summary: str | None
    inbox: str
    outbox: str
    followers: str
    following: str
    shared_inbox: str | None
    url: str | None
    rsa_public_key: RSAPublicKey
    ed25519_public_key: Ed25519PublicKey
    manually_approves_followers: bool = False
    discoverable: bool = True
    published: str | None = None
    extra_endpoints: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a profile that would publish a document remote servers reject."""
        if self.type not in ACTOR_TYPES:
            raise ValueError(f"actor type must be one of {ACTOR_TYPES}, not {self.type!r}")
        if not self.preferred_username or any(c.isspace() for c in self.preferred_username):
            raise ValueError("preferred_username must be a non-empty name without spaces")
        _check_url("id", self.id)
        if "#" in self.id:
            raise ValueError("an actor id must not carry a fragment (key ids append one)")
        # FEP-fe34: an actor's collections and inboxes live on the actor's own origin.
        for label, value in self._own_urls():
            _check_url(label, value)
            if not same_origin(value, self.id):
                raise ValueError(f"{label} {value!r} is not on the actor's origin")
        if self.url is not None:
            _check_url("url", self.url)
        if not isinstance(self.rsa_public_key, RSAPublicKey):
            raise TypeError("rsa_public_key must be an RSA public key")
        if not isinstance(self.ed25519_public_key, Ed25519PublicKey):
            raise TypeError("ed25519_public_key must be an Ed25519 public key")
        if "sharedInbox" in self.extra_endpoints:
            raise ValueError("set shared_inbox, not extra_endpoints['sharedInbox']")
        clash = _CORE_KEYS.intersection(self.extra)
        if clash:
            raise ValueError(f"extra may not replace core properties: {sorted(clash)}")

    def _own_urls(self) -> Iterator[tuple[str, str]]:
        yield "inbox", self.inbox
        yield "outbox", self.outbox
        yield "followers", self.followers
        yield "following", self.following
        if self.shared_inbox is not None:
            yield "shared_inbox", self.shared_inbox


def _check_url(label: str, value: str) -> None:
    try:
        origin_of(value)
    except OriginError as exc:
        raise ValueError(f"{label} must be an absolute http(s) URL: {exc}") from exc


def main_key_id(actor_id: str) -> str:
    """The id of the RSA ``publicKey`` (Mastodon's ``#main-key`` convention)."""
    return actor_id + "#main-key"


def ed25519_key_id(actor_id: str) -> str:
    """The id of the Ed25519 Multikey in ``assertionMethod`` (FEP-521a, FEP-8b32)."""
    return actor_id + "#ed25519-key"


def actor_document(profile: ActorProfile) -> dict[str, Any]:
    """The actor as JSON-LD: Mastodon's required fields plus FEP-521a ``assertionMethod``."""
    doc: dict[str, Any] = {
        "@context": _copy_context(),
        "id": profile.id,
        "type": profile.type,
        "preferredUsername": profile.preferred_username,
    }
    _put(doc, "name", profile.name)
    _put(doc, "summary", profile.summary)
    doc.update(
        inbox=profile.inbox,
        outbox=profile.outbox,
        followers=profile.followers,
        following=profile.following,
    )
    endpoints = dict(profile.extra_endpoints)
    if profile.shared_inbox is not None:
        endpoints["sharedInbox"] = profile.shared_inbox
    if endpoints:
        doc["endpoints"] = endpoints
    doc["manuallyApprovesFollowers"] = profile.manually_approves_followers
    doc["discoverable"] = profile.discoverable
    _put(doc, "url", profile.url)
    _put(doc, "published", profile.published)
    doc["publicKey"] = {
        "id": main_key_id(profile.id),
        "owner": profile.id,
        "publicKeyPem": public_key_to_pem(profile.rsa_public_key),
    }
    doc["assertionMethod"] = [
        {
            "id": ed25519_key_id(profile.id),
            "type": "Multikey",
            "controller": profile.id,
            "publicKeyMultibase": multikey_encode(profile.ed25519_public_key),
        }
    ]
    doc.update(profile.extra)
    return doc


def _copy_context() -> list[Any]:
    # A fresh copy, so a caller that edits one document cannot change the next.
    return [dict(c) if isinstance(c, dict) else c for c in ACTOR_CONTEXT]


def _put(doc: dict[str, Any], key: str, value: str | None) -> None:
    if value is not None:
        doc[key] = value


def actor_keys(document: Mapping[str, Any]) -> list[ActorKey]:
    """Every key the actor lists: ``publicKey`` (security/v1) and ``assertionMethod`` (FEP-521a).

    Entries that do not conform (wrong owner/controller, another origin, undecodable key,
    a bare id reference) are ignored, as FEP-521a asks.
    """
    actor_id = document.get("id")
    if not isinstance(actor_id, str):
        return []
    found: list[ActorKey] = []
    for entry in _as_list(document.get("publicKey")):
        key = _pem_key(entry, actor_id)
        if key is not None:
            found.append(key)
    for entry in _as_list(document.get("assertionMethod")):
        key = _multikey(entry, actor_id)
        if key is not None:
            found.append(key)
    return _unique(found)


def _as_list(value: Any) -> list[Any]:
    # AS2 lets a property hold one value or an array of them.
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _key_id(entry: Any, actor_id: str, owner_field: str) -> str | None:
    """The entry's id if it is an object owned by ``actor_id`` on the actor's origin."""
    if not isinstance(entry, Mapping):
        return None
    key_id = entry.get("id")
    if not isinstance(key_id, str) or entry.get(owner_field) != actor_id:
        return None
    # FEP-fe34: a key on another origin could shadow that origin's own key in a cache.
    return key_id if same_origin(key_id, actor_id) else None


def _pem_key(entry: Any, actor_id: str) -> ActorKey | None:
    key_id = _key_id(entry, actor_id, "owner")
    pem = entry.get("publicKeyPem") if key_id is not None else None
    if key_id is None or not isinstance(pem, str):
        return None
    try:
        return ActorKey(key_id, actor_id, public_key_from_pem(pem))
    except KeyFormatError:
        return None


def _multikey(entry: Any, actor_id: str) -> ActorKey | None:
    key_id = _key_id(entry, actor_id, "controller")
    if key_id is None:
        return None
    types = _as_list(entry.get("type"))
    value = entry.get("publicKeyMultibase")
    if "Multikey" not in types or not isinstance(value, str):
        return None
    try:
        return ActorKey(key_id, actor_id, multikey_decode(value))
    except ValueError:
        # KeyFormatError, or cryptography refusing the decoded key material.
        return None


def _unique(keys: list[ActorKey]) -> list[ActorKey]:
    # One key per id: the first listing wins, a second one with the same id is ignored.
    seen: set[str] = set()
    out: list[ActorKey] = []
    for key in keys:
        if key.key_id not in seen:
            seen.add(key.key_id)
            out.append(key)
    return out
