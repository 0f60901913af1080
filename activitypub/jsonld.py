"""JSON-LD without the network: bundled contexts, inbound document checks, RDF conversion.

Context URLs are served from ``schemas/contexts`` (DESIGN.md §5); any other is refused, never
fetched (rdflib #1369: its loader resolves any URL, ``file://`` included).

Inbound rules decided here (DESIGN.md §5):
- every string ``@context`` entry, top-level or nested, names a bundled URL (or an
  ``extra_contexts`` one);
- an inline context object may add terms (Mastodon's ``toot:``, our ``barri:``) but may not give a
  protected term another IRI than the standard one, nor change the IRI of any term defined before
  it; after each ``@context`` protected terms must keep their standard meaning (so
  ``identity/v1`` after AS2, which maps ``name``/``url`` to schema.org, is refused);
- inline contexts may not use ``@import``/``@propagate``/``@base``, change ``@vocab``, alias
  keywords other than ``id``/``type``, or be ``null`` (that would unmap every protected term);
- ``@graph``, ``@reverse``, ``@included`` and ``@nest`` are refused anywhere: each moves
  statements to where a reader of the compacted JSON does not look.

Authorisation reads the JSON; the RDF view (``to_graph``) is for vocabulary tests and exports.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from activitypub.memo import EqualMemo

if TYPE_CHECKING:
    import rdflib


AS2 = "https://www.w3.org/ns/activitystreams"
_AS = AS2 + "#"

_PUBLISHED: dict[str, str] = {
    AS2: "activitystreams.jsonld",
    "https://w3id.org/security/v1": "security-v1.jsonld",
    "https://w3id.org/security/data-integrity/v1": "data-integrity-v1.jsonld",
    "https://w3id.org/security/data-integrity/v2": "data-integrity-v2.jsonld",
    "https://www.w3.org/ns/did/v1": "did-v1.jsonld",
    "https://w3id.org/security/multikey/v1": "multikey-v1.jsonld",
    "https://www.w3.org/ns/cid/v1": "cid-v1.jsonld",
    "https://w3id.org/identity/v1": "identity-v1.jsonld",
    "https://join-lemmy.org/context.json": "lemmy-context.jsonld",
    "https://gotosocial.org/ns": "gotosocial-ns.jsonld",
}
# Spellings of the AS2 context URL that real servers emit (http, a trailing '#', '.jsonld').
_AS2_VARIANTS = {
    f"{scheme}://www.w3.org/ns/activitystreams{suffix}": "activitystreams.jsonld"
    for scheme in ("https", "http")
    for suffix in ("", "#", ".jsonld")
}
KNOWN_CONTEXTS: Mapping[str, str] = MappingProxyType(_PUBLISHED | _AS2_VARIANTS)

PROTECTED_TERMS: frozenset[str] = frozenset(
    """id type actor object target result origin instrument to cc bto bcc audience attributedTo
    inReplyTo context published updated deleted content contentMap name nameMap summary summaryMap
    source mediaType url href tag attachment replies likes shares liked icon image proof created
    assertionMethod publicKey publicKeyPem publicKeyMultibase owner controller verificationMethod
    proofValue proofPurpose cryptosuite inbox outbox followers following endpoints sharedInbox
    preferredUsername manuallyApprovesFollowers alsoKnownAs movedTo totalItems items orderedItems
    first next prev last current partOf location startTime endTime oneOf anyOf closed formerType
    Public Activity Create Update Delete Follow Accept Reject Add Remove Like Dislike Undo Announce
    Flag Block Note Page Article Question Tombstone Place Person Group Application Service
    Organization Collection OrderedCollection CollectionPage OrderedCollectionPage Link Mention
    Multikey DataIntegrityProof""".split()
)

# Where the standard meaning of a protected term comes from, first definition wins.
_CANONICAL_SOURCES = (
    AS2,
    "https://w3id.org/security/v1",
    "https://w3id.org/security/data-integrity/v2",
    "https://w3id.org/security/multikey/v1",
    "https://www.w3.org/ns/did/v1",
)
# AS2 extension terms that every server defines inline (Mastodon, Misskey, Pleroma).
_CANONICAL_EXTENSIONS = {
    term: _AS + term for term in ("manuallyApprovesFollowers", "movedTo", "sensitive", "Hashtag")
}
_FORBIDDEN_KEYS = frozenset({"@graph", "@reverse", "@included", "@nest"})
_CONTEXT_KEYWORDS_ALLOWED = frozenset({"@version", "@language", "@direction", "@protected"})
_TERM_KEYS_ALLOWED = frozenset(
    "@id @type @container @language @direction @context @protected @prefix @index".split()
)
_KEYWORD_ALIASES_ALLOWED = frozenset({("id", "@id"), ("type", "@type")})
#: Objects and arrays nested deeper than this are refused (a scalar has nothing under it).
_MAX_DEPTH = 100


class JsonLdFailure(StrEnum):
    """Why a JSON-LD document was refused."""

    UNKNOWN_CONTEXT = "unknown_context"
    FORBIDDEN_KEYWORD = "forbidden_keyword"
    TERM_REDEFINED = "term_redefined"
    MALFORMED = "malformed_jsonld"


class JsonLdError(ValueError):
    """A document broke one of the inbound JSON-LD rules (DESIGN.md §5)."""

    def __init__(self, reason: JsonLdFailure, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@functools.cache
def _bundled_json(filename: str) -> Any:
    """Parse one bundled context file once per process."""
    ref = resources.files("schemas").joinpath("contexts", filename)
    return json.loads(ref.read_bytes())


def load_context(url: str) -> dict[str, Any]:
    """The bundled context document for a known URL (JSON-LD 1.1 API §9.4, from memory)."""
    filename = KNOWN_CONTEXTS.get(url)
    if filename is None:
        raise JsonLdError(JsonLdFailure.UNKNOWN_CONTEXT, f"context {url!r} is not bundled")
    # A deep copy, so no caller can change what the next caller reads.
    return dict(copy.deepcopy(_bundled_json(filename)))


@dataclass(frozen=True)
class _Scope:
    """The part of an active context the checks need: term -> expanded IRI, and @vocab."""

    terms: Mapping[str, str | None]
    vocab: str | None = None


@dataclass(frozen=True)
class _Rules:
    protected: frozenset[str]
    canonical: Mapping[str, str]
    extra: Mapping[str, Any]
    #: Checked scopes by path of @contexts; only under the default rules (see check_document).
    memo: EqualMemo[_Scope] | None = None


def extra_context(source: Any) -> Any:
    """A caller-supplied context: a whole context document or just its @context value."""
    return source["@context"] if isinstance(source, Mapping) and "@context" in source else source


@functools.cache
def _bundled_scope(filename: str) -> _Scope:
    """The terms one bundled context defines, resolved in isolation (they are standalone)."""
    return _apply(_Scope({}), _bundled_json(filename)["@context"], None, 0)


@functools.cache
def _canonical() -> Mapping[str, str]:
    """The standard IRI of every term the standard contexts define, scoped ones included."""
    found: dict[str, str] = {}
    for url in _CANONICAL_SOURCES:
        _collect_definitions(load_context(url)["@context"], found)
    found.update(_CANONICAL_EXTENSIONS)
    return MappingProxyType(found)


def _collect_definitions(context: Any, found: dict[str, str]) -> None:
    for entry in context if isinstance(context, list) else [context]:
        if not isinstance(entry, Mapping):
            continue
        for term, iri in _apply(_Scope({}), entry, None, 0).terms.items():
            if iri is not None:
                found.setdefault(term, iri)
        for definition in entry.values():
            if isinstance(definition, Mapping) and "@context" in definition:
                _collect_definitions(definition["@context"], found)


def _expand(value: str, local: Mapping[str, Any], scope: _Scope, seen: frozenset[str]) -> str:
    """IRI expansion of a term definition's value (JSON-LD 1.1 API §5.2, vocab-relative)."""
    if value.startswith("@"):
        return value
    prefix, colon, suffix = value.partition(":")
    if colon:
        if prefix == "_" or suffix.startswith("//"):
            return value
        base = _term_iri(prefix, local, scope, seen)
        return base + suffix if base else value
    iri = _term_iri(value, local, scope, seen)
    if iri is not None:
        return iri
    return (scope.vocab or "") + value


def _term_iri(
    name: str, local: Mapping[str, Any], scope: _Scope, seen: frozenset[str]
) -> str | None:
    if name in local and name not in seen:
        return _definition_iri(name, local[name], local, scope, seen | {name})
    return scope.terms.get(name)


def _definition_iri(
    name: str, definition: Any, local: Mapping[str, Any], scope: _Scope, seen: frozenset[str]
) -> str | None:
    """The IRI a term definition maps its term to (None: explicitly unmapped)."""
    if definition is None:
        return None
    if isinstance(definition, str):
        return _expand(definition, local, scope, seen)
    if not isinstance(definition, Mapping):
        raise JsonLdError(JsonLdFailure.MALFORMED, f"term {name!r}: definition of bad shape")
    target = definition.get("@id", name if ":" in name else None)
    if target is None:
        # No @id: a plain term maps through @vocab (or is dropped without one).
        return None if "@id" in definition or not scope.vocab else scope.vocab + name
    if not isinstance(target, str):
        raise JsonLdError(JsonLdFailure.MALFORMED, f"term {name!r} has a non-string @id")
    return _expand(target, local, scope, seen)


def _apply(scope: _Scope, context: Any, rules: _Rules | None, depth: int) -> _Scope:
    """The scope after a local context; ``rules`` is None for trusted bundled contexts."""
    if depth > _MAX_DEPTH:
        raise JsonLdError(JsonLdFailure.MALFORMED, "contexts nested too deeply")
    if isinstance(context, list):
        for entry in context:
            if isinstance(entry, list):
                raise JsonLdError(JsonLdFailure.MALFORMED, "@context holds a nested list")
            scope = _apply(scope, entry, rules, depth + 1)
        return scope
    if isinstance(context, str):
        return _apply_url(scope, context, rules)
    if context is None:
        raise JsonLdError(JsonLdFailure.TERM_REDEFINED, "a null @context unmaps every term")
    if not isinstance(context, Mapping):
        raise JsonLdError(JsonLdFailure.MALFORMED, f"@context entry is {type(context).__name__}")
    return _apply_object(scope, context, rules, depth)


def _apply_url(scope: _Scope, url: str, rules: _Rules | None) -> _Scope:
    if rules is not None and url in rules.extra:
        added = _apply(_Scope({}), extra_context(rules.extra[url]), None, 0)
    elif url in KNOWN_CONTEXTS:
        added = _bundled_scope(KNOWN_CONTEXTS[url])
    else:
        raise JsonLdError(JsonLdFailure.UNKNOWN_CONTEXT, f"context {url!r} is not bundled")
    vocab = added.vocab if added.vocab is not None else scope.vocab
    return _Scope({**scope.terms, **added.terms}, vocab)


def _apply_object(
    scope: _Scope, context: Mapping[str, Any], rules: _Rules | None, depth: int
) -> _Scope:
    vocab = scope.vocab
    for key, value in context.items():
        if not isinstance(key, str):
            raise JsonLdError(JsonLdFailure.MALFORMED, "context keys must be strings")
        if key == "@vocab":
            if rules is not None and value != scope.vocab:
                raise JsonLdError(JsonLdFailure.TERM_REDEFINED, f"@vocab changed to {value!r}")
            vocab = value if isinstance(value, str) else None
        elif rules is not None and key.startswith("@") and key not in _CONTEXT_KEYWORDS_ALLOWED:
            # @import, @propagate and @base change what other terms or ids mean.
            raise JsonLdError(JsonLdFailure.FORBIDDEN_KEYWORD, f"{key} in a context")
    # Terms resolve against the scope the @vocab change (if any) produced.
    base = _Scope(scope.terms, vocab)
    terms = dict(scope.terms)
    for name, definition in context.items():
        if name.startswith("@"):
            continue
        iri = _definition_iri(name, definition, context, base, frozenset({name}))
        if rules is not None:
            _check_term(name, definition, iri, scope, rules, depth)
        terms[name] = iri
    return _Scope(terms, vocab)


def _check_term(
    name: str, definition: Any, iri: str | None, scope: _Scope, rules: _Rules, depth: int
) -> None:
    """An inline term definition must neither alias keywords nor change a known meaning."""
    for key in definition if isinstance(definition, Mapping) else ():
        if key in _FORBIDDEN_KEYS:
            raise JsonLdError(JsonLdFailure.FORBIDDEN_KEYWORD, f"{key} in term {name!r}")
        if key not in _TERM_KEYS_ALLOWED:
            raise JsonLdError(JsonLdFailure.MALFORMED, f"term {name!r} has unknown key {key!r}")
    if iri is not None and iri.startswith("@") and (name, iri) not in _KEYWORD_ALIASES_ALLOWED:
        raise JsonLdError(JsonLdFailure.FORBIDDEN_KEYWORD, f"term {name!r} aliases {iri}")
    if name in rules.protected and name in rules.canonical and iri != rules.canonical[name]:
        raise JsonLdError(JsonLdFailure.TERM_REDEFINED, f"protected {name!r} redefined: {iri!r}")
    if name in scope.terms and scope.terms[name] != iri:
        raise JsonLdError(JsonLdFailure.TERM_REDEFINED, f"term {name!r} redefined to {iri!r}")
    if isinstance(definition, Mapping) and "@context" in definition:
        # A scoped context applies inside this term; check it against the scope around it.
        _checked_scope(scope, definition["@context"], rules, depth + 1)


def _checked_scope(scope: _Scope, context: Any, rules: _Rules, depth: int) -> _Scope:
    """Apply a document's @context, then insist protected terms kept their standard meaning."""
    result = _apply(scope, context, rules, depth)
    for term in rules.protected:
        if term in result.terms and term in rules.canonical:
            if result.terms[term] != rules.canonical[term]:
                detail = f"protected term {term!r} means {result.terms[term]!r} here"
                raise JsonLdError(JsonLdFailure.TERM_REDEFINED, detail)
    return result


#: The @contexts met on the way from a document's root to a node, each with its depth (as a
#: string: see :mod:`.memo`): what the scope at that node is a pure function of.
_Path = tuple[tuple[str, Any], ...]


#: JSON scalars: nothing under them to check, so :func:`_walk` does not descend into them (an
#: exact type test, where the Mapping test below goes through ABCMeta for every leaf).
_LEAVES = frozenset({str, int, float, bool, type(None)})


def _walk(node: Any, scope: _Scope, rules: _Rules, depth: int, path: _Path | None = ()) -> None:
    """Check every nested @context under the scope it extends, and every key."""
    if depth > _MAX_DEPTH:
        raise JsonLdError(JsonLdFailure.MALFORMED, "document nested too deeply")
    if isinstance(node, list):
        for item in node:
            if type(item) not in _LEAVES:
                _walk(item, scope, rules, depth + 1, path)
        return
    if not isinstance(node, Mapping):
        return
    if "@context" in node:
        scope, path = _context_scope(scope, node["@context"], rules, depth, path)
    for key, value in node.items():
        if key in _FORBIDDEN_KEYS:
            raise JsonLdError(JsonLdFailure.FORBIDDEN_KEYWORD, f"{key} is not accepted")
        if key != "@context" and type(value) not in _LEAVES:
            _walk(value, scope, rules, depth + 1, path)


def _context_scope(
    scope: _Scope, context: Any, rules: _Rules, depth: int, path: _Path | None
) -> tuple[_Scope, _Path | None]:
    """:func:`_checked_scope`, remembered in the caller's memo under the default rules: a
    city's activities share a handful of contexts (and a proof repeats its document's)."""
    if rules.memo is None or path is None:
        return _checked_scope(scope, context, rules, depth), None
    longer = (*path, (str(depth), context))
    known = rules.memo.get(longer)
    if known is None:
        known = rules.memo.put(longer, _checked_scope(scope, context, rules, depth))
    return known, longer


def check_document(
    document: Mapping[str, Any],
    *,
    protected_terms: Collection[str] = PROTECTED_TERMS,
    extra_contexts: Mapping[str, Mapping[str, Any]] | None = None,
    memo: EqualMemo[Any] | None = None,
) -> None:
    """Refuse what DESIGN.md §5 forbids in inbound JSON-LD; pure, no network (JSON-LD 1.1 §4.1).

    ``memo`` (the caller's, used only with the default rules) remembers the scopes of the
    @contexts it has checked, so a context seen before costs a comparison.
    """
    if not isinstance(document, Mapping):
        raise JsonLdError(JsonLdFailure.MALFORMED, "a JSON-LD document must be a JSON object")
    protected = frozenset(protected_terms)
    default = protected == PROTECTED_TERMS and not extra_contexts
    rules = _Rules(protected, _canonical(), dict(extra_contexts or {}), memo if default else None)
    _walk(document, _Scope({}), rules, 0)


def expand_iri(
    document: Mapping[str, Any],
    term: str,
    *,
    extra_contexts: Mapping[str, Mapping[str, Any]] | None = None,
) -> str | None:
    """The IRI ``term`` stands for under the document's top-level @context (JSON-LD 1.1 §4.1)."""
    check_document(document, extra_contexts=extra_contexts)
    rules = _Rules(frozenset(), {}, dict(extra_contexts or {}))
    scope = _apply(_Scope({}), document.get("@context", []), rules, 0)
    return _expand(term, {}, scope, frozenset())


def to_graph(
    document: Mapping[str, Any],
    *,
    extra_contexts: Mapping[str, Mapping[str, Any]] | None = None,
) -> rdflib.Graph:
    """JSON-LD to RDF (JSON-LD 1.1 API §8.4) with every context served from memory."""
    # rdflib is loaded only when a graph is asked for (tests, exports), never by the hot path.
    from activitypub.jsonld_rdf import graph_of

    return graph_of(document, extra_contexts)
