"""The HTML pages on a real instance (127.0.0.1, real SQLite): accounts, forms, CSRF, a11y.

A browser is an aiohttp ClientSession with a cookie jar; pages are read with html.parser.
Every page the tests fetch also passes :func:`assert_accessible` (lang, one h1, headings in
order, a label for every input, a skip link, no script of any kind).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from federation.config import InitOptions, InstanceConfig, load_config, write_instance_config
from federation.instance.app import ACCOUNTS, create_app
from federation.instance.ports import Role
from federation.instance.web import setup_pages
from federation.instance.web.sessions import SESSION_COOKIE

PASSWORD = "correct horse battery"
HTML_TYPE = "text/html"


def make_config(tmp_path: Path, port: int, *, languages: str | None = None) -> InstanceConfig:
    """A loopback instance whose ids use the port it will listen on."""
    options = InitOptions(
        base_url=f"http://127.0.0.1:{port}",
        name="AV Raval",
        secret="s" * 43,
        group="av_raval",
        territory="08019-01",
        district="08019-1",
        allow_loopback=True,
        listen=f"127.0.0.1:{port}",
    )
    environ = {"BARRI_LANGUAGES": languages} if languages else {}
    return load_config(write_instance_config(tmp_path / "raval", options), environ=environ)


@asynccontextmanager
async def running(config: InstanceConfig) -> AsyncIterator[TestServer]:
    """The instance app with its pages, served on its configured loopback port."""
    app = create_app(config)
    setup_pages(app)  # idempotent, so this also works once create_app wires the pages itself
    server = TestServer(app, host="127.0.0.1", port=config.listen_port)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


# -- reading pages ---------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Tag:
    name: str
    attrs: dict[str, str]
    in_user_content: bool


class Page(HTMLParser):
    """What the tests look at in a page: tags, forms, labels, headings, visible text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[Tag] = []
        self.forms: list[Form] = []
        self.label_for: set[str] = set()
        self.headings: list[tuple[int, str, bool]] = []
        self.text_parts: list[str] = []
        self._heading: tuple[int, list[str], bool] | None = None
        self._label_depth = 0
        self.wrapped_inputs = 0
        self._user_content_depth = 0
        self._stack: list[str] = []
        self.feed(html)
        self.close()

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text_parts)).strip()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        classes = values.get("class", "").split()
        if self._user_content_depth or "user-content" in classes:
            self._user_content_depth += 1 if tag not in VOID else 0
        self.tags.append(Tag(tag, values, self._user_content_depth > 0))
        if tag == "form":
            self.forms.append(Form(values.get("action", ""), values.get("method", "get")))
        elif tag in ("input", "textarea", "select", "button") and self.forms:
            self._form_field(tag, values)
        if tag == "label":
            self._label_depth += 1
            if "for" in values:
                self.label_for.add(values["for"])
        if tag in ("input", "textarea", "select") and self._label_depth:
            self.wrapped_inputs += 1
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = (int(tag[1]), [], self._user_content_depth > 0)

    def _form_field(self, tag: str, values: dict[str, str]) -> None:
        name = values.get("name")
        if not name:
            return
        kind = values.get("type", "text")
        if kind == "radio" and "checked" not in values:
            self.forms[-1].fields.setdefault(name, "")
            return
        self.forms[-1].fields[name] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if self._user_content_depth and tag not in VOID:
            self._user_content_depth -= 1
        if tag == "label":
            self._label_depth -= 1
        if self._heading and tag == f"h{self._heading[0]}":
            level, parts, user = self._heading
            self.headings.append((level, " ".join(parts).strip(), user))
            self._heading = None

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        if self._heading:
            self._heading[1].append(data)

    def form(self, action: str) -> Form:
        for candidate in self.forms:
            if candidate.action == action:
                return candidate
        raise AssertionError(f"no form posting to {action}: {[f.action for f in self.forms]}")

    def find(self, tag_name: str, /, **attrs: str) -> list[Tag]:
        return [
            tag
            for tag in self.tags
            if tag.name == tag_name and all(tag.attrs.get(k) == v for k, v in attrs.items())
        ]


VOID = frozenset({"input", "br", "meta", "link", "img", "hr", "area", "base", "col", "source"})


def assert_accessible(html: str) -> Page:
    """The tiny accessibility check every page must pass; returns the parsed page."""
    page = Page(html)
    assert html.lstrip().lower().startswith("<!doctype html>")
    roots = page.find("html")
    assert len(roots) == 1 and re.fullmatch(r"[a-z]{2}", roots[0].attrs.get("lang", ""))
    own = [(level, text) for level, text, user in page.headings if not user]
    assert [level for level, _ in own].count(1) == 1, own
    assert own[0][0] == 1, own
    for (before, _), (after, text) in itertools.pairwise(own):
        assert after <= before + 1, f"heading level jumps to h{after} ({text!r}): {own}"
    assert all(text for _, text in own), own
    assert page.find("a", href="#main") and page.find("main", id="main")
    fields = [
        tag
        for tag in page.tags
        if tag.name in ("textarea", "select")
        or (tag.name == "input" and tag.attrs.get("type") not in ("hidden", "submit"))
    ]
    unlabelled = [t.attrs for t in fields if t.attrs.get("id") not in page.label_for]
    assert not unlabelled, f"inputs without a label: {unlabelled}"
    assert not page.find("script"), "pages carry no script"
    for tag in page.tags:
        assert not any(name.startswith("on") for name in tag.attrs), tag
        assert not tag.attrs.get("href", "").lower().startswith("javascript:"), tag
    assert not page.find("input", type="submit") or page.find("button")
    return page


# -- a browser -------------------------------------------------------------------------------


class Browser:
    """A visitor with a cookie jar, reading pages and submitting their forms."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.http.close()

    async def get(
        self, path: str, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> Page:
        url = path if path.startswith("http") else self.base + path
        sent = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8", **(headers or {})}
        async with self.http.get(url, headers=sent, allow_redirects=False) as response:
            body = await response.text()
            assert response.status == status, (response.status, body[:2000])
            assert response.content_type == HTML_TYPE
            assert "no-store" in response.headers["Cache-Control"]
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            return assert_accessible(body)

    async def post(
        self,
        path: str,
        data: dict[str, str],
        *,
        status: int = 303,
        headers: dict[str, str] | None = None,
    ) -> tuple[aiohttp.ClientResponse, str]:
        async with self.http.post(
            self.base + path, data=data, headers=headers or {}, allow_redirects=False
        ) as response:
            body = await response.text()
            assert response.status == status, (response.status, body[:2000])
            return response, body

    async def submit(
        self, page: Page, action: str, values: dict[str, str], *, status: int = 303
    ) -> tuple[aiohttp.ClientResponse, str]:
        """Fill in a form found on ``page`` (its hidden fields kept) and post it."""
        data = {**page.form(action).fields, **values}
        return await self.post(action, data, status=status)

    def cookie(self, name: str) -> str | None:
        for morsel in self.http.cookie_jar:
            if morsel.key == name:
                return morsel.value
        return None

    def set_cookie(self, name: str, value: str) -> None:
        self.http.cookie_jar.update_cookies({name: value}, URL(self.base))


@pytest.fixture
def config(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> InstanceConfig:
    return make_config(tmp_path, unused_tcp_port_factory())


@pytest.fixture
async def server(config: InstanceConfig) -> AsyncIterator[TestServer]:
    async with running(config) as started:
        yield started


@pytest.fixture
async def browser(config: InstanceConfig, server: TestServer) -> AsyncIterator[Browser]:
    visitor = Browser(config.base_url)
    yield visitor
    await visitor.close()


async def register(browser: Browser, username: str, password: str = PASSWORD) -> None:
    page = await browser.get("/register")
    response, _ = await browser.submit(
        page, "/register", {"username": username, "password": password, "confirm": password}
    )
    assert response.headers["Location"] == "/"


async def log_in(browser: Browser, username: str, password: str = PASSWORD) -> None:
    page = await browser.get("/login")
    await browser.submit(page, "/login", {"username": username, "password": password})


async def user_count(server: TestServer) -> int:
    return len(await server.app[ACCOUNTS].list_users())


# -- accounts --------------------------------------------------------------------------------


async def test_register_creates_a_resident_and_logs_in(
    server: TestServer, browser: Browser
) -> None:
    page = await browser.get("/register")
    assert page.find("input", name="csrf") and browser.cookie(SESSION_COOKIE)
    anonymous_token = page.form("/register").fields["csrf"]
    await register(browser, "maria")
    user = await server.app[ACCOUNTS].get("maria")
    assert user.role is Role.RESIDENT and not user.verified
    after = await browser.get("/login")
    assert "maria" in after.text
    # A new CSRF token once logged in: the anonymous one is worthless now.
    assert after.form("/logout").fields["csrf"] != anonymous_token


@pytest.mark.parametrize(
    ("username", "password", "confirm", "status", "message"),
    [
        ("Bad Name!", PASSWORD, PASSWORD, 422, "lletres minúscules"),
        ("maria", "short", "short", 422, "com a mínim 10"),
        ("maria", PASSWORD, PASSWORD + "x", 422, "no coincideixen"),
        ("av_raval", PASSWORD, PASSWORD, 409, "reservat"),
    ],
)
async def test_register_refusals_are_explained_in_the_page_language(
    server: TestServer,
    browser: Browser,
    username: str,
    password: str,
    confirm: str,
    status: int,
    message: str,
) -> None:
    page = await browser.get("/register")
    before = await user_count(server)
    _, body = await browser.submit(
        page,
        "/register",
        {"username": username, "password": password, "confirm": confirm},
        status=status,
    )
    again = assert_accessible(body)
    assert message in again.text
    assert again.form("/register").fields["username"] == username  # kept for correcting
    assert again.form("/register").fields.get("password", "") == ""  # never echoed back
    assert await user_count(server) == before


async def test_register_a_taken_name_is_a_409(server: TestServer, browser: Browser) -> None:
    await server.app[ACCOUNTS].create_user("maria", PASSWORD)
    page = await browser.get("/register")
    _, body = await browser.submit(
        page,
        "/register",
        {"username": "maria", "password": PASSWORD, "confirm": PASSWORD},
        status=409,
    )
    assert "ja està agafat" in assert_accessible(body).text


async def test_login_logout(server: TestServer, browser: Browser) -> None:
    await server.app[ACCOUNTS].create_user("joan", PASSWORD)
    page = await browser.get("/login")
    _, body = await browser.submit(
        page, "/login", {"username": "joan", "password": "wrong password!"}, status=422
    )
    failed = assert_accessible(body)
    assert "no són correctes" in failed.text and "Sessió iniciada" not in failed.text
    response, _ = await browser.submit(failed, "/login", {"username": "joan", "password": PASSWORD})
    assert response.headers["Location"] == "/"
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    assert int(cookie["max-age"]) == 14 * 24 * 3600
    home = await browser.get("/login")
    assert "Sessió iniciada com a joan" in home.text
    response, _ = await browser.submit(home, "/logout", {})
    assert response.cookies[SESSION_COOKIE].value == ""
    assert browser.cookie(SESSION_COOKIE) is None
    out = await browser.get("/login")
    assert "joan" not in out.text and out.find("a", href="/register")


async def test_login_goes_back_only_to_local_paths(server: TestServer, browser: Browser) -> None:
    await server.app[ACCOUNTS].create_user("joan", PASSWORD)
    for wanted, landed in [
        ("/register?x=1", "/register?x=1"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ]:
        page = await browser.get("/login?next=" + quote(wanted, safe=""))
        assert page.form("/login").fields["next"] == landed
        data = {"username": "joan", "password": PASSWORD, "next": wanted}
        response, _ = await browser.submit(page, "/login", data)
        assert response.headers["Location"] == landed


# -- CSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token", "OTHER"])
async def test_post_without_the_session_token_is_refused_and_writes_nothing(
    server: TestServer, browser: Browser, config: InstanceConfig, token: str | None
) -> None:
    page = await browser.get("/register")
    data = {"username": "eve", "password": PASSWORD, "confirm": PASSWORD}
    if token == "OTHER":
        # A valid token, but of another visitor's session.
        other = Browser(config.base_url)
        try:
            token = (await other.get("/register")).form("/register").fields["csrf"]
        finally:
            await other.close()
    if token is not None:
        data["csrf"] = token
    assert page.form("/register").fields["csrf"] != token
    before = await user_count(server)
    _, body = await browser.post("/register", data, status=403)
    refused = assert_accessible(body)
    assert "formulari ha caducat" in refused.text
    assert await user_count(server) == before


async def test_post_from_a_foreign_origin_is_refused(server: TestServer, browser: Browser) -> None:
    page = await browser.get("/register")
    data = {**page.form("/register").fields, "username": "eve"}
    data |= {"password": PASSWORD, "confirm": PASSWORD}
    _, body = await browser.post(
        "/register", data, status=403, headers={"Origin": "https://evil.example"}
    )
    assert "formulari" in Page(body).text
    assert await user_count(server) == 0
    await browser.post("/register", data, headers={"Origin": browser.base})
    assert await user_count(server) == 1


async def test_a_post_without_any_session_is_refused(
    server: TestServer, config: InstanceConfig
) -> None:
    async with aiohttp.ClientSession() as http:
        data = {"username": "eve", "password": PASSWORD, "csrf": "x" * 43}
        async with http.post(f"{config.base_url}/login", data=data) as response:
            assert response.status == 403
            assert response.content_type == HTML_TYPE


# -- errors ----------------------------------------------------------------------------------


async def test_unknown_form_fields_and_odd_input_never_give_a_500(
    server: TestServer, browser: Browser
) -> None:
    page = await browser.get("/login")
    token = page.form("/login").fields["csrf"]
    weird: list[dict[str, Any]] = [
        {"csrf": token},
        {"csrf": token, "username": "\x00", "password": "\ud7ff" * 3},
        {"csrf": token, "username": "joan", "password": "p" * 5000},
    ]
    for data in weird:
        _, body = await browser.post("/login", data, status=422)
        assert_accessible(body)
