"""Actor documents (DESIGN.md §3, reference/activitypub.md §5) and reading their keys back."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import rdflib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pyld import jsonld

from activitypub import jsonld as barri_jsonld
from activitypub.actors import (
    ACTOR_CONTEXT,
    ACTOR_TYPES,
    ActorProfile,
    actor_document,
    actor_keys,
    ed25519_key_id,
    main_key_id,
)
from activitypub.keys import (
    generate_ed25519,
    generate_rsa,
    multikey_decode,
    public_key_from_pem,
)
from schemas import CONTEXTS_DIR

ORIGIN = "https://barri.example"
SEC = "https://w3id.org/security#"
AS = "https://www.w3.org/ns/activitystreams#"

# URL -> bundled file, as listed in ../shared/contexts/README.md.
CONTEXT_FILES = {
    "https://www.w3.org/ns/activitystreams": "activitystreams.jsonld",
    "https://w3id.org/security/v1": "security-v1.jsonld",
    "https://w3id.org/security/data-integrity/v1": "data-integrity-v1.jsonld",
    "https://w3id.org/security/data-integrity/v2": "data-integrity-v2.jsonld",
    "https://www.w3.org/ns/did/v1": "did-v1.jsonld",
    "https://w3id.org/security/multikey/v1": "multikey-v1.jsonld",
    "https://www.w3.org/ns/cid/v1": "cid-v1.jsonld",
}
ASSERTION_METHOD_TERM = {"@id": SEC + "assertionMethod", "@type": "@id", "@container": "@set"}

# The keys are slow to make (RSA), so the module shares one pair; nothing mutates them.
RSA_KEY = generate_rsa()
ED_KEY = generate_ed25519()


def _profile(kind: str = "Person", username: str = "alice", **changes: Any) -> ActorProfile:
    actor = f"{ORIGIN}/actors/{username}"
    fields: dict[str, Any] = {
        "id": actor,
        "type": kind,
        "preferred_username": username,
        "name": "Alice Puig",
        "summary": "<p>Veïna del Raval</p>",
        "inbox": actor + "/inbox",
        "outbox": actor + "/outbox",
        "followers": actor + "/followers",
        "following": actor + "/following",
        "shared_inbox": ORIGIN + "/inbox",
        "url": f"{ORIGIN}/@{username}",
        "rsa_public_key": RSA_KEY.public_key(),
        "ed25519_public_key": ED_KEY.public_key(),
        "published": "2026-01-05T10:00:00Z",
    }
    fields.update(changes)
    return ActorProfile(**fields)


def _context_file(url: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CONTEXTS_DIR / CONTEXT_FILES[url]).read_text())
    return data


def _offline_loader(url: str, options: Any = None) -> dict[str, Any]:
    """A pyld document loader that serves only the bundled files; any other URL fails."""
    if url not in CONTEXT_FILES:
        raise jsonld.JsonLdError("not bundled", "loading document failed", {"url": url})
    return {"contextUrl": None, "documentUrl": url, "document": _context_file(url)}


def _expand(doc: dict[str, Any]) -> dict[str, Any]:
    expanded = jsonld.expand(doc, {"documentLoader": _offline_loader})
    assert len(expanded) == 1
    node: dict[str, Any] = expanded[0]
    return node


# --- the document -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ACTOR_TYPES)
def test_document_has_every_field_mastodon_and_design_require(kind: str) -> None:
    profile = _profile(kind)
    doc = actor_document(profile)
    actor = profile.id
    assert doc["@context"] == ACTOR_CONTEXT
    assert doc["id"] == actor
    assert doc["type"] == kind
    assert doc["preferredUsername"] == "alice"
    assert doc["name"] == "Alice Puig"
    assert doc["summary"] == "<p>Veïna del Raval</p>"
    for prop in ("inbox", "outbox", "followers", "following"):
        assert doc[prop] == f"{actor}/{prop}"
    assert doc["endpoints"] == {"sharedInbox": ORIGIN + "/inbox"}
    assert doc["manuallyApprovesFollowers"] is False
    assert doc["discoverable"] is True
    assert doc["url"] == ORIGIN + "/@alice"
    assert doc["published"] == "2026-01-05T10:00:00Z"
    assert doc["publicKey"]["id"] == actor + "#main-key" == main_key_id(actor)
    assert doc["publicKey"]["owner"] == actor
    assert doc["publicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----\n")
    [multikey] = doc["assertionMethod"]
    assert multikey["id"] == actor + "#ed25519-key" == ed25519_key_id(actor)
    assert multikey["type"] == "Multikey"
    assert multikey["controller"] == actor
    assert multikey["publicKeyMultibase"].startswith("z6Mk")
    json.dumps(doc)  # plain JSON, nothing exotic inside


def test_public_key_pem_loads_back_to_the_same_rsa_2048_key() -> None:
    doc = actor_document(_profile())
    key = public_key_from_pem(doc["publicKey"]["publicKeyPem"])
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 2048
    assert key.public_numbers() == RSA_KEY.public_key().public_numbers()


def test_multikey_decodes_back_to_the_same_ed25519_key() -> None:
    doc = actor_document(_profile())
    key = multikey_decode(doc["assertionMethod"][0]["publicKeyMultibase"])
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert isinstance(key, ed25519.Ed25519PublicKey)
    assert key.public_bytes(*raw) == ED_KEY.public_key().public_bytes(*raw)


def test_actor_keys_round_trip() -> None:
    doc = actor_document(_profile())
    keys = actor_keys(doc)
    assert [(k.key_id, k.owner) for k in keys] == [
        (doc["id"] + "#main-key", doc["id"]),
        (doc["id"] + "#ed25519-key", doc["id"]),
    ]
    rsa_key, ed_key = keys[0].public_key, keys[1].public_key
    assert isinstance(rsa_key, rsa.RSAPublicKey)
    assert rsa_key.public_numbers() == RSA_KEY.public_key().public_numbers()
    assert isinstance(ed_key, ed25519.Ed25519PublicKey)
    message = b"a support for proposal 42"
    ed_key.verify(ED_KEY.sign(message), message)  # raises if the key were different


def test_optional_fields_are_left_out_when_unset_and_extras_are_added() -> None:
    profile = _profile(
        "Group",
        name=None,
        summary=None,
        url=None,
        shared_inbox=None,
        published=None,
        manually_approves_followers=True,
        discoverable=False,
        extra_endpoints={"oauthAuthorizationEndpoint": ORIGIN + "/oauth/authorize"},
        extra={"featured": ORIGIN + "/actors/alice/featured", "indexable": True},
    )
    doc = actor_document(profile)
    for absent in ("name", "summary", "url", "published"):
        assert absent not in doc
    assert doc["endpoints"] == {"oauthAuthorizationEndpoint": ORIGIN + "/oauth/authorize"}
    assert doc["manuallyApprovesFollowers"] is True
    assert doc["discoverable"] is False
    assert doc["featured"] == ORIGIN + "/actors/alice/featured"
    assert doc["indexable"] is True


def test_documents_do_not_share_a_mutable_context() -> None:
    first = actor_document(_profile())
    first["@context"][-1]["toot"] = "https://evil.example/ns#"
    assert actor_document(_profile())["@context"] == ACTOR_CONTEXT
    assert ACTOR_CONTEXT[-1]["toot"] == "http://joinmastodon.org/ns#"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": "Organization"}, "actor type"),
        ({"preferred_username": ""}, "preferred_username"),
        ({"preferred_username": "al ice"}, "preferred_username"),
        ({"id": "acct:alice@barri.example"}, "id must be"),
        ({"id": ORIGIN + "/actors/alice#me"}, "fragment"),
        ({"inbox": "https://elsewhere.example/inbox"}, "origin"),
        ({"shared_inbox": "http://barri.example/inbox"}, "origin"),
        ({"url": "not a url"}, "url must be"),
        ({"extra": {"publicKey": {}}}, "core properties"),
        ({"extra_endpoints": {"sharedInbox": ORIGIN + "/x"}}, "shared_inbox"),
    ],
)
def test_profiles_that_would_publish_a_broken_actor_are_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _profile(**changes)


def test_keys_of_the_wrong_kind_are_refused() -> None:
    with pytest.raises(TypeError):
        _profile(rsa_public_key=ED_KEY.public_key())
    with pytest.raises(TypeError):
        _profile(ed25519_public_key=RSA_KEY.public_key())


# --- the @context defines what the document uses ----------------------------------------


def test_bundled_contexts_show_which_one_defines_assertion_method() -> None:
    """multikey/v1 and data-integrity/v2 leave it undefined at top level; did/v1 defines it."""
    top_level = {url: _context_file(url)["@context"] for url in CONTEXT_FILES}
    assert "assertionMethod" not in top_level["https://w3id.org/security/multikey/v1"]
    assert "assertionMethod" not in top_level["https://w3id.org/security/data-integrity/v2"]
    assert top_level["https://www.w3.org/ns/did/v1"]["assertionMethod"] == ASSERTION_METHOD_TERM
    assert top_level["https://www.w3.org/ns/cid/v1"]["assertionMethod"] == ASSERTION_METHOD_TERM


def test_actor_context_defines_assertion_method_as_a_set_of_ids() -> None:
    """The last definition in ACTOR_CONTEXT order wins; it must be the @id/@set one."""
    definitions = []
    for entry in ACTOR_CONTEXT:
        terms = _context_file(entry)["@context"] if isinstance(entry, str) else entry
        if "assertionMethod" in terms:
            definitions.append(terms["assertionMethod"])
    assert definitions, "no context in ACTOR_CONTEXT defines assertionMethod"
    assert definitions[-1] == ASSERTION_METHOD_TERM


def test_actor_context_never_redefines_a_protected_term_differently() -> None:
    """JSON-LD 1.1 §4.1.11: redefining a protected term is an error unless identical."""
    protected: dict[str, Any] = {}
    for entry in ACTOR_CONTEXT:
        terms = _context_file(entry)["@context"] if isinstance(entry, str) else entry
        for term, definition in terms.items():
            if term.startswith("@"):
                continue
            if term in protected:
                assert definition == protected[term], f"{entry} redefines protected {term}"
            elif terms.get("@protected") is True:
                protected[term] = definition


def test_an_independent_json_ld_processor_reads_every_property_offline() -> None:
    doc = actor_document(_profile())
    node = _expand(doc)
    assert node["@id"] == doc["id"]
    assert node["@type"] == [AS + "Person"]
    [method] = node[SEC + "assertionMethod"]
    assert method["@id"] == doc["id"] + "#ed25519-key"
    assert method["@type"] == [SEC + "Multikey"]
    assert method[SEC + "controller"] == [{"@id": doc["id"]}]
    assert method[SEC + "publicKeyMultibase"][0]["@value"].startswith("z6Mk")
    [public_key] = node[SEC + "publicKey"]
    assert public_key[SEC + "owner"] == [{"@id": doc["id"]}]
    assert SEC + "publicKeyPem" in public_key
    assert node[AS + "manuallyApprovesFollowers"] == [{"@value": False}]
    assert node["http://joinmastodon.org/ns#discoverable"] == [{"@value": True}]
    [endpoints] = node[AS + "endpoints"]
    assert endpoints[AS + "sharedInbox"] == [{"@id": ORIGIN + "/inbox"}]
    assert node["http://www.w3.org/ns/ldp#inbox"] == [{"@id": doc["inbox"]}]
    for prop in ("outbox", "followers", "following", "preferredUsername", "url", "published"):
        assert AS + prop in node, prop


def test_without_did_v1_the_processor_loses_assertion_method() -> None:
    """The control: the context list without did/v1 leaves assertionMethod undefined."""
    doc = actor_document(_profile())
    doc["@context"] = [c for c in doc["@context"] if c != "https://www.w3.org/ns/did/v1"]
    assert SEC + "assertionMethod" not in _expand(doc)


def test_our_own_json_ld_layer_accepts_the_actor_and_reads_its_keys_as_rdf() -> None:
    """activitypub.jsonld (inbound checks, rdflib offline) agrees with pyld."""
    doc = actor_document(_profile())
    barri_jsonld.check_document(doc)  # raises on unknown contexts or term redefinitions
    assert barri_jsonld.expand_iri(doc, "assertionMethod") == SEC + "assertionMethod"
    graph = barri_jsonld.to_graph(doc)
    actor, key = rdflib.URIRef(doc["id"]), rdflib.URIRef(doc["id"] + "#ed25519-key")
    assert list(graph.objects(actor, rdflib.URIRef(SEC + "assertionMethod"))) == [key]
    assert (key, rdflib.RDF.type, rdflib.URIRef(SEC + "Multikey")) in graph
    assert (key, rdflib.URIRef(SEC + "controller"), actor) in graph


def test_the_offline_loader_really_refuses_unknown_contexts() -> None:
    doc = actor_document(_profile())
    doc["@context"] = [*doc["@context"], "https://unbundled.example/context.jsonld"]
    with pytest.raises(jsonld.JsonLdError):
        _expand(doc)


# --- reading other servers' actors ------------------------------------------------------


def test_mastodon_actor_public_key_parses(vectors: Path) -> None:
    examples = json.loads((vectors / "mastodon" / "mastodon-spec-examples.json").read_text())
    actor = examples["actor_public_key_example"]
    [key] = actor_keys(actor)
    assert key.key_id == "https://mastodon.social/users/Gargron#main-key"
    assert key.owner == "https://mastodon.social/users/Gargron"
    assert isinstance(key.public_key, rsa.RSAPublicKey)
    assert key.public_key.key_size == 2048
    assert key.public_key.public_numbers().e == 65537
    original = key.public_key.public_numbers().n

    # Flip one base64 character in the modulus: either unreadable or a different key.
    flipped = copy.deepcopy(actor)
    pem = flipped["publicKey"]["publicKeyPem"]
    i = pem.index("MIIBIjAN") + 60
    flipped["publicKey"]["publicKeyPem"] = pem[:i] + ("A" if pem[i] != "A" else "B") + pem[i + 1 :]
    changed = actor_keys(flipped)
    assert changed == [] or (
        isinstance(changed[0].public_key, rsa.RSAPublicKey)
        and changed[0].public_key.public_numbers().n != original
    )

    # An owner that is not the actor: the key is not the actor's.
    foreign = copy.deepcopy(actor)
    foreign["publicKey"]["owner"] = "https://mastodon.social/users/someone"
    assert actor_keys(foreign) == []


def _feature_json_blocks(path: Path) -> list[dict[str, Any]]:
    blocks = re.findall(r'"""\n(.*?)\n\s*"""', path.read_text(), flags=re.S)
    return [json.loads(block) for block in blocks]


def test_fep_521a_vectors_parse_to_the_vector_keys(vectors: Path) -> None:
    feature = (vectors / "fep" / "fep-521a.feature").read_text()
    ed_hex, rsa_hex = re.findall(r'as a hex string "([0-9a-f]+)"', feature)
    multikeys = _feature_json_blocks(vectors / "fep" / "fep-521a.feature")
    actor = {"id": "https://server.example/users/alice", "assertionMethod": multikeys}
    ed_key, rsa_key = actor_keys(actor)
    assert ed_key.key_id == "https://server.example/users/alice#ed25519-key"
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert isinstance(ed_key.public_key, ed25519.Ed25519PublicKey)
    assert ed_key.public_key.public_bytes(*raw).hex() == ed_hex
    assert rsa_key.key_id == "https://server.example/users/alice#rsa-key"
    assert isinstance(rsa_key.public_key, rsa.RSAPublicKey)
    pkcs1 = serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    assert rsa_key.public_key.public_bytes(*pkcs1).hex() == rsa_hex


def test_fep_8b32_vector_actor_lists_its_signing_key(vectors: Path) -> None:
    blocks = _feature_json_blocks(vectors / "fep" / "fep-8b32.feature")
    actor = next(b for b in blocks if b.get("type") == "Person")
    [key] = actor_keys(actor)
    assert key.key_id == "https://server.example/users/alice#ed25519-key"
    assert isinstance(key.public_key, ed25519.Ed25519PublicKey)


def test_non_conforming_entries_are_ignored() -> None:
    doc = actor_document(_profile())
    actor = doc["id"]
    good_pem = doc["publicKey"]
    good_multikey = doc["assertionMethod"][0]
    doc["publicKey"] = [
        actor + "#main-key",  # a bare reference carries no key
        {**good_pem, "owner": "https://barri.example/actors/bob"},
        {**good_pem, "id": "https://elsewhere.example/k#main-key"},
        {**good_pem, "id": actor + "#broken", "publicKeyPem": "-----BEGIN PUBLIC KEY-----"},
        good_pem,
        {**good_pem, "publicKeyPem": "duplicate id: ignored"},
    ]
    doc["assertionMethod"] = [
        "https://barri.example/actors/alice#ed25519-key",
        {**good_multikey, "controller": "https://barri.example/actors/bob"},
        {**good_multikey, "type": "JsonWebKey"},
        {**good_multikey, "id": actor + "#bad", "publicKeyMultibase": "z6Mk0OIl"},
        {**good_multikey, "id": actor + "#short", "publicKeyMultibase": "z6Mk"},
        {**good_multikey, "id": actor + "#b64", "publicKeyMultibase": "uAAAA"},
        {**good_multikey, "type": ["Multikey"]},
    ]
    keys = actor_keys(doc)
    assert [k.key_id for k in keys] == [actor + "#main-key", actor + "#ed25519-key"]


def test_a_document_without_a_string_id_lists_no_keys() -> None:
    doc = actor_document(_profile())
    del doc["id"]
    assert actor_keys(doc) == []
    assert actor_keys({"id": ["x"], "publicKey": doc["publicKey"]}) == []
