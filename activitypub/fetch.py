"""Signed fetch of ActivityStreams (and plain JSON) documents with the checks DESIGN.md §5 asks.

Every hop goes through the guarded session of :mod:`activitypub.ssrf`, so each redirect target
is re-vetted after DNS. Redirects are followed here, by hand, so that each hop is re-signed, its
scheme re-checked and the count bounded. For ActivityPub documents the response must carry an
ActivityStreams media type (CVE-2024-25623) and the document's ``id`` must equal the final URL
(CVE-2024-23832), so a server can only speak for URLs it actually serves.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import aiohttp
import yarl

from activitypub.origin import strip_fragment
from activitypub.ssrf import BlockedAddress

AS2_PROFILE = "https://www.w3.org/ns/activitystreams"
AS2_ACCEPT = f'application/activity+json, application/ld+json; profile="{AS2_PROFILE}"'

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
# RFC 9110 §5.6.6 parameters: token "=" (token | quoted-string).
# RFC 3986 characters, with every '%' starting a valid escape: such a URL is sent byte for byte.
_URI = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")
_PARAM = re.compile(r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


class FetchFailure(StrEnum):
    """Why a fetch was refused; callers decide what each means (retry, drop, 4xx)."""

    BLOCKED = "blocked_address"
    SCHEME = "scheme_not_allowed"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    STATUS = "bad_status"
    GONE = "gone"
    CONTENT_TYPE = "bad_content_type"
    ID_MISMATCH = "id_mismatch"
    REDIRECTS = "too_many_redirects"
    INVALID = "invalid_document"
    NETWORK = "network_error"


class FetchError(Exception):
    """A fetch failed or its response was refused; ``reason`` says which check."""

    def __init__(
        self, reason: FetchFailure, url: str, detail: str, *, status: int | None = None
    ) -> None:
        super().__init__(f"{reason.value}: {url}: {detail}")
        self.reason = reason
        self.url = url
        self.status = status
        self.detail = detail


RequestSigner = Callable[[str, str, Mapping[str, str]], Mapping[str, str]]
"""(method, url, headers) -> the headers to send, signature included."""


@dataclass(frozen=True)
class Fetched:
    """A fetched JSON object, the URL it was finally served from and its Content-Type."""

    url: str
    document: dict[str, Any]
    content_type: str


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type value into lowercased type/subtype and its parameters (RFC 9110)."""
    media, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for name, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name.lower()] = raw
    return media.strip().lower(), params


def is_as2_media_type(value: str) -> bool:
    """ActivityPub §3.2: activity+json, or ld+json whose profile lists ActivityStreams."""
    media, params = parse_media_type(value)
    if media == "application/activity+json":
        return True
    # RFC 6906: profile is a space-separated list of URIs.
    return media == "application/ld+json" and AS2_PROFILE in params.get("profile", "").split()


def is_json_media_type(value: str) -> bool:
    """application/json or any application/*+json (JRD, NodeInfo, AS2)."""
    media, _ = parse_media_type(value)
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def wire_url(url: str) -> yarl.URL:
    """The URL to put on the wire: unchanged if already a valid URI, else percent-encoded.

    aiohttp would otherwise re-normalise escapes (``%3A`` → ``:``), and the request would no
    longer match what the signer signed nor what the document's id says.
    """
    if _URI.fullmatch(url):
        return yarl.URL(url, encoded=True)
    return yarl.URL(url)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two readers taking different copies of a duplicated key is a classic parser differential.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return result


def parse_json_object(url: str, body: bytes) -> dict[str, Any]:
    """Strict JSON (RFC 8259, no NaN, no duplicate keys) that must be an object."""
    # json, not orjson (activitypub.jsontext): orjson keeps the last of duplicated keys
    # silently, and the cheapest exact check measured after it (key tokens of the text
    # against keys parsed) cost more than orjson saved on an actor document.
    try:
        document = json.loads(body, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        raise FetchError(FetchFailure.INVALID, url, f"not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise FetchError(FetchFailure.INVALID, url, "the document is not a JSON object")
    return document


@dataclass
class FetchStats:
    """Fetches a :class:`Fetcher` made, how many failed, and their wall seconds in all."""

    fetches: int = 0
    failed: int = 0
    seconds: float = 0.0


class Fetcher:
    """GETs JSON documents through a guarded session, signing and checking every hop."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        signer: RequestSigner | None = None,
        *,
        fallback_signers: Sequence[RequestSigner] = (),
        max_bytes: int = 1_048_576,
        max_redirects: int = 3,
        allow_http: bool = False,
    ) -> None:
        self._session = session
        #: Signers a signed GET tries in turn on 400/401 (a double-knock, as for deliveries);
        #: the one a host accepted is tried first for it from then on.
        self._signers = ([signer] if signer is not None else []) + list(fallback_signers)
        self._accepted: dict[str, int] = {}
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._schemes = frozenset({"https", "http"} if allow_http else {"https"})
        self.stats = FetchStats()

    async def get_json(
        self, url: str, *, accept: str = "application/json", signed: bool = False
    ) -> Fetched:
        """GET a JSON object (WebFinger RFC 7033, NodeInfo): every guard but the AS2 checks."""
        return await self._follow(url, accept, signed, as2=False)

    async def get_activity(self, url: str, *, signed: bool = True) -> Fetched:
        """GET an ActivityStreams object (ActivityPub §3.2, §7.1): AS2 type, id == final URL."""
        fetched = await self._follow(url, AS2_ACCEPT, signed, as2=True)
        document_id = fetched.document.get("id")
        if not isinstance(document_id, str) or document_id != fetched.url:
            raise FetchError(
                FetchFailure.ID_MISMATCH,
                fetched.url,
                f"document id {document_id!r} is not the URL it was served from",
            )
        return fetched

    async def _follow(self, url: str, accept: str, signed: bool, *, as2: bool) -> Fetched:
        """:meth:`_hops`, counted and timed in :attr:`stats`."""
        began = time.perf_counter()
        self.stats.fetches += 1
        try:
            return await self._hops(url, accept, signed, as2=as2)
        except Exception:  # a cancelled fetch did not fail: it only counts its seconds
            self.stats.failed += 1
            raise
        finally:
            self.stats.seconds += time.perf_counter() - began

    async def _hops(self, url: str, accept: str, signed: bool, *, as2: bool) -> Fetched:
        """Follow at most ``max_redirects`` redirects by hand, vetting and signing each hop."""
        current = self._vet_url(strip_fragment(url))
        seen = {current}
        for _ in range(self._max_redirects + 1):
            result = await self._hop(current, accept, signed, as2=as2)
            if isinstance(result, Fetched):
                return result
            if result in seen:
                raise FetchError(FetchFailure.REDIRECTS, result, "redirect loop")
            seen.add(result)
            current = result
        raise FetchError(
            FetchFailure.REDIRECTS, current, f"more than {self._max_redirects} redirects"
        )

    def _vet_url(self, url: str) -> str:
        """Refuse anything but an absolute URL with an allowed scheme and a host."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError on a malformed port)
        except ValueError as exc:
            raise FetchError(FetchFailure.SCHEME, url, f"malformed URL: {exc}") from exc
        if parts.scheme.lower() not in self._schemes or not parts.hostname:
            allowed = " or ".join(sorted(self._schemes))
            raise FetchError(FetchFailure.SCHEME, url, f"only absolute {allowed} URLs are fetched")
        return url

    def _knocks(self, host: str, signed: bool) -> list[int | None]:
        """Which signers to try for a GET to ``host``, in turn: the one it accepted first.
        Without a signer a "signed" fetch goes out unsigned: the server answers or refuses."""
        if not signed or not self._signers:
            return [None]
        first = self._accepted.get(host, 0)
        return [first, *(i for i in range(len(self._signers)) if i != first)]

    def _headers(self, url: str, accept: str, signer: int | None) -> dict[str, str]:
        headers = {"Accept": accept}
        if signer is not None:
            return dict(self._signers[signer]("GET", url, headers))
        return headers

    async def _hop(self, url: str, accept: str, signed: bool, *, as2: bool) -> Fetched | str:
        """One GET (knocking again with the next signer on 400/401): a Fetched result, or the
        vetted URL a redirect points to."""
        try:
            wire = wire_url(url)
        except ValueError as exc:  # e.g. a host that is not valid IDNA
            raise FetchError(FetchFailure.SCHEME, url, f"malformed URL: {exc}") from exc
        host = wire.raw_authority.lower()
        knocks = self._knocks(host, signed)
        for turn, signer in enumerate(knocks, start=1):
            headers = self._headers(str(wire), accept, signer)
            result = await self._get(url, wire, headers, as2=as2, last=turn == len(knocks))
            if result is None:
                continue
            if signer is not None:
                self._accepted[host] = signer
            return result
        raise FetchError(FetchFailure.STATUS, url, "every signature was refused", status=401)

    async def _get(
        self, url: str, wire: yarl.URL, headers: Mapping[str, str], *, as2: bool, last: bool
    ) -> Fetched | str | None:
        """The GET itself; None when it was refused with 400/401 and another knock remains."""
        try:
            async with self._session.get(wire, headers=headers, allow_redirects=False) as resp:
                if resp.status in (400, 401) and not last:
                    return None
                return await self._response(url, resp, as2=as2)
        except FetchError:
            raise
        except BlockedAddress as exc:
            raise FetchError(FetchFailure.BLOCKED, url, str(exc)) from exc
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutError subclasses
            raise FetchError(FetchFailure.TIMEOUT, url, "no complete answer in time") from exc
        except aiohttp.ClientError as exc:
            raise FetchError(FetchFailure.NETWORK, url, f"{type(exc).__name__}: {exc}") from exc

    async def _response(
        self, url: str, resp: aiohttp.ClientResponse, *, as2: bool
    ) -> Fetched | str:
        """Check status and media type, then read the capped body."""
        if resp.status in _REDIRECT_STATUSES:
            location = resp.headers.get("Location")
            if not location:
                raise FetchError(
                    FetchFailure.STATUS, url, "redirect without Location", status=resp.status
                )
            return self._vet_url(strip_fragment(urljoin(url, location)))
        if resp.status == 410:
            raise FetchError(FetchFailure.GONE, url, "410 Gone", status=410)
        if not 200 <= resp.status < 300:
            raise FetchError(FetchFailure.STATUS, url, f"HTTP {resp.status}", status=resp.status)
        content_type = resp.headers.get("Content-Type", "")
        accepted = is_as2_media_type if as2 else is_json_media_type
        if not accepted(content_type):
            raise FetchError(
                FetchFailure.CONTENT_TYPE, url, f"Content-Type {content_type!r} refused"
            )
        body = await self._read_capped(url, resp)
        return Fetched(url, parse_json_object(url, body), content_type)

    async def _read_capped(self, url: str, resp: aiohttp.ClientResponse) -> bytes:
        """Read at most ``max_bytes`` (after decompression), whatever Content-Length claims."""
        too_large = FetchError(FetchFailure.TOO_LARGE, url, f"more than {self._max_bytes} bytes")
        if resp.content_length is not None and resp.content_length > self._max_bytes:
            raise too_large
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self._max_bytes:
                raise too_large
        return bytes(body)
