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
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from federation.config import InitOptions, InstanceConfig, load_config, write_instance_config
from federation.instance.app import ACCOUNTS, DB, DELIBERATION, create_app
from federation.instance.deliberation import Deliberation
from federation.instance.ports import Role, User
from federation.instance.readside import setup_readside
from federation.instance.web import setup_pages
from federation.instance.web.sessions import SESSION_COOKIE
from federation.model import Alignment, Comment, Process, ProposalState
from tests.instance_fixtures import count_rows, iso, process_draft

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
    # Both are no-ops once create_app wires them itself.
    if not any(r.canonical == "/processes/{id}" for r in app.router.resources()):
        setup_readside(app)
    setup_pages(app)
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
        return re.sub(r"\s+", " ", "".join(self.text_parts)).strip()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in INLINE:
            self.text_parts.append(" ")
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
        if tag not in INLINE:
            self.text_parts.append(" ")
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


INLINE = frozenset({"a", "strong", "em", "span", "code", "time", "abbr", "b", "i"})
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
            assert "no-store" in response.headers["Cache-Control"]
            if 300 <= status < 400:
                return Page(body)
            assert response.content_type == HTML_TYPE
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


async def register(
    browser: Browser, username: str, password: str = PASSWORD, *, verified_by: Any = None
) -> None:
    """Register through the form (logged in afterwards); ``verified_by`` a Site verifies too."""
    page = await browser.get("/register")
    response, _ = await browser.submit(
        page, "/register", {"username": username, "password": password, "confirm": password}
    )
    assert response.headers["Location"] == "/"
    if verified_by is not None:
        await verified_by.server.app[ACCOUNTS].verify(username, "08019-01", by="test")


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


# -- the deliberation pages ------------------------------------------------------------------

TERRITORY = ("neighbourhood", "08019-01", "08019-1")
AS2 = "application/activity+json"


def open_draft(
    *, proposals: bool = True, supports: bool = True, per_participant: int = 3
) -> dict[str, Any]:
    """A process whose current phase (around the real now) takes what the test needs."""
    draft = process_draft(per_participant=per_participant, territories=(TERRITORY,))
    now = datetime.now(UTC).replace(microsecond=0)

    def phase(name: str, start: datetime, end: datetime, active: bool) -> dict[str, Any]:
        return {
            "type": "Phase",
            "name": name,
            "startTime": iso(start),
            "endTime": iso(end),
            "allowsProposals": proposals and active,
            "allowsSupports": supports and active,
            "allowsComments": True,
            "allowsDebates": True,
        }

    draft["phases"] = [
        phase("Ara", now - timedelta(days=1), now + timedelta(days=30), True),
        phase("Després", now + timedelta(days=30), now + timedelta(days=60), False),
    ]
    return draft


@dataclass
class Site:
    server: TestServer
    config: InstanceConfig
    service: Deliberation
    admin: User
    process: Process

    async def rows(self) -> dict[str, int]:
        return await count_rows(self.server.app[DB])


@pytest.fixture
async def site(server: TestServer, config: InstanceConfig) -> Site:
    accounts = server.app[ACCOUNTS]
    admin = await accounts.create_user("admin", PASSWORD, Role.ADMIN)
    service = server.app[DELIBERATION]
    process = await service.create_process(open_draft(), by=admin)
    return Site(server, config, service, admin, process)


async def new_proposal(browser: Browser, site: Site, name: str, body: str) -> str:
    """Fill in the new proposal form of the site's process; the proposal's id."""
    local = site.process.id.rsplit("/", 1)[-1]
    action = f"/processes/{local}/proposals/new"
    form_page = await browser.get(action)
    response, _ = await browser.submit(form_page, action, {"name": name, "body": body})
    location = response.headers["Location"]
    assert location.endswith("?done=proposal_created")
    return location.split("?")[0]


async def test_start_page_and_process_page(site: Site, browser: Browser) -> None:
    home = await browser.get("/")
    assert home.headings[0][1] == "AV Raval"
    assert "Pressupostos participatius 2027" in home.text
    assert home.find("a", href=site.process.id)
    page = await browser.get(site.process.id)
    assert page.headings[0][1] == "Pressupostos participatius 2027"
    active = page.find("li", **{"aria-current": "step"})
    assert len(active) == 1 and "phase-active" in active[0].attrs["class"]
    assert "Ara fase actual" in page.text and "Després" in page.text
    assert "En aquesta fase: propostes noves, suports, comentaris i debats." in page.text
    assert "fins a 3 propostes" in page.text and "el barri 08019-01" in page.text
    local = site.process.id.rsplit("/", 1)[-1]
    assert page.find("a", href=f"/processes/{local}/proposals/new")
    english = await browser.get(site.process.id + "?lang=en")
    assert "Each participant can support up to 3 proposals." in english.text
    # The same URL answers AS2 to servers.
    async with browser.http.get(site.process.id, headers={"Accept": AS2}) as response:
        assert response.status == 200 and (await response.json())["id"] == site.process.id


async def test_no_proposal_link_when_the_phase_takes_none(site: Site, browser: Browser) -> None:
    closed = await site.service.create_process(open_draft(proposals=False), by=site.admin)
    page = await browser.get(closed.id)
    assert not [t for t in page.find("a") if t.attrs.get("href", "").endswith("/proposals/new")]
    assert "En aquesta fase: comentaris i debats." in page.text


async def test_register_propose_support_comment(site: Site, browser: Browser) -> None:
    await register(browser, "maria")
    local = site.process.id.rsplit("/", 1)[-1]
    action = f"/processes/{local}/proposals/new"
    # Not verified yet: the rule refuses, the form says why and keeps the input, nothing written.
    before = await site.rows()
    form_page = await browser.get(action)
    values = {"name": "Més bancs a la plaça", "body": "Calen **bancs**."}
    _, body = await browser.submit(form_page, action, values, status=403)
    refused = assert_accessible(body)
    assert "residència verificada" in refused.text
    assert refused.form(action).fields["name"] == "Més bancs a la plaça"
    assert await site.rows() == before

    await site.server.app[ACCOUNTS].verify("maria", "08019-01", by="test")
    proposal_id = await new_proposal(browser, site, "Més bancs a la plaça", "Calen **bancs**.")
    stored = await site.service.get_proposal(proposal_id)
    assert stored is not None and stored.author.endswith("/users/maria")
    page = await browser.get(proposal_id + "?done=proposal_created")
    assert page.headings[0][1] == "Més bancs a la plaça"
    assert "La teva proposta està publicada." in page.text
    assert page.find("strong") and "Calen bancs." in page.text
    assert "0 suports" in page.text and "Sense resposta" in page.text

    # Another resident, not verified, cannot support: 403 on the proposal page.
    joan = Browser(site.config.base_url)
    try:
        await register(joan, "joan")
        joan_page = await joan.get(proposal_id)
        before = await site.rows()
        _, body = await joan.submit(
            joan_page, urlsplit(proposal_id).path + "/support", {}, status=403
        )
        assert "residència verificada" in assert_accessible(body).text
        assert await site.rows() == before
    finally:
        await joan.close()

    page = await browser.get(proposal_id)
    response, _ = await browser.submit(page, urlsplit(proposal_id).path + "/support", {})
    assert response.headers["Location"] == proposal_id + "?done=supported"
    page = await browser.get(proposal_id + "?done=supported")
    assert "1 suport" in page.text and "Pots donar 2 suports més en aquest procés." in page.text
    assert page.form(urlsplit(proposal_id).path + "/unsupport")
    assert await site.service.support_count(proposal_id) == 1

    # Supporting twice is a 409 with the rule's message; the count stays.
    token = page.form(urlsplit(proposal_id).path + "/unsupport").fields["csrf"]
    _, body = await browser.post(
        urlsplit(proposal_id).path + "/support", {"csrf": token}, status=409
    )
    assert "Ja dones suport a aquesta proposta." in Page(body).text
    assert await site.service.support_count(proposal_id) == 1

    await browser.submit(page, urlsplit(proposal_id).path + "/unsupport", {})
    assert await site.service.support_count(proposal_id) == 0

    page = await browser.get(proposal_id)
    path = urlsplit(proposal_id).path
    await browser.submit(page, path + "/comment", {"body": "Molt *bé*", "alignment": "inFavor"})
    page = await browser.get(proposal_id)
    assert "Comentaris (1)" in page.text and "Molt bé" in page.text
    assert page.find("span", **{"class": "badge inFavor"})
    thread = await site.service.thread(proposal_id)
    assert [e.comment.alignment for e in thread] == [Alignment.IN_FAVOR]


async def test_replies_nest_to_depth_three(site: Site, browser: Browser) -> None:
    await register(browser, "maria", verified_by=site)
    proposal_id = await new_proposal(browser, site, "Fonts", "Més fonts.")
    path = urlsplit(proposal_id).path
    parent = None
    for depth in (1, 2, 3):
        url = proposal_id if parent is None else f"{proposal_id}?reply_to={quote(parent)}"
        page = await browser.get(url)
        values = {"body": f"nivell {depth}", "alignment": "neutral"}
        if parent is not None:
            assert page.form(path + "/comment").fields["parent"] == parent
            assert "Respons a maria." in page.text
        await browser.submit(page, path + "/comment", values)
        parent = (await site.service.thread(proposal_id))[-1].comment.id
    page = await browser.get(proposal_id)
    replies = [t for t in page.find("a") if "reply_to=" in t.attrs.get("href", "")]
    assert len(replies) == 2  # depth 1 and 2 can be answered, depth 3 cannot
    assert len(page.find("ol")) == 3  # the thread and two nested levels
    # Forcing a fourth level through the form: the service's rule refuses, 409 on the page.
    assert parent is not None
    data = {**page.form(path + "/comment").fields, "body": "nivell 4", "parent": parent}
    _, body = await browser.post(path + "/comment", data, status=409)
    assert "tres nivells" in assert_accessible(body).text
    assert len(await site.service.thread(proposal_id)) == 3


async def test_external_comments_are_marked(site: Site, browser: Browser) -> None:
    await register(browser, "maria", verified_by=site)
    proposal_id = await new_proposal(browser, site, "Arbres", "Més arbres.")
    remote = Comment(
        id="http://127.0.0.1:9/notes/1",
        author="http://127.0.0.1:9/users/bob",
        in_reply_to=proposal_id,
        context=None,
        content_html='<p>Hola! <script>alert(1)</script><a href="javascript:x()">x</a></p>',
        source_markdown=None,
        published=datetime.now(UTC).replace(microsecond=0),
    )
    await site.service.remember_remote_object(remote, external=True)
    page = await browser.get(proposal_id + "?lang=en")
    assert "from elsewhere on the fediverse" in page.text and "bob@127.0.0.1:9" in page.text
    assert "alert(1)" not in page.text
    assert page.find("article", **{"class": "card comment external"})


async def test_markup_in_a_proposal_is_escaped_or_sanitised(site: Site, browser: Browser) -> None:
    await register(browser, "maria", verified_by=site)
    name = '<script>alert("t")</script> Títol'
    body = '<script>alert("b")</script>\n\n<img src=x onerror=alert(1)> [l](javascript:alert(2))'
    proposal_id = await new_proposal(browser, site, name, body)
    async with browser.http.get(proposal_id, headers={"Accept": "text/html"}) as response:
        html = await response.text()
    page = assert_accessible(html)  # no <script>, no on* attribute, no javascript: link
    assert page.headings[0][1] == name  # shown as text
    assert "&lt;script&gt;" in html
    assert not page.find("img")


async def test_csrf_refusal_on_actions_writes_nothing(site: Site, browser: Browser) -> None:
    await register(browser, "maria")
    await site.server.app[ACCOUNTS].verify("maria", "08019-01", by="test")
    proposal_id = await new_proposal(browser, site, "Fonts", "Més fonts.")
    path = urlsplit(proposal_id).path
    before = await site.rows()
    for action, data in [
        ("/support", {}),
        ("/comment", {"body": "hola", "alignment": "neutral"}),
        ("/withdraw", {}),
    ]:
        for token in (None, "bad"):
            sent = data | ({"csrf": token} if token else {})
            _, body = await browser.post(path + action, sent, status=403)
            assert "formulari ha caducat" in assert_accessible(body).text
    assert await site.rows() == before
    assert await site.service.support_count(proposal_id) == 0


async def test_anonymous_and_unknown(site: Site, browser: Browser) -> None:
    local = site.process.id.rsplit("/", 1)[-1]
    async with browser.http.get(
        f"{browser.base}/processes/{local}/proposals/new", allow_redirects=False
    ) as response:
        assert response.status == 303
        assert response.headers["Location"].startswith("/login?next=%2Fprocesses%2F")
    page = await browser.get("/login")
    token = page.form("/login").fields["csrf"]
    _, body = await browser.post(f"/processes/{local}/proposals/new", {"csrf": token}, status=403)
    assert "Has d'iniciar la sessió" in assert_accessible(body).text
    await browser.get("/processes/nope/proposals/new", status=303)
    await register(browser, "maria")
    await browser.get("/processes/nope/proposals/new", status=404)
    _, body = await browser.post("/proposals/nope/support", {"csrf": token}, status=403)
    fresh = (await browser.get("/")).forms[0].fields["csrf"]
    _, body = await browser.post("/proposals/nope/support", {"csrf": fresh}, status=404)
    assert_accessible(body)


async def test_admin_verifies_and_answers(site: Site, browser: Browser) -> None:
    await site.server.app[ACCOUNTS].create_user("joan", PASSWORD)
    await register(browser, "maria", verified_by=site)
    proposal_id = await new_proposal(browser, site, "Fonts", "Més fonts.")
    await browser.get("/admin/verify", status=403)
    await browser.get("/admin/answers", status=403)

    admin = Browser(site.config.base_url)
    try:
        await log_in(admin, "admin")
        page = await admin.get("/admin/verify")
        forms = {f.fields["username"]: f for f in page.forms if f.action == "/admin/verify"}
        assert sorted(forms) == ["admin", "joan"]  # maria is verified already
        assert forms["joan"].fields["territory"] == "08019-01"  # the instance's own by default
        data = forms["joan"].fields | {"territory": "no good!"}
        _, body = await admin.post("/admin/verify", data, status=422)
        assert "no és un codi de territori" in assert_accessible(body).text
        assert not (await site.server.app[ACCOUNTS].get("joan")).verified
        response, _ = await admin.post("/admin/verify", forms["joan"].fields)
        done = await admin.get(response.headers["Location"])
        assert "joan ja és resident verificat de 08019-01." in done.text
        assert [f.fields["username"] for f in done.forms if f.action == "/admin/verify"] == [
            "admin"
        ]
        assert (await site.server.app[ACCOUNTS].get("joan")).verified

        listing = await admin.get("/admin/answers")
        links = [t.attrs["href"] for t in listing.find("a") if "proposal=" in t.attrs["href"]]
        assert [parse_qs(urlsplit(href).query)["proposal"] for href in links] == [[proposal_id]]
        link = links[0]
        chosen = await admin.get(link)
        answer = chosen.form("/admin/answers")
        _, body = await admin.post(
            "/admin/answers", answer.fields | {"state": "rejected", "answer": ""}, status=422
        )
        assert_accessible(body)
        _, body = await admin.post(
            "/admin/answers", answer.fields | {"state": "withdrawn", "answer": "x"}, status=400
        )
        assert "Tria un estat de resposta" in assert_accessible(body).text
        await admin.post(
            "/admin/answers", answer.fields | {"state": "accepted", "answer": "Ho farem."}
        )
    finally:
        await admin.close()
    stored = await site.service.get_proposal(proposal_id)
    assert stored is not None and stored.state is ProposalState.ACCEPTED
    page = await browser.get(proposal_id)
    assert "Acceptada" in page.text and "Resposta oficial" in page.text and "Ho farem." in page.text


async def test_debate_page_close_and_comment(site: Site, browser: Browser) -> None:
    await register(browser, "maria")
    maria = await site.server.app[ACCOUNTS].get("maria")
    debate = await site.service.create_debate(
        maria, site.process.id, name="Com fem la festa?", body_markdown="Idees?"
    )
    path = urlsplit(debate.id).path
    page = await browser.get(debate.id)
    assert page.headings[0][1] == "Com fem la festa?" and "Obert" in page.text
    await browser.submit(page, path + "/comment", {"body": "Música!", "alignment": "neutral"})
    page = await browser.get(debate.id)
    assert "Música!" in page.text
    _, body = await browser.submit(page, path + "/close", {"conclusions": " "}, status=422)
    assert "Omple tots els camps obligatoris." in assert_accessible(body).text
    await browser.submit(page, path + "/close", {"conclusions": "Farem **concert**."})
    page = await browser.get(debate.id)
    assert "Conclusions" in page.text and "Farem concert." in page.text
    assert not [f for f in page.forms if f.action.endswith("/close")]
    assert not [f for f in page.forms if f.action.endswith("/comment")]
    closed = await site.service.get_debate(debate.id)
    assert closed is not None and closed.closed_at is not None


async def test_comment_ids_lead_to_their_thread(site: Site, browser: Browser) -> None:
    await register(browser, "maria", verified_by=site)
    proposal_id = await new_proposal(browser, site, "Fonts", "Més fonts.")
    maria = await site.server.app[ACCOUNTS].get("maria")
    comment = await site.service.comment(maria, proposal_id, body_markdown="Sí")
    async with browser.http.get(
        comment.id, headers={"Accept": "text/html"}, allow_redirects=False
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == f"{proposal_id}#c-{comment.id.rsplit('/', 1)[-1]}"


async def test_supports_closed_phase(site: Site, browser: Browser) -> None:
    process = await site.service.create_process(open_draft(supports=False), by=site.admin)
    await register(browser, "maria")
    await site.server.app[ACCOUNTS].verify("maria", "08019-01", by="test")
    maria = await site.server.app[ACCOUNTS].get("maria")
    proposal = await site.service.create_proposal(
        maria, process.id, name="Fonts", body_markdown="Més fonts."
    )
    page = await browser.get(proposal.id)
    assert "Els suports no són oberts en la fase actual." in page.text
    token = page.forms[0].fields["csrf"]
    _, body = await browser.post(
        urlsplit(proposal.id).path + "/support", {"csrf": token}, status=409
    )
    assert "no admet suports" in assert_accessible(body).text
