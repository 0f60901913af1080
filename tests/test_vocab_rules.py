"""federation.vocab: every semantic rule a JSON Schema cannot express has a failing case, and the
error names the field (with its path inside embedded objects) and the rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from activitypub.as2 import PUBLIC, As2Error
from federation.model import Territory, TerritoryKind
from federation.vocab import VocabError
from federation.vocab.actors import resident_territory_from_ap, service_extras
from federation.vocab.context import territory_to_ap
from federation.vocab.proposal import proposal_from_ap, proposal_to_ap
from tests.vocab_samples import (
    AGGREGATOR,
    GRACIA,
    GRACIA_NEIGHBOURHOOD,
    SANTS,
    SHAPES,
    proposal_full,
)

Mutation = Callable[[dict[str, Any]], None]
_DELETE = object()


def _set(key: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        doc[key] = value

    return mutate


def _drop(*keys: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        for key in keys:
            del doc[key]

    return mutate


def _nested(path: list[str | int], key: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for step in path:
            node = node[step]
        if value is _DELETE:
            del node[key]
        else:
            node[key] = value

    return mutate


def _combine(*mutations: Mutation) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        for one in mutations:
            one(doc)

    return mutate


def _swap_phases(doc: dict[str, Any]) -> None:
    doc["phases"][0], doc["phases"][1] = doc["phases"][1], doc["phases"][0]


def _overlap_phases(doc: dict[str, Any]) -> None:
    doc["phases"][1]["startTime"] = "2026-01-15T00:00:00Z"


def _unanswered(doc: dict[str, Any]) -> None:
    obj = doc["object"]
    obj["proposalState"] = "notAnswered"
    for key in ("officialAnswer", "officialAnswerMap", "answeredAt"):
        obj.pop(key, None)


RULES: list[tuple[str, Mutation, str, str]] = [
    # process
    ("process", _set("phases", []), "phases", "at least one Phase"),
    (
        "process",
        _nested(["phases", 0], "endTime", "2026-01-01T10:00:00Z"),
        "phases[0].endTime",
        "later than startTime",
    ),
    ("process", _overlap_phases, "phases[1].startTime", "previous phase"),
    ("process", _swap_phases, "phases[1].startTime", "previous phase"),
    (
        "process",
        _nested(["phases", 0], "allowsSupports", _DELETE),
        "phases[0].allowsSupports",
        "required",
    ),
    (
        "process",
        _nested(["phases", 0], "allowsSupports", "yes"),
        "phases[0].allowsSupports",
        "true or false",
    ),
    (
        "process",
        _nested(["supportRules"], "supportsPerParticipant", -1),
        "supportRules.supportsPerParticipant",
        "at least 0",
    ),
    (
        "process",
        _nested(["supportRules"], "thresholdPerProposal", -5),
        "supportRules.thresholdPerProposal",
        "at least 0",
    ),
    (
        "process",
        _nested(["supportRules"], "minimumSupportsPerParticipant", 11),
        "supportRules.minimumSupportsPerParticipant",
        "must not exceed supportsPerParticipant",
    ),
    ("process", _set("eligibleTerritories", []), "eligibleTerritories", "at least one"),
    (
        "process",
        _nested(["eligibleTerritories", 1], "districtCode", "06"),
        "eligibleTerritories[1].districtCode",
        "only for neighbourhoods",
    ),
    (
        "process",
        _nested(["eligibleTerritories", 0], "territoryKind", "barrio"),
        "eligibleTerritories[0].territoryKind",
        "must be one of city, district, neighbourhood",
    ),
    ("process", _set("attributedTo", f"{SANTS}/groups/association"), "id", "same origin"),
    # proposal
    ("proposal", _set("proposalState", "answered"), "proposalState", "must be one of"),
    ("proposal", _set("proposalState", "notAnswered"), "officialAnswer", "only allowed"),
    (
        "proposal",
        _combine(_set("proposalState", "withdrawn"), _drop("officialAnswer", "officialAnswerMap")),
        "answeredAt",
        "only allowed",
    ),
    ("proposal", _set("attributedTo", f"{GRACIA}/users/ana"), "id", "same origin"),
    ("proposal", _drop("process"), "process", "required"),
    ("proposal", _set("supportCount", -1), "supportCount", "at least 0"),
    ("proposal", _set("name", "x" * 151), "name", "at most 150"),
    ("proposal", _nested(["nameMap"], "es", "x" * 151), "nameMap.es", "at most 150"),
    ("proposal", _drop("content"), "content", "required"),
    ("proposal", _nested(["location"], "latitude", 91), "location.latitude", "between"),
    ("proposal", _set("type", ["Page"]), "type", "Proposal"),
    ("proposal", _set("published", "2026-03-01T10:00:00"), "published", "timezone"),
    ("proposal", _set("published", "yesterday"), "published", "date-time"),
    # debate
    ("debate", _drop("conclusions", "conclusionsMap"), "conclusions", "required when closedAt"),
    ("debate", _set("endTime", "2026-03-01T10:00:00Z"), "endTime", "later than startTime"),
    ("debate", _set("attributedTo", f"{SANTS}/users/joan"), "id", "same origin"),
    # comment
    ("comment", _set("depth", 0), "depth", "between 1 and 3"),
    ("comment", _set("depth", 4), "depth", "between 1 and 3"),
    ("comment", _set("depth", True), "depth", "integer"),
    ("comment", _set("alignment", "maybe"), "alignment", "inFavor, against, neutral"),
    ("comment", _set("attributedTo", f"{SANTS}/users/joan"), "id", "same origin"),
    ("comment", _drop("inReplyTo"), "inReplyTo", "required"),
    # support
    ("support", _set("to", [PUBLIC]), "to", "must not address the public"),
    ("support", _set("cc", ["as:Public"]), "cc", "must not address the public"),
    ("support", _set("to", "Public"), "to", "must not address the public"),
    ("support", _set("to", []), "to", "required"),
    (
        "support",
        _set("object", {"id": f"{SANTS}/proposals/1", "type": "Page"}),
        "object",
        "proposal's id",
    ),
    ("support", _set("actor", f"{SANTS}/users/joan"), "id", "same origin"),
    ("support", _drop("published"), "published", "required"),
    # undo-support
    (
        "undo-support",
        _nested(["object"], "actor", f"{GRACIA}/users/bob"),
        "object.actor",
        "must be the Undo's actor",
    ),
    ("undo-support", _set("cc", [PUBLIC]), "cc", "must not address the public"),
    ("undo-support", _nested(["object"], "to", [PUBLIC]), "object.to", "public"),
    ("undo-support", _set("actor", f"{SANTS}/users/joan"), "id", "same origin"),
    # comment votes
    ("comment-vote", _set("type", "Announce"), "type", "Like, Dislike"),
    ("comment-vote", _set("actor", f"{SANTS}/users/joan"), "id", "same origin"),
    (
        "undo-comment-vote",
        _nested(["object"], "actor", f"{GRACIA}/users/bob"),
        "object.actor",
        "must be the Undo's actor",
    ),
    # official answer
    (
        "official-answer",
        _nested(["object"], "audience", f"{GRACIA}/groups/other"),
        "object.audience",
        "only the owning Group answers",
    ),
    ("official-answer", _unanswered, "object.proposalState", "evaluating, accepted, rejected"),
    (
        "official-answer",
        _nested(["object"], "answeredAt", _DELETE),
        "object.answeredAt",
        "required",
    ),
    ("official-answer", _set("object", f"{SANTS}/proposals/1"), "object", "embedded"),
    (
        "official-answer",
        _nested(["object"], "proposalState", "maybe"),
        "object.proposalState",
        "must be one of",
    ),
    # announce, delete, tombstone
    ("announce", _set("object", f"{SANTS}/likes/1"), "object", "embedded"),
    ("announce", _nested(["object"], "id", _DELETE), "object.id", "required"),
    ("announce", _nested(["object"], "type", _DELETE), "object.type", "required"),
    ("delete", _drop("object"), "object", "required"),
    ("delete", _set("actor", AGGREGATOR), "id", "same origin"),
    ("tombstone", _drop("formerType"), "formerType", "required"),
    ("tombstone", _drop("deleted"), "deleted", "required"),
    # tally
    ("tally", _set("participants", -1), "participants", "at least 0"),
    ("tally", _set("inputsCount", "42"), "inputsCount", "integer"),
    ("tally", _nested(["results", 0], "supports", -1), "results[0].supports", "at least 0"),
    ("tally", _nested(["totals", 0], "supports", -3), "totals[0].supports", "at least 0"),
    (
        "tally",
        _nested(["results", 0], "supports", 41),
        "results[0].byTerritory",
        "must sum to supports (41)",
    ),
    (
        "tally",
        _nested(["results", 0, "byTerritory", 0], "territoryKind", "street"),
        "results[0].byTerritory[0].territoryKind",
        "must be one of",
    ),
    ("tally", _set("inputsDigest", "sha-256=:abc:"), "inputsDigest", "sha-256=:"),
    ("tally", _drop("final"), "final", "required"),
]


@pytest.mark.parametrize(
    ("shape", "mutate", "field", "rule"),
    RULES,
    ids=[f"{shape}-{field}-{i}" for i, (shape, _, field, _r) in enumerate(RULES)],
)
def test_rule_is_enforced_and_the_message_names_the_field(
    shape: str, mutate: Mutation, field: str, rule: str
) -> None:
    converter = SHAPES[shape]
    doc = converter.to_ap(converter.full())
    converter.from_ap(doc)  # valid before the change
    mutate(doc)
    with pytest.raises(VocabError) as caught:
        converter.from_ap(doc)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert rule in str(caught.value)


def test_the_state_message_is_the_one_documented() -> None:
    doc = proposal_to_ap(proposal_full())
    doc["proposalState"] = "maybe"
    with pytest.raises(VocabError) as caught:
        proposal_from_ap(doc)
    assert str(caught.value) == (
        "proposalState: must be one of notAnswered, evaluating, accepted, rejected, withdrawn "
        "(got 'maybe')"
    )


def test_one_error_type_which_is_a_value_error_and_keeps_the_as2_cause() -> None:
    doc = proposal_to_ap(proposal_full())
    doc["published"] = 20260301
    with pytest.raises(VocabError) as caught:
        proposal_from_ap(doc)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value.__cause__, As2Error)
    assert caught.value.field == "published"


@pytest.mark.parametrize("value", [None, [], "a string", 42])
def test_a_document_that_is_not_an_object_is_refused(value: Any) -> None:
    with pytest.raises(VocabError, match=r"^document: must be a JSON object"):
        proposal_from_ap(value)


def test_minimum_supports_may_exceed_an_unlimited_allowance() -> None:
    shape = SHAPES["process"]
    doc = shape.to_ap(shape.full())
    doc["supportRules"]["supportsPerParticipant"] = 0
    doc["supportRules"]["minimumSupportsPerParticipant"] = 50
    assert shape.from_ap(doc).rules.minimum_supports_per_participant == 50


def test_phases_may_touch_end_to_start() -> None:
    shape = SHAPES["process"]
    doc = shape.to_ap(shape.full())
    doc["phases"][1]["startTime"] = doc["phases"][0]["endTime"]
    assert shape.from_ap(doc).phases[1].start == shape.from_ap(doc).phases[0].end


def test_answered_states_accept_an_answer() -> None:
    doc = proposal_to_ap(proposal_full())
    for state in ("evaluating", "accepted", "rejected"):
        doc["proposalState"] = state
        assert proposal_from_ap(doc).answer is not None


def test_a_malformed_resident_territory_names_its_path() -> None:
    actor: dict[str, Any] = {"id": f"{GRACIA}/users/ana", "type": "Person"}
    actor["verifiedResidentOf"] = {**territory_to_ap(GRACIA_NEIGHBOURHOOD), "territoryCode": 31}
    with pytest.raises(VocabError) as caught:
        resident_territory_from_ap(actor)
    assert caught.value.field == "verifiedResidentOf.territoryCode"
    actor["verifiedResidentOf"] = "https://gracia.barri.example/territories/31"
    with pytest.raises(VocabError, match=r"^verifiedResidentOf: must be an embedded Territory"):
        resident_territory_from_ap(actor)


def test_the_aggregator_territory_must_be_the_city() -> None:
    with pytest.raises(ValueError, match="city"):
        service_extras(Territory(TerritoryKind.DISTRICT, "06"))
