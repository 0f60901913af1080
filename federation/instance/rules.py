"""The instance's participation rules (Decidim's, issue 4 "Domain") as pure functions.

Each ``check_*`` returns None when allowed, else raises :class:`RuleViolation` (stable ``rule``,
HTTP ``status``, human ``detail``; table :data:`RULES`): **403** when *who* acts forbids it,
**409** when the *current state* does, **400** when the *request itself* is incomplete. Checks
run in that order (who, state, content) and the first failure wins. A phase is active from
``start`` inclusive to ``end`` exclusive; every ``now`` must be timezone-aware. Decidim sources
are ``repo:path@commit-prefix`` as in shared/reference/decidim.md §b. The support rules
(giving and withdrawing supports, what counts) are in :mod:`federation.instance.support_rules`,
which follows these conventions and uses this module's refusals, phases and territories.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import NoReturn

from activitypub.errors import Problem
from federation.model import (
    Debate,
    LangText,
    Phase,
    Process,
    Proposal,
    ProposalState,
    Territory,
    TerritoryKind,
)

FORBIDDEN = 403
CONFLICT = 409
INVALID = 400

_WHO = ("not_verified", "territory_not_eligible", "not_author")
_STATE = (
    "proposals_phase_closed", "debates_phase_closed", "comments_phase_closed",
    "supports_phase_closed", "debate_closed", "debate_not_open", "proposal_withdrawn",
    "proposal_rejected", "already_supported", "support_limit_reached", "threshold_reached",
    "no_support_to_withdraw", "rules_frozen", "proposal_answered", "edit_window_closed",
    "already_withdrawn", "proposal_has_supports", "already_closed", "max_depth_reached",
    "already_voted",
)  # fmt: skip
_REQUEST = ("invalid_answer_state", "answer_required", "conclusions_required")
#: The rules the pure checks here and in ``support_rules`` raise (each refused in tests/test_rules).
CHECK_RULES: Mapping[str, int] = MappingProxyType(
    dict.fromkeys(_WHO, FORBIDDEN)
    | dict.fromkeys(_STATE, CONFLICT)
    | dict.fromkeys(_REQUEST, INVALID)
)
#: Refusals the Deliberation service raises itself (``acts.refuse``), beyond the pure checks.
SERVICE_RULES: Mapping[str, int] = MappingProxyType(
    dict.fromkeys(("not_admin", "not_owner"), FORBIDDEN)
    | {"no_vote_to_withdraw": CONFLICT, "wrong_audience": INVALID}
)
#: Refusals of inbound activities (``handlers*.Refused``, FEP-fe34 reasons of the inner
#: activity of an Announce, FEP-8b32 proof failures) and of private reads (``readaccess``).
FEDERATION_RULES: Mapping[str, int] = MappingProxyType(
    dict.fromkeys(
        ("origin_mismatch", "not_target", "not_authorised", "proof_signature_invalid",
         "verification_method_not_owned", "supports_private", "not_addressed"),
        FORBIDDEN,
    )
    | dict.fromkeys(("actor_unavailable", "object_unavailable"), CONFLICT)
    | dict.fromkeys(("object_missing", "nested_announce", "unknown_actor", "no_inbox"), INVALID)
)  # fmt: skip
# Every rule name and its HTTP status: the stable contract services and clients rely on.
RULES: Mapping[str, int] = MappingProxyType(
    dict(CHECK_RULES) | dict(SERVICE_RULES) | dict(FEDERATION_RULES)
)
_TITLES = {FORBIDDEN: "Not allowed", CONFLICT: "Not possible now", INVALID: "Invalid request"}

# Decidim proposal_edit_time default ("edit_time" 5 minutes; component.rb@da99ecc).
DEFAULT_EDIT_WINDOW = timedelta(minutes=5)
# Decidim Comment::MAX_DEPTH (comment.rb@00133b6); here the first comment is depth 1.
MAX_DEPTH = 3
ANSWER_STATES = frozenset(
    {ProposalState.EVALUATING, ProposalState.ACCEPTED, ProposalState.REJECTED}
)


class RuleViolation(Exception):
    """A domain rule refused an act: ``rule`` (stable name), ``status`` (HTTP), ``detail``."""

    def __init__(self, rule: str, status: int, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.status = status
        self.detail = detail

    def problem(self) -> Problem:
        """This refusal as RFC 9457 problem+json with a ``rule`` extension member."""
        return Problem(self.status, _TITLES[self.status], self.detail, rule=self.rule)


def _refuse(rule: str, detail: str) -> NoReturn:
    raise RuleViolation(rule, RULES[rule], detail)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("rules need a timezone-aware 'now'")
    return now


# -- phases --------------------------------------------------------------------------------


def phase_is_active(phase: Phase, now: datetime) -> bool:
    """A phase is active from ``start`` (inclusive) to ``end`` (exclusive)."""
    return phase.start <= _aware(now) < phase.end


def active_phase(process: Process, now: datetime) -> Phase | None:
    """The phase active at ``now`` (Decidim: at most one active step per process), or None."""
    return next((phase for phase in process.phases if phase_is_active(phase, now)), None)


def _require_phase(
    process: Process, now: datetime, allows: Callable[[Phase], bool], rule: str, what: str
) -> None:
    phase = active_phase(process, now)
    if phase is None:
        _refuse(rule, f"no phase of the process is active at {now.isoformat()}")
    if not allows(phase):
        _refuse(rule, f"the current phase '{phase.name.default}' does not allow {what}")


def check_can_propose(process: Process, now: datetime) -> None:
    """Proposals only in a phase allowing them (Decidim step ``creation_enabled``)."""
    _require_phase(
        process, now, lambda p: p.allows_proposals, "proposals_phase_closed", "proposals"
    )


def check_can_debate(process: Process | None, now: datetime) -> None:
    """Debates in a process only in a phase allowing them; debates outside a process always."""
    if process is not None:
        _require_phase(process, now, lambda p: p.allows_debates, "debates_phase_closed", "debates")


def check_can_comment(
    process: Process | None, now: datetime, *, debate: Debate | None = None
) -> None:
    """A phase allowing comments; on a debate, open and inside its AMA window (end exclusive).

    Decidim step ``comments_blocked``; ``Debate#accepts_new_comments?`` (debate.rb@0daa0cf).
    """
    if process is not None:
        _require_phase(
            process, now, lambda p: p.allows_comments, "comments_phase_closed", "comments"
        )
    if debate is None:
        return
    if debate.closed_at is not None:
        _refuse("debate_closed", "the debate is closed")
    if debate.start is not None and debate.end is not None:
        if not debate.start <= _aware(now) < debate.end:
            window = f"{debate.start.isoformat()} to {debate.end.isoformat()}"
            _refuse("debate_not_open", f"comments are open only from {window}")


# -- residents and territories ---------------------------------------------------------------


@dataclass(frozen=True)
class Resident:
    """Who is acting: their actor id and verified territory (None = residency not verified)."""

    actor_id: str
    verified_territory: Territory | None = None


def _canonical_code(code: str | None) -> str | None:
    # Numeric codes compare as numbers: open data writes neighbourhood "1" and "01" both.
    return str(int(code)) if code is not None and code.isdigit() else code


def _same_code(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and _canonical_code(a) == _canonical_code(b)


def territory_covers(eligible: Territory, home: Territory) -> bool:
    """Whether ``eligible`` covers a resident verified in ``home``: a city everyone (one deployment
    is one city), a district itself and its neighbourhoods, a neighbourhood only itself."""
    if eligible.kind is TerritoryKind.CITY:
        return home.kind is not TerritoryKind.CITY or _same_code(home.code, eligible.code)
    if eligible.kind is TerritoryKind.DISTRICT:
        if home.kind is TerritoryKind.DISTRICT:
            return _same_code(home.code, eligible.code)
        return home.kind is TerritoryKind.NEIGHBOURHOOD and _same_code(
            home.district_code, eligible.code
        )
    return home.kind is TerritoryKind.NEIGHBOURHOOD and _same_code(home.code, eligible.code)


def check_territory_eligible(process: Process, resident: Resident) -> None:
    """Only verified residents of an eligible territory: not_verified, territory_not_eligible.

    Decidim: per-action authorization with the scope in its metadata (budgets_workflow_pam2021.rb).
    """
    home = resident.verified_territory
    if home is None:
        _refuse("not_verified", "only residents with verified residency may do this")
    if not any(territory_covers(eligible, home) for eligible in process.eligible):
        codes = ", ".join(f"{t.kind.value} {t.code}" for t in process.eligible)
        where = f"{home.kind.value} {home.code}"
        _refuse(
            "territory_not_eligible", f"{where} is not among the eligible territories ({codes})"
        )


# -- process rules ---------------------------------------------------------------------------


def supports_open_from(process: Process) -> datetime | None:
    """The start of the first phase that allows supports, or None if none does."""
    starts = [phase.start for phase in process.phases if phase.allows_supports]
    return min(starts) if starts else None


def _territory_key(territory: Territory) -> tuple[str, str | None, str | None]:
    code, district = _canonical_code(territory.code), _canonical_code(territory.district_code)
    return (territory.kind.value, code, district)


def _supports_phases(process: Process) -> list[tuple[datetime, datetime]]:
    return [(phase.start, phase.end) for phase in process.phases if phase.allows_supports]


def check_rules_change(process_before: Process, process_after: Process, now: datetime) -> None:
    """rules_frozen: support rules, eligibility and supports phases are fixed once supports open.

    DESIGN.md §3; from the first supports phase's start (inclusive). Decidim leaves it to admins.
    """
    opens = supports_open_from(process_before)
    if opens is None or _aware(now) < opens:
        return
    changed = []
    if process_before.rules != process_after.rules:
        changed.append("support rules")
    before_eligible = {_territory_key(t) for t in process_before.eligible}
    if before_eligible != {_territory_key(t) for t in process_after.eligible}:
        changed.append("eligible territories")
    if _supports_phases(process_before) != _supports_phases(process_after):
        changed.append("supports phases")
    if changed:
        what = ", ".join(changed)
        _refuse("rules_frozen", f"{what} cannot change once supports opened ({opens.isoformat()})")


# -- proposals -------------------------------------------------------------------------------


def _require_author(author: str, actor: str, what: str) -> None:
    if author != actor:
        _refuse("not_author", f"only the author may {what}")


def check_can_edit_proposal(
    proposal: Proposal,
    actor: str,
    now: datetime,
    edit_window: timedelta | None = DEFAULT_EDIT_WINDOW,
) -> None:
    """By its author, not withdrawn or answered, before ``published + edit_window`` (None: ever).

    Decidim ``Proposal#editable_by?``, ``within_edit_time_limit?`` (proposal.rb@001f728).
    """
    _require_author(proposal.author, actor, "edit a proposal")
    if proposal.state is ProposalState.WITHDRAWN:
        _refuse("proposal_withdrawn", "a withdrawn proposal cannot be edited")
    if proposal.state.answered:
        _refuse("proposal_answered", f"the proposal was answered ({proposal.state.value})")
    if edit_window is not None and _aware(now) >= proposal.published + edit_window:
        _refuse("edit_window_closed", f"proposals can be edited for {edit_window} after publishing")


def check_can_withdraw_proposal(proposal: Proposal, actor: str, *, final_supports: int) -> None:
    """By its author, once, while no final support counts for it.

    Decidim ``WithdrawProposal``: ``:has_supports`` if ``votes.any?`` (withdraw_proposal.rb).
    """
    _require_author(proposal.author, actor, "withdraw a proposal")
    if proposal.state is ProposalState.WITHDRAWN:
        _refuse("already_withdrawn", "the proposal is already withdrawn")
    if final_supports > 0:
        _refuse("proposal_has_supports", f"the proposal already has {final_supports} supports")


def check_can_delete_proposal(proposal: Proposal, actor: str, *, final_supports: int) -> None:
    """By its author, before an official answer, while no final support counts for it.

    Decidim has no deletion, only withdrawal, which ``:has_supports`` refuses
    (withdraw_proposal.rb): a supported proposal keeps its record, and so does an answered one.
    """
    _require_author(proposal.author, actor, "delete a proposal")
    if proposal.state.answered:
        _refuse("proposal_answered", f"the proposal was answered ({proposal.state.value})")
    if final_supports > 0:
        _refuse("proposal_has_supports", f"the proposal already has {final_supports} supports")


def check_can_delete(author: str, actor: str, what: str) -> None:
    """A debate or a comment is deleted by its author only (``what`` names it)."""
    _require_author(author, actor, f"delete {what}")


def check_can_answer(
    current: ProposalState, new_state: ProposalState | str, answer: LangText | str | None
) -> ProposalState:
    """Answer a non-withdrawn proposal as evaluating/accepted/rejected; rejections need a text.

    Decidim admin ``ProposalAnswerForm`` (answer required if rejected). Returns the new state.
    """
    if current is ProposalState.WITHDRAWN:
        _refuse("proposal_withdrawn", "a withdrawn proposal cannot be answered")
    allowed = ", ".join(sorted(s.value for s in ANSWER_STATES))
    refusal = f"'{new_state}' is not an answer state ({allowed})"
    try:
        state = ProposalState(new_state)
    except ValueError:
        _refuse("invalid_answer_state", refusal)
    if state not in ANSWER_STATES:
        _refuse("invalid_answer_state", refusal)
    text = answer.default if isinstance(answer, LangText) else answer
    if state is ProposalState.REJECTED and not (text or "").strip():
        _refuse("answer_required", "a rejection needs an answer explaining it")
    return state


# -- debates and comments --------------------------------------------------------------------


def check_can_edit_debate(debate: Debate, actor: str) -> None:
    """Decidim ``Debate#editable_by?``: the author, while the debate is open (debate.rb@0daa0cf)."""
    _require_author(debate.author, actor, "edit a debate")
    if debate.closed_at is not None:
        _refuse("debate_closed", "a closed debate cannot be edited")


def check_can_edit_comment(author: str, actor: str) -> None:
    """Decidim ``Comment#editable_by?``: only the comment's author edits it (comment.rb)."""
    _require_author(author, actor, "edit a comment")


def check_can_close_debate(debate: Debate, actor: str, conclusions: LangText | str | None) -> None:
    """Decidim ``closeable_by?`` (the author) and ``closed?`` needing conclusions (debate.rb)."""
    _require_author(debate.author, actor, "close a debate")
    if debate.closed_at is not None:
        _refuse("already_closed", "the debate is already closed")
    text = conclusions.default if isinstance(conclusions, LangText) else conclusions
    if not (text or "").strip():
        _refuse("conclusions_required", "closing a debate needs its conclusions")


def comment_depth(parent_depth: int | None) -> int:
    """The depth of a reply: the root proposal/debate is depth 0 (``None``), its comments 1."""
    if parent_depth is not None and parent_depth < 0:
        raise ValueError("a depth is never negative")
    return (parent_depth or 0) + 1


def check_comment_depth(depth: int) -> None:
    """Threads stop at depth 3 (Decidim ``MAX_DEPTH``; Decidim counts from 0, Barri from 1)."""
    if depth < 1:
        raise ValueError("a comment's depth is at least 1")
    if depth > MAX_DEPTH:
        _refuse("max_depth_reached", f"replies can nest only {MAX_DEPTH} levels deep")


def check_comment_vote(already_voted: bool) -> None:
    """One vote per resident per comment (Decidim ``CommentVote``); own comments allowed."""
    if already_voted:
        _refuse("already_voted", "you already voted on this comment")
