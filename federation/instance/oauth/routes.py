"""The authorization server's JSON endpoints: RFC 8414 metadata, token (RFC 6749 §3.2), RFC 7009
revocation, and the ``barri client`` metadata document.

The token and revocation endpoints take ``application/x-www-form-urlencoded`` bodies from
public clients (no client secret: ``client_id`` plus PKCE), answer JSON with
``Cache-Control: no-store`` and errors as RFC 6749 §5.2 ``{"error", "error_description"}``.
Metadata, token and revocation allow cross-origin requests (no cookies are involved), so that
browser-based clients can use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

import federation.instance.app as instance_app
from federation.instance.accounts import TOKEN_PREFIX
from federation.instance.oauth.bearer import OAUTH
from federation.instance.oauth.clients import BARRI_CLI_PATH, barri_cli_document
from federation.instance.oauth.consent import AUTHORIZE_PATH
from federation.instance.oauth.tokens import SCOPES, IssuedTokens, OAuthError

METADATA_PATH = "/.well-known/oauth-authorization-server"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a secret)
REVOKE_PATH = "/oauth/revoke"
MAX_FORM = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


def authorization_server_metadata(base_url: str) -> dict[str, Any]:
    """RFC 8414 §2 metadata, at the origin as the SocialCG task force's clients discover it."""
    return {
        "issuer": base_url,
        "authorization_endpoint": base_url + AUTHORIZE_PATH,
        "token_endpoint": base_url + TOKEN_PATH,
        "revocation_endpoint": base_url + REVOKE_PATH,
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": True,
    }


def _json(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(dict(body), status=status, headers={**_NO_STORE, **_CORS})


def oauth_error(exc: OAuthError) -> web.Response:
    """RFC 6749 §5.2 error JSON (``reason`` repeats the error code, as every refusal here)."""
    body = {"error": exc.error, "error_description": exc.description, "reason": exc.error}
    return _json(body, exc.status)


async def _form(request: web.Request) -> dict[str, str]:
    """The urlencoded body, each parameter once (RFC 6749 §3.2), else invalid_request."""
    media = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded parameters")
    if request.content_length is not None and request.content_length > MAX_FORM:
        raise OAuthError("invalid_request", f"the body exceeds {MAX_FORM} bytes")
    data: MultiDictProxy[Any] = await request.post()
    params: dict[str, str] = {}
    for name in set(data.keys()):
        values = data.getall(name)
        if len(values) != 1 or not isinstance(values[0], str):
            raise OAuthError("invalid_request", f"{name} must be given exactly once")
        params[name] = values[0]
    return params


def _required(params: Mapping[str, str], *names: str) -> list[str]:
    missing = [name for name in names if not params.get(name)]
    if missing:
        raise OAuthError("invalid_request", f"missing {', '.join(missing)}")
    return [params[name] for name in names]


async def _token_body(request: web.Request, issued: IssuedTokens) -> dict[str, Any]:
    """RFC 6749 §5.1, plus ``actor``: the resident's actor id, where C2S starts."""
    user = await request.app[instance_app.ACCOUNTS].users.get_user_by_id(issued.user_id)
    body: dict[str, Any] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
        "scope": issued.scope,
    }
    if user is not None:
        body["actor"] = request.app[instance_app.ACTORS].person_id(user.username)
    return body


async def token(request: web.Request) -> web.Response:
    """POST /oauth/token: authorization_code (with PKCE) or refresh_token grants."""
    try:
        params = await _form(request)
        grant = params.get("grant_type")
        service = request.app[OAUTH]
        if grant == "authorization_code":
            code, client_id, redirect_uri, verifier = _required(
                params, "code", "client_id", "redirect_uri", "code_verifier"
            )
            issued = await service.exchange_code(
                code, client_id=client_id, redirect_uri=redirect_uri, verifier=verifier
            )
        elif grant == "refresh_token":
            refresh, client_id = _required(params, "refresh_token", "client_id")
            issued = await service.refresh(refresh, client_id=client_id, scope=params.get("scope"))
        else:
            raise OAuthError("unsupported_grant_type", "use authorization_code or refresh_token")
    except OAuthError as exc:
        return oauth_error(exc)
    return _json(await _token_body(request, issued))


async def revoke(request: web.Request) -> web.Response:
    """POST /oauth/revoke (RFC 7009): 200 whether or not the token was known."""
    try:
        params = await _form(request)
        (value,) = _required(params, "token")
        if value.startswith(TOKEN_PREFIX):
            # A personal access token: holding it is enough to end it.
            await request.app[instance_app.ACCOUNTS].revoke_token(value)
        else:
            await request.app[OAUTH].revoke(value, client_id=params.get("client_id"))
    except OAuthError as exc:
        return oauth_error(exc)
    return web.Response(status=200, headers={**_NO_STORE, **_CORS})


async def metadata(request: web.Request) -> web.Response:
    """GET the RFC 8414 authorization server metadata."""
    body = authorization_server_metadata(request.app[instance_app.CONFIG].base_url)
    return web.json_response(body, headers=_CORS)


async def barri_cli_client(request: web.Request) -> web.Response:
    """GET the ``barri client`` Client ID Metadata Document."""
    body = barri_cli_document(request.app[instance_app.CONFIG].base_url)
    return web.json_response(body, headers=_CORS)


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight for the JSON endpoints (Fetch standard §3.2.2)."""
    return web.Response(status=204, headers=_CORS)


def add_json_routes(app: web.Application) -> None:
    """Metadata, token, revocation and the built-in client document."""
    app.router.add_get(METADATA_PATH, metadata)
    app.router.add_post(TOKEN_PATH, token)
    app.router.add_post(REVOKE_PATH, revoke)
    app.router.add_get(BARRI_CLI_PATH, barri_cli_client)
    for path in (METADATA_PATH, TOKEN_PATH, REVOKE_PATH):
        app.router.add_route("OPTIONS", path, preflight)
