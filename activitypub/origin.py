"""Origin comparison for FEP-fe34: lowercased scheme, IDNA host without trailing dot, port."""

from __future__ import annotations

import functools
import re
from typing import NamedTuple
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME_AUTHORITY = re.compile(r"(?i:https?)://[^/?#]*")  # RFC 3986 §3.2: "//" to "/", "?", "#"


class Origin(NamedTuple):
    """An RFC 6454 origin normalised as FEP-fe34 asks."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        default = _DEFAULT_PORTS.get(self.scheme)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


class OriginError(ValueError):
    """The URL has no usable origin (not absolute http(s), or a malformed host)."""


def origin_of(url: str) -> Origin:
    """The normalised origin of an absolute http(s) URL (FEP-fe34 §Origin)."""
    # Ids repeat a few authorities (every like of an instance shares one): an URL spelt
    # ``http(s)://authority…`` is read through its scheme-and-authority prefix, whose origin
    # is remembered; urlsplit finds that very authority in both, so the answer is the same.
    prefix = _SCHEME_AUTHORITY.match(url)
    return _prefix_origin(prefix.group()) if prefix else _parsed_origin(url)


@functools.lru_cache(maxsize=1024)
def _prefix_origin(prefix: str) -> Origin:
    """The origin of a ``scheme://authority`` prefix (the few a server meets, remembered)."""
    return _parsed_origin(prefix)


def _parsed_origin(url: str) -> Origin:
    """RFC 3986 parsing of the URL's authority, normalised as FEP-fe34 asks."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OriginError(f"malformed URL {url!r}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise OriginError(f"not an absolute http(s) URL: {url!r}")
    host = parts.hostname.rstrip(".").lower()
    if not host.startswith("[") and ":" not in host:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise OriginError(f"invalid host in {url!r}") from exc
    return Origin(scheme, host, port if port is not None else _DEFAULT_PORTS[scheme])


def same_origin(a: str, b: str) -> bool:
    """True when both URLs are absolute http(s) URLs with the same origin."""
    try:
        return origin_of(a) == origin_of(b)
    except OriginError:
        return False


def strip_fragment(url: str) -> str:
    """The URL without its fragment (RFC 3986 §3.5: all after the first "#"), otherwise byte
    for byte: no parse nor re-serialisation, which ``urldefrag`` does at ~1 µs a call."""
    return url.split("#", 1)[0]
