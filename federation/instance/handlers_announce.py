"""FEP-1b12 Announces from remote Groups: the relayed activity is trusted only on its own
evidence (its FEP-8b32 proof, else its origin's copy), then handled as if received directly.

DESIGN.md §5: "an embedded object is trusted only if it shares that origin, carries its own
valid proof, or is re-fetched"; the pipeline's FEP-fe34 checks run again on the inner activity.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from activitypub import as2
from activitypub.errors import Problem
from activitypub.inbox import authorise
from activitypub.integrity import ProofError, ProofFailure, verify_document
from activitypub.origin import same_origin
from federation.instance.handlers_base import Arrival, HandlerBase, Refused
from federation.instance.inbound import admits_official_answer
from federation.validation import validate

log = logging.getLogger(__name__)


class AnnounceHandlers(HandlerBase):
    """Announce of an activity by a Group (or a boost by id)."""

    async def on_announce(self, arrival: Arrival) -> None:
        """A Group's Announce: verify the inner activity on its own, then handle it as received."""
        if arrival.via is not None:
            raise Refused("nested_announce", "an Announce inside an Announce is not relayed")
        embedded = as2.embedded(arrival.activity, "object")
        if embedded is not None:
            validate("announce", arrival.activity)
            inner = await self.authentic(embedded)
        else:
            inner_id = as2.first_id(arrival.activity, "object")
            if inner_id is None:
                raise Refused("object_missing", "the Announce names no activity")
            inner = await self.refetched(inner_id)
        actor = as2.first_id(inner, "actor")
        if actor is None:
            return  # a boost of a bare object (Mastodon): not an activity to replay
        if self.is_local(actor):
            return  # our own activity coming back: we are its source of truth
        self._authorise_inner(inner, actor)
        handle = self.route_for(inner)
        if handle is None:
            return
        log.info(
            "handling an announced activity",
            extra={"announce": arrival.id, "group": arrival.actor, "activity_id": inner["id"]},
        )
        await handle(Arrival(inner, actor, via=arrival.id))

    async def authentic(self, embedded: Mapping[str, Any]) -> dict[str, Any]:
        """The embedded activity if its own FEP-8b32 proof verifies, else the origin's copy."""
        if "proof" in embedded:
            try:
                owner = as2.first_id(embedded, "actor")
                federation = self.federation
                await verify_document(
                    embedded, federation.fetch_actor, owner=owner, memo=federation.canonical
                )
                return dict(embedded)
            except ProofError as exc:
                if exc.reason in (ProofFailure.SIGNATURE, ProofFailure.NOT_OWNER):
                    raise Refused(str(exc.reason), exc.detail) from exc
                # An unknown suite or an unreachable key: the origin's copy decides instead.
        activity_id = as2.first_id(embedded, "id")
        if activity_id is None:
            raise Refused("object_missing", "the announced activity has no id")
        return await self.refetched(activity_id)

    async def refetched(self, activity_id: str) -> dict[str, Any]:
        """The activity as its origin serves it; its actor must share that origin (FEP-fe34)."""
        document = await self.fetch_document(activity_id)
        actor = as2.first_id(document, "actor")
        if actor is not None and not same_origin(activity_id, actor):
            raise Refused("origin_mismatch", f"{activity_id} is not on its actor's origin")
        return document

    def _authorise_inner(self, inner: Mapping[str, Any], actor: str) -> None:
        """The pipeline's FEP-fe34 checks, for an activity that arrived inside an Announce."""
        if not isinstance(inner.get("id"), str):
            raise Refused("object_missing", "the announced activity has no id")
        try:
            authorise(inner, actor, admits_official_answer)
        except Problem as exc:
            reason = str(exc.extensions.get("reason") or "not_authorised")
            raise Refused(reason, exc.detail or exc.title) from exc
