"""Proposal ↔ ``["Page", "Proposal"]`` (vocab-spec "proposal")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activitypub import as2
from federation.model import Location, Proposal, ProposalState

from . import converter, fail, reading
from .context import (
    ANSWER_MAX,
    NAME_MAX,
    document_context,
    optional_datetime,
    optional_lang_text,
    optional_source,
    put_datetime,
    put_lang_text,
    put_source,
    require_content,
    require_datetime,
    require_lang_text,
)
from .wire import (
    new_document,
    put,
    put_addressing,
    read_addressing,
    read_enum,
    read_number,
    require_embedded,
    require_same_origin,
)

TYPE = ["Page", "Proposal"]


def location_to_ap(location: Location) -> dict[str, Any]:
    """The embedded ``Place`` (AS2 §4 location)."""
    doc: dict[str, Any] = {"type": "Place"}
    put(doc, "name", location.name)
    put(doc, "latitude", location.latitude)
    put(doc, "longitude", location.longitude)
    return doc


def location_from_ap(doc: Mapping[str, Any]) -> Location | None:
    """The proposal's ``location`` when present: an embedded Place with optional coordinates."""
    value = as2.first(doc, "location")
    if value is None:
        return None
    require_embedded(value, "location", "Place")
    with reading("location"):
        return Location(
            name=as2.optional_str(value, "name"),
            latitude=read_number(value, "latitude", -90, 90),
            longitude=read_number(value, "longitude", -180, 180),
        )


def proposal_to_ap(proposal: Proposal) -> dict[str, Any]:
    """The proposal as a complete document (vocab-spec "proposal")."""
    doc = new_document(document_context(), proposal.id, list(TYPE))
    doc["attributedTo"] = proposal.author
    doc["audience"] = proposal.audience
    doc["process"] = proposal.process
    put_lang_text(doc, "name", proposal.name)
    doc["content"] = proposal.content_html
    put_source(doc, proposal.source_markdown)
    put_datetime(doc, "published", proposal.published)
    put_datetime(doc, "updated", proposal.updated)
    put(doc, "url", proposal.url)
    doc["proposalState"] = proposal.state.value
    put_lang_text(doc, "officialAnswer", proposal.answer)
    put_datetime(doc, "answeredAt", proposal.answered_at)
    put(doc, "supportCount", proposal.support_count)
    put(doc, "replies", proposal.replies)
    put(doc, "context", proposal.context)
    if proposal.location is not None:
        doc["location"] = location_to_ap(proposal.location)
    put_addressing(doc, "to", proposal.to)
    put_addressing(doc, "cc", proposal.cc)
    return doc


def _check_answer(proposal: Proposal) -> None:
    # Decidim: an answer belongs to an answered state; notAnswered/withdrawn carry none.
    if proposal.state.answered:
        return
    if proposal.answer is not None:
        fail(
            "officialAnswer",
            f"is only allowed when proposalState is evaluating, accepted or "
            f"rejected, not {proposal.state.value}",
        )
    if proposal.answered_at is not None:
        fail(
            "answeredAt",
            f"is only allowed when proposalState is evaluating, accepted or "
            f"rejected, not {proposal.state.value}",
        )


@converter
def proposal_from_ap(doc: Mapping[str, Any]) -> Proposal:
    """Read a proposal in any AS2 shape and enforce the vocab-spec "proposal" rules."""
    as2.require_type(doc, "Proposal")
    proposal_id = as2.require_id(doc, "id")
    author = as2.require_id(doc, "attributedTo")
    # A resident's proposal lives on the resident's instance, even for a remote process.
    require_same_origin("id", proposal_id, "attributedTo", author)
    proposal = Proposal(
        id=proposal_id,
        author=author,
        audience=as2.require_id(doc, "audience"),
        process=as2.require_id(doc, "process"),
        name=require_lang_text(doc, "name", NAME_MAX),
        content_html=require_content(doc),
        source_markdown=optional_source(doc),
        published=require_datetime(doc, "published"),
        updated=optional_datetime(doc, "updated"),
        url=as2.optional_id(doc, "url"),
        state=read_enum(doc, "proposalState", ProposalState),
        answer=optional_lang_text(doc, "officialAnswer", ANSWER_MAX),
        answered_at=optional_datetime(doc, "answeredAt"),
        support_count=as2.optional_int(doc, "supportCount", minimum=0),
        location=location_from_ap(doc),
        replies=as2.optional_id(doc, "replies"),
        context=as2.optional_id(doc, "context"),
        to=read_addressing(doc, "to"),
        cc=read_addressing(doc, "cc"),
    )
    _check_answer(proposal)
    return proposal
