"""Body digests: RFC 3230 ``Digest`` (draft-cavage, Mastodon) and RFC 9530 ``Content-Digest``.

Both fields carry a hash of the raw body bytes. ``Digest`` is the legacy comma-separated
``SHA-256=<base64>`` form; ``Content-Digest`` is a Structured Field Dictionary
``sha-256=:<base64>:``. Only SHA-256 and SHA-512 are understood; other algorithms in a field
are ignored (RFC 9530 §2: a recipient ignores algorithms it does not support).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

from activitypub.sfields import parse_dictionary

_HASHES = {"sha-256": "sha256", "sha-512": "sha512"}  # RFC 9530 name -> hashlib name
_SIZES = {"sha-256": 32, "sha-512": 64}


class DigestFormatError(ValueError):
    """A digest field that cannot be parsed."""


class DigestUnsupportedError(DigestFormatError):
    """A digest field that parses but names no algorithm we can check (e.g. only MD5)."""


class DigestMismatchError(ValueError):
    """A digest that does not match the body it accompanies."""


def _hash(algorithm: str, body: bytes) -> bytes:
    return hashlib.new(_HASHES[algorithm], body).digest()


def make_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The RFC 3230 §4.3.2 ``Digest`` value, e.g. ``SHA-256=<base64>`` as Mastodon sends it."""
    algorithm = algorithm.lower()
    if algorithm not in _HASHES:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm.upper()}={base64.b64encode(_hash(algorithm, body)).decode('ascii')}"


def parse_digest(value: str) -> dict[str, bytes]:
    """Parse an RFC 3230 ``Digest`` value into {lowercased algorithm: digest bytes}."""
    found: dict[str, bytes] = {}
    for part in value.split(","):
        name, sep, encoded = part.strip().partition("=")
        if not sep or not name:
            raise DigestFormatError(f"Digest entry {part.strip()!r} is not algorithm=value")
        algorithm = name.strip().lower()
        if algorithm not in _HASHES:
            continue  # unknown instance-digests (md5, unixsum, ...) are skipped, not trusted
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DigestFormatError(f"Digest {algorithm} is not base64") from exc
        found[algorithm] = _checked_size(algorithm, raw)
    return found


def make_content_digest(body: bytes, algorithms: Iterable[str] = ("sha-256",)) -> str:
    """The RFC 9530 §2 ``Content-Digest`` value, e.g. ``sha-256=:<base64>:``."""
    members: dict[str, bytes] = {}
    for algorithm in algorithms:
        if algorithm not in _HASHES:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        members[algorithm] = _hash(algorithm, body)
    if not members:
        raise ValueError("no digest algorithm: an empty Content-Digest must not be sent")
    # Byte-sequence members without parameters, serialised as RFC 8941 §4.1.2 and §4.1.8 say
    # (what http_sf.ser writes, without loading it): ``name=:base64:`` joined by ", ".
    return ", ".join(
        f"{name}=:{base64.b64encode(raw).decode('ascii')}:" for name, raw in members.items()
    )


def parse_content_digest(value: str) -> dict[str, bytes]:
    """Parse an RFC 9530 ``Content-Digest`` Dictionary into {algorithm: digest bytes}."""
    fast = parse_dictionary(value)  # the strict serialisation every sender writes
    try:
        parsed = fast[0] if fast else _parse_full(value)
    except (ValueError, UnicodeEncodeError) as exc:
        raise DigestFormatError(f"Content-Digest is not a structured dictionary: {exc}") from exc
    if not isinstance(parsed, dict):  # pragma: no cover - tltype="dictionary" guarantees it
        raise DigestFormatError("Content-Digest is not a dictionary")
    found: dict[str, bytes] = {}
    for algorithm, member in parsed.items():
        item = member[0] if isinstance(member, tuple) else member
        if algorithm not in _HASHES:
            continue
        if not isinstance(item, bytes):
            raise DigestFormatError(f"Content-Digest {algorithm} is not a byte sequence")
        found[algorithm] = _checked_size(algorithm, item)
    return found


def _parse_full(value: str) -> Any:
    """A Dictionary outside :mod:`.sfields`' subset, by the full RFC 8941 parser."""
    # http_sf (with decimal) is ~0.7 MB: imported when a field first needs it, not at startup.
    import http_sf

    return http_sf.parse(value.encode("ascii"), tltype="dictionary")


def check_digest(value: str, body: bytes) -> None:
    """Check a ``Digest`` field against the raw body (RFC 3230 §4.3.2); raise on failure."""
    _check(parse_digest(value), body, "Digest")


def check_content_digest(value: str, body: bytes) -> None:
    """Check a ``Content-Digest`` field against the raw body (RFC 9530 §2); raise on failure."""
    _check(parse_content_digest(value), body, "Content-Digest")


def _checked_size(algorithm: str, raw: bytes) -> bytes:
    if len(raw) != _SIZES[algorithm]:
        raise DigestFormatError(f"{algorithm} digest has {len(raw)} bytes, not {_SIZES[algorithm]}")
    return raw


def _check(digests: dict[str, bytes], body: bytes, field: str) -> None:
    if not digests:
        raise DigestUnsupportedError(f"{field} carries neither sha-256 nor sha-512")
    # Every understood algorithm must match: a sender cannot hide a wrong hash behind a right one.
    for algorithm, expected in digests.items():
        if not hmac.compare_digest(expected, _hash(algorithm, body)):
            raise DigestMismatchError(f"{field} {algorithm} does not match the body")
