"""SSRF guard for outbound HTTP: vet every address after DNS and connect only to vetted ones.

DESIGN.md §5 ("Fetched documents") and reference/activitypub.md §Security 5: the client refuses
non-global addresses after DNS resolution, on every redirect hop, and connects to the address it
vetted, so DNS rebinding cannot swap the address between the check and the connection.

How the hook works (aiohttp 3.14, ``aiohttp/connector.py``):
``TCPConnector._create_direct_connection`` calls ``_resolve_host(host, port)`` for every new
connection; for an IP-literal host that method returns the literal without consulting the
resolver, and for a name it asks the resolver (through aiohttp's DNS cache). The returned list is
exactly what aiohappyeyeballs connects to. We override ``_resolve_host`` to vet *every* entry of
that list, literal or resolved, cached or fresh, and refuse the whole host if any entry is not
allowed (a name mixing public and private records is hostile). As a second line of defence the
peer address of each new connection is checked again.

``BlockedAddress`` subclasses ``aiohttp.ClientConnectionError`` (not ``OSError``), so it passes
through aiohttp unwrapped: callers can catch it by name, and generic ``except ClientError``
handlers still see it as a connection failure. ``activitypub.fetch`` maps it to
``FetchError(BLOCKED)``.

``allow_loopback`` (tests, demos, benchmarks only) admits exactly 127.0.0.0/8 and ::1. IPv4-mapped
(``::ffff:127.0.0.1``), NAT64 and 6to4 forms of loopback are refused even then: nothing legitimate
needs them, and they are the classic way around a loopback allowance.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

if TYPE_CHECKING:
    import asyncio

    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.tracing import Trace

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.ip_address("::1")
# RFC 6052 well-known NAT64 prefix: a DNS64 resolver answers with it for IPv4-only hosts, and
# the gateway connects to the embedded IPv4 address, so that address is what must be vetted.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

DEFAULT_USER_AGENT = "Barri/0.1 (+https://w3id.org/barri)"


class BlockedAddress(aiohttp.ClientConnectionError):
    """A host resolved to (or was) an address the SSRF guard refuses."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"refusing to connect to {host!r}: address {address} is not global")
        self.host = host
        self.address = address


def _parse(address: str) -> IPAddress | None:
    """Parse an address as aiohttp or a URL may spell it: brackets and a zone id allowed."""
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # a zone id only says which link; it never makes it global
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really reaches (mapped, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _is_public(ip: IPAddress) -> bool:
    """Global unicast only; Python 3.11's ``is_global`` alone admits multicast and fec0::/10."""
    if not ip.is_global or ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        return False
    if ip.is_private or ip.is_link_local or ip.is_reserved:
        return False
    return not (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)


def address_allowed(address: str, *, allow_loopback: bool = False) -> bool:
    """May the client connect to this IP address? (DESIGN.md §5; Mastodon CVE-2026-22245 class)."""
    ip = _parse(address)
    if ip is None:
        return False
    if allow_loopback and (ip in _LOOPBACK_V4 or ip == _LOOPBACK_V6):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            # The embedded IPv4 is the real destination; the loopback allowance never
            # applies to it (see the module docstring).
            return _is_public(inner)
    return _is_public(ip)


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that connects only to addresses :func:`address_allowed` accepts."""

    def __init__(self, *, allow_loopback: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._allow_loopback = allow_loopback

    @property
    def allow_loopback(self) -> bool:
        """Whether 127.0.0.0/8 and ::1 are admitted (tests and demos only)."""
        return self._allow_loopback

    def vet(self, host: str, addresses: Sequence[str]) -> None:
        """Raise BlockedAddress unless every address is allowed (and there is at least one)."""
        if not addresses:
            raise BlockedAddress(host, "(none)")
        for address in addresses:
            if not address_allowed(address, allow_loopback=self._allow_loopback):
                raise BlockedAddress(host, address)

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        # Both IP literals and resolved names come through here, and the returned list is
        # exactly what aiohttp then connects to: vetting it closes the rebinding window.
        results = await super()._resolve_host(host, port, traces=traces)
        self.vet(host, [result["host"] for result in results])
        return results

    async def _create_direct_connection(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
        *,
        client_error: type[Exception] = aiohttp.ClientConnectorError,
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        transport, proto = await super()._create_direct_connection(
            req, traces, timeout, client_error=client_error
        )
        # Defence in depth: should a future aiohttp connect by another path, the request
        # still never leaves for a peer we would have refused.
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            address = str(peer[0])
            if not address_allowed(address, allow_loopback=self._allow_loopback):
                transport.close()
                raise BlockedAddress(req.url.raw_host or "", address)
        return transport, proto

    async def _create_proxy_connection(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
    ) -> tuple[asyncio.BaseTransport, ResponseHandler]:
        # Through a proxy the target is resolved by the proxy, out of our sight.
        raise aiohttp.ClientConnectionError("proxies are not allowed by the SSRF guard")


def make_client_session(
    *,
    allow_loopback: bool = False,
    user_agent: str = DEFAULT_USER_AGENT,
    connect_timeout: float = 5.0,
    total_timeout: float = 20.0,
    limit_per_host: int = 4,
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """The one guarded ClientSession a server uses (DESIGN.md §5); call inside a running loop."""
    connector = GuardedConnector(
        allow_loopback=allow_loopback, limit_per_host=limit_per_host, resolver=resolver
    )
    # sock_connect bounds each TCP attempt; waiting for a pool slot and DNS count only
    # against the total, so a busy host does not turn into spurious connect timeouts.
    timeout = aiohttp.ClientTimeout(
        total=total_timeout, sock_connect=connect_timeout, sock_read=total_timeout
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": user_agent},
        cookie_jar=aiohttp.DummyCookieJar(),  # a federation client must not carry cookies
        trust_env=False,  # never pick up a proxy from the environment
    )
