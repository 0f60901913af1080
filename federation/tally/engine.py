"""Totals from the set of verified activities (DESIGN.md §7): ``compute`` and the result types.

``compute`` is the reference: a pure function of its inputs, blind to the order and duplication
of the events. ``IncrementalTally`` (incremental.py) keeps the same ``ProcessCounts`` up to date
event by event and builds its result with the same ``build_result``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from federation.model import ProposalResult, Tally, Territory, TerritoryCount, TerritoryKind
from federation.vocab.tally import inputs_digest

from .records import (
    Anomaly,
    ProcessRecord,
    ProposalRecord,
    Rule,
    SupportEvent,
    TallyInputs,
    UndoEvent,
    sorted_anomalies,
)
from .rules import Context, Counted, GroupOutcome, LikeView, Origins, evaluate_group, like_view


@dataclass(frozen=True, slots=True)
class ProposalTotals:
    """One proposal's counted supports, its host instance and its neighbourhood breakdown."""

    proposal: str
    host: str
    supports: int
    by_territory: tuple[TerritoryCount, ...]

    def to_result(self) -> ProposalResult:
        """The published ``ProposalResult`` (vocab "tally")."""
        return ProposalResult(self.proposal, self.supports, self.by_territory)


@dataclass(frozen=True, slots=True)
class ProcessTally:
    """A process's totals: per proposal (by id), by city/district/neighbourhood, participants."""

    process: str
    results: tuple[ProposalTotals, ...]
    totals: tuple[TerritoryCount, ...]
    participants: int
    counted: tuple[str, ...]
    #: The digest once taken (a hash over every counted id: a big process's take time).
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def supports(self) -> int:
        """All counted supports (the city total)."""
        return len(self.counted)

    @property
    def inputs_digest(self) -> str:
        """The ``inputsDigest`` over the counted like ids (vocab "tally"), taken once."""
        if self._digest is None:
            object.__setattr__(self, "_digest", inputs_digest(self.counted))
        assert self._digest is not None
        return self._digest

    def result(self, proposal: str) -> ProposalTotals:
        """The totals of one proposal."""
        for totals in self.results:
            if totals.proposal == proposal:
                return totals
        raise KeyError(proposal)

    def total(self, kind: TerritoryKind, code: str) -> int:
        """Supports counted in one territory (0 when none)."""
        return next((t.supports for t in self.totals if t.kind is kind and t.code == code), 0)


@dataclass(frozen=True, slots=True)
class TallyResult:
    """Every known process's totals (by process id) and every anomaly (sorted)."""

    processes: tuple[ProcessTally, ...]
    anomalies: tuple[Anomaly, ...]

    def process(self, process_id: str) -> ProcessTally:
        """The totals of one process."""
        for tally in self.processes:
            if tally.process == process_id:
                return tally
        raise KeyError(process_id)

    def anomaly_counts(self) -> dict[str, dict[Rule, int]]:
        """Anomalies per instance and rule, for the roster's health view."""
        counts: dict[str, dict[Rule, int]] = {}
        for anomaly in self.anomalies:
            per_rule = counts.setdefault(anomaly.instance, {})
            per_rule[anomaly.rule] = per_rule.get(anomaly.rule, 0) + 1
        return counts

    def flagged(self, rule: Rule = Rule.OVER_LIMIT) -> tuple[str, ...]:
        """The instances with at least one anomaly of ``rule`` (sorted)."""
        return tuple(sorted({a.instance for a in self.anomalies if a.rule is rule}))


def _bump(counter: dict[str, int], key: str, sign: int) -> None:
    value = counter.get(key, 0) + sign
    # Zero entries are dropped so a count that went up and down equals one never touched.
    if value:
        counter[key] = value
    else:
        del counter[key]


class ProcessCounts:
    """Running counts of one process, updated by adding or subtracting group outcomes."""

    __slots__ = (
        "_gone", "_order", "by_proposal", "districts", "hoods", "participants", "supports",
        "touched",
    )  # fmt: skip

    def __init__(self) -> None:
        self.by_proposal: dict[str, dict[str, int]] = {}
        self.hoods: dict[str, int] = {}
        self.districts: dict[str, int] = {}
        self.participants = 0
        self.supports = 0
        # The counted ids sorted as of the last read, then those added since; and those removed
        # since. A read sorts a sorted run plus a short tail (Timsort: nearly linear), not the
        # whole set again: a busy process is read after every few supports. No set of the
        # counted ids is kept (40 bytes a support): each like is in one group, and a group's
        # outcome swap adds only ids it did not count and removes only ids it did.
        self._order: list[str] = []
        self._gone: set[str] = set()
        #: Proposals whose counts moved since the owner last cleared it (a reader keeping
        #: the previous totals rebuilds only theirs).
        self.touched: set[str] = set()

    def sorted_counted(self) -> tuple[str, ...]:
        """The counted like ids, sorted (what the digest is taken over)."""
        if self._gone:
            self._order = [like_id for like_id in self._order if like_id not in self._gone]
            self._gone.clear()
        self._order.sort()
        return tuple(self._order)

    def apply(self, outcome: GroupOutcome, sign: int) -> None:
        """Add (sign 1) or remove (sign -1) what one group counted."""
        if outcome.counted:
            self.participants += sign
        for item in outcome.counted:
            self._count(item, sign)

    def add(self, item: Counted) -> None:
        """Count one more support of a participant already counted."""
        self._count(item, 1)

    def replace(self, old: Iterable[Counted], new: Iterable[Counted]) -> None:
        """Swap what one group counted for what it counts now, touching only what changed."""
        before, after = set(old), set(new)
        self.participants += bool(after) - bool(before)
        for item in before - after:
            self._count(item, -1)
        for item in after - before:
            self._count(item, 1)

    def shift(self, changes: Iterable[tuple[Counted, int]], participants: int) -> None:
        """Apply one group's changes in order (a ``LargeGroup``'s ``Shift``)."""
        self.participants += participants
        for item, sign in changes:
            self._count(item, sign)

    def _count(self, item: Counted, sign: int) -> None:
        proposal, hood = item.proposal, item.neighbourhood
        self.touched.add(proposal)
        per_hood = self.by_proposal.get(proposal)
        if per_hood is None:
            per_hood = self.by_proposal[proposal] = {}
        _bump(per_hood, hood, sign)
        if not per_hood:
            del self.by_proposal[proposal]
        _bump(self.hoods, hood, sign)
        _bump(self.districts, item.district, sign)
        like_id = item.like_id
        self.supports += sign
        if sign < 0:
            self._gone.add(like_id)
        elif like_id in self._gone:
            self._gone.discard(like_id)  # still in the order: removed and back since
        else:
            self._order.append(like_id)


def _counts(kind: TerritoryKind, counter: Mapping[str, int]) -> list[TerritoryCount]:
    return [TerritoryCount(kind, code, counter[code]) for code in sorted(counter)]


def process_tally(
    record: ProcessRecord,
    proposals: Iterable[ProposalRecord],
    counts: ProcessCounts,
    city: str,
    previous: Mapping[str, ProposalTotals] | None = None,
) -> ProcessTally:
    """One process's totals from its running counts, listing all its known proposals.

    ``previous``: the totals of an earlier read of these counts; a proposal whose counts did
    not move since (``counts.touched``) and whose host is the same keeps them."""
    results = []
    kept = previous or {}
    for proposal in sorted(proposals, key=lambda p: p.proposal):
        row = kept.get(proposal.proposal)
        if row is None or row.host != proposal.host or proposal.proposal in counts.touched:
            per_hood = counts.by_proposal.get(proposal.proposal, {})
            breakdown = tuple(_counts(TerritoryKind.NEIGHBOURHOOD, per_hood))
            row = ProposalTotals(
                proposal.proposal, proposal.host, sum(per_hood.values()), breakdown
            )
        results.append(row)
    totals = [
        TerritoryCount(TerritoryKind.CITY, city, counts.supports),
        *_counts(TerritoryKind.DISTRICT, counts.districts),
        *_counts(TerritoryKind.NEIGHBOURHOOD, counts.hoods),
    ]
    counted = counts.sorted_counted()
    return ProcessTally(record.id, tuple(results), tuple(totals), counts.participants, counted)


def build_result(
    ctx: Context,
    proposals_of: Mapping[str, Iterable[ProposalRecord]],
    counts: Mapping[str, ProcessCounts],
    anomalies: Iterable[Anomaly],
) -> TallyResult:
    """The result over every known process, each listing all its known proposals."""
    processes = tuple(
        process_tally(
            ctx.processes[pid],
            proposals_of.get(pid, ()),
            counts.get(pid) or ProcessCounts(),
            ctx.roster.city_code,
        )
        for pid in sorted(ctx.processes)
    )
    return TallyResult(processes, sorted_anomalies(anomalies))


_K = TypeVar("_K")
_V = TypeVar("_V")


def _unique(pairs: Iterable[tuple[_K, _V]], what: str) -> dict[_K, _V]:
    found: dict[_K, _V] = {}
    for key, value in pairs:
        if found.setdefault(key, value) != value:
            raise ValueError(f"two different {what} records for {key!r}")
    return found


def context_of(inputs: TallyInputs, origins: Origins | None = None) -> Context:
    """The rules' context; conflicting records for one actor, process or proposal are refused."""
    residents: dict[str, Territory | None] = _unique(
        ((r.actor, r.territory) for r in inputs.residents), "resident"
    )
    processes = _unique(((p.id, p) for p in inputs.processes), "process")
    proposals = _unique(((p.proposal, p) for p in inputs.proposals), "proposal")
    return Context(inputs.roster, residents, processes, proposals, origins or Origins())


def group_views(
    supports: Iterable[SupportEvent], undos: Iterable[UndoEvent], origins: Origins
) -> dict[tuple[str, str], list[LikeView]]:
    """Every like id's view, grouped by the (actor, process) of its canonical copy."""
    copies: dict[str, set[SupportEvent]] = defaultdict(set)
    for event in supports:
        copies[event.like_id].add(event)
    undone: dict[str, set[UndoEvent]] = defaultdict(set)
    for undo in undos:
        undone[undo.like_id].add(undo)
    groups: dict[tuple[str, str], list[LikeView]] = defaultdict(list)
    for like_id, found in copies.items():
        view = like_view(like_id, found, undone.get(like_id, ()), origins)
        groups[(view.event.actor, view.event.process)].append(view)
    return groups


def compute(inputs: TallyInputs) -> TallyResult:
    """Recompute every total from scratch from the *set* of events (DESIGN.md §7)."""
    ctx = context_of(inputs)
    counts: dict[str, ProcessCounts] = defaultdict(ProcessCounts)
    anomalies: list[Anomaly] = []
    for (_, process), views in group_views(inputs.supports, inputs.undos, ctx.origins).items():
        outcome = evaluate_group(process, views, ctx)
        if outcome.counted:
            counts[process].apply(outcome, 1)
        anomalies.extend(outcome.anomalies)
    proposals_of: dict[str, list[ProposalRecord]] = defaultdict(list)
    for proposal in ctx.proposals.values():
        proposals_of[proposal.process].append(proposal)
    return build_result(ctx, proposals_of, counts, anomalies)


def to_tally(
    tally: ProcessTally,
    *,
    tally_id: str,
    aggregator: str,
    as_of: datetime,
    published: datetime,
    final: bool,
    summary_html: str,
    to: tuple[str, ...] = (),
) -> Tally:
    """The publishable ``Tally`` of one process, proposals ranked by supports (vocab "tally")."""
    ranked = sorted(tally.results, key=lambda r: (-r.supports, r.proposal))
    return Tally(
        id=tally_id,
        aggregator=aggregator,
        process=tally.process,
        as_of=as_of,
        final=final,
        inputs_count=tally.supports,
        inputs_digest=tally.inputs_digest,
        participants=tally.participants,
        results=tuple(r.to_result() for r in ranked),
        totals=tally.totals,
        published=published,
        summary_html=summary_html,
        to=to,
    )
