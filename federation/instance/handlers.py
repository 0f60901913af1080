"""Inbound federation: what the instance does with each recorded activity (DESIGN.md §6 "Inbox").

The inbox pipeline has authenticated, authorised (FEP-fe34) and recorded the activity; the
processor hands the row to the handler registered for its type. Each handler validates the
document against its shape (:func:`federation.validation.validate`) and parses it with the
vocabulary's converter BEFORE any state changes, then calls the ``Deliberation`` service,
which applies the same rules as for local acts. A permanent refusal (a rule, an invalid
document, an unknown target) is logged with its rule and the record is done; only transient
failures (a remote server unreachable) raise, so that the processor retries them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from activitypub import as2
from activitypub.dispatch import InboxDispatcher
from activitypub.errors import Problem
from activitypub.runtime import FEDERATION
from activitypub.storage import InboxRecord
from federation.instance import app as instance_app
from federation.instance.handlers_announce import AnnounceHandlers
from federation.instance.handlers_base import (
    ACTOR_TYPES,
    Arrival,
    Handle,
    Refusal,
    Refused,
    is_type,
    owner_of,
)
from federation.instance.handlers_follow import FollowHandlers
from federation.instance.rules import RuleViolation
from federation.store.comments import CommentStore
from federation.store.proposals import ProposalStore
from federation.validation import ValidationError, shape_of, validate, validate_inbound
from federation.vocab import VocabError
from federation.vocab.answer import official_answer_from_ap
from federation.vocab.comment import comment_from_ap
from federation.vocab.comment_vote import comment_vote_from_ap, undo_comment_vote_from_ap
from federation.vocab.debate import debate_from_ap
from federation.vocab.deletion import deletion_from_ap
from federation.vocab.process import process_from_ap
from federation.vocab.proposal import proposal_from_ap
from federation.vocab.support import support_from_ap, undo_support_from_ap

__all__ = ["INBOUND", "Arrival", "InboundHandlers", "Refusal", "Refused", "register_handlers",
           "setup_handlers"]  # fmt: skip

log = logging.getLogger(__name__)


class InboundHandlers(FollowHandlers, AnnounceHandlers):
    """The instance's handlers, registered per activity type on the inbox dispatcher."""

    def __init__(self, app: web.Application, *, history: int = 200) -> None:
        self.app = app
        #: The latest refusals, newest last (also logged with their rule).
        self.refusals: deque[Refusal] = deque(maxlen=history)
        self._registered: list[InboxDispatcher] = []
        self.routes: dict[str, Handle] = {
            "Create": self.on_create,
            "Like": self.on_like,
            "Dislike": self.on_like,
            "Undo": self.on_undo,
            "Update": self.on_update,
            "Delete": self.on_delete,
            "Follow": self.on_follow,
            "Accept": self.on_accept,
            "Reject": self.on_reject,
            "Announce": self.on_announce,
        }

    # --- wiring -------------------------------------------------------------------------------

    def register(self, dispatcher: InboxDispatcher) -> None:
        """Register one recorded-row handler per activity type (style.md §4: a registry)."""
        if any(known is dispatcher for known in self._registered):
            return  # app.py's build step and setup_handlers' startup hook may both ask
        self._registered.append(dispatcher)
        for kind, handle in self.routes.items():
            dispatcher.on(kind)(self._recorded(handle))
        # Remote supports need their actor's residency: fetch a batch's senders together.
        dispatcher.preparing(self._warm)

    async def _warm(self, records: Sequence[InboxRecord]) -> None:
        """The batch's senders into the actor cache (the runtime exists by the time rows run)."""
        await self.federation.warm_actors(records)

    def _recorded(self, handle: Handle) -> Callable[[InboxRecord], Awaitable[None]]:
        async def run(record: InboxRecord) -> None:
            await self.guarded(handle, Arrival(record.activity, record.actor))

        return run

    async def receive(self, activity: Mapping[str, Any], *, via: str | None = None) -> None:
        """Handle an activity as its recorded row would be: its type's handler, guarded."""
        actor = as2.first_id(activity, "actor") or ""
        handle = self.route_for(activity)
        if handle is not None:
            await self.guarded(handle, Arrival(activity, actor, via))

    def route_for(self, activity: Mapping[str, Any]) -> Handle | None:
        """The handler for the first of the activity's types that has one."""
        return next((self.routes[t] for t in as2.types(activity) if t in self.routes), None)

    async def guarded(self, handle: Handle, arrival: Arrival) -> None:
        """Run a handler; a permanent refusal is logged and remembered, never raised."""
        try:
            await handle(arrival)
        except RuleViolation as exc:
            self._refuse(arrival, exc.rule, exc.detail)
        except ValidationError as exc:
            self._refuse(arrival, f"invalid_{exc.shape}", f"{exc.field}: {exc.detail}")
        except VocabError as exc:
            self._refuse(arrival, "invalid_document", str(exc))
        except Refused as exc:
            self._refuse(arrival, exc.rule, exc.detail)
        except Problem as exc:
            if exc.status >= 500:
                raise  # e.g. a recipient unreachable while answering: retried later
            reason = str(exc.extensions.get("reason") or exc.extensions.get("rule") or "refused")
            self._refuse(arrival, reason, exc.detail or exc.title)

    def _refuse(self, arrival: Arrival, rule: str, detail: str) -> None:
        refusal = Refusal(arrival.id, arrival.actor, rule, detail, arrival.via)
        self.refusals.append(refusal)
        log.info(
            "inbound activity refused",
            extra={"activity_id": arrival.id, "actor": arrival.actor, "rule": rule,
                   "detail": detail, "via": arrival.via},
        )  # fmt: skip

    # --- Create -------------------------------------------------------------------------------

    async def on_create(self, arrival: Arrival) -> None:
        """Create{Proposal|Debate|Note}: a remote resident's act or an external reply."""
        obj = await self.object_of(arrival)
        shape = validate_inbound(self.framed(arrival.activity, obj))
        if shape not in ("proposal", "debate", "comment", "process"):
            log.debug("ignoring a Create of something not ours", extra={"id": arrival.id})
            return
        if owner_of(obj) != arrival.actor:
            raise Refused("not_author", f"{arrival.actor} is not the author of {obj.get('id')}")
        if shape == "process":
            await self.new_remote_process(arrival, obj)
        elif shape == "proposal":
            await self.deliberation.receive_proposal(proposal_from_ap(obj), arrival.activity)
        elif shape == "debate":
            await self.deliberation.receive_debate(debate_from_ap(obj), arrival.activity)
        else:
            comment = comment_from_ap(obj)
            # A reply from outside Barri (Mastodon): no verified residency in its actor.
            external = (await self.resident(arrival.actor)).verified_territory is None
            await self.deliberation.receive_comment(comment, arrival.activity, external=external)

    async def new_remote_process(self, arrival: Arrival, obj: Mapping[str, Any]) -> None:
        """A Group our Group follows opened a process: cache it so residents can take part."""
        group = self.app[instance_app.ACTORS].group_id
        follow = await self.outbox.find_follow(group, arrival.actor)
        if follow is None or follow.state != "accepted":
            return  # processes of Groups we do not follow are not ours to show
        await self.deliberation.remember_remote_object(process_from_ap(obj))

    # --- Like / Dislike -----------------------------------------------------------------------

    async def on_like(self, arrival: Arrival) -> None:
        """A private Like is a support; a public Like or a Dislike is a comment vote."""
        shape = shape_of(arrival.activity)
        if shape == "support":
            validate(shape, arrival.activity)
            support = support_from_ap(arrival.activity)
            resident = await self.resident(arrival.actor)
            await self.deliberation.receive_support(support, arrival.activity, resident=resident)
        elif shape == "comment-vote":
            validate(shape, arrival.activity)
            vote = comment_vote_from_ap(arrival.activity)
            await self.deliberation.receive_comment_vote(vote, arrival.activity)

    # --- Undo ---------------------------------------------------------------------------------

    async def on_undo(self, arrival: Arrival) -> None:
        """Undo of a Follow, a support or a comment vote; only by its own actor (FEP-fe34)."""
        inner = as2.embedded(arrival.activity, "object")
        target = as2.first_id(arrival.activity, "object")
        if target is None:
            raise Refused("object_missing", "the Undo names no object")
        follow = await self.outbox.get_follow(target)
        if is_type(inner, "Follow") or follow is not None:
            await self.undo_follow(arrival, follow, inner)
            return
        shape = await self._undo_shape(arrival.activity, inner, target)
        if shape == "undo-support":
            validate(shape, arrival.activity)
            undo = undo_support_from_ap(arrival.activity)
            await self.deliberation.receive_undo_support(undo, arrival.activity)
        elif shape == "undo-comment-vote":
            validate(shape, arrival.activity)
            retraction = undo_comment_vote_from_ap(arrival.activity)
            await self.deliberation.receive_undo_comment_vote(retraction, arrival.activity)

    async def _undo_shape(
        self, activity: Mapping[str, Any], inner: Mapping[str, Any] | None, target: str
    ) -> str | None:
        """What an Undo withdraws; a bare id is looked up before trusting its addressing."""
        if inner is None:
            db = self.app[instance_app.DB]
            if await ProposalStore(db).get_support(target) is not None:
                return "undo-support"
            if await CommentStore(db).get_vote(target) is not None:
                return "undo-comment-vote"
        return shape_of(activity)

    # --- Update -------------------------------------------------------------------------------

    async def on_update(self, arrival: Arrival) -> None:
        """An author's edit, a process refresh, the owning Group's official answer, an actor."""
        obj = await self.object_of(arrival)
        if is_type(obj, *ACTOR_TYPES):
            if obj.get("id") == arrival.actor and self.federation.actors is not None:
                self.federation.actors.forget(arrival.actor)  # new keys or profile: refetch
            return
        framed = self.framed(arrival.activity, obj)
        if arrival.actor in as2.ids(obj, "audience") and shape_of(framed) == "official-answer":
            validate("official-answer", framed)
            answer = official_answer_from_ap(framed)
            await self.deliberation.receive_answer(answer, arrival.activity)
            return
        owner = owner_of(obj)
        if owner is not None and owner != arrival.actor:
            raise Refused("not_owner", f"only {owner} may update {obj.get('id')}")
        parse = _UPDATABLE.get(validate_inbound(framed) or "")
        if parse is None:
            return
        await self.deliberation.receive_update(parse(obj), arrival.activity)

    # --- Delete -------------------------------------------------------------------------------

    async def on_delete(self, arrival: Arrival) -> None:
        """Delete of a proposal, debate or comment by its author (Tombstone, 410 afterwards)."""
        validate("delete", arrival.activity)
        deletion = deletion_from_ap(arrival.activity)
        if deletion.object_id == arrival.actor:
            # An actor deleting itself: forget what we cached of it.
            if self.federation.actors is not None:
                self.federation.actors.forget(arrival.actor)
            return
        await self.deliberation.receive_delete(deletion.object_id, arrival.actor, arrival.activity)


_UPDATABLE: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "proposal": proposal_from_ap,
    "debate": debate_from_ap,
    "comment": comment_from_ap,
    "process": process_from_ap,
}

INBOUND = web.AppKey("barri.inbound", InboundHandlers)


def register_handlers(app: web.Application, dispatcher: InboxDispatcher) -> InboundHandlers:
    """Register the handlers on ``dispatcher`` (call before the runtime starts: no row is
    claimed before its handler exists)."""
    handlers = app.get(INBOUND)
    if handlers is None:
        handlers = app[INBOUND] = InboundHandlers(app)
    handlers.register(dispatcher)
    return handlers


def setup_handlers(app: web.Application) -> None:
    """Create the handlers (``app[INBOUND]``); register them on ``app[FEDERATION]`` at startup.

    The processor starts inside ``federation_ctx``, before any ``on_startup`` hook, so app.py
    also calls :func:`register_handlers` on the Federation it builds, before it starts;
    registering twice is harmless (one registration per dispatcher).
    """
    if INBOUND not in app:
        app[INBOUND] = InboundHandlers(app)

    async def on_startup(app: web.Application) -> None:
        register_handlers(app, app[FEDERATION].dispatcher)
        app[FEDERATION].processor.wake()  # rows recorded while starting are handled now

    app.on_startup.append(on_startup)
