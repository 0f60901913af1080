"""Real Barri instances on loopback around the real aggregator (issue 6 "What must show").

``town`` starts the aggregator (tests/aggregator_env.py), then four instances built with
``federation.instance.app.create_app`` exactly as tests/test_instance_federation.py does, each
naming the aggregator's Service in ``report_to``: A (la Vila de Gràcia, 31 in district 06), B
(el Raval, 01 in 01) and D (Sants, 18 in 03) are on the roster; E (Horta, 43 in 07) is not. A's
admin opens a city-wide process (three supports per participant); B, D and E follow it. Every
resident act goes through the instance's own Deliberation service and reaches the aggregator
by real signed deliveries; ``Town.act`` keeps the test's own record of what was done, from
which ``Town.truth`` computes the totals independently of the aggregator.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from activitypub.collections import PageRequest
from activitypub.knock import KnockMemory, post_signed
from activitypub.runtime import FEDERATION, LocalKeys
from federation.config import InstanceConfig
from federation.instance.app import ACCOUNTS, ACTORS, DB, DELIBERATION, create_app
from federation.instance.deliberation import Deliberation
from federation.instance.ports import Role, User
from federation.model import Process
from federation.store.outbox import OutboxStore
from tests.aggregator_env import City, city, inbox_quiet
from tests.test_aggregator_ingest import city_process_draft
from tests.test_readside import instance_config

PASSWORD = "correct horse battery"
#: name, neighbourhood, district, on the roster
HOODS = (("a", "31", "06", True), ("b", "01", "01", True), ("d", "18", "03", True),
         ("e", "43", "07", False))  # fmt: skip


@dataclass
class Hood:
    """One running instance as the test drives it."""

    name: str
    code: str
    district: str
    rostered: bool
    config: InstanceConfig
    server: TestServer
    hits: Counter[str] = field(default_factory=Counter)
    users: dict[str, User] = field(default_factory=dict)

    @property
    def app(self) -> web.Application:
        return self.server.app

    @property
    def origin(self) -> str:
        return self.config.base_url

    @property
    def deliberation(self) -> Deliberation:
        return self.app[DELIBERATION]

    @property
    def group(self) -> str:
        return f"{self.origin}/groups/{self.config.group}"

    def actor(self, name: str) -> str:
        return f"{self.origin}/users/{name}"

    async def resident(self, name: str, *, verified: bool = True) -> User:
        """A resident of this instance (verified in its neighbourhood unless told otherwise)."""
        accounts = self.app[ACCOUNTS]
        await accounts.create_user(name, PASSWORD, Role.RESIDENT)
        user = await accounts.verify(name, self.code, by="test") if verified else None
        self.users[name] = user or await accounts.get(name)
        return self.users[name]

    async def keys(self, actor: str) -> LocalKeys:
        """The instance's keys of one of its actors (to re-sign what it published)."""
        keys: LocalKeys = await self.app[ACTORS].keys_for(actor)
        return keys

    async def published(self, actor: str) -> list[dict[str, Any]]:
        """Everything ``actor`` published, oldest first, as stored with its proof."""
        page = await OutboxStore(self.app[DB]).page_outbox(
            actor, PageRequest(None, None, 100), include_private=True
        )
        return [item.document for item in reversed(page.items)]


async def deliver(keys: LocalKeys, activity: dict[str, Any], inbox: str) -> int:
    """POST ``activity`` to ``inbox`` with a fresh HTTP signature by ``keys``."""
    body = json.dumps(activity).encode()
    async with aiohttp.ClientSession() as session:
        return await post_signed(session, inbox, body, keys.signing_key, KnockMemory())


@dataclass
class Town:
    """The aggregator, the four instances, the process and the test's record of acts."""

    city: City
    hoods: dict[str, Hood]
    process: Process
    acts: list[tuple[str, str, str, int]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Hood:
        hoods = self.__dict__.get("hoods", {})
        if name in hoods:
            return hoods[name]  # type: ignore[no-any-return]
        raise AttributeError(name)

    async def support(self, hood: Hood, name: str, proposal: str) -> None:
        """A resident supports a proposal through the instance's Deliberation service."""
        await hood.deliberation.support(hood.users[name], proposal)
        self.acts.append((hood.name, hood.actor(name), proposal, 1))

    async def withdraw(self, hood: Hood, name: str, proposal: str) -> None:
        """A resident withdraws a support through the Deliberation service."""
        await hood.deliberation.withdraw_support(hood.users[name], proposal)
        self.acts.append((hood.name, hood.actor(name), proposal, -1))

    def truth(self) -> dict[str, dict[str, int]]:
        """The counts the acts add up to: per proposal, per neighbourhood, roster only."""
        active: dict[tuple[str, str], str] = {}
        for where, actor, proposal, sign in self.acts:
            if sign > 0:
                active[(actor, proposal)] = where
            else:
                active.pop((actor, proposal), None)
        totals: dict[str, dict[str, int]] = {}
        for (_, proposal), name in active.items():
            hood = self.hoods[name]
            if hood.rostered:
                per = totals.setdefault(proposal, {})
                per[hood.code] = per.get(hood.code, 0) + 1
        return totals

    async def counted(self, city: City | None = None) -> dict[str, dict[str, int]]:
        """What the aggregator's results API says, in the same shape as ``truth``."""
        body = await (city or self.city).results(self.process.id)
        return {p["id"]: p["byTerritory"] for p in body["proposals"] if p["supports"]}

    async def settle(self) -> None:
        """Every delivery sent or waiting for a retry, every received row handled."""
        if self.city.server is not None:
            await self.city.settle()
            return
        # The aggregator is down: deliveries to it fail and wait for their retry.
        for _ in range(4):
            for hood in self.hoods.values():
                await _first_attempts_done(hood)
                await hood.app[FEDERATION].processor.process_pending()
                await inbox_quiet(hood.app[FEDERATION])

    async def retries(self, due: float) -> None:
        """Move every pending delivery's next attempt to ``due`` (time passing) and wake."""
        for hood in self.hoods.values():
            db = hood.app[DB]
            await db.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE state = 'new'", (due,)
            )
            await db.commit()
            worker = hood.app[FEDERATION].worker
            assert worker is not None
            worker.wake()


async def _first_attempts_done(hood: Hood, rounds: int = 600) -> None:
    """Wait until no delivery is waiting for its first attempt (polling the queue)."""
    db = hood.app[DB]
    for _ in range(rounds):
        rows = list(
            await db.execute_fetchall(
                "SELECT COUNT(*) FROM deliveries WHERE state = 'new' AND attempts = 0"
            )
        )
        if rows[0][0] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{hood.name}: deliveries still waiting for their first attempt")


def _hit_counter(hood_hits: Counter[str]) -> Any:
    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "GET":
            hood_hits[request.path] += 1
        return await handler(request)

    return count


async def _start(c: City, name: str, code: str, district: str, rostered: bool) -> Hood:
    port = c.ports()
    config = instance_config(
        c.tmp_path, port, name=f"AV {name}", territory=code, district=district,
        report_to=(c.actor,),
    )  # fmt: skip
    hits: Counter[str] = Counter()
    app = create_app(config)
    app.middlewares.append(_hit_counter(hits))
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    c.stack.push_async_callback(server.close)
    c.others.append(server)
    return Hood(name, code, district, rostered, config, server, hits)


@asynccontextmanager
async def town(tmp_path: Path, ports: Callable[[], int]) -> AsyncIterator[Town]:
    """The aggregator and four real instances, the process open and followed (see above)."""
    async with city(tmp_path, ports) as c:
        hoods = {}
        for name, code, district, rostered in HOODS:
            hoods[name] = await _start(c, name, code, district, rostered)
        for hood in hoods.values():
            if hood.rostered:
                await c.runtime.roster.add(hood.origin, hood.code)
        a = hoods["a"]
        admin = await a.app[ACCOUNTS].create_user("admin", PASSWORD, Role.ADMIN)
        process = await a.deliberation.create_process(city_process_draft(), by=admin)
        for hood in hoods.values():
            if hood is not a:
                await hood.deliberation.follow_remote_process(process.id)
        result = Town(c, hoods, process)
        await result.settle()
        yield result


__all__ = ["HOODS", "Hood", "Town", "deliver", "town"]
