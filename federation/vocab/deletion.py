"""Deletion ↔ ``Delete`` of a Tombstone, and the ``Tombstone`` served afterwards with 410.

vocab-spec "delete". Mastodon embeds a Tombstone without ``formerType``; Lemmy names the object
by id; both parse, with the unknown parts left None. The Tombstone we serve always has both.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from activitypub import as2
from federation.model import Deletion, Tombstone

from . import converter, reading
from .context import document_context, optional_datetime, put_datetime, require_datetime
from .wire import (
    new_document,
    put,
    put_addressing,
    read_addressing,
    read_object_or_id,
    require_same_origin,
)


def _tombstone_body(
    object_id: str, former_type: str | None, deleted: datetime | None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": object_id, "type": "Tombstone"}
    put(doc, "formerType", former_type)
    put_datetime(doc, "deleted", deleted)
    return doc


def tombstone_to_ap(tombstone: Tombstone) -> dict[str, Any]:
    """The ``Tombstone`` served where a deleted object was (vocab-spec "tombstone")."""
    body = _tombstone_body(tombstone.id, tombstone.former_type, tombstone.deleted)
    return {"@context": document_context(), **body}


@converter
def tombstone_from_ap(doc: Mapping[str, Any]) -> Tombstone:
    """Read a ``Tombstone`` with its ``formerType`` and ``deleted`` (AS2 §4)."""
    as2.require_type(doc, "Tombstone")
    return Tombstone(
        id=as2.require_id(doc, "id"),
        former_type=as2.require_str(doc, "formerType"),
        deleted=require_datetime(doc, "deleted"),
    )


def deletion_to_ap(deletion: Deletion) -> dict[str, Any]:
    """The deletion as a complete ``Delete`` embedding the Tombstone."""
    doc = new_document(document_context(), deletion.id, "Delete")
    doc["actor"] = deletion.actor
    doc["object"] = _tombstone_body(deletion.object_id, deletion.former_type, deletion.deleted)
    put_datetime(doc, "published", deletion.published)
    put_addressing(doc, "to", deletion.to)
    put_addressing(doc, "cc", deletion.cc)
    return doc


def _deleted(doc: Mapping[str, Any]) -> tuple[str, str | None, datetime | None]:
    found = read_object_or_id(doc, "object")
    if isinstance(found, str):
        return found, None, None
    with reading("object"):
        return (
            as2.require_id(found, "id"),
            as2.optional_str(found, "formerType"),
            optional_datetime(found, "deleted"),
        )


@converter
def deletion_from_ap(doc: Mapping[str, Any]) -> Deletion:
    """Read a ``Delete`` whose object is a Tombstone, another embedded object or an id."""
    as2.require_type(doc, "Delete")
    deletion_id = as2.require_id(doc, "id")
    actor = as2.require_id(doc, "actor")
    require_same_origin("id", deletion_id, "actor", actor)
    object_id, former_type, deleted = _deleted(doc)
    return Deletion(
        id=deletion_id,
        actor=actor,
        object_id=object_id,
        former_type=former_type,
        deleted=deleted,
        published=optional_datetime(doc, "published"),
        to=read_addressing(doc, "to"),
        cc=read_addressing(doc, "cc"),
    )
