"""Fault injection: which faults a run injects, and the proxy that mangles deliveries.

The aggregator's public URL is this proxy's, so every instance delivers through it (its
backfill GETs go out directly and are never touched). From the start of the stream on, POSTs
to an inbox can be duplicated (forwarded twice), reordered (a ``Like`` is answered 202 at once
and forwarded up to two seconds later, so an ``Undo`` sent right after it overtakes it) or
dropped (answered 202, never forwarded: backfill must recover it). Everything else is passed
through unchanged, ``Host`` included, so HTTP signatures still verify at the aggregator.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

# Hop-by-hop headers (RFC 9110 §7.6.1) and those aiohttp sets itself.
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te",
        "proxy-connection", "trailer", "content-encoding"}  # fmt: skip
HOLD_SECONDS = (0.2, 2.0)


@dataclass(frozen=True)
class Faults:
    """Which faults a run injects (each run must still end exact)."""

    kill_aggregator: bool = False
    instance_down: bool = False
    duplicate: bool = False
    reorder: bool = False
    drop: float = 0.0  # fraction of inbox deliveries lost
    clock_skew: float = 0.0  # seconds: one instance runs ahead by this much, another behind
    malicious: bool = False
    cold_rebuild: bool = False  # after the run: empty the aggregator and time its backfill

    def names(self) -> list[str]:
        """The flags that are on."""
        flags = [("kill-aggregator", self.kill_aggregator), ("instance-down", self.instance_down),
                 ("duplicate", self.duplicate), ("reorder", self.reorder),
                 (f"drop={self.drop}", self.drop > 0),
                 (f"clock-skew={self.clock_skew:g}s", self.clock_skew != 0),
                 ("malicious", self.malicious), ("cold-rebuild", self.cold_rebuild)]  # fmt: skip
        return [name for name, on in flags if on]

    @property
    def proxied(self) -> bool:
        """Whether deliveries to the aggregator go through the fault proxy."""
        return self.duplicate or self.reorder or self.drop > 0


@dataclass
class FaultProxy:
    """A reverse proxy to the aggregator that mangles inbox POSTs once ``armed``."""

    upstream: str  # the aggregator's own http://127.0.0.1:PORT
    faults: Faults
    seed: int = 8
    exempt: tuple[str, ...] = ()  # key id prefixes never mangled (the malicious instance's)
    armed: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    _held: set[str] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def start(self, port: int) -> web.AppRunner:
        """Listen on 127.0.0.1:``port``; the caller cleans the runner up."""
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=2**21)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    async def close(self) -> None:
        """Wait for held deliveries, then close the upstream session."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        try:
            async with self._session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body,
                allow_redirects=False,
            ) as answer:  # fmt: skip
                payload = await answer.read()
                out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
                return web.Response(status=answer.status, body=payload, headers=out)
        except (aiohttp.ClientError, OSError) as exc:
            return web.Response(status=502, text=f"aggregator unreachable: {exc}")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if not (self.armed and request.method == "POST" and request.path.endswith("/inbox")):
            return await self._forward(request, body)
        signature = request.headers.get("Signature-Input", "") + request.headers.get(
            "Signature", ""
        )
        if any(prefix in signature for prefix in self.exempt):
            return await self._forward(request, body)
        return await self._mangle(request, body)

    async def _mangle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        kind, activity_id, object_id = _summary(body)
        if self.faults.drop and self._rng.random() < self.faults.drop:
            self.counts["dropped"] += 1
            return web.Response(status=202)
        if kind == "Undo" and object_id in self._held:
            self.counts["undo_before_like"] += 1
        if self.faults.reorder and kind == "Like":
            self._held.add(activity_id)
            delay = self._rng.uniform(*HOLD_SECONDS)
            task = asyncio.create_task(self._later(request, body, delay, activity_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self.counts["held"] += 1
            return web.Response(status=202)
        answer = await self._forward(request, body)
        if self.faults.duplicate:
            await self._forward(request, body)
            self.counts["duplicated"] += 1
        return answer

    async def _later(self, request: web.Request, body: bytes, delay: float, like: str) -> None:
        await asyncio.sleep(delay)
        self._held.discard(like)
        answer = await self._forward(request, body)
        if answer.status >= 300:
            self.counts["held_lost"] += 1  # the aggregator was down: backfill recovers it
        if self.faults.duplicate:
            await self._forward(request, body)
            self.counts["duplicated"] += 1


def _summary(body: bytes) -> tuple[str, str, str]:
    """(type, id, object id) of a delivered activity ("" where absent)."""
    try:
        activity: Any = json.loads(body)
    except ValueError:
        return "", "", ""
    if not isinstance(activity, dict):
        return "", "", ""
    kind = activity.get("type")
    target = activity.get("object")
    object_id = target.get("id") if isinstance(target, dict) else target
    return (str(kind) if isinstance(kind, str) else "", str(activity.get("id", "")),
            str(object_id or ""))  # fmt: skip
