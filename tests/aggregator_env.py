"""A loopback city for aggregator tests: the aggregator app plus stand-in instances.

``city`` starts the real aggregator app (its own SQLite file, config written by
``write_aggregator_config``) on a free 127.0.0.1 port; ``add_node`` starts a stand-in instance
(tests/barri_node.py) beside it. ``settle`` lets every queued delivery and recorded inbox row
run to completion, so tests assert on a quiet system rather than on timings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import aiosqlite
from aiohttp.test_utils import TestServer

from activitypub.runtime import FEDERATION, Federation
from federation.aggregator.app import AGGREGATOR, RUNTIME, create_app
from federation.aggregator.config import (
    AggregatorConfig,
    AggregatorInit,
    load_aggregator_config,
    write_aggregator_config,
)
from federation.aggregator.wiring import Aggregator, Runtime
from federation.model import Territory
from tests.barri_node import InstanceNode, running_node


def make_config(
    directory: Path, port: int, environ: dict[str, str] | None = None
) -> AggregatorConfig:
    """A loopback aggregator config whose ids use the port it will listen on; ``environ``
    overrides keys the way ``BARRI_*`` variables do (e.g. the Tally debounce)."""
    options = AggregatorInit(
        base_url=f"http://127.0.0.1:{port}",
        name="Barri Barcelona",
        allow_loopback=True,
        listen=f"127.0.0.1:{port}",
    )
    return load_aggregator_config(
        write_aggregator_config(directory, options), environ=environ or {}
    )


@dataclass
class City:
    """The running aggregator and the nodes started beside it."""

    config: AggregatorConfig
    tmp_path: Path
    ports: Callable[[], int]
    stack: AsyncExitStack
    server: TestServer | None = None
    nodes: list[tuple[InstanceNode, TestServer]] = field(default_factory=list)
    others: list[TestServer] = field(default_factory=list)  # e.g. real instance apps

    @property
    def actor(self) -> str:
        return self.config.base_url + "/actor"

    @property
    def inbox(self) -> str:
        return self.config.base_url + "/inbox"

    @property
    def aggregator(self) -> Aggregator:
        assert self.server is not None
        return self.server.app[AGGREGATOR]

    @property
    def runtime(self) -> Runtime:
        assert self.server is not None
        return self.server.app[RUNTIME]

    async def start(self, *, backfill_on_start: bool = False) -> None:
        """(Re)start the aggregator app on its configured port."""
        app = create_app(self.config, backfill_on_start=backfill_on_start)
        server = TestServer(app, host="127.0.0.1", port=self.config.listen_port)
        await server.start_server()
        self.server = server

    async def stop(self) -> None:
        """Stop the aggregator (its data stays in its SQLite file)."""
        if self.server is not None:
            await self.server.close()
            self.server = None

    @asynccontextmanager
    async def aggregator_db(self) -> AsyncIterator[aiosqlite.Connection]:
        """The aggregator's SQLite file, opened directly (to tamper with it while stopped)."""
        async with aiosqlite.connect(self.config.database) as db:
            yield db

    async def add_node(self, name: str, territory: Territory) -> InstanceNode:
        node, server = await self.stack.enter_async_context(
            running_node(self.tmp_path, name, self.ports(), territory, self.actor)
        )
        self.nodes.append((node, server))
        return node

    async def settle(self, rounds: int = 4) -> None:
        """Run every queue and inbox to quiet: deliveries, then recorded rows, a few rounds.

        A row the background processor has claimed is not claimable by ``process_pending``,
        so each round also waits until no due row is left unhandled.
        """
        apps = [server.app for _, server in self.nodes] + [s.app for s in self.others]
        if self.server is not None:
            apps.append(self.server.app)
        for _ in range(rounds):
            for app in apps:
                federation = app[FEDERATION]
                assert federation.worker is not None
                await federation.worker.run_until_idle(timeout=30)
                await federation.processor.process_pending()
                await inbox_quiet(federation)
            await asyncio.sleep(0)
        if self.server is not None:
            await self.aggregator.state.sync()

    async def get(self, path: str) -> Any:
        """GET a JSON API path of the aggregator."""
        async with aiohttp.ClientSession() as session:
            async with session.get(self.config.base_url + path) as response:
                assert response.status == 200, await response.text()
                return await response.json()

    async def results(self, process: str) -> Any:
        return await self.get(f"/api/v1/processes/{quote(process, safe='')}/results")

    async def add_to_roster(self, node: InstanceNode) -> None:
        """Put a node on the roster (discovery + Follows) and let the Accepts come back."""
        territory = node.territory
        await self.runtime.roster.add(node.origin, territory.code, territory.district_code)
        await self.settle()


async def inbox_quiet(federation: Federation, rounds: int = 1500) -> None:
    """Wait until no recorded inbox row that is due is still unhandled (polling the store)."""
    store: Any = federation.inbox_store
    store = getattr(store, "inner", store)  # the aggregator's replay-recording wrapper
    db: aiosqlite.Connection = store._db  # a test peeks at the queue it waits for
    for _ in range(rounds):
        rows = list(
            await db.execute_fetchall(
                "SELECT COUNT(*) FROM inbox_messages WHERE state = 'new' AND next_attempt_at <= ?",
                (time.time(),),
            )
        )
        if rows[0][0] == 0:
            return
        await federation.processor.process_pending()
        await asyncio.sleep(0.02)
    raise AssertionError("inbox rows are still waiting to be handled")


@asynccontextmanager
async def city(
    tmp_path: Path, ports: Callable[[], int], environ: dict[str, str] | None = None
) -> AsyncIterator[City]:
    """A started aggregator with no nodes yet; everything is closed at the end."""
    config = make_config(tmp_path / "city", ports(), environ)
    async with AsyncExitStack() as stack:
        running = City(config, tmp_path, ports, stack)
        await running.start()
        try:
            yield running
        finally:
            await running.stop()
