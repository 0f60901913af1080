"""What backfill does with each item a collection lists (DESIGN.md §6 "Backfill").

Outbox items are processed like live deliveries; listed proposals are kept as their host says;
debates and comments are merged by id; logged Likes and Undos are verified from the page by
their own proof; a listed support id is fetched from its own origin unless a verified copy is
held. :mod:`.walk` walks each collection :mod:`.backfill` chooses and hands its pages' items here.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from activitypub import as2
from activitypub.fetch import FetchError, FetchFailure
from activitypub.runtime import WARM_CONCURRENCY
from federation.aggregator.documents import DocumentFetch, read_proposal
from federation.aggregator.ingest import Ingest, Provenance, Route
from federation.tally.records import normal_origin
from federation.vocab.comment import creates_comment

log = logging.getLogger(__name__)

#: What a walk does with one item of a page (the page for its @context; the ids among the
#: page's items of which a verified copy was stored before the page was read).
ItemHandler = Callable[[Any, Mapping[str, Any], frozenset[str]], Awaitable[None]]

# A listed like we may not read (403), or that is gone, is skipped; anything else is retried.
_SKIPPED = (403, 404, 410)
_MISSING = (FetchFailure.GONE, FetchFailure.ID_MISMATCH, FetchFailure.INVALID)


def _framed(item: Any, page: Mapping[str, Any]) -> Any:
    """An embedded item read in its page's @context when it has none (JSON-LD §4.1)."""
    if isinstance(item, Mapping) and "@context" not in item and "@context" in page:
        return {"@context": page["@context"], **item}
    return item


def _votes(items: Iterable[Any], held: frozenset[str]) -> list[Mapping[str, Any]]:
    """The page's proved Likes and Undos not held yet (embedded, or inside an Announce)."""
    votes = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if "Announce" in as2.types(item):
            item = as2.embedded(item, "object") or {}
        if (
            {"Like", "Undo"} & set(as2.types(item))
            and "proof" in item
            and as2.id_of(item) not in held
        ):
            votes.append(item)
    return votes


async def _gathered(calls: Iterable[Awaitable[Any]]) -> None:
    """Run the calls a few at a time; a failure is left for ingest to meet and report."""
    calls = list(calls)
    if not calls:
        return
    gate = asyncio.Semaphore(WARM_CONCURRENCY)

    async def one(call: Awaitable[Any]) -> None:
        async with gate:
            with contextlib.suppress(FetchError):
                await call

    await asyncio.gather(*(one(call) for call in calls))


class PageHandler(abc.ABC):
    """What a walk does with a whole page's items at once (:meth:`page`)."""

    @abc.abstractmethod
    async def page(self, items: list[Any], page: Mapping[str, Any]) -> None:
        """Handle the page's items (in the page's order)."""


@dataclass(frozen=True)
class _Residents(PageHandler):
    """A page of ``/residents``: each listed resident's residency and, for checking its
    proofs, its keys, all kept in one transaction. Only a Person of the listing's own origin:
    an instance speaks for its residents, nobody else's."""

    ingest: Ingest
    origin: str

    async def page(self, items: list[Any], page: Mapping[str, Any]) -> None:
        actors = [
            (actor_id, _framed(item, page)) for item in items
            if isinstance(item, Mapping) and (actor_id := as2.id_of(item)) is not None
            and normal_origin(actor_id) == self.origin and as2.has_type(item, "Person")
        ]  # fmt: skip
        await self.ingest.documents.learn_many(actors)


class ListedItems:
    """The item handlers of one backfill: ingest and the fetcher they hand items to."""

    def __init__(self, ingest: Ingest, fetch: DocumentFetch) -> None:
        self.ingest, self._fetch = ingest, fetch

    async def warm(self, items: list[Any], origin: str, held: frozenset[str]) -> None:
        """Fetch what a page's votes will need a few at a time (ingest would fetch them one
        by one): every voter's actor, which verifying its proof reads anyway; and, for the
        votes of the page origin's own residents (its word, as its log is), their residency
        and the supported proposal. Other origins' votes steer no further fetch."""
        votes = _votes(items, held)
        documents = self.ingest.documents
        actors = {a for v in votes if (a := as2.first_id(v, "actor")) is not None}
        own = {a for a in actors if normal_origin(a) == origin}
        # A task only for what is not in memory already: a page names ~300 voters and ~300
        # proposals, nearly all known after the residents and the outboxes were read.
        await _gathered(
            [documents.known_resident(a) for a in own if not documents.resident_fresh(a)]
            + [documents.actor(a, False) for a in actors - own]
        )
        proposals = {
            target for v in votes
            if "Like" in as2.types(v) and as2.first_id(v, "actor") in own
            and (target := as2.first_id(v, "object")) is not None
            and documents.process_held(target) is None
        }  # fmt: skip
        await _gathered(documents.process_of(p) for p in proposals)

    def activity(self, owner: str, *, comments: bool = True) -> ItemHandler:
        async def handle(item: Any, page: Mapping[str, Any], held: frozenset[str]) -> None:
            """An outbox item, processed like a live delivery (its proof verified by ingest);
            without ``comments``, a comment's creation is left to its thread."""
            if not comments and isinstance(item, Mapping) and creates_comment(item):
                return
            if isinstance(item, str):
                document = await self._fetch(item)
                provenance = Provenance(Route.FETCH, owner, normal_origin(item))
            elif isinstance(item, Mapping):
                document = _framed(item, page)
                provenance = Provenance(Route.BACKFILL, owner, normal_origin(owner))
            else:
                return
            await self.ingest.accept(document, provenance)

        return handle

    def residents(self, origin: str) -> PageHandler:
        """Listed residents' actor documents, kept as fetching their ids would keep them."""
        return _Residents(self.ingest, origin)

    def proposal(self, origin: str) -> ItemHandler:
        async def handle(item: Any, page: Mapping[str, Any], held: frozenset[str]) -> None:
            """A listed proposal: kept as its host says (refetched when listed elsewhere)."""
            if not isinstance(item, Mapping):
                return
            document: Mapping[str, Any] = _framed(item, page)
            proposal = read_proposal(document)
            if proposal is not None and normal_origin(proposal.id) != origin:
                document = await self._fetch(proposal.id)
                proposal = read_proposal(document)
            documents = self.ingest.documents
            if proposal is None or await documents.process(proposal.process) is None:
                return
            await documents.store_proposal(proposal, document)

        return handle

    def merged(self, origin: str) -> ItemHandler:
        async def handle(item: Any, page: Mapping[str, Any], held: frozenset[str]) -> None:
            """A listed debate or comment, merged by id."""
            if isinstance(item, Mapping) and self.ingest.merger is not None:
                await self.ingest.merger.listed(_framed(item, page), origin)

        return handle

    def logged_support(self, owner: str) -> ItemHandler:
        async def handle(item: Any, page: Mapping[str, Any], held: frozenset[str]) -> None:
            """A logged Like or Undo: embedded with its proof, so verified without a fetch."""
            if not isinstance(item, Mapping):
                return await self.support(item, page, held)
            item_id = as2.id_of(item)
            if item_id is None or item_id in held:
                return None
            # No trusted origin: only the activity's own proof makes it authentic here.
            provenance = Provenance(Route.BACKFILL, owner, None)
            if self.ingest.accept_at_once(item, provenance) is None:
                await self.ingest.accept(item, provenance)
            return None

        return handle

    async def support(self, item: Any, page: Mapping[str, Any], held: frozenset[str]) -> None:
        """A listed support (or withdrawal) id: fetched from its own origin if not held."""
        like_id = as2.id_of(item)
        if like_id is None or like_id in held:
            return
        try:
            document = await self._fetch(like_id)
        except FetchError as exc:
            if exc.status not in _SKIPPED and exc.reason not in _MISSING:
                raise  # try again next pass: the cursor stays on this page
            log.info("cannot fetch support %s: %s", like_id, exc)
            return
        await self.ingest.accept(document, Provenance(Route.FETCH, None, normal_origin(like_id)))


__all__ = ["ItemHandler", "ListedItems", "PageHandler"]
