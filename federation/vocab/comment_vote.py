"""Comment vote ↔ ``Like`` (up) / ``Dislike`` (down) of a Note, and its ``Undo`` (Lemmy-style).

Lemmy's votes are public (``to: [as:Public]``, ``cc: [community]``, ``audience``) and carry no
``published``; both readers accept that shape as it is. Votes use no Barri term, so they carry
AS2 + data-integrity only (``plain_context``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activitypub import as2
from federation.model import CommentVote, UndoCommentVote

from . import converter, fail, reading
from .context import optional_datetime, plain_context, put_datetime
from .wire import (
    embed,
    new_document,
    put,
    put_addressing,
    read_addressing,
    read_object_or_id,
    require_same_origin,
)


def comment_vote_to_ap(vote: CommentVote) -> dict[str, Any]:
    """The vote as a complete ``Like`` or ``Dislike`` (vocab-spec "comment-vote")."""
    doc = new_document(plain_context(), vote.id, "Like" if vote.up else "Dislike")
    doc["actor"] = vote.actor
    doc["object"] = vote.comment
    put_datetime(doc, "published", vote.published)
    put_addressing(doc, "to", vote.to)
    put_addressing(doc, "cc", vote.cc)
    put(doc, "audience", vote.audience)
    return doc


@converter
def comment_vote_from_ap(doc: Mapping[str, Any]) -> CommentVote:
    """Read a ``Like``/``Dislike`` of a comment (ours or Lemmy's)."""
    kind = as2.require_type(doc, "Like", "Dislike")
    vote_id = as2.require_id(doc, "id")
    actor = as2.require_id(doc, "actor")
    require_same_origin("id", vote_id, "actor", actor)
    return CommentVote(
        id=vote_id,
        actor=actor,
        comment=as2.require_id(doc, "object"),
        up=kind == "Like",
        published=optional_datetime(doc, "published"),
        audience=as2.optional_id(doc, "audience"),
        to=read_addressing(doc, "to"),
        cc=read_addressing(doc, "cc"),
    )


def undo_comment_vote_to_ap(undo: UndoCommentVote) -> dict[str, Any]:
    """The retraction as a complete ``Undo`` with the vote embedded or by id."""
    doc = new_document(plain_context(), undo.id, "Undo")
    doc["actor"] = undo.actor
    vote = undo.vote
    doc["object"] = vote if isinstance(vote, str) else embed(comment_vote_to_ap(vote))
    put_datetime(doc, "published", undo.published)
    put_addressing(doc, "to", undo.to)
    put_addressing(doc, "cc", undo.cc)
    put(doc, "audience", undo.audience)
    return doc


def _undone(doc: Mapping[str, Any], actor: str) -> CommentVote | str:
    found = read_object_or_id(doc, "object")
    if isinstance(found, str):
        return found
    with reading("object"):
        vote = comment_vote_from_ap(found)
        # FEP-fe34: only the voter may retract the vote.
        if vote.actor != actor:
            fail("actor", f"must be the Undo's actor ({actor})", vote.actor)
    return vote


@converter
def undo_comment_vote_from_ap(doc: Mapping[str, Any]) -> UndoCommentVote:
    """Read an ``Undo`` of a comment vote; an embedded vote must be by the same actor."""
    as2.require_type(doc, "Undo")
    undo_id = as2.require_id(doc, "id")
    actor = as2.require_id(doc, "actor")
    require_same_origin("id", undo_id, "actor", actor)
    return UndoCommentVote(
        id=undo_id,
        actor=actor,
        vote=_undone(doc, actor),
        published=optional_datetime(doc, "published"),
        audience=as2.optional_id(doc, "audience"),
        to=read_addressing(doc, "to"),
        cc=read_addressing(doc, "cc"),
    )
