"""Tally ↔ ``["Note", "Tally"]`` published by the aggregator (vocab-spec "tally").

``inputsDigest`` is ``sha-256=:<base64>:`` (RFC 9530 style) over the UTF-8 bytes of the ids of
the counted support activities, sorted by code point and joined by "\\n" (no trailing newline):
anyone holding the same supports recomputes the same digest.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from activitypub import as2
from federation.model import ProposalResult, Tally, TerritoryCount, TerritoryKind

from . import converter, fail, reading
from .context import document_context, put_datetime, require_content, require_datetime
from .wire import (
    new_document,
    put_addressing,
    read_addressing,
    read_enum,
    require_bool,
    require_embedded,
)

TYPE = ["Note", "Tally"]
# Base64 of 32 bytes is 43 characters and one "=".
_DIGEST = re.compile(r"sha-256=:[A-Za-z0-9+/]{43}=:")


def inputs_digest(support_ids: Iterable[str]) -> str:
    """The ``inputsDigest`` of the counted support activities (see the module docstring)."""
    joined = "\n".join(sorted(support_ids)).encode("utf-8")
    return "sha-256=:" + base64.b64encode(hashlib.sha256(joined).digest()).decode("ascii") + ":"


def _count_to_ap(count: TerritoryCount) -> dict[str, Any]:
    return {
        "type": "TerritoryCount",
        "territoryKind": count.kind.value,
        "territoryCode": count.code,
        "supports": count.supports,
    }


def _result_to_ap(result: ProposalResult) -> dict[str, Any]:
    return {
        "type": "ProposalResult",
        "proposal": result.proposal,
        "supports": result.supports,
        "byTerritory": [_count_to_ap(count) for count in result.by_territory],
    }


def tally_to_ap(tally: Tally) -> dict[str, Any]:
    """The tally as a complete document (vocab-spec "tally")."""
    doc = new_document(document_context(), tally.id, list(TYPE))
    doc["attributedTo"] = tally.aggregator
    doc["process"] = tally.process
    put_datetime(doc, "asOf", tally.as_of)
    doc["final"] = tally.final
    doc["content"] = tally.summary_html
    doc["inputsCount"] = tally.inputs_count
    doc["inputsDigest"] = tally.inputs_digest
    doc["participants"] = tally.participants
    doc["results"] = [_result_to_ap(result) for result in tally.results]
    doc["totals"] = [_count_to_ap(count) for count in tally.totals]
    put_datetime(doc, "published", tally.published)
    put_addressing(doc, "to", tally.to)
    return doc


def _count_from_ap(value: Mapping[str, Any]) -> TerritoryCount:
    as2.require_type(value, "TerritoryCount")
    return TerritoryCount(
        kind=read_enum(value, "territoryKind", TerritoryKind),
        code=as2.require_str(value, "territoryCode"),
        supports=as2.require_int(value, "supports", minimum=0),
    )


def _counts(doc: Mapping[str, Any], key: str) -> tuple[TerritoryCount, ...]:
    found = []
    for index, value in enumerate(as2.values(doc, key)):
        path = f"{key}[{index}]"
        embedded = require_embedded(value, path, "TerritoryCount")
        with reading(path):
            found.append(_count_from_ap(embedded))
    return tuple(found)


def _result_from_ap(value: Mapping[str, Any]) -> ProposalResult:
    as2.require_type(value, "ProposalResult")
    result = ProposalResult(
        proposal=as2.require_id(value, "proposal"),
        supports=as2.require_int(value, "supports", minimum=0),
        by_territory=_counts(value, "byTerritory"),
    )
    neighbourhoods = [c for c in result.by_territory if c.kind is TerritoryKind.NEIGHBOURHOOD]
    # Every counted support comes from one neighbourhood, so the breakdown adds up.
    if neighbourhoods and sum(c.supports for c in neighbourhoods) != result.supports:
        total = sum(c.supports for c in neighbourhoods)
        fail(
            "byTerritory", f"neighbourhood supports must sum to supports ({result.supports})", total
        )
    return result


def _results(doc: Mapping[str, Any]) -> tuple[ProposalResult, ...]:
    found = []
    for index, value in enumerate(as2.values(doc, "results")):
        path = f"results[{index}]"
        embedded = require_embedded(value, path, "ProposalResult")
        with reading(path):
            found.append(_result_from_ap(embedded))
    return tuple(found)


def _digest(doc: Mapping[str, Any]) -> str:
    digest = as2.require_str(doc, "inputsDigest")
    if not _DIGEST.fullmatch(digest):
        fail("inputsDigest", "must be sha-256=:<base64 of 32 bytes>:", digest)
    return digest


@converter
def tally_from_ap(doc: Mapping[str, Any]) -> Tally:
    """Read a tally and enforce the vocab-spec "tally" rules (counts, sums, digest form)."""
    as2.require_type(doc, "Tally")
    return Tally(
        id=as2.require_id(doc, "id"),
        aggregator=as2.require_id(doc, "attributedTo"),
        process=as2.require_id(doc, "process"),
        as_of=require_datetime(doc, "asOf"),
        final=require_bool(doc, "final"),
        inputs_count=as2.require_int(doc, "inputsCount", minimum=0),
        inputs_digest=_digest(doc),
        participants=as2.require_int(doc, "participants", minimum=0),
        results=_results(doc),
        totals=_counts(doc, "totals"),
        published=require_datetime(doc, "published"),
        summary_html=require_content(doc),
        to=read_addressing(doc, "to"),
    )
