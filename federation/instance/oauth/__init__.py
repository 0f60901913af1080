"""The instance's OAuth 2.0 authorization server for C2S clients (DESIGN.md §6, FEP-d8c2).

Authorization code with PKCE S256, client ids that are URLs of Client ID Metadata Documents,
a consent page for logged-in residents, scopes ``read`` and ``write``, one-hour access tokens
with rotating refresh tokens, RFC 7009 revocation, RFC 8414 metadata at the origin. Bearer
tokens (these and personal access tokens) are checked by :func:`bearer.authenticate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

import federation.instance.app as instance_app
from activitypub.fetch import FetchError
from activitypub.runtime import FEDERATION
from federation.instance.oauth.bearer import OAUTH, Bearer, authenticate
from federation.instance.oauth.clients import ClientError, ClientRegistry
from federation.instance.oauth.consent import AUTHORIZE_PATH, CLIENTS, add_authorize_routes
from federation.instance.oauth.routes import METADATA_PATH, TOKEN_PATH, add_json_routes
from federation.instance.oauth.tokens import OAuthService
from federation.store.oauth import OAuthStore

__all__ = ["AUTHORIZE_PATH", "CLIENTS", "METADATA_PATH", "OAUTH", "TOKEN_PATH", "Bearer",
           "authenticate", "setup_oauth"]  # fmt: skip


def _client_fetcher(app: web.Application) -> Any:
    async def fetch(url: str) -> Mapping[str, Any]:
        """A client document through the SSRF-guarded fetcher (DESIGN.md §5)."""
        fetcher = app[FEDERATION].fetcher if FEDERATION in app else None
        if fetcher is None:
            raise ClientError("client_metadata_unreachable", "the server is not running")
        try:
            return (await fetcher.get_json(url)).document
        except FetchError as exc:
            raise ClientError(
                "client_metadata_unreachable", f"its metadata document cannot be fetched: {exc}"
            ) from exc

    return fetch


def setup_oauth(app: web.Application) -> None:
    """Add the authorization server's routes; its services start with the app."""
    add_json_routes(app)
    add_authorize_routes(app)

    async def on_startup(app: web.Application) -> None:
        config, store = app[instance_app.CONFIG], OAuthStore(app[instance_app.DB])
        app[OAUTH] = OAuthService(store)
        app[CLIENTS] = ClientRegistry(
            store, _client_fetcher(app), base_url=config.base_url,
            allow_http=config.allow_loopback,
        )  # fmt: skip

    app.on_startup.append(on_startup)
