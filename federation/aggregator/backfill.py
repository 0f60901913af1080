"""Backfill: catch up with each instance after any downtime (DESIGN.md §6).

For every active roster instance (a few instances at once, each walk in its own order) the
aggregator walks, with signed GETs (authorised fetch):

- ``/residents`` at its origin: its verified residents' actor documents, 500 a page, so the
  votes read next find their actors' keys and residency without a GET each (an instance
  without it, an older version, is read without: each voter's actor is fetched);
- the ``outbox`` of its instance actor and its Group (activities, handed to ingest exactly like
  a live delivery, so a support's own proof is verified whatever route it took), asked without
  the creations of comments (``exclude=comments``; each is in its thread, read after every
  instance's votes; an older instance lists them, and they are skipped);
- ``/support-log?authors=local`` at its origin: every signed Like and Undo its residents gave,
  in its processes or other instances', embedded with its proof. The author's word matters: an
  owner may refuse a support the aggregator's rules count (its clock reads the support's
  ``published`` differently), and then no owner's collection lists it. When that log was read,
  the per-process and per-proposal support collections below are skipped;
- once every instance was walked so (:meth:`Backfiller.run`, or the workers' third phase), the
  rest of each instance's ``/support-log``: ``exclude_origins`` names the instances whose own
  residents' log was read to its end in this backfill, so only other actors' Likes and Undos
  in its processes come (a Mastodon user's, or an older instance's residents'). Each support
  is read once, from its author's instance, not again from its process's owner (the city's
  instance logs every resident's support in the city's processes: half the city's items);
- for each process the instance hosts, ``{process}/proposals`` and ``{process}/debates``; and,
  from an instance without ``/support-log`` (older versions), ``{process}/support-log`` (every
  signed Like and withdrawal Undo the owner learnt of in the process, embedded with its proof)
  or, from an owner that does not serve that log either, ``{process}/supports`` (the ids of
  every support the owner counts in the process, each fetched unless held), and for each
  proposal it hosts ``{proposal}/supports`` (the private list of like ids: each one not held
  yet is fetched from its own origin and verified like any other copy);
- for each proposal and debate it hosts, its FEP-7888 ``context`` collection (the thread).

Objects listed in a collection are believed when their id is on the collection's origin;
anything else is refetched from its own id. The position is stored after every page, so an
interrupted pass resumes from the page it was on. Newest-first collections stop at the newest
item of the previous finished pass (``marker``); oldest-first ones (``context``) resume from
the last page read. Items reread after a crash are deduplicated by id. The rest of a log is
one collection per exclusion list, with its own cursor: when the instances read change, the
new list is read from its newest item down, never resumed where another list stopped.

A withdrawal the aggregator missed (down, or the delivery lost) is read from the owner's
support log; an instance without that collection (older versions) only lists active supports,
so there it arrives when the instance's delivery retry does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from activitypub import as2
from activitypub.fetch import FetchError, FetchFailure
from federation.aggregator.backfill_items import ListedItems
from federation.aggregator.documents import ActorFetch, DocumentFetch
from federation.aggregator.ingest import Ingest
from federation.aggregator.walk import BackfillError, CollectionWalker, Progress, ProgressHook
from federation.store.aggregator import RosterRow
from federation.tally.records import normal_origin

if TYPE_CHECKING:
    from federation.aggregator.wiring import Aggregator

log = logging.getLogger(__name__)

# Items per page asked of support logs and residents: a Barri instance's largest (one signed
# Like is ~1 KB, so a page is ~500 KB; each page costs a signed GET, a cursor write and a
# sync; an older instance serves at most 100). A page over the fetcher's 1 MB cap (items
# stored by an older version inline the whole Barri context, ~10 KB) is asked again with half
# the limit (:func:`_halved`). Other collections keep the server's default: a Group outbox
# embeds whole proposals.
LOG_PAGE_LIMIT = 500
# Items per outbox page asked: the most a Barri server gives (a Group's outbox embeds whole
# proposals, ~3 KB each: ~300 KB a page); the city's Group announces every proposal and comment
# of its processes (~9,000 items for Barcelona: 90 signed GETs instead of 450).
OUTBOX_PAGE_LIMIT = 100
# Longest URL of the rest of a log: a city's roster of origins fits (74 in ~3 KB); servers
# refuse a request line over 8 KB (aiohttp), so a bigger roster leaves the last ones in.
REST_URL_BUDGET = 6000
# Instances walked at once: each walk mostly waits on its instance's pages, so a few in flight
# keep the aggregator busy while one instance renders (and spread the load over the city).
INSTANCES_AT_ONCE = 4


def without_comments(outbox: str) -> str:
    """The outbox without the activities that create comments (``exclude=comments``)."""
    return outbox + ("&" if "?" in outbox else "?") + "exclude=comments"


def own_log_url(origin: str) -> str:
    """The part of an instance's ``/support-log`` its own residents wrote."""
    return f"{origin}/support-log?authors=local"


def rest_of_log_url(origin: str, covered: Collection[str]) -> str:
    """An instance's ``/support-log`` without the items by actors of the ``covered`` origins
    (the first of them, sorted, that fit in ``REST_URL_BUDGET``: one not left out is read
    again, never lost)."""
    url, kept = origin + "/support-log", list[str]()
    for excluded in sorted(covered):
        longer = f"{url}?" + urlencode({"exclude_origins": ",".join([*kept, excluded])})
        if len(longer) > REST_URL_BUDGET:
            break
        kept.append(excluded)
    return f"{url}?" + urlencode({"exclude_origins": ",".join(kept)}) if kept else url


def combined(*results: int | str) -> int | str:
    """The items read by several steps of one instance's backfill; an error, once met, wins."""
    errors = [result for result in results if isinstance(result, str)]
    return errors[0] if errors else sum(r for r in results if isinstance(r, int))


def _context_url(root_id: str, document: str, origin: str) -> str:
    """A thread root's FEP-7888 ``context`` collection, on the root's own origin."""
    try:
        stated = as2.first_id(json.loads(document), "context")
    except ValueError:
        stated = None
    if stated is not None and normal_origin(stated) == origin:
        return stated
    return f"{root_id}/context"


class Backfiller:
    """Resumable per-instance walks over outbox, process, supports and thread collections."""

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
        self.store, self.state, self.log = aggregator.store, aggregator.state, aggregator.log
        self._fetch, self._actor, self._clock = fetch, actor, clock
        self.items = ListedItems(ingest, fetch)
        #: One pass over one collection from its stored cursor (:mod:`.walk`).
        walker = CollectionWalker(aggregator, ingest, self.items, fetch, clock=clock)
        self.collection = walker.collection
        #: Whole passes running now and finished since start (``/metrics``).
        self.running, self.passes = 0, 0

    def now(self) -> float:
        """The time on the clock cursors are stamped with (for :meth:`covered_since`)."""
        return self._clock()

    @asynccontextmanager
    async def pass_running(self) -> AsyncIterator[None]:
        """Count a whole backfill pass as running until the block ends (``/metrics``)."""
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self.passes += 1

    async def run(
        self, progress: ProgressHook | None = None, *, at_once: int = INSTANCES_AT_ONCE
    ) -> dict[str, int | str]:
        """Backfill every active instance, ``at_once`` of them concurrently; per origin (in
        roster order), the items read or the error met. Every instance's votes first (what
        the totals need), then the rest (:meth:`rest`)."""
        gate = asyncio.Semaphore(max(1, at_once))
        rows = await self.store.roster(active_only=True)

        async def each(step: Callable[[RosterRow], Awaitable[int]]) -> list[int | str]:
            async def one(row: RosterRow) -> int | str:
                async with gate:
                    try:
                        return await step(row)
                    except BackfillError as exc:
                        log.warning("backfill of %s stopped: %s", row.origin, exc)
                        return str(exc)

            return await asyncio.gather(*(one(row) for row in rows))

        async with self.pass_running():
            started = self._clock()
            voted = await each(lambda row: self.votes(row, progress))
            covered = await self.covered_since(started)
            rests = await each(lambda row: self.rest(row, covered, progress))
        results = zip(rows, voted, rests, strict=True)
        return {row.origin: combined(votes, rest) for row, votes, rest in results}

    async def instance(self, row: RosterRow, progress: ProgressHook | None = None) -> int:
        """Walk everything the instance publishes that we may read; returns the items read."""
        started = self._clock()
        read = await self.votes(row, progress)
        own = await self._read_since(row.origin, own_log_url(row.origin), started)
        return read + await self.rest(row, frozenset({row.origin} if own else ()), progress)

    async def votes(
        self, row: RosterRow, progress: ProgressHook | None = None, *, residents: bool = True
    ) -> int:
        """What the totals need from the instance: its residents (unless ``residents`` is
        False: read just before), its outboxes (processes and proposals) and its own
        residents' support log; returns the items read."""
        # Its residents first: the votes read next need their actors, a GET each otherwise.
        read = await self.residents(row, progress) if residents else 0
        read += await self._outboxes(row, progress)
        return read + await self._log(row, own_log_url(row.origin), progress)

    async def rest(
        self, row: RosterRow, covered: Collection[str], progress: ProgressHook | None = None
    ) -> int:
        """The rest of the instance, once :meth:`votes` read the ``covered`` origins' own
        logs: the rest of its log (:meth:`rest_of_log`), its processes' proposals and debates,
        the threads, and (when its own log was not read: an older instance) the support
        collections its log would have made needless."""
        read = await self.rest_of_log(row, covered, progress)
        supports = row.origin not in covered
        read += await self._process_collections(row.origin, progress, supports=supports)
        return read + await self._proposal_collections(row.origin, progress, supports=supports)

    async def residents(self, row: RosterRow, progress: ProgressHook | None = None) -> int:
        """The instance's ``/residents``: its verified residents' actor documents, kept as a
        fetch of each would keep them; returns the actors read."""
        return await self.collection(
            row.origin, row.instance_actor or row.origin, row.origin + "/residents", progress,
            handle=self.items.residents(row.origin), optional=True, page_limit=LOG_PAGE_LIMIT,
        )  # fmt: skip

    async def rest_of_log(
        self, row: RosterRow, covered: Collection[str], progress: ProgressHook | None = None
    ) -> int:
        """The instance's log but for the Likes and Undos by residents of the ``covered``
        origins (their own instance's log was read): other actors' in its processes."""
        return await self._log(row, rest_of_log_url(row.origin, covered), progress)

    async def _log(self, row: RosterRow, url: str, progress: ProgressHook | None) -> int:
        """Read one part of the instance's ``/support-log``, each item verified from the page."""
        owner = row.instance_actor or row.origin
        return await self.collection(
            row.origin, owner, url, progress, handle=self.items.logged_support(owner),
            optional=True, page_limit=LOG_PAGE_LIMIT,
        )  # fmt: skip

    async def _read_since(self, origin: str, url: str, started: float) -> bool:
        """Whether a pass over the collection ended at or after ``started``."""
        cursor = await self.store.cursor(origin, url)
        return cursor is not None and cursor.next_url is None and cursor.updated_at >= started

    async def covered_since(self, started: float) -> frozenset[str]:
        """The active instances whose own residents' log a pass read to its end at or after
        ``started``: every Like and Undo by their residents was read from there."""
        rows = await self.store.roster(active_only=True)
        return frozenset([
            row.origin for row in rows
            if await self._read_since(row.origin, own_log_url(row.origin), started)
        ])  # fmt: skip

    async def _outboxes(self, row: RosterRow, progress: ProgressHook | None) -> int:
        """The outboxes of the instance actor and the Group."""
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
            # A comment's creation is read with its thread (:meth:`rest`), not before the
            # votes: the city's Group announces ~20,000 of them. Asked without them (an older
            # instance lists them anyway: the handler skips them).
            handle = self.items.activity(owner, comments=False)
            read += await self.collection(
                row.origin, owner, await self._outbox_part(row.origin, outbox), progress,
                handle=handle, page_limit=OUTBOX_PAGE_LIMIT,
            )  # fmt: skip
        return read

    async def _outbox_part(self, origin: str, outbox: str) -> str:
        """The outbox without the comments' creations (:func:`without_comments`) when the
        instance serves that part, as a Barri instance does since its migration 12; else the
        whole outbox: a server that ignores the query names the whole one as what it served."""
        part = without_comments(outbox)
        if await self.store.cursor(origin, part) is not None:
            return part  # read before
        try:
            await self._fetch(part)
        except FetchError as exc:
            return outbox if exc.reason is FetchFailure.ID_MISMATCH else part
        return part

    async def _process_collections(
        self, origin: str, progress: ProgressHook | None, *, supports: bool
    ) -> int:
        """``{process}/proposals`` and ``{process}/debates`` of the processes hosted here, and
        (``supports``: no instance-wide log was read) their support log or list."""
        read = 0
        for process in await self.log.processes_after(0):
            if process.origin != origin:
                continue
            read += await self.collection(
                origin, process.owner, process.id + "/proposals", progress,
                handle=self.items.proposal(origin), optional=True,
            )  # fmt: skip
            read += await self.collection(
                origin, process.owner, process.id + "/debates", progress,
                handle=self.items.merged(origin), optional=True,
            )  # fmt: skip
            if not supports:
                continue
            # The owner's log of signed Likes and Undos: verified from the page, withdrawals too.
            log_url, started = process.id + "/support-log", self._clock()
            read += await self.collection(
                origin, process.owner, log_url, progress,
                handle=self.items.logged_support(process.owner), optional=True,
                page_limit=LOG_PAGE_LIMIT,
            )  # fmt: skip
            logged = await self.store.cursor(origin, log_url)
            if logged is not None and logged.updated_at >= started:
                continue  # read in this pass: it lists every Like {process}/supports would
            # An owner without the log: every support it counts, wherever its proposal lives.
            read += await self.collection(
                origin, process.owner, process.id + "/supports", progress,
                handle=self.items.support, optional=True,
            )  # fmt: skip
        return read

    async def _proposal_collections(
        self, origin: str, progress: ProgressHook | None, *, supports: bool
    ) -> int:
        """Threads of the proposals and debates hosted here, and (``supports``: no
        instance-wide log was read) the supports of its proposals."""
        read = 0
        roots = []
        for proposal in await self.log.proposals_on(origin):
            if supports:
                read += await self.collection(
                    origin, proposal.id, proposal.id + "/supports", progress,
                    handle=self.items.support, optional=True,
                )  # fmt: skip
            roots.append((proposal.id, _context_url(proposal.id, proposal.document, origin)))
        merged = self.ingest.merger
        if merged is not None:
            for debate in await merged.store.debates_on(origin):
                roots.append((debate.id, _context_url(debate.id, debate.document, origin)))
        for root, url in roots:
            read += await self.collection(
                origin, root, url, progress, handle=self.items.merged(origin), ascending=True,
                optional=True,
            )  # fmt: skip
        return read


__all__ = [
    "BackfillError", "Backfiller", "Progress", "ProgressHook", "combined", "own_log_url",
    "rest_of_log_url", "without_comments",
]  # fmt: skip
