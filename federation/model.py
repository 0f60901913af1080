"""The deliberation domain as frozen dataclasses (vocab-spec "Domain dataclasses").

Nothing here knows JSON-LD: ``federation.vocab`` converts these to and from wire documents.
Every timestamp is a timezone-aware ``datetime``; ids are absolute URL strings; addressing
(``to``/``cc``) is kept as tuples in the order it was written or received.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TerritoryKind(StrEnum):
    """``territoryKind`` wire values."""

    CITY = "city"
    DISTRICT = "district"
    NEIGHBOURHOOD = "neighbourhood"


class ProposalState(StrEnum):
    """``proposalState`` wire values (Decidim's proposal states, camelCased)."""

    NOT_ANSWERED = "notAnswered"
    EVALUATING = "evaluating"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"

    @property
    def answered(self) -> bool:
        """True for the states that carry an official answer."""
        return self in (ProposalState.EVALUATING, ProposalState.ACCEPTED, ProposalState.REJECTED)


class Alignment(StrEnum):
    """``alignment`` wire values of a comment (Decidim 1 / -1 / 0)."""

    IN_FAVOR = "inFavor"
    AGAINST = "against"
    NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class LangText:
    """A text in a default language plus translations keyed by BCP 47 tag (``name``/``nameMap``).

    ``by_lang`` is kept sorted by tag, so two texts with the same translations are equal
    whatever order they were given in.
    """

    default: str
    by_lang: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.default, str):
            raise TypeError("LangText.default must be a string")
        pairs = tuple(sorted(self.by_lang))
        tags = [tag for tag, _ in pairs]
        if any(not isinstance(tag, str) or not tag for tag in tags):
            raise ValueError("LangText language tags must be non-empty strings")
        if len({tag.lower() for tag in tags}) != len(tags):
            raise ValueError(f"LangText has a language tag twice: {tags}")
        if any(not isinstance(text, str) for _, text in pairs):
            raise TypeError("LangText translations must be strings")
        object.__setattr__(self, "by_lang", pairs)

    @classmethod
    def of(cls, default: str, translations: Mapping[str, str] | None = None) -> LangText:
        """A text from its default value and a ``{tag: text}`` mapping."""
        return cls(default, tuple((translations or {}).items()))

    @property
    def languages(self) -> tuple[str, ...]:
        """The tags that have a translation, sorted."""
        return tuple(tag for tag, _ in self.by_lang)

    def as_map(self) -> dict[str, str]:
        """The translations as a fresh ``{tag: text}`` dict."""
        return dict(self.by_lang)

    def get(self, lang: str | None = None) -> str:
        """The text in ``lang`` (exact tag, then same primary language), else the default."""
        if lang is None:
            return self.default
        wanted = lang.lower()
        for tag, text in self.by_lang:
            if tag.lower() == wanted:
                return text
        primary = wanted.split("-")[0]
        for tag, text in self.by_lang:
            if tag.lower().split("-")[0] == primary:
                return text
        return self.default

    def __str__(self) -> str:
        return self.default


@dataclass(frozen=True, slots=True)
class Territory:
    """A city, district or neighbourhood with the city's official code."""

    kind: TerritoryKind
    code: str
    name: str | None = None
    district_code: str | None = None


@dataclass(frozen=True, slots=True)
class Location:
    """A ``Place`` a proposal is about."""

    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """One step of a participatory process and what it allows."""

    name: LangText
    start: datetime
    end: datetime
    allows_proposals: bool
    allows_supports: bool
    allows_comments: bool
    allows_debates: bool


@dataclass(frozen=True, slots=True)
class SupportRules:
    """Decidim's support settings; 0 means "no limit" / "no threshold" / "no minimum"."""

    supports_per_participant: int = 0
    threshold_per_proposal: int = 0
    accumulate_beyond_threshold: bool = False
    minimum_supports_per_participant: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Process:
    """A participatory process owned by a Group (``["Page", "ParticipatoryProcess"]``)."""

    id: str
    owner: str
    name: LangText
    summary: LangText | None
    phases: tuple[Phase, ...]
    rules: SupportRules
    eligible: tuple[Territory, ...]
    published: datetime
    updated: datetime | None = None
    url: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """A resident's proposal in a process (``["Page", "Proposal"]``)."""

    id: str
    author: str
    audience: str
    process: str
    name: LangText
    content_html: str
    source_markdown: str | None
    published: datetime
    updated: datetime | None = None
    url: str | None = None
    state: ProposalState = ProposalState.NOT_ANSWERED
    answer: LangText | None = None
    answered_at: datetime | None = None
    support_count: int | None = None
    location: Location | None = None
    replies: str | None = None
    context: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Debate:
    """A debate, optionally in a process, optionally closed with conclusions."""

    id: str
    author: str
    audience: str
    process: str | None
    name: LangText
    content_html: str
    source_markdown: str | None
    published: datetime
    updated: datetime | None = None
    url: str | None = None
    closed_at: datetime | None = None
    conclusions: LangText | None = None
    start: datetime | None = None
    end: datetime | None = None
    replies: str | None = None
    context: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Comment:
    """A comment (``Note``); remote replies have no depth and a neutral alignment."""

    id: str
    author: str
    in_reply_to: str
    context: str | None
    content_html: str
    source_markdown: str | None
    alignment: Alignment = Alignment.NEUTRAL
    depth: int | None = None
    published: datetime
    updated: datetime | None = None
    audience: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Support:
    """A resident's support of a proposal (a ``Like`` never addressed to Public)."""

    id: str
    actor: str
    proposal: str
    published: datetime
    to: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoSupport:
    """The withdrawal of a support: ``Undo`` of the ``Like``, embedded or by id."""

    id: str
    actor: str
    support: Support | str
    published: datetime
    to: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CommentVote:
    """An up (``Like``) or down (``Dislike``) vote on a comment, Lemmy-style."""

    id: str
    actor: str
    comment: str
    up: bool
    published: datetime | None = None
    audience: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoCommentVote:
    """The retraction of a comment vote: ``Undo`` of the ``Like``/``Dislike``."""

    id: str
    actor: str
    vote: CommentVote | str
    published: datetime | None = None
    audience: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class OfficialAnswer:
    """The owning Group's ``Update`` of a proposal with its state and answer."""

    id: str
    group: str
    proposal: Proposal
    published: datetime
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    """A Group's ``Announce`` of a member's activity (FEP-1b12), kept verbatim with its proof."""

    id: str
    group: str
    # Not hashed: a mapping is not hashable; equality still compares it.
    activity: Mapping[str, Any] = field(hash=False)
    published: datetime | None = None
    audience: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Deletion:
    """A ``Delete`` whose object is a ``Tombstone`` (or a bare id from other servers)."""

    id: str
    actor: str
    object_id: str
    former_type: str | None = None
    deleted: datetime | None = None
    published: datetime | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is served (with 410) where a deleted object was."""

    id: str
    former_type: str
    deleted: datetime


@dataclass(frozen=True, slots=True)
class TerritoryCount:
    """Supports counted in one territory."""

    kind: TerritoryKind
    code: str
    supports: int


@dataclass(frozen=True, slots=True)
class ProposalResult:
    """One proposal's supports, with the breakdown by territory."""

    proposal: str
    supports: int
    by_territory: tuple[TerritoryCount, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Tally:
    """The aggregator's signed count of a process (``["Note", "Tally"]``)."""

    id: str
    aggregator: str
    process: str
    as_of: datetime
    final: bool
    inputs_count: int
    inputs_digest: str
    participants: int
    results: tuple[ProposalResult, ...]
    totals: tuple[TerritoryCount, ...]
    published: datetime
    summary_html: str
    to: tuple[str, ...] = ()
