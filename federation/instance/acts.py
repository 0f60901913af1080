"""What every part of the Deliberation service shares: stores, clock, ids, addressing, input.

:class:`ActsBase` is the base of the service's parts (processes, proposals, supports, debates,
comments, inbound); :class:`federation.instance.deliberation.Deliberation` puts them together.
Refusals are :class:`~federation.instance.rules.RuleViolation` (``.problem()`` renders them);
bad input and unknown ids are :class:`~activitypub.errors.Problem` with a ``reason``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import aiosqlite

from activitypub import as2
from activitypub.errors import Problem
from activitypub.origin import OriginError, same_origin
from federation.config import InstanceConfig
from federation.instance.actors import LocalActors, resident_territory
from federation.instance.content import (
    NAME_MAX,
    SOURCE_MAX,
    ContentError,
    check_length,
    normalise_text,
    render_field,
)
from federation.instance.outbox import FederationSource, Publisher, Write, mint_id
from federation.instance.ports import Role, User
from federation.instance.rules import RULES, Resident, RuleViolation
from federation.model import LangText, Process
from federation.store.comments import CommentStore
from federation.store.domain import DomainStore, ProcessRecord
from federation.store.proposals import ProposalRecord, ProposalStore
from federation.store.sqlite import transaction
from federation.vocab.context import document_context, format_datetime
from federation.vocab.wire import embed

#: Inbound acts are judged at their ``published`` time when it is this recent (delivery
#: retries take a while), else at their arrival: a backdated or future stamp buys nothing.
INBOUND_GRACE = timedelta(hours=24)
CLOCK_SKEW = timedelta(minutes=5)
FOLLOWERS = "/followers"


def refuse(rule: str, detail: str) -> NoReturn:
    """Raise a RuleViolation for a service-level rule, with its status from ``rules.RULES``."""
    raise RuleViolation(rule, RULES[rule], detail)


def invalid(
    field: str, detail: str, *, status: int = 422, rule: str | None = None, limit: int | None = None
) -> NoReturn:
    """Raise the problem for bad input, naming the field (reason ``invalid_input``).

    ``rule`` and ``limit`` name the content rule that refused it (``too_long`` and its limit),
    so a page can say exactly what to change.
    """
    extra: dict[str, Any] = {}
    if rule is not None:
        extra["rule"] = rule
    if limit is not None:
        extra["limit"] = limit
    raise Problem(
        status, "Invalid input", f"{field}: {detail}", reason="invalid_input", field=field,
        **extra,
    )  # fmt: skip


def invalid_content(exc: ContentError) -> NoReturn:
    """Raise a content rule's refusal as a 400 ``invalid_input`` keeping its rule and limit."""
    invalid(exc.field, exc.detail, status=400, rule=exc.rule, limit=exc.limit)


def not_found(kind: str, object_id: str) -> NoReturn:
    """Raise 404 for an id this instance does not know."""
    raise Problem(404, "Not Found", f"there is no {kind} {object_id} here", reason="not_found")


def _system_clock() -> datetime:
    return datetime.now(UTC)


class ActsBase:
    """Shared state and helpers of the Deliberation service's parts."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        actors: LocalActors,
        config: InstanceConfig,
        publisher: Publisher,
        *,
        federation: FederationSource | None = None,
        clock: Callable[[], datetime] = _system_clock,
    ) -> None:
        self.db = db
        self.actors = actors
        self.config = config
        self.publisher = publisher
        self.domain = DomainStore(db)
        self.proposals = ProposalStore(db)
        self.comments = CommentStore(db)
        self.outbox = publisher.outbox
        self._federation: FederationSource = federation or (lambda: None)
        self._clock = clock

    # --- time and ids -------------------------------------------------------------------------

    def now(self) -> datetime:
        """The service clock, UTC, whole seconds (what the wire carries)."""
        return self._clock().astimezone(UTC).replace(microsecond=0)

    def new_id(self, kind: str) -> str:
        """A fresh time-ordered id ``{base}/{kind}/{uuid7}``."""
        return mint_id(self.config.base_url, kind)

    def judged_at(self, published: datetime | None) -> datetime:
        """When an inbound act is judged: its ``published`` if recent and not ahead, else now."""
        now = self.now()
        if published is not None and now - INBOUND_GRACE <= published <= now + CLOCK_SKEW:
            return published
        return now

    # --- who ----------------------------------------------------------------------------------

    @property
    def group_id(self) -> str:
        """The local Group (owner of local processes)."""
        return self.actors.group_id

    def actor_id(self, user: User) -> str:
        """A local resident's actor id."""
        return self.actors.person_id(user.username)

    def resident(self, user: User) -> Resident:
        """The rules' view of a local user: actor id and verified territory."""
        territory = None
        if user.verification is not None:
            territory = resident_territory(self.config, user.verification.territory)
        return Resident(self.actor_id(user), territory)

    def is_local(self, url: str) -> bool:
        """True when ``url`` lives on this instance's origin."""
        try:
            return same_origin(url, self.config.base_url)
        except OriginError:
            return False

    def require_staff(self, user: User, what: str) -> None:
        """Admins (and, for answers, moderators) of the Group only."""
        allowed = (Role.ADMIN, Role.MODERATOR) if what == "answer proposals" else (Role.ADMIN,)
        if user.role not in allowed:
            refuse("not_admin", f"only the association's administrators may {what}")

    # --- lookups ------------------------------------------------------------------------------

    async def process_record(self, process_id: str) -> ProcessRecord:
        """A known process or 404."""
        record = await self.domain.get_process(process_id)
        if record is None:
            not_found("process", process_id)
        return record

    async def proposal_record(self, proposal_id: str) -> ProposalRecord:
        """A known proposal or 404."""
        record = await self.proposals.get_proposal(proposal_id)
        if record is None:
            not_found("proposal", proposal_id)
        return record

    async def process_or_none(self, process_id: str | None) -> Process | None:
        """The process with this id when given and known."""
        if process_id is None:
            return None
        record = await self.domain.get_process(process_id)
        return None if record is None else record.process

    # --- addressing (DESIGN.md §6) ------------------------------------------------------------

    def public_addressing(
        self, actor: str, *others: str | None
    ) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
        """``to``, ``cc`` and delivery recipients of a public act by ``actor``.

        to: Public; cc: the actor's followers, the local Group and ``others`` (a remote
        process's owner Group, a remote parent's author). Delivered to the followers and to
        every remote one of ``others``; the local Group gets it in-process and Announces it.
        """
        extra = [o for o in dict.fromkeys(others) if o and o not in (actor, self.group_id)]
        cc = tuple(dict.fromkeys([actor + FOLLOWERS, self.group_id, *extra]))
        recipients = [actor + FOLLOWERS, *(o for o in extra if not self.is_local(o))]
        return (as2.PUBLIC,), cc, recipients

    def activity(
        self,
        kind: str,
        actor: str,
        obj: Mapping[str, Any],
        to: Sequence[str],
        cc: Sequence[str] = (),
        *,
        published: datetime | None = None,
    ) -> dict[str, Any]:
        """A ``Create``/``Update`` wrapping a complete object document (embedded, no context)."""
        doc: dict[str, Any] = {
            "@context": document_context(),
            "id": self.new_id("activities"),
            "type": kind,
            "actor": actor,
            "object": embed(obj),
            "published": format_datetime(published or self.now()),
            "to": list(to),
        }
        if cc:
            doc["cc"] = list(cc)
        return doc

    # --- received acts ------------------------------------------------------------------------

    async def commit_received(
        self, activity: Mapping[str, Any], write: Write, *, announce: bool
    ) -> None:
        """Store a received act; with ``announce`` the Group Announces it in one transaction."""
        if announce and as2.is_addressed_publicly(activity):
            await self.publisher.announce(activity, write=write)
            return
        async with transaction(self.db):
            await write(self.db)

    # --- input --------------------------------------------------------------------------------

    def clean_name(self, name: str, field: str = "name") -> str:
        """A title: normalised, non-empty, at most NAME_MAX characters."""
        if not isinstance(name, str):
            invalid(field, "must be text", status=400)
        try:
            text = normalise_text(name, field)
            check_length(field, text, NAME_MAX)
        except ContentError as exc:
            invalid_content(exc)
        if not text:
            invalid(field, "must not be empty", status=400)
        return text

    def render(self, field: str, markdown: str, source_limit: int = SOURCE_MAX) -> tuple[str, str]:
        """``(source, html)`` of a non-empty markdown field, sanitised and bounded."""
        if not isinstance(markdown, str):
            invalid(field, "must be text", status=400)
        try:
            source, html = render_field(field, markdown, source_limit)
        except ContentError as exc:
            invalid_content(exc)
        if not source:
            invalid(field, "must not be empty", status=400)
        return source, html.strip()

    def render_lang(self, field: str, text: LangText, limit: int) -> LangText:
        """A multilingual markdown text rendered to sanitised HTML in every language."""
        _, default = self.render(field, text.default, limit)
        rendered = {
            tag: self.render(f"{field}Map.{tag}", value, limit)[1] for tag, value in text.by_lang
        }
        return LangText.of(default, rendered)
