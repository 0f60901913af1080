"""federation.vocab: dataclass → JSON → dataclass is the identity; JSON → dataclass → JSON keeps
every term, for our own outputs and for the published examples in schemas/examples."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import rdflib
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from activitypub.actors import AS_CONTEXT, DATA_INTEGRITY_V2
from activitypub.jsonld import check_document, expand_iri, to_graph
from federation.model import LangText, Proposal
from federation.vocab.context import (
    barri_context,
    document_context,
    format_datetime,
    plain_context,
)
from federation.vocab.process import process_from_ap
from federation.vocab.proposal import proposal_from_ap, proposal_to_ap
from schemas import SCHEMAS_DIR
from tests.vocab_samples import SHAPES, Shape, proposal_full

EXAMPLES = SCHEMAS_DIR / "examples"
JSON_SCHEMAS = SCHEMAS_DIR / "json"
BARRI = rdflib.Namespace("https://w3id.org/barri/ns#")
AS = rdflib.Namespace("https://www.w3.org/ns/activitystreams#")
# Every shape has one published example (actors are checked in test_vocab_foreign).
EXAMPLE_SHAPES = list(SHAPES)
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
TIMESTAMP_KEYS = {"published", "updated", "deleted", "startTime", "endTime", "answeredAt"}
TIMESTAMP_KEYS |= {"closedAt", "asOf"}
# The shapes that use no Barri term carry AS2 + data-integrity only (DESIGN.md §4).
PLAIN_SHAPES = frozenset({"support", "undo-support", "comment-vote", "undo-comment-vote"})


def plain(shape: Shape, doc: dict[str, Any]) -> bool:
    """Whether ``doc`` should carry AS2 + data-integrity only: a shape that uses no Barri term,
    or an Announce whose embedded activity brings its own @context."""
    if shape.name == "announce":
        return "@context" in doc["object"]
    return shape.name in PLAIN_SHAPES


CASES = [
    pytest.param(shape, variant, id=f"{name}-{variant}")
    for name, shape in SHAPES.items()
    for variant in ("full", "minimal")
]


def sample(shape: Shape, variant: str) -> Any:
    return shape.full() if variant == "full" else shape.minimal()


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of every object in the tree; not into @context nor language maps."""
    if isinstance(node, list):
        for item in node:
            yield from walk(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            if key != "@context" and not key.endswith("Map"):
                yield from walk(value)


# --- dataclass → JSON → dataclass ---------------------------------------------------------------


@pytest.mark.parametrize(("shape", "variant"), CASES)
def test_from_ap_of_to_ap_is_the_identity(shape: Shape, variant: str) -> None:
    value = sample(shape, variant)
    assert shape.from_ap(shape.to_ap(value)) == value


@pytest.mark.parametrize(("shape", "variant"), CASES)
def test_to_ap_then_from_ap_then_to_ap_gives_the_same_json(shape: Shape, variant: str) -> None:
    doc = shape.to_ap(sample(shape, variant))
    assert shape.to_ap(shape.from_ap(doc)) == doc


def test_full_and_minimal_samples_differ_so_both_variants_mean_something() -> None:
    for name, shape in SHAPES.items():
        if name != "support":  # a support has no optional field
            assert shape.full() != shape.minimal(), name


@pytest.mark.parametrize(("shape", "variant"), CASES)
def test_to_ap_is_a_complete_document_with_our_context(shape: Shape, variant: str) -> None:
    doc = shape.to_ap(sample(shape, variant))
    if plain(shape, doc):
        assert doc["@context"] == [AS_CONTEXT, DATA_INTEGRITY_V2] == plain_context()
    else:
        assert doc["@context"] == [AS_CONTEXT, DATA_INTEGRITY_V2, barri_context()]
    assert list(doc)[:3] == ["@context", "id", "type"]
    # Never null, never an empty list: an absent value is an absent key.
    for key, value in walk(doc):
        assert value is not None, key
        assert value != [] or key in ("results", "totals", "byTerritory"), key
        if key in TIMESTAMP_KEYS:
            assert STAMP.fullmatch(value), (key, value)
    json.dumps(doc)  # plain JSON types only


@pytest.mark.parametrize(("shape", "variant"), CASES)
def test_to_ap_passes_the_inbound_json_ld_rules(shape: Shape, variant: str) -> None:
    check_document(shape.to_ap(sample(shape, variant)))


@pytest.mark.parametrize(("shape", "variant"), CASES)
def test_every_emitted_term_is_defined_by_the_context(shape: Shape, variant: str) -> None:
    doc = shape.to_ap(sample(shape, variant))
    for key, _ in walk(doc):
        if key.startswith("@"):
            continue
        iri = expand_iri(doc, key)
        # AS2's "@vocab": "_:" would silently turn an undefined term into a blank node.
        assert iri is not None and not iri.startswith("_:"), key
        assert iri in ("@id", "@type") or iri.startswith(("https://", "http://")), (key, iri)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_rdf_graph_carries_our_types_and_terms() -> None:
    doc = proposal_to_ap(proposal_full())
    graph = to_graph(doc)
    subject = rdflib.URIRef(doc["id"])
    assert (subject, rdflib.RDF.type, AS.Page) in graph
    assert (subject, rdflib.RDF.type, BARRI.Proposal) in graph
    assert (subject, BARRI.process, rdflib.URIRef(doc["process"])) in graph
    assert (subject, BARRI.proposalState, rdflib.Literal("accepted")) in graph
    answers = {
        (o.value, o.language)
        for o in graph.objects(subject, BARRI.officialAnswer)
        if isinstance(o, rdflib.Literal)
    }
    assert ("<p>Aceptada.</p>", "es") in answers


def test_each_call_returns_a_fresh_context() -> None:
    one = proposal_to_ap(proposal_full())
    two = proposal_to_ap(proposal_full())
    assert one["@context"] is not two["@context"]
    one["@context"][2]["Proposal"] = "https://evil.example/Proposal"
    one["@context"].append("https://evil.example/ctx")
    assert document_context() == two["@context"]
    assert barri_context()["Proposal"] == "barri:Proposal"
    plain = plain_context()
    plain.append(barri_context())
    assert plain_context() == [AS_CONTEXT, DATA_INTEGRITY_V2]


@pytest.mark.parametrize(("shape", "variant"), CASES)
def test_supports_and_votes_use_no_barri_term_and_carry_no_barri_context(
    shape: Shape, variant: str
) -> None:
    doc = shape.to_ap(sample(shape, variant))
    ours = set(barri_context()) - {"barri", "xsd"}
    # Our terms as keys, or our types as values of ``type`` (formerType: an AS2 IRI, not ours).
    used = {key for key, _ in walk(doc)} | {
        kind for key, value in walk(doc) if key == "type"
        for kind in (value if isinstance(value, list) else [value])
    }  # fmt: skip
    carries = barri_context() in doc["@context"]
    assert carries == (not plain(shape, doc))
    if shape.name in PLAIN_SHAPES:
        assert not used & ours, sorted(used & ours)


# --- every shape AS2 allows ---------------------------------------------------------------------

_REFERENCES = {"attributedTo", "audience", "actor", "process", "inReplyTo", "context", "replies"}


def _listify(node: Any) -> Any:
    """Every single value as a one-item array (AS2 §2); maps and lists stay as they are."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            # "id" is JSON-LD's @id: a single IRI, never an array.
            keep = key in ("@context", "id") or key.endswith("Map") or isinstance(value, list)
            out[key] = value if keep else [_listify(value)]
            if isinstance(value, list) and key != "@context":
                out[key] = [_listify(item) for item in value]
        return out
    return node


def _embed_references(node: Any) -> Any:
    """Every reference and addressee as an embedded object with an id instead of a bare id."""
    if isinstance(node, list):
        return [_embed_references(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in _REFERENCES and isinstance(value, str):
            value = {"id": value, "type": "Object"}
        elif key in ("to", "cc") and isinstance(value, list):
            value = [{"id": item} for item in value]
        elif key != "@context":
            value = _embed_references(value)
        out[key] = value
    return out


def _reorder_types(node: Any) -> Any:
    """``type`` as a list with our type anywhere: reversed, or a string gaining a second type."""
    if isinstance(node, list):
        return [_reorder_types(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _reorder_types(value) for key, value in node.items() if key != "@context"}
    if "@context" in node:
        out = {"@context": node["@context"], **out}
    kind = node.get("type")
    if isinstance(kind, list):
        out["type"] = list(reversed(kind))
    elif isinstance(kind, str):
        out["type"] = ["Object", kind]
    return out


VARIANTS: dict[str, Callable[[Any], Any]] = {
    "listified": _listify,
    "embedded-references": _embed_references,
    "reordered-types": _reorder_types,
}


@pytest.mark.parametrize("transform", VARIANTS.values(), ids=list(VARIANTS))
@pytest.mark.parametrize(("shape", "variant"), CASES)
def test_every_as2_shape_reads_the_same(
    shape: Shape, variant: str, transform: Callable[[Any], Any]
) -> None:
    value = sample(shape, variant)
    doc = shape.to_ap(value)
    if shape.name == "announce":
        # The announced activity is kept verbatim: reshape only the Announce around it.
        reshaped = transform({**doc, "object": "placeholder"})
        reshaped["object"] = [doc["object"]] if transform is _listify else doc["object"]
    elif shape.name == "support" and transform is _embed_references:
        reshaped = transform(doc)  # "object" stays a bare proposal id (a rule, tested elsewhere)
    else:
        reshaped = transform(doc)
    if not (shape.name == "tombstone" and transform is _embed_references):
        assert reshaped != doc  # (a Tombstone names no other object)
    assert shape.from_ap(reshaped) == value


def test_map_only_text_takes_its_first_entry_as_the_default() -> None:
    doc = proposal_to_ap(proposal_full())
    del doc["name"]
    doc["nameMap"] = {"es": "Más sombra", "ca": "Més ombra"}
    del doc["content"]
    doc["contentMap"] = {"ca": "<p>Arbres.</p>"}
    proposal = proposal_from_ap(doc)
    assert proposal.name == LangText.of("Más sombra", {"ca": "Més ombra", "es": "Más sombra"})
    assert proposal.content_html == "<p>Arbres.</p>"


def test_plain_text_alone_has_no_translations() -> None:
    doc = proposal_to_ap(proposal_full())
    del doc["nameMap"]
    assert proposal_from_ap(doc).name == LangText(doc["name"])


def test_sub_second_and_offset_timestamps_are_normalised_to_utc_seconds() -> None:
    doc = proposal_to_ap(proposal_full())
    doc["published"] = "2026-03-01T11:00:00.734+01:00"
    proposal = proposal_from_ap(doc)
    assert proposal_to_ap(proposal)["published"] == "2026-03-01T10:00:00Z"


@pytest.mark.parametrize(("shape", "variant"), CASES)
def test_proof_and_unknown_terms_are_ignored_and_input_is_not_mutated(
    shape: Shape, variant: str
) -> None:
    value = sample(shape, variant)
    doc = shape.to_ap(value)
    doc["proof"] = {"type": "DataIntegrityProof", "proofValue": "zNotChecked"}
    doc["toot:indexable"] = True
    doc["somethingNew"] = {"nested": [1, 2]}
    before = copy.deepcopy(doc)
    assert shape.from_ap(doc) == value
    assert doc == before


def test_announced_activity_is_a_copy_that_later_edits_cannot_reach() -> None:
    shape = SHAPES["announce"]
    doc = shape.to_ap(shape.full())
    announcement = shape.from_ap(doc)
    kind = doc["object"]["type"]
    doc["object"]["type"] = "Flag"
    assert announcement.activity["type"] == kind != "Flag"
    with pytest.raises(TypeError):
        announcement.activity["type"] = "Flag"


def test_announce_around_an_activity_with_its_own_context_carries_the_plain_one() -> None:
    """The Announce uses no Barri term: the inner activity's own @context keeps its terms."""
    inner = {"@context": document_context(), **proposal_to_ap(proposal_full())}
    announcement = SHAPES["announce"].full()
    doc = SHAPES["announce"].to_ap(dataclasses.replace(announcement, activity=inner))
    assert doc["@context"] == plain_context()
    assert doc["object"] == inner
    check_document(doc)
    graph = to_graph(doc)
    assert (None, rdflib.URIRef("https://w3id.org/barri/ns#process"), None) in graph


def test_announce_around_an_activity_without_a_context_keeps_our_terms() -> None:
    """An embedded activity without @context is read in the Announce's (JSON-LD 1.1 §4.1)."""
    doc = SHAPES["announce"].to_ap(SHAPES["announce"].minimal())
    assert "@context" not in doc["object"]
    assert doc["@context"] == document_context()


def test_proposal_from_another_instance_may_belong_to_a_remote_process() -> None:
    proposal: Proposal = proposal_full()
    assert not proposal.id.startswith(proposal.process.split("/processes/")[0])
    assert proposal_from_ap(proposal_to_ap(proposal)).process == proposal.process


# --- the JSON Schemas agree with what we publish ------------------------------------------------


def _registry() -> Registry[Any]:
    resources = []
    for path in sorted(JSON_SCHEMAS.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema, DRAFT7)))
    return Registry().with_resources(resources)


@pytest.mark.parametrize(("shape", "variant"), CASES)
def test_to_ap_validates_against_the_json_schema(shape: Shape, variant: str) -> None:
    path = JSON_SCHEMAS / f"{shape.name}.schema.json"
    assert path.is_file(), f"no JSON Schema for {shape.name}"
    validator = Draft7Validator(json.loads(path.read_text(encoding="utf-8")), registry=_registry())
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(shape.to_ap(sample(shape, variant)))
    ]
    assert errors == []


# --- the published examples: JSON → dataclass → JSON keeps every term --------------------------


def test_there_is_one_example_per_shape_when_the_examples_exist() -> None:
    if not EXAMPLES.is_dir():
        pytest.skip("schemas/examples has not been generated")
    missing = [name for name in EXAMPLE_SHAPES if not (EXAMPLES / f"{name}.json").is_file()]
    assert missing == []


def _example(name: str) -> dict[str, Any]:
    path: Path = EXAMPLES / f"{name}.json"
    if not EXAMPLES.is_dir():
        pytest.skip("schemas/examples has not been generated")
    assert path.is_file(), f"schemas/examples/{name}.json is missing"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("name", EXAMPLE_SHAPES)
def test_example_json_to_dataclass_to_json_keeps_every_term(name: str) -> None:
    example = _example(name)
    before = copy.deepcopy(example)
    shape = SHAPES[name]
    value = shape.from_ap(example)
    assert example == before
    unsigned = {key: item for key, item in example.items() if key != "proof"}
    assert shape.to_ap(value) == unsigned
    assert shape.from_ap(shape.to_ap(value)) == value


def test_example_process_and_proposal_read_as_expected() -> None:
    process = process_from_ap(_example("process"))
    assert process.phases and all(p.start < p.end for p in process.phases)
    proposal = proposal_from_ap(_example("proposal"))
    assert proposal.audience == process.owner


def test_timestamps_are_written_in_utc_at_seconds_with_a_four_digit_year() -> None:
    # vocab-spec "Timestamps"; RFC 3339 §5.6 (date-fullyear is 4DIGIT).
    paris = timezone(timedelta(hours=1))
    assert format_datetime(datetime(2026, 11, 28, 18, 5, 3, 999_999, paris)) == (
        "2026-11-28T17:05:03Z"
    )
    assert format_datetime(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05Z"
    with pytest.raises(ValueError):
        format_datetime(datetime(2026, 11, 28, 17, 5, 3))  # naive: which zone?
