"""What every inbound handler shares: the refusal type, the arrival, the instance's services.

A permanent refusal is a :class:`Refused` (or the service's ``RuleViolation``): the handler
module logs it with its rule and the inbox record is done; anything else that escapes (a remote
server unreachable) is transient and retried by the processor (DESIGN.md §6 "Inbox").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from activitypub import as2
from activitypub.fetch import FetchError, FetchFailure
from activitypub.origin import OriginError, same_origin
from activitypub.runtime import FEDERATION, Federation
from federation.instance import app as instance_app
from federation.instance.deliberation import Deliberation
from federation.instance.rules import Resident
from federation.store.outbox import OutboxStore
from federation.vocab.actors import resident_territory_from_ap

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


def is_type(document: Mapping[str, Any] | None, *names: str) -> bool:
    """True when ``document`` exists and has one of ``names`` among its types."""
    return document is not None and as2.has_type(document, *names)


def owner_of(document: Mapping[str, Any]) -> str | None:
    """The ``attributedTo`` of an object (its author or owning Group)."""
    return as2.first_id(document, "attributedTo")


class HandlerBase:
    """The instance's services as the handlers reach them (through the app, once started)."""

    app: web.Application

    def route_for(self, activity: Mapping[str, Any]) -> Handle | None:
        """The handler for an activity's type (defined by the registry, handlers.py)."""
        raise NotImplementedError

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
