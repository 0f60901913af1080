"""A fast path for the Structured Field Dictionaries that HTTP signatures carry (RFC 8941).

``Signature-Input``, ``Signature`` and ``Content-Digest`` come, from every implementation we
federate with, in the strict serialisation RFC 8941 §4.1 defines: members ``key=(...)`` or
``key=:base64:``, items separated by one space, parameters ``;key=value``. For exactly that
subset :func:`parse_dictionary` gives what ``http_sf.parse`` gives (a test compares them on
generated fields), an order of magnitude faster, and each member's text, which in that subset
*is* its serialisation (RFC 9421 §2.3 signs the serialised ``@signature-params``). Anything
else (tokens, decimals, escapes, other whitespace, padding-free base64, repeated keys) returns
None, and the caller parses with ``http_sf`` as before. :func:`serialise_inner_list` writes
that subset (a signer's ``@signature-params``) and returns None for anything else.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any

_KEY = r"[a-z*][a-z0-9_\-.*]*"
_STRING = r'"[ !#-\[\]-~]*"'  # printable ASCII but " and \: nothing to unescape
_INTEGER = r"-?(?:0|[1-9][0-9]{0,14})"  # no leading zeros: written as serialised
_BYTES = r":(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?:"
# A true parameter is written bare (``;sf``), as serialised; ``?0`` is false.
_PARAM = rf";({_KEY})(?:=({_STRING}|{_INTEGER}|\?0))?"
_PARAMS = rf"(?:{_PARAM})*"
_ITEM = rf"{_STRING}{_PARAMS}"
_INNER = rf"\((?:{_ITEM}(?: {_ITEM})*)?\){_PARAMS}"
_MEMBER = re.compile(rf"({_KEY})=({_INNER}|{_BYTES}{_PARAMS})(?:, ?|\Z)")
_PARAM_RE = re.compile(_PARAM)
_ITEM_RE = re.compile(rf"({_STRING})({_PARAMS})")
_LIST_RE = re.compile(rf"\((?:{_ITEM}(?: {_ITEM})*)?\)")
_KEY_RE = re.compile(_KEY)
_PLAIN_RE = re.compile(_STRING[1:-1])  # a string's content with nothing to escape

#: A member's value (an inner list of (item, parameters), or bytes) and its parameters.
Member = tuple[Any, dict[str, Any]]


def parse_dictionary(value: str) -> tuple[dict[str, Member], dict[str, str]] | None:
    """The members of a strictly serialised Dictionary and the text of each (RFC 8941 §3.2),
    or None when ``value`` is outside the subset this parser takes."""
    members: dict[str, Member] = {}
    texts: dict[str, str] = {}
    position = 0
    while position < len(value):
        match = _MEMBER.match(value, position)
        if match is None or match.group(1) in members:
            return None
        key, text = match.group(1), match.group(2)
        member = _member(text)
        if member is None:
            return None
        members[key], texts[key] = member, text
        position = match.end()
        if position == len(value) and value.endswith((",", " ")):
            return None  # a trailing comma is no member
    return (members, texts) if members else None


def _member(text: str) -> Member | None:
    """A member's value and parameters; None if a parameter repeats (then the text would not
    be the serialisation, which keeps one)."""
    if text.startswith(":"):
        end = text.index(":", 1)
        params = _params(text[end + 1 :])
        return None if params is None else (base64.b64decode(text[1:end]), params)
    listed = _LIST_RE.match(text)
    if listed is None:  # pragma: no cover - _MEMBER matched the same pattern
        return None
    close = listed.end() - 1
    items: list[tuple[str, dict[str, Any]]] = []
    for match in _ITEM_RE.finditer(text, 1, close):
        item_params = _params(match.group(2))
        if item_params is None:
            return None
        items.append((match.group(1)[1:-1], item_params))
    params = _params(text[close + 1 :])
    return None if params is None else (items, params)


def _params(text: str) -> dict[str, Any] | None:
    params: dict[str, Any] = {}
    for match in _PARAM_RE.finditer(text):
        key, raw = match.group(1), match.group(2)
        if key in params:
            return None
        params[key] = True if raw is None else _bare(raw)
    return params


def _bare(raw: str) -> Any:
    if raw.startswith('"'):
        return raw[1:-1]
    if raw == "?0":
        return False
    return int(raw)


def serialise_inner_list(
    items: Sequence[tuple[Any, Mapping[str, Any]]], params: Mapping[str, Any]
) -> str | None:
    """The RFC 8941 §4.1.1.1 serialisation of an inner list of strings, or None when an item
    or a parameter is outside the subset :func:`parse_dictionary` reads (then use http_sf)."""
    parts: list[str] = []
    for item, item_params in items:
        text = _string(item)
        suffix = _serialise_params(item_params)
        if text is None or suffix is None:
            return None
        parts.append(text + suffix)
    suffix = _serialise_params(params)
    return None if suffix is None else "(" + " ".join(parts) + ")" + suffix


def _serialise_params(params: Mapping[str, Any]) -> str | None:
    out: list[str] = []
    for key, value in params.items():
        if not isinstance(key, str) or _KEY_RE.fullmatch(key) is None:
            return None
        if value is True:
            out.append(";" + key)  # a true parameter is written bare (§4.1.1.2)
            continue
        text = "?0" if value is False else _string(value) or _integer(value)
        if text is None:
            return None
        out.append(f";{key}={text}")
    return "".join(out)


def _string(value: Any) -> str | None:
    if type(value) is str and _PLAIN_RE.fullmatch(value):  # a str subclass: left to http_sf
        return f'"{value}"'
    return None


def _integer(value: Any) -> str | None:
    # bool is an int too, but True and False were written above.
    if type(value) is int and -(10**15) < value < 10**15:
        return str(value)
    return None


__all__ = ["Member", "parse_dictionary", "serialise_inner_list"]
