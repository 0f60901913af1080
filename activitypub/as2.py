"""The one accessor layer for compacted ActivityStreams 2.0 documents.

AS2 Core §2 lets a property hold a single value or an array, and an object-valued property hold
either an id string or an embedded object. Protocol and domain code never index a compacted
document directly: they read it through these functions, so both shapes are always accepted.
The ``require_*``/``optional_*`` getters are for converters: they raise ``As2Error`` naming the
field and the rule it broke, which callers turn into a 400 problem response.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
_PUBLIC_SPELLINGS = frozenset({PUBLIC, "as:Public", "Public"})
_AS = "https://www.w3.org/ns/activitystreams#"
ADDRESSING = ("to", "cc", "bto", "bcc", "audience")
_UNDETERMINED = "und"


class As2Error(ValueError):
    """A compacted AS2 document lacks a field or holds it in a shape the reader cannot use."""

    def __init__(self, field: str, rule: str, value: Any = None) -> None:
        shown = "" if value is None else f" (got {_preview(value)})"
        super().__init__(f"{field}: {rule}{shown}")
        self.field = field
        self.rule = rule


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- shapes: a value or a list; an id or an embedded object ------------------------------------


def values(doc: Mapping[str, Any], key: str) -> list[Any]:
    """Every value of a property: absent or null is [], a list is itself, else [value] (AS2 §2)."""
    value = doc.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        # A null inside an array carries nothing in JSON-LD; drop it.
        return [item for item in value if item is not None]
    return [value]


def first(doc: Mapping[str, Any], key: str) -> Any | None:
    """The first value of a property, or None."""
    found = values(doc, key)
    return found[0] if found else None


def id_of(value: Any) -> str | None:
    """The id a value names: a string is the id, an object has "id" (or "@id"); AS2 §2."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):
        inner = value.get("id", value.get("@id"))
        return inner if isinstance(inner, str) and inner else None
    return None


def ids(doc: Mapping[str, Any], key: str) -> list[str]:
    """The ids of every value of a property, skipping values with no id."""
    value = doc.get(key)
    if type(value) is str:  # the usual case, answered as the general one would
        return [value] if value else []
    return [found for found in map(id_of, values(doc, key)) if found is not None]


def first_id(doc: Mapping[str, Any], key: str) -> str | None:
    """The id of the first value of a property that has one."""
    value = doc.get(key)
    if type(value) is str:  # the usual case (an actor, an object by id), as ids() answers it
        return value or None
    found = ids(doc, key)
    return found[0] if found else None


def embedded(doc: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """The first value of a property when it is an embedded object (not a bare id)."""
    value = first(doc, key)
    return dict(value) if isinstance(value, Mapping) else None


def types(doc: Mapping[str, Any]) -> list[str]:
    """The object's types, from "type" or "@type", a value or a list (AS2 §4.1 type)."""
    key = "type" if "type" in doc else "@type"
    return [value for value in values(doc, key) if isinstance(value, str)]


def has_type(doc: Mapping[str, Any], *names: str) -> bool:
    """True when the object has one of the types (also spelled "as:Note" or as the full IRI)."""
    present = set(types(doc))
    return any(
        name in present or f"as:{name}" in present or _AS + name in present for name in names
    )


# --- natural-language values --------------------------------------------------------------------


def language_map(doc: Mapping[str, Any], key: str) -> dict[str, str]:
    """The key's text per language: ``<key>Map`` merged with the plain value under "und" (§4.7)."""
    merged: dict[str, str] = {}
    mapped = doc.get(f"{key}Map")
    if isinstance(mapped, Mapping):
        merged.update({lang: text for lang, text in mapped.items() if isinstance(text, str)})
    plain = first(doc, key)
    if isinstance(plain, str):
        merged.setdefault(_UNDETERMINED, plain)
    return merged


def text(doc: Mapping[str, Any], key: str, lang: str | None = None) -> str | None:
    """A key's text: in ``lang`` when the map has it, else the plain value, else any language."""
    mapped = doc.get(f"{key}Map")
    mapped = mapped if isinstance(mapped, Mapping) else {}
    if lang is not None:
        # An exact tag first, then the same primary language ("ca" for "ca-ES" and back).
        wanted = lang.lower().split("-")[0]
        exact = [v for k, v in mapped.items() if k.lower() == lang.lower()]
        close = [v for k, v in mapped.items() if k.lower().split("-")[0] == wanted]
        for candidate in exact + close:
            if isinstance(candidate, str):
                return candidate
    plain = first(doc, key)
    if isinstance(plain, str):
        return plain
    return next((v for v in mapped.values() if isinstance(v, str)), None)


# --- addressing ---------------------------------------------------------------------------------


def is_public(address: str) -> bool:
    """True for the public collection in any of its three spellings (ActivityPub §5.6)."""
    return address in _PUBLIC_SPELLINGS


def addressees(doc: Mapping[str, Any]) -> set[str]:
    """Every id the object is addressed to through to/cc/bto/bcc/audience (ActivityPub §5.6)."""
    return {found for key in ADDRESSING for found in ids(doc, key)}


def is_addressed_publicly(doc: Mapping[str, Any]) -> bool:
    """True when any addressing field names the public collection."""
    return any(is_public(address) for address in addressees(doc))


# --- typed getters for converters ---------------------------------------------------------------


def _single(doc: Mapping[str, Any], key: str) -> Any | None:
    """The one value of a functional property; a one-item list counts as the value."""
    found = values(doc, key)
    if len(found) > 1:
        raise As2Error(key, "must hold a single value, not a list", doc.get(key))
    return found[0] if found else None


def optional_str(doc: Mapping[str, Any], key: str) -> str | None:
    """A string property that may be absent."""
    value = _single(doc, key)
    if value is not None and not isinstance(value, str):
        raise As2Error(key, "must be a string", value)
    return value


def require_str(doc: Mapping[str, Any], key: str) -> str:
    """A string property that must be present and non-empty."""
    value = optional_str(doc, key)
    if not value:
        raise As2Error(key, "is required and must be a non-empty string", doc.get(key))
    return value


# An ASCII http(s) URL whose authority starts at once, with no bracket anywhere: RFC 3986 (and
# urlsplit) give it that scheme and a non-empty host without further parsing or any ValueError.
_PLAIN_HTTP = re.compile(r"https?://[^/?#\[\]\t\r\n][^\[\]]*")


def _absolute(key: str, value: Any) -> str:
    found = id_of(value)
    if found is None:
        raise As2Error(key, "must be an id (a URI string) or an object with an id", value)
    if found.isascii() and _PLAIN_HTTP.fullmatch(found):
        return found  # the ids of nearly every document: skip the general parse below
    parts = urlsplit(found)
    # An id is an absolute IRI: a scheme, and for http(s) a host.
    if not parts.scheme or (parts.scheme in ("http", "https") and not parts.netloc):
        raise As2Error(key, "must be an absolute URI", found)
    return found


def optional_id(doc: Mapping[str, Any], key: str) -> str | None:
    """The id of a functional object-valued property that may be absent."""
    value = _single(doc, key)
    return None if value is None else _absolute(key, value)


def require_id(doc: Mapping[str, Any], key: str) -> str:
    """The id of a functional object-valued property that must be present."""
    found = optional_id(doc, key)
    if found is None:
        raise As2Error(key, "is required: an id or an object with an id")
    return found


def require_ids(doc: Mapping[str, Any], key: str) -> list[str]:
    """The ids of a property that must name at least one object."""
    found = [_absolute(key, value) for value in values(doc, key)]
    if not found:
        raise As2Error(key, "is required: at least one id")
    return found


def require_object(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    """An embedded object that must be present (a bare id is not enough)."""
    value = _single(doc, key)
    if not isinstance(value, Mapping):
        raise As2Error(key, "is required as an embedded object", value)
    return dict(value)


def optional_int(doc: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int | None:
    """An integer property (JSON true/false are not integers) that may be absent."""
    value = _single(doc, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise As2Error(key, "must be an integer", value)
    if minimum is not None and value < minimum:
        raise As2Error(key, f"must be at least {minimum}", value)
    return value


def require_int(doc: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int:
    """An integer property that must be present (e.g. totalItems with minimum=0)."""
    value = optional_int(doc, key, minimum=minimum)
    if value is None:
        raise As2Error(key, "is required and must be an integer")
    return value


def optional_bool(doc: Mapping[str, Any], key: str) -> bool | None:
    """A boolean property (e.g. manuallyApprovesFollowers) that may be absent."""
    value = _single(doc, key)
    if value is not None and not isinstance(value, bool):
        raise As2Error(key, "must be true or false", value)
    return value


def optional_datetime(doc: Mapping[str, Any], key: str) -> datetime | None:
    """An xsd:dateTime property with a timezone (AS2 §4 published/startTime) that may be absent."""
    value = optional_str(doc, key)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise As2Error(key, "must be an ISO 8601 date-time", value) from None
    if parsed.tzinfo is None:
        raise As2Error(key, "must be a date-time with a timezone (e.g. Z)", value)
    return parsed


def require_datetime(doc: Mapping[str, Any], key: str) -> datetime:
    """An xsd:dateTime property with a timezone that must be present."""
    value = optional_datetime(doc, key)
    if value is None:
        raise As2Error(key, "is required: an ISO 8601 date-time with a timezone")
    return value


def require_type(doc: Mapping[str, Any], *names: str) -> str:
    """The first of ``names`` the object has as a type, or an error listing what was expected."""
    for name in names:
        if has_type(doc, name):
            return name
    raise As2Error("type", f"must include one of {', '.join(names)}", doc.get("type"))
