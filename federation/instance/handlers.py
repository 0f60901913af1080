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
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from activitypub import as2
from activitypub.collections import AS_CONTEXT
from activitypub.dispatch import InboxDispatcher
from activitypub.errors import Problem
from activitypub.fetch import FetchError, FetchFailure
from activitypub.inbox import authorise
from activitypub.integrity import ProofError, ProofFailure, verify_document
from activitypub.origin import OriginError, same_origin
from activitypub.runtime import FEDERATION, Federation
from activitypub.storage import InboxRecord
from federation.instance import app as instance_app
from federation.instance.deliberation import Deliberation
from federation.instance.outbox import mint_id
from federation.instance.rules import Resident, RuleViolation
from federation.store.comments import CommentStore
from federation.store.outbox import Follow, OutboxStore
from federation.store.proposals import ProposalStore
from federation.store.sqlite import transaction
from federation.validation import ValidationError, shape_of, validate, validate_inbound
from federation.vocab import VocabError
from federation.vocab.actors import resident_territory_from_ap
from federation.vocab.answer import official_answer_from_ap
from federation.vocab.comment import comment_from_ap
from federation.vocab.comment_vote import comment_vote_from_ap, undo_comment_vote_from_ap
from federation.vocab.context import format_datetime
from federation.vocab.debate import debate_from_ap
from federation.vocab.deletion import deletion_from_ap
from federation.vocab.process import process_from_ap
from federation.vocab.proposal import proposal_from_ap
from federation.vocab.support import support_from_ap, undo_support_from_ap

log = logging.getLogger(__name__)

ACTOR_TYPES = frozenset({"Person", "Group", "Application", "Service", "Organization"})
# Fetch failures that will not heal by retrying: the document is gone or unacceptable.
_PERMANENT_FETCH = frozenset(
    {FetchFailure.GONE, FetchFailure.BLOCKED, FetchFailure.SCHEME, FetchFailure.TOO_LARGE,
     FetchFailure.CONTENT_TYPE, FetchFailure.ID_MISMATCH, FetchFailure.REDIRECTS,
     FetchFailure.INVALID}
)  # fmt: skip
_RETRY_STATUSES = frozenset({401, 408, 429})


class Refused(Exception):
    """A permanent refusal of an inbound activity: ``rule`` names why (logged, never retried)."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True)
class Refusal:
    """A refused inbound activity, as remembered for operators and tests."""

    activity_id: str
    actor: str
    rule: str
    detail: str
    via: str | None


@dataclass(frozen=True)
class Arrival:
    """An activity to handle: its document, its authenticated actor, the Announce it came in."""

    activity: Mapping[str, Any]
    actor: str
    via: str | None = None

    @property
    def id(self) -> str:
        """The activity's id."""
        return str(self.activity.get("id"))


Handle = Callable[[Arrival], Awaitable[None]]


def permanent_fetch_failure(exc: FetchError) -> bool:
    """True when a failed fetch will fail again (gone, refused, 4xx but 401/408/429)."""
    if exc.reason in _PERMANENT_FETCH:
        return True
    status = exc.status
    return (
        exc.reason is FetchFailure.STATUS
        and status is not None
        and (400 <= status < 500 and status not in _RETRY_STATUSES)
    )


def _is_type(document: Mapping[str, Any] | None, *names: str) -> bool:
    return document is not None and as2.has_type(document, *names)


def _owner(document: Mapping[str, Any]) -> str | None:
    return as2.first_id(document, "attributedTo")


class InboundHandlers:
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

    # --- what the handlers share --------------------------------------------------------------

    @property
    def federation(self) -> Federation:
        """The running protocol runtime."""
        return self.app[FEDERATION]

    @property
    def deliberation(self) -> Deliberation:
        """The instance's ``Deliberation`` service: the same rules as for local acts."""
        return self.app[instance_app.DELIBERATION]

    @property
    def outbox(self) -> OutboxStore:
        """Follows and published activities."""
        return OutboxStore(self.app[instance_app.DB])

    def is_local(self, url: str) -> bool:
        """True when ``url`` is on this instance's origin."""
        try:
            return same_origin(url, self.app[instance_app.CONFIG].base_url)
        except OriginError:
            return False

    async def actor_document(self, actor_id: str) -> Mapping[str, Any]:
        """A remote actor's document (cached); gone or refused is a refusal, else retried."""
        cache = self.federation.actors
        if cache is None:
            raise RuntimeError("Federation.start() has not run")
        try:
            return await cache.actor(actor_id)
        except FetchError as exc:
            if permanent_fetch_failure(exc):
                raise Refused("actor_unavailable", f"{actor_id}: {exc}") from exc
            raise

    async def resident(self, actor_id: str) -> Resident:
        """Who a remote actor is: its ``verifiedResidentOf`` (None when it states none)."""
        document = await self.actor_document(actor_id)
        return Resident(actor_id, resident_territory_from_ap(document))

    async def fetch_document(self, url: str) -> dict[str, Any]:
        """GET an AS2 document from its origin (signed); permanent failures are refusals."""
        fetcher = self.federation.fetcher
        if fetcher is None:
            raise RuntimeError("Federation.start() has not run")
        try:
            return (await fetcher.get_activity(url)).document
        except FetchError as exc:
            if permanent_fetch_failure(exc):
                raise Refused("object_unavailable", f"{url}: {exc}") from exc
            raise

    async def object_of(self, arrival: Arrival) -> dict[str, Any]:
        """The activity's object, embedded or (by id) fetched from its origin (ActivityPub §7)."""
        embedded = as2.embedded(arrival.activity, "object")
        if embedded is not None:
            return embedded
        object_id = as2.first_id(arrival.activity, "object")
        if object_id is None:
            raise Refused("object_missing", "the activity names no object")
        return await self.fetch_document(object_id)

    @staticmethod
    def framed(activity: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
        """The activity with ``obj`` embedded (for shape validation of a fetched object)."""
        inner = {key: value for key, value in obj.items() if key != "@context"}
        return {**activity, "object": inner}

    # --- Create -------------------------------------------------------------------------------

    async def on_create(self, arrival: Arrival) -> None:
        """Create{Proposal|Debate|Note}: a remote resident's act or an external reply."""
        obj = await self.object_of(arrival)
        shape = validate_inbound(self.framed(arrival.activity, obj))
        if shape not in ("proposal", "debate", "comment"):
            log.debug("ignoring a Create of something not ours", extra={"id": arrival.id})
            return
        if _owner(obj) != arrival.actor:
            raise Refused("not_author", f"{arrival.actor} is not the author of {obj.get('id')}")
        if shape == "proposal":
            await self.deliberation.receive_proposal(proposal_from_ap(obj), arrival.activity)
        elif shape == "debate":
            await self.deliberation.receive_debate(debate_from_ap(obj), arrival.activity)
        else:
            comment = comment_from_ap(obj)
            # A reply from outside Barri (Mastodon): no verified residency in its actor.
            external = (await self.resident(arrival.actor)).verified_territory is None
            await self.deliberation.receive_comment(comment, arrival.activity, external=external)

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
        if _is_type(inner, "Follow") or follow is not None:
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

    # --- Update -------------------------------------------------------------------------------

    async def on_update(self, arrival: Arrival) -> None:
        """An author's edit, a process refresh, the owning Group's official answer, an actor."""
        obj = await self.object_of(arrival)
        if _is_type(obj, *ACTOR_TYPES):
            if obj.get("id") == arrival.actor and self.federation.actors is not None:
                self.federation.actors.forget(arrival.actor)  # new keys or profile: refetch
            return
        framed = self.framed(arrival.activity, obj)
        if arrival.actor in as2.ids(obj, "audience") and shape_of(framed) == "official-answer":
            validate("official-answer", framed)
            answer = official_answer_from_ap(framed)
            await self.deliberation.receive_answer(answer, arrival.activity)
            return
        owner = _owner(obj)
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
        await self.deliberation.receive_delete(deletion.object_id, arrival.actor)

    # --- Follow / Accept / Reject ---------------------------------------------------------------

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

    # --- Announce (FEP-1b12) ----------------------------------------------------------------------

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
                await verify_document(embedded, self.federation.fetch_actor, owner=owner)
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
        if shape_of(inner) == "official-answer":
            # The documented exception (schemas/VOCABULARY.md): the Group owning the process
            # updates its member's proposal; the domain checks that ownership instead.
            if not same_origin(inner["id"], actor):
                raise Refused("origin_mismatch", "the activity id and its actor differ in origin")
            return
        try:
            authorise(inner, actor)
        except Problem as exc:
            reason = str(exc.extensions.get("reason") or "not_authorised")
            raise Refused(reason, exc.detail or exc.title) from exc


_UPDATABLE: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "proposal": proposal_from_ap,
    "debate": debate_from_ap,
    "comment": comment_from_ap,
    "process": process_from_ap,
}

INBOUND = web.AppKey("barri.inbound", InboundHandlers)


def register_handlers(app: web.Application, dispatcher: InboxDispatcher) -> InboundHandlers:
    """Register the instance's handlers on ``dispatcher`` (before the processor starts)."""
    handlers = app[INBOUND] if INBOUND in app else InboundHandlers(app)
    handlers.register(dispatcher)
    return handlers


def setup_handlers(app: web.Application) -> None:
    """Create the handlers now and register them on ``app[FEDERATION].dispatcher`` at startup."""
    app[INBOUND] = InboundHandlers(app)

    async def on_startup(app: web.Application) -> None:
        app[INBOUND].register(app[FEDERATION].dispatcher)
        # Rows recorded before the handlers existed (a restart) are processed now.
        app[FEDERATION].processor.wake()

    app.on_startup.append(on_startup)
