"""What the tally counts from (DESIGN.md §7): roster, residents, processes, proposals, events.

Everything here is a frozen, hashable value: the aggregator builds them from verified activities
and its roster, and anyone holding the same values recomputes the same totals. Origins are kept
as normalised strings (``str(activitypub.origin.Origin)``) so they compare and sort plainly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import attrgetter

from activitypub.origin import OriginError, origin_of
from federation.model import Process, Territory, TerritoryKind


def normal_origin(url: str) -> str | None:
    """The FEP-fe34 normalised origin of ``url`` as a string, or None when it has none."""
    try:
        return str(origin_of(url))
    except OriginError:
        return None


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is UTC:
        return value  # the stored rows' case: every event read back is built twice in UTC
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, not {value!r}")
    # One representation per instant, so equal events print the same in anomaly details.
    return value.astimezone(UTC)


def _require_origin(url: str, what: str) -> str:
    origin = normal_origin(url)
    if origin is None:
        raise ValueError(f"{what} must be an absolute http(s) URL, not {url!r}")
    return origin


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One instance on the city's roster with its neighbourhood (DESIGN.md §7 rule 1)."""

    origin: str
    territory: Territory
    active: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", _require_origin(self.origin, "a roster origin"))
        # Totals break down by neighbourhood and district, so both codes must be known.
        if (
            self.territory.kind is not TerritoryKind.NEIGHBOURHOOD
            or not self.territory.district_code
        ):
            raise ValueError(
                f"{self.origin}: a roster territory is a neighbourhood with a district"
            )


@dataclass(frozen=True, slots=True)
class Roster:
    """The city's list of instances and their territories; ``city_code`` is the city's code."""

    city_code: str
    entries: tuple[RosterEntry, ...] = ()
    _by_origin: dict[str, RosterEntry] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        entries = tuple(sorted(self.entries, key=lambda entry: entry.origin))
        by_origin = {entry.origin: entry for entry in entries}
        if len(by_origin) != len(entries):
            raise ValueError("the roster lists an origin twice")
        object.__setattr__(self, "entries", entries)
        object.__setattr__(self, "_by_origin", by_origin)

    def entry(self, origin: str | None) -> RosterEntry | None:
        """The entry of a normalised origin, active or not."""
        return None if origin is None else self._by_origin.get(origin)

    def with_entry(self, entry: RosterEntry) -> Roster:
        """A roster with ``entry`` added or replacing the entry of its origin."""
        kept = tuple(e for e in self.entries if e.origin != entry.origin)
        return Roster(self.city_code, (*kept, entry))

    def with_active(self, origin: str, active: bool) -> Roster:
        """A roster with the instance at ``origin`` removed (inactive) or restored (active)."""
        entry = self.entry(normal_origin(origin))
        if entry is None:
            raise KeyError(f"{origin} is not on the roster")
        return self.with_entry(RosterEntry(entry.origin, entry.territory, active))


@dataclass(frozen=True, slots=True)
class ResidentRecord:
    """The ``verifiedResidentOf`` an actor's own instance states, or None when unverified."""

    actor: str
    territory: Territory | None


@dataclass(frozen=True, slots=True)
class Window:
    """A phase that allows supports: ``start <= published < end``, arrival before ``deadline``."""

    start: datetime
    end: datetime
    deadline: datetime


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """A process as the tally sees it (DESIGN.md §7 rules 2, 3 and 5).

    ``grace`` is how long after a supports phase ends a support published inside it may still
    arrive. ``closed_at`` is when the aggregator froze the result (its final Tally): nothing
    received from then on changes it, so it caps every phase's arrival deadline.
    """

    process: Process
    grace: timedelta = timedelta(0)
    closed_at: datetime | None = None
    windows: tuple[Window, ...] = field(init=False, compare=False, hash=False, default=())

    def __post_init__(self) -> None:
        if self.grace < timedelta(0):
            raise ValueError("the arrival grace cannot be negative")
        windows = []
        for phase in self.process.phases:
            if phase.allows_supports:
                deadline = phase.end + self.grace
                if self.closed_at is not None and self.closed_at < deadline:
                    deadline = self.closed_at
                windows.append(Window(phase.start, phase.end, deadline))
        object.__setattr__(self, "windows", tuple(windows))

    @property
    def id(self) -> str:
        """The process IRI."""
        return self.process.id

    def window(self, published: datetime) -> Window | None:
        """The supports phase ``published`` falls in (start inclusive, end exclusive)."""
        for window in self.windows:
            if window.start <= published < window.end:
                return window
        return None

    def admits(self, hood: Territory, city_code: str) -> bool:
        """True when residents of the neighbourhood ``hood`` are eligible (listed, or its
        district, or the city)."""
        for place in self.process.eligible:
            if place.kind is TerritoryKind.CITY and place.code == city_code:
                return True
            if place.kind is TerritoryKind.DISTRICT and place.code == hood.district_code:
                return True
            if (
                place.kind is TerritoryKind.NEIGHBOURHOOD
                and place.code == hood.code
                and place.district_code in (None, hood.district_code)
            ):
                return True
        return False


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """A proposal the aggregator knows: the process it belongs to and its host instance."""

    proposal: str
    process: str
    host: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", _require_origin(self.host, "a proposal host"))


@dataclass(frozen=True, slots=True)
class SupportEvent:
    """One received copy of a support (``Like``) after proof verification.

    ``proof_ok``: its FEP-8b32 proof verified with a key its actor lists; ``signer_origin``: the
    origin of that key. Copies of one ``like_id`` that arrived by several routes are one support.
    """

    like_id: str
    actor: str
    proposal: str
    process: str
    published: datetime
    received_at: datetime
    proof_ok: bool
    signer_origin: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "published", _utc(self.published, "published"))
        object.__setattr__(self, "received_at", _utc(self.received_at, "received_at"))


@dataclass(frozen=True, slots=True)
class UndoEvent:
    """One received copy of the withdrawal (``Undo{Like}``) of the support ``like_id``."""

    undo_id: str
    actor: str
    like_id: str
    published: datetime
    received_at: datetime
    proof_ok: bool
    signer_origin: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "published", _utc(self.published, "published"))
        object.__setattr__(self, "received_at", _utc(self.received_at, "received_at"))


class Rule(StrEnum):
    """Why a support did not count, or what the aggregator flags about an instance."""

    FORGED = "forged"
    NOT_ON_ROSTER = "not_on_roster"
    NOT_VERIFIED = "not_verified"
    UNKNOWN_PROPOSAL = "unknown_proposal"
    INELIGIBLE_TERRITORY = "ineligible_territory"
    OUT_OF_PHASE = "out_of_phase"
    LATE_ARRIVAL = "late_arrival"
    DUPLICATE = "duplicate"
    OVER_LIMIT = "over_limit"
    BELOW_MINIMUM = "below_minimum"


@dataclass(frozen=True, slots=True, order=True)
class Anomaly:
    """One refused or flagged support: the instance to blame, the rule, the like id, why."""

    instance: str
    rule: Rule
    like_id: str
    detail: str


#: ``Anomaly``'s own order as a key: sorting by it compares tuples in C, where the dataclass's
#: ``__lt__`` is a Python call per comparison (a flood's 100,000 anomalies took ~1 s).
anomaly_order = attrgetter("instance", "rule", "like_id", "detail")


def sorted_anomalies(anomalies: Iterable[Anomaly]) -> tuple[Anomaly, ...]:
    """The distinct ``anomalies`` in their order (what a result lists)."""
    return tuple(sorted(set(anomalies), key=anomaly_order))


@dataclass(frozen=True, slots=True)
class TallyInputs:
    """Everything ``compute`` counts from; the event tuples are read as sets."""

    roster: Roster
    residents: tuple[ResidentRecord, ...] = ()
    processes: tuple[ProcessRecord, ...] = ()
    proposals: tuple[ProposalRecord, ...] = ()
    supports: tuple[SupportEvent, ...] = ()
    undos: tuple[UndoEvent, ...] = ()
