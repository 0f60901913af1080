"""Stateless signed cookie sessions for the HTML pages (OWASP Session Management cheat sheet).

The cookie is ``base64url(JSON {user, exp, csrf})`` + ``"."`` + ``base64url(HMAC-SHA256)``.
The HMAC key is derived from the instance secret with a fixed label, so a session MAC can
never be confused with the census hashes that the same secret keys. Nothing is stored on the
server: logging out clears the cookie, and a cookie stays valid until ``exp`` (14 days).
Anonymous visitors get a session too (``user`` is None), so login and registration forms carry
a CSRF token like every other form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

SESSION_COOKIE = "barri_session"
SESSION_TTL = 14 * 24 * 3600  # seconds: two weeks, then log in again
MAX_COOKIE_LENGTH = 1024  # a real session cookie is ~200 characters; refuse to parse more
_KEY_LABEL = b"barri web session v1"


@dataclass(frozen=True)
class Session:
    """One browser's session: the username (None when anonymous), expiry and CSRF token."""

    user: str | None
    exp: int
    csrf: str

    @property
    def anonymous(self) -> bool:
        """True when nobody is logged in."""
        return self.user is None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


class SessionCodec:
    """Creates, signs and verifies session cookies with a key derived from ``config.secret``."""

    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()
        self._clock = clock

    def new(self, user: str | None) -> Session:
        """A fresh session with a new CSRF token (on login: never reuse the anonymous token)."""
        return Session(user, int(self._clock()) + SESSION_TTL, secrets.token_urlsafe(32))

    def encode(self, session: Session) -> str:
        """The cookie value: payload and its MAC, both base64url without padding."""
        payload = json.dumps(
            {"user": session.user, "exp": session.exp, "csrf": session.csrf},
            separators=(",", ":"),
            sort_keys=True,
        ).encode("utf-8")
        body = _b64encode(payload)
        return body + "." + _b64encode(self._mac(body))

    def decode(self, value: str | None) -> Session | None:
        """The session in a cookie value, or None when malformed, forged or expired."""
        if not value or len(value) > MAX_COOKIE_LENGTH or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        try:
            given = _b64decode(mac)
            payload: Any = json.loads(_b64decode(body))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        # Compare MACs before trusting anything in the payload (constant time).
        if not hmac.compare_digest(given, self._mac(body)):
            return None
        session = _session_of(payload)
        if session is None or session.exp <= self._clock():
            return None
        return session

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()


def _session_of(payload: Any) -> Session | None:
    """A Session from a verified payload with the expected types, else None."""
    if not isinstance(payload, dict):
        return None
    user, exp, csrf = payload.get("user"), payload.get("exp"), payload.get("csrf")
    if user is not None and not isinstance(user, str):
        return None
    if isinstance(exp, bool) or not isinstance(exp, int) or not isinstance(csrf, str) or not csrf:
        return None
    return Session(user, exp, csrf)


def set_session_cookie(
    response: web.StreamResponse, codec: SessionCodec, session: Session, *, secure: bool
) -> None:
    """Set the session cookie: HttpOnly, SameSite=Lax, Secure on https, 14-day Max-Age."""
    response.set_cookie(
        SESSION_COOKIE,
        codec.encode(session),
        max_age=SESSION_TTL,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


def clear_session_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    """Expire the session cookie in the browser (logout)."""
    response.del_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="Lax")
