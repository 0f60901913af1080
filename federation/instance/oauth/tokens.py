"""Authorization codes, access and refresh tokens: issue, exchange, rotate, revoke (RFC 6749).

Codes live :data:`CODE_TTL` seconds and are used once (RFC 6749 §4.1.2: a second use revokes
everything issued from the first); PKCE is S256 only (RFC 7636 §4.2, OAuth 2.1 §7.5.2). Access
tokens live :data:`ACCESS_TTL`; refresh tokens rotate on every use and a replayed one revokes
its whole grant (OAuth 2.0 Security BCP, RFC 9700 §4.14.2). Only SHA-256 hashes are stored.
Scopes are ``read`` and ``write`` (FEP-d8c2); ``write`` implies ``read``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from federation.instance.accounts import TOUCH_INTERVAL, token_hash
from federation.instance.ports import User
from federation.store.oauth import CodeRecord, OAuthStore, TokenRecord

ACCESS_TTL = 3600.0  # seconds: one hour, then the client refreshes
REFRESH_TTL = 30 * 24 * 3600.0  # a month without use and the resident consents again
CODE_TTL = 120.0  # RFC 6749 §4.1.2 recommends at most ten minutes
SCOPES = ("read", "write")
ACCESS_PREFIX = "barri_at_"
REFRESH_PREFIX = "barri_rt_"
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: ``error`` code, human ``description`` and HTTP status."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class TokenRefused(Exception):
    """A bearer token that does not authenticate: ``reason`` is invalid, expired or revoked."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class IssuedTokens:
    """What the token endpoint answers (RFC 6749 §5.1), with the resident it acts for."""

    access_token: str
    refresh_token: str
    expires_in: int
    scope: str
    user_id: int


def parse_scope(text: str | None, *, default: str = "read") -> frozenset[str]:
    """The scopes of a ``scope`` parameter (RFC 6749 §3.3); unknown ones are invalid_scope."""
    words = (text if text is not None else default).split()
    unknown = [word for word in words if word not in SCOPES]
    if unknown or not words:
        shown = ", ".join(unknown) or "(none)"
        raise OAuthError("invalid_scope", f"scopes are read and write, not {shown}")
    return frozenset(words)


def scope_text(scopes: Iterable[str]) -> str:
    """Scopes as one space-separated string in a stable order."""
    chosen = set(scopes)
    return " ".join(scope for scope in SCOPES if scope in chosen)


def effective_scopes(granted: Iterable[str]) -> frozenset[str]:
    """What a token may do: ``write`` implies ``read`` (a client that acts may see its acts)."""
    scopes = set(granted)
    if "write" in scopes:
        scopes.add("read")
    return frozenset(scopes)


def s256(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid_challenge(challenge: str) -> bool:
    """True for an S256 challenge: 43 base64url characters (a SHA-256 digest)."""
    return bool(_CHALLENGE.match(challenge))


def _new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


class OAuthService:
    """Codes and tokens over :class:`OAuthStore`; ``clock`` is POSIX seconds (tests set it)."""

    def __init__(self, store: OAuthStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def issue_code(
        self, user: User, *, client_id: str, redirect_uri: str, scope: str, challenge: str
    ) -> str:
        """A resident consented: a new grant and its single-use authorization code."""
        code, now = _new_secret(), self.clock()
        await self.store.add_grant(
            secrets.token_urlsafe(16), user_id=user.id, client_id=client_id, scope=scope,
            code_hash=token_hash(code), redirect_uri=redirect_uri, code_challenge=challenge,
            now=now, code_expires_at=now + CODE_TTL,
        )  # fmt: skip
        return code

    async def exchange_code(
        self, code: str, *, client_id: str, redirect_uri: str, verifier: str
    ) -> IssuedTokens:
        """RFC 6749 §4.1.3 with RFC 7636 §4.6; any failure burns the code and its grant."""
        now = self.clock()
        record = await self.store.consume_code(token_hash(code), now=now)
        if record is None:
            raise OAuthError("invalid_grant", "unknown authorization code")
        problem = _code_problem(record, client_id, redirect_uri, verifier, now)
        if problem is not None:
            # A reused code may be stolen: what it produced goes too (RFC 6749 §4.1.2).
            await self.store.revoke_grant(record.grant_id, now=now)
            raise OAuthError("invalid_grant", problem)
        return await self._issue(record.grant_id, record.user_id, record.scope, now)

    async def refresh(
        self, refresh_token: str, *, client_id: str, scope: str | None
    ) -> IssuedTokens:
        """RFC 6749 §6 with rotation: the old refresh token is spent, a replay ends the grant."""
        now = self.clock()
        record = await self.store.find_token(token_hash(refresh_token))
        if record is None or record.kind != "refresh" or record.revoked:
            raise OAuthError("invalid_grant", "unknown or revoked refresh token")
        if record.client_id != client_id:
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        if now >= record.expires_at:
            raise OAuthError("invalid_grant", "the refresh token has expired; log in again")
        wanted = parse_scope(scope, default=record.scope)
        if not wanted <= frozenset(record.scope.split()):
            raise OAuthError("invalid_scope", f"the grant covers only {record.scope}")
        if not await self.store.use_refresh_token(record.token_hash, now=now):
            await self.store.revoke_grant(record.grant_id, now=now)
            raise OAuthError(
                "invalid_grant", "the refresh token was already used; every token of it is revoked"
            )
        return await self._issue(record.grant_id, record.user_id, scope_text(wanted), now)

    async def _issue(self, grant_id: str, user_id: int, scope: str, now: float) -> IssuedTokens:
        access, refresh = _new_secret(ACCESS_PREFIX), _new_secret(REFRESH_PREFIX)
        await self.store.add_tokens(
            grant_id,
            [
                (token_hash(access), "access", now + ACCESS_TTL),
                (token_hash(refresh), "refresh", now + REFRESH_TTL),
            ],
            scope=scope,
            now=now,
        )
        return IssuedTokens(access, refresh, int(ACCESS_TTL), scope, user_id)

    async def revoke(self, token: str, *, client_id: str | None) -> None:
        """RFC 7009 §2.1: an unknown token is fine; a refresh token ends its whole grant."""
        now = self.clock()
        record = await self.store.find_token(token_hash(token))
        if record is None:
            return
        if client_id is not None and record.client_id != client_id:
            raise OAuthError("invalid_request", "this token was issued to another client")
        if record.kind == "refresh":
            await self.store.revoke_grant(record.grant_id, now=now)
        else:
            await self.store.revoke_token(record.token_hash, now=now)

    async def access(self, token: str) -> TokenRecord:
        """The live access token behind a bearer value (RFC 6750 §3.1), or TokenRefused."""
        record = await self.store.find_token(token_hash(token))
        if record is None or record.kind != "access":
            raise TokenRefused("token_invalid", "the access token is not known here")
        if record.revoked:
            raise TokenRefused("token_revoked", "the access token was revoked")
        now = self.clock()
        if now >= record.expires_at:
            raise TokenRefused("token_expired", "the access token has expired; refresh it")
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_INTERVAL:
            await self.store.touch_token(record.token_hash, now=now)
        return record


def _code_problem(
    record: CodeRecord, client_id: str, redirect_uri: str, verifier: str, now: float
) -> str | None:
    """Why a consumed code may not be exchanged, or None (RFC 6749 §4.1.3, RFC 7636 §4.6)."""
    if record.used_before:
        return "the authorization code was already used; tokens issued with it are revoked"
    if now >= record.expires_at:
        return "the authorization code has expired"
    if record.client_id != client_id:
        return "the authorization code was issued to another client"
    if record.redirect_uri != redirect_uri:
        return "redirect_uri differs from the one of the authorization request"
    if not _VERIFIER.match(verifier):
        return "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~"
    if not hmac.compare_digest(s256(verifier), record.code_challenge):
        return "code_verifier does not match the code_challenge"
    return None
