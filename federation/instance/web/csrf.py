"""CSRF defence for the HTML forms: a per-session synchronizer token plus an Origin check.

OWASP CSRF Prevention cheat sheet: every form carries the session's token in a hidden field
``csrf``; a POST whose token is missing or different is refused with 403 before anything is
read or written. Browsers also send ``Origin`` on POSTs: when present it must be the
instance's own origin (defence in depth; SameSite=Lax already keeps the cookie off most
cross-site POSTs).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from federation.instance.web.sessions import Session

CSRF_FIELD = "csrf"


class CsrfRefused(Exception):
    """A state-changing request without a valid CSRF token or from a foreign origin."""


def check_origin(headers: Mapping[str, str], base_url: str) -> None:
    """Refuse a request whose ``Origin`` header names another origin (RFC 6454 §7)."""
    origin = headers.get("Origin")
    # No Origin (older browsers, non-browser clients): the token check below still applies.
    if origin is not None and origin.rstrip("/") != base_url.rstrip("/"):
        raise CsrfRefused(f"the request came from {origin}, not {base_url}")


def check_token(session: Session, submitted: object) -> None:
    """Refuse unless ``submitted`` equals the session's CSRF token (compared in constant time)."""
    if not isinstance(submitted, str) or not submitted:
        raise CsrfRefused("the form has no CSRF token")
    if not hmac.compare_digest(submitted.encode("utf-8"), session.csrf.encode("utf-8")):
        raise CsrfRefused("the form's CSRF token does not match the session")
