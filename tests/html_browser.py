"""A browser for the page tests: real HTTP with a cookie jar, pages read with html.parser.

``assert_accessible`` is the tiny accessibility check every page must pass: a lang attribute,
one h1, headings in order, a label for every input, a skip link, no script of any kind.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from yarl import URL

from federation.config import InstanceConfig, load_config
from federation.config_writer import InitOptions, write_instance_config
from federation.instance.app import ACCOUNTS, create_app

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
    """The instance app (create_app wires the read side and the pages) on its loopback port."""
    server = TestServer(create_app(config), host="127.0.0.1", port=config.listen_port)
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
