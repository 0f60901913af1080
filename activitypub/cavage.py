"""draft-cavage-http-signatures-12: the ``Signature`` header, signing string, sign and verify.

This is the byte-level layer that Mastodon-compatible servers speak. Policy (required headers,
Date window, digest checks, key lookup) lives in :mod:`activitypub.httpsig`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from activitypub.keys import PrivateKey, PublicKey

ALGORITHMS = ("rsa-sha256", "hs2019")
# One `name="value"` or `name=number` pair, then a comma or the end (cavage-12 §2.1).
_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([0-9]+(?:\.[0-9]+)?))\s*(?:,|$)')
_PSEUDO = ("(request-target)", "(created)", "(expires)")


class CavageFormatError(ValueError):
    """A ``Signature`` header that does not follow cavage-12 §2.1."""


class MissingHeaderError(CavageFormatError):
    """A header named in ``headers`` that the request does not carry (cavage-12 §2.3)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"signed header {name!r} is not in the request")
        self.name = name


class CavageAlgorithmError(ValueError):
    """An algorithm we do not accept, or one that does not fit the key (cavage-12 §2.1.3)."""


@dataclass(frozen=True)
class CavageSignature:
    """The parameters of a parsed ``Signature`` header (cavage-12 §2.1)."""

    key_id: str
    algorithm: str
    headers: tuple[str, ...]
    signature: bytes
    created: int | None = None
    expires: str | None = None  # kept as sent: cavage-12 §2.1.5 allows a decimal


def parse_signature_header(value: str) -> CavageSignature:
    """Parse a ``Signature`` header (or the part after ``Authorization: Signature``) (§2.1)."""
    params = _parse_params(value)
    if "keyId" not in params or "signature" not in params:
        raise CavageFormatError("keyId and signature are required")
    try:
        signature = base64.b64decode(params["signature"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CavageFormatError("signature is not base64") from exc
    # Mastodon's defaults: a missing algorithm is hs2019, whose default header is (created);
    # any other algorithm defaults to date, which is what Appendix C.1 signs.
    algorithm = params.get("algorithm", "hs2019").lower()
    default = "(created)" if algorithm == "hs2019" else "date"
    names = tuple(params.get("headers", default).lower().split())
    if not names:
        raise CavageFormatError("headers is empty")
    return CavageSignature(
        key_id=params["keyId"],
        algorithm=algorithm,
        headers=names,
        signature=signature,
        created=_integer(params, "created"),
        expires=params.get("expires"),
    )


def _parse_params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    position = 0
    text = value.strip()
    while position < len(text):
        match = _PARAM.match(text, position)
        if match is None or match.end() == position:
            raise CavageFormatError(f"cannot parse Signature header at offset {position}")
        name = match.group(1)
        if name in params:
            raise CavageFormatError(f"parameter {name!r} is repeated")
        params[name] = match.group(2) if match.group(2) is not None else match.group(3)
        position = match.end()
    return params


def _integer(params: Mapping[str, str], name: str) -> int | None:
    if name not in params:
        return None
    if not params[name].isdigit():
        raise CavageFormatError(f"{name} must be an integer Unix time")
    return int(params[name])


def find_signature(headers: Mapping[str, str]) -> str | None:
    """The ``Signature`` header (§4), else the ``Authorization: Signature`` parameters (§3)."""
    if "signature" in headers:
        return headers["signature"]
    authorization = headers.get("authorization", "")
    return authorization[10:] if authorization[:10].lower() == "signature " else None


def strength_problem(names: Sequence[str], method: str) -> str | None:
    """What Mastodon's ``verify_signature_strength!`` refuses in a header list, if anything."""
    covered = set(names)
    if "(request-target)" not in covered and "digest" not in covered:
        return "sign (request-target) or digest"
    if "date" not in covered and "(created)" not in covered:
        return "sign date or (created)"
    if method.upper() == "GET" and "host" not in covered:
        return "sign host on GET"
    return None


def signing_strings(
    parsed: CavageSignature, method: str, url: str, headers: Mapping[str, str]
) -> list[str]:
    """The strings to verify: path+query first, then the path alone, as older Mastodon signed."""
    targets = [request_target(method, url)]
    if urlsplit(url).query:
        targets.append(request_target(method, url, with_query=False))
    return [
        signing_string(parsed.headers, t, headers, created=parsed.created, expires=parsed.expires)
        for t in targets
    ]


def signed_times(parsed: CavageSignature, headers: Mapping[str, str]) -> list[datetime]:
    """The signed creation times, ``(created)`` then a signed ``Date`` (§2.1.4, §2.3)."""
    moments: list[datetime] = []
    try:
        if "(created)" in parsed.headers and parsed.created is not None:
            moments.append(datetime.fromtimestamp(parsed.created, UTC))
        if "date" in parsed.headers:
            date = parsedate_to_datetime(headers["date"])
            # RFC 9110 dates are GMT; a zone-less date is read the same way.
            moments.append(date.replace(tzinfo=UTC) if date.tzinfo is None else date)
    except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
        raise CavageFormatError("the signed Date or (created) is missing or unreadable") from exc
    return moments


def request_target(method: str, url: str, *, with_query: bool = True) -> str:
    """The ``(request-target)`` value: lowercased method, path and query (§2.3)."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if with_query and parts.query:
        target += "?" + parts.query
    return f"{method.lower()} {target}"


def signing_string(
    names: Sequence[str],
    target: str,
    headers: Mapping[str, str],
    *,
    created: int | None = None,
    expires: str | None = None,
) -> str:
    """The signing string for ``names`` (§2.3); ``headers`` maps lowercased names to values."""
    lines = []
    for name in names:
        if name == "(request-target)":
            value = target
        elif name == "(created)" and created is not None:
            value = str(created)
        elif name == "(expires)" and expires is not None:
            value = expires
        elif name in headers and name not in _PSEUDO:
            value = headers[name]
        else:
            raise MissingHeaderError(name)
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


def algorithm_for_key(key: PrivateKey | PublicKey) -> str:
    """What we announce when signing: ``rsa-sha256`` for RSA (as Mastodon), else ``hs2019``."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa-sha256"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "hs2019"
    raise CavageAlgorithmError(f"no cavage-12 algorithm for a {type(key).__name__}")


def sign(text: str, key: PrivateKey, algorithm: str) -> bytes:
    """Sign a signing string; hs2019 means PKCS#1 v1.5 SHA-256 for RSA, Ed25519 for Ed25519."""
    _check_fit(algorithm, key)
    data = text.encode("utf-8")
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    raise CavageAlgorithmError(f"cannot sign with a {type(key).__name__}")  # pragma: no cover


def verify(text: str, signature: bytes, key: PublicKey, algorithm: str) -> bool:
    """Whether ``signature`` signs ``text`` under ``algorithm`` with ``key`` (§2.1.3, §2.5)."""
    _check_fit(algorithm, key)
    data = text.encode("utf-8")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def _check_fit(algorithm: str, key: PrivateKey | PublicKey) -> None:
    if algorithm not in ALGORITHMS:
        raise CavageAlgorithmError(f"unsupported algorithm {algorithm!r}")
    is_rsa = isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey)
    is_ed = isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey)
    # rsa-sha256 names its key type; hs2019 takes the algorithm from the key (RSA or Ed25519).
    if not (is_rsa or (is_ed and algorithm == "hs2019")):
        raise CavageAlgorithmError(f"{algorithm} does not fit a {type(key).__name__}")


def mastodon_signature(
    method: str, url: str, headers: Mapping[str, str], key_id: str, key: PrivateKey
) -> str:
    """Sign as Mastodon does: ``(request-target) host date``, plus ``digest`` and
    ``content-type`` when ``headers`` (lowercased names) carry them; returns ``Signature``."""
    names = ["(request-target)", "host", "date"]
    if "digest" in headers:
        names += ["digest", "content-type"] if "content-type" in headers else ["digest"]
    text = signing_string(names, request_target(method, url), headers)
    algorithm = algorithm_for_key(key)
    return signature_header(key_id, algorithm, names, sign(text, key, algorithm))


def signature_header(key_id: str, algorithm: str, names: Sequence[str], signature: bytes) -> str:
    """The ``Signature`` header value, in Mastodon's parameter order (§2.1, §4.1)."""
    if '"' in key_id or any('"' in n or " " in n for n in names):
        raise CavageFormatError("keyId and header names cannot contain quotes")
    encoded = base64.b64encode(signature).decode("ascii")
    return (
        f'keyId="{key_id}",algorithm="{algorithm}",'
        f'headers="{" ".join(names)}",signature="{encoded}"'
    )
