"""Support rules (Decidim's proposal votes): may a resident support or withdraw, what counts.

Pure functions following the conventions of :mod:`federation.instance.rules` (its docstring):
each ``check_*`` returns None when allowed, else raises its
:class:`~federation.instance.rules.RuleViolation` (403 who, 409 state, 400 request, checked in
that order, the first failure wins); every ``now`` is timezone-aware; a supports phase is active
from ``start`` inclusive to ``end`` exclusive. Decidim sources are ``repo:path@commit-prefix`` as
in shared/reference/decidim.md §b. Decidim's ``minimum_votes_per_user``: a participant's supports
in a process are all ``temporary`` below the minimum and all ``final`` at or above it; only
final supports count.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from federation.instance.rules import Resident, _refuse, _require_phase, check_territory_eligible
from federation.model import Process, ProposalState

SupportState = Literal["temporary", "final"]


@dataclass(frozen=True)
class SupportContext:
    """What a support decision needs to know, read by the caller inside its transaction."""

    process: Process
    proposal_state: ProposalState
    proposal_final_supports: int
    resident_active_supports: int
    already_supported: bool
    now: datetime
    # When the proposal took its current state: a support judged earlier (a remote one,
    # judged at its ``published`` time) is not refused for a rejection or withdrawal that
    # came after it, so the owner's count does not depend on how fast deliveries travel.
    proposal_state_since: datetime | None = None


def _state_binds(ctx: SupportContext) -> bool:
    """Whether the proposal's current state already held at ``ctx.now``."""
    return ctx.proposal_state_since is None or ctx.now >= ctx.proposal_state_since


def _check_supports_phase(process: Process, now: datetime) -> None:
    _require_phase(process, now, lambda p: p.allows_supports, "supports_phase_closed", "supports")


def check_can_support(resident: Resident, ctx: SupportContext) -> None:
    """Decidim's vote rules, in this order (the first failure wins).

    not_verified, territory_not_eligible (``vote`` authorization); supports_phase_closed (step
    ``votes_enabled && !votes_blocked``); proposal_withdrawn; proposal_rejected, already_supported
    (proposal_vote.rb@0a6525e); support_limit_reached (``remaining_votes``, permissions.rb@0150e05);
    threshold_reached (``maximum_votes_reached?``, vote_proposal.rb@030b92c).
    """
    check_territory_eligible(ctx.process, resident)
    _check_supports_phase(ctx.process, ctx.now)
    if ctx.proposal_state is ProposalState.WITHDRAWN and _state_binds(ctx):
        _refuse("proposal_withdrawn", "the proposal was withdrawn by its author")
    if ctx.proposal_state is ProposalState.REJECTED and _state_binds(ctx):
        _refuse("proposal_rejected", "rejected proposals cannot be supported")
    if ctx.already_supported:
        _refuse("already_supported", "you already support this proposal")
    rules = ctx.process.rules
    limit = rules.supports_per_participant
    if limit > 0 and ctx.resident_active_supports >= limit:
        _refuse("support_limit_reached", f"you have used all {limit} supports of this process")
    threshold = rules.threshold_per_proposal
    if (
        threshold > 0
        and ctx.proposal_final_supports >= threshold
        and not rules.accumulate_beyond_threshold
    ):
        _refuse("threshold_reached", f"the proposal already has the maximum {threshold} supports")


def check_can_withdraw_support(
    resident: Resident, process: Process, now: datetime, has_active_support: bool
) -> None:
    """Unvote needs an open supports phase and a support (verification not rechecked: harmless)."""
    _check_supports_phase(process, now)
    if not has_active_support:
        _refuse("no_support_to_withdraw", f"{resident.actor_id} has no support on this proposal")


def remaining_supports(process: Process, resident_active_supports: int) -> int | None:
    """Supports the resident may still give (Decidim ``remaining_votes``); None when unlimited."""
    limit = process.rules.supports_per_participant
    return None if limit <= 0 else max(0, limit - resident_active_supports)


def supports_are_final(minimum: int, active_supports: int) -> bool:
    """Decidim ``minimum_votes_per_user``: a participant's supports count once they reach it."""
    return minimum <= 0 or active_supports >= minimum


def support_state(minimum: int, active_supports: int) -> SupportState:
    """The state every active support of a participant in a process has, given how many."""
    return "final" if supports_are_final(minimum, active_supports) else "temporary"


def support_states(
    minimum: int, active_supports_in_order: Sequence[str]
) -> dict[str, SupportState]:
    """One participant's supports, all temporary below the minimum and all final at or above it.

    Decidim ``update_temporary_votes!`` (vote_proposal.rb@030b92c); a withdrawal can flip back.
    """
    state: SupportState = (
        "final" if supports_are_final(minimum, len(active_supports_in_order)) else "temporary"
    )
    return dict.fromkeys(active_supports_in_order, state)


def counted_supports(
    minimum: int, active_by_resident: Mapping[str, Collection[str]]
) -> dict[str, int]:
    """Each proposal's count of *final* supports (Decidim ``votes -> { final }``), 0 included.

    ``active_by_resident``: resident → proposal ids they actively support in the process.
    """
    totals: dict[str, int] = {}
    for proposals in active_by_resident.values():
        final = supports_are_final(minimum, len(proposals))
        for proposal in proposals:
            totals[proposal] = totals.get(proposal, 0) + int(final)
    return totals


def count_changes(minimum: int, before: Collection[str], after: Collection[str]) -> dict[str, int]:
    """Non-zero moves of counted totals when one participant goes from ``before`` to ``after``."""
    old = counted_supports(minimum, {"": before})
    new = counted_supports(minimum, {"": after})
    changes = {p: new.get(p, 0) - old.get(p, 0) for p in old.keys() | new.keys()}
    return {p: delta for p, delta in changes.items() if delta}
