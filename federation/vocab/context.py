"""Barri's JSON-LD contexts and the wire forms shared by every shape (vocab-spec, DESIGN.md §4).

Our terms travel inline (never by URL): documents use AS2 + data-integrity/v2 + the object under
``@context`` in ``schemas/contexts/barri-v1.jsonld``; actor documents append it to
``activitypub.actors.ACTOR_CONTEXT``. A document that uses none of our terms (a support, its
withdrawal, a comment vote) carries AS2 + data-integrity/v2 only: ``plain_context()``. Also
here: multilingual text (``name``/``nameMap``), RFC 3339 timestamps, HTML content with its
markdown ``source``, and the ``Territory`` object.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from activitypub import as2, jsontext
from activitypub.actors import ACTOR_CONTEXT, AS_CONTEXT, DATA_INTEGRITY_V2
from federation.model import LangText, Territory, TerritoryKind

from . import fail, reading
from .wire import check_length, put, read_enum

BARRI_NS = "https://w3id.org/barri/ns#"
MARKDOWN = "text/markdown"

# vocab-spec "Length limits" (characters).
NAME_MAX = 150
SUMMARY_MAX = 500
CONTENT_MAX = 10_000
SOURCE_MAX = 5_000
ANSWER_MAX = 5_000
CONCLUSIONS_MAX = 5_000


# --- contexts -----------------------------------------------------------------------------------


@functools.cache
def _barri_file() -> dict[str, Any]:
    """Parse schemas/contexts/barri-v1.jsonld once per process."""
    ref = resources.files("schemas").joinpath("contexts", "barri-v1.jsonld")
    parsed = json.loads(ref.read_bytes())
    if not isinstance(parsed, dict) or not isinstance(parsed.get("@context"), dict):
        raise RuntimeError("barri-v1.jsonld must hold one @context object")
    return parsed


@functools.cache
def _barri_bytes() -> bytes:
    """The inline context object as compact JSON, to copy it by parsing (see barri_context)."""
    return jsontext.dumpb(_barri_file()["@context"])


def barri_context() -> dict[str, Any]:
    """A fresh copy of the object under ``@context`` in barri-v1.jsonld (our terms, inline).

    Parsed from its cached JSON: every published document and actor document takes one, and
    orjson builds the ~3 KB tree about nine times faster than ``copy.deepcopy`` walks it.
    """
    fresh: dict[str, Any] = jsontext.loads(_barri_bytes())
    return fresh


def document_context() -> list[Any]:
    """The ``@context`` of a published object or activity that uses our terms (a fresh list)."""
    return [AS_CONTEXT, DATA_INTEGRITY_V2, barri_context()]


def plain_context() -> list[Any]:
    """AS2 + data-integrity/v2 only: a document that uses no Barri term needs no Barri context.

    DESIGN.md §4 puts our terms in an inline object so that readers know them; a document with
    none of them (support ``Like``, ``Undo{Like}``, comment ``Like``/``Dislike`` and its
    ``Undo``: id, type, actor, object, published, addressing, proof) is the AS2 document it
    looks like, the way Mastodon adds ``toot:`` only for the terms a document uses. It saves
    ~3 KB per support, twice over (the proof copies the ``@context``), at every hash and hop.
    """
    return [AS_CONTEXT, DATA_INTEGRITY_V2]


def actor_context() -> list[Any]:
    """The actor ``@context``: ACTOR_CONTEXT (did/v1 for assertionMethod) plus our terms."""
    return [copy.deepcopy(entry) for entry in ACTOR_CONTEXT] + [barri_context()]


# --- timestamps ---------------------------------------------------------------------------------


def format_datetime(value: datetime) -> str:
    """RFC 3339 UTC with ``Z`` and seconds precision (vocab-spec "Timestamps")."""
    if value.tzinfo is None:
        raise ValueError(f"a published timestamp must be timezone-aware, not {value!r}")
    # isoformat pads the year to four digits as RFC 3339 §5.6 asks (glibc's %Y does not).
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _normalised(value: datetime | None) -> datetime | None:
    # The wire keeps seconds in UTC; so does the model, so a round trip is the identity.
    return None if value is None else value.astimezone(UTC).replace(microsecond=0)


def optional_datetime(doc: Mapping[str, Any], key: str) -> datetime | None:
    """An xsd:dateTime with a timezone, as a UTC datetime at seconds precision, or None."""
    return _normalised(as2.optional_datetime(doc, key))


def require_datetime(doc: Mapping[str, Any], key: str) -> datetime:
    """An xsd:dateTime with a timezone that must be present, in UTC at seconds precision."""
    return as2.require_datetime(doc, key).astimezone(UTC).replace(microsecond=0)


def put_datetime(doc: dict[str, Any], key: str, value: datetime | None) -> None:
    """Set a timestamp property unless ``value`` is None."""
    put(doc, key, None if value is None else format_datetime(value))


# --- multilingual text --------------------------------------------------------------------------


def put_lang_text(doc: dict[str, Any], key: str, value: LangText | None) -> None:
    """``key`` = the default text and ``keyMap`` = the translations (AS2 §4.7)."""
    if value is None:
        return
    doc[key] = value.default
    if value.by_lang:
        doc[f"{key}Map"] = value.as_map()


def _language_map(doc: Mapping[str, Any], key: str, maximum: int) -> dict[str, str]:
    field = f"{key}Map"
    mapped = as2.first(doc, field)
    if mapped is None:
        return {}
    if not isinstance(mapped, Mapping):
        fail(field, "must be an object keyed by BCP 47 language tags", mapped)
    found: dict[str, str] = {}
    for tag, text in mapped.items():
        if not isinstance(tag, str) or not tag or not isinstance(text, str):
            fail(field, "must map non-empty language tags to strings", {tag: text})
        if tag.lower() in {seen.lower() for seen in found}:
            fail(field, "must not hold a language tag twice", tag)
        check_length(f"{field}.{tag}", text, maximum)
        found[tag] = text
    return found


def optional_lang_text(doc: Mapping[str, Any], key: str, maximum: int) -> LangText | None:
    """``key``/``keyMap`` as a LangText; with only the map, its first entry is the default."""
    by_lang = _language_map(doc, key, maximum)
    default = as2.optional_str(doc, key)
    if default is None:
        default = as2.text(doc, key)
    if default is None:
        return None
    check_length(key, default, maximum)
    return LangText(default, tuple(by_lang.items()))


def require_lang_text(doc: Mapping[str, Any], key: str, maximum: int) -> LangText:
    """Like optional_lang_text, but the text must be present and non-empty."""
    found = optional_lang_text(doc, key, maximum)
    if found is None or not found.default:
        fail(key, f"is required: a non-empty string or a {key}Map", as2.first(doc, key))
    return found


# --- HTML content and its markdown source -------------------------------------------------------


def require_content(doc: Mapping[str, Any]) -> str:
    """The sanitised HTML ``content`` (or, Map-only, its first ``contentMap`` entry)."""
    content = as2.optional_str(doc, "content")
    if content is None:
        content = as2.text(doc, "content")
    if not content:
        fail("content", "is required: non-empty HTML in content or contentMap")
    check_length("content", content, CONTENT_MAX)
    return content


def put_source(doc: dict[str, Any], markdown: str | None) -> None:
    """``source`` = the markdown the author wrote (AS2 §4 source)."""
    if markdown is not None:
        doc["source"] = {"content": markdown, "mediaType": MARKDOWN}


def optional_source(doc: Mapping[str, Any]) -> str | None:
    """The markdown ``source``; a source in another markup (e.g. Misskey MFM) is not markdown."""
    source = as2.first(doc, "source")
    if source is None:
        return None
    if not isinstance(source, Mapping):
        fail("source", "must be an object with content and mediaType", source)
    with reading("source"):
        media_type = as2.optional_str(source, "mediaType")
        markdown = as2.optional_str(source, "content")
    if media_type != MARKDOWN or markdown is None:
        return None
    check_length("source.content", markdown, SOURCE_MAX)
    return markdown


# --- territory ----------------------------------------------------------------------------------


def territory_to_ap(territory: Territory) -> dict[str, Any]:
    """The embedded ``Territory`` object (vocab-spec "territory")."""
    doc: dict[str, Any] = {
        "type": "Territory",
        "territoryKind": territory.kind.value,
        "territoryCode": territory.code,
    }
    put(doc, "districtCode", territory.district_code)
    put(doc, "name", territory.name)
    return doc


def territory_from_ap(value: Any) -> Territory:
    """Read an embedded ``Territory``; ``districtCode`` is allowed only for neighbourhoods."""
    if not isinstance(value, Mapping):
        fail("territory", "must be an embedded Territory object", value)
    as2.require_type(value, "Territory")
    kind = read_enum(value, "territoryKind", TerritoryKind)
    code = as2.require_str(value, "territoryCode")
    district = as2.optional_str(value, "districtCode")
    if district is not None and kind is not TerritoryKind.NEIGHBOURHOOD:
        fail("districtCode", f"is only for neighbourhoods, not a {kind.value}", district)
    name = as2.optional_str(value, "name")
    return Territory(kind, code, name, district)
