"""One pass over one collection of an instance, from its stored cursor (DESIGN.md §6
"Backfill"): the collection head, each page (asked again smaller when too large for the
fetcher), its items handed to a handler as one ingest batch, and the cursor saved after every
page, so an interrupted pass resumes from the page it was on. :mod:`.backfill` decides which
collections to walk and with which handler (:mod:`.backfill_items`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from yarl import URL

from activitypub import as2
from activitypub.fetch import FetchError, FetchFailure
from federation.aggregator.backfill_items import ItemHandler, ListedItems, PageHandler
from federation.aggregator.documents import DocumentFetch
from federation.aggregator.ingest import Ingest
from federation.store.aggregator import CursorRow
from federation.tally.records import normal_origin

if TYPE_CHECKING:
    from federation.aggregator.wiring import Aggregator

log = logging.getLogger(__name__)

# An optional collection we may not read (403), or that is not there, is skipped.
_SKIPPED = (403, 404, 410)


@dataclass(frozen=True)
class Progress:
    """Where a backfill stands, for a progress line: items read of ``total`` (when known)."""

    origin: str
    collection: str
    items: int
    total: int | None
    pages: int


ProgressHook = Callable[[Progress], None]


class BackfillError(Exception):
    """A collection could not be read to its end; the cursor keeps what was done."""


def _sized(first: str | None, limit: int | None) -> str | None:
    """The first page asked with ``limit`` items (Barri keeps it on the ``next`` links; a
    server that knows no ``limit`` ignores it): fewer signed GETs."""
    if first is None or limit is None:
        return first
    return str(URL(first).update_query(limit=limit))


def _halved(url: str) -> str | None:
    """The page ``url`` asked with half its ``limit`` (None: it names no limit above 1)."""
    parsed = URL(url)
    try:
        limit = int(parsed.query.get("limit", ""))
    except ValueError:
        return None
    return str(parsed.update_query(limit=limit // 2)) if limit > 1 else None


async def fetch_page(
    fetch: DocumentFetch, cursor: CursorRow
) -> tuple[Mapping[str, Any], CursorRow]:
    """The page at the cursor; one too large for the fetcher is asked again with half its
    ``limit`` (which Barri keeps on its ``next`` links), the cursor moved to that page."""
    while True:
        assert cursor.next_url is not None
        try:
            return await fetch(cursor.next_url), cursor
        except FetchError as exc:
            smaller = _halved(cursor.next_url)
            if exc.reason is not FetchFailure.TOO_LARGE or smaller is None:
                raise
            log.info("backfill asks %s again, smaller: %s", cursor.next_url, exc)
            cursor = replace(cursor, next_url=smaller)


class CollectionWalker:
    """Walks collections for one aggregator: reads pages, hands items over, keeps cursors."""

    def __init__(
        self,
        aggregator: Aggregator,
        ingest: Ingest,
        items: ListedItems,
        fetch: DocumentFetch,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ingest, self.items = ingest, items
        self.store, self.state, self.log = aggregator.store, aggregator.state, aggregator.log
        self._fetch, self._clock = fetch, clock

    async def collection(
        self,
        origin: str,
        owner: str,
        url: str,
        progress: ProgressHook | None = None,
        *,
        handle: ItemHandler | PageHandler | None = None,
        ascending: bool = False,
        optional: bool = False,
        page_limit: int | None = None,
    ) -> int:
        """One pass over a collection from its stored cursor; returns the items read.

        ``handle`` takes each item (an :data:`ItemHandler`) or each page's items at once (a
        :class:`PageHandler`). An ``optional`` collection the instance does not serve (or not
        to us) is skipped; ``page_limit`` asks pages of that many items.
        """
        handle = handle or self.items.activity(owner)
        cursor = await self.store.cursor(origin, url) or CursorRow(
            origin, url, None, None, None, 0, None, 0, self._clock()
        )
        try:
            if cursor.next_url is None:
                cursor = await self._start_pass(cursor, ascending, page_limit)
                if cursor.next_url is None:
                    await self.store.save_cursor(cursor)  # an empty collection: read whole
            read, pages = 0, 0
            while cursor.next_url is not None:
                cursor, count = await self._page(cursor, handle, ascending)
                read, pages = read + count, pages + 1
                await self.store.save_cursor(cursor)
                await self.state.sync()
                if progress is not None:
                    progress(Progress(origin, url, cursor.items, cursor.total, pages))
        except FetchError as exc:
            if optional and exc.status in _SKIPPED:
                log.info("backfill skips %s: %s", url, exc)
                return 0
            raise BackfillError(f"{url}: {exc}") from exc
        return read

    async def _start_pass(
        self, cursor: CursorRow, ascending: bool, page_limit: int | None = None
    ) -> CursorRow:
        """Read the collection head: ``totalItems`` and its ``first`` page (none to read when it
        says it is empty).

        An oldest-first collection resumes at the last page the previous pass read, where
        new items appear.
        """
        collection = await self._fetch(cursor.collection)
        first = as2.first_id(collection, "first")
        total = as2.first(collection, "totalItems")
        known = total if isinstance(total, int) and not isinstance(total, bool) else None
        start = cursor.marker if ascending and cursor.marker else _sized(first, page_limit)
        if known == 0 or start is None:
            # An empty collection (its own word, as its pages would be): the pass is done at
            # once, without a signed GET of an empty page; the marker stays.
            return replace(
                cursor, next_url=None, pass_newest=None, total=known, passes=cursor.passes + 1,
                updated_at=self._clock(),
            )  # fmt: skip
        return replace(cursor, next_url=start, pass_newest=None, total=known)

    async def _page(
        self, cursor: CursorRow, handle: ItemHandler | PageHandler, ascending: bool
    ) -> tuple[CursorRow, int]:
        """Handle one page's items (up to the previous pass's marker); the cursor after it."""
        assert cursor.next_url is not None
        if normal_origin(cursor.next_url) != cursor.origin:
            # The page's items are believed as the instance's word: only from its origin.
            raise BackfillError(f"{cursor.next_url} is not on {cursor.origin}")
        page, cursor = await fetch_page(self._fetch, cursor)
        newest, reached = cursor.pass_newest, False
        items: list[Any] = []
        for item in as2.values(page, "orderedItems") or as2.values(page, "items"):
            item_id = as2.id_of(item)
            if not ascending and item_id is not None and item_id == cursor.marker:
                reached = True
                break
            newest = newest or item_id
            items.append(item)
        if isinstance(handle, PageHandler):
            await handle.page(items, page)
        else:
            await self._items(items, page, handle, cursor.origin)
        read = len(items)
        following = None if reached else as2.first_id(page, "next")
        now = self._clock()
        if following is not None:
            return replace(
                cursor, next_url=following, pass_newest=newest, items=cursor.items + read,
                updated_at=now,
            ), read  # fmt: skip
        # Newest first: remember the newest item; oldest first: the page to resume from.
        marker = cursor.next_url if ascending else newest or cursor.marker
        return replace(
            cursor, next_url=None, marker=marker, pass_newest=None,
            items=cursor.items + read, passes=cursor.passes + 1, updated_at=now,
        ), read  # fmt: skip

    async def _items(
        self, items: list[Any], page: Mapping[str, Any], handle: ItemHandler, origin: str
    ) -> None:
        """Handle a page's items as one ingest batch (its votes written together, DESIGN §8),
        after one query for which of them are held already and the fetches they need."""
        ids = {item_id for item in items if (item_id := as2.id_of(item)) is not None}
        held = frozenset(await self.log.verified_among(ids))
        await self.items.warm(items, origin, held)
        async with self.ingest.batch(unheld=ids - held):
            for item in items:
                await handle(item, page, held)


__all__ = ["BackfillError", "CollectionWalker", "Progress", "ProgressHook", "fetch_page"]
