"""OAuth clients identified by URL: Client ID Metadata Documents, fetched safely and cached.

draft-ietf-oauth-client-id-metadata-document: a ``client_id`` is an https URL whose document
names the client (``client_id`` equal to the URL, ``redirect_uris``, ``client_name``), with
``token_endpoint_auth_method`` ``none`` (public clients: PKCE instead of a secret). FEP-d8c2's
form is also read: an AS2 ``Application`` whose ``id`` is the URL and ``redirectURI`` lists the
redirects. Documents are fetched through the server's SSRF-guarded fetcher and cached for
:data:`CLIENT_TTL`. Redirect URIs match exactly, character for character (RFC 6749 §3.1.2.3).

Every instance also serves one client document of its own, for the ``barri client`` command:
``{base}/oauth/clients/barri-cli``, with loopback redirects on :data:`BARRI_CLI_PORTS`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from activitypub import as2
from federation.instance.oauth.tokens import SCOPES, OAuthError, parse_scope
from federation.store.oauth import OAuthStore

CLIENT_TTL = 3600.0  # seconds a fetched client document is trusted before it is refetched
REFETCH_AFTER = 60.0  # a redirect_uri missing from a cached document refetches it, this rarely
MAX_CLIENT_ID = 2048
BARRI_CLI_PATH = "/oauth/clients/barri-cli"
#: The loopback ports ``barri client login`` listens on (tried in order; RFC 8252 §7.3).
BARRI_CLI_PORTS = (38421, 38422, 38423, 38424, 38425)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

#: Fetches a client document (the server's guarded fetcher); raises ClientError when it cannot.
ClientFetch = Callable[[str], Awaitable[Mapping[str, Any]]]


class ClientError(Exception):
    """The client cannot be used: ``reason`` names the rule, ``detail`` says what to fix."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Client:
    """A client as its metadata document describes it."""

    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    client_uri: str | None = None
    scopes: frozenset[str] = frozenset(SCOPES)

    @property
    def host(self) -> str:
        """The host that vouches for this client (its client_id's)."""
        return urlsplit(self.client_id).netloc


def check_client_id(client_id: str, *, allow_http: bool) -> str:
    """A client_id URL as the CIMD draft §3 requires: https, a path, no fragment/userinfo/dots."""
    try:
        parts = urlsplit(client_id)
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError as exc:
        raise ClientError("invalid_client_id", f"client_id is not a URL: {exc}") from exc
    schemes = ("https", "http") if allow_http else ("https",)
    segments = parts.path.split("/")
    if (
        len(client_id) > MAX_CLIENT_ID
        or parts.scheme not in schemes
        or not parts.hostname
        or parts.path in ("", "/")
        or parts.fragment
        or "#" in client_id
        or parts.username is not None
        or "." in segments
        or ".." in segments
    ):
        raise ClientError(
            "invalid_client_id",
            "client_id must be an https URL with a path of the client's metadata document",
        )
    return client_id


def _redirect_uri(value: Any, *, allow_http: bool) -> str:
    """One registered redirect URI: absolute, no fragment; http only for loopback (RFC 8252)."""
    if not isinstance(value, str) or not value:
        raise ClientError("invalid_client_metadata", "each redirect URI must be a string")
    parts = urlsplit(value)
    if not parts.scheme or parts.fragment or "#" in value:
        raise ClientError("invalid_client_metadata", f"{value!r} is not an absolute URI")
    loopback = parts.hostname in _LOOPBACK_HOSTS
    if parts.scheme == "http" and not (loopback or allow_http):
        raise ClientError("invalid_client_metadata", f"{value!r}: http only for loopback")
    return value


def _uris(values: Any, *, allow_http: bool) -> tuple[str, ...]:
    listed = values if isinstance(values, list) else [values]
    if not listed:
        raise ClientError("invalid_client_metadata", "the client lists no redirect URI")
    return tuple(_redirect_uri(value, allow_http=allow_http) for value in listed)


def _scopes(text: Any) -> frozenset[str]:
    if text is None:
        return frozenset(SCOPES)
    if not isinstance(text, str):
        raise ClientError("invalid_client_metadata", "scope must be a space-separated string")
    try:
        return parse_scope(text) & frozenset(SCOPES)
    except OAuthError:
        # A client may list scopes other servers define; it gets what we offer of them.
        return frozenset(word for word in text.split() if word in SCOPES)


def _cimd(client_id: str, doc: Mapping[str, Any], allow_http: bool) -> Client:
    if doc.get("client_id") != client_id:
        raise ClientError("invalid_client_metadata", "the document's client_id is not its URL")
    method = doc.get("token_endpoint_auth_method", "none")
    if method != "none" or "client_secret" in doc:
        raise ClientError(
            "invalid_client_metadata", "only public clients (token_endpoint_auth_method none)"
        )
    name = doc.get("client_name")
    client_uri = doc.get("client_uri")
    return Client(
        client_id,
        name if isinstance(name, str) and name.strip() else urlsplit(client_id).netloc,
        _uris(doc.get("redirect_uris"), allow_http=allow_http),
        client_uri if isinstance(client_uri, str) else None,
        _scopes(doc.get("scope")),
    )


def _as2_application(client_id: str, doc: Mapping[str, Any], allow_http: bool) -> Client:
    """FEP-d8c2: an AS2 Application or Service with ``redirectURI``."""
    if doc.get("id") != client_id or not as2.has_type(doc, "Application", "Service"):
        raise ClientError(
            "invalid_client_metadata", "an AS2 client must be an Application whose id is its URL"
        )
    name = as2.text(doc, "name") or urlsplit(client_id).netloc
    return Client(client_id, name, _uris(doc.get("redirectURI"), allow_http=allow_http),
                  as2.first_id(doc, "url"))  # fmt: skip


def client_from_document(
    client_id: str, doc: Mapping[str, Any], *, allow_http: bool = False
) -> Client:
    """Read a Client ID Metadata Document (or FEP-d8c2 AS2 Application) for ``client_id``."""
    if "redirect_uris" in doc:
        return _cimd(client_id, doc, allow_http)
    if "redirectURI" in doc:
        return _as2_application(client_id, doc, allow_http)
    raise ClientError("invalid_client_metadata", "the document lists no redirect_uris")


def barri_cli_document(base_url: str) -> dict[str, Any]:
    """The metadata document of the ``barri client`` command, served by every instance."""
    return {
        "client_id": base_url + BARRI_CLI_PATH,
        "client_name": "barri client",
        "client_uri": "https://w3id.org/barri",
        "redirect_uris": [f"http://127.0.0.1:{port}/callback" for port in BARRI_CLI_PORTS],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "read write",
    }


class ClientRegistry:
    """Resolves client_ids to clients: the built-in one, the cache, or a guarded fetch."""

    def __init__(
        self,
        store: OAuthStore,
        fetch: ClientFetch,
        *,
        base_url: str,
        allow_http: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._fetch = fetch
        self.base_url = base_url
        self.allow_http = allow_http
        self.clock = clock

    async def resolve(self, client_id: str, *, redirect_uri: str | None = None) -> Client:
        """The client behind ``client_id``; a cached one missing ``redirect_uri`` is refetched."""
        check_client_id(client_id, allow_http=self.allow_http)
        if client_id == self.base_url + BARRI_CLI_PATH:
            return client_from_document(client_id, barri_cli_document(self.base_url))
        now = self.clock()
        cached = await self.store.get_client(client_id)
        if cached is not None:
            document, fetched_at, expires_at = cached
            client = client_from_document(client_id, document, allow_http=self.allow_http)
            stale = redirect_uri is not None and redirect_uri not in client.redirect_uris
            if now < expires_at and not (stale and now - fetched_at >= REFETCH_AFTER):
                return client
        document = dict(await self._fetch(client_id))
        client = client_from_document(client_id, document, allow_http=self.allow_http)
        await self.store.put_client(client_id, document, now=now, expires_at=now + CLIENT_TTL)
        return client
