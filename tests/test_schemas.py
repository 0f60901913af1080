"""JSON Schemas in schemas/json and federation.validation: what passes, what fails, and why."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT7

from activitypub.actors import ActorProfile, actor_document
from activitypub.keys import generate_ed25519, generate_rsa
from federation import validation
from federation.validation import (
    SHAPES,
    ValidationError,
    shape_of,
    validate,
    validate_inbound,
    validator,
)
from schemas import CONTEXTS_DIR, SCHEMAS_DIR

JSON_DIR = SCHEMAS_DIR / "json"
EXAMPLES_DIR = SCHEMAS_DIR / "examples"
EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*.json")) if EXAMPLES_DIR.is_dir() else []

G = "https://gracia.barri.example"
CITY = "https://city.barri.example"
OTHER = "https://sants.barri.example"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
ANA = f"{G}/users/ana"
GROUP = f"{G}/groups/association"
AGGREGATOR = f"{CITY}/actor"
PROCESS = f"{G}/processes/0190a1b2-0000-7000-8000-000000000001"
PROPOSAL = f"{G}/proposals/0190a1b2-0000-7000-8000-000000000002"
DEBATE = f"{G}/debates/0190a1b2-0000-7000-8000-000000000003"
COMMENT = f"{G}/comments/0190a1b2-0000-7000-8000-000000000004"
T0 = "2026-03-01T10:00:00Z"
BARRI = json.loads((CONTEXTS_DIR / "barri-v1.jsonld").read_text("utf-8"))["@context"]
CONTEXT = [
    "https://www.w3.org/ns/activitystreams",
    "https://w3id.org/security/data-integrity/v2",
    BARRI,
]
GRACIA = {
    "type": "Territory",
    "territoryKind": "neighbourhood",
    "territoryCode": "31",
    "districtCode": "06",
    "name": "la Vila de Gràcia",
}
BARCELONA = {"type": "Territory", "territoryKind": "city", "territoryCode": "08019"}


# --- representative valid documents, from the examples in notes/vocab-spec.md -------------------


@pytest.fixture(scope="module")
def actors() -> dict[str, dict[str, Any]]:
    rsa, ed = generate_rsa(), generate_ed25519()
    made = {}
    for kind, actor_id, name, extra in (
        ("person", ANA, "ana", {"verifiedResidentOf": GRACIA}),
        ("group", GROUP, "association", {"territory": GRACIA}),
        ("application", f"{G}/actor", "gracia.barri.example", {}),
        ("service", AGGREGATOR, "city", {"territory": BARCELONA}),
    ):
        origin = actor_id.split("/", 3)[:3]
        base = "/".join(origin)
        doc = actor_document(
            ActorProfile(
                id=actor_id,
                type=kind.capitalize(),
                preferred_username=name,
                name=name,
                summary=None,
                inbox=f"{actor_id}/inbox",
                outbox=f"{actor_id}/outbox",
                followers=f"{actor_id}/followers",
                following=f"{actor_id}/following",
                shared_inbox=f"{base}/inbox",
                url=None,
                rsa_public_key=rsa.public_key(),
                ed25519_public_key=ed.public_key(),
                extra=extra,
            )
        )
        doc["@context"].append(BARRI)
        made[f"actor-{kind}"] = doc
    return made


def phase(name: str, start: str, end: str, **allows: bool) -> dict[str, Any]:
    flags = {f"allows{k}": allows.get(k.lower(), False) for k in ("Proposals", "Supports")}
    flags |= {f"allows{k}": allows.get(k.lower(), False) for k in ("Comments", "Debates")}
    return {"type": "Phase", "name": name, "startTime": start, "endTime": end, **flags}


def process() -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "id": PROCESS,
        "type": ["Page", "ParticipatoryProcess"],
        "attributedTo": GROUP,
        "audience": GROUP,
        "name": "Pressupostos participatius 2027",
        "nameMap": {"ca": "Pressupostos participatius 2027", "es": "Presupuestos participativos"},
        "summary": "Decidim on invertim.",
        "url": f"{G}/p/pressupostos-2027",
        "published": T0,
        "phases": [
            phase("Propostes", T0, "2026-04-01T00:00:00Z", proposals=True, comments=True),
            phase("Suports", "2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z", supports=True),
        ],
        "supportRules": {
            "type": "SupportRules",
            "supportsPerParticipant": 10,
            "thresholdPerProposal": 0,
            "accumulateBeyondThreshold": False,
            "minimumSupportsPerParticipant": 0,
        },
        "eligibleTerritories": [GRACIA],
        "to": [PUBLIC],
        "cc": [f"{GROUP}/followers"],
    }


def proposal() -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "id": PROPOSAL,
        "type": ["Page", "Proposal"],
        "attributedTo": ANA,
        "audience": GROUP,
        "process": PROCESS,
        "name": "Més arbres a la plaça del Sol",
        "content": "<p>Plantem <em>més arbres</em>.</p>",
        "source": {"content": "Plantem *més arbres*.", "mediaType": "text/markdown"},
        "published": T0,
        "url": f"{G}/p/mes-arbres",
        "proposalState": "notAnswered",
        "supportCount": 12,
        "replies": f"{PROPOSAL}/replies",
        "context": f"{PROPOSAL}/context",
        "location": {
            "type": "Place",
            "name": "Plaça del Sol",
            "latitude": 41.40,
            "longitude": 2.157,
        },
        "to": [PUBLIC],
        "cc": [f"{ANA}/followers", GROUP],
    }


def debate() -> dict[str, Any]:
    doc = proposal()
    for key in ("process", "proposalState", "supportCount", "location"):
        del doc[key]
    return doc | {
        "id": DEBATE,
        "type": ["Page", "Debate"],
        "name": "Com fem la festa major?",
        "closedAt": "2026-03-20T18:00:00Z",
        "conclusions": "<p>Més escenaris petits.</p>",
        "conclusionsMap": {"ca": "<p>Més escenaris petits.</p>"},
        "startTime": T0,
        "endTime": "2026-03-20T18:00:00Z",
    }


def comment() -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "id": COMMENT,
        "type": "Note",
        "attributedTo": ANA,
        "inReplyTo": PROPOSAL,
        "context": f"{PROPOSAL}/context",
        "content": "<p>A favor!</p>",
        "source": {"content": "A favor!", "mediaType": "text/markdown"},
        "alignment": "inFavor",
        "depth": 1,
        "published": T0,
        "to": [PUBLIC],
        "cc": [GROUP],
        "audience": GROUP,
    }


def support() -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "id": f"{G}/supports/0190a1b2-0000-7000-8000-000000000005",
        "type": "Like",
        "actor": ANA,
        "object": PROPOSAL,
        "published": "2026-04-02T09:30:00Z",
        "to": [GROUP, AGGREGATOR],
    }


def undo(inner: dict[str, Any], kind: str) -> dict[str, Any]:
    embedded = {k: v for k, v in inner.items() if k != "@context"}
    return {
        "@context": CONTEXT,
        "id": f"{G}/{kind}/0190a1b2-0000-7000-8000-000000000006",
        "type": "Undo",
        "actor": ANA,
        "object": embedded,
        "published": "2026-04-03T09:30:00Z",
        "to": inner["to"],
        **({"cc": inner["cc"]} if "cc" in inner else {}),
    }


def comment_vote() -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "id": f"{G}/votes/0190a1b2-0000-7000-8000-000000000007",
        "type": "Dislike",
        "actor": ANA,
        "object": COMMENT,
        "published": T0,
        "to": [PUBLIC],
        "cc": [GROUP],
        "audience": GROUP,
    }


def official_answer() -> dict[str, Any]:
    answered = {k: v for k, v in proposal().items() if k != "@context"}
    answered |= {
        "proposalState": "accepted",
        "officialAnswer": "<p>L'acceptem.</p>",
        "officialAnswerMap": {"ca": "<p>L'acceptem.</p>", "es": "<p>La aceptamos.</p>"},
        "answeredAt": "2026-05-10T12:00:00Z",
    }
    return {
        "@context": CONTEXT,
        "id": f"{G}/activities/0190a1b2-0000-7000-8000-000000000008",
        "type": "Update",
        "actor": GROUP,
        "object": answered,
        "published": "2026-05-10T12:00:00Z",
        "to": [PUBLIC],
        "cc": [f"{GROUP}/followers"],
    }


def announce() -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "id": f"{G}/activities/0190a1b2-0000-7000-8000-000000000009",
        "type": "Announce",
        "actor": GROUP,
        "object": comment_vote(),
        "published": T0,
        "to": [PUBLIC],
        "cc": [f"{GROUP}/followers"],
        "audience": GROUP,
    }


def tombstone() -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "id": COMMENT,
        "type": "Tombstone",
        "formerType": "Note",
        "deleted": "2026-03-02T10:00:00Z",
    }


def delete() -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "id": f"{G}/activities/0190a1b2-0000-7000-8000-00000000000a",
        "type": "Delete",
        "actor": ANA,
        "object": {k: v for k, v in tombstone().items() if k != "@context"},
        "published": "2026-03-02T10:00:00Z",
        "to": [PUBLIC],
    }


def tally() -> dict[str, Any]:
    def count(kind: str, code: str, n: int) -> dict[str, Any]:
        return {
            "type": "TerritoryCount",
            "territoryKind": kind,
            "territoryCode": code,
            "supports": n,
        }

    return {
        "@context": CONTEXT,
        "id": f"{CITY}/tallies/0190a1b2-0000-7000-8000-00000000000b",
        "type": ["Note", "Tally"],
        "attributedTo": AGGREGATOR,
        "process": PROCESS,
        "asOf": "2026-05-01T00:00:00Z",
        "final": True,
        "content": "<p>42 supports from 40 participants.</p>",
        "inputsCount": 42,
        "inputsDigest": "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
        "participants": 40,
        "results": [
            {
                "type": "ProposalResult",
                "proposal": PROPOSAL,
                "supports": 42,
                "byTerritory": [count("neighbourhood", "31", 30), count("neighbourhood", "32", 12)],
            }
        ],
        "totals": [
            count("city", "08019", 42),
            count("district", "06", 42),
            count("neighbourhood", "31", 30),
        ],
        "published": "2026-05-01T00:00:00Z",
        "to": [PUBLIC],
    }


BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "process": process,
    "proposal": proposal,
    "debate": debate,
    "comment": comment,
    "support": support,
    "undo-support": lambda: undo(support(), "undos"),
    "comment-vote": comment_vote,
    "undo-comment-vote": lambda: undo(comment_vote(), "undos"),
    "official-answer": official_answer,
    "announce": announce,
    "delete": delete,
    "tombstone": tombstone,
    "tally": tally,
}


@pytest.fixture
def documents(actors: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    # Deep copies: the builders share module-level territories that tests mutate.
    return copy.deepcopy({shape: build() for shape, build in BUILDERS.items()} | actors)


def rejected(shape: str, document: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        validate(shape, document)
    assert caught.value.shape == shape
    return caught.value


# --- the schema files themselves -----------------------------------------------------------------


def schema_files() -> list[Path]:
    return sorted(JSON_DIR.glob("*.schema.json"))


def test_one_schema_file_per_shape_plus_defs() -> None:
    names = {p.name.removesuffix(".schema.json") for p in schema_files()}
    assert names == {*SHAPES, "defs"}


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: p.name)
def test_schema_file_is_valid_draft07(path: Path) -> None:
    schema = json.loads(path.read_text("utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"] == validation.SCHEMA_BASE_URI + path.name


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: p.name)
def test_refs_stay_inside_schemas_json(path: Path) -> None:
    text = path.read_text("utf-8")
    refs = [part.split('"')[0] for part in text.split('"$ref": "')[1:]]
    assert refs
    for ref in refs:
        target = ref.split("#")[0]
        assert target == "" or (JSON_DIR / target).is_file(), ref


def test_resolver_refuses_anything_but_our_files() -> None:
    for uri in ("https://evil.example/defs.schema.json", "file:///etc/passwd", "http://x/y.json"):
        with pytest.raises(ValueError, match="refusing"):
            validation._resolve_ref(uri)


def test_validator_is_compiled_once() -> None:
    assert validator("proposal") is validator("proposal")
    assert validator("support") is not validator("proposal")


def test_unknown_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown schema"):
        validator("vote")


def jsonschema_validator(shape: str) -> jsonschema.Draft7Validator:
    resources = [
        (s["$id"], DRAFT7.create_resource(s))
        for s in (json.loads(p.read_text("utf-8")) for p in schema_files())
    ]
    schema = json.loads((JSON_DIR / f"{shape}.schema.json").read_text("utf-8"))
    return jsonschema.Draft7Validator(schema, registry=Registry().with_resources(resources))


# --- valid documents pass ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_representative_document_passes(shape: str, documents: dict[str, Any]) -> None:
    document = documents[shape]
    before = copy.deepcopy(document)
    validate(shape, document)
    assert document == before, "validation must not change the document"
    assert shape_of(document) == shape
    # An independent draft-07 implementation reads the schemas the same way.
    assert list(jsonschema_validator(shape).iter_errors(document)) == []


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_published_example_passes(path: Path) -> None:
    shape = path.stem
    assert shape in SHAPES, f"{path.name} names no shape"
    document = json.loads(path.read_text("utf-8"))
    validate(shape, document)
    assert shape_of(document) == shape
    assert list(jsonschema_validator(shape).iter_errors(document)) == []


PLAIN_CONTEXT = CONTEXT[:2]


@pytest.mark.parametrize("shape", ["support", "undo-support", "comment-vote", "undo-comment-vote"])
def test_supports_and_votes_pass_with_or_without_the_barri_context(
    shape: str, documents: dict[str, Any]
) -> None:
    # Published with AS2 + data-integrity only (no Barri term in them); older versions added the
    # inline Barri object, and those stored documents must still be read.
    for context in (PLAIN_CONTEXT, CONTEXT):
        document = {**documents[shape], "@context": context}
        validate(shape, document)
        assert shape_of(document) == shape
        assert list(jsonschema_validator(shape).iter_errors(document)) == []


# Every shape has a published example; none is awaited.
AWAITING_EXAMPLES: set[str] = set()


def test_every_shape_has_a_published_example() -> None:
    if not EXAMPLE_FILES:
        pytest.skip("schemas/examples/*.json not generated yet")
    missing = set(SHAPES) - {p.stem for p in EXAMPLE_FILES}
    assert missing <= AWAITING_EXAMPLES, f"no example for {sorted(missing)}"


def test_compact_forms_real_peers_send(documents: dict[str, Any]) -> None:
    prop = documents["proposal"] | {"type": ["Proposal", "Page"], "to": PUBLIC, "cc": GROUP}
    prop["attributedTo"] = {"id": ANA, "type": "Person"}
    validate("proposal", prop)
    # A Mastodon reply: summary null, contentMap, embedded replies collection, no alignment.
    reply = {
        "@context": ["https://www.w3.org/ns/activitystreams", {"sensitive": "as:sensitive"}],
        "id": f"{OTHER}/users/bob/statuses/1",
        "type": "Note",
        "summary": None,
        "inReplyTo": COMMENT,
        "published": "2026-03-01T10:00:00.123+01:00",
        "attributedTo": f"{OTHER}/users/bob",
        "to": [PUBLIC],
        "cc": [f"{OTHER}/users/bob/followers"],
        "content": "<p>Hi</p>",
        "contentMap": {"en": "<p>Hi</p>"},
        "replies": {"id": f"{OTHER}/users/bob/statuses/1/replies", "type": "Collection"},
    }
    validate("comment", reply)
    # A Lemmy/Mastodon Like: no addressing, no published; a comment vote, never a support.
    like = {"@context": CONTEXT, "id": f"{OTHER}/likes/1", "type": "Like",
            "actor": f"{OTHER}/u/bob", "object": COMMENT}  # fmt: skip
    assert shape_of(like) == "comment-vote"
    validate("comment-vote", like)


# --- malformed documents fail, naming the field and the rule ------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_missing_context_is_refused(shape: str, documents: dict[str, Any]) -> None:
    document = documents[shape]
    del document["@context"]
    error = rejected(shape, document)
    assert (error.field, error.rule) == ("@context", "required")
    assert str(error) == f"{shape}: @context: is required"


@pytest.mark.parametrize("shape", SHAPES)
def test_missing_id_is_refused(shape: str, documents: dict[str, Any]) -> None:
    document = documents[shape]
    del document["id"]
    error = rejected(shape, document)
    assert (error.field, error.rule) == ("id", "required")
    assert str(error) == f"{shape}: id: is required"


@pytest.mark.parametrize("shape", SHAPES)
def test_wrong_type_is_refused(shape: str, documents: dict[str, Any]) -> None:
    document = documents[shape]
    document["type"] = ["Page", "Article"]
    error = rejected(shape, document)
    assert (error.field, error.rule) == ("type", "anyOf")
    assert "or an array containing it" in str(error)
    assert str(error).startswith(f'{shape}: type: must be "')


@pytest.mark.parametrize("shape", SHAPES)
def test_relative_id_is_refused(shape: str, documents: dict[str, Any]) -> None:
    document = documents[shape]
    document["id"] = "/proposals/1"
    error = rejected(shape, document)
    assert (error.field, error.rule) == ("id", "pattern")
    assert "id: must be an absolute http(s) URL" in str(error)


def test_not_a_json_object_is_refused() -> None:
    error = rejected("support", ["Like"])
    assert (error.field, error.rule) == ("(document)", "type")
    assert "must be an object" in str(error)


DELETE = object()
# fmt: off
MUTATIONS: list[tuple[str, str, Any, str, str, str]] = [
    # shape, JSON path to set, value, expected field, rule, words in the message
    ("proposal", "supportCount", -1, "supportCount", "minimum", "must be at least 0 (got -1)"),
    ("proposal", "supportCount", 1.5, "supportCount", "type", "must be an integer"),
    ("tally", "totals.0.supports", -3, "totals[0].supports", "minimum", "must be at least 0"),
    ("tally", "inputsCount", -1, "inputsCount", "minimum", "must be at least 0"),
    ("tally", "participants", True, "participants", "type", "must be an integer"),
    ("tally", "inputsDigest", "sha-256=:abc=:", "inputsDigest", "pattern", "sha-256=:<base64"),
    ("process", "supportRules.supportsPerParticipant", -1,
     "supportRules.supportsPerParticipant", "minimum", "must be at least 0"),
    ("comment", "alignment", "maybe", "alignment", "enum",
     'must be one of inFavor, against, neutral (got "maybe")'),
    ("proposal", "proposalState", "pending", "proposalState", "enum", "must be one of notAnswered"),
    ("process", "eligibleTerritories.0.territoryKind", "province",
     "eligibleTerritories[0].territoryKind", "enum", "city, district, neighbourhood"),
    ("proposal", "content", "x" * 10_001, "content", "maxLength",
     "must be at most 10000 characters (got 10001)"),
    ("proposal", "name", "x" * 151, "name", "maxLength", "at most 150 characters"),
    ("process", "summary", "x" * 501, "summary", "maxLength", "at most 500 characters"),
    ("proposal", "source.content", "x" * 5001, "source.content", "maxLength", "at most 5000"),
    ("debate", "conclusions", "x" * 5001, "conclusions", "maxLength", "at most 5000"),
    ("debate", "conclusionsMap.es", "x" * 5001, "conclusionsMap.es", "maxLength", "at most 5000"),
    ("process", "nameMap.ca", "x" * 151, "nameMap.ca", "maxLength", "at most 150"),
    ("process", "phases.0.nameMap", {"es": "x" * 151}, "phases[0].nameMap.es", "maxLength", "150"),
    ("comment", "contentMap", {"ca": "x" * 10_001}, "contentMap.ca", "maxLength", "10000"),
    ("official-answer", "object.officialAnswer", "x" * 5001, "object.officialAnswer", "maxLength",
     "at most 5000"),
    ("process", "nameMap", {"not a tag!": "x"}, "nameMap", "propertyNames", "BCP 47"),
    ("process", "phases", [], "phases", "minItems", "must have at least 1 item"),
    ("process", "eligibleTerritories", [], "eligibleTerritories", "minItems", "at least 1 item"),
    ("comment", "depth", 4, "depth", "maximum", "must be at most 3 (got 4)"),
    ("comment", "depth", 0, "depth", "minimum", "must be at least 1 (got 0)"),
    ("proposal", "published", "2026-03-01 10:00:00Z", "published", "pattern",
     'must be an RFC 3339 date-time with a timezone (got "2026-03-01 10:00:00Z")'),
    ("support", "published", "2026-03-01T10:00:00", "published", "pattern", "with a timezone"),
    ("support", "published", "2026-13-01T10:00:00Z", "published", "pattern", "RFC 3339"),
    ("process", "phases.1.endTime", "tomorrow", "phases[1].endTime", "pattern", "RFC 3339"),
    ("tally", "asOf", "2026-05-01T00:00:00+0100", "asOf", "pattern", "RFC 3339"),
    ("support", "object", {"id": PROPOSAL}, "object", "type", "must be a string"),
    ("support", "actor", "ana@gracia.barri.example", "actor", "pattern", "absolute http(s) URL"),
    ("comment", "inReplyTo", {"type": "Note"}, "inReplyTo.id", "required", "is required"),
    ("proposal", "officialAnswer", "<p>Yes</p>", "proposalState", "enum",
     "must be evaluating, accepted or rejected when the proposal has an official answer"),
    ("official-answer", "object.proposalState", "notAnswered", "object.proposalState", "enum",
     'must be evaluating, accepted or rejected when the proposal has an official answer (got "no'),
    ("official-answer", "object.answeredAt", DELETE, "object.answeredAt", "required", "required"),
    ("debate", "conclusions", DELETE, "conclusions", "dependencies",
     "is required when closedAt is present"),
    ("process", "eligibleTerritories.0.territoryKind", "district",
     "eligibleTerritories[0]", "not", "districtCode is only for neighbourhoods"),
    ("process", "phases.0.allowsSupports", "yes", "phases[0].allowsSupports", "type",
     "must be true or false"),
    ("proposal", "to", ["followers"], "to[0]", "anyOf", "URL or the Public collection"),
    ("delete", "object.formerType", "Person", "object.formerType", "enum",
     "Proposal, Debate, Note"),
    ("tombstone", "deleted", "yesterday", "deleted", "pattern", "RFC 3339"),
    ("actor-person", "inbox", "inbox", "inbox", "pattern", "absolute http(s) URL"),
    ("actor-person", "assertionMethod.0.publicKeyMultibase", "u123",
     "assertionMethod[0].publicKeyMultibase", "pattern", "base58btc"),
    ("actor-group", "territory.territoryCode", "", "territory.territoryCode", "minLength",
     "not be empty"),
]
# fmt: on


def put(document: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        document = document[int(part)] if isinstance(document, list) else document[part]
    key = int(last) if isinstance(document, list) else last
    if value is DELETE:
        del document[key]
    else:
        document[key] = value


@pytest.mark.parametrize(
    ("shape", "path", "value", "field", "rule", "words"),
    MUTATIONS,
    ids=[f"{m[0]}:{m[1]}" for m in MUTATIONS],
)
def test_malformed_field_is_named(
    shape: str, path: str, value: Any, field: str, rule: str, words: str, documents: dict[str, Any]
) -> None:
    document = documents[shape]
    put(document, path, value)
    error = rejected(shape, document)
    assert (error.field, error.rule) == (field, rule), str(error)
    assert str(error).startswith(f"{shape}: {field}: ")
    assert words in str(error)
    assert list(jsonschema_validator(shape).iter_errors(document)), "jsonschema must refuse it too"


SPELLINGS = [PUBLIC, "as:Public", "Public"]


@pytest.mark.parametrize("shape", ["support", "undo-support"])
@pytest.mark.parametrize("key", ["to", "cc"])
@pytest.mark.parametrize("public", SPELLINGS)
@pytest.mark.parametrize("as_list", [True, False], ids=["array", "string"])
def test_supports_are_never_public(
    shape: str, key: str, public: str, as_list: bool, documents: dict[str, Any]
) -> None:
    document = documents[shape]
    document[key] = [GROUP, public] if as_list else public
    error = rejected(shape, document)
    field = f"{key}[1]" if as_list else key  # the very address that names it
    assert (error.field, error.rule) == (field, "pattern")
    assert f"{shape}: {field}: must not address the Public collection" in str(error)


@pytest.mark.parametrize(
    "near",
    ["https://h.example/users/Public", f"{PUBLIC}/x", "https://h.example/as:Public",
     {"id": PUBLIC}],
)  # fmt: skip
def test_only_the_public_collection_itself_is_refused(near: Any, documents: dict[str, Any]) -> None:
    # Anything merely spelt like it (or an object, which the addressing rules judge) is not it.
    document = documents["support"]
    document["cc"] = [near]
    validator("support")(document)
    assert not list(jsonschema_validator("support").iter_errors(document))


def test_embedded_like_in_undo_is_checked_as_a_support(documents: dict[str, Any]) -> None:
    document = documents["undo-support"]
    document["object"]["to"] = [GROUP, "as:Public"]
    error = rejected("undo-support", document)
    assert (error.field, error.rule) == ("object.to[1]", "pattern")


# --- rules a schema cannot say -------------------------------------------------------------------

# fmt: off
ORIGIN_CASES = [
    ("support", "id", f"{OTHER}/supports/1", "id", "same origin as actor"),
    ("undo-support", "id", f"{OTHER}/undos/1", "id", "same origin as actor"),
    ("comment-vote", "id", f"{OTHER}/votes/1", "id", "same origin as actor"),
    ("undo-comment-vote", "id", f"{OTHER}/undos/1", "id", "same origin as actor"),
    ("announce", "id", f"{OTHER}/activities/1", "id", "same origin as actor"),
    ("official-answer", "id", f"{OTHER}/activities/1", "id", "same origin as actor"),
    ("delete", "id", f"{OTHER}/activities/1", "id", "same origin as actor"),
    ("proposal", "id", f"{OTHER}/proposals/1", "id", "same origin as attributedTo"),
    ("debate", "id", f"{OTHER}/debates/1", "id", "same origin as attributedTo"),
    ("comment", "id", f"{OTHER}/comments/1", "id", "same origin as attributedTo"),
    ("process", "attributedTo", f"{OTHER}/groups/association", "id", "same origin as attributedTo"),
    ("tally", "id", f"{G}/tallies/1", "id", "same origin as attributedTo"),
    ("support", "actor", "https://gracia.barri.example:8443/users/ana", "id", "same origin"),
    ("actor-person", "inbox", f"{OTHER}/inbox", "inbox", "same origin as id"),
    ("actor-group", "outbox", f"{OTHER}/outbox", "outbox", "same origin as id"),
    ("actor-service", "followers", f"{G}/followers", "followers", "same origin as id"),
    ("actor-application", "following", f"{OTHER}/following", "following", "same origin as id"),
    ("actor-person", "endpoints.sharedInbox", f"{OTHER}/inbox", "endpoints.sharedInbox", "origin"),
    ("actor-person", "publicKey.id", f"{OTHER}/users/ana#main-key", "publicKey.id", "origin"),
    ("actor-group", "assertionMethod.0.id", f"{OTHER}/k#1", "assertionMethod[0].id", "origin"),
    ("undo-support", "object.id", f"{OTHER}/supports/1", "object.id", "same origin as actor"),
    ("undo-comment-vote", "object", f"{OTHER}/votes/1", "object", "same origin as actor"),
    ("delete", "object.id", f"{OTHER}/comments/1", "object.id", "same origin as actor"),
    ("delete", "object", f"{OTHER}/comments/1", "object", "same origin as actor"),
]
# fmt: on


@pytest.mark.parametrize(
    ("shape", "path", "value", "field", "words"),
    ORIGIN_CASES,
    ids=[c[0] + ":" + c[1] for c in ORIGIN_CASES],
)
def test_cross_origin_is_refused(
    shape: str, path: str, value: str, field: str, words: str, documents: dict[str, Any]
) -> None:
    document = documents[shape]
    put(document, path, value)
    validator(shape)(document)  # the schema alone accepts it
    error = rejected(shape, document)
    assert (error.field, error.rule) == (field, "same-origin"), str(error)
    assert words in str(error)


# fmt: off
IDENTITY_CASES = [
    ("actor-person", "publicKey.owner", f"{G}/users/bob", "publicKey.owner", "same-actor"),
    ("actor-service", "assertionMethod.0.controller", f"{CITY}/x", "assertionMethod[0].controller",
     "same-actor"),
    ("undo-support", "object.actor", f"{G}/users/bob", "object.actor", "same-actor"),
    ("undo-comment-vote", "object.actor", f"{G}/users/bob", "object.actor", "same-actor"),
    ("official-answer", "object.audience", f"{OTHER}/groups/association", "actor", "owner"),
]
# fmt: on


@pytest.mark.parametrize(("shape", "path", "value", "field", "rule"), IDENTITY_CASES)
def test_acting_for_someone_else_is_refused(
    shape: str, path: str, value: str, field: str, rule: str, documents: dict[str, Any]
) -> None:
    document = documents[shape]
    put(document, path, value)
    error = rejected(shape, document)
    assert (error.field, error.rule) == (field, rule), str(error)
    assert str(error).startswith(f"{shape}: {field}: must be")


def test_phases_must_end_after_they_start(documents: dict[str, Any]) -> None:
    document = documents["process"]
    document["phases"][1]["endTime"] = "2026-04-01T00:00:00Z"
    error = rejected("process", document)
    assert (error.field, error.rule) == ("phases[1].endTime", "order")
    assert "must be after startTime" in str(error)


def test_phases_must_not_overlap(documents: dict[str, Any]) -> None:
    document = documents["process"]
    document["phases"][1]["startTime"] = "2026-03-31T23:00:00-02:00"  # 01:00Z, after the end
    validate("process", document)
    document["phases"][1]["startTime"] = "2026-03-31T23:59:59Z"
    error = rejected("process", document)
    assert (error.field, error.rule) == ("phases[1].startTime", "order")
    assert "phases[0].endTime" in str(error)


def test_minimum_supports_within_the_limit(documents: dict[str, Any]) -> None:
    document = documents["process"]
    document["supportRules"]["minimumSupportsPerParticipant"] = 11
    error = rejected("process", document)
    assert error.field == "supportRules.minimumSupportsPerParticipant"
    assert "must not exceed supportsPerParticipant (10)" in str(error)
    document["supportRules"]["supportsPerParticipant"] = 0  # unlimited
    validate("process", document)


def test_tally_neighbourhood_counts_add_up(documents: dict[str, Any]) -> None:
    document = documents["tally"]
    document["results"][0]["byTerritory"][1]["supports"] = 11
    error = rejected("tally", document)
    assert (error.field, error.rule) == ("results[0].byTerritory", "sum")
    assert "must add up to supports (42), not 41" in str(error)


def test_announced_activity_is_validated_too(documents: dict[str, Any]) -> None:
    document = documents["announce"]
    del document["object"]["@context"]  # read in the Announce's context
    validate("announce", document)
    document["object"]["id"] = f"{OTHER}/votes/1"
    error = rejected("announce", document)
    assert (error.field, error.rule) == ("object.id", "same-origin")
    assert str(error).startswith("announce: object.id: must be on the same origin as actor")


# --- picking a shape -----------------------------------------------------------------------------


def test_shape_of_addressing_and_wrappers(documents: dict[str, Any]) -> None:
    assert shape_of({"type": "Like", "to": [GROUP], "object": PROPOSAL}) == "support"
    assert shape_of({"type": "Like", "to": "as:Public", "object": COMMENT}) == "comment-vote"
    assert shape_of({"type": "Dislike", "to": [GROUP]}) == "comment-vote"
    assert shape_of({"type": "Undo", "object": f"{G}/supports/1", "to": GROUP}) == "undo-support"
    assert shape_of({"type": "Undo", "object": f"{G}/votes/1"}) == "undo-comment-vote"
    assert shape_of({"type": "Undo", "object": {"type": "Follow"}}) is None
    assert shape_of({"type": "Note", "content": "top-level toot"}) is None
    assert shape_of({"type": "Create", "object": documents["proposal"]}) is None
    assert shape_of({"type": "Page"}) is None
    assert shape_of(["Like"]) is None  # type: ignore[arg-type]
    edit = {"type": "Update", "actor": ANA, "object": documents["proposal"]}
    assert shape_of(edit) is None  # an author's edit is the proposal itself, not an answer
    assert shape_of(documents["official-answer"]) == "official-answer"
    assert shape_of({"@type": ["Page", "Debate"]}) == "debate"


def test_validate_inbound_reads_create_in_its_context(documents: dict[str, Any]) -> None:
    inner = {k: v for k, v in documents["proposal"].items() if k != "@context"}
    create = {"@context": CONTEXT, "id": f"{G}/activities/1", "type": "Create", "actor": ANA,
              "object": inner}  # fmt: skip
    assert validate_inbound(create) == "proposal"
    assert validate_inbound(documents["support"]) == "support"
    assert validate_inbound({"type": "Follow", "object": GROUP}) is None
    inner["name"] = "x" * 151
    with pytest.raises(ValidationError) as caught:
        validate_inbound(create)
    assert str(caught.value) == "proposal: object.name: must be at most 150 characters (got 151)"
