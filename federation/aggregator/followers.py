"""Who follows the aggregator's Service, and the answers it gives (ActivityPub §7.2, §7.5).

Anyone may follow the Service (a regional aggregator that counts cities, §8; a journalist on
Mastodon): the Service accepts at once with a proved ``Accept`` and from then on delivers every
Tally it publishes to the follower's (shared) inbox. ``Undo{Follow}`` ends it. Both must come
in a delivery the follower itself HTTP-signed: nobody follows or unfollows for somebody else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from activitypub import as2
from activitypub.fetch import FetchError
from activitypub.runtime import Federation
from federation.store.aggregator_publish import FollowerRow, PublishStore
from federation.vocab.context import document_context

if TYPE_CHECKING:
    from federation.aggregator.wiring import Aggregator

log = logging.getLogger(__name__)


class Followers:
    """The Service's followers: record Follows, answer them, list where Tallies go."""

    def __init__(
        self,
        aggregator: Aggregator,
        federation: Federation,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.aggregator, self.federation, self._clock = aggregator, federation, clock
        self.store = PublishStore(aggregator.db)

    async def follow(self, document: Mapping[str, Any], sender: str | None) -> bool:
        """A ``Follow`` of the Service delivered by its own actor: record it and ``Accept``."""
        service = self.aggregator.service
        actor, follow_id = as2.first_id(document, "actor"), as2.first_id(document, "id")
        if actor is None or follow_id is None or actor != sender:
            return False
        if as2.first_id(document, "object") != service.id:
            return False  # the Service follows nothing on anyone's behalf
        try:
            inboxes = await self.federation.inboxes_of([actor])
        except FetchError as exc:
            log.info("follower %s has no reachable inbox: %s", actor, exc)
            return False
        if not inboxes:
            return False
        await self.store.add_follower(FollowerRow(actor, follow_id, inboxes[0], self._clock()))
        accept = {
            "@context": document_context(),
            "id": service.new_id("accepts"),
            "type": "Accept",
            "actor": service.id,
            "object": {k: v for k, v in document.items() if k not in ("@context", "proof")},
            "to": [actor],
        }
        proved = (await service.keys()).prove(accept)
        await self.federation.deliver(proved, inboxes[:1])
        return True

    async def unfollow(self, document: Mapping[str, Any], sender: str | None) -> bool:
        """``Undo{Follow}`` by the follower itself: Tallies stop going to it."""
        actor = as2.first_id(document, "actor")
        inner = as2.embedded(document, "object")
        follow_id = as2.first_id(inner, "id") if inner is not None else None
        follow_id = follow_id or as2.first_id(document, "object")
        if actor is None or actor != sender:
            return False
        if inner is not None and as2.first_id(inner, "actor") != actor:
            return False
        return await self.store.remove_follower(actor, follow_id)

    async def handle(self, document: Mapping[str, Any], sender: str | None) -> bool | None:
        """A ``Follow`` of the Service or its ``Undo``: done or not; None for anything else."""
        if as2.has_type(document, "Follow"):
            return await self.follow(document, sender)
        if is_follow_undo(document):
            return await self.unfollow(document, sender)
        return None

    async def inboxes(self) -> list[str]:
        """Where a Tally goes: each follower's inbox, once per shared inbox."""
        return list(dict.fromkeys(row.inbox for row in await self.store.followers()))


def is_follow_undo(document: Mapping[str, Any]) -> bool:
    """True for an ``Undo`` whose object is a ``Follow`` (embedded)."""
    inner = as2.embedded(document, "object")
    return as2.has_type(document, "Undo") and inner is not None and as2.has_type(inner, "Follow")


__all__ = ["Followers", "is_follow_undo"]
