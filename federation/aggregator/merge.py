"""Debates and comment threads merged across instances, and deletions (DESIGN.md §7).

Debates merge by object id: the same comment reached directly, through a Group's ``Announce``
or from a backfilled collection is one row (:class:`~federation.store.aggregator_merge.MergeStore`),
and a later edit replaces an earlier one whatever the order they came in. Threads span instances
through ``context`` (FEP-7888) and ``inReplyTo``. Replies by actors off the roster (a Mastodon
user answering a proposal) are stored and shown, marked external when read; nothing here is
ever counted.

What is believed: an object whose route authenticated its author's origin (a signed delivery,
an outbox or collection of that origin) or whose activity carries a valid proof by its author;
anything else is refetched from its own id, as DESIGN.md §5 allows. A ``Delete`` hides its
object from then on (a Tombstone recorded by id, whichever came first); its author's origin
must say so, by the route, a proof, or its own 404/410 when we refetch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from activitypub import as2, jsontext
from activitypub.fetch import FetchError, FetchFailure
from federation.aggregator.documents import DocumentFetch
from federation.model import Comment, Debate
from federation.store.aggregator_merge import MergeStore, ObjectRow
from federation.tally.records import normal_origin
from federation.validation import ValidationError, validate
from federation.vocab import VocabError
from federation.vocab.comment import comment_from_ap
from federation.vocab.context import format_datetime
from federation.vocab.debate import debate_from_ap
from federation.vocab.deletion import deletion_from_ap

log = logging.getLogger(__name__)

#: (document, actor) -> True when the route or a proof vouches for the actor.
Vouch = Callable[[Mapping[str, Any], str], Awaitable[bool]]

_GONE_STATUSES = (404, 410)


def _latest(*times: datetime | None) -> str:
    return format_datetime(max(t for t in times if t is not None))


def read_merged(document: Mapping[str, Any]) -> Debate | Comment | None:
    """A valid debate or comment document as its dataclass, or None."""
    shape = "debate" if as2.has_type(document, "Debate") else "comment"
    try:
        validate(shape, document)
        return debate_from_ap(document) if shape == "debate" else comment_from_ap(document)
    except (ValidationError, VocabError):
        return None


def object_row(item: Debate | Comment, document: Mapping[str, Any], now: float) -> ObjectRow:
    """The stored form of a debate or comment."""
    text = jsontext.dumps(document, sort_keys=True)
    origin = normal_origin(item.id) or item.id
    if isinstance(item, Debate):
        version = _latest(item.published, item.updated, item.closed_at)
        return ObjectRow(
            item.id, "debate", origin, item.author, item.process, None,
            item.context or f"{item.id}/context", format_datetime(item.published), version,
            text, now,
        )  # fmt: skip
    version = _latest(item.published, item.updated)
    return ObjectRow(
        item.id, "comment", origin, item.author, None, item.in_reply_to, item.context,
        format_datetime(item.published), version, text, now,
    )  # fmt: skip


class Merger:
    """Store debates and comments once per id; record deletions."""

    def __init__(
        self,
        store: MergeStore,
        fetch: DocumentFetch,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self._fetch, self._clock = store, fetch, clock

    async def _refetched(self, object_id: str) -> tuple[Debate | Comment, Mapping[str, Any]] | None:
        """The object as its own origin serves it now (None when gone or not ours)."""
        try:
            document = await self._fetch(object_id)
        except FetchError as exc:
            log.info("cannot refetch %s: %s", object_id, exc)
            return None
        found = read_merged(document)
        return (found, document) if found is not None and found.id == object_id else None

    async def keep(self, document: Mapping[str, Any], *, believed: bool) -> bool:
        """Store a debate or comment document; refetched first unless ``believed``.

        True when a new object or a newer version was written.
        """
        found = read_merged(document)
        if found is None:
            return False
        stored = await self.store.version(found.id)
        if stored is not None and stored >= object_row(found, document, 0).version:
            return False  # a copy we hold already (or an older one): nothing to check again
        if not believed:
            refetched = await self._refetched(found.id)
            if refetched is None:
                return False
            found, document = refetched
        return await self.store.put(object_row(found, document, self._clock()))

    async def created(
        self, document: Mapping[str, Any], inner: Mapping[str, Any], vouch: Vouch
    ) -> bool:
        """A ``Create``/``Update`` of a debate or comment: only by its own author."""
        actor = as2.first_id(document, "actor")
        author = as2.first_id(inner, "attributedTo")
        if actor is None or author != actor:
            return False
        return await self.keep(inner, believed=await vouch(document, actor))

    async def listed(self, item: Mapping[str, Any], collection_origin: str) -> bool:
        """An object listed in a collection: believed on the collection's own origin only."""
        object_id = as2.first_id(item, "id")
        believed = object_id is not None and normal_origin(object_id) == collection_origin
        return await self.keep(item, believed=believed)

    async def deleted(self, document: Mapping[str, Any], vouch: Vouch) -> bool:
        """A ``Delete``: record the Tombstone when the object's origin stands behind it."""
        try:
            validate("delete", document)
            deletion = deletion_from_ap(document)
        except (ValidationError, VocabError):
            return False
        confirmed = await vouch(document, deletion.actor) or await self._gone(deletion.object_id)
        if not confirmed:
            return False
        return await self.store.delete(
            deletion.object_id, deletion.actor, deletion.id, self._clock()
        )

    async def _gone(self, object_id: str) -> bool:
        """Whether the object's own origin says it is gone (404/410 or a Tombstone)."""
        try:
            document = await self._fetch(object_id)
        except FetchError as exc:
            return exc.status in _GONE_STATUSES or exc.reason is FetchFailure.GONE
        return as2.has_type(document, "Tombstone")


def deletion_time(document: Mapping[str, Any], received_at: float) -> datetime:
    """When a ``Delete`` took effect: its ``published``, else its arrival (whole seconds)."""
    stamp = as2.optional_datetime(document, "published")
    if stamp is not None:
        return stamp.astimezone(UTC).replace(microsecond=0)
    return datetime.fromtimestamp(int(received_at), UTC)


__all__ = ["Merger", "deletion_time", "object_row", "read_merged"]
