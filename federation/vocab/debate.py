"""Debate ↔ ``["Page", "Debate"]`` (vocab-spec "debate")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activitypub import as2
from federation.model import Debate

from . import converter, fail
from .context import (
    CONCLUSIONS_MAX,
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
from .wire import new_document, put, put_addressing, read_addressing, require_same_origin

TYPE = ["Page", "Debate"]


def debate_to_ap(debate: Debate) -> dict[str, Any]:
    """The debate as a complete document (vocab-spec "debate")."""
    doc = new_document(document_context(), debate.id, list(TYPE))
    doc["attributedTo"] = debate.author
    doc["audience"] = debate.audience
    put(doc, "process", debate.process)
    put_lang_text(doc, "name", debate.name)
    doc["content"] = debate.content_html
    put_source(doc, debate.source_markdown)
    put_datetime(doc, "published", debate.published)
    put_datetime(doc, "updated", debate.updated)
    put(doc, "url", debate.url)
    put_datetime(doc, "startTime", debate.start)
    put_datetime(doc, "endTime", debate.end)
    put_datetime(doc, "closedAt", debate.closed_at)
    put_lang_text(doc, "conclusions", debate.conclusions)
    put(doc, "replies", debate.replies)
    put(doc, "context", debate.context)
    put_addressing(doc, "to", debate.to)
    put_addressing(doc, "cc", debate.cc)
    return doc


def _check(debate: Debate) -> None:
    # Decidim: a debate is closed only with conclusions; an AMA window must move forward.
    if debate.closed_at is not None and debate.conclusions is None:
        fail("conclusions", "is required when closedAt is present")
    if debate.start is not None and debate.end is not None and debate.end <= debate.start:
        fail("endTime", "must be later than startTime")


@converter
def debate_from_ap(doc: Mapping[str, Any]) -> Debate:
    """Read a debate in any AS2 shape and enforce the vocab-spec "debate" rules."""
    as2.require_type(doc, "Debate")
    debate_id = as2.require_id(doc, "id")
    author = as2.require_id(doc, "attributedTo")
    require_same_origin("id", debate_id, "attributedTo", author)
    debate = Debate(
        id=debate_id,
        author=author,
        audience=as2.require_id(doc, "audience"),
        process=as2.optional_id(doc, "process"),
        name=require_lang_text(doc, "name", NAME_MAX),
        content_html=require_content(doc),
        source_markdown=optional_source(doc),
        published=require_datetime(doc, "published"),
        updated=optional_datetime(doc, "updated"),
        url=as2.optional_id(doc, "url"),
        closed_at=optional_datetime(doc, "closedAt"),
        conclusions=optional_lang_text(doc, "conclusions", CONCLUSIONS_MAX),
        start=optional_datetime(doc, "startTime"),
        end=optional_datetime(doc, "endTime"),
        replies=as2.optional_id(doc, "replies"),
        context=as2.optional_id(doc, "context"),
        to=read_addressing(doc, "to"),
        cc=read_addressing(doc, "cc"),
    )
    _check(debate)
    return debate
