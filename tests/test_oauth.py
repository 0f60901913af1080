"""OAuth 2.0 for C2S clients on a real instance over loopback (issue 5, FEP-d8c2).

The client is a loopback aiohttp app serving its Client ID Metadata Document and a redirect
endpoint; the resident is a real browser session (cookies, CSRF) on the instance's consent page.
Covered: RFC 8414 discovery from the actor, CIMD fetch and cache, PKCE S256, consent, token,
refresh with rotation, revocation (RFC 7009), and the refusals the issue lists.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from federation.config import InstanceConfig
from federation.instance.accounts import TOUCH_INTERVAL, token_hash
from federation.instance.app import ACCOUNTS, DB
from federation.instance.oauth import OAUTH
from federation.instance.ports import TokenScope
from tests.html_browser import Browser, log_in, make_config, running
from tests.instance_fixtures import count_rows

PASSWORD = "correct horse battery"
AS2 = "application/activity+json"


def pkce() -> tuple[str, str]:
    """A fresh (verifier, S256 challenge) pair (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class ClientApp:
    """A third-party client on loopback: its metadata document and its redirect endpoint."""

    server: TestServer
    document: dict[str, Any]
    hits: int = 0
    callbacks: list[dict[str, str]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def client_id(self) -> str:
        return self.base + "/client.json"

    @property
    def redirect_uri(self) -> str:
        return self.base + "/callback"


async def start_client_app(port: int, **changes: Any) -> ClientApp:
    """Serve a CIMD at /client.json (``changes`` alter it) and record /callback queries."""
    app = web.Application()
    server = TestServer(app, host="127.0.0.1", port=port)
    base = f"http://127.0.0.1:{port}"
    document = {
        "client_id": base + "/client.json",
        "client_name": "Mapa del barri",
        "client_uri": base + "/",
        "redirect_uris": [base + "/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "read write",
    } | changes
    client = ClientApp(server, document)

    async def metadata(request: web.Request) -> web.Response:
        client.hits += 1
        return web.json_response(client.document)

    async def callback(request: web.Request) -> web.Response:
        client.callbacks.append(dict(request.query))
        return web.Response(text="done")

    app.router.add_get("/client.json", metadata)
    app.router.add_get("/callback", callback)
    await server.start_server()
    return client


@dataclass
class World:
    server: TestServer
    config: InstanceConfig
    client: ClientApp
    browser: Browser
    http: aiohttp.ClientSession
    ports: Callable[[], int]

    @property
    def base(self) -> str:
        return self.config.base_url

    @property
    def app(self) -> web.Application:
        return self.server.app

    def actor(self, name: str) -> str:
        return f"{self.base}/users/{name}"


@pytest.fixture
async def world(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[World]:
    config = make_config(tmp_path, unused_tcp_port_factory())
    async with running(config) as server:
        for name in ("ana", "pau"):
            await server.app[ACCOUNTS].create_user(name, PASSWORD)
        client = await start_client_app(unused_tcp_port_factory())
        browser = Browser(config.base_url)
        await log_in(browser, "ana")
        http = aiohttp.ClientSession()
        try:
            yield World(server, config, client, browser, http, unused_tcp_port_factory)
        finally:
            await http.close()
            await browser.close()
            await client.server.close()


def authorize_query(world: World, challenge: str, **overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": world.client.client_id,
        "redirect_uri": world.client.redirect_uri,
        "scope": "read write",
        "state": "st-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


async def consent(
    world: World, challenge: str, *, decision: str = "allow", **overrides: str
) -> dict[str, list[str]]:
    """The resident sees the consent page and answers; the redirect's query parameters."""
    page = await world.browser.get(authorize_query(world, challenge, **overrides))
    response, _ = await world.browser.submit(page, "/oauth/authorize", {"decision": decision})
    location = response.headers["Location"]
    redirect = overrides.get("redirect_uri", world.client.redirect_uri)
    assert location.startswith(redirect + "?")
    return parse_qs(urlsplit(location).query)


async def token_request(world: World, **params: str) -> tuple[int, dict[str, Any]]:
    async with world.http.post(world.base + "/oauth/token", data=params) as response:
        assert response.headers["Cache-Control"] == "no-store"
        return response.status, await response.json()


async def code_for(world: World, challenge: str, **overrides: str) -> str:
    query = await consent(world, challenge, **overrides)
    return query["code"][0]


async def tokens(world: World, scope: str = "read write") -> dict[str, Any]:
    """The whole flow: consent, code, token exchange with the verifier."""
    verifier, challenge = pkce()
    code = await code_for(world, challenge, scope=scope)
    status, body = await token_request(
        world,
        grant_type="authorization_code",
        code=code,
        client_id=world.client.client_id,
        redirect_uri=world.client.redirect_uri,
        code_verifier=verifier,
    )
    assert status == 200, body
    return body


async def api(
    world: World, method: str, path: str, token: str | None, json_body: Any = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Accept": AS2}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        headers["Content-Type"] = AS2
    url = path if path.startswith("http") else world.base + path
    async with world.http.request(method, url, json=json_body, headers=headers) as response:
        text = await response.text()
        body = await response.json(content_type=None) if text else {}
        return response.status, body, dict(response.headers)


# --- the whole flow ----------------------------------------------------------------------------


async def test_discovery_consent_token_refresh_and_revocation(world: World) -> None:
    # Discovery as the task force's client does it: actor → origin → RFC 8414 metadata.
    status, actor, _ = await api(world, "GET", world.actor("ana"), None)
    assert status == 200
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(actor["id"]))
    async with world.http.get(origin + "/.well-known/oauth-authorization-server") as response:
        metadata = await response.json()
    assert metadata["issuer"] == world.base
    assert actor["endpoints"]["oauthAuthorizationEndpoint"] == metadata["authorization_endpoint"]
    assert actor["endpoints"]["oauthTokenEndpoint"] == metadata["token_endpoint"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["token_endpoint_auth_methods_supported"] == ["none"]
    assert metadata["client_id_metadata_document_supported"] is True

    verifier, challenge = pkce()
    page = await world.browser.get(authorize_query(world, challenge))
    assert "Mapa del barri" in page.text and "ana" in page.text
    assert world.client.hits == 1  # the client document was fetched once...
    query = await consent(world, challenge)
    assert world.client.hits == 1  # ...and cached
    assert query["state"] == ["st-1"] and query["iss"] == [world.base]
    # The browser follows the redirect to the client's loopback endpoint.
    location = world.client.redirect_uri + "?" + urlencode({k: v[0] for k, v in query.items()})
    async with world.browser.http.get(location) as response:
        assert response.status == 200
    assert world.client.callbacks[-1]["code"] == query["code"][0]

    status, issued = await token_request(
        world,
        grant_type="authorization_code",
        code=query["code"][0],
        client_id=world.client.client_id,
        redirect_uri=world.client.redirect_uri,
        code_verifier=verifier,
    )
    assert status == 200, issued
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 3600
    assert issued["scope"] == "read write" and issued["actor"] == world.actor("ana")
    # Stored hashed: neither token appears in the database.
    rows = await world.app[DB].execute_fetchall("SELECT token_hash FROM oauth_tokens")
    stored = {row[0] for row in rows}
    assert issued["access_token"] not in stored and issued["refresh_token"] not in stored
    assert hashlib.sha256(issued["access_token"].encode()).hexdigest() in stored

    status, outbox, _ = await api(
        world, "GET", world.actor("ana") + "/outbox", issued["access_token"]
    )
    assert status == 200 and outbox["type"] == "OrderedCollection"

    # Refresh rotates: a new pair, and the old refresh token is spent.
    status, refreshed = await token_request(
        world,
        grant_type="refresh_token",
        refresh_token=issued["refresh_token"],
        client_id=world.client.client_id,
    )
    assert status == 200 and refreshed["refresh_token"] != issued["refresh_token"]
    status, _, _ = await api(
        world, "GET", world.actor("ana") + "/outbox", refreshed["access_token"]
    )
    assert status == 200

    # A narrower scope on refresh is allowed; a wider one is not.
    status, narrowed = await token_request(
        world,
        grant_type="refresh_token",
        refresh_token=refreshed["refresh_token"],
        client_id=world.client.client_id,
        scope="read",
    )
    assert status == 200 and narrowed["scope"] == "read"
    status, wider = await token_request(
        world,
        grant_type="refresh_token",
        refresh_token=narrowed["refresh_token"],
        client_id=world.client.client_id,
        scope="read write",
    )
    assert (status, wider["error"]) == (400, "invalid_scope")

    # Revoking the refresh token ends the grant: its access tokens stop working too.
    async with world.http.post(
        world.base + "/oauth/revoke",
        data={"token": narrowed["refresh_token"], "client_id": world.client.client_id},
    ) as response:
        assert response.status == 200
    status, problem, headers = await api(
        world, "GET", world.actor("ana") + "/outbox", narrowed["access_token"]
    )
    assert (status, problem["reason"]) == (401, "token_revoked")
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]


async def test_revoking_an_access_token_and_unknown_tokens(world: World) -> None:
    issued = await tokens(world)
    async with world.http.post(
        world.base + "/oauth/revoke",
        data={"token": issued["access_token"], "client_id": world.client.client_id},
    ) as response:
        assert response.status == 200
    status, problem, _ = await api(
        world, "GET", world.actor("ana") + "/inbox", issued["access_token"]
    )
    assert (status, problem["reason"]) == (401, "token_revoked")
    # The refresh token of the grant still works (RFC 7009 §2.1 leaves it to the server).
    status, _ = await token_request(
        world,
        grant_type="refresh_token",
        refresh_token=issued["refresh_token"],
        client_id=world.client.client_id,
    )
    assert status == 200
    # An unknown token is answered 200 too (RFC 7009 §2.2); another client may not revoke.
    async with world.http.post(world.base + "/oauth/revoke", data={"token": "nope"}) as response:
        assert response.status == 200
    other = await tokens(world)
    async with world.http.post(
        world.base + "/oauth/revoke",
        data={"token": other["access_token"], "client_id": world.base + "/other.json"},
    ) as response:
        assert response.status == 400
    status, _, _ = await api(world, "GET", world.actor("ana") + "/inbox", other["access_token"])
    assert status == 200


# --- refusals ------------------------------------------------------------------------------------


async def test_a_wrong_verifier_is_refused_and_burns_the_code(world: World) -> None:
    verifier, challenge = pkce()
    code = await code_for(world, challenge)
    wrong, _ = pkce()
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": world.client.client_id,
        "redirect_uri": world.client.redirect_uri,
    }
    status, body = await token_request(world, **exchange, code_verifier=wrong)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "code_challenge" in body["error_description"]
    status, body = await token_request(world, **exchange, code_verifier=verifier)
    assert (status, body["error"]) == (400, "invalid_grant")  # one try per code


async def test_a_reused_code_is_refused_and_revokes_what_it_gave(world: World) -> None:
    verifier, challenge = pkce()
    code = await code_for(world, challenge)
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": world.client.client_id,
        "redirect_uri": world.client.redirect_uri,
        "code_verifier": verifier,
    }
    status, issued = await token_request(world, **exchange)
    assert status == 200
    status, body = await token_request(world, **exchange)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "already used" in body["error_description"]
    status, problem, _ = await api(
        world, "GET", world.actor("ana") + "/outbox", issued["access_token"]
    )
    assert (status, problem["reason"]) == (401, "token_revoked")
    status, body = await token_request(
        world,
        grant_type="refresh_token",
        refresh_token=issued["refresh_token"],
        client_id=world.client.client_id,
    )
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_a_replayed_refresh_token_ends_the_grant(world: World) -> None:
    issued = await tokens(world)
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": issued["refresh_token"],
        "client_id": world.client.client_id,
    }
    status, rotated = await token_request(world, **refresh)
    assert status == 200
    status, body = await token_request(world, **refresh)  # the old one again: stolen?
    assert (status, body["error"]) == (400, "invalid_grant")
    status, problem, _ = await api(
        world, "GET", world.actor("ana") + "/outbox", rotated["access_token"]
    )
    assert (status, problem["reason"]) == (401, "token_revoked")


async def test_redirect_uri_must_match_exactly(world: World) -> None:
    _, challenge = pkce()
    for redirect in (
        world.client.redirect_uri + "/",
        world.client.redirect_uri + "?x=1",
        world.client.redirect_uri.replace("127.0.0.1", "localhost"),
        "https://evil.example/callback",
    ):
        async with world.browser.http.get(
            world.base + authorize_query(world, challenge, redirect_uri=redirect),
            allow_redirects=False,
        ) as response:
            # Shown to the resident, never redirected to (RFC 6749 §4.1.2.1).
            assert response.status == 400 and "Location" not in response.headers
            assert "redirect_uri" in await response.text()
    # The token request must repeat the authorization request's redirect_uri.
    verifier, challenge = pkce()
    code = await code_for(world, challenge)
    status, body = await token_request(
        world,
        grant_type="authorization_code",
        code=code,
        client_id=world.client.client_id,
        redirect_uri=world.client.redirect_uri + "/",
        code_verifier=verifier,
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "redirect_uri" in body["error_description"]


async def test_pkce_is_required_and_s256_only(world: World) -> None:
    _, challenge = pkce()
    for overrides, words in (
        ({"code_challenge_method": "plain"}, "S256"),
        ({"code_challenge_method": None}, "S256"),
        ({"code_challenge": None}, "PKCE"),
        ({"code_challenge": "short"}, "43"),
        ({"response_type": "token"}, "code"),
        ({"scope": "read admin"}, "scopes"),
    ):
        async with world.browser.http.get(
            world.base + authorize_query(world, challenge, **overrides), allow_redirects=False
        ) as response:
            assert response.status == 303, overrides
            location = response.headers["Location"]
        query = parse_qs(urlsplit(location).query)
        assert location.startswith(world.client.redirect_uri + "?")
        assert query["error"][0] in (
            "invalid_request",
            "unsupported_response_type",
            "invalid_scope",
        )
        assert words in query["error_description"][0] and query["state"] == ["st-1"]
    assert (await count_rows(world.app[DB]))["oauth_codes"] == 0


async def test_expired_tokens_and_codes(world: World) -> None:
    service = world.app[OAUTH]
    start = service.clock()
    issued = await tokens(world)
    verifier, challenge = pkce()
    code = await code_for(world, challenge)
    service.clock = lambda: start + 3601
    status, problem, headers = await api(
        world, "GET", world.actor("ana") + "/outbox", issued["access_token"]
    )
    assert (status, problem["reason"]) == (401, "token_expired")
    assert (
        problem["type"].endswith("#token_expired")
        and "invalid_token" in headers["WWW-Authenticate"]
    )
    status, body = await token_request(
        world,
        grant_type="authorization_code",
        code=code,
        client_id=world.client.client_id,
        redirect_uri=world.client.redirect_uri,
        code_verifier=verifier,
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "expired" in body["error_description"]
    # The refresh token outlives the access token.
    status, refreshed = await token_request(
        world,
        grant_type="refresh_token",
        refresh_token=issued["refresh_token"],
        client_id=world.client.client_id,
    )
    assert status == 200
    status, _, _ = await api(
        world, "GET", world.actor("ana") + "/outbox", refreshed["access_token"]
    )
    assert status == 200


async def test_an_access_tokens_last_use_is_written_at_most_once_a_minute(world: World) -> None:
    service = world.app[OAUTH]
    start = service.clock()
    issued = await tokens(world)
    hashed = token_hash(issued["access_token"])

    async def last_used() -> float | None:
        record = await service.store.find_token(hashed)
        assert record is not None
        return record.last_used_at

    for offset in (0.0, TOUCH_INTERVAL - 1, TOUCH_INTERVAL):
        service.clock = lambda offset=offset: start + offset  # type: ignore[misc]
        status, _, _ = await api(
            world, "GET", world.actor("ana") + "/outbox", issued["access_token"]
        )
        assert status == 200
        assert await last_used() == (start if offset < TOUCH_INTERVAL else start + offset)


async def test_a_read_token_cannot_write_nor_another_residents_token(world: World) -> None:
    read_only = await tokens(world, scope="read")
    assert read_only["scope"] == "read"
    writer = await tokens(world)
    note = {"type": "Note", "inReplyTo": world.base + "/proposals/x", "content": "hola"}
    before = await count_rows(world.app[DB])
    status, problem, headers = await api(
        world, "POST", world.actor("ana") + "/outbox", read_only["access_token"], note
    )
    assert (status, problem["reason"]) == (403, "insufficient_scope")
    assert problem["type"].endswith("#insufficient_scope")
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    status, problem, _ = await api(
        world, "POST", world.actor("pau") + "/outbox", writer["access_token"], note
    )
    assert (status, problem["reason"]) == (403, "not_your_outbox")
    status, problem, _ = await api(
        world, "GET", world.actor("pau") + "/inbox", writer["access_token"]
    )
    assert (status, problem["reason"]) == (403, "not_your_inbox")
    status, problem, headers = await api(world, "POST", world.actor("ana") + "/outbox", None, note)
    assert (status, problem["reason"]) == (401, "token_missing")
    assert headers["WWW-Authenticate"].startswith('Bearer realm="barri"')
    status, problem, _ = await api(world, "POST", world.actor("ana") + "/outbox", "garbage", note)
    assert (status, problem["reason"]) == (401, "token_invalid")
    assert await count_rows(world.app[DB]) == before


async def test_personal_access_tokens_work_the_same_way(world: World) -> None:
    accounts = world.app[ACCOUNTS]
    write = await accounts.create_token("ana", TokenScope.WRITE)
    read = await accounts.create_token("ana", TokenScope.READ)
    status, _, _ = await api(world, "GET", world.actor("ana") + "/inbox", write)
    assert status == 200
    status, problem, _ = await api(
        world, "POST", world.actor("ana") + "/outbox", read, {"type": "Note"}
    )
    assert (status, problem["reason"]) == (403, "insufficient_scope")
    async with world.http.post(world.base + "/oauth/revoke", data={"token": write}) as response:
        assert response.status == 200
    status, problem, _ = await api(world, "GET", world.actor("ana") + "/inbox", write)
    assert (status, problem["reason"]) == (401, "token_invalid")


async def test_denied_consent_and_login_and_csrf(world: World) -> None:
    _, challenge = pkce()
    query = await consent(world, challenge, decision="deny")
    assert query["error"] == ["access_denied"] and "code" not in query
    # A visitor who is not logged in is sent to log in, and back here afterwards.
    visitor = Browser(world.base)
    try:
        path = authorize_query(world, challenge)
        async with visitor.http.get(world.base + path, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"].startswith("/login?next=%2Foauth%2Fauthorize")
    finally:
        await visitor.close()
    # The consent form is CSRF-protected: without the session's token, no code.
    page = await world.browser.get(authorize_query(world, challenge))
    fields = dict(page.form("/oauth/authorize").fields) | {"decision": "allow", "csrf": "forged"}
    response, _ = await world.browser.post("/oauth/authorize", fields, status=403)
    assert "Location" not in response.headers
    assert (await count_rows(world.app[DB]))["oauth_codes"] == 0
    # The consent page may send the browser on to the client (CSP form-action names it).
    async with world.browser.http.get(world.base + authorize_query(world, challenge)) as resp:
        assert f"form-action 'self' {world.client.base}" in resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"client_id": "http://127.0.0.1:1/other.json"}, "client_id"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "public clients"),
        ({"redirect_uris": []}, "no redirect URI"),
        ({"redirect_uris": "not a list or uri"}, "absolute"),
    ],
)
async def test_a_bad_client_document_is_shown_never_redirected_to(
    world: World, changes: dict[str, Any], words: str
) -> None:
    world.client.document |= changes
    _, challenge = pkce()
    async with world.browser.http.get(
        world.base + authorize_query(world, challenge), allow_redirects=False
    ) as response:
        assert response.status == 400 and "Location" not in response.headers
        assert words in await response.text()


async def test_an_unreachable_client_and_a_bad_client_id(world: World) -> None:
    _, challenge = pkce()
    dead = f"http://127.0.0.1:{world.ports()}/client.json"
    for client_id, words in (
        (dead, "cannot be fetched"),
        (world.base, "path"),
        ("ftp://127.0.0.1/x", "https URL"),
    ):
        async with world.browser.http.get(
            world.base + authorize_query(world, challenge, client_id=client_id),
            allow_redirects=False,
        ) as response:
            assert response.status == 400 and words in await response.text(), client_id


async def test_the_barri_cli_client_and_an_as2_application_client(world: World) -> None:
    async with world.http.get(world.base + "/oauth/clients/barri-cli") as response:
        cli = await response.json()
    assert cli["client_id"] == world.base + "/oauth/clients/barri-cli"
    _, challenge = pkce()
    page = await world.browser.get(
        authorize_query(
            world, challenge, client_id=cli["client_id"], redirect_uri=cli["redirect_uris"][0]
        )
    )
    assert "barri client" in page.text
    # FEP-d8c2's form: an AS2 Application whose redirectURI lists the redirects.
    world.client.document = {
        "@context": [
            "https://www.w3.org/ns/activitystreams",
            "https://purl.archive.org/socialweb/oauth",
        ],
        "id": world.client.client_id,
        "type": "Application",
        "name": "Quiosc del casal",
        "redirectURI": world.client.redirect_uri,
    }
    verifier, challenge = pkce()
    page = await world.browser.get(authorize_query(world, challenge))
    assert "Quiosc del casal" in page.text
    code = await code_for(world, challenge)
    status, issued = await token_request(
        world,
        grant_type="authorization_code",
        code=code,
        client_id=world.client.client_id,
        redirect_uri=world.client.redirect_uri,
        code_verifier=verifier,
    )
    assert status == 200 and issued["scope"] == "read write"


async def test_the_consent_page_speaks_the_residents_language(world: World) -> None:
    _, challenge = pkce()
    page = await world.browser.get(authorize_query(world, challenge) + "&lang=ca")
    assert "Autoritza una aplicació" in page.text and "actuar en nom teu" in page.text
    page = await world.browser.get(authorize_query(world, challenge) + "&lang=es")
    assert "Autoriza una aplicación" in page.text


def test_the_consent_messages_exist_in_every_language_with_the_same_placeholders() -> None:
    import string

    from federation.instance.oauth.messages import OAUTH_MESSAGES, consent_catalogue

    def names(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    template = Path(__file__).resolve().parent.parent / (
        "federation/instance/web/templates/oauth_consent.html"
    )
    used = set(re.findall(r"""t\("(oauth\.[a-z_.]*[a-z_])\"""", template.read_text("utf-8")))
    used |= {f"oauth.scope.{scope}" for scope in ("read", "write")}
    english = OAUTH_MESSAGES["en"]
    assert used <= set(english) and len(used) > 8
    for lang in ("ca", "es", "en"):
        assert set(OAUTH_MESSAGES[lang]) == set(english), lang
        for key, text in english.items():
            assert names(OAUTH_MESSAGES[lang][key]) == names(text), (lang, key)
        assert consent_catalogue()[lang]["nav.login"]  # the pages' own messages are kept
