"""JSON-LD to RDF with rdflib, every context served from memory (``jsonld.to_graph``).

Only the vocabulary tests and the RDF exports build graphs; the inbox reads the JSON
(DESIGN.md §5), so rdflib is imported here and nowhere on the hot path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import rdflib

from activitypub.jsonld import (
    JsonLdError,
    JsonLdFailure,
    check_document,
    extra_context,
    load_context,
)


def _inline(context: Any, extra: Mapping[str, Any]) -> Any:
    """The context with every URL replaced by the bundled document's own @context value."""
    if isinstance(context, str):
        if context in extra:
            return _inline(extra_context(extra[context]), extra)
        return _inline(load_context(context)["@context"], extra)
    if isinstance(context, list):
        return [_inline(entry, extra) for entry in context]
    if not isinstance(context, Mapping):
        return context
    inlined = dict(context)
    for term, definition in context.items():
        if isinstance(definition, Mapping) and "@context" in definition:
            # Scoped contexts may name URLs too.
            inlined[term] = {**definition, "@context": _inline(definition["@context"], extra)}
    return inlined


def _inline_document(node: Any, extra: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline_document(item, extra) for item in node]
    if isinstance(node, Mapping):
        return {
            key: _inline(value, extra) if key == "@context" else _inline_document(value, extra)
            for key, value in node.items()
        }
    return node


def graph_of(
    document: Mapping[str, Any], extra_contexts: Mapping[str, Mapping[str, Any]] | None = None
) -> rdflib.Graph:
    """JSON-LD to RDF (JSON-LD 1.1 API §8.4) with every context served from memory."""
    check_document(document, extra_contexts=extra_contexts)
    # rdflib fetches any context URL it meets; after inlining, it meets none.
    inlined = _inline_document(document, dict(extra_contexts or {}))
    try:
        data = json.dumps(inlined)
    except (TypeError, ValueError) as exc:
        raise JsonLdError(JsonLdFailure.MALFORMED, f"not JSON: {exc}") from exc
    doc_id = document.get("id", document.get("@id"))
    dataset = rdflib.Dataset(default_union=True)
    try:
        dataset.parse(data=data, format="json-ld", base=doc_id if isinstance(doc_id, str) else None)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # rdflib reports odd shapes (e.g. a number as a language tag) with built-in errors.
        raise JsonLdError(JsonLdFailure.MALFORMED, f"rdflib could not read it: {exc}") from exc
    # One plain graph: statements a graph container (data-integrity's proof) puts in a named
    # graph are merged in. rdflib 7.6 links `proof` to a fresh blank node, not the proof node.
    graph = rdflib.Graph()
    for triple in dataset.triples((None, None, None)):
        graph.add(triple)
    return graph
