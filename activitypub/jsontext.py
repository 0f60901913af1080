"""JSON text on the hot paths, through orjson (RFC 8259): parse, compact serialisation, responses.

Why orjson: on this machine ``benchmarks/bench_libs.py`` (``results/libs.json``) measured it
2.4x the standard library parsing a signed support delivery body, 2.0x an outbox page, and 15x
serialising a page; py-spy put ``json``'s encoder and decoder at 6.8 % of the aggregator's
cold-rebuild samples and 4.2 % of the city instance's (Barcelona x0.25). It is a well-kept
library: releases for every CPython, wheels for every platform Barri runs on.

What differs from ``json``, and why it is safe here:

- :func:`loads`, for text from outside, is stricter: UTF-8 only (no byte order mark, no
  UTF-16/32: RFC 8259 §8.1 requires UTF-8 between systems), no lone surrogate escapes (§8.2:
  unpredictable), no ``NaN``/``Infinity`` nor numbers that overflow to them (§6). Each raises
  ValueError. Everything it accepts it reads as ``json.loads`` does, integers beyond 64 bits
  included (orjson would read those as floats: such a text is read again by ``json``).
  :func:`loads_stored`, for text this server stored, reads anything ``json.loads`` reads
  (rows written before, or from documents ``json`` parsed, may hold ``Infinity``).
- :func:`dumps` gives ``json.dumps(v, ensure_ascii=False, separators=(",", ":"))`` byte for
  byte, except floats below 1e-4 in magnitude (``1e-7`` for ``1e-07``: the value reads back
  the same) and NaN/Infinity (``null``; ``json`` writes non-JSON). What orjson cannot hold (a
  non-str key, an integer beyond 64 bits, a lone surrogate: none comes out of :func:`loads`,
  but ``json`` parses elsewhere let them in) is written by ``json`` as before. Callers whose
  bytes are compared, hashed, signed or published as a format keep ``json`` (JCS, in
  :mod:`.jcs`, calls orjson itself, only on the trees whose bytes a test shows are RFC 8785's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

JSON_TYPE = "application/json"
# orjson reads integers in [-2**63, 2**64) exactly; a literal beyond has 19 digits or more.
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19
# Types orjson would write where json raises TypeError: left to json, which still raises.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_SORTED = _OPTIONS | orjson.OPT_SORT_KEYS


def loads(data: bytes | str) -> Any:
    """Parse strict RFC 8259 JSON (UTF-8, §8.1); ValueError for anything else."""
    value = orjson.loads(data)
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    if _LONG_RUN in raw.translate(_DIGITS):
        # A 19-digit run, mostly inside a string (an id): the exact reader settles it.
        return _exact(data)
    return value


def loads_stored(text: bytes | str) -> Any:
    """Read JSON this server stored: :func:`loads`, or ``json.loads`` for what it refuses."""
    try:
        return loads(text)
    except ValueError:
        return json.loads(text)  # older rows: the reader that wrote them, its errors as before


def stored_fragment(text: str) -> Any:
    """Stored JSON text (this server's :func:`dumps`) to embed in a document that
    :func:`dumpb` writes: spliced in as is (an ``orjson.Fragment``), not parsed and written
    again. Text that may hold what only ``json`` writes (``NaN``, ``Infinity``, both invalid
    JSON: older rows) is read by :func:`loads_stored` and so written as :func:`dumpb` would."""
    if "NaN" in text or "Infinity" in text:
        return loads_stored(text)
    return orjson.Fragment(text)


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON text (RFC 8259 §2), non-ASCII as is; TypeError for non-JSON values.

    ``sort_keys`` orders keys by code point, as ``json.dumps(sort_keys=True)`` does (UTF-8
    byte order is code point order), not by UTF-16 unit as JCS does.
    """
    try:
        return orjson.dumps(value, option=_SORTED if sort_keys else _OPTIONS).decode("utf-8")
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)


def dumpb(value: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes (RFC 8259 §8.1), for bodies and blobs."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(
    value: Any,
    *,
    status: int = 200,
    content_type: str = JSON_TYPE,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An aiohttp response with :func:`dumpb` of ``value`` as its body (RFC 8259 §11)."""
    fields = {**(headers or {}), "Content-Type": content_type}  # as given, parameters and all
    return web.Response(body=dumpb(value), status=status, headers=fields)


def _exact(data: bytes | str) -> Any:
    """``json.loads`` of text orjson accepted: the same tree, integers beyond 64 bits exact."""
    try:
        return json.loads(data)
    except RecursionError as exc:  # orjson allows 1024 levels, json a little fewer
        raise ValueError("JSON nested too deeply") from exc


__all__ = [
    "JSON_TYPE", "dumpb", "dumps", "json_response", "loads", "loads_stored", "stored_fragment",
]  # fmt: skip
