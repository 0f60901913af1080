"""Publishing: prove, store and queue an activity in one transaction (DESIGN.md §5, §6).

:meth:`Publisher.publish` resolves the recipients to inboxes first (network, outside any
transaction), proves the activity with the acting actor's Ed25519 key (FEP-8b32), then in ONE
``transaction(db)`` runs the domain write, inserts the activity into the outbox and one
delivery row per inbox; for a public act by a member, the local Group's ``Announce`` of it
(FEP-1b12, the activity embedded unchanged with its proof, itself proved by the Group) is
stored and queued in the same transaction. After the commit the delivery worker is woken.
If anything fails before the commit, nothing at all is written.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from activitypub import as2
from activitypub.delivery import InboxTarget, recipients_to_inboxes
from activitypub.errors import Problem
from activitypub.fetch import FetchError
from activitypub.origin import OriginError, same_origin
from activitypub.runtime import Federation
from federation.config import InstanceConfig
from federation.instance.actors import LocalActor, LocalActors
from federation.model import Announcement
from federation.store.delivery import insert_deliveries
from federation.store.outbox import OutboxStore, activity_body
from federation.store.sqlite import transaction
from federation.vocab.announce import announce_to_ap
from federation.vocab.comment import creates_comment
from federation.vocab.context import format_datetime

log = logging.getLogger(__name__)

#: The domain write that must commit together with the activity (runs inside the transaction).
Write = Callable[[aiosqlite.Connection], Awaitable[None]]
#: Where the running protocol runtime is found; returns None when there is none (the CLI).
FederationSource = Callable[[], Federation | None]

FOLLOWERS = "/followers"


def uuid7_hex(now: float | None = None) -> str:
    """A time-ordered UUIDv7 (RFC 9562 §5.7) as 32 hex digits: ids sort by creation time."""
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return f"{value:032x}"


def mint_id(base_url: str, kind: str) -> str:
    """A fresh opaque id ``{base}/{kind}/{uuid7}`` (DESIGN.md §3: never a database id)."""
    return f"{base_url}/{kind}/{uuid7_hex()}"


def _no_federation() -> Federation | None:
    return None


class Publisher:
    """Addresses, proves, stores and queues the instance's activities (DESIGN.md §6)."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        actors: LocalActors,
        config: InstanceConfig,
        *,
        federation: FederationSource = _no_federation,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.actors = actors
        self.config = config
        self.outbox = OutboxStore(db)
        self._federation = federation
        self._clock = clock

    @property
    def group_id(self) -> str:
        """The local Group: it announces members' public acts and owns local processes."""
        return self.actors.group_id

    def is_local(self, url: str) -> bool:
        """True when ``url`` lives on this instance's origin."""
        try:
            return same_origin(url, self.config.base_url)
        except OriginError:
            return False

    async def publish(
        self,
        activity: Mapping[str, Any],
        *,
        actor: LocalActor | str,
        public: bool,
        recipients: Iterable[str],
        write: Write | None = None,
        also: Iterable[str] = (),
        announce: bool | None = None,
    ) -> dict[str, Any]:
        """Publish ``activity`` by a local actor and return it as proved and stored.

        ``recipients``: actor ids or local followers collections that must be reached (an
        unreachable remote actor refuses the act with a 503 problem, before anything is
        written); ``also``: best-effort ones (the aggregators). Local actors are not delivered
        over HTTP. ``announce`` defaults to public acts of anyone but the Group itself.
        """
        actor_id = actor if isinstance(actor, str) else actor.id
        inboxes = await self.inboxes_for(recipients, required=True)
        inboxes += [i for i in await self.inboxes_for(also, required=False) if i not in inboxes]
        proved = await self.prove(activity, actor_id)
        if announce is None:
            announce = public and actor_id != self.group_id
        announced = await self._announcement(proved) if announce else None
        async with transaction(self.db):
            if write is not None:
                await write(self.db)
            await self._store(proved, actor_id, public, inboxes)
            if announced is not None:
                await self._store(*announced)
        self.wake()
        return proved

    async def announce(self, activity: Mapping[str, Any], *, write: Write | None = None) -> None:
        """The Group's ``Announce`` of a received activity to its followers (FEP-1b12)."""
        announce_doc, group, public, inboxes = await self._announcement(activity)
        async with transaction(self.db):
            if write is not None:
                await write(self.db)
            await self._store(announce_doc, group, public, inboxes)
        self.wake()

    async def prove(self, activity: Mapping[str, Any], actor_id: str) -> dict[str, Any]:
        """The activity with the actor's FEP-8b32 proof; a client-made proof is kept as it is."""
        if "proof" in activity:
            # A C2S client that holds the resident's key signed it: the caller verified it,
            # and re-signing would take that guarantee away (DESIGN.md §6 "C2S").
            return dict(activity)
        keys = await self.actors.keys_for(actor_id)
        return keys.prove(activity)

    async def _announcement(
        self, activity: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str, bool, list[str]]:
        group = self.group_id
        followers = group + FOLLOWERS
        announcement = Announcement(
            id=mint_id(self.config.base_url, "activities"),
            group=group,
            activity=activity,
            published=self.now(),
            audience=group,
            to=(as2.PUBLIC,),
            cc=(followers,),
        )
        proved = await self.prove(announce_to_ap(announcement), group)
        return proved, group, True, await self.inboxes_for([followers], required=True)

    async def _store(
        self, activity: Mapping[str, Any], actor_id: str, public: bool, inboxes: list[str]
    ) -> None:
        """Outbox row and delivery rows, inside the caller's transaction."""
        activity_id = str(activity["id"])
        body = activity_body(activity)
        published = as2.optional_str(activity, "published") or format_datetime(self.now())
        await self.outbox.add_activity(
            activity_id, actor_id, as2.types(activity)[0], as2.first_id(activity, "object"),
            body, public=public, published=published, comment=creates_comment(activity),
        )  # fmt: skip
        await insert_deliveries(self.db, activity_id, actor_id, body, inboxes, self._clock())

    def wake(self) -> None:
        """Tell the delivery worker new rows are queued (after the commit)."""
        federation = self._federation()
        if federation is not None and federation.worker is not None:
            federation.worker.wake()

    def now(self) -> datetime:
        """The publisher's clock as an aware datetime, seconds precision."""
        return datetime.fromtimestamp(int(self._clock()), UTC)

    # --- recipients -> inboxes ----------------------------------------------------------------

    async def inboxes_for(self, recipients: Iterable[str], *, required: bool) -> list[str]:
        """Inboxes of recipients, shared inboxes collapsed (AP §7.1.3); never our own."""
        targets: list[InboxTarget] = []
        remote: list[str] = []
        for recipient in dict.fromkeys(recipients):
            if as2.is_public(recipient):
                continue
            if self.is_local(recipient):
                if recipient.endswith(FOLLOWERS):
                    owner = recipient.removesuffix(FOLLOWERS)
                    for follow in await self.outbox.followers(owner):
                        if follow.inbox is not None:
                            targets.append(InboxTarget(follow.inbox, follow.shared_inbox))
                # A local actor (our Group) handles the act in-process: no HTTP to ourselves.
                continue
            known = await self.outbox.known_inbox(recipient)
            if known is not None and known[0] is not None:
                targets.append(InboxTarget(known[0], known[1]))
            else:
                remote.append(recipient)
        for actor_id in remote:
            target = await self._remote_target(actor_id, required=required)
            if target is not None:
                targets.append(target)
        return [i for i in recipients_to_inboxes(targets) if not self.is_local(i)]

    async def _remote_target(self, actor_id: str, *, required: bool) -> InboxTarget | None:
        federation = self._federation()
        if federation is None or federation.actors is None:
            return _unreachable(actor_id, required, "the server is not running")
        try:
            document = await federation.actors.actor(actor_id)
        except FetchError as exc:
            return _unreachable(actor_id, required, str(exc))
        inbox = as2.first_id(document, "inbox")
        if inbox is None:
            return _unreachable(actor_id, required, "its actor document names no inbox")
        endpoints = as2.embedded(document, "endpoints") or {}
        return InboxTarget(inbox, as2.first_id(endpoints, "sharedInbox"))


def _unreachable(actor_id: str, required: bool, why: str) -> InboxTarget | None:
    """Skip a best-effort recipient; refuse the act (nothing written) for a required one."""
    if not required:
        log.warning("skipping unreachable recipient", extra={"recipient": actor_id, "why": why})
        return None
    raise Problem(
        503,
        "Recipient unreachable",
        f"{actor_id} cannot be reached ({why}), so nothing was published; try again later.",
        reason="recipient_unreachable",
    )
