"""Comment ↔ ``Note`` (vocab-spec "comment"); Mastodon-style replies parse too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activitypub import as2
from federation.model import Alignment, Comment

from . import converter, fail
from .context import (
    document_context,
    optional_datetime,
    optional_source,
    put_datetime,
    put_source,
    require_content,
    require_datetime,
)
from .wire import new_document, put, put_addressing, read_addressing, read_enum, require_same_origin

TYPE = "Note"
MAX_DEPTH = 3  # Decidim's Comment::MAX_DEPTH: replies to a depth-3 comment are refused.


def creates_comment(activity: Mapping[str, Any]) -> bool:
    """A ``Create`` of a comment (a Note replying to something), or an ``Announce`` of one:
    the comment is in its thread's ``context`` collection too (FEP-7888)."""
    if as2.has_type(activity, "Announce"):
        activity = as2.embedded(activity, "object") or {}
    inner = as2.embedded(activity, "object") if as2.has_type(activity, "Create") else None
    return (
        inner is not None and as2.has_type(inner, TYPE)
        and as2.first_id(inner, "inReplyTo") is not None
    )  # fmt: skip


def comment_to_ap(comment: Comment) -> dict[str, Any]:
    """The comment as a complete ``Note`` (vocab-spec "comment")."""
    doc = new_document(document_context(), comment.id, TYPE)
    doc["attributedTo"] = comment.author
    doc["inReplyTo"] = comment.in_reply_to
    put(doc, "context", comment.context)
    doc["content"] = comment.content_html
    put_source(doc, comment.source_markdown)
    doc["alignment"] = comment.alignment.value
    put(doc, "depth", comment.depth)
    put_datetime(doc, "published", comment.published)
    put_datetime(doc, "updated", comment.updated)
    put(doc, "audience", comment.audience)
    put_addressing(doc, "to", comment.to)
    put_addressing(doc, "cc", comment.cc)
    return doc


def _depth(doc: Mapping[str, Any]) -> int | None:
    depth = as2.optional_int(doc, "depth")
    if depth is not None and not 1 <= depth <= MAX_DEPTH:
        fail("depth", f"must be between 1 and {MAX_DEPTH}", depth)
    return depth


@converter
def comment_from_ap(doc: Mapping[str, Any]) -> Comment:
    """Read a comment; a remote reply without alignment/depth is neutral with no depth."""
    as2.require_type(doc, "Note")
    comment_id = as2.require_id(doc, "id")
    author = as2.require_id(doc, "attributedTo")
    require_same_origin("id", comment_id, "attributedTo", author)
    return Comment(
        id=comment_id,
        author=author,
        in_reply_to=as2.require_id(doc, "inReplyTo"),
        context=as2.optional_id(doc, "context"),
        content_html=require_content(doc),
        source_markdown=optional_source(doc),
        alignment=read_enum(doc, "alignment", Alignment, default=Alignment.NEUTRAL),
        depth=_depth(doc),
        published=require_datetime(doc, "published"),
        updated=optional_datetime(doc, "updated"),
        audience=as2.optional_id(doc, "audience"),
        to=read_addressing(doc, "to"),
        cc=read_addressing(doc, "cc"),
    )
