"""Follows both ways: remote actors following ours (Follow → Accept), and answers to our own
Follows of remote process Groups (Accept/Reject), and Undo{Follow} (ActivityPub §7.5-7.7)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from activitypub import as2
from activitypub.collections import AS_CONTEXT
from federation.instance import app as instance_app
from federation.instance.handlers_base import Arrival, HandlerBase, Refused
from federation.instance.outbox import mint_id
from federation.store.outbox import Follow, OutboxStore
from federation.store.sqlite import transaction
from federation.vocab.context import format_datetime

log = logging.getLogger(__name__)


class FollowHandlers(HandlerBase):
    """Follow, Accept, Reject and Undo{Follow}."""

    async def on_follow(self, arrival: Arrival) -> None:
        """Follow of a local actor: stored with the follower's inboxes, answered with Accept."""
        target = as2.first_id(arrival.activity, "object")
        local = await self.app[instance_app.ACTORS].find(target) if target else None
        if local is None or target is None:
            raise Refused("unknown_actor", f"{target!r} is not an actor of this instance")
        known = await self.outbox.find_follow(arrival.actor, target)
        if known is not None and known.follow_id == arrival.id and known.state == "accepted":
            return  # the same Follow delivered twice (actor inbox and shared inbox)
        follower = await self.actor_document(arrival.actor)
        inbox = as2.first_id(follower, "inbox")
        if inbox is None:
            raise Refused("no_inbox", f"{arrival.actor} names no inbox to answer")
        shared = as2.first_id(as2.embedded(follower, "endpoints") or {}, "sharedInbox")

        async def write(db: Any) -> None:
            await OutboxStore(db).put_follow(
                arrival.id, arrival.actor, target, inbox=inbox, shared_inbox=shared,
                state="accepted", now=time.time(),
            )  # fmt: skip

        accept = self._accept(arrival, target)
        publisher = self.app[instance_app.PUBLISHER]
        await publisher.publish(
            accept, actor=target, public=False, recipients=[arrival.actor], write=write,
            announce=False,
        )  # fmt: skip
        if arrival.actor in self.app[instance_app.CONFIG].report_to:
            log.info("aggregator follows", extra={"aggregator": arrival.actor, "target": target})

    def _accept(self, arrival: Arrival, target: str) -> dict[str, Any]:
        """Accept{Follow} with the Follow embedded, as Mastodon sends it (ActivityPub §7.6)."""
        follow = {"id": arrival.id, "type": "Follow", "actor": arrival.actor, "object": target}
        base = self.app[instance_app.CONFIG].base_url
        return {
            "@context": AS_CONTEXT,
            "id": mint_id(base, "activities"),
            "type": "Accept",
            "actor": target,
            "object": follow,
            "to": [arrival.actor],
            "published": format_datetime(self.app[instance_app.PUBLISHER].now()),
        }

    async def _our_follow(self, arrival: Arrival) -> Follow | None:
        """The Follow of ours an Accept/Reject answers: by id, else by (actor, object)."""
        follow_id = as2.first_id(arrival.activity, "object")
        follow = await self.outbox.get_follow(follow_id) if follow_id else None
        inner = as2.embedded(arrival.activity, "object")
        if follow is None and inner is not None:
            follower, target = as2.first_id(inner, "actor"), as2.first_id(inner, "object")
            if follower and target:
                follow = await self.outbox.find_follow(follower, target)
        if follow is None or not self.is_local(follow.follower):
            return None
        if follow.target != arrival.actor:
            raise Refused("not_target", f"{arrival.actor} was not followed by {follow.follow_id}")
        return follow

    async def on_accept(self, arrival: Arrival) -> None:
        """Accept of one of our Follows (we follow remote process Groups)."""
        follow = await self._our_follow(arrival)
        if follow is None:
            return  # an Accept of something else (an interaction policy, say): nothing to do
        async with transaction(self.app[instance_app.DB]) as db:
            await OutboxStore(db).set_follow_state(follow.follow_id, "accepted")

    async def on_reject(self, arrival: Arrival) -> None:
        """Reject of one of our Follows: forget it."""
        follow = await self._our_follow(arrival)
        if follow is None:
            return
        async with transaction(self.app[instance_app.DB]) as db:
            await OutboxStore(db).remove_follow(follow.follower, follow.target)

    async def undo_follow(
        self, arrival: Arrival, follow: Follow | None, inner: Mapping[str, Any] | None
    ) -> None:
        """Undo{Follow}: the follower stops following (ActivityPub §7.5 in reverse)."""
        if follow is None and inner is not None:
            target = as2.first_id(inner, "object")
            follow = await self.outbox.find_follow(arrival.actor, target) if target else None
        if follow is None:
            return  # never followed, or already undone: nothing to change
        if follow.follower != arrival.actor:
            raise Refused("not_owner", f"{arrival.actor} did not send {follow.follow_id}")
        async with transaction(self.app[instance_app.DB]) as db:
            await OutboxStore(db).remove_follow(follow.follower, follow.target)
