"""One browser request to a page: its session, user, language, rendering and errors.

Handlers are written as ``async def handler(visit: Visit) -> web.StreamResponse`` and wrapped
by :func:`page` (GET) or :func:`form` (POST: Origin and CSRF token checked first, 403 and
nothing written when they fail). Every error becomes an HTML page in the visitor's language
with the right status; a traceback never reaches the browser (DESIGN.md §6 "Errors").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from yarl import URL

import federation.instance.app as instance_app
from activitypub.errors import Problem
from federation.instance.content import ContentError
from federation.instance.ports import Role, User
from federation.instance.rules import RuleViolation
from federation.instance.web.csrf import CSRF_FIELD, CsrfRefused, check_origin, check_token
from federation.instance.web.i18n import (
    LANG_COOKIE,
    LANG_COOKIE_MAX_AGE,
    Translator,
    choose_language,
)
from federation.instance.web.render import PAGES, SECURITY_HEADERS, PageKit
from federation.instance.web.sessions import (
    SESSION_COOKIE,
    Session,
    clear_session_cookie,
    set_session_cookie,
)

log = logging.getLogger(__name__)
ServiceError = Problem | RuleViolation | ContentError
# What the domain services raise when they refuse (rules.py, content.py, RFC 9457 problems).
SERVICE_ERRORS = (Problem, RuleViolation, ContentError)
STAFF = frozenset({Role.ADMIN, Role.MODERATOR})


class PageError(Exception):
    """Stop a handler and show an error page: ``status`` and a catalogue key (with params)."""

    def __init__(self, status: int, message: str, **params: object) -> None:
        super().__init__(f"{status} {message}")
        self.status, self.message, self.params = status, message, params


@dataclass
class Visit:
    """The page context of one request."""

    request: web.Request
    kit: PageKit
    t: Translator
    session: Session
    user: User | None
    lang_from_query: bool = False
    session_changed: bool = False
    logged_out: bool = False
    data: MultiDictProxy[Any] = field(default_factory=lambda: MultiDictProxy(MultiDict()))

    @property
    def lang(self) -> str:
        """The page language."""
        return self.t.lang

    def field(self, name: str) -> str:
        """A submitted form field as text ("" when missing or a file)."""
        value = self.data.get(name)
        return value if isinstance(value, str) else ""

    def render(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        """Render a template with the common context; the response is UTF-8 HTML."""
        # ``here`` is the page's own GET address: a form re-rendered after a refused POST
        # names the page it belongs to, not the action it posted to.
        here = context.setdefault("here", self.request.path_qs)
        body = self.kit.env.get_template(template).render(
            t=self.t,
            lang=self.lang,
            text=lambda value: value.get(self.lang) if value is not None else "",
            who=self.kit.actor_label,
            user=self.user,
            staff=self.is_staff,
            csrf=self.session.csrf,
            csrf_field=CSRF_FIELD,
            site_name=self.kit.config.name,
            languages=self.kit.offered,
            path=self.request.path,
            lang_url=lambda code: with_query(here, lang=code, done=None),
            **context,
        )
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    def redirect(self, location: str) -> web.Response:
        """303 See Other: after a POST the browser GETs ``location`` (no resubmission)."""
        return web.Response(status=303, headers={"Location": location})

    def redirect_done(self, location: str, done: str, fragment: str = "") -> web.Response:
        """303 to ``location`` with ``?done=`` (its confirmation notice) and a fragment."""
        return self.redirect(with_query(location, done=done) + fragment)

    def login_redirect(self) -> web.Response:
        """303 to the login page, coming back here afterwards."""
        return self.redirect("/login?next=" + quote(self.request.path_qs, safe=""))

    def error(self, status: int, message: str, **params: object) -> web.Response:
        """The error page with ``status`` and a translated message."""
        key = f"error.{status}" if self.t.has(f"error.{status}") else "error.other"
        title = self.t(key)
        return self.render(
            "error.html", status=status, title=title, message=self.t(message, **params)
        )

    @property
    def is_staff(self) -> bool:
        """True for the association's admins and moderators."""
        return self.user is not None and self.user.role in STAFF

    def require_user(self) -> User:
        """The logged-in user; anonymous visitors get a 403 page asking them to log in."""
        if self.user is None:
            raise PageError(403, "error.login_required")
        return self.user

    def require_staff(self) -> User:
        """The logged-in admin or moderator, else a 403 page."""
        user = self.require_user()
        if user.role not in STAFF:
            raise PageError(403, "error.staff_only")
        return user

    def log_in(self, user: User) -> None:
        """Start a new session for ``user`` (a new CSRF token too: no session fixation)."""
        self.session = self.kit.sessions.new(user.username)
        self.user, self.session_changed, self.logged_out = user, True, False

    def log_out(self) -> None:
        """End the session: the cookie is cleared in the response."""
        self.session = self.kit.sessions.new(None)
        self.user, self.session_changed, self.logged_out = None, False, True

    def finish(self, response: web.StreamResponse) -> web.StreamResponse:
        """Cookies and security headers on the way out."""
        if self.logged_out:
            clear_session_cookie(response, secure=self.kit.secure)
        elif self.session_changed:
            set_session_cookie(response, self.kit.sessions, self.session, secure=self.kit.secure)
        if self.lang_from_query:
            response.set_cookie(
                LANG_COOKIE,
                self.lang,
                max_age=LANG_COOKIE_MAX_AGE,
                path="/",
                httponly=True,
                samesite="Lax",
                secure=self.kit.secure,
            )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers["Vary"] = "Accept, Accept-Language, Cookie"
        return response


def with_query(location: str, **params: str | None) -> str:
    """``location`` with query parameters set (a None value removes the parameter)."""
    url = URL(location)
    query = {k: v for k, v in url.query.items() if k not in params}
    query |= {k: v for k, v in params.items() if v is not None}
    return str(url.with_query(query))


async def start_visit(request: web.Request) -> Visit:
    """The visit for a request: language, session from the cookie (or a new one), user."""
    kit = request.app[PAGES]
    choice = choose_language(
        kit.offered,
        query=request.query.get("lang"),
        cookie=request.cookies.get(LANG_COOKIE),
        accept=request.headers.get("Accept-Language"),
    )
    session = kit.sessions.decode(request.cookies.get(SESSION_COOKIE))
    fresh = session is None
    if session is None:
        session = kit.sessions.new(None)
    user = None
    if session.user is not None:
        user = await request.app[instance_app.ACCOUNTS].users.get_user(session.user)
        if user is None:
            # The account is gone: carry on as an anonymous visitor.
            session, fresh = kit.sessions.new(None), True
    return Visit(request, kit, Translator(choice.lang), session, user, choice.from_query, fresh)


PageHandler = Callable[[Visit], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(handler: PageHandler) -> Handler:
    """An aiohttp handler running ``handler`` with a Visit; every error is an HTML page."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        visit = await start_visit(request)
        return visit.finish(await run_page(visit, handler))

    return wrapped


def form(handler: PageHandler) -> Handler:
    """Like :func:`page` for POSTs: the Origin and CSRF token are checked before ``handler``."""

    async def checked(visit: Visit) -> web.StreamResponse:
        check_origin(visit.request.headers, visit.kit.config.base_url)
        visit.data = await visit.request.post()
        check_token(visit.session, visit.data.get(CSRF_FIELD))
        return await handler(visit)

    return page(checked)


async def run_page(visit: Visit, handler: PageHandler) -> web.StreamResponse:
    """Run ``handler``; turn refusals and failures into error pages with their status."""
    try:
        return await handler(visit)
    except PageError as exc:
        return visit.error(exc.status, exc.message, **exc.params)
    except CsrfRefused:
        return visit.error(403, "error.csrf")
    except SERVICE_ERRORS as exc:
        return visit.error(status_of(exc), "error.refused", detail=explain(visit, exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return visit.error(exc.status, "error.http")
    except Exception:
        # Logged for the operator; the visitor gets a page, never a traceback.
        log.exception("page %s %s failed", visit.request.method, visit.request.path)
        return visit.error(500, "error.unexpected")


def status_of(exc: ServiceError) -> int:
    """The HTTP status a service refusal carries (content errors are 400)."""
    return 400 if isinstance(exc, ContentError) else exc.status


def explain(visit: Visit, exc: ServiceError) -> str:
    """A refusal in the visitor's language: the rule's message, else the service's own detail."""
    if isinstance(exc, Problem):
        # A content rule (``too_long``) inside ``invalid_input`` is the more exact of the two.
        rule = exc.extensions.get("rule") or exc.extensions.get("reason")
        limit = exc.extensions.get("limit")
        detail = exc.detail or exc.title
    else:
        rule, detail = exc.rule, exc.detail
        limit = exc.limit if isinstance(exc, ContentError) else None
    if isinstance(rule, str) and visit.t.has(f"rule.{rule}"):
        return visit.t(f"rule.{rule}", limit=limit if limit is not None else "")
    return detail
