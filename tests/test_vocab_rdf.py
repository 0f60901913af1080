"""The examples as RDF, with the network switched off: every term lands on its intended IRI.

Each example is expanded by ``activitypub.jsonld.to_graph`` (bundled standard contexts plus our
inline context, nothing fetched). AS2's context sets ``"@vocab": "_:"``: a term no context
defines expands to a blank-node predicate, which rdflib 7.6 drops without a word. So a dropped
term shows as a compact key with no predicate in the graph, and that is what (a) looks for.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest
import rdflib
import rdflib._networking
from rdflib import BNode, Literal, URIRef
from rdflib.collection import Collection

from activitypub.actors import ACTOR_CONTEXT
from activitypub.jsonld import KNOWN_CONTEXTS, expand_iri, load_context, to_graph
from schemas import CONTEXTS_DIR, SCHEMAS_DIR

# rdflib's own parser trips its own deprecations (ConjunctiveGraph, default_context).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")

EXAMPLES = SCHEMAS_DIR / "examples"
SHAPES = sorted(path.stem for path in EXAMPLES.glob("*.json"))
BARRI = "https://w3id.org/barri/ns#"
AS = "https://www.w3.org/ns/activitystreams#"
SEC = "https://w3id.org/security#"
LDP = "http://www.w3.org/ns/ldp#"
DCTERMS = "http://purl.org/dc/terms/"
TOOT = "http://joinmastodon.org/ns#"
DI_V2 = "https://w3id.org/security/data-integrity/v2"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XSD_NS = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = URIRef(RDF_NS + "type")
ALLOWED_NAMESPACES = (BARRI, AS, SEC, LDP, DCTERMS, TOOT, RDF_NS)

# The intended IRI of every standard (non-barri) term the examples use.
STANDARD_TERMS: Mapping[str, str] = {
    **{
        term: AS + term
        for term in """actor object to cc audience attributedTo inReplyTo context published
        updated deleted content name summary source mediaType url replies location latitude
        longitude startTime endTime formerType preferredUsername outbox followers following
        endpoints sharedInbox manuallyApprovesFollowers""".split()
    },
    "nameMap": AS + "name",
    "summaryMap": AS + "summary",
    "contentMap": AS + "content",
    "inbox": LDP + "inbox",
    "discoverable": TOOT + "discoverable",
    **{
        term: SEC + term
        for term in """publicKey owner publicKeyPem assertionMethod controller publicKeyMultibase
        proof cryptosuite verificationMethod proofPurpose proofValue""".split()
    },
    "created": DCTERMS + "created",
}
# Where the type-scoped contexts of the security types live.
SCOPED_IN = {
    "DataIntegrityProof": DI_V2,
    "Multikey": "https://w3id.org/security/multikey/v1",
}
SEC_TYPES = frozenset({"DataIntegrityProof", "Multikey"})
# Budget project / ballot terms: defined, documented, used by no example yet.
LATER_WORK = frozenset(
    "BudgetProject Ballot budgetAmount totalBudget currency budgetProjects checkedOutAt".split()
)
PYTHON_TYPES: Mapping[str, type] = {
    XSD_NS + "integer": int,
    XSD_NS + "boolean": bool,
    XSD_NS + "dateTime": datetime,
}
AS_DATETIME = ("published", "updated", "deleted", "startTime", "endTime")


def load(shape: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{shape}.json").read_text(encoding="utf-8"))
    return data


def barri_context() -> dict[str, Any]:
    ctx: dict[str, Any] = json.loads((CONTEXTS_DIR / "barri-v1.jsonld").read_text())["@context"]
    return ctx


def barri_terms() -> dict[str, dict[str, Any]]:
    """Our terms (prefixes left out), each as an expanded definition with a full ``@id``."""
    terms: dict[str, dict[str, Any]] = {}
    for term, definition in barri_context().items():
        if term in ("barri", "xsd"):
            continue
        entry = {"@id": definition} if isinstance(definition, str) else dict(definition)
        for key in ("@id", "@type"):
            value = entry.get(key)
            if isinstance(value, str):
                entry[key] = value.replace("barri:", BARRI).replace("xsd:", XSD_NS)
        terms[term] = entry
    return terms


BARRI_TERMS = barri_terms()
LANGUAGE_MAPS = frozenset(
    {"nameMap", "summaryMap", "contentMap"}
    | {t for t, d in BARRI_TERMS.items() if d.get("@container") == "@language"}
)


def intended(term: str) -> str | None:
    """The IRI we mean by a compact key (None: a key neither table knows)."""
    if term in BARRI_TERMS:
        return str(BARRI_TERMS[term]["@id"])
    return STANDARD_TERMS.get(term)


def compact_keys(node: Any) -> Iterator[tuple[str | None, str]]:
    """(node id or None, key) for every term key in the compact tree, keywords excluded."""
    for node_id, key, _, _ in scoped_keys(node):
        yield node_id, key


def scoped_keys(node: Any, holder: Any = None) -> Iterator[tuple[str | None, str, str | None, Any]]:
    """(node id, key, the security type whose scoped context defines the key if any, the
    nearest node up the tree that has an @context: the key is read in that context)."""
    if isinstance(node, list):
        for item in node:
            yield from scoped_keys(item, holder)
        return
    if not isinstance(node, dict):
        return
    holder = node if "@context" in node else holder
    node_id = node.get("id") if isinstance(node.get("id"), str) else None
    kind = node.get("type")
    scope = kind if isinstance(kind, str) and kind in SEC_TYPES else None
    for key, value in node.items():
        if key.startswith("@") or key in ("id", "type"):
            continue
        yield node_id, key, scope, holder
        if key not in LANGUAGE_MAPS:  # a language map's keys are language tags, not terms
            yield from scoped_keys(value, holder)


def typed_nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object of the tree that has a ``type``."""
    if isinstance(node, list):
        for item in node:
            yield from typed_nodes(item)
    elif isinstance(node, dict):
        if "type" in node:
            yield node
        for key, value in node.items():
            if key != "@context":
                yield from typed_nodes(value)


def type_iri(name: str) -> URIRef:
    if name in BARRI_TERMS:
        return URIRef(BARRI_TERMS[name]["@id"])
    return URIRef((SEC if name in SEC_TYPES else AS) + name)


def dropped_terms(document: Mapping[str, Any], graph: rdflib.Graph) -> list[str]:
    """Compact keys whose IRI (ours, or the context's) is no predicate of the graph."""
    predicates = {str(p) for p in graph.predicates()}
    dropped = []
    for _, key in compact_keys(document):
        iri = intended(key) or expand_iri(document, key)
        if iri is None or iri not in predicates:
            dropped.append(key)
    return sorted(set(dropped))


@pytest.fixture
def network_off(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way out of the process raises AssertionError and is recorded."""
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def attempt(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{name} {args!r}")
            raise AssertionError(f"network attempt: {name} {args!r}")

        return attempt

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    # rdflib imported urlopen by name, so the name it holds is patched too.
    monkeypatch.setattr(rdflib._networking, "urlopen", refuse("rdflib urlopen"))
    return attempts


def test_the_network_is_really_off(network_off: list[str]) -> None:
    with pytest.raises(AssertionError, match="network attempt"):
        socket.getaddrinfo("www.w3.org", 443)
    with pytest.raises(AssertionError, match="network attempt"):
        rdflib.Graph().parse(
            data=json.dumps({"@context": "https://w3id.org/barri/v1"}), format="json-ld"
        )
    assert len(network_off) == 2


# --- (a) no term is dropped, each lands in its namespace --------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_every_compact_key_has_an_intended_iri_in_its_namespace(shape: str) -> None:
    keys = {key for _, key in compact_keys(load(shape))}
    unknown = sorted(key for key in keys if intended(key) is None)
    assert not unknown, f"add these to STANDARD_TERMS or barri-v1.jsonld: {unknown}"
    for key in keys:
        expected = BARRI if key in BARRI_TERMS else ALLOWED_NAMESPACES
        assert str(intended(key)).startswith(expected), key


@pytest.mark.parametrize("shape", SHAPES)
def test_the_contexts_map_each_key_to_the_intended_iri(shape: str) -> None:
    document = load(shape)
    for _, key, scope, holder in scoped_keys(document, document):
        if scope is None:
            # Read in the nearest @context up the tree: an embedded activity may bring its own.
            assert expand_iri(holder, key) == intended(key), key
            continue
        # Inside a proof or a Multikey the type's own scoped context defines the key.
        scoped = load_context(SCOPED_IN[scope])["@context"][scope]["@context"]
        definition = scoped[key]
        iri = definition if isinstance(definition, str) else definition["@id"]
        assert iri.replace("sec:", SEC) == intended(key), key


@pytest.mark.parametrize("shape", SHAPES)
def test_no_term_is_dropped_in_expansion(shape: str, network_off: list[str]) -> None:
    document = load(shape)
    graph = to_graph(document)
    assert dropped_terms(document, graph) == []
    for subject, key in compact_keys(document):
        if subject is not None:
            assert (URIRef(subject), URIRef(str(intended(key))), None) in graph, (subject, key)
    for predicate in set(graph.predicates()):
        assert isinstance(predicate, URIRef) and not isinstance(predicate, BNode), predicate
        assert str(predicate).startswith(ALLOWED_NAMESPACES), predicate
    assert network_off == []


def test_an_undefined_term_is_reported_as_dropped(network_off: list[str]) -> None:
    document = load("proposal")
    context = [*document["@context"][:2], dict(document["@context"][2])]
    del context[2]["supportCount"]  # now only AS2's "@vocab": "_:" catches it
    document["@context"] = context
    document["supportsCount"] = 3  # a misspelt term
    graph = to_graph(document)
    assert dropped_terms(document, graph) == ["supportCount", "supportsCount"]
    assert (URIRef(document["id"]), URIRef(BARRI + "supportCount"), None) not in graph
    assert dropped_terms(load("proposal"), to_graph(load("proposal"))) == []
    assert network_off == []


# --- (b) types: the AS2 type plus ours --------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_every_type_expands_to_as2_security_or_barri(shape: str, network_off: list[str]) -> None:
    document = load(shape)
    graph = to_graph(document)
    compact: Counter[URIRef] = Counter()
    for node in typed_nodes(document):
        names = node["type"] if isinstance(node["type"], list) else [node["type"]]
        for name in names:
            compact[type_iri(name)] += 1
            if isinstance(node.get("id"), str):
                assert (URIRef(node["id"]), RDF_TYPE, type_iri(name)) in graph, name
    assert Counter(o for _, o in graph.subject_objects(RDF_TYPE)) == compact
    assert network_off == []


@pytest.mark.parametrize(
    ("shape", "path", "types"),
    [
        ("proposal", (), ("Page", "Proposal")),
        ("process", (), ("Page", "ParticipatoryProcess")),
        ("debate", (), ("Page", "Debate")),
        ("tally", (), ("Note", "Tally")),
        ("comment", (), ("Note",)),
        ("official-answer", ("object",), ("Page", "Proposal")),
        ("announce", ("object", "object"), ("Page", "Proposal")),
    ],
)
def test_our_objects_are_both_as2_and_barri(
    shape: str, path: tuple[str, ...], types: tuple[str, ...], network_off: list[str]
) -> None:
    document = load(shape)
    node = document
    for key in path:
        node = node[key]
    graph = to_graph(document)
    subject = URIRef(node["id"])
    assert set(graph.objects(subject, RDF_TYPE)) == {type_iri(name) for name in types}
    assert (subject, RDF_TYPE, URIRef(AS + types[0])) in graph
    assert network_off == []


def test_former_type_is_read_from_json_not_from_rdf(network_off: list[str]) -> None:
    """A known AS2 wart, documented in VOCABULARY.md: formerType is ``"@type": "@id"``.

    So the plain ``"Note"`` every server sends is a *relative IRI* resolved against the
    document's id, not ``as:Note``; readers take formerType from the JSON string.
    """
    tombstone = load("tombstone")
    graph = to_graph(tombstone)
    subject = URIRef(tombstone["id"])
    relative = URIRef(tombstone["id"].rsplit("/", 1)[0] + "/Note")
    assert list(graph.objects(subject, URIRef(AS + "formerType"))) == [relative]
    assert network_off == []


# --- (c) typed literals and references ------------------------------------------------------


def _triples_of(predicate: str) -> list[tuple[str, Any]]:
    found = []
    for shape in SHAPES:
        graph = to_graph(load(shape))
        found += [(shape, obj) for obj in graph.objects(None, URIRef(predicate))]
    return found


@pytest.mark.parametrize(
    "term", sorted(t for t, d in BARRI_TERMS.items() if "@type" in d and t not in LATER_WORK)
)
def test_typed_barri_terms_yield_their_datatype(term: str, network_off: list[str]) -> None:
    definition = BARRI_TERMS[term]
    found = _triples_of(definition["@id"])
    assert found, f"no example uses {term}"
    for shape, obj in found:
        if definition["@type"] == "@id":
            assert isinstance(obj, URIRef) and str(obj).startswith("https://"), (shape, obj)
        else:
            assert isinstance(obj, Literal) and str(obj.datatype) == definition["@type"], shape
            # The lexical form parses as the datatype says (rdflib keeps it a str otherwise).
            assert isinstance(obj.toPython(), PYTHON_TYPES[definition["@type"]]), (shape, obj)
    assert network_off == []


@pytest.mark.parametrize("term", AS_DATETIME)
def test_as2_timestamps_are_xsd_datetime(term: str, network_off: list[str]) -> None:
    found = _triples_of(AS + term)
    assert found
    assert all(
        isinstance(o, Literal) and o.datatype == URIRef(XSD_NS + "dateTime") for _, o in found
    ), found
    created = _triples_of(DCTERMS + "created")
    assert created and all(o.datatype == URIRef(XSD_NS + "dateTime") for _, o in created)
    assert network_off == []


UNTYPED_PROPERTIES = sorted(
    term
    for term, definition in BARRI_TERMS.items()
    if "@type" not in definition
    and "@container" not in definition
    and term[0].islower()
    and term not in LATER_WORK
)


@pytest.mark.parametrize("term", UNTYPED_PROPERTIES)
def test_untyped_barri_terms_are_plain_strings_or_nodes(term: str, network_off: list[str]) -> None:
    found = _triples_of(BARRI_TERMS[term]["@id"])
    assert found, f"no example uses {term}"
    # officialAnswer and conclusions share their IRI with the language maps of the same name.
    shares_iri = any(
        d["@id"] == BARRI_TERMS[term]["@id"] and d.get("@container") == "@language"
        for d in BARRI_TERMS.values()
    )
    for shape, obj in found:
        if isinstance(obj, Literal):
            assert obj.datatype in (None, URIRef(XSD_NS + "string")), (shape, obj)
            assert obj.language is None or shares_iri, (shape, obj)
        else:
            assert isinstance(obj, BNode), (shape, obj)  # an embedded Territory / SupportRules
    assert network_off == []


def test_typed_values_read_back_exactly(network_off: list[str]) -> None:
    tally, proposal, process = load("tally"), load("proposal"), load("process")
    graph = to_graph(tally)
    t = URIRef(tally["id"])
    assert (
        t,
        URIRef(BARRI + "inputsCount"),
        Literal("67", datatype=URIRef(XSD_NS + "integer")),
    ) in graph
    assert (
        t,
        URIRef(BARRI + "participants"),
        Literal("24", datatype=URIRef(XSD_NS + "integer")),
    ) in graph
    assert (
        t,
        URIRef(BARRI + "final"),
        Literal("false", datatype=URIRef(XSD_NS + "boolean")),
    ) in graph
    assert (t, URIRef(BARRI + "process"), URIRef(process["id"])) in graph
    as_of = Literal(tally["asOf"], datatype=URIRef(XSD_NS + "dateTime"))
    assert (t, URIRef(BARRI + "asOf"), as_of) in graph
    assert (None, URIRef(BARRI + "proposal"), URIRef(proposal["id"])) in graph
    graph = to_graph(proposal)
    p = URIRef(proposal["id"])
    assert (
        p,
        URIRef(BARRI + "supportCount"),
        Literal("41", datatype=URIRef(XSD_NS + "integer")),
    ) in graph
    assert (p, URIRef(BARRI + "proposalState"), Literal("evaluating")) in graph
    answer = Literal(proposal["officialAnswerMap"]["es"], lang="es")
    assert (p, URIRef(BARRI + "officialAnswer"), answer) in graph
    assert (p, URIRef(BARRI + "process"), URIRef(process["id"])) in graph
    graph = to_graph(process)
    allows = set(graph.objects(None, URIRef(BARRI + "allowsSupports")))
    assert allows == {
        Literal("true", datatype=URIRef(XSD_NS + "boolean")),
        Literal("false", datatype=URIRef(XSD_NS + "boolean")),
    }
    assert network_off == []


def test_phases_and_results_keep_their_order(network_off: list[str]) -> None:
    process = load("process")
    graph = to_graph(process)
    head = graph.value(URIRef(process["id"]), URIRef(BARRI + "phases"))
    assert head is not None
    names = [
        next(
            str(name)
            for name in graph.objects(node, URIRef(AS + "name"))
            if isinstance(name, Literal) and name.language is None
        )
        for node in Collection(graph, head)
    ]
    assert names == [phase["name"] for phase in process["phases"]]
    tally = load("tally")
    graph = to_graph(tally)
    head = graph.value(URIRef(tally["id"]), URIRef(BARRI + "results"))
    assert head is not None
    proposals = [graph.value(n, URIRef(BARRI + "proposal")) for n in Collection(graph, head)]
    assert proposals == [URIRef(r["proposal"]) for r in tally["results"]]
    assert network_off == []


# --- the context itself: documented, and colliding with nothing standard ---------------------


def _defined_terms(context: Any, found: dict[str, Any]) -> dict[str, Any]:
    """Every term a context defines, scoped contexts included (first definition wins)."""
    for entry in context if isinstance(context, list) else [context]:
        if not isinstance(entry, dict):
            continue
        for term, definition in entry.items():
            if not term.startswith("@"):
                found.setdefault(term, definition)
            if isinstance(definition, dict) and "@context" in definition:
                _defined_terms(definition["@context"], found)
    return found


@pytest.mark.parametrize("url", sorted(set(KNOWN_CONTEXTS.values())))
def test_no_barri_term_collides_with_a_bundled_context(url: str) -> None:
    source = next(u for u, f in KNOWN_CONTEXTS.items() if f == url)
    standard = _defined_terms(load_context(source)["@context"], {})
    clashes = set(standard) & set(barri_context())
    # Only the xsd prefix is shared, and with the very same IRI.
    assert clashes <= {"xsd"}
    for term in clashes:
        assert standard[term] == barri_context()[term]


def test_no_barri_term_collides_with_the_actor_context() -> None:
    standard = _defined_terms(
        [load_context(u)["@context"] for u in ACTOR_CONTEXT if isinstance(u, str)], {}
    )
    inline = _defined_terms([c for c in ACTOR_CONTEXT if isinstance(c, dict)], {})
    assert not (set(barri_context()) - {"xsd"}) & (set(standard) | set(inline))


def test_every_barri_term_is_documented_in_vocabulary_md() -> None:
    text = (SCHEMAS_DIR / "VOCABULARY.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Za-z]+)`", text))
    missing = sorted(set(barri_context()) - documented)
    assert not missing, f"VOCABULARY.md does not document {missing}"
    # And each with the IRI it expands to, as written in the context.
    for term, definition in barri_context().items():
        if term in ("barri", "xsd"):
            continue
        iri = definition if isinstance(definition, str) else definition["@id"]
        assert f"`{iri}`" in text, f"VOCABULARY.md does not give {term}'s IRI {iri}"
