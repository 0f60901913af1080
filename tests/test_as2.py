"""activitypub.as2: one reader for every compacted shape AS2 §2 allows."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest

from activitypub import as2
from activitypub.as2 import PUBLIC, As2Error
from tests.conftest import VECTORS

ANA = "https://a.example/users/ana"
BOB = "https://b.example/users/bob"
NOTE = "https://a.example/notes/1"


def as_id(ref: str) -> Any:
    return ref


def as_object(ref: str) -> Any:
    return {"id": ref, "type": "Person"}


def as_jsonld_object(ref: str) -> Any:
    return {"@id": ref, "@type": "Person"}


def as_value(items: list[Any]) -> Any:
    return items[0] if len(items) == 1 else items


def as_list(items: list[Any]) -> Any:
    return items


REFS = [as_id, as_object, as_jsonld_object]
CONTAINERS = [as_value, as_list]
SHAPES = [(r, c) for r in REFS for c in CONTAINERS]
SHAPE_IDS = [f"{r.__name__}-{c.__name__}" for r, c in SHAPES]


def shaped(ref: Callable[[str], Any], container: Callable[[list[Any]], Any], *targets: str) -> Any:
    return container([ref(t) for t in targets])


# --- values and first ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({}, []),
        ({"to": None}, []),
        ({"to": []}, []),
        ({"to": ANA}, [ANA]),
        ({"to": [ANA]}, [ANA]),
        ({"to": [ANA, BOB]}, [ANA, BOB]),
        ({"to": [ANA, None, BOB]}, [ANA, BOB]),
        ({"to": {"id": ANA}}, [{"id": ANA}]),
        ({"to": 0}, [0]),
        ({"to": False}, [False]),
    ],
)
def test_values_normalises_absent_value_and_list(doc: dict[str, Any], expected: list[Any]) -> None:
    assert as2.values(doc, "to") == expected
    assert as2.first(doc, "to") == (expected[0] if expected else None)


def test_values_returns_a_new_list() -> None:
    doc = {"to": [ANA]}
    as2.values(doc, "to").append(BOB)
    assert doc == {"to": [ANA]}


# --- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ANA, ANA),
        ("", None),
        ({"id": ANA, "type": "Person"}, ANA),
        ({"@id": ANA}, ANA),
        ({"id": ANA, "@id": BOB}, ANA),
        ({"type": "Link", "href": ANA}, None),
        ({"id": 5}, None),
        ({"id": ""}, None),
        (5, None),
        (None, None),
        ([ANA], None),
    ],
)
def test_id_of(value: Any, expected: str | None) -> None:
    assert as2.id_of(value) == expected


@pytest.mark.parametrize(("ref", "container"), SHAPES, ids=SHAPE_IDS)
def test_ids_read_every_shape_alike(
    ref: Callable[[str], Any], container: Callable[[list[Any]], Any]
) -> None:
    single = {"actor": shaped(ref, container, ANA)}
    assert as2.ids(single, "actor") == [ANA]
    assert as2.first_id(single, "actor") == ANA
    double = {"cc": shaped(ref, as_list, ANA, BOB)}
    assert as2.ids(double, "cc") == [ANA, BOB]
    assert as2.first_id(double, "cc") == ANA


def test_ids_skip_values_without_an_id() -> None:
    doc = {"tag": [{"type": "Hashtag", "name": "#barri"}, {"type": "Mention", "id": BOB}, 7]}
    assert as2.ids(doc, "tag") == [BOB]
    assert as2.first_id(doc, "tag") == BOB
    assert as2.first_id({"tag": [{"type": "Hashtag"}]}, "tag") is None
    assert as2.first_id({}, "tag") is None


def test_embedded_only_for_objects() -> None:
    note = {"id": NOTE, "type": "Note", "content": "hola"}
    assert as2.embedded({"object": note}, "object") == note
    assert as2.embedded({"object": [note, NOTE]}, "object") == note
    assert as2.embedded({"object": NOTE}, "object") is None
    assert as2.embedded({"object": [NOTE, note]}, "object") is None
    assert as2.embedded({}, "object") is None
    # Both shapes name the same object.
    assert as2.first_id({"object": note}, "object") == as2.first_id({"object": NOTE}, "object")


# --- types ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"type": "Note"}, ["Note"]),
        ({"type": ["Page", "Proposal"]}, ["Page", "Proposal"]),
        ({"@type": "Note"}, ["Note"]),
        ({"@type": ["Page", "Proposal"]}, ["Page", "Proposal"]),
        ({"type": ["Note", 5, None]}, ["Note"]),
        ({}, []),
        ({"type": None}, []),
    ],
)
def test_types(doc: dict[str, Any], expected: list[str]) -> None:
    assert as2.types(doc) == expected


def test_has_type() -> None:
    proposal = {"type": ["Page", "Proposal"]}
    assert as2.has_type(proposal, "Proposal")
    assert as2.has_type(proposal, "Note", "Page")
    assert not as2.has_type(proposal, "Note", "Article")
    assert not as2.has_type(proposal)
    assert as2.has_type({"type": "as:Note"}, "Note")
    assert as2.has_type({"type": "https://www.w3.org/ns/activitystreams#Note"}, "Note")
    assert not as2.has_type({"type": "https://evil.example/ns#Note"}, "Note")
    assert as2.has_type({"@type": "Like"}, "Like")


# --- text ---------------------------------------------------------------------------------------


def test_text_prefers_plain_value_without_a_language() -> None:
    doc = {"content": "<p>hola</p>", "contentMap": {"es": "<p>hola</p>", "ca": "<p>bon dia</p>"}}
    assert as2.text(doc, "content") == "<p>hola</p>"


def test_text_in_a_requested_language() -> None:
    doc = {"content": "<p>hola</p>", "contentMap": {"es": "<p>hola</p>", "ca-ES": "<p>bon dia</p>"}}
    assert as2.text(doc, "content", "ca-ES") == "<p>bon dia</p>"
    assert as2.text(doc, "content", "CA-es") == "<p>bon dia</p>"
    # Same primary language counts.
    assert as2.text(doc, "content", "ca") == "<p>bon dia</p>"
    # A language the map lacks falls back to the plain value.
    assert as2.text(doc, "content", "en") == "<p>hola</p>"


def test_text_falls_back_to_any_language() -> None:
    doc = {"nameMap": {"ca": "Pressupostos", "es": "Presupuestos"}}
    assert as2.text(doc, "name") == "Pressupostos"
    assert as2.text(doc, "name", "es") == "Presupuestos"
    assert as2.text(doc, "name", "en") == "Pressupostos"
    assert as2.text({"nameMap": {"ca": 5}}, "name") is None
    assert as2.text({}, "name") is None
    assert as2.text({"name": 5, "nameMap": "x"}, "name") is None
    assert as2.text({"summary": ["Resum"]}, "summary") == "Resum"


def test_language_map_merges_plain_and_map() -> None:
    doc = {"name": "Pressupostos", "nameMap": {"ca": "Pressupostos", "es": "Presupuestos"}}
    assert as2.language_map(doc, "name") == {
        "ca": "Pressupostos",
        "es": "Presupuestos",
        "und": "Pressupostos",
    }
    assert as2.language_map({"name": "Barri"}, "name") == {"und": "Barri"}
    assert as2.language_map({"nameMap": {"ca": "Barri", "es": 3}}, "name") == {"ca": "Barri"}
    # An explicit "und" in the map is not overwritten by the plain value.
    assert as2.language_map({"name": "a", "nameMap": {"und": "b"}}, "name") == {"und": "b"}
    assert as2.language_map({}, "name") == {}


# --- addressing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("address", [PUBLIC, "as:Public", "Public"], ids=["iri", "compact", "term"])
def test_is_public_in_its_three_spellings(address: str) -> None:
    assert as2.is_public(address)
    assert as2.is_addressed_publicly({"cc": [BOB, address]})


@pytest.mark.parametrize(
    "address",
    [
        "https://www.w3.org/ns/activitystreams#public",
        "https://www.w3.org/ns/activitystreams",
        "public",
        "as:public",
        ANA + "/followers",
        "",
    ],
)
def test_other_addresses_are_not_public(address: str) -> None:
    assert not as2.is_public(address)
    assert not as2.is_addressed_publicly({"to": address})


@pytest.mark.parametrize(("ref", "container"), SHAPES, ids=SHAPE_IDS)
def test_addressees_collects_all_five_fields_in_any_shape(
    ref: Callable[[str], Any], container: Callable[[list[Any]], Any]
) -> None:
    group = "https://a.example/groups/sants"
    doc = {
        "to": shaped(ref, container, ANA),
        "cc": shaped(ref, container, BOB),
        "bto": shaped(ref, container, "https://c.example/u/cai"),
        "bcc": shaped(ref, container, "https://d.example/u/dani"),
        "audience": shaped(ref, container, group),
        "actor": "https://e.example/u/not-an-addressee",
    }
    assert as2.addressees(doc) == {
        ANA,
        BOB,
        "https://c.example/u/cai",
        "https://d.example/u/dani",
        group,
    }
    assert not as2.is_addressed_publicly(doc)
    assert as2.addressees({"to": [ANA, ANA], "cc": ANA}) == {ANA}
    assert as2.addressees({}) == set()


# --- typed getters ------------------------------------------------------------------------------


def error_of(call: Callable[[], Any]) -> As2Error:
    with pytest.raises(As2Error) as info:
        call()
    assert isinstance(info.value, ValueError)
    return info.value


def test_require_str() -> None:
    assert as2.require_str({"name": "Barri"}, "name") == "Barri"
    assert as2.require_str({"name": ["Barri"]}, "name") == "Barri"
    err = error_of(lambda: as2.require_str({}, "name"))
    assert str(err) == "name: is required and must be a non-empty string"
    assert (err.field, err.rule) == ("name", "is required and must be a non-empty string")
    err = error_of(lambda: as2.require_str({"name": ""}, "name"))
    assert str(err) == "name: is required and must be a non-empty string (got '')"
    err = error_of(lambda: as2.require_str({"name": 5}, "name"))
    assert str(err) == "name: must be a string (got 5)"
    err = error_of(lambda: as2.require_str({"name": ["a", "b"]}, "name"))
    assert str(err) == "name: must hold a single value, not a list (got ['a', 'b'])"
    assert as2.optional_str({}, "name") is None


def test_long_values_are_shortened_in_messages() -> None:
    err = error_of(lambda: as2.require_str({"name": 10**200}, "name"))
    assert str(err).endswith("...)") and len(str(err)) < 120


@pytest.mark.parametrize(("ref", "container"), SHAPES, ids=SHAPE_IDS)
def test_require_id_accepts_every_shape(
    ref: Callable[[str], Any], container: Callable[[list[Any]], Any]
) -> None:
    doc = {"actor": shaped(ref, container, ANA), "to": shaped(ref, container, BOB)}
    assert as2.require_id(doc, "actor") == ANA
    assert as2.optional_id(doc, "actor") == ANA
    assert as2.require_ids(doc, "to") == [BOB]


@pytest.mark.parametrize(
    "iri",
    ["https://a.example/x", "http://a.example", "https://a.example:8443/u?q#f", "http://:80/x",
     "https:///x", "https://?q", "https://#f", "http://\t/x", "https://\na.example/x",
     "https://[::1]:8443/x", "http://ä.example/x", "HTTP://a.example/x", "urn:uuid:1", "x:"],
)  # fmt: skip
def test_absolute_ids_agree_with_a_full_rfc3986_parse(iri: str) -> None:
    """The shortcut for plain http(s) ids decides as urllib's parse of the whole IRI does."""
    parts = urlsplit(iri)
    absolute = bool(parts.scheme) and (parts.scheme not in ("http", "https") or bool(parts.netloc))
    try:
        assert as2.require_id({"id": iri}, "id") == iri
        accepted = True
    except As2Error:
        accepted = False
    assert accepted is absolute


def test_require_id_errors() -> None:
    err = error_of(lambda: as2.require_id({}, "actor"))
    assert str(err) == "actor: is required: an id or an object with an id"
    err = error_of(lambda: as2.require_id({"actor": {"type": "Person"}}, "actor"))
    assert err.rule == "must be an id (a URI string) or an object with an id"
    err = error_of(lambda: as2.require_id({"actor": "/users/ana"}, "actor"))
    assert str(err) == "actor: must be an absolute URI (got '/users/ana')"
    err = error_of(lambda: as2.require_id({"actor": "https:///x"}, "actor"))
    assert err.rule == "must be an absolute URI"
    err = error_of(lambda: as2.require_id({"actor": [ANA, BOB]}, "actor"))
    assert err.rule == "must hold a single value, not a list"
    err = error_of(lambda: as2.require_ids({"to": []}, "to"))
    assert str(err) == "to: is required: at least one id"
    err = error_of(lambda: as2.require_ids({"to": [ANA, 5]}, "to"))
    assert (err.field, str(err)) == (
        "to",
        "to: must be an id (a URI string) or an object with an id (got 5)",
    )
    assert as2.require_id({"actor": "did:key:z6Mk"}, "actor") == "did:key:z6Mk"
    assert as2.optional_id({}, "actor") is None


def test_require_object() -> None:
    note = {"id": NOTE, "type": "Note"}
    assert as2.require_object({"object": note}, "object") == note
    assert as2.require_object({"object": [note]}, "object") == note
    err = error_of(lambda: as2.require_object({"object": NOTE}, "object"))
    assert str(err) == f"object: is required as an embedded object (got '{NOTE}')"
    err = error_of(lambda: as2.require_object({}, "object"))
    assert str(err) == "object: is required as an embedded object"


def test_integers_and_booleans() -> None:
    assert as2.require_int({"totalItems": 3}, "totalItems", minimum=0) == 3
    assert as2.optional_int({}, "totalItems") is None
    err = error_of(lambda: as2.require_int({"totalItems": -1}, "totalItems", minimum=0))
    assert str(err) == "totalItems: must be at least 0 (got -1)"
    err = error_of(lambda: as2.require_int({"totalItems": True}, "totalItems"))
    assert str(err) == "totalItems: must be an integer (got True)"
    err = error_of(lambda: as2.require_int({"totalItems": "3"}, "totalItems"))
    assert err.rule == "must be an integer"
    err = error_of(lambda: as2.require_int({}, "totalItems"))
    assert str(err) == "totalItems: is required and must be an integer"
    doc = {"manuallyApprovesFollowers": True}
    assert as2.optional_bool(doc, "manuallyApprovesFollowers") is True
    assert as2.optional_bool({}, "manuallyApprovesFollowers") is None
    err = error_of(
        lambda: as2.optional_bool({"manuallyApprovesFollowers": "yes"}, "manuallyApprovesFollowers")
    )
    assert str(err) == "manuallyApprovesFollowers: must be true or false (got 'yes')"


def test_datetimes() -> None:
    expected = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert as2.require_datetime({"published": "2026-03-01T10:00:00Z"}, "published") == expected
    offset = as2.require_datetime({"published": "2026-03-01T12:00:00+02:00"}, "published")
    assert offset == expected and offset.utcoffset() == timedelta(hours=2)
    assert offset.tzinfo == timezone(timedelta(hours=2))
    assert as2.optional_datetime({}, "published") is None
    err = error_of(lambda: as2.require_datetime({"published": "2026-03-01T10:00:00"}, "published"))
    assert str(err) == (
        "published: must be a date-time with a timezone (e.g. Z) (got '2026-03-01T10:00:00')"
    )
    err = error_of(lambda: as2.require_datetime({"published": "yesterday"}, "published"))
    assert str(err) == "published: must be an ISO 8601 date-time (got 'yesterday')"
    err = error_of(lambda: as2.require_datetime({}, "published"))
    assert err.rule == "is required: an ISO 8601 date-time with a timezone"


def test_require_type() -> None:
    assert as2.require_type({"type": ["Page", "Proposal"]}, "Proposal", "Debate") == "Proposal"
    err = error_of(lambda: as2.require_type({"type": "Note"}, "Proposal", "Debate"))
    assert str(err) == "type: must include one of Proposal, Debate (got 'Note')"


# --- real documents -----------------------------------------------------------------------------


def test_reads_the_fep_8b32_vector() -> None:
    vector = json.loads((VECTORS / "fep" / "fep-8b32-vector.json").read_text())
    signed = vector["signed_document"]
    assert as2.types(signed) == ["Create"]
    assert as2.first_id(signed, "actor") == "https://server.example/users/alice"
    note = as2.embedded(signed, "object")
    assert note is not None and as2.has_type(note, "Note")
    assert as2.first_id(signed, "object") == "https://server.example/objects/1"
    assert as2.text(note, "content") == "Hello world"
    assert as2.first_id(note, "attributedTo") == as2.first_id(signed, "actor")
    actor = vector["actor"]
    keys = as2.values(actor, "assertionMethod")
    assert [as2.require_str(k, "publicKeyMultibase") for k in keys] == [
        vector["public_key_multibase"]
    ]
    assert as2.require_id(actor, "inbox") == "https://server.example/users/alice/inbox"


def test_reads_the_mastodon_examples() -> None:
    examples = json.loads((VECTORS / "mastodon" / "mastodon-spec-examples.json").read_text())
    actor = examples["actor_public_key_example"]
    key = as2.require_object(actor, "publicKey")
    assert (
        as2.require_id(key, "owner") == as2.id_of(actor) == "https://mastodon.social/users/Gargron"
    )
    assert as2.require_str(key, "publicKeyPem").startswith("-----BEGIN PUBLIC KEY-----")
    poll = examples["poll_question_example"]
    assert as2.has_type(poll, "Question")
    options = as2.values(poll, "anyOf")
    assert options and all(as2.text(o, "name") for o in options)
