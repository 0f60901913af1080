"""Fetcher against a real loopback aiohttp server: media types, ids, redirects, caps, signing."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from activitypub.fetch import (
    AS2_ACCEPT,
    Fetcher,
    FetchError,
    FetchFailure,
    RequestSigner,
    is_as2_media_type,
    parse_media_type,
    wire_url,
)
from activitypub.ssrf import make_client_session
from tests.netguard import (
    FakeResolver,
    NetGuard,
    no_outside_connections_fixture,  # noqa: F401 (registers the fixture)
)

ServerFactory = Callable[..., Awaitable[TestServer]]
SEEN = web.AppKey("seen", list[tuple[str, dict[str, str]]])
RELEASE = web.AppKey("release", asyncio.Event)
AS2 = "application/activity+json"
LD_AS2 = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


@pytest.fixture(autouse=True)
def guard(no_outside_connections: NetGuard) -> NetGuard:
    """Every test here runs with the loopback tripwire."""
    return no_outside_connections


def self_url(request: web.Request) -> str:
    return f"http://{request.host}{request.raw_path}"  # as sent, query included


def doc_response(request: web.Request, content_type: str = AS2, **extra: Any) -> web.Response:
    """An object whose id is the URL it is served from, with the given Content-Type."""
    body = json.dumps({"id": self_url(request), "type": "Note", **extra}).encode()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def typed(request: web.Request) -> web.Response:
    return doc_response(request, request.query["ct"])


async def mismatch(request: web.Request) -> web.Response:
    body = {"id": f"http://{request.host}/someone-else", "type": "Person"}
    return web.json_response(body, content_type=AS2)


async def no_id(request: web.Request) -> web.Response:
    return web.json_response({"type": "Note"}, content_type=AS2)


async def chain(request: web.Request) -> web.Response:
    """/chain/N redirects to /chain/N-1; /chain/0 is the document."""
    remaining = int(request.match_info["n"])
    if remaining == 0:
        return doc_response(request)
    raise web.HTTPFound(f"/chain/{remaining - 1}")


async def loop_redirect(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/loop")


async def redirect_to(request: web.Request) -> web.Response:
    raise web.HTTPTemporaryRedirect(request.query["to"])


async def claims_origin(request: web.Request) -> web.Response:
    """A redirect target whose document claims the id of the URL first requested."""
    body = {"id": f"http://{request.host}/claimed", "type": "Note"}
    return web.json_response(body, content_type=AS2)


async def claimed(request: web.Request) -> web.Response:
    raise web.HTTPFound("/claims-origin")


async def echo_headers(request: web.Request) -> web.Response:
    """Record the request headers; /echo/N redirects to /echo/N-1 first."""
    request.app[SEEN].append((request.path, dict(request.headers)))
    remaining = int(request.match_info["n"])
    if remaining:
        raise web.HTTPFound(f"/echo/{remaining - 1}")
    return doc_response(request)


async def picky(request: web.Request) -> web.Response:
    """Record the request; 401 unless it is signed ``rsa`` (a server refusing Ed25519)."""
    request.app[SEEN].append((request.path, dict(request.headers)))
    if request.headers.get("Signature") != "rsa":
        return web.Response(status=401, text="signature refused")
    return doc_response(request)


async def counted_status(request: web.Request) -> web.Response:
    request.app[SEEN].append((request.path, dict(request.headers)))
    return web.Response(status=int(request.match_info["code"]), text="no")


async def chunked_big(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": AS2})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        await resp.write(b'{"id": "x", "pad": "')
        for _ in range(16):
            await resp.write(b"a" * 512)
        await resp.write(b'"}')
    except ConnectionResetError:
        pass  # the client hung up once it had read enough: that is the point
    return resp


async def declared_big(request: web.Request) -> web.Response:
    return doc_response(request, pad="a" * 8192)


async def gzip_bomb(request: web.Request) -> web.Response:
    raw = json.dumps({"id": self_url(request), "pad": "a" * 200_000}).encode()
    return web.Response(
        body=gzip.compress(raw), headers={"Content-Type": AS2, "Content-Encoding": "gzip"}
    )


async def slow(request: web.Request) -> web.Response:
    await request.app[RELEASE].wait()
    return doc_response(request)


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="no")


async def raw_body(request: web.Request) -> web.Response:
    bodies = {
        "array": b'[{"id": "x"}]',
        "garbage": b"<html>not json</html>",
        "nan": b'{"id": "x", "n": NaN}',
        "duplicate": b'{"id": "a", "id": "b"}',
        "deep": b"[" * 100_000 + b"]" * 100_000,
    }
    return web.Response(body=bodies[request.match_info["kind"]], headers={"Content-Type": AS2})


async def plain_json(request: web.Request) -> web.Response:
    return web.json_response({"subject": "acct:a@b", "accept": request.headers["Accept"]})


def remote_app() -> web.Application:
    app = web.Application()
    app[SEEN] = []
    app[RELEASE] = asyncio.Event()
    app.router.add_get("/typed", typed)
    app.router.add_get("/mismatch", mismatch)
    app.router.add_get("/no-id", no_id)
    app.router.add_get("/chain/{n}", chain)
    app.router.add_get("/loop", loop_redirect)
    app.router.add_get("/redirect", redirect_to)
    app.router.add_get("/claimed", claimed)
    app.router.add_get("/claims-origin", claims_origin)
    app.router.add_get("/echo/{n}", echo_headers)
    app.router.add_get("/chunked-big", chunked_big)
    app.router.add_get("/declared-big", declared_big)
    app.router.add_get("/gzip-bomb", gzip_bomb)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/picky", picky)
    app.router.add_get("/counted/{code}", counted_status)
    app.router.add_get("/raw/{kind}", raw_body)
    app.router.add_get("/plain-json", plain_json)
    return app


@pytest.fixture
async def remote(aiohttp_server: ServerFactory) -> AsyncIterator[TestServer]:
    server = await aiohttp_server(remote_app())
    yield server
    server.app[RELEASE].set()  # let a parked slow handler finish before shutdown


@pytest.fixture
def base(remote: TestServer) -> str:
    return f"http://127.0.0.1:{remote.port}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    resolver = FakeResolver({"evil.test": ["10.0.0.1"], "loop.test": ["127.0.0.1"]})
    client = make_client_session(allow_loopback=True, resolver=resolver)
    yield client
    await client.close()


@pytest.fixture
def fetcher(session: aiohttp.ClientSession) -> Fetcher:
    return Fetcher(session, max_bytes=4096, allow_http=True)


async def refused(call: Awaitable[Any], reason: FetchFailure) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await call
    assert caught.value.reason is reason, caught.value
    return caught.value


# -- media types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        AS2,
        "application/activity+json; charset=utf-8",
        LD_AS2,
        "application/ld+json;profile=https://www.w3.org/ns/activitystreams",
        'Application/LD+JSON; profile="https://example.org/x https://www.w3.org/ns/activitystreams"',
    ],
)
async def test_as2_media_types_accepted(fetcher: Fetcher, base: str, content_type: str) -> None:
    fetched = await fetcher.get_activity(f"{base}/typed?ct={quote(content_type)}")
    assert fetched.document["type"] == "Note"
    assert fetched.content_type == content_type


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "application/json",
        "application/ld+json",
        'application/ld+json; profile="https://www.w3.org/ns/activitystreams/evil"',
        "text/plain; profile=https://www.w3.org/ns/activitystreams",
    ],
)
async def test_other_media_types_refused(fetcher: Fetcher, base: str, content_type: str) -> None:
    await refused(
        fetcher.get_activity(f"{base}/typed?ct={quote(content_type)}"), FetchFailure.CONTENT_TYPE
    )


def test_media_type_parsing_handles_quoted_semicolons() -> None:
    media, params = parse_media_type('application/ld+json; a="x;y"; profile="p q"')
    assert media == "application/ld+json"
    assert params == {"a": "x;y", "profile": "p q"}
    assert not is_as2_media_type(
        'application/ld+json; a="profile=https://www.w3.org/ns/activitystreams"'
    )


def test_wire_url_keeps_valid_escapes_and_encodes_the_rest() -> None:
    assert str(wire_url("http://h.test/a%3Ab?c=%2B")) == "http://h.test/a%3Ab?c=%2B"
    assert str(wire_url("http://h.test/a b?c=d e")) == "http://h.test/a%20b?c=d+e"
    assert str(wire_url("http://h.test/100%")) == "http://h.test/100%25"


# -- ids and redirects ---------------------------------------------------------------------


async def test_id_mismatch_refused(fetcher: Fetcher, base: str) -> None:
    await refused(fetcher.get_activity(f"{base}/mismatch"), FetchFailure.ID_MISMATCH)
    await refused(fetcher.get_activity(f"{base}/no-id"), FetchFailure.ID_MISMATCH)


async def test_fragment_is_not_part_of_the_compared_url(fetcher: Fetcher, base: str) -> None:
    fetched = await fetcher.get_activity(f"{base}/chain/0#main-key")
    assert fetched.url == f"{base}/chain/0"
    assert fetched.document["id"] == fetched.url


async def test_redirect_with_id_equal_to_final_url_accepted(fetcher: Fetcher, base: str) -> None:
    fetched = await fetcher.get_activity(f"{base}/chain/3")
    assert fetched.url == f"{base}/chain/0"
    assert fetched.document["id"] == f"{base}/chain/0"


async def test_redirect_target_cannot_claim_the_requested_id(fetcher: Fetcher, base: str) -> None:
    # CVE-2024-23832: what /claims-origin serves speaks for /claims-origin only.
    error = await refused(fetcher.get_activity(f"{base}/claimed"), FetchFailure.ID_MISMATCH)
    assert error.url == f"{base}/claims-origin"


async def test_too_many_redirects(session: aiohttp.ClientSession, base: str) -> None:
    fetcher = Fetcher(session, max_redirects=2, allow_http=True)
    assert (await fetcher.get_activity(f"{base}/chain/2")).url == f"{base}/chain/0"
    await refused(fetcher.get_activity(f"{base}/chain/3"), FetchFailure.REDIRECTS)


async def test_redirect_loop(fetcher: Fetcher, base: str, remote: TestServer) -> None:
    await refused(fetcher.get_activity(f"{base}/loop"), FetchFailure.REDIRECTS)


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::]/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]:1/",
        "http://evil.test/x",
    ],
)
async def test_redirect_to_blocked_address(
    fetcher: Fetcher, base: str, target: str, guard: NetGuard
) -> None:
    await refused(fetcher.get_activity(f"{base}/redirect?to={quote(target)}"), FetchFailure.BLOCKED)
    assert guard.attempts == []


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "gopher://127.0.0.1/", "ftp://127.0.0.1/x"]
)
async def test_redirect_to_other_scheme(fetcher: Fetcher, base: str, target: str) -> None:
    await refused(fetcher.get_activity(f"{base}/redirect?to={quote(target)}"), FetchFailure.SCHEME)


async def test_https_only_unless_allowed(
    session: aiohttp.ClientSession, base: str, remote: TestServer
) -> None:
    strict = Fetcher(session)
    await refused(strict.get_activity(f"{base}/echo/0"), FetchFailure.SCHEME)
    await refused(strict.get_activity("ftp://127.0.0.1/x"), FetchFailure.SCHEME)
    await refused(strict.get_json("relative/path"), FetchFailure.SCHEME)
    lax = Fetcher(session, allow_http=True)
    await refused(lax.get_json("http://[zz]/"), FetchFailure.SCHEME)
    await refused(lax.get_json("http://127.0.0.1:99999/"), FetchFailure.SCHEME)
    assert remote.app[SEEN] == []


async def test_blocked_direct(session: aiohttp.ClientSession, guard: NetGuard) -> None:
    fetcher = Fetcher(session, allow_http=True)
    await refused(fetcher.get_activity("http://169.254.169.254/latest"), FetchFailure.BLOCKED)
    await refused(fetcher.get_json("https://evil.test/.well-known/nodeinfo"), FetchFailure.BLOCKED)
    assert guard.attempts == []


# -- signing -------------------------------------------------------------------------------


async def test_signer_signs_every_hop(
    session: aiohttp.ClientSession, base: str, remote: TestServer
) -> None:
    calls: list[tuple[str, str, dict[str, str]]] = []

    def signer(method: str, url: str, headers: Mapping[str, str]) -> Mapping[str, str]:
        calls.append((method, url, dict(headers)))
        return {**headers, "Signature": f'keyId="k",sig="{method} {url}"'}

    fetcher = Fetcher(session, signer, allow_http=True)
    fetched = await fetcher.get_activity(f"{base}/echo/2")
    assert fetched.url == f"{base}/echo/0"
    hops = [f"{base}/echo/{n}" for n in (2, 1, 0)]
    assert [(m, u) for m, u, _ in calls] == [("GET", hop) for hop in hops]
    assert all(h["Accept"] == AS2_ACCEPT for _, _, h in calls)
    seen = remote.app[SEEN]
    assert [path for path, _ in seen] == ["/echo/2", "/echo/1", "/echo/0"]
    for hop, (_, headers) in zip(hops, seen, strict=True):
        assert headers["Signature"] == f'keyId="k",sig="GET {hop}"'
        assert headers["Accept"] == AS2_ACCEPT


async def test_unsigned_fetch_skips_signer(
    session: aiohttp.ClientSession, base: str, remote: TestServer
) -> None:
    calls: list[str] = []

    def signer(method: str, url: str, headers: Mapping[str, str]) -> Mapping[str, str]:
        calls.append(url)
        return {**headers, "Signature": "x"}

    await Fetcher(session, signer, allow_http=True).get_activity(f"{base}/echo/0", signed=False)
    assert calls == []
    assert "Signature" not in remote.app[SEEN][0][1]


def knocking_fetcher(session: aiohttp.ClientSession) -> Fetcher:
    """A fetcher that signs GETs ``ed25519`` first, then ``rsa`` on a 400/401."""

    def signed_as(name: str) -> RequestSigner:
        def sign(method: str, url: str, headers: Mapping[str, str]) -> Mapping[str, str]:
            return {**headers, "Signature": name}

        return sign

    return Fetcher(
        session, signed_as("ed25519"), fallback_signers=[signed_as("rsa")], allow_http=True
    )


def signatures(remote: TestServer) -> list[str | None]:
    return [headers.get("Signature") for _, headers in remote.app[SEEN]]


async def test_a_refused_signed_get_knocks_again_and_remembers(
    session: aiohttp.ClientSession, base: str, remote: TestServer
) -> None:
    fetcher = knocking_fetcher(session)
    assert (await fetcher.get_activity(f"{base}/picky")).url == f"{base}/picky"
    assert signatures(remote) == ["ed25519", "rsa"]
    await fetcher.get_activity(f"{base}/picky")
    assert signatures(remote) == ["ed25519", "rsa", "rsa"]  # this host takes rsa: one request


async def test_an_accepted_signed_get_is_one_request(
    session: aiohttp.ClientSession, base: str, remote: TestServer
) -> None:
    await knocking_fetcher(session).get_activity(f"{base}/echo/0")
    assert signatures(remote) == ["ed25519"]


async def test_a_get_refused_with_every_signature_fails_with_the_status(
    session: aiohttp.ClientSession, base: str, remote: TestServer
) -> None:
    error = await refused(
        knocking_fetcher(session).get_activity(f"{base}/counted/401"), FetchFailure.STATUS
    )
    assert error.status == 401
    assert signatures(remote) == ["ed25519", "rsa"]


@pytest.mark.parametrize("code", [403, 404, 500])
async def test_other_refusals_are_not_knocked_again(
    session: aiohttp.ClientSession, base: str, remote: TestServer, code: int
) -> None:
    error = await refused(
        knocking_fetcher(session).get_activity(f"{base}/counted/{code}"), FetchFailure.STATUS
    )
    assert error.status == code
    assert signatures(remote) == ["ed25519"]


async def test_an_unsigned_get_does_not_knock(
    session: aiohttp.ClientSession, base: str, remote: TestServer
) -> None:
    await refused(
        knocking_fetcher(session).get_activity(f"{base}/counted/401", signed=False),
        FetchFailure.STATUS,
    )
    assert signatures(remote) == [None]


# -- size, time, status, body --------------------------------------------------------------


async def test_chunked_response_over_cap(
    fetcher: Fetcher, base: str, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{base}/chunked-big") as resp:  # the premise: no Content-Length
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in resp.headers
    await refused(fetcher.get_activity(f"{base}/chunked-big"), FetchFailure.TOO_LARGE)


async def test_declared_length_over_cap(fetcher: Fetcher, base: str) -> None:
    await refused(fetcher.get_activity(f"{base}/declared-big"), FetchFailure.TOO_LARGE)


async def test_cap_applies_after_decompression(fetcher: Fetcher, base: str) -> None:
    await refused(fetcher.get_activity(f"{base}/gzip-bomb"), FetchFailure.TOO_LARGE)


async def test_timeout(base: str, remote: TestServer) -> None:
    session = make_client_session(allow_loopback=True, total_timeout=0.2)
    async with session:
        fetcher = Fetcher(session, allow_http=True)
        await refused(fetcher.get_activity(f"{base}/slow"), FetchFailure.TIMEOUT)


async def test_gone_and_bad_status(fetcher: Fetcher, base: str) -> None:
    gone = await refused(fetcher.get_activity(f"{base}/status/410"), FetchFailure.GONE)
    assert gone.status == 410
    for code in (404, 401, 500):
        error = await refused(fetcher.get_activity(f"{base}/status/{code}"), FetchFailure.STATUS)
        assert error.status == code


async def test_connection_refused_is_network_error(fetcher: Fetcher) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await refused(fetcher.get_activity(f"http://127.0.0.1:{port}/x"), FetchFailure.NETWORK)


@pytest.mark.parametrize("kind", ["array", "garbage", "nan", "duplicate", "deep"])
async def test_invalid_documents(session: aiohttp.ClientSession, base: str, kind: str) -> None:
    fetcher = Fetcher(session, allow_http=True, max_bytes=1_000_000)
    await refused(fetcher.get_activity(f"{base}/raw/{kind}"), FetchFailure.INVALID)


# -- plain JSON ----------------------------------------------------------------------------


async def test_get_json_accepts_json_without_as2_checks(fetcher: Fetcher, base: str) -> None:
    fetched = await fetcher.get_json(f"{base}/plain-json", accept="application/jrd+json")
    assert fetched.document == {"subject": "acct:a@b", "accept": "application/jrd+json"}
    assert (await fetcher.get_json(f"{base}/no-id")).document == {"type": "Note"}
    await refused(fetcher.get_json(f"{base}/typed?ct=text/html"), FetchFailure.CONTENT_TYPE)
    await refused(fetcher.get_json(f"{base}/status/410"), FetchFailure.GONE)
    await refused(fetcher.get_json(f"{base}/chunked-big"), FetchFailure.TOO_LARGE)
