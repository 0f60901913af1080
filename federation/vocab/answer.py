"""Official answer ↔ ``Update`` of a proposal by the owning Group (vocab-spec "official-answer").

The proposal belongs to its author (``attributedTo``, maybe on another instance); the Group's
right to answer comes from owning the process, which the proposal names as its ``audience``.
So this is the one Update not made by the object's owner (FEP-fe34 relaxed for this case).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activitypub import as2
from federation.model import OfficialAnswer, Proposal

from . import converter, fail, reading
from .context import document_context, put_datetime, require_datetime
from .proposal import proposal_from_ap, proposal_to_ap
from .wire import embed, new_document, put_addressing, read_addressing, require_same_origin


def official_answer_to_ap(answer: OfficialAnswer) -> dict[str, Any]:
    """The answer as a complete ``Update`` embedding the whole answered proposal."""
    doc = new_document(document_context(), answer.id, "Update")
    doc["actor"] = answer.group
    doc["object"] = embed(proposal_to_ap(answer.proposal))
    put_datetime(doc, "published", answer.published)
    put_addressing(doc, "to", answer.to)
    put_addressing(doc, "cc", answer.cc)
    return doc


def _check_answered(proposal: Proposal, group: str) -> None:
    if proposal.audience != group:
        fail(
            "audience",
            f"must be the Update's actor ({group}): only the owning Group answers",
            proposal.audience,
        )
    if not proposal.state.answered:
        fail(
            "proposalState",
            "must be one of evaluating, accepted, rejected in an answer",
            proposal.state.value,
        )
    if proposal.answer is None:
        fail("officialAnswer", "is required in an answer")
    if proposal.answered_at is None:
        fail("answeredAt", "is required in an answer")


@converter
def official_answer_from_ap(doc: Mapping[str, Any]) -> OfficialAnswer:
    """Read an ``Update{Proposal}`` from the Group owning the proposal's process."""
    as2.require_type(doc, "Update")
    answer_id = as2.require_id(doc, "id")
    group = as2.require_id(doc, "actor")
    require_same_origin("id", answer_id, "actor", group)
    embedded = as2.require_object(doc, "object")
    with reading("object"):
        proposal = proposal_from_ap(embedded)
        _check_answered(proposal, group)
    return OfficialAnswer(
        id=answer_id,
        group=group,
        proposal=proposal,
        published=require_datetime(doc, "published"),
        to=read_addressing(doc, "to"),
        cc=read_addressing(doc, "cc"),
    )
