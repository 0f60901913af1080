"""What the read side's routes share: the id a request names, 404, cursor-paged collections.

Collections are ``OrderedCollection``s whose pages are walked with opaque cursors over the
store's ``seq`` (ActivityPub §5, AS2 Core §5.3-5.4, :mod:`activitypub.collections`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from activitypub.collections import (
    MAX_LIMIT,
    PageRequest,
    PageResult,
    first_page_url,
    ordered_collection,
    ordered_collection_page,
    page_url_for,
    parse_page_request,
)
from activitypub.errors import Problem
from federation.instance import app as instance_app
from federation.store.paging import SEQ_SHAPE
from federation.vocab.context import document_context
from federation.vocab.wire import embed

PageLoader = Callable[[PageRequest], Awaitable[PageResult]]
#: Most items a page of a collection an aggregator reads whole (support logs, residents) holds:
#: a signed Like is ~1 KB, so ~500 KB, under a fetcher's 1 MB; each page costs both sides a
#: signed GET, and the aggregator a cursor write and a transaction.
BULK_LIMIT = 500
#: Counts a collection's items, for its ``totalItems`` (None: the collection states none).
Counter = Callable[[], Awaitable[int]] | None


def own_url(request: web.Request, suffix: str = "") -> str:
    """The id a request names: the base URL plus the path without ``suffix``."""
    return request.app[instance_app.CONFIG].base_url + request.path.removesuffix(suffix)


def not_found_problem(object_id: str) -> Problem:
    """The 404 problem+json for an id this instance does not know (RFC 9457)."""
    return Problem(404, "Not Found", f"There is nothing at {object_id} on this instance.")


async def serve_collection(
    request: web.Request,
    collection_id: str,
    count: Counter,
    load_page: PageLoader,
    *,
    context: Any = None,
    max_limit: int = MAX_LIMIT,
) -> web.Response:
    """The collection (``?page`` absent) or one cursor page of it (AS2 §5.3-5.4).

    Only the collection states ``totalItems`` (``count`` runs for it alone): counting a big
    table is a scan, and a walk asking every page of it would scan it once a page."""
    try:
        page = parse_page_request(request.query, key_shape=SEQ_SHAPE, max_limit=max_limit)
    except ValueError as exc:
        raise Problem(400, "Bad Request", f"Bad paging parameters: {exc}.") from exc
    context = document_context() if context is None else context
    if page is None:
        total = None if count is None else await count()
        doc = ordered_collection(
            collection_id, total, first=first_page_url(collection_id), context=context
        )
        return instance_app.as2_response(request, doc)
    result = await load_page(page)
    page_id = request.app[instance_app.CONFIG].base_url + request.path_qs
    # A reader that asked for a page size keeps it on the next/prev links.
    asked = page.limit if "limit" in request.query else None
    doc = ordered_collection_page(
        collection_id, page_id, result, page_url=page_url_for(collection_id, limit=asked),
        context=context,
    )  # fmt: skip
    return instance_app.as2_response(request, doc)


def embedded_page(result: PageResult, render: Callable[[Any], dict[str, Any]]) -> PageResult:
    """A page whose items are rendered objects, embedded without their own ``@context``."""
    return PageResult([embed(render(item)) for item in result.items], result.next_cursor,
                      result.prev_cursor)  # fmt: skip
