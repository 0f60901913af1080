"""Small readers and writers shared by the converters: enums, booleans, addressing, origins.

Readers take values only through ``activitypub.as2`` and raise ``VocabError`` naming the field.
Writers never emit null: an absent value is an absent key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from activitypub import as2
from activitypub.origin import same_origin

from . import fail

_E = TypeVar("_E", bound=StrEnum)


def put(doc: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is None (the vocabulary never publishes null)."""
    if value is not None:
        doc[key] = value


def put_addressing(doc: dict[str, Any], key: str, addresses: Sequence[str]) -> None:
    """Set an addressing list (``to``/``cc``) in its given order, unless it is empty."""
    if addresses:
        doc[key] = list(addresses)


def read_addressing(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """Every id in an addressing property: a value or a list, ids or objects (AS2 §2)."""
    return tuple(as2.ids(doc, key))


def read_enum(doc: Mapping[str, Any], key: str, enum: type[_E], default: _E | None = None) -> _E:
    """A string property whose value must be one of ``enum``'s wire values."""
    allowed = ", ".join(member.value for member in enum)
    value = as2.optional_str(doc, key)
    if value is None:
        if default is None:
            fail(key, f"is required: one of {allowed}")
        return default
    try:
        return enum(value)
    except ValueError:
        fail(key, f"must be one of {allowed}", value)


def require_bool(doc: Mapping[str, Any], key: str) -> bool:
    """A boolean property that must be present."""
    value = as2.optional_bool(doc, key)
    if value is None:
        fail(key, "is required and must be true or false")
    return value


def require_same_origin(field: str, value: str, owner_field: str, owner: str) -> None:
    """FEP-fe34: ``value`` (an id) must live on the origin of ``owner`` (its actor/author)."""
    if not same_origin(value, owner):
        fail(field, f"must be on the same origin as {owner_field} ({owner})", value)


def require_not_public(doc: Mapping[str, Any]) -> None:
    """DESIGN.md §6: supports are private, so no addressing field may name as:Public."""
    for key in as2.ADDRESSING:
        if key in doc and any(as2.is_public(address) for address in as2.ids(doc, key)):
            fail(key, "must not address the public collection (supports are not public)")


def check_length(field: str, text: str, maximum: int) -> None:
    """A server-enforced length limit (vocab-spec "Length limits")."""
    if len(text) > maximum:
        fail(field, f"must be at most {maximum} characters", f"{len(text)} characters")


def read_number(doc: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
    """An optional JSON number (not a boolean) between ``low`` and ``high`` inclusive."""
    value = as2.first(doc, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(key, "must be a number", value)
    if not low <= value <= high:
        fail(key, f"must be between {low:g} and {high:g}", value)
    return float(value)


def read_object_or_id(doc: Mapping[str, Any], key: str) -> Mapping[str, Any] | str:
    """A functional object property that may be embedded or a bare id; both must have an id."""
    found = as2.require_id(doc, key)
    embedded = as2.embedded(doc, key)
    return embedded if embedded is not None else found


def require_embedded(value: Any, field: str, kind: str) -> Mapping[str, Any]:
    """A value that must be an embedded object (e.g. a Phase inside ``phases``)."""
    if not isinstance(value, Mapping):
        fail(field, f"must be an embedded {kind} object", value)
    return value


def new_document(context: list[Any], doc_id: str, doc_type: str | list[str]) -> dict[str, Any]:
    """The head every published document starts with."""
    return {"@context": context, "id": doc_id, "type": doc_type}


def embed(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document to embed in another: the outer document's ``@context`` covers it."""
    return {key: value for key, value in doc.items() if key != "@context"}
