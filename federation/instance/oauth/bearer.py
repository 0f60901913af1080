"""Bearer tokens on the API (RFC 6750): OAuth access tokens and personal access tokens alike.

``Authorization: Bearer <token>`` carries either an access token from the token endpoint
(``barri_at_…``) or a personal access token from ``barri admin token create`` (``barri_pat_…``,
scope ``write`` = read and write). A refusal is problem+json naming the rule in ``reason``, with
the RFC 6750 §3 ``WWW-Authenticate`` challenge: 401 without a usable token, 403 when its scope
is too narrow.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

import federation.instance.app as instance_app
from activitypub.errors import Problem
from federation.instance.accounts import TOKEN_PREFIX
from federation.instance.deliberation import PROBLEM_BASE
from federation.instance.oauth.tokens import OAuthService, TokenRefused, effective_scopes
from federation.instance.ports import TokenScope, User

REALM = "barri"
OAUTH: web.AppKey[OAuthService] = web.AppKey("barri.oauth", OAuthService)
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}


@dataclass(frozen=True)
class Bearer:
    """Who a request acts for and what it may do; ``client_id`` is None for a personal token."""

    user: User
    actor_id: str
    scopes: frozenset[str]
    client_id: str | None


def bearer_problem(
    status: int, reason: str, detail: str, *, error: str | None = None, scope: str | None = None
) -> Problem:
    """A refusal with its RFC 6750 challenge (``error`` is the RFC 6750 §3.1 code)."""
    challenge = f'Bearer realm="{REALM}"'
    if error is not None:
        challenge += f', error="{error}", error_description="{detail}"'
    if scope is not None:
        challenge += f', scope="{scope}"'
    return Problem(
        status, _TITLES[status], detail, type_=PROBLEM_BASE + reason,
        headers={"WWW-Authenticate": challenge}, reason=reason,
    )  # fmt: skip


def _token_of(request: web.Request, need: str) -> str:
    header = request.headers.get("Authorization")
    if header is None:
        raise bearer_problem(
            401, "token_missing", "send an access token: Authorization: Bearer <token>", scope=need
        )
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise bearer_problem(
            400, "token_malformed", "the Authorization header must be: Bearer <token>",
            error="invalid_request",
        )  # fmt: skip
    return token


async def _personal(request: web.Request, token: str) -> tuple[User, frozenset[str], None]:
    owner = await request.app[instance_app.ACCOUNTS].authenticate_token(token)
    if owner is None:
        raise bearer_problem(
            401, "token_invalid", "the personal access token is unknown or revoked",
            error="invalid_token",
        )  # fmt: skip
    scopes = {"read", "write"} if owner.scope is TokenScope.WRITE else {"read"}
    return owner.user, frozenset(scopes), None


async def _oauth(request: web.Request, token: str) -> tuple[User, frozenset[str], str]:
    try:
        record = await request.app[OAUTH].access(token)
    except TokenRefused as exc:
        raise bearer_problem(401, exc.reason, exc.detail, error="invalid_token") from exc
    user = await request.app[instance_app.ACCOUNTS].users.get_user_by_id(record.user_id)
    if user is None:
        raise bearer_problem(401, "token_invalid", "the account is gone", error="invalid_token")
    return user, effective_scopes(record.scope.split()), record.client_id


async def authenticate(request: web.Request, need: str) -> Bearer:
    """The bearer of a request if its token is live and allows ``need`` (RFC 6750 §2.1, §3)."""
    token = _token_of(request, need)
    if token.startswith(TOKEN_PREFIX):
        user, scopes, client = await _personal(request, token)
    else:
        user, scopes, client = await _oauth(request, token)
    if need not in scopes:
        raise bearer_problem(
            403, "insufficient_scope", f"this token may not {need}; ask for the {need} scope",
            error="insufficient_scope", scope=need,
        )  # fmt: skip
    actor_id = request.app[instance_app.ACTORS].person_id(user.username)
    return Bearer(user, actor_id, scopes, client)
