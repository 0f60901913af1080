"""Support ↔ ``Like`` of a proposal, and its withdrawal ``Undo{Like}`` (vocab-spec "support").

Supports are private (DESIGN.md §6): addressed to the owning Group and the aggregators,
never to as:Public. The aggregator checks ``published`` against the supports phase. Neither
document uses a Barri term, so both carry AS2 + data-integrity only (``plain_context``); the
readers take any ``@context``, such as the whole Barri one older versions added.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activitypub import as2
from federation.model import Support, UndoSupport

from . import converter, fail, reading
from .context import plain_context, put_datetime, require_datetime
from .wire import (
    embed,
    new_document,
    put_addressing,
    read_addressing,
    read_object_or_id,
    require_not_public,
    require_same_origin,
)


def support_to_ap(support: Support) -> dict[str, Any]:
    """The support as a complete ``Like`` (vocab-spec "support")."""
    doc = new_document(plain_context(), support.id, "Like")
    doc["actor"] = support.actor
    doc["object"] = support.proposal
    put_datetime(doc, "published", support.published)
    put_addressing(doc, "to", support.to)
    return doc


def _recipients(doc: Mapping[str, Any]) -> tuple[str, ...]:
    require_not_public(doc)
    to = read_addressing(doc, "to")
    if not to:
        fail("to", "is required: the owning Group and the aggregators")
    return to


def _proposal_id(doc: Mapping[str, Any]) -> str:
    # A support names its proposal by id: an embedded copy could say anything about it.
    if not isinstance(as2.first(doc, "object"), str):
        fail("object", "must be the proposal's id (a string)", as2.first(doc, "object"))
    return as2.require_id(doc, "object")


@converter
def support_from_ap(doc: Mapping[str, Any]) -> Support:
    """Read a support ``Like`` and enforce the vocab-spec "support" rules."""
    as2.require_type(doc, "Like")
    support_id = as2.require_id(doc, "id")
    actor = as2.require_id(doc, "actor")
    require_same_origin("id", support_id, "actor", actor)
    return Support(
        id=support_id,
        actor=actor,
        proposal=_proposal_id(doc),
        published=require_datetime(doc, "published"),
        to=_recipients(doc),
    )


def undo_support_to_ap(undo: UndoSupport) -> dict[str, Any]:
    """The withdrawal as a complete ``Undo`` with the Like embedded or by id."""
    doc = new_document(plain_context(), undo.id, "Undo")
    doc["actor"] = undo.actor
    support = undo.support
    doc["object"] = support if isinstance(support, str) else embed(support_to_ap(support))
    put_datetime(doc, "published", undo.published)
    put_addressing(doc, "to", undo.to)
    return doc


def _undone(doc: Mapping[str, Any], actor: str) -> Support | str:
    found = read_object_or_id(doc, "object")
    if isinstance(found, str):
        return found
    with reading("object"):
        support = support_from_ap(found)
        # FEP-fe34: only the supporter may withdraw the support.
        if support.actor != actor:
            fail("actor", f"must be the Undo's actor ({actor})", support.actor)
    return support


@converter
def undo_support_from_ap(doc: Mapping[str, Any]) -> UndoSupport:
    """Read an ``Undo{Like}``; an embedded Like must be by the same actor."""
    as2.require_type(doc, "Undo")
    undo_id = as2.require_id(doc, "id")
    actor = as2.require_id(doc, "actor")
    require_same_origin("id", undo_id, "actor", actor)
    return UndoSupport(
        id=undo_id,
        actor=actor,
        support=_undone(doc, actor),
        published=require_datetime(doc, "published"),
        to=_recipients(doc),
    )
