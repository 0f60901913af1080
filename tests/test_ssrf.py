"""The SSRF guard: address rules, post-DNS refusal, IP literals, redirects, rebinding.

Every test that names a forbidden address runs under ``no_outside_connections``: if the guard
were broken, the tripwire would raise and record instead of letting a packet leave.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from activitypub.ssrf import (
    BlockedAddress,
    GuardedConnector,
    address_allowed,
    make_client_session,
)
from tests.netguard import (
    FakeResolver,
    NetGuard,
    is_loopback_destination,
    no_outside_connections_fixture,  # noqa: F401 (registers the fixture)
)

ServerFactory = Callable[..., Awaitable[TestServer]]
HITS = web.AppKey("hits", list[str])

FORBIDDEN = ["10.0.0.1", "169.254.169.254", "0.0.0.0", "::", "::ffff:127.0.0.1"]


def url_host(address: str) -> str:
    """An address as it appears in a URL authority."""
    return f"[{address}]" if ":" in address else address


# -- address rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        *FORBIDDEN,
        "127.0.0.1",
        "::1",
        "192.168.1.1",
        "172.16.0.1",
        "100.64.0.1",  # carrier-grade NAT
        "198.18.0.1",  # benchmarking
        "192.0.2.1",  # documentation
        "240.0.0.1",
        "255.255.255.255",
        "224.0.0.1",  # multicast: Python 3.11 calls it global
        "ff02::1",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fec0::1",  # site-local: Python 3.11 calls it global
        "2001:db8::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::a00:1",  # IPv4-compatible
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "not-an-address",
        "",
        "010.0.0.1",
    ],
)
def test_refused_without_loopback(address: str) -> None:
    assert address_allowed(address) is False


@pytest.mark.parametrize(
    "address",
    [
        "1.1.1.1",
        "8.8.8.8",
        "2606:4700::1111",
        "[2606:4700::1111]",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_global_addresses_allowed(address: str) -> None:
    assert address_allowed(address) is True
    assert address_allowed(address, allow_loopback=True) is True


@pytest.mark.parametrize("address", ["127.0.0.1", "127.4.5.6", "::1", "[::1]"])
def test_allow_loopback_admits_loopback_only(address: str) -> None:
    assert address_allowed(address) is False
    assert address_allowed(address, allow_loopback=True) is True


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "169.254.169.254",
        "192.168.0.1",
        "fe80::1",
        "0.0.0.0",
        "::",
        "::ffff:127.0.0.1",  # mapped loopback: refused even when loopback is allowed
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
    ],
)
def test_allow_loopback_still_refuses_the_rest(address: str) -> None:
    assert address_allowed(address, allow_loopback=True) is False


# -- the tripwire itself -------------------------------------------------------------------


async def test_tripwire_catches_direct_attempts(no_outside_connections: NetGuard) -> None:
    guard = no_outside_connections
    # Precondition, checked before anything could be sent: the tripwire classifies the
    # target as outside, so its wrappers raise before the real primitive runs.
    assert not is_loopback_destination(("10.0.0.1", 9))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        with pytest.raises(AssertionError):
            sock.connect(("10.0.0.1", 9))
        with pytest.raises(AssertionError):
            sock.connect_ex(("10.0.0.1", 9))
        loop = asyncio.get_running_loop()
        with pytest.raises(AssertionError):
            await loop.sock_connect(sock, ("10.0.0.1", 9))
    with pytest.raises(AssertionError):
        await loop.create_connection(asyncio.Protocol, "10.0.0.1", 9)
    with pytest.raises(AssertionError):
        socket.getaddrinfo("example.com", 443)
    assert [primitive for primitive, _ in guard.attempts] == [
        "socket.connect",
        "socket.connect_ex",
        "loop.sock_connect",
        "loop.create_connection",
        "socket.getaddrinfo",
    ]


async def test_tripwire_lets_loopback_through(
    no_outside_connections: NetGuard, aiohttp_server: ServerFactory
) -> None:
    server = await aiohttp_server(counting_app())
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 200")
    assert no_outside_connections.attempts == []


# -- the guarded client against real loopback servers --------------------------------------


def counting_app(redirect_to: str | None = None) -> web.Application:
    """An app answering 200 on any path and recording each request's path.

    With ``redirect_to`` (a format string taking ``port``), ``/redirect`` answers 302 there.
    """
    app = web.Application()
    app[HITS] = []

    async def redirect(request: web.Request) -> web.Response:
        request.app[HITS].append("redirect")
        assert redirect_to is not None
        raise web.HTTPFound(redirect_to.format(port=request.url.port))

    if redirect_to is not None:
        app.router.add_get("/redirect", redirect)

    async def handler(request: web.Request) -> web.Response:
        request.app[HITS].append(request.path_qs)
        return web.json_response({"host": request.host})

    app.router.add_get("/{tail:.*}", handler)
    return app


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver(
        {
            "good.test": ["127.0.0.1"],
            "evil.test": ["10.0.0.1"],
            "metadata.test": ["169.254.169.254"],
            "zero.test": ["0.0.0.0"],
            "any6.test": ["::"],
            "mapped.test": ["::ffff:127.0.0.1"],
            "mixed.test": ["127.0.0.1", "10.0.0.1"],
        }
    )


@pytest.fixture
async def loopback_session(resolver: FakeResolver) -> AsyncIterator[aiohttp.ClientSession]:
    session = make_client_session(allow_loopback=True, resolver=resolver)
    yield session
    await session.close()


async def test_session_is_guarded_with_explicit_timeouts(
    loopback_session: aiohttp.ClientSession,
) -> None:
    assert isinstance(loopback_session.connector, GuardedConnector)
    assert loopback_session.connector.allow_loopback is True
    assert loopback_session.timeout.total == 20.0
    assert loopback_session.timeout.sock_connect == 5.0
    assert loopback_session.headers["User-Agent"].startswith("Barri/")


async def test_loopback_allowed_when_enabled(
    no_outside_connections: NetGuard,
    aiohttp_server: ServerFactory,
    loopback_session: aiohttp.ClientSession,
) -> None:
    server = await aiohttp_server(counting_app())
    async with loopback_session.get(f"http://127.0.0.1:{server.port}/ok") as resp:
        assert resp.status == 200
    async with loopback_session.get(f"http://good.test:{server.port}/named") as resp:
        assert (await resp.json())["host"] == f"good.test:{server.port}"
    assert server.app[HITS] == ["/ok", "/named"]
    assert no_outside_connections.attempts == []


async def test_loopback_refused_by_default(
    no_outside_connections: NetGuard, aiohttp_server: ServerFactory, resolver: FakeResolver
) -> None:
    server = await aiohttp_server(counting_app())
    async with make_client_session(resolver=resolver) as session:
        for host in ("127.0.0.1", "good.test", "[::1]"):
            with pytest.raises(BlockedAddress):
                await session.get(f"http://{host}:{server.port}/")
    assert server.app[HITS] == []
    assert no_outside_connections.attempts == []


@pytest.mark.parametrize("address", FORBIDDEN)
async def test_ip_literal_refused(
    no_outside_connections: NetGuard,
    aiohttp_server: ServerFactory,
    loopback_session: aiohttp.ClientSession,
    address: str,
) -> None:
    server = await aiohttp_server(counting_app())
    with pytest.raises(BlockedAddress) as caught:
        await loopback_session.get(f"http://{url_host(address)}:{server.port}/latest/meta-data")
    assert ipaddress.ip_address(caught.value.address) == ipaddress.ip_address(address)
    assert isinstance(caught.value, aiohttp.ClientError)  # generic handlers see it too
    assert server.app[HITS] == []  # ::ffff:127.0.0.1 would have reached this server
    assert no_outside_connections.attempts == []


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("evil.test", "10.0.0.1"),
        ("metadata.test", "169.254.169.254"),
        ("zero.test", "0.0.0.0"),
        ("any6.test", "::"),
        ("mapped.test", "::ffff:127.0.0.1"),
        ("mixed.test", "10.0.0.1"),
    ],
)
async def test_name_resolving_to_forbidden_address_refused(
    no_outside_connections: NetGuard,
    loopback_session: aiohttp.ClientSession,
    resolver: FakeResolver,
    name: str,
    address: str,
) -> None:
    with pytest.raises(BlockedAddress) as caught:
        await loopback_session.get(f"http://{name}/")
    assert (caught.value.host, caught.value.address) == (name, address)
    assert name in resolver.lookups  # refused after resolution, not by name
    assert no_outside_connections.attempts == []


@pytest.mark.parametrize("address", [*FORBIDDEN, "evil.test"])
async def test_redirect_to_forbidden_address_refused(
    no_outside_connections: NetGuard,
    aiohttp_server: ServerFactory,
    loopback_session: aiohttp.ClientSession,
    address: str,
) -> None:
    server = await aiohttp_server(counting_app(f"http://{url_host(address)}:{{port}}/secret"))
    with pytest.raises(BlockedAddress):
        await loopback_session.get(f"http://127.0.0.1:{server.port}/redirect")
    assert server.app[HITS] == ["redirect"]
    assert no_outside_connections.attempts == []


async def test_rebinding_cannot_swap_the_address(
    no_outside_connections: NetGuard,
    aiohttp_server: ServerFactory,
    resolver: FakeResolver,
    loopback_session: aiohttp.ClientSession,
) -> None:
    first = await aiohttp_server(counting_app())
    second = await aiohttp_server(counting_app())
    resolver.records["rebind.test"] = ["127.0.0.1"]
    async with loopback_session.get(f"http://rebind.test:{first.port}/") as resp:
        assert resp.status == 200
    # The attacker's DNS now answers with an internal address (TTL 0): each new
    # connection is vetted against the answer it will actually use.
    resolver.records["rebind.test"] = ["10.0.0.1"]
    with pytest.raises(BlockedAddress):
        await loopback_session.get(f"http://rebind.test:{second.port}/")
    assert first.app[HITS] == ["/"]
    assert second.app[HITS] == []
    assert no_outside_connections.attempts == []


async def test_proxy_refused(
    no_outside_connections: NetGuard,
    aiohttp_server: ServerFactory,
    loopback_session: aiohttp.ClientSession,
) -> None:
    proxy = await aiohttp_server(counting_app())
    with pytest.raises(aiohttp.ClientConnectionError, match="prox"):
        await loopback_session.get("http://evil.test/", proxy=f"http://127.0.0.1:{proxy.port}")
    assert proxy.app[HITS] == []
    assert no_outside_connections.attempts == []
