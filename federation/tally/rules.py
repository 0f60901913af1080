"""The five counting rules of DESIGN.md §7, applied to one actor's supports in one process.

Every rule that decides whether a support counts looks only at that support, its copies, the
undos naming it, and the other supports of the same actor in the same process. So the tally is
a sum of independent per-(actor, process) *groups*: ``compute`` evaluates every group once, and
``IncrementalTally`` re-evaluates only the groups an event touches. A group is evaluated in two
steps that both engines share: ``screen`` each like alone (rules 1–3 and its undos; the
incremental engine caches this per like), then ``combine`` the group (rules 4 and 5).

Extension to §7 (rule 5): Decidim's ``minimum_votes_per_user`` keeps a participant's supports
*temporary* until they reach the minimum; an instance running those rules counts none of them,
so neither does the aggregator (each is reported as an informational ``below_minimum``).

Also beyond §7's letter: a support must name a proposal the aggregator knows in the process it
claims (``unknown_proposal`` until the proposal record arrives), and a copy whose like id is not
on its actor's origin is forged (DESIGN.md §5: id, actor and key share an origin). Not applied
here: Decidim's ``threshold_per_proposal`` (it would make one actor's count depend on everyone
else's) and the proposal's state; the totals are what residents supported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from sys import intern
from typing import Any, NamedTuple, TypeVar

from federation.model import Territory, TerritoryKind

from .records import (
    Anomaly,
    ProcessRecord,
    ProposalRecord,
    Roster,
    RosterEntry,
    Rule,
    SupportEvent,
    UndoEvent,
    Window,
    normal_origin,
    sorted_anomalies,
)

_E = TypeVar("_E", SupportEvent, UndoEvent)


class Origins:
    """Memoised ``normal_origin``: parsing an origin costs more than a dict lookup."""

    def __init__(self) -> None:
        self._seen: dict[str, str | None] = {}

    def __call__(self, url: str) -> str | None:
        """The normalised origin of ``url`` or None (FEP-fe34)."""
        try:
            return self._seen[url]
        except KeyError:
            origin = normal_origin(url)
            # One string per origin, not one per actor: a city has tens of thousands of actors.
            origin = self._seen[url] = None if origin is None else intern(origin)
            return origin

    @staticmethod
    def owns(origin: str, url: str) -> bool:
        """True when ``url`` is on the normalised ``origin``; ids are unique, so not memoised."""
        # A normalised origin followed by "/" can only be that origin: skip the full parse.
        if url.startswith(origin) and url[len(origin) : len(origin) + 1] == "/":
            return True
        return normal_origin(url) == origin

    def blame(self, url: str) -> str:
        """The instance an anomaly about ``url`` is filed under (the raw id if it has no origin)."""
        return self(url) or url


@dataclass(slots=True)
class Context:
    """The current state the rules read: roster, residents, processes, proposals."""

    roster: Roster
    residents: Mapping[str, Territory | None]
    processes: Mapping[str, ProcessRecord]
    proposals: Mapping[str, ProposalRecord]
    origins: Origins


@dataclass(frozen=True, slots=True)
class LikeView:
    """One like id with every copy of it and every undo copy naming it."""

    like_id: str
    event: SupportEvent
    verified: bool
    copies: tuple[SupportEvent, ...]
    undos: tuple[UndoEvent, ...]
    copy_anomalies: tuple[Anomaly, ...]


class Counted(NamedTuple):
    """A like that passed the per-like rules and is not undone: the neighbourhood and district
    it counts in, when it was published and its actor's roster origin (rules 4 and 5 order and
    blame by them). One object serves both as the like's verdict and in its group's outcome."""

    like_id: str
    proposal: str
    neighbourhood: str
    district: str
    published: datetime
    instance: str


class Screened(NamedTuple):
    """One like after the per-like rules: its anomalies, and what it counts if anything."""

    anomalies: tuple[Anomaly, ...]
    active: Counted | None


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    """What one (actor, process) group contributes: counted supports and anomalies."""

    process: str
    counted: tuple[Counted, ...]
    anomalies: tuple[Anomaly, ...]


def _like_key(e: SupportEvent) -> tuple[datetime, datetime, str, str, str, str, bool]:
    # A total order on copies, so the canonical copy never depends on arrival order.
    return (e.received_at, e.published, e.actor, e.proposal, e.process, e.signer_origin, e.proof_ok)


def _undo_key(e: UndoEvent) -> tuple[datetime, datetime, str, str, str, str, bool]:
    return (e.received_at, e.published, e.undo_id, e.actor, e.like_id, e.signer_origin, e.proof_ok)


def _own_id(event: SupportEvent | UndoEvent) -> str:
    return event.like_id if isinstance(event, SupportEvent) else event.undo_id


def signed_by_actor(event: SupportEvent | UndoEvent, origins: Origins) -> bool:
    """Rule 1 and DESIGN.md §5: a verified proof by a key on the actor's origin, and the
    activity id on that origin too (so nobody can claim another instance's like id)."""
    origin = origins(event.actor)
    return (
        event.proof_ok
        and origin is not None
        and origins(event.signer_origin) == origin
        and origins.owns(origin, _own_id(event))
    )


def _sorted(events: Iterable[_E], key: Callable[[_E], Any]) -> tuple[_E, ...]:
    distinct = set(events)
    # The common case is one copy: skip building sort keys for it.
    return tuple(distinct) if len(distinct) < 2 else tuple(sorted(distinct, key=key))


def like_view(
    like_id: str, copies: Iterable[SupportEvent], undos: Iterable[UndoEvent], origins: Origins
) -> LikeView:
    """The canonical copy of a like: the earliest-received verified one, else the earliest."""
    ordered = _sorted(copies, _like_key)
    verified = [copy for copy in ordered if signed_by_actor(copy, origins)]
    event = verified[0] if verified else ordered[0]
    found = _copy_anomalies(like_id, event, ordered, verified, origins)
    return LikeView(like_id, event, bool(verified), ordered, _sorted(undos, _undo_key), found)


def _forged_detail(event: SupportEvent | UndoEvent, origins: Origins) -> tuple[str, str]:
    """(instance to blame, why) for a copy whose signature is not its actor's."""
    actor = origins.blame(event.actor)
    if not event.proof_ok:
        return actor, "the proof does not verify with a key the actor lists"
    signer = origins.blame(event.signer_origin)
    if signer != actor:
        return signer, f"signed by {signer}, not by the actor's origin {actor}"
    return actor, f"the id {_own_id(event)} is not on the actor's origin {actor}"


def _copy_anomalies(
    like_id: str,
    canon: SupportEvent,
    copies: tuple[SupportEvent, ...],
    verified: list[SupportEvent],
    origins: Origins,
) -> tuple[Anomaly, ...]:
    """Forged copies, and signed copies of the same id that disagree with the canonical one."""
    if len(copies) == 1 and verified:
        return ()  # the common case: one genuine copy
    found = []
    content = (canon.actor, canon.proposal, canon.process, canon.published)
    for copy in copies:
        if copy not in verified:
            instance, why = _forged_detail(copy, origins)
            found.append(Anomaly(instance, Rule.FORGED, like_id, why))
        elif (copy.actor, copy.proposal, copy.process, copy.published) != content:
            why = "another signed copy of this id names a different actor, object or time"
            found.append(Anomaly(origins.blame(copy.actor), Rule.DUPLICATE, like_id, why))
    return tuple(found)


def _resident_here(entry: RosterEntry, territory: Territory | None) -> bool:
    """The instance vouches only for residents of its own neighbourhood (VOCABULARY.md)."""
    return (
        territory is not None
        and territory.kind is TerritoryKind.NEIGHBOURHOOD
        and territory.code == entry.territory.code
        and territory.district_code in (None, entry.territory.district_code)
    )


def _member(event: SupportEvent, ctx: Context) -> tuple[RosterEntry | None, str]:
    """Rules 1 (roster) and 2 (residency): the actor's roster entry, or why not."""
    origin = ctx.origins(event.actor)
    entry = ctx.roster.entry(origin)
    if entry is None:
        return None, f"{origin or event.actor} is not on the roster"
    if not entry.active:
        return None, f"{origin} was removed from the roster"
    return entry, ""


def _refusal(event: SupportEvent, entry: RosterEntry, ctx: Context) -> tuple[Rule, str] | Window:
    """Rules 2 and 3 for a rostered actor: the phase window it counts in, or why not."""
    territory = ctx.residents.get(event.actor)
    if not _resident_here(entry, territory):
        stated = "no verified residency" if territory is None else f"verified in {territory.code}"
        return Rule.NOT_VERIFIED, f"{stated}; the instance covers {entry.territory.code}"
    record = ctx.processes.get(event.process)
    proposal = ctx.proposals.get(event.proposal)
    if record is None or proposal is None or proposal.process != event.process:
        return Rule.UNKNOWN_PROPOSAL, f"{event.proposal} is not a known proposal of {event.process}"
    if not record.admits(entry.territory, ctx.roster.city_code):
        return Rule.INELIGIBLE_TERRITORY, f"neighbourhood {entry.territory.code} is not eligible"
    window = record.window(event.published)
    if window is None:
        return Rule.OUT_OF_PHASE, f"published {event.published.isoformat()} in no supports phase"
    if event.received_at >= window.deadline:
        return Rule.LATE_ARRIVAL, f"received after the deadline {window.deadline.isoformat()}"
    return window


def _undone(view: LikeView, window: Window, ctx: Context) -> tuple[bool, list[Anomaly]]:
    """Rule 4: withdrawn by a timely undo of its own actor, whatever the arrival order."""
    actor, found = view.event.actor, []
    earliest: dict[str, UndoEvent] = {}
    for undo in view.undos:  # sorted by _undo_key, so the first copy per id is the earliest
        if not signed_by_actor(undo, ctx.origins):
            instance, why = _forged_detail(undo, ctx.origins)
            found.append(
                Anomaly(instance, Rule.FORGED, view.like_id, f"undo {undo.undo_id}: {why}")
            )
        elif undo.actor != actor:
            why = f"undo {undo.undo_id} by {undo.actor}, not by the support's actor"
            found.append(Anomaly(ctx.origins.blame(undo.actor), Rule.FORGED, view.like_id, why))
        else:
            earliest.setdefault(undo.undo_id, undo)
    undone = False
    for undo in earliest.values():
        instance = ctx.origins.blame(actor)
        if undo.published >= window.end:
            why = f"undo {undo.undo_id} published after the supports phase ended"
            found.append(Anomaly(instance, Rule.OUT_OF_PHASE, view.like_id, why))
        elif undo.received_at >= window.deadline:
            why = f"undo {undo.undo_id} received after the deadline {window.deadline.isoformat()}"
            found.append(Anomaly(instance, Rule.LATE_ARRIVAL, view.like_id, why))
        else:
            undone = True
    return undone, found


def _order(item: Counted) -> tuple[datetime, str]:
    return (item.published, item.like_id)


def _earliest_per_proposal(
    active: list[Counted], instance: str
) -> tuple[list[Counted], list[Anomaly]]:
    """Rule 4: one active support per proposal; the earliest by (published, like id) counts."""
    kept: dict[str, str] = {}
    winners, found = [], []
    for counted in sorted(active, key=_order):
        first = kept.setdefault(counted.proposal, counted.like_id)
        if first == counted.like_id:
            winners.append(counted)
        else:
            why = f"a second support of {counted.proposal}; {first} counts"
            found.append(Anomaly(instance, Rule.DUPLICATE, counted.like_id, why))
    return winners, found


def _limits(
    winners: list[Counted], record: ProcessRecord | None, instance: str
) -> tuple[tuple[Counted, ...], list[Anomaly]]:
    """Rule 5: the per-participant limit (earliest count) and Decidim's minimum."""
    if record is None:  # unreachable with winners: they passed the process check
        return tuple(winners), []
    rules, found = record.process.rules, []
    limit = rules.supports_per_participant
    if limit and len(winners) > limit:
        why = f"beyond the limit of {limit} supports per participant"  # one string for all
        for counted in winners[limit:]:
            found.append(Anomaly(instance, Rule.OVER_LIMIT, counted.like_id, why))
        winners = winners[:limit]
    minimum = rules.minimum_supports_per_participant
    if winners and len(winners) < minimum:
        for counted in winners:
            why = f"temporary: {len(winners)} of the minimum {minimum} supports per participant"
            found.append(Anomaly(instance, Rule.BELOW_MINIMUM, counted.like_id, why))
        winners = []
    return tuple(winners), found


def screen(view: LikeView, ctx: Context) -> Screened:
    """Rules 1–3 and the undo half of rule 4 for one like, which need no other like."""
    anomalies = list(view.copy_anomalies)
    if not view.verified:
        return Screened(tuple(anomalies), None)
    event = view.event
    entry, why = _member(event, ctx)
    if entry is None:
        blamed = ctx.origins.blame(event.actor)
        return Screened((*anomalies, Anomaly(blamed, Rule.NOT_ON_ROSTER, view.like_id, why)), None)
    verdict = _refusal(event, entry, ctx)
    if not isinstance(verdict, Window):
        refused = Anomaly(entry.origin, verdict[0], view.like_id, verdict[1])
        return Screened((*anomalies, refused), None)
    undone, found = _undone(view, verdict, ctx)
    anomalies.extend(found)
    return Screened(tuple(anomalies), None if undone else counted_as(event, entry))


def counted_as(event: SupportEvent, entry: RosterEntry) -> Counted:
    """What a like counts: its canonical copy ``event`` in the territory of its actor's roster
    ``entry`` (the incremental engine rebuilds a cached verdict with it)."""
    territory = entry.territory
    return Counted(
        event.like_id, event.proposal, territory.code, territory.district_code or "",
        event.published, entry.origin,
    )  # fmt: skip


def combine(process: str, screened: Iterable[Screened], ctx: Context) -> GroupOutcome:
    """Rules 4 (one support per proposal) and 5 (limit, minimum) over one actor's screened likes."""
    anomalies: list[Anomaly] = []
    active: list[Counted] = []
    for item in screened:
        anomalies.extend(item.anomalies)
        if item.active is not None:
            active.append(item.active)
    return combine_active(process, active, anomalies, ctx)


def combine_active(
    process: str, active: list[Counted], anomalies: list[Anomaly], ctx: Context
) -> GroupOutcome:
    """``combine`` over the group's active likes and its per-like anomalies, gathered."""
    counted, found = rules_4_and_5(process, active, ctx)
    anomalies.extend(found)
    return GroupOutcome(process, counted, sorted_anomalies(anomalies))


def rules_4_and_5(
    process: str, active: list[Counted], ctx: Context
) -> tuple[tuple[Counted, ...], list[Anomaly]]:
    """What one actor's active likes count, and the anomalies rules 4 and 5 add (unsorted)."""
    if not active:
        return (), []
    instance = active[0].instance
    winners, found = _earliest_per_proposal(active, instance)
    counted, beyond = _limits(winners, ctx.processes.get(process), instance)
    return counted, found + beyond


def evaluate_group(process: str, views: Iterable[LikeView], ctx: Context) -> GroupOutcome:
    """Apply DESIGN.md §7 rules 1–5 to one actor's likes in one process."""
    return combine(process, (screen(view, ctx) for view in views), ctx)
