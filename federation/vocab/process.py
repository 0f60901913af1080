"""Participatory process ↔ ``["Page", "ParticipatoryProcess"]`` (vocab-spec "process")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activitypub import as2
from federation.model import Phase, Process, SupportRules

from . import converter, fail, reading
from .context import (
    NAME_MAX,
    SUMMARY_MAX,
    document_context,
    optional_datetime,
    optional_lang_text,
    put_datetime,
    put_lang_text,
    require_datetime,
    require_lang_text,
    territory_from_ap,
    territory_to_ap,
)
from .wire import (
    new_document,
    put,
    put_addressing,
    read_addressing,
    require_bool,
    require_embedded,
    require_same_origin,
)

TYPE = ["Page", "ParticipatoryProcess"]


def _phase_to_ap(phase: Phase) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "Phase"}
    put_lang_text(doc, "name", phase.name)
    put_datetime(doc, "startTime", phase.start)
    put_datetime(doc, "endTime", phase.end)
    doc["allowsProposals"] = phase.allows_proposals
    doc["allowsSupports"] = phase.allows_supports
    doc["allowsComments"] = phase.allows_comments
    doc["allowsDebates"] = phase.allows_debates
    return doc


def _rules_to_ap(rules: SupportRules) -> dict[str, Any]:
    return {
        "type": "SupportRules",
        "supportsPerParticipant": rules.supports_per_participant,
        "thresholdPerProposal": rules.threshold_per_proposal,
        "accumulateBeyondThreshold": rules.accumulate_beyond_threshold,
        "minimumSupportsPerParticipant": rules.minimum_supports_per_participant,
    }


def process_to_ap(process: Process) -> dict[str, Any]:
    """The process as a complete document (vocab-spec "process")."""
    doc = new_document(document_context(), process.id, list(TYPE))
    doc["attributedTo"] = process.owner
    doc["audience"] = process.owner
    put_lang_text(doc, "name", process.name)
    put_lang_text(doc, "summary", process.summary)
    put(doc, "url", process.url)
    put_datetime(doc, "published", process.published)
    put_datetime(doc, "updated", process.updated)
    doc["phases"] = [_phase_to_ap(phase) for phase in process.phases]
    doc["supportRules"] = _rules_to_ap(process.rules)
    doc["eligibleTerritories"] = [territory_to_ap(t) for t in process.eligible]
    put_addressing(doc, "to", process.to)
    put_addressing(doc, "cc", process.cc)
    return doc


def _phase_from_ap(value: Mapping[str, Any]) -> Phase:
    as2.require_type(value, "Phase")
    start = require_datetime(value, "startTime")
    end = require_datetime(value, "endTime")
    if end <= start:
        fail("endTime", "must be later than startTime", as2.first(value, "endTime"))
    return Phase(
        name=require_lang_text(value, "name", NAME_MAX),
        start=start,
        end=end,
        allows_proposals=require_bool(value, "allowsProposals"),
        allows_supports=require_bool(value, "allowsSupports"),
        allows_comments=require_bool(value, "allowsComments"),
        allows_debates=require_bool(value, "allowsDebates"),
    )


def _phases_from_ap(doc: Mapping[str, Any]) -> tuple[Phase, ...]:
    phases: list[Phase] = []
    for index, value in enumerate(as2.values(doc, "phases")):
        path = f"phases[{index}]"
        embedded = require_embedded(value, path, "Phase")
        with reading(path):
            phase = _phase_from_ap(embedded)
        # Phases are listed in order and do not overlap (touching ends are fine).
        if phases and phase.start < phases[-1].end:
            fail(f"phases[{index}].startTime", "must not be before the previous phase's endTime")
        phases.append(phase)
    if not phases:
        fail("phases", "is required: at least one Phase")
    return tuple(phases)


def _rules_from_ap(doc: Mapping[str, Any]) -> SupportRules:
    rules = as2.first(doc, "supportRules")
    if rules is None:
        return SupportRules()
    require_embedded(rules, "supportRules", "SupportRules")
    with reading("supportRules"):
        per_participant = as2.optional_int(rules, "supportsPerParticipant", minimum=0) or 0
        minimum = as2.optional_int(rules, "minimumSupportsPerParticipant", minimum=0) or 0
        # 0 means unlimited, so only a real limit bounds the minimum.
        if per_participant > 0 and minimum > per_participant:
            fail("minimumSupportsPerParticipant", "must not exceed supportsPerParticipant", minimum)
        return SupportRules(
            supports_per_participant=per_participant,
            threshold_per_proposal=as2.optional_int(rules, "thresholdPerProposal", minimum=0) or 0,
            accumulate_beyond_threshold=bool(as2.optional_bool(rules, "accumulateBeyondThreshold")),
            minimum_supports_per_participant=minimum,
        )


def _eligible_from_ap(doc: Mapping[str, Any]) -> tuple[Any, ...]:
    found = []
    for index, value in enumerate(as2.values(doc, "eligibleTerritories")):
        path = f"eligibleTerritories[{index}]"
        embedded = require_embedded(value, path, "Territory")
        with reading(path):
            found.append(territory_from_ap(embedded))
    if not found:
        fail("eligibleTerritories", "is required: at least one Territory")
    return tuple(found)


@converter
def process_from_ap(doc: Mapping[str, Any]) -> Process:
    """Read a process in any AS2 shape and enforce the vocab-spec "process" rules."""
    as2.require_type(doc, "ParticipatoryProcess")
    process_id = as2.require_id(doc, "id")
    owner = as2.require_id(doc, "attributedTo")
    require_same_origin("id", process_id, "attributedTo", owner)
    return Process(
        id=process_id,
        owner=owner,
        name=require_lang_text(doc, "name", NAME_MAX),
        summary=optional_lang_text(doc, "summary", SUMMARY_MAX),
        phases=_phases_from_ap(doc),
        rules=_rules_from_ap(doc),
        eligible=_eligible_from_ap(doc),
        published=require_datetime(doc, "published"),
        updated=optional_datetime(doc, "updated"),
        url=as2.optional_id(doc, "url"),
        to=read_addressing(doc, "to"),
        cc=read_addressing(doc, "cc"),
    )
