"""RFC 8785 JSON Canonicalization Scheme (JCS), as the eddsa-jcs-2022 proofs hash documents.

:func:`canonicalize` takes the standard library's C encoder for plain JSON trees, byte for byte
what RFC 8785 asks, and the reference implementation (``rfc8785``) for anything else;
:func:`canonical_object` canonicalises a document's ``@context`` member once per distinct
context (the caller's :class:`~activitypub.memo.EqualMemo`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
import rfc8785

from activitypub.memo import EqualMemo

#: Canonical forms (JCS bytes) of @context values, found again by equality (:mod:`.memo`).
ContextMemo = EqualMemo[bytes]


def canonicalize(value: Any) -> bytes:
    """RFC 8785 JSON Canonicalization Scheme (ES6 number serialisation included).

    A tree of dicts, lists, strings, safe integers, booleans and nulls whose keys are ASCII
    (every activity Barri verifies) is what the standard library's C encoder writes with
    sorted keys, byte for byte: RFC 8785 §3.2.2.2 escapes exactly what ``json`` escapes with
    ``ensure_ascii=False``, and ASCII keys sort the same by code point as by UTF-16 unit
    (§3.2.3). orjson writes the same bytes for such a tree (every code point is escaped alike,
    which a test holds) in a fifteenth of the time: it is tried first, and what it refuses (a
    lone surrogate, nesting past its 255 levels) goes to ``json``. Anything else (floats,
    non-ASCII keys, other mappings) takes the reference implementation.
    """
    if _encoder_safe(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson.JSONEncodeError: json decides (and words the error)
            pass
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate, as rfc8785 refuses it
            raise rfc8785.CanonicalizationError("input contains non-UTF-8 codepoints") from exc
    return rfc8785.dumps(plain_json(value))


_SAFE_INTEGER = 2**53 - 1  # RFC 8785 §3.2.2.3: integers beyond are not exact as IEEE doubles


def _encoder_safe(value: Any) -> bool:
    """True when ``json.dumps(value, sort_keys=True)`` is its JCS form (see canonicalize).

    Exact types only (a subclass takes the reference implementation), walked without
    recursion: this runs on every proof verified.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if not -_SAFE_INTEGER <= item <= _SAFE_INTEGER:
                return False
        elif kind is dict:
            if not all(type(key) is str and key.isascii() for key in item):
                return False
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        else:
            return False  # a float, another Mapping, or not JSON at all
    return True


def plain_json(value: Any) -> Any:
    """Any Mapping as a dict and any tuple as a list, recursively (rfc8785 takes only those):
    a new tree of dicts and lists, its leaves shared.

    A JSON tree goes through orjson and back, four times faster than a Python walk of a
    document carrying our 3 KB inline context; the copy is kept when it equals the original
    (``==``, in C), which fails for what orjson would change: a NaN or infinity (written as
    null), a datetime or dataclass (written as JSON), a tuple (equal to no list). Those, and
    what orjson refuses (a non-string key, an integer beyond 64 bits, a lone surrogate), take
    the walk.
    """
    try:
        copied = orjson.loads(orjson.dumps(value, default=_mapping_as_dict))
    except (TypeError, ValueError):  # orjson's encode and decode errors subclass these
        return _plain_walk(value)
    return copied if copied == value else _plain_walk(value)


def _mapping_as_dict(value: Any) -> dict[Any, Any]:
    """orjson's ``default``: another Mapping (a MappingProxyType) is written as a dict."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _plain_walk(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain_walk(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_walk(item) for item in value]
    return value


def canonical_object(value: Mapping[str, Any], memo: ContextMemo | None) -> bytes:
    """:func:`canonicalize`, with the object's ``@context`` member canonicalised once per
    distinct context: when every other key sorts after ``@context`` (ASCII, RFC 8785 §3.2.3),
    JCS of the object is ``{"@context":`` + JCS(context) + the rest's members."""
    context = value.get("@context") if memo is not None and type(value) is dict else None
    if memo is None or context is None:
        return canonicalize(value)
    rest = {key: item for key, item in value.items() if key != "@context"}
    if not all(type(key) is str and key.isascii() and key > "@context" for key in rest):
        return canonicalize(value)
    known = memo.get(context)
    if known is None:
        known = memo.put(context, canonicalize(context))
    if not rest:
        return b'{"@context":' + known + b"}"
    return b'{"@context":' + known + b"," + canonicalize(rest)[1:]
