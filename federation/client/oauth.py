"""OAuth 2.0 for a native C2S client: discovery, PKCE, a loopback redirect, tokens (RFC 8252).

The flow, as a client developer would write it for any Barri instance (and as the SocialCG
task force's demo client does):

1. GET ``{server}/.well-known/oauth-authorization-server`` (RFC 8414); its ``issuer`` must be
   the server itself.
2. Listen on ``127.0.0.1`` for the redirect (RFC 8252 §7.3). The ``client_id`` is the URL of
   a Client ID Metadata Document listing that exact redirect URI: by default the one every
   Barri instance serves for this command (``{server}/oauth/clients/barri-cli``, redirects on
   ports :data:`BARRI_CLI_PORTS`), or one this client serves itself from the loopback listener
   (``self_hosted``: only servers allowed to fetch loopback addresses can read it), or any
   ``client_id`` given.
3. Send the resident's browser to the authorization endpoint with a PKCE S256 challenge and a
   random ``state``; the redirect brings back ``code``, ``state`` and ``iss`` (RFC 9207).
4. POST the code and the verifier to the token endpoint; the answer names the ``actor``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from federation.client.credentials import ClientError, Credentials

#: Must equal the server's (federation.instance.oauth.clients); a test checks they agree.
BARRI_CLI_PATH = "/oauth/clients/barri-cli"
BARRI_CLI_PORTS = (38421, 38422, 38423, 38424, 38425)
LOGIN_TIMEOUT = 300.0
AS2_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'

OpenUrl = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ServerMetadata:
    """The RFC 8414 fields the client uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str | None


def pkce_pair() -> tuple[str, str]:
    """A fresh code verifier and its S256 challenge (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def json_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """A JSON object body, or ClientError naming what the server said."""
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError) as exc:
        raise ClientError(
            "bad_response", f"{response.url} answered {response.status}, not JSON"
        ) from exc
    if not isinstance(body, dict):
        raise ClientError("bad_response", f"{response.url} answered a JSON {type(body).__name__}")
    return body


def refusal(status: int, body: Mapping[str, Any]) -> ClientError:
    """The server's refusal: an OAuth error or a problem+json, with its rule name."""
    reason = body.get("reason") or body.get("error") or f"http_{status}"
    detail = body.get("detail") or body.get("error_description") or body.get("title") or ""
    return ClientError(str(reason), f"{detail} (HTTP {status})")


async def discover(session: aiohttp.ClientSession, server: str) -> ServerMetadata:
    """The authorization server metadata at the server's origin (RFC 8414 §3)."""
    async with session.get(server + "/.well-known/oauth-authorization-server") as response:
        body = await json_of(response)
        if response.status != 200:
            raise refusal(response.status, body)
    if body.get("issuer") != server:
        raise ClientError(
            "issuer_mismatch", f"the metadata names {body.get('issuer')!r}, not {server}"
        )
    if "S256" not in body.get("code_challenge_methods_supported", []):
        raise ClientError("no_pkce", "the server does not offer PKCE S256")
    return ServerMetadata(
        issuer=server,
        authorization_endpoint=str(body["authorization_endpoint"]),
        token_endpoint=str(body["token_endpoint"]),
        revocation_endpoint=body.get("revocation_endpoint"),
    )


class Loopback:
    """The redirect listener on 127.0.0.1, optionally serving the client's own metadata."""

    def __init__(self) -> None:
        self.result: asyncio.Future[Mapping[str, str]] = asyncio.get_running_loop().create_future()
        self.document: dict[str, Any] | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self, ports: tuple[int, ...]) -> int:
        """Listen on the first free port of ``ports`` (0: any); returns the port."""
        app = web.Application()
        app.router.add_get("/callback", self._callback)
        app.router.add_get("/client.json", self._metadata)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            await web.SockSite(self._runner, sock).start()
            self.port = int(sock.getsockname()[1])
            return self.port
        await self.stop()
        raise ClientError("no_free_port", f"none of the loopback ports {ports} is free")

    async def stop(self) -> None:
        """Close the listener."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _callback(self, request: web.Request) -> web.Response:
        if not self.result.done():
            self.result.set_result(dict(request.query))
        return web.Response(
            text="<!doctype html><title>barri client</title><p>Done: you may close this window.",
            content_type="text/html",
        )

    async def _metadata(self, request: web.Request) -> web.Response:
        if self.document is None:
            raise web.HTTPNotFound()
        return web.json_response(self.document)


def self_hosted_document(port: int) -> dict[str, Any]:
    """The Client ID Metadata Document this client serves about itself from its listener."""
    base = f"http://127.0.0.1:{port}"
    return {
        "client_id": base + "/client.json",
        "client_name": "barri client",
        "redirect_uris": [base + "/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "read write",
    }


@dataclass(frozen=True)
class LoginOptions:
    """How to log in: which client_id, which ports, which scopes."""

    client_id: str | None = None
    self_hosted: bool = False
    port: int | None = None
    scope: str = "read write"
    timeout: float = LOGIN_TIMEOUT


async def _authorize(
    metadata: ServerMetadata, listener: Loopback, options: LoginOptions, open_url: OpenUrl
) -> tuple[str, str, str, str]:
    """Run the browser part; returns (client_id, redirect_uri, code, verifier)."""
    if options.self_hosted:
        port = await listener.start((options.port or 0,))
        listener.document = self_hosted_document(port)
        client_id = listener.document["client_id"]
    else:
        port = await listener.start((options.port,) if options.port else BARRI_CLI_PORTS)
        client_id = options.client_id or metadata.issuer + BARRI_CLI_PATH
    redirect_uri = f"http://127.0.0.1:{port}/callback"
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": options.scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    opener = asyncio.ensure_future(open_url(f"{metadata.authorization_endpoint}?{query}"))
    try:
        answer = await asyncio.wait_for(asyncio.shield(listener.result), options.timeout)
    except TimeoutError as exc:
        raise ClientError("login_timeout", "no answer from the browser in time") from exc
    finally:
        await asyncio.gather(opener, return_exceptions=True)
    _check_answer(answer, state, metadata.issuer)
    return client_id, redirect_uri, answer["code"], verifier


def _check_answer(answer: Mapping[str, str], state: str, issuer: str) -> None:
    """RFC 6749 §4.1.2: the state must be ours; RFC 9207: the issuer the one we asked."""
    if answer.get("state") != state:
        raise ClientError("state_mismatch", "the redirect's state is not this login's")
    if "iss" in answer and answer["iss"] != issuer:
        raise ClientError("issuer_mismatch", f"the redirect came from {answer['iss']}")
    if "error" in answer:
        raise ClientError(answer["error"], answer.get("error_description", ""))
    if not answer.get("code"):
        raise ClientError("no_code", "the redirect carried no code")


async def token_request(
    session: aiohttp.ClientSession, endpoint: str, form: Mapping[str, str]
) -> dict[str, Any]:
    """POST a token request (RFC 6749 §4.1.3, §6); the token response or ClientError."""
    async with session.post(endpoint, data=dict(form)) as response:
        body = await json_of(response)
        if response.status != 200:
            raise refusal(response.status, body)
    if body.get("token_type", "").lower() != "bearer" or "access_token" not in body:
        raise ClientError("bad_response", "the token response has no bearer access token")
    return body


async def login(
    session: aiohttp.ClientSession, server: str, open_url: OpenUrl, options: LoginOptions
) -> Credentials:
    """The whole authorization code flow with PKCE and a loopback redirect."""
    server = server.rstrip("/")
    metadata = await discover(session, server)
    listener = Loopback()
    try:
        client_id, redirect_uri, code, verifier = await _authorize(
            metadata, listener, options, open_url
        )
    finally:
        await listener.stop()
    body = await token_request(
        session,
        metadata.token_endpoint,
        {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    actor = body.get("actor")
    if not isinstance(actor, str):
        raise ClientError("no_actor", "the token response names no actor")
    async with session.get(actor, headers={"Accept": AS2_ACCEPT}) as response:
        actor_doc = await json_of(response)
    return Credentials(
        server=server,
        client_id=client_id,
        token_endpoint=metadata.token_endpoint,
        revocation_endpoint=metadata.revocation_endpoint,
        actor=actor,
        outbox=str(actor_doc.get("outbox") or actor + "/outbox"),
        access_token=str(body["access_token"]),
        refresh_token=str(body.get("refresh_token", "")),
        expires_at=time.time() + float(body.get("expires_in", 3600)),
        scope=str(body.get("scope", "")),
    )


async def refresh(session: aiohttp.ClientSession, credentials: Credentials) -> Credentials:
    """New tokens with the refresh token (RFC 6749 §6); the old refresh token is spent."""
    body = await token_request(
        session,
        credentials.token_endpoint,
        {
            "grant_type": "refresh_token",
            "refresh_token": credentials.refresh_token,
            "client_id": credentials.client_id,
        },
    )
    credentials.access_token = str(body["access_token"])
    credentials.refresh_token = str(body.get("refresh_token", credentials.refresh_token))
    credentials.expires_at = time.time() + float(body.get("expires_in", 3600))
    return credentials


async def revoke(session: aiohttp.ClientSession, credentials: Credentials) -> None:
    """Revoke the refresh token, and with it the whole grant (RFC 7009)."""
    if credentials.revocation_endpoint is None:
        return
    form = {
        "token": credentials.refresh_token,
        "token_type_hint": "refresh_token",
        "client_id": credentials.client_id,
    }
    async with session.post(credentials.revocation_endpoint, data=form) as response:
        if response.status != 200:
            raise refusal(response.status, await json_of(response))
