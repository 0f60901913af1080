"""Backfill pages over a real loopback server: a page too large for the fetcher is asked again
with half its ``limit``, and the walk goes on at that size (DESIGN.md §6 "Backfill")."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from activitypub.fetch import Fetcher, FetchError, FetchFailure
from activitypub.ssrf import make_client_session
from federation.aggregator.walk import fetch_page
from federation.store.aggregator import CursorRow
from tests.netguard import (
    NetGuard,
    no_outside_connections_fixture,  # noqa: F401 (registers the fixture)
)

AS2 = "application/activity+json"
ITEM_BYTES = 1000
ASKED = web.AppKey("asked", list[int])


@pytest.fixture(autouse=True)
def guard(no_outside_connections: NetGuard) -> NetGuard:
    """Every test here runs with the loopback tripwire."""
    return no_outside_connections


async def log_page(request: web.Request) -> web.Response:
    """A support-log page of ``limit`` items of ~1 KB each, its ``next`` keeping the limit."""
    limit = int(request.query.get("limit", "40"))  # a server default over the cap
    request.app[ASKED].append(limit)
    start = int(request.query.get("page", "0"))
    url = URL(f"http://{request.host}{request.raw_path}")
    items = [{"id": f"{url.origin()}/likes/{n}", "type": "Like", "content": "x" * ITEM_BYTES}
             for n in range(start, start + limit)]  # fmt: skip
    body = {"id": str(url), "type": "OrderedCollectionPage", "orderedItems": items,
            "next": str(url.update_query(page=start + limit))}  # fmt: skip
    return web.Response(text=json.dumps(body), content_type=AS2)


@pytest.fixture
async def remote() -> AsyncIterator[TestServer]:
    app = web.Application()
    app[ASKED] = []
    app.router.add_get("/support-log", log_page)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def fetch() -> AsyncIterator[Any]:
    session: aiohttp.ClientSession = make_client_session(allow_loopback=True)
    fetcher = Fetcher(session, max_bytes=30_000, allow_http=True)

    async def get(url: str) -> Mapping[str, Any]:
        return (await fetcher.get_activity(url, signed=False)).document

    yield get
    await session.close()


def cursor_at(url: str) -> CursorRow:
    return CursorRow("http://127.0.0.1", url, url, None, None, 0, None, 0, 0.0)


async def test_a_page_over_the_cap_is_asked_again_with_half_the_limit(
    remote: TestServer, fetch: Any
) -> None:
    first = f"http://127.0.0.1:{remote.port}/support-log?page=0&limit=100"
    page, cursor = await fetch_page(fetch, cursor_at(first))
    # 100 and 50 items of ~1 KB are over the 30 KB cap; 25 fit.
    assert remote.app[ASKED] == [100, 50, 25]
    assert len(page["orderedItems"]) == 25
    assert cursor.next_url is not None and URL(cursor.next_url).query["limit"] == "25"
    # The walk goes on at that size: the next page fits at once.
    nxt, _ = await fetch_page(fetch, cursor_at(page["next"]))
    assert remote.app[ASKED][3:] == [25] and len(nxt["orderedItems"]) == 25


async def test_a_page_over_the_cap_without_a_limit_stays_an_error(
    remote: TestServer, fetch: Any
) -> None:
    with pytest.raises(FetchError) as caught:
        await fetch_page(fetch, cursor_at(f"http://127.0.0.1:{remote.port}/support-log?page=0"))
    assert caught.value.reason is FetchFailure.TOO_LARGE
    assert remote.app[ASKED] == [40]  # the server's default size, asked once: nothing to halve


async def test_another_failure_is_not_retried(remote: TestServer, fetch: Any) -> None:
    with pytest.raises(FetchError) as caught:
        await fetch_page(fetch, cursor_at(f"http://127.0.0.1:{remote.port}/gone?limit=100"))
    assert caught.value.status == 404
    assert remote.app[ASKED] == []
