"""The authorization endpoint (RFC 6749 §4.1.1) and its consent page for logged-in residents.

GET shows the consent page (a visitor is sent to log in first); POST, with the session's CSRF
token, records the answer and redirects to the client with ``code``, ``state`` and ``iss``
(RFC 9207), or ``error=access_denied``. A bad ``client_id`` or a ``redirect_uri`` the client's
metadata document does not list exactly is shown on an error page and never redirected to
(RFC 6749 §4.1.2.1); every other problem goes back to the client as an error redirect. PKCE
is required and S256 only (RFC 7636 §4.3; ``plain`` refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from federation.instance.oauth.bearer import OAUTH
from federation.instance.oauth.clients import Client, ClientError, ClientRegistry
from federation.instance.oauth.messages import consent_catalogue
from federation.instance.oauth.tokens import OAuthError, parse_scope, scope_text, valid_challenge
from federation.instance.web.i18n import Translator
from federation.instance.web.render import SECURITY_HEADERS
from federation.instance.web.visit import PageError, Visit, form, page

AUTHORIZE_PATH = "/oauth/authorize"
CLIENTS: web.AppKey[ClientRegistry] = web.AppKey("barri.oauth_clients", ClientRegistry)
_FIELDS = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
           "code_challenge_method")  # fmt: skip


class ErrorRedirect(Exception):
    """An authorization error the client learns through its redirect_uri (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description = error, description


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked authorization request: its client, redirect, scopes, state and challenge."""

    client: Client
    redirect_uri: str
    scope: str
    state: str | None
    code_challenge: str

    def hidden_fields(self) -> dict[str, str]:
        """The request as the consent form carries it to the POST."""
        fields = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.state is not None:
            fields["state"] = self.state
        return fields


def _single(params: Mapping[str, str], getall: list[str], name: str) -> str | None:
    # RFC 6749 §3.1: a parameter sent twice is invalid (two readers may take different ones).
    if len(getall) > 1:
        raise PageError(400, "oauth.refused", detail=f"{name} is given more than once")
    return params.get(name)


def _params(data: Mapping[str, str], counts: Mapping[str, list[str]]) -> dict[str, str | None]:
    return {name: _single(data, counts.get(name, []), name) for name in _FIELDS}


async def check_request(
    app: web.Application, params: Mapping[str, str | None]
) -> AuthorizationRequest:
    """Check an authorization request; PageError for client problems, ErrorRedirect else."""
    client_id, redirect_uri = params.get("client_id"), params.get("redirect_uri")
    if not client_id or not redirect_uri:
        raise PageError(400, "oauth.refused", detail="client_id and redirect_uri are required")
    try:
        client = await app[CLIENTS].resolve(client_id, redirect_uri=redirect_uri)
    except ClientError as exc:
        raise PageError(400, "oauth.refused", detail=exc.detail) from exc
    if redirect_uri not in client.redirect_uris:
        detail = "redirect_uri is not one its metadata document lists (exact match)"
        raise PageError(400, "oauth.refused", detail=detail)
    return AuthorizationRequest(client, redirect_uri, *_checked_rest(client, params))


def _checked_rest(client: Client, params: Mapping[str, str | None]) -> tuple[str, str | None, str]:
    """Scope, state and challenge, once the redirect is known to be the client's."""
    if params.get("response_type") != "code":
        raise ErrorRedirect("unsupported_response_type", "only response_type=code")
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if not challenge:
        raise ErrorRedirect("invalid_request", "PKCE is required: send code_challenge (S256)")
    if method != "S256":
        raise ErrorRedirect(
            "invalid_request", "code_challenge_method must be S256 (plain is refused)"
        )
    if not valid_challenge(challenge):
        raise ErrorRedirect("invalid_request", "code_challenge must be 43 base64url characters")
    try:
        scopes = parse_scope(params.get("scope"))
    except OAuthError as exc:
        raise ErrorRedirect(exc.error, exc.description) from exc
    if not scopes <= client.scopes:
        raise ErrorRedirect("invalid_scope", "the client's metadata does not ask for these scopes")
    return scope_text(scopes), params.get("state"), challenge


def redirect_with(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """``redirect_uri`` with parameters added to its own query (RFC 6749 §3.1.2)."""
    parts = urlsplit(redirect_uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _form_source(redirect_uri: str) -> str:
    """The CSP source the consent form may redirect to (browsers apply form-action to it)."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"


def _issuer(visit: Visit) -> str:
    return visit.kit.config.base_url


def _speak_oauth(visit: Visit) -> None:
    visit.t = Translator(visit.lang, consent_catalogue())


def _error_redirect(
    visit: Visit, params: Mapping[str, str | None], exc: ErrorRedirect
) -> web.Response:
    location = redirect_with(
        str(params.get("redirect_uri")),
        {"error": exc.error, "error_description": exc.description,
         "state": params.get("state"), "iss": _issuer(visit)},
    )  # fmt: skip
    return visit.redirect(location)


async def authorize_page(visit: Visit) -> web.StreamResponse:
    """GET /oauth/authorize: the consent page (after login) for a valid request."""
    _speak_oauth(visit)
    query = visit.request.query
    params = _params(query, {k: query.getall(k) for k in _FIELDS if k in query})
    try:
        request = await check_request(visit.request.app, params)
    except ErrorRedirect as exc:
        return _error_redirect(visit, params, exc)
    if visit.user is None:
        return visit.login_redirect()
    response = visit.render(
        "oauth_consent.html", client=request.client, fields=request.hidden_fields(),
        scopes=request.scope.split(), returns_to=urlsplit(request.redirect_uri).netloc
        or request.redirect_uri, action=AUTHORIZE_PATH,
    )  # fmt: skip
    csp = SECURITY_HEADERS["Content-Security-Policy"].replace(
        "form-action 'self'", f"form-action 'self' {_form_source(request.redirect_uri)}"
    )
    response.headers["Content-Security-Policy"] = csp
    return response


async def authorize_submit(visit: Visit) -> web.StreamResponse:
    """POST /oauth/authorize: the resident's answer; a code (or access_denied) to the client."""
    _speak_oauth(visit)
    user = visit.require_user()
    data = visit.data
    params = _params(
        {k: v for k, v in data.items() if isinstance(v, str)},
        {k: [str(v) for v in data.getall(k)] for k in _FIELDS if k in data},
    )
    try:
        request = await check_request(visit.request.app, params)
    except ErrorRedirect as exc:
        return _error_redirect(visit, params, exc)
    if visit.field("decision") != "allow":
        denied = ErrorRedirect("access_denied", "the resident did not authorise the app")
        return _error_redirect(visit, params, denied)
    code = await visit.request.app[OAUTH].issue_code(
        user, client_id=request.client.client_id, redirect_uri=request.redirect_uri,
        scope=request.scope, challenge=request.code_challenge,
    )  # fmt: skip
    location = redirect_with(
        request.redirect_uri, {"code": code, "state": request.state, "iss": _issuer(visit)}
    )
    return visit.redirect(location)


def add_authorize_routes(app: web.Application) -> None:
    """GET and POST /oauth/authorize (the consent page uses the pages' sessions and CSRF)."""
    app.router.add_get(AUTHORIZE_PATH, page(authorize_page))
    app.router.add_post(AUTHORIZE_PATH, form(authorize_submit))


__all__ = ["AUTHORIZE_PATH", "CLIENTS", "add_authorize_routes", "check_request"]
