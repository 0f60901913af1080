"""host-meta (RFC 6415): the XRD and JSON documents that point legacy clients to WebFinger."""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from .origin import OriginError, origin_of
from .webfinger import CORS, JRD, WELL_KNOWN_PATH

XRD = "application/xrd+xml"
XRD_NS = "http://docs.oasis-open.org/ns/xri/xrd-1.0"
Handler = Callable[[web.Request], Awaitable[web.Response]]


def lrdd_template(origin: str) -> str:
    """The WebFinger URI template for ``origin`` (RFC 6415 §3.1.1.1 ``lrdd`` link)."""
    try:
        base = str(origin_of(origin))
    except OriginError as exc:
        raise ValueError(f"host-meta needs an http(s) origin: {exc}") from exc
    return f"{base}{WELL_KNOWN_PATH}?resource={{uri}}"


def host_meta_xml(origin: str) -> bytes:
    """The XRD 1.0 document with one ``lrdd`` template link (RFC 6415 §2, §3)."""
    # Written by hand: ElementTree can only emit a default namespace by registering it globally.
    # No ``type`` on the link: the template answers JRD (RFC 7033), not RFC 6415's XRD.
    # html.escape(quote=True) is XML attribute escaping (&, <, >, both quotes); an origin has no
    # whitespace to keep, and xml.sax.saxutils would be 0.2 MB loaded for this one line.
    template = html.escape(lrdd_template(origin), quote=True)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<XRD xmlns="{XRD_NS}">\n'
        f'  <Link rel="lrdd" template="{template}"/>\n'
        "</XRD>\n"
    ).encode()


def host_meta_json(origin: str) -> bytes:
    """The JRD form served at ``/.well-known/host-meta.json`` (RFC 6415 §6)."""
    doc = {"links": [{"rel": "lrdd", "type": JRD, "template": lrdd_template(origin)}]}
    return json.dumps(doc).encode("utf-8")


def host_meta_handler(origin: str) -> Handler:
    """GET ``/.well-known/host-meta``: the XRD, built once (RFC 6415 §2)."""
    body = host_meta_xml(origin)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": f"{XRD}; charset=utf-8", **CORS})

    return handler


def host_meta_json_handler(origin: str) -> Handler:
    """GET ``/.well-known/host-meta.json``: the JRD form (RFC 6415 §6)."""
    body = host_meta_json(origin)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": JRD, **CORS})

    return handler


def host_meta_routes(origin: str) -> list[web.RouteDef]:
    """Both host-meta routes, ready for ``app.add_routes``."""
    return [
        web.get("/.well-known/host-meta", host_meta_handler(origin)),
        web.get("/.well-known/host-meta.json", host_meta_json_handler(origin)),
    ]
