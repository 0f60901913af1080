"""activitypub.jsonld: bundled contexts, inbound rules (DESIGN.md §5), RDF with the network off."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rdflib
import rdflib._networking
from rdflib import Literal, URIRef

from activitypub.jsonld import (
    AS2,
    KNOWN_CONTEXTS,
    PROTECTED_TERMS,
    JsonLdError,
    JsonLdFailure,
    check_document,
    expand_iri,
    load_context,
    to_graph,
)
from activitypub.memo import EqualMemo
from schemas import CONTEXTS_DIR
from tests.conftest import SHARED, VECTORS

# rdflib's own parser trips its own deprecations (ConjunctiveGraph, default_context).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")

AS = "https://www.w3.org/ns/activitystreams#"
SEC = "https://w3id.org/security#"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = URIRef("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
SEC_V1 = "https://w3id.org/security/v1"
DI_V2 = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_V1 = "https://w3id.org/security/multikey/v1"
DID_V1 = "https://www.w3.org/ns/did/v1"
CID_V1 = "https://www.w3.org/ns/cid/v1"
IDENTITY_V1 = "https://w3id.org/identity/v1"
LEMMY = "https://join-lemmy.org/context.json"

# The published documents' SHA-256, recorded when they were copied from ../shared/contexts.
PUBLISHED = {
    AS2: (
        "activitystreams.jsonld",
        "a27b78b82f4980963127140d0cb74f0e8f21c0e2b8efd0368232bf9823edff5a",
    ),
    SEC_V1: (
        "security-v1.jsonld",
        "e2d146cd556f6fa5f14996c6f1749667d5a14073fa30f0643990068e2c0b1bac",
    ),
    "https://w3id.org/security/data-integrity/v1": (
        "data-integrity-v1.jsonld",
        "40030a05470250336f7ba464531e52b77a717db818a68f4c2380222fa6f9600e",
    ),
    DI_V2: (
        "data-integrity-v2.jsonld",
        "0f77743daf5b4e8fc067fc5ba5b21044283053aa717fc6b0219843bed3b00363",
    ),
    DID_V1: ("did-v1.jsonld", "62c1054bf404d6dd3a4b26b64f830fd72095f6a26edc4469908c94351352ce5f"),
    MULTIKEY_V1: (
        "multikey-v1.jsonld",
        "ba2c182de2d92f7e47184bcca8fcf0beaee6d3986c527bf664c195bbc7c58597",
    ),
    CID_V1: ("cid-v1.jsonld", "7976d70067ef11ba9916e5ca49ec9706a66a2cb251130e93d42da69a0faead38"),
    IDENTITY_V1: (
        "identity-v1.jsonld",
        "2fb220687d1c092a957b53f7bb33743df609afda72961924a7efd16ca55e1a96",
    ),
    LEMMY: (
        "lemmy-context.jsonld",
        "e8794cb1007f1c72c5d321c0bd0ded5ae886b8e4316a2cfb6c1ac00aa4a4d6c2",
    ),
    "https://gotosocial.org/ns": (
        "gotosocial-ns.jsonld",
        "dc20cccee7cd25dff137df7d05982376df2a7ad747a0798501d40c99a6558dd9",
    ),
}
AS2_SPELLINGS = [
    "https://www.w3.org/ns/activitystreams",
    "https://www.w3.org/ns/activitystreams#",
    "https://www.w3.org/ns/activitystreams.jsonld",
    "http://www.w3.org/ns/activitystreams",
    "http://www.w3.org/ns/activitystreams#",
    "http://www.w3.org/ns/activitystreams.jsonld",
]
# The shape of the @context Mastodon 4.x puts on actors (AS2 + security v1 + toot: terms).
MASTODON_ACTOR_CONTEXT: list[Any] = [
    AS2,
    SEC_V1,
    {
        "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
        "toot": "http://joinmastodon.org/ns#",
        "featured": {"@id": "toot:featured", "@type": "@id"},
        "featuredTags": {"@id": "toot:featuredTags", "@type": "@id"},
        "alsoKnownAs": {"@id": "as:alsoKnownAs", "@type": "@id"},
        "movedTo": {"@id": "as:movedTo", "@type": "@id"},
        "schema": "http://schema.org#",
        "PropertyValue": "schema:PropertyValue",
        "value": "schema:value",
        "discoverable": "toot:discoverable",
        "indexable": "toot:indexable",
        "memorial": "toot:memorial",
        "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
        "Emoji": "toot:Emoji",
        "Hashtag": "as:Hashtag",
        "sensitive": "as:sensitive",
    },
]
BARRI_INLINE = {
    "barri": "https://w3id.org/barri/ns#",
    "Proposal": "barri:Proposal",
    "process": {"@id": "barri:process", "@type": "@id"},
}


def fep_vector() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "fep" / "fep-8b32-vector.json").read_text())
    return data


def mastodon_vector() -> dict[str, Any]:
    path = VECTORS / "mastodon" / "mastodon-spec-examples.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def refused(document: Any, **kwargs: Any) -> JsonLdFailure:
    with pytest.raises(JsonLdError) as info:
        check_document(document, **kwargs)
    assert info.value.detail and info.value.reason.value in str(info.value)
    return info.value.reason


# --- the bundled files -------------------------------------------------------------------------


def test_every_published_context_is_bundled_under_its_url() -> None:
    assert {url: KNOWN_CONTEXTS[url] for url in PUBLISHED} == {
        url: name for url, (name, _) in PUBLISHED.items()
    }
    # barri-v1.jsonld is our own context: published inline in documents, never by URL.
    bundled = sorted(p.name for p in CONTEXTS_DIR.glob("*.jsonld") if p.name != "barri-v1.jsonld")
    assert bundled == sorted(name for name, _ in PUBLISHED.values())
    assert set(KNOWN_CONTEXTS) == set(PUBLISHED) | set(AS2_SPELLINGS)


@pytest.mark.parametrize("url", sorted(PUBLISHED))
def test_bundled_file_is_byte_identical_to_the_published_copy(url: str) -> None:
    name, sha256 = PUBLISHED[url]
    data = (CONTEXTS_DIR / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha256
    published = SHARED / "contexts" / name
    if SHARED.is_dir():
        assert data == published.read_bytes()


def test_url_table_matches_the_shared_readme_and_ours() -> None:
    row = re.compile(r"^\| `(?P<url>[^`]+)` \| `(?P<file>[^`]+)` \|", re.MULTILINE)
    ours = dict(row.findall((CONTEXTS_DIR / "README.md").read_text()))
    assert ours == {url: name for url, (name, _) in PUBLISHED.items()}
    readme = SHARED / "contexts" / "README.md"
    if SHARED.is_dir():
        assert dict(row.findall(readme.read_text())) == ours
    for url, (_, sha256) in PUBLISHED.items():
        assert sha256 in (CONTEXTS_DIR / "README.md").read_text(), url


@pytest.mark.parametrize("url", sorted(KNOWN_CONTEXTS))
def test_load_context_serves_each_known_url_from_the_bundle(url: str) -> None:
    document = load_context(url)
    expected = json.loads((CONTEXTS_DIR / KNOWN_CONTEXTS[url]).read_bytes())
    assert document == expected
    assert "@context" in document


def test_every_as2_spelling_loads_the_same_document() -> None:
    documents = [load_context(url) for url in AS2_SPELLINGS]
    assert all(d == documents[0] for d in documents)
    assert documents[0]["@context"]["Note"] == "as:Note"


def test_load_context_hands_out_copies() -> None:
    first = load_context(AS2)
    first["@context"]["actor"] = "https://evil.example/ns#x"
    assert load_context(AS2)["@context"]["actor"] == {"@id": "as:actor", "@type": "@id"}


@pytest.mark.parametrize(
    "url",
    ["https://unknown.example/ctx", "https://litepub.social/litepub/context.jsonld", "", "as"],
)
def test_load_context_refuses_anything_else(url: str) -> None:
    with pytest.raises(JsonLdError) as info:
        load_context(url)
    assert info.value.reason is JsonLdFailure.UNKNOWN_CONTEXT


# --- check_document: what is refused ----------------------------------------------------------

REFUSED: list[tuple[str, Any, JsonLdFailure]] = [
    ("top @graph", {"@context": AS2, "@graph": []}, JsonLdFailure.FORBIDDEN_KEYWORD),
    ("top @reverse", {"@context": AS2, "@reverse": {}}, JsonLdFailure.FORBIDDEN_KEYWORD),
    ("top @included", {"@context": AS2, "@included": []}, JsonLdFailure.FORBIDDEN_KEYWORD),
    ("top @nest", {"@context": AS2, "@nest": {}}, JsonLdFailure.FORBIDDEN_KEYWORD),
    (
        "nested @graph",
        {"@context": AS2, "type": "Create", "object": {"type": "Note", "@graph": []}},
        JsonLdFailure.FORBIDDEN_KEYWORD,
    ),
    (
        "nested @reverse",
        {"@context": AS2, "object": {"type": "Note", "@reverse": {"as:actor": "x"}}},
        JsonLdFailure.FORBIDDEN_KEYWORD,
    ),
    (
        "nested @included in a list",
        {"@context": AS2, "object": {"tag": [{"type": "Mention", "@included": []}]}},
        JsonLdFailure.FORBIDDEN_KEYWORD,
    ),
    ("unknown url", {"@context": "https://unknown.example/ctx"}, JsonLdFailure.UNKNOWN_CONTEXT),
    (
        "unknown url in a list",
        {"@context": [AS2, "https://unknown.example/ctx"]},
        JsonLdFailure.UNKNOWN_CONTEXT,
    ),
    (
        "relative context url",
        {"@context": [AS2, "context.jsonld"]},
        JsonLdFailure.UNKNOWN_CONTEXT,
    ),
    (
        "nested unknown @context",
        {"@context": AS2, "object": {"@context": "https://unknown.example/ctx", "type": "Note"}},
        JsonLdFailure.UNKNOWN_CONTEXT,
    ),
    (
        "unknown url in a proof @context",
        {"@context": AS2, "proof": {"@context": [AS2, "https://unknown.example/ctx"]}},
        JsonLdFailure.UNKNOWN_CONTEXT,
    ),
    (
        "unknown url in a scoped context",
        {
            "@context": [
                AS2,
                {"Foo": {"@id": "https://e.example/#Foo", "@context": "https://x.example/c"}},
            ]
        },
        JsonLdFailure.UNKNOWN_CONTEXT,
    ),
    (
        "inline redefines actor",
        {"@context": [AS2, {"actor": "https://evil.example/ns#x"}]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "inline redefines object (expanded form)",
        {"@context": [AS2, {"object": {"@id": "https://evil.example/ns#o", "@type": "@id"}}]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "inline redefines id",
        {"@context": [AS2, {"id": "https://evil.example/ns#x"}]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "inline before AS2 still counts",
        {"@context": [{"actor": "https://evil.example/ns#x"}, AS2]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "redefinition through an evil prefix",
        {"@context": [AS2, {"evil": "https://evil.example/ns#", "inbox": "evil:inbox"}]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "unmapping a protected term",
        {"@context": [AS2, {"actor": None}]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "redefining a protected type",
        {"@context": [AS2, {"Like": "https://evil.example/ns#Like"}]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "redefining publicKeyPem without security v1",
        {"@context": [AS2, {"publicKeyPem": "https://evil.example/ns#pem"}]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "redefining the as: prefix",
        {"@context": [AS2, {"as": "https://evil.example/ns#"}]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "redefining a bundled non-protected term",
        {"@context": [AS2, {"vcard": "https://evil.example/vcard#"}]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "redefinition in a nested context",
        {"@context": AS2, "object": {"@context": {"object": "https://evil.example/ns#o"}}},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "redefinition in a type-scoped context",
        {
            "@context": [
                AS2,
                {
                    "Foo": {
                        "@id": "https://e.example/#Foo",
                        "@context": {"to": "https://e.example/#to"},
                    }
                },
            ]
        },
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "identity v1 after AS2 remaps name",
        {"@context": [AS2, IDENTITY_V1]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    (
        "@vocab remap",
        {"@context": [AS2, {"@vocab": "https://evil.example/ns#"}]},
        JsonLdFailure.TERM_REDEFINED,
    ),
    ("null context", {"@context": [AS2, None]}, JsonLdFailure.TERM_REDEFINED),
    (
        "@import",
        {"@context": [AS2, {"@import": "https://evil.example/ctx"}]},
        JsonLdFailure.FORBIDDEN_KEYWORD,
    ),
    ("@propagate", {"@context": [AS2, {"@propagate": False}]}, JsonLdFailure.FORBIDDEN_KEYWORD),
    (
        "@base",
        {"@context": [AS2, {"@base": "https://evil.example/"}]},
        JsonLdFailure.FORBIDDEN_KEYWORD,
    ),
    (
        "alias of @graph",
        {"@context": [AS2, {"g": "@graph"}], "g": []},
        JsonLdFailure.FORBIDDEN_KEYWORD,
    ),
    (
        "alias of @id",
        {"@context": [AS2, {"ident": "@id"}], "ident": "https://evil.example/1"},
        JsonLdFailure.FORBIDDEN_KEYWORD,
    ),
    (
        "reverse property definition",
        {"@context": [AS2, {"actorOf": {"@reverse": "as:actor"}}]},
        JsonLdFailure.FORBIDDEN_KEYWORD,
    ),
    ("document is a list", [{"@context": AS2}], JsonLdFailure.MALFORMED),
    ("document is a string", AS2, JsonLdFailure.MALFORMED),
    ("context is a number", {"@context": 5}, JsonLdFailure.MALFORMED),
    ("context entry is a number", {"@context": [AS2, 5]}, JsonLdFailure.MALFORMED),
    ("context list nested in a list", {"@context": [[AS2]]}, JsonLdFailure.MALFORMED),
    ("context is true", {"@context": True}, JsonLdFailure.MALFORMED),
    ("term definition is a number", {"@context": [AS2, {"foo": 5}]}, JsonLdFailure.MALFORMED),
    (
        "term definition with an unknown key",
        {"@context": [AS2, {"foo": {"@id": "https://e.example/#f", "@bogus": 1}}]},
        JsonLdFailure.MALFORMED,
    ),
    ("non-string @id in a term", {"@context": [AS2, {"foo": {"@id": 5}}]}, JsonLdFailure.MALFORMED),
]


@pytest.mark.parametrize(
    ("document", "reason"), [(d, r) for _, d, r in REFUSED], ids=[name for name, _, _ in REFUSED]
)
def test_check_document_refuses(document: Any, reason: JsonLdFailure) -> None:
    assert refused(document) is reason


def test_deeply_nested_documents_are_malformed_not_a_crash() -> None:
    document: dict[str, Any] = {"@context": AS2}
    node = document
    for _ in range(500):
        node["object"] = {"type": "Note"}
        node = node["object"]
    assert refused(document) is JsonLdFailure.MALFORMED


def test_protected_terms_can_be_chosen_by_the_caller() -> None:
    document = {"@context": [AS2, {"manuallyApprovesFollowers": "https://evil.example/ns#m"}]}
    assert refused(document) is JsonLdFailure.TERM_REDEFINED
    check_document(document, protected_terms=())
    # A caller can protect a term of its own: defined once is fine, redefined is not.
    ours = {"@context": [AS2, BARRI_INLINE, {"Proposal": "https://evil.example/ns#P"}]}
    assert refused(ours, protected_terms={"Proposal"}) is JsonLdFailure.TERM_REDEFINED


def test_extra_contexts_are_accepted_only_when_supplied() -> None:
    url = "https://barri.example/ns/v1"
    document = {"@context": [AS2, url], "type": ["Page", "Proposal"]}
    assert refused(document) is JsonLdFailure.UNKNOWN_CONTEXT
    check_document(document, extra_contexts={url: {"@context": BARRI_INLINE}})
    evil = {url: {"@context": {"object": "https://evil.example/ns#o"}}}
    assert refused(document, extra_contexts=evil) is JsonLdFailure.TERM_REDEFINED


def test_protected_terms_cover_what_the_protocol_reads() -> None:
    for term in ("id", "type", "actor", "object", "to", "cc", "inbox", "publicKeyPem", "proof"):
        assert term in PROTECTED_TERMS
    for term in ("assertionMethod", "publicKeyMultibase", "cryptosuite", "orderedItems"):
        assert term in PROTECTED_TERMS


# --- check_document: what is accepted ---------------------------------------------------------

ACCEPTED: list[tuple[str, Any]] = [
    (
        "Mastodon inline toot: Emoji",
        {
            "@context": [AS2, {"toot": "http://joinmastodon.org/ns#", "Emoji": "toot:Emoji"}],
            "type": "Note",
            "tag": [{"type": "Emoji", "name": ":blob:"}],
        },
    ),
    ("Mastodon actor context", {"@context": MASTODON_ACTOR_CONTEXT, "type": "Person"}),
    (
        "Misskey-style inline",
        {
            "@context": [
                AS2,
                SEC_V1,
                {
                    "Key": "sec:Key",
                    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
                    "misskey": "https://misskey-hub.net/ns#",
                    "_misskey_content": "misskey:_misskey_content",
                    "vcard": "http://www.w3.org/2006/vcard/ns#",
                },
            ]
        },
    ),
    ("Lemmy context first", {"@context": [LEMMY, AS2], "type": "Page"}),
    ("identity v1 before AS2", {"@context": [IDENTITY_V1, AS2], "name": "x"}),
    (
        "every bundled context but identity",
        {"@context": [url for url in PUBLISHED if url != IDENTITY_V1]},
    ),
    (
        "same-IRI restatements",
        {
            "@context": [
                AS2,
                {"id": "@id", "type": "@type", "inbox": "ldp:inbox"},
                {"actor": {"@id": "as:actor", "@type": "@id"}},
            ]
        },
    ),
    ("our inline terms", {"@context": [AS2, BARRI_INLINE], "type": ["Page", "Proposal"]}),
    ("no context at all", {"type": "Note"}),
    (
        "@graph as a container value",
        {"@context": [AS2, DI_V2], "proof": {"type": "DataIntegrityProof"}},
    ),
    ("language and version keywords", {"@context": [AS2, {"@language": "ca", "@version": 1.1}]}),
] + [(f"AS2 spelled {url}", {"@context": url, "type": "Note"}) for url in AS2_SPELLINGS]


@pytest.mark.parametrize("document", [d for _, d in ACCEPTED], ids=[n for n, _ in ACCEPTED])
def test_check_document_accepts(document: dict[str, Any]) -> None:
    before = copy.deepcopy(document)
    check_document(document)
    assert document == before


def test_check_document_accepts_the_vectors() -> None:
    vector = fep_vector()
    for key in ("unsigned_document", "signed_document", "actor"):
        check_document(vector[key])
    examples = mastodon_vector()
    check_document(examples["actor_public_key_example"])
    check_document(examples["poll_question_example"])


def test_expand_iri_reads_the_top_level_context() -> None:
    actor = fep_vector()["actor"]
    assert expand_iri(actor, "inbox") == "http://www.w3.org/ns/ldp#inbox"
    assert expand_iri(actor, "Multikey") == SEC + "Multikey"
    assert expand_iri(actor, "type") == "@type"
    mastodon = {"@context": MASTODON_ACTOR_CONTEXT}
    assert expand_iri(mastodon, "featured") == "http://joinmastodon.org/ns#featured"
    assert expand_iri(mastodon, "publicKeyPem") == SEC + "publicKeyPem"


# --- the network switched off -----------------------------------------------------------------


@pytest.fixture
def network_off(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way out of the process raises AssertionError and is recorded."""
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def attempt(*args: Any, **kwargs: Any) -> Any:
            where = [a.full_url if isinstance(a, urllib.request.Request) else a for a in args]
            attempts.append(f"{name} {where!r}")
            raise AssertionError(f"network attempt: {name} {where!r}")

        return attempt

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    # rdflib imported urlopen by name, so the name it holds is patched too.
    monkeypatch.setattr(rdflib._networking, "urlopen", refuse("rdflib urlopen"))
    return attempts


def test_the_fixture_catches_a_socket(network_off: list[str]) -> None:
    with pytest.raises(AssertionError, match="network attempt"):
        socket.create_connection(("127.0.0.1", 9))
    with pytest.raises(AssertionError, match="network attempt"):
        socket.socket().connect(("127.0.0.1", 9))
    assert len(network_off) == 2


def test_without_our_guard_rdflib_would_fetch_the_context(network_off: list[str]) -> None:
    document = {"@context": "https://unknown.example/ctx", "id": "https://a.example/1"}
    with pytest.raises(AssertionError, match="network attempt"):
        rdflib.Graph().parse(data=json.dumps(document), format="json-ld")
    assert network_off and "unknown.example" in network_off[0]


def test_without_our_guard_rdflib_would_fetch_even_as2(network_off: list[str]) -> None:
    with pytest.raises(AssertionError, match="network attempt"):
        rdflib.Graph().parse(data=json.dumps({"@context": AS2, "type": "Note"}), format="json-ld")
    assert "www.w3.org" in network_off[0]


def note(ref: str) -> URIRef:
    return URIRef(AS + ref)


def test_to_graph_expands_a_create_note_offline(network_off: list[str]) -> None:
    actor = "https://a.example/users/ana"
    activity: dict[str, Any] = {
        "@context": [AS2, {"toot": "http://joinmastodon.org/ns#", "Emoji": "toot:Emoji"}],
        "id": "https://a.example/activities/1",
        "type": "Create",
        "actor": actor,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "cc": actor + "/followers",
        "object": {
            "id": "https://a.example/notes/1",
            "type": "Note",
            "attributedTo": actor,
            "inReplyTo": "https://b.example/notes/9",
            "contentMap": {"ca": "<p>Bon dia</p>", "es": "<p>Buenos días</p>"},
            "published": "2026-03-01T10:00:00Z",
            "tag": [{"type": "Emoji", "name": ":blob:"}],
        },
    }
    graph = to_graph(activity)
    create, obj = URIRef(activity["id"]), URIRef("https://a.example/notes/1")
    assert (create, RDF_TYPE, note("Create")) in graph
    assert (create, note("actor"), URIRef(actor)) in graph
    assert (create, note("to"), note("Public")) in graph
    assert (create, note("cc"), URIRef(actor + "/followers")) in graph
    assert (create, note("object"), obj) in graph
    assert (obj, RDF_TYPE, note("Note")) in graph
    assert (obj, note("inReplyTo"), URIRef("https://b.example/notes/9")) in graph
    assert (obj, note("content"), Literal("<p>Bon dia</p>", lang="ca")) in graph
    published = Literal("2026-03-01T10:00:00Z", datatype=URIRef(XSD + "dateTime"))
    assert (obj, note("published"), published) in graph
    assert (None, RDF_TYPE, URIRef("http://joinmastodon.org/ns#Emoji")) in graph
    assert network_off == []


def test_to_graph_expands_a_person_with_both_key_kinds_offline(network_off: list[str]) -> None:
    actor_id = "https://a.example/users/ana"
    actor = {
        "@context": [AS2, SEC_V1, DID_V1, MULTIKEY_V1, DI_V2],
        "id": actor_id,
        "type": "Person",
        "preferredUsername": "ana",
        "inbox": actor_id + "/inbox",
        "endpoints": {"sharedInbox": "https://a.example/inbox"},
        "publicKey": {
            "id": actor_id + "#main-key",
            "owner": actor_id,
            "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----",
        },
        "assertionMethod": [
            {
                "id": actor_id + "#ed25519-key",
                "type": "Multikey",
                "controller": actor_id,
                "publicKeyMultibase": "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
            }
        ],
    }
    graph = to_graph(actor)
    ana, main_key, ed_key = (
        URIRef(actor_id),
        URIRef(actor_id + "#main-key"),
        URIRef(actor_id + "#ed25519-key"),
    )
    assert (ana, RDF_TYPE, note("Person")) in graph
    assert (ana, URIRef("http://www.w3.org/ns/ldp#inbox"), URIRef(actor_id + "/inbox")) in graph
    assert (ana, note("preferredUsername"), Literal("ana")) in graph
    assert (None, note("sharedInbox"), URIRef("https://a.example/inbox")) in graph
    assert (ana, URIRef(SEC + "publicKey"), main_key) in graph
    assert (main_key, URIRef(SEC + "owner"), ana) in graph
    assert (main_key, URIRef(SEC + "publicKeyPem"), None) in graph
    assert (ana, URIRef(SEC + "assertionMethod"), ed_key) in graph
    assert (ed_key, RDF_TYPE, URIRef(SEC + "Multikey")) in graph
    assert (ed_key, URIRef(SEC + "controller"), ana) in graph
    multibase = Literal(
        "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2", datatype=URIRef(SEC + "multibase")
    )
    assert (ed_key, URIRef(SEC + "publicKeyMultibase"), multibase) in graph
    assert network_off == []


def test_fep_8b32_actor_context_leaves_assertion_method_undefined(network_off: list[str]) -> None:
    """AS2 + data-integrity/v2 + multikey/v1 never define assertionMethod at the top level."""
    actor = fep_vector()["actor"]
    graph = to_graph(actor)
    alice = URIRef(actor["id"])
    assert (alice, URIRef("http://www.w3.org/ns/ldp#inbox"), URIRef(actor["inbox"])) in graph
    assert (alice, RDF_TYPE, note("Person")) in graph
    assert (alice, URIRef(SEC + "assertionMethod"), None) not in graph
    # Adding did/v1 (or cid/v1) is what makes the key reachable.
    for extra in (DID_V1, CID_V1):
        fixed = {**actor, "@context": [*actor["@context"], extra]}
        key = URIRef("https://server.example/users/alice#ed25519-key")
        assert (alice, URIRef(SEC + "assertionMethod"), key) in to_graph(fixed)
    assert network_off == []


def test_to_graph_expands_the_fep_8b32_signed_document(network_off: list[str]) -> None:
    signed = fep_vector()["signed_document"]
    graph = to_graph(signed)
    create = URIRef(signed["id"])
    assert (create, RDF_TYPE, note("Create")) in graph
    assert (URIRef("https://server.example/objects/1"), RDF_TYPE, note("Note")) in graph
    # data-integrity/v2 makes proof a graph container; rdflib 7.6 points proof at a blank
    # node standing for that graph, and the proof's own statements are in the merged graph.
    names = list(graph.objects(create, URIRef(SEC + "proof")))
    assert len(names) == 1 and isinstance(names[0], rdflib.BNode)
    proofs = list(graph.subjects(RDF_TYPE, URIRef(SEC + "DataIntegrityProof")))
    assert len(proofs) == 1
    proof = proofs[0]
    suite = Literal("eddsa-jcs-2022", datatype=URIRef(SEC + "cryptosuiteString"))
    assert (proof, URIRef(SEC + "cryptosuite"), suite) in graph
    assert (proof, URIRef(SEC + "proofPurpose"), URIRef(SEC + "assertionMethod")) in graph
    method = URIRef("https://server.example/users/alice#ed25519-key")
    assert (proof, URIRef(SEC + "verificationMethod"), method) in graph
    assert (None, note("latitude"), Literal("25.273962", datatype=URIRef(XSD + "float"))) in graph
    assert network_off == []


@pytest.mark.parametrize("url", sorted(KNOWN_CONTEXTS))
def test_every_bundled_context_converts_offline(url: str, network_off: list[str]) -> None:
    graph = to_graph(
        {
            "@context": [AS2, url] if url != IDENTITY_V1 else [url, AS2],
            "id": "https://a.example/n",
            "type": "Note",
        }
    )
    assert (URIRef("https://a.example/n"), RDF_TYPE, note("Note")) in graph
    assert network_off == []


def test_lemmy_context_names_security_v1_and_still_stays_offline(network_off: list[str]) -> None:
    document: dict[str, Any] = {
        "@context": [LEMMY, AS2],
        "id": "https://l.example/post/1",
        "type": "Page",
        "stickied": True,
        "attributedTo": "https://l.example/u/ana",
        "publicKey": {"id": "https://l.example/u/ana#main-key", "publicKeyPem": "pem"},
    }
    graph = to_graph(document)
    page = URIRef(document["id"])
    assert (page, URIRef("https://join-lemmy.org/ns#stickied"), Literal(True)) in graph
    assert (page, URIRef(SEC + "publicKey"), URIRef("https://l.example/u/ana#main-key")) in graph
    assert network_off == []


def test_to_graph_serves_extra_contexts_from_memory(network_off: list[str]) -> None:
    url = "https://barri.example/ns/v1"
    proposal = "https://a.example/p/1"
    document = {"@context": [AS2, url], "id": proposal, "type": ["Page", "Proposal"]}
    graph = to_graph(document, extra_contexts={url: {"@context": BARRI_INLINE}})
    assert (URIRef(proposal), RDF_TYPE, URIRef("https://w3id.org/barri/ns#Proposal")) in graph
    assert (URIRef(proposal), RDF_TYPE, note("Page")) in graph
    assert network_off == []


def test_to_graph_leaves_the_input_alone(network_off: list[str]) -> None:
    signed = fep_vector()["signed_document"]
    before = copy.deepcopy(signed)
    to_graph(signed)
    assert signed == before


@pytest.mark.parametrize(
    "document",
    [
        {"@context": "https://unknown.example/ctx", "id": "https://a.example/1", "type": "Note"},
        {"@context": [AS2, "https://unknown.example/ctx"], "type": "Note"},
        {"@context": AS2, "object": {"@context": "https://unknown.example/ctx"}},
        {"@context": [AS2, {"@import": "https://unknown.example/ctx"}]},
    ],
)
def test_unknown_contexts_are_refused_without_a_connection(
    document: dict[str, Any], network_off: list[str]
) -> None:
    with pytest.raises(JsonLdError) as info:
        to_graph(document)
    assert info.value.reason in (JsonLdFailure.UNKNOWN_CONTEXT, JsonLdFailure.FORBIDDEN_KEYWORD)
    assert (
        "unknown.example" in str(info.value) or info.value.reason is JsonLdFailure.FORBIDDEN_KEYWORD
    )
    assert network_off == []


def test_to_graph_checks_first(network_off: list[str]) -> None:
    with pytest.raises(JsonLdError) as info:
        to_graph({"@context": [AS2, {"actor": "https://evil.example/ns#x"}], "actor": "x"})
    assert info.value.reason is JsonLdFailure.TERM_REDEFINED
    with pytest.raises(JsonLdError) as info:
        to_graph({"@context": AS2, "name": {"@value": "x", "@language": 5}})
    assert info.value.reason is JsonLdFailure.MALFORMED
    assert network_off == []


def test_bundled_files_live_where_the_package_says() -> None:
    assert Path(CONTEXTS_DIR).is_dir()
    assert all((CONTEXTS_DIR / name).is_file() for name in KNOWN_CONTEXTS.values())


# --- a caller's memo remembers checked contexts, and only what is safe to remember -----------

INLINE_SENSITIVE = [AS2, {"sensitive": "https://evil.example/s", "barri": "https://w3id.org/x#"}]


def test_a_remembered_context_still_refuses_and_checks_nested_ones() -> None:
    memo: EqualMemo[Any] = EqualMemo()
    good = {"@context": INLINE_SENSITIVE, "type": "Note", "content": "hola"}
    check_document(good, memo=memo)
    assert len(memo) == 1
    check_document(copy.deepcopy(good), memo=memo)  # the same context again: the same answer
    assert len(memo) == 1
    nested = {**good, "object": {"@context": {"name": "https://evil.example/name"}, "x": 1}}
    with pytest.raises(JsonLdError) as caught:
        check_document(nested, memo=memo)
    assert caught.value.reason is JsonLdFailure.TERM_REDEFINED
    bad = {"@context": [AS2, {"actor": "https://evil.example/actor"}], "type": "Like"}
    for _ in range(2):  # a refusal is not remembered as a success
        with pytest.raises(JsonLdError) as caught:
            check_document(bad, memo=memo)
        assert caught.value.reason is JsonLdFailure.TERM_REDEFINED


def test_other_rules_are_not_answered_from_what_the_default_ones_remembered() -> None:
    memo: EqualMemo[Any] = EqualMemo()
    document = {"@context": INLINE_SENSITIVE, "type": "Note"}
    check_document(document, memo=memo)
    with pytest.raises(JsonLdError) as caught:
        check_document(document, protected_terms=PROTECTED_TERMS | {"sensitive"}, memo=memo)
    assert caught.value.reason is JsonLdFailure.TERM_REDEFINED
    lemmy = {"@context": [AS2, "https://example.org/ctx"], "type": "Note"}
    with pytest.raises(JsonLdError):
        check_document(lemmy, memo=memo)
    extra = {"https://example.org/ctx": {"@context": {}}}
    check_document(lemmy, extra_contexts=extra, memo=memo)
    with pytest.raises(JsonLdError):
        check_document(lemmy, memo=memo)  # what the extra context allowed is not remembered


def test_a_nested_context_is_remembered_under_the_contexts_around_it() -> None:
    memo: EqualMemo[Any] = EqualMemo()
    nested = {"@context": {"foo": "https://b.example/foo"}, "foo": 1}
    plain = {"@context": [AS2], "type": "Note", "object": nested}
    check_document(plain, memo=memo)
    check_document(plain, memo=memo)
    assert len(memo) == 2  # the top-level path, and the nested one under it
    # The same nested context, where the outer one gave "foo" another meaning: refused.
    redefined = {"@context": [AS2, {"foo": "https://a.example/foo"}], "object": nested}
    with pytest.raises(JsonLdError) as caught:
        check_document(redefined, memo=memo)
    assert caught.value.reason is JsonLdFailure.TERM_REDEFINED
