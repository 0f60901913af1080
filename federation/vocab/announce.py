"""Announcement ↔ ``Announce`` by a Group of a member's activity (FEP-1b12; vocab-spec "announce").

The member's activity is embedded unchanged: it carries its own FEP-8b32 proof, which is what
lets a receiver verify it without trusting the Group. So it is copied, never re-serialised.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from activitypub import as2
from activitypub.jcs import plain_json
from federation.model import Announcement

from . import converter, fail, reading
from .context import document_context, optional_datetime, plain_context, put_datetime
from .wire import new_document, put, put_addressing, read_addressing, require_same_origin


def announce_to_ap(announcement: Announcement) -> dict[str, Any]:
    """The announcement as a complete ``Announce`` embedding the activity verbatim.

    The Announce uses no Barri term itself, so it carries AS2 + data-integrity only when the
    activity brings its own ``@context`` (every proved one does): the inline object would be
    paid twice more (here and in the Group's proof) at every hop. An activity without one is
    read in its container's context (JSON-LD 1.1 §4.1), so that Announce keeps our terms.
    """
    own = "@context" in announcement.activity
    context = plain_context() if own else document_context()
    doc = new_document(context, announcement.id, "Announce")
    doc["actor"] = announcement.group
    doc["object"] = plain_json(announcement.activity)
    put_datetime(doc, "published", announcement.published)
    put_addressing(doc, "to", announcement.to)
    put_addressing(doc, "cc", announcement.cc)
    put(doc, "audience", announcement.audience)
    return doc


@converter
def announce_from_ap(doc: Mapping[str, Any]) -> Announcement:
    """Read a Group's ``Announce``; the embedded activity is kept as received (with its proof)."""
    as2.require_type(doc, "Announce")
    announce_id = as2.require_id(doc, "id")
    group = as2.require_id(doc, "actor")
    require_same_origin("id", announce_id, "actor", group)
    activity = as2.require_object(doc, "object")
    with reading("object"):
        as2.require_id(activity, "id")
        if not as2.types(activity):
            fail("type", "is required: the announced activity's type")
    return Announcement(
        id=announce_id,
        group=group,
        # A deep copy: the caller's document may change later; this one must not.
        activity=MappingProxyType(plain_json(activity)),
        published=optional_datetime(doc, "published"),
        audience=as2.optional_id(doc, "audience"),
        to=read_addressing(doc, "to"),
        cc=read_addressing(doc, "cc"),
    )
