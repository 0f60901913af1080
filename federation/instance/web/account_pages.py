"""Login, logout and registration pages over :class:`federation.instance.accounts.Accounts`.

A failed login says the same thing for an unknown user and a wrong password (OWASP
Authentication cheat sheet). Registration checks each rule first so that its message can be
shown in the visitor's language; the account rules themselves stay in ``Accounts``.
"""

from __future__ import annotations

from aiohttp import web

import federation.instance.app as instance_app
from federation.instance.accounts import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    AccountError,
    check_username,
)
from federation.instance.web.visit import Visit, form, page

_NEXT_FIELD = "next"


def safe_next(value: str | None) -> str:
    """A local path to go to after login; anything else (other sites, ``//host``) is ``/``."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(char) < 0x21 or char == "\\" for char in value):
        return "/"
    return value


async def login_page(visit: Visit) -> web.StreamResponse:
    """GET /login: the login form."""
    next_path = safe_next(visit.request.query.get(_NEXT_FIELD))
    return visit.render("login.html", error=None, username="", next=next_path)


async def login_submit(visit: Visit) -> web.StreamResponse:
    """POST /login: check the password, start a session, go where the visitor was going."""
    username, password = visit.field("username"), visit.field("password")
    next_path = safe_next(visit.field(_NEXT_FIELD))
    user = None
    # An over-long password cannot match and is not worth an argon2 run.
    if username and password and len(password) <= MAX_PASSWORD_LENGTH:
        user = await visit.request.app[instance_app.ACCOUNTS].login(username, password)
    if user is None:
        error = visit.t("login.failed")
        return visit.render(
            "login.html", status=422, error=error, username=username, next=next_path
        )
    visit.log_in(user)
    return visit.redirect(next_path)


async def logout_submit(visit: Visit) -> web.StreamResponse:
    """POST /logout: clear the session cookie."""
    visit.log_out()
    return visit.redirect("/")


def _register_form(
    visit: Visit, *, error: str | None = None, username: str = "", status: int = 200
) -> web.Response:
    return visit.render(
        "register.html",
        status=status,
        error=error,
        username=username,
        min_password=MIN_PASSWORD_LENGTH,
    )


async def register_page(visit: Visit) -> web.StreamResponse:
    """GET /register: the registration form."""
    return _register_form(visit)


async def _registration_problem(visit: Visit, username: str, password: str) -> tuple[int, str]:
    """The first registration rule the input breaks, as (status, message); (0, "") if none."""
    try:
        name = check_username(username)
    except AccountError:
        return 422, visit.t("register.bad_username")
    if name in visit.request.app[instance_app.ACTORS].reserved_usernames:
        return 409, visit.t("register.reserved")
    if len(password) < MIN_PASSWORD_LENGTH:
        return 422, visit.t("register.short_password", n=MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        return 422, visit.t("register.long_password", n=MAX_PASSWORD_LENGTH)
    if password != visit.field("confirm"):
        return 422, visit.t("register.mismatch")
    if await visit.request.app[instance_app.ACCOUNTS].users.get_user(name) is not None:
        return 409, visit.t("register.taken")
    return 0, ""


async def register_submit(visit: Visit) -> web.StreamResponse:
    """POST /register: create a resident account and log it in."""
    username, password = visit.field("username"), visit.field("password")
    status, error = await _registration_problem(visit, username, password)
    if status:
        return _register_form(visit, error=error, username=username, status=status)
    try:
        user = await visit.request.app[instance_app.ACCOUNTS].create_user(username, password)
    except AccountError as exc:
        # Lost a race for the name, or a rule added to Accounts later: show its own words.
        return _register_form(visit, error=str(exc), username=username, status=409)
    visit.log_in(user)
    return visit.redirect("/")


def add_account_routes(app: web.Application) -> None:
    """Routes: GET/POST /login, POST /logout, GET/POST /register."""
    app.router.add_get("/login", page(login_page))
    app.router.add_post("/login", form(login_submit))
    app.router.add_post("/logout", form(logout_submit))
    app.router.add_get("/register", page(register_page))
    app.router.add_post("/register", form(register_submit))
