"""Backfill: catch up with each instance's outboxes after any downtime (DESIGN.md §6).

For every active roster instance the aggregator walks the ``outbox`` OrderedCollections of its
instance actor and Group with signed GETs (authorised fetch), newest first, ``first`` then
``next``. Each item is handed to ingest exactly like a live delivery, so a support's own proof
is verified whatever route it took; an item given by id is fetched from its own origin.

The position is stored after every page: an interrupted pass resumes from the page it was on.
A pass stops at the newest item of the previous finished pass (``marker``), so later passes
read only what is new; items reread after a crash are deduplicated by id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from activitypub import as2
from activitypub.fetch import FetchError
from federation.aggregator.documents import ActorFetch, DocumentFetch
from federation.aggregator.ingest import Ingest, Provenance, Route
from federation.store.aggregator import CursorRow, RosterRow
from federation.tally.records import normal_origin

if TYPE_CHECKING:
    from federation.aggregator.wiring import Aggregator

log = logging.getLogger(__name__)


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


class Backfiller:
    """Resumable per-instance walks over outbox collections."""

    def __init__(
        self,
        aggregator: Aggregator,
        ingest: Ingest,
        fetch: DocumentFetch,
        actor: ActorFetch,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.aggregator, self.ingest = aggregator, ingest
        self.store, self.state = aggregator.store, aggregator.state
        self._fetch, self._actor, self._clock = fetch, actor, clock

    async def run(self, progress: ProgressHook | None = None) -> dict[str, int | str]:
        """Backfill every active instance; per origin, the items read or the error met."""
        report: dict[str, int | str] = {}
        for row in await self.store.roster(active_only=True):
            try:
                report[row.origin] = await self.instance(row, progress)
            except BackfillError as exc:
                log.warning("backfill of %s stopped: %s", row.origin, exc)
                report[row.origin] = str(exc)
        return report

    async def instance(self, row: RosterRow, progress: ProgressHook | None = None) -> int:
        """Walk the outboxes of the instance actor and the Group; returns the items read."""
        read = 0
        for owner in (row.instance_actor, row.group_actor):
            if owner is None:
                continue
            try:
                outbox = as2.first_id(await self._actor(owner, False), "outbox")
            except FetchError as exc:
                raise BackfillError(f"cannot fetch {owner}: {exc}") from exc
            if outbox is None or normal_origin(outbox) != row.origin:
                continue  # an outbox elsewhere would not be this instance's word
            read += await self.collection(row.origin, owner, outbox, progress)
        return read

    async def collection(
        self, origin: str, owner: str, url: str, progress: ProgressHook | None = None
    ) -> int:
        """One pass over a collection from its stored cursor; returns the items read."""
        cursor = await self.store.cursor(origin, url) or CursorRow(
            origin, url, None, None, None, 0, None, 0, self._clock()
        )
        try:
            if cursor.next_url is None:
                cursor = await self._start_pass(cursor)
            read, pages = 0, 0
            while cursor.next_url is not None:
                cursor, count = await self._page(cursor, owner)
                read, pages = read + count, pages + 1
                await self.store.save_cursor(cursor)
                await self.state.sync()
                if progress is not None:
                    progress(Progress(origin, url, cursor.items, cursor.total, pages))
        except FetchError as exc:
            raise BackfillError(f"{url}: {exc}") from exc
        return read

    async def _start_pass(self, cursor: CursorRow) -> CursorRow:
        """Read the collection head: ``totalItems`` and its ``first`` page."""
        collection = await self._fetch(cursor.collection)
        first = as2.first_id(collection, "first")
        total = as2.first(collection, "totalItems")
        known = total if isinstance(total, int) and not isinstance(total, bool) else None
        # An empty collection's pass is done at once; the marker stays.
        return replace(cursor, next_url=first, pass_newest=None, total=known)

    async def _page(self, cursor: CursorRow, owner: str) -> tuple[CursorRow, int]:
        """Ingest one page's items up to the previous pass's marker; the cursor after it."""
        assert cursor.next_url is not None
        if normal_origin(cursor.next_url) != cursor.origin:
            # The page's items are believed as the instance's word: only from its origin.
            raise BackfillError(f"{cursor.next_url} is not on {cursor.origin}")
        page = await self._fetch(cursor.next_url)
        newest, read, reached = cursor.pass_newest, 0, False
        for item in as2.values(page, "orderedItems") or as2.values(page, "items"):
            item_id = as2.id_of(item)
            if item_id is not None and item_id == cursor.marker:
                reached = True
                break
            newest = newest or item_id
            await self._item(item, page, owner)
            read += 1
        following = None if reached else as2.first_id(page, "next")
        now = self._clock()
        if following is not None:
            return replace(
                cursor, next_url=following, pass_newest=newest, items=cursor.items + read,
                updated_at=now,
            ), read  # fmt: skip
        return replace(
            cursor, next_url=None, marker=newest or cursor.marker, pass_newest=None,
            items=cursor.items + read, passes=cursor.passes + 1, updated_at=now,
        ), read  # fmt: skip

    async def _item(self, item: Any, page: Mapping[str, Any], owner: str) -> None:
        """One outbox item, processed like a live delivery (its proof verified by ingest)."""
        if isinstance(item, str):
            document = await self._fetch(item)
            provenance = Provenance(Route.FETCH, owner, normal_origin(item))
        elif isinstance(item, Mapping):
            document = item
            if "@context" not in item and "@context" in page:
                document = {"@context": page["@context"], **item}
            provenance = Provenance(Route.BACKFILL, owner, normal_origin(owner))
        else:
            return
        await self.ingest.accept(document, provenance)
