"""Signed cookie sessions: round trip, expiry, every kind of tampering refused, cookie flags."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from federation.config import InstanceConfig
from federation.instance.app import ACCOUNTS
from federation.instance.web.sessions import (
    SESSION_COOKIE,
    SESSION_TTL,
    Session,
    SessionCodec,
    clear_session_cookie,
    set_session_cookie,
)
from tests.html_browser import PASSWORD, Browser, log_in, make_config, running

SECRET = "k" * 43


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_round_trip_and_fresh_csrf_tokens() -> None:
    clock = Clock()
    codec = SessionCodec(SECRET, clock=clock)
    session = codec.new("maria")
    assert session.exp == int(clock.now) + SESSION_TTL == int(clock.now) + 14 * 24 * 3600
    assert codec.decode(codec.encode(session)) == session
    anonymous = codec.new(None)
    assert anonymous.anonymous and codec.decode(codec.encode(anonymous)) == anonymous
    assert len({codec.new("maria").csrf for _ in range(20)}) == 20
    assert len(session.csrf) >= 40  # 32 random bytes


def test_expired_sessions_are_refused() -> None:
    clock = Clock()
    codec = SessionCodec(SECRET, clock=clock)
    cookie = codec.encode(codec.new("maria"))
    clock.now += SESSION_TTL - 1
    assert codec.decode(cookie) is not None
    clock.now += 1
    assert codec.decode(cookie) is None
    assert codec.decode(codec.encode(codec.new("maria"))) is not None  # a new login is fine


def test_a_session_from_another_secret_is_refused() -> None:
    cookie = SessionCodec("x" * 43).encode(SessionCodec("x" * 43).new("maria"))
    assert SessionCodec(SECRET).decode(cookie) is None


def test_flipping_any_character_is_refused() -> None:
    codec = SessionCodec(SECRET)
    cookie = codec.encode(codec.new("maria"))
    for index in range(len(cookie)):
        if cookie[index] == ".":
            continue
        flipped = "A" if cookie[index] != "A" else "B"
        forged = cookie[:index] + flipped + cookie[index + 1 :]
        decoded = codec.decode(forged)
        # base64 without padding can ignore the low bits of the last character.
        assert decoded is None or decoded == codec.decode(cookie), index


def test_changing_the_user_keeps_no_valid_mac() -> None:
    codec = SessionCodec(SECRET)
    body, mac = codec.encode(codec.new("maria")).split(".")
    payload = json.loads(unb64(body))
    payload["user"] = "admin"
    forged = b64(json.dumps(payload).encode()) + "." + mac
    assert codec.decode(forged) is None


@pytest.mark.parametrize(
    "value",
    [None, "", ".", "abc", "a.b.c", "!!!.???", "x" * 5000, "e30.", "e30.AAAA", "\u00e9.\u00e9"],
)
def test_malformed_cookies_are_refused(value: str | None) -> None:
    assert SessionCodec(SECRET).decode(value) is None


def test_a_validly_signed_payload_of_the_wrong_shape_is_refused() -> None:
    codec = SessionCodec(SECRET, clock=Clock())
    payloads: list[object] = [[], {"user": 3, "exp": 2e9, "csrf": "x"}, {"user": "a", "exp": True},
                {"user": "a", "exp": 2_000_000_000, "csrf": ""}, "text"]  # fmt: skip
    for payload in payloads:
        body = b64(json.dumps(payload).encode())
        assert codec.decode(body + "." + b64(codec._mac(body))) is None


def test_cookie_flags_and_secure_on_https() -> None:
    codec = SessionCodec(SECRET)
    response = web.Response()
    set_session_cookie(response, codec, codec.new("maria"), secure=True)
    morsel = response.cookies[SESSION_COOKIE]
    assert morsel["httponly"] and morsel["secure"] and morsel["samesite"] == "Lax"
    assert morsel["path"] == "/" and int(morsel["max-age"]) == SESSION_TTL
    cleared = web.Response()
    clear_session_cookie(cleared, secure=True)
    gone = cleared.cookies[SESSION_COOKIE]
    assert gone.value == "" and int(gone["max-age"]) == 0


def test_session_is_frozen() -> None:
    session = Session("maria", 1, "t")
    with pytest.raises(AttributeError):
        session.user = "admin"  # type: ignore[misc]


# -- against the running instance --------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> InstanceConfig:
    return make_config(tmp_path, unused_tcp_port_factory())


@pytest.fixture
async def server(config: InstanceConfig) -> AsyncIterator[TestServer]:
    async with running(config) as started:
        await started.app[ACCOUNTS].create_user("maria", PASSWORD)
        await started.app[ACCOUNTS].create_user("boss", PASSWORD)
        yield started


async def test_a_tampered_cookie_is_an_anonymous_visit(
    server: TestServer, config: InstanceConfig
) -> None:
    browser = Browser(config.base_url)
    try:
        await log_in(browser, "maria")
        assert "maria" in (await browser.get("/login")).text
        cookie = browser.cookie(SESSION_COOKIE)
        assert cookie is not None
        body, mac = cookie.split(".")
        payload = json.loads(unb64(body))
        browser.set_cookie(SESSION_COOKIE, b64(json.dumps(payload | {"user": "boss"}).encode())
                           + "." + mac)  # fmt: skip
        page = await browser.get("/login")
        assert "boss" not in page.text and "maria" not in page.text
        # The server answered with a fresh anonymous session in place of the forged one.
        fresh = browser.cookie(SESSION_COOKIE)
        assert fresh and fresh != cookie
        assert json.loads(unb64(fresh.split(".")[0]))["user"] is None
    finally:
        await browser.close()


async def test_a_session_signed_with_another_secret_is_ignored(
    server: TestServer, config: InstanceConfig
) -> None:
    browser = Browser(config.base_url)
    try:
        other = SessionCodec("z" * 43)
        browser.set_cookie(SESSION_COOKIE, other.encode(other.new("maria")))
        assert "maria" not in (await browser.get("/login")).text
        mine = SessionCodec(config.secret)
        browser.set_cookie(SESSION_COOKIE, mine.encode(mine.new("maria")))
        assert "maria" in (await browser.get("/login")).text
    finally:
        await browser.close()


async def test_a_session_of_a_vanished_account_is_anonymous(
    server: TestServer, config: InstanceConfig
) -> None:
    browser = Browser(config.base_url)
    try:
        codec = SessionCodec(config.secret)
        browser.set_cookie(SESSION_COOKIE, codec.encode(codec.new("ghost")))
        page = await browser.get("/login")
        assert "ghost" not in page.text and page.find("a", href="/register")
    finally:
        await browser.close()
