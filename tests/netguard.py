"""Test helpers that keep tests on loopback: a connection tripwire and a fake DNS resolver.

``no_outside_connections`` patches the socket and event-loop connection primitives so that any
attempt to reach a non-loopback address (or to resolve a name other than ``localhost``) raises
AssertionError *before* the real primitive runs, and is recorded. Loopback keeps working, so real
aiohttp servers on 127.0.0.1 are unaffected. SSRF tests use it so that a refusal is proven safe
even if the guard under test were broken: no packet can leave.

``FakeResolver`` is an aiohttp resolver backed by a dict, for tests that give loopback servers
names (``alice.test`` → 127.0.0.1) or that need a name to resolve to a forbidden address
(``evil.test`` → 10.0.0.1) without any real DNS.

Use from a test module::

    from tests.netguard import NetGuard, no_outside_connections_fixture  # noqa: F401

    async def test_x(no_outside_connections: NetGuard) -> None: ...

(the fixture is registered under the name ``no_outside_connections``; importing the function
object under its own name keeps linters from seeing the parameter as a redefinition).
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.selector_events
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

_INET = (socket.AF_INET, socket.AF_INET6)
_LOCAL_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback_destination(address: object) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped), ``localhost`` and local-socket paths."""
    if isinstance(address, str | bytes):
        return True  # AF_UNIX path or abstract name: never leaves the machine
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return is_loopback_host(str(host))


def is_loopback_host(host: str | None) -> bool:
    """True for a loopback IP literal (any spelling Python parses) or ``localhost``."""
    if host is None:
        return False
    text = host.strip("[]").split("%", 1)[0]
    if text.lower() in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@dataclass
class NetGuard:
    """What the tripwire saw: every refused (primitive, destination) pair, in order."""

    attempts: list[tuple[str, object]] = field(default_factory=list)

    def check(self, primitive: str, destination: object) -> None:
        """Record and refuse a non-loopback destination; let loopback through."""
        if not is_loopback_destination(destination):
            self.attempts.append((primitive, destination))
            raise AssertionError(f"test tried to reach {destination!r} via {primitive}")

    def check_host(self, primitive: str, host: object) -> None:
        """Like :meth:`check` for a bare host (name resolution, create_connection)."""
        if host is None:
            return
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not is_loopback_host(str(host)):
            self.attempts.append((primitive, host))
            raise AssertionError(f"test tried to resolve or reach {host!r} via {primitive}")


def _patch_socket(monkeypatch: pytest.MonkeyPatch, guard: NetGuard) -> None:
    """Wrap socket.socket.connect / connect_ex / sendto and socket.getaddrinfo."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto
    original_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in _INET:
            guard.check("socket.connect", address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in _INET:
            guard.check("socket.connect_ex", address)
        return original_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        if self.family in _INET and args:
            guard.check("socket.sendto", args[-1])
        return original_sendto(self, data, *args)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        guard.check_host("socket.getaddrinfo", host)
        return original_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _patch_loop(monkeypatch: pytest.MonkeyPatch, guard: NetGuard) -> None:
    """Wrap the event loop's create_connection and both sock_connect implementations."""
    base = asyncio.base_events.BaseEventLoop
    selector = asyncio.selector_events.BaseSelectorEventLoop
    original_create: Any = base.create_connection
    original_base_sock = base.sock_connect
    original_selector_sock = selector.sock_connect

    async def create_connection(
        self: asyncio.AbstractEventLoop, protocol_factory: Any, host: Any = None, *a: Any, **k: Any
    ) -> Any:
        guard.check_host("loop.create_connection", host)
        return await original_create(self, protocol_factory, host, *a, **k)

    async def base_sock_connect(self: Any, sock: socket.socket, address: Any) -> None:
        if sock.family in _INET:
            guard.check("loop.sock_connect", address)
        await original_base_sock(self, sock, address)

    async def selector_sock_connect(self: Any, sock: socket.socket, address: Any) -> None:
        if sock.family in _INET:
            guard.check("loop.sock_connect", address)
        await original_selector_sock(self, sock, address)

    monkeypatch.setattr(base, "create_connection", create_connection)
    monkeypatch.setattr(base, "sock_connect", base_sock_connect)
    monkeypatch.setattr(selector, "sock_connect", selector_sock_connect)


def install(monkeypatch: pytest.MonkeyPatch) -> NetGuard:
    """Install the tripwire for the lifetime of ``monkeypatch`` and return its recorder."""
    guard = NetGuard()
    _patch_socket(monkeypatch, guard)
    _patch_loop(monkeypatch, guard)
    return guard


@pytest.fixture(name="no_outside_connections")
def no_outside_connections_fixture(monkeypatch: pytest.MonkeyPatch) -> NetGuard:
    """Fail (and record) any attempt to connect anywhere but loopback during the test."""
    return install(monkeypatch)  # monkeypatch undoes every patch after the test


class FakeResolver(AbstractResolver):
    """A DNS stand-in: names map to address lists; unknown names fail like NXDOMAIN."""

    def __init__(self, records: Mapping[str, Sequence[str]] | None = None) -> None:
        self.records: dict[str, list[str]] = {k: list(v) for k, v in (records or {}).items()}
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Answer from ``records`` (no network, ever)."""
        self.lookups.append(host)
        addresses = self.records.get(host.rstrip(".").lower())
        if not addresses:
            raise OSError(f"FakeResolver: no records for {host!r}")
        return [_result(host, address, port) for address in addresses]

    async def close(self) -> None:
        """Nothing to release."""


def _result(host: str, address: str, port: int) -> ResolveResult:
    """One aiohttp resolve result for ``address``."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
