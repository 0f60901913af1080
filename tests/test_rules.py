"""federation.instance.rules: each rule refuses with its name and status; allowed cases pass."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from federation.instance.rules import (
    CHECK_RULES,
    DEFAULT_EDIT_WINDOW,
    FEDERATION_RULES,
    MAX_DEPTH,
    RULES,
    SERVICE_RULES,
    Resident,
    RuleViolation,
    active_phase,
    check_can_answer,
    check_can_close_debate,
    check_can_comment,
    check_can_debate,
    check_can_delete,
    check_can_delete_proposal,
    check_can_edit_debate,
    check_can_edit_proposal,
    check_can_propose,
    check_can_withdraw_proposal,
    check_comment_depth,
    check_comment_vote,
    check_rules_change,
    check_territory_eligible,
    comment_depth,
    phase_is_active,
    supports_open_from,
    territory_covers,
)
from federation.instance.support_rules import (
    SupportContext,
    check_can_support,
    check_can_withdraw_support,
    count_changes,
    counted_supports,
    remaining_supports,
    support_states,
    supports_are_final,
)
from federation.model import (
    Debate,
    LangText,
    Phase,
    Process,
    Proposal,
    ProposalState,
    SupportRules,
    Territory,
    TerritoryKind,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)

CITY = Territory(TerritoryKind.CITY, "08019", "Barcelona")
GRACIA_DISTRICT = Territory(TerritoryKind.DISTRICT, "06", "Gràcia")
VILA_DE_GRACIA = Territory(TerritoryKind.NEIGHBOURHOOD, "31", "la Vila de Gràcia", "06")
CAMP_D_EN_GRASSOT = Territory(TerritoryKind.NEIGHBOURHOOD, "33", "el Camp d'en Grassot", "06")
EL_RAVAL = Territory(TerritoryKind.NEIGHBOURHOOD, "01", "el Raval", "01")
CIUTAT_VELLA = Territory(TerritoryKind.DISTRICT, "01", "Ciutat Vella")

ANNA = "https://gracia.barri.example/users/anna"
BERNAT = "https://gracia.barri.example/users/bernat"
GROUP = "https://gracia.barri.example/groups/association"


def phase(
    start: datetime,
    end: datetime,
    *,
    proposals: bool = False,
    supports: bool = False,
    comments: bool = False,
    debates: bool = False,
) -> Phase:
    return Phase(
        name=LangText("phase"),
        start=start,
        end=end,
        allows_proposals=proposals,
        allows_supports=supports,
        allows_comments=comments,
        allows_debates=debates,
    )


# Proposals [T0, T0+10d), supports [T0+10d, T0+20d), results [T0+20d, T0+30d).
PROPOSALS_PHASE = phase(T0, T0 + 10 * DAY, proposals=True, comments=True, debates=True)
SUPPORTS_PHASE = phase(T0 + 10 * DAY, T0 + 20 * DAY, supports=True, comments=True)
RESULTS_PHASE = phase(T0 + 20 * DAY, T0 + 30 * DAY)
BEFORE, IN_PROPOSALS, IN_SUPPORTS, IN_RESULTS, AFTER = (
    T0 - DAY, T0 + DAY, T0 + 11 * DAY, T0 + 21 * DAY, T0 + 31 * DAY
)  # fmt: skip


def make_process(rules: SupportRules | None = None, /, **changes: object) -> Process:
    process = Process(
        id="https://gracia.barri.example/processes/1",
        owner=GROUP,
        name=LangText("Pressupostos"),
        summary=None,
        phases=(PROPOSALS_PHASE, SUPPORTS_PHASE, RESULTS_PHASE),
        rules=rules or SupportRules(supports_per_participant=3),
        eligible=(VILA_DE_GRACIA,),
        published=T0 - 10 * DAY,
    )
    return dataclasses.replace(process, **changes)  # type: ignore[arg-type]


def make_proposal(**changes: object) -> Proposal:
    proposal = Proposal(
        id="https://gracia.barri.example/proposals/1",
        author=ANNA,
        audience=GROUP,
        process="https://gracia.barri.example/processes/1",
        name=LangText("Més bancs"),
        content_html="<p>x</p>",
        source_markdown="x",
        published=IN_PROPOSALS,
    )
    return dataclasses.replace(proposal, **changes)  # type: ignore[arg-type]


def make_debate(**changes: object) -> Debate:
    debate = Debate(
        id="https://gracia.barri.example/debates/1",
        author=ANNA,
        audience=GROUP,
        process=None,
        name=LangText("Places"),
        content_html="<p>x</p>",
        source_markdown="x",
        published=IN_PROPOSALS,
    )
    return dataclasses.replace(debate, **changes)  # type: ignore[arg-type]


RESIDENT = Resident(ANNA, VILA_DE_GRACIA)


def ctx(**changes: object) -> SupportContext:
    context = SupportContext(
        process=make_process(),
        proposal_state=ProposalState.NOT_ANSWERED,
        proposal_final_supports=0,
        resident_active_supports=0,
        already_supported=False,
        now=IN_SUPPORTS,
    )
    return dataclasses.replace(context, **changes)  # type: ignore[arg-type]


def with_rules(**rules: object) -> SupportContext:
    return ctx(process=make_process(SupportRules(**rules)))  # type: ignore[arg-type]


Check = Callable[[], object]

# One row per rule: the smallest act that breaks exactly that rule.
REFUSALS: list[tuple[str, Check]] = [
    ("not_verified", lambda: check_can_support(Resident(ANNA), ctx())),
    ("territory_not_eligible", lambda: check_can_support(Resident(ANNA, EL_RAVAL), ctx())),
    ("not_author", lambda: check_can_edit_proposal(make_proposal(), BERNAT, IN_PROPOSALS)),
    ("proposals_phase_closed", lambda: check_can_propose(make_process(), IN_SUPPORTS)),
    ("debates_phase_closed", lambda: check_can_debate(make_process(), IN_SUPPORTS)),
    ("comments_phase_closed", lambda: check_can_comment(make_process(), IN_RESULTS)),
    ("supports_phase_closed", lambda: check_can_support(RESIDENT, ctx(now=IN_PROPOSALS))),
    ("debate_closed", lambda: check_can_comment(None, T0, debate=make_debate(closed_at=T0))),
    (
        "debate_not_open",
        lambda: check_can_comment(None, T0, debate=make_debate(start=T0 + DAY, end=T0 + 2 * DAY)),
    ),
    (
        "proposal_withdrawn",
        lambda: check_can_support(RESIDENT, ctx(proposal_state=ProposalState.WITHDRAWN)),
    ),
    (
        "proposal_rejected",
        lambda: check_can_support(RESIDENT, ctx(proposal_state=ProposalState.REJECTED)),
    ),
    ("already_supported", lambda: check_can_support(RESIDENT, ctx(already_supported=True))),
    ("support_limit_reached", lambda: check_can_support(RESIDENT, ctx(resident_active_supports=3))),
    (
        "threshold_reached",
        lambda: check_can_support(
            RESIDENT,
            dataclasses.replace(with_rules(threshold_per_proposal=2), proposal_final_supports=2),
        ),
    ),
    (
        "no_support_to_withdraw",
        lambda: check_can_withdraw_support(RESIDENT, make_process(), IN_SUPPORTS, False),
    ),
    (
        "rules_frozen",
        lambda: check_rules_change(
            make_process(), make_process(SupportRules(supports_per_participant=4)), IN_SUPPORTS
        ),
    ),
    (
        "proposal_answered",
        lambda: check_can_edit_proposal(
            make_proposal(state=ProposalState.EVALUATING), ANNA, IN_PROPOSALS
        ),
    ),
    (
        "edit_window_closed",
        lambda: check_can_edit_proposal(make_proposal(), ANNA, IN_PROPOSALS + DEFAULT_EDIT_WINDOW),
    ),
    (
        "already_withdrawn",
        lambda: check_can_withdraw_proposal(
            make_proposal(state=ProposalState.WITHDRAWN), ANNA, final_supports=0
        ),
    ),
    (
        "proposal_has_supports",
        lambda: check_can_withdraw_proposal(make_proposal(), ANNA, final_supports=1),
    ),
    ("already_closed", lambda: check_can_close_debate(make_debate(closed_at=T0), ANNA, "done")),
    ("max_depth_reached", lambda: check_comment_depth(MAX_DEPTH + 1)),
    ("already_voted", lambda: check_comment_vote(True)),
    (
        "invalid_answer_state",
        lambda: check_can_answer(ProposalState.NOT_ANSWERED, ProposalState.NOT_ANSWERED, "x"),
    ),
    (
        "answer_required",
        lambda: check_can_answer(ProposalState.NOT_ANSWERED, ProposalState.REJECTED, None),
    ),
    ("conclusions_required", lambda: check_can_close_debate(make_debate(), ANNA, "  ")),
]

ALLOWED: list[tuple[str, Check]] = [
    ("support", lambda: check_can_support(RESIDENT, ctx())),
    (
        "support-just-under-limit",
        lambda: check_can_support(RESIDENT, ctx(resident_active_supports=2)),
    ),
    (
        "support-unlimited",
        lambda: check_can_support(
            RESIDENT,
            dataclasses.replace(
                with_rules(supports_per_participant=0), resident_active_supports=1000
            ),
        ),
    ),
    (
        "support-under-threshold",
        lambda: check_can_support(
            RESIDENT,
            dataclasses.replace(with_rules(threshold_per_proposal=2), proposal_final_supports=1),
        ),
    ),
    (
        "support-beyond-threshold-accumulating",
        lambda: check_can_support(
            RESIDENT,
            dataclasses.replace(
                with_rules(threshold_per_proposal=2, accumulate_beyond_threshold=True),
                proposal_final_supports=5,
            ),
        ),
    ),
    (
        "support-accepted-proposal",
        lambda: check_can_support(RESIDENT, ctx(proposal_state=ProposalState.ACCEPTED)),
    ),
    (
        "support-evaluating-proposal",
        lambda: check_can_support(RESIDENT, ctx(proposal_state=ProposalState.EVALUATING)),
    ),
    (
        "withdraw-support",
        lambda: check_can_withdraw_support(RESIDENT, make_process(), IN_SUPPORTS, True),
    ),
    (
        "withdraw-support-unverified",
        lambda: check_can_withdraw_support(Resident(ANNA), make_process(), IN_SUPPORTS, True),
    ),
    ("propose", lambda: check_can_propose(make_process(), IN_PROPOSALS)),
    ("debate", lambda: check_can_debate(make_process(), IN_PROPOSALS)),
    ("debate-outside-process", lambda: check_can_debate(None, AFTER)),
    ("comment-proposals-phase", lambda: check_can_comment(make_process(), IN_PROPOSALS)),
    ("comment-supports-phase", lambda: check_can_comment(make_process(), IN_SUPPORTS)),
    ("comment-no-process", lambda: check_can_comment(None, AFTER)),
    ("comment-open-debate", lambda: check_can_comment(None, T0, debate=make_debate())),
    (
        "comment-ama-window",
        lambda: check_can_comment(None, T0, debate=make_debate(start=T0, end=T0 + DAY)),
    ),
    ("territory", lambda: check_territory_eligible(make_process(), RESIDENT)),
    (
        "rules-change-before-supports",
        lambda: check_rules_change(
            make_process(), make_process(SupportRules(supports_per_participant=4)), IN_PROPOSALS
        ),
    ),
    ("edit-proposal", lambda: check_can_edit_proposal(make_proposal(), ANNA, IN_PROPOSALS)),
    (
        "edit-proposal-no-window",
        lambda: check_can_edit_proposal(make_proposal(), ANNA, AFTER, edit_window=None),
    ),
    (
        "withdraw-proposal",
        lambda: check_can_withdraw_proposal(make_proposal(), ANNA, final_supports=0),
    ),
    (
        "answer-accepted",
        lambda: check_can_answer(ProposalState.NOT_ANSWERED, ProposalState.ACCEPTED, None),
    ),
    (
        "answer-rejected-with-text",
        lambda: check_can_answer(
            ProposalState.ACCEPTED, "rejected", LangText("Massa car", (("ca", "Massa car"),))
        ),
    ),
    ("edit-debate", lambda: check_can_edit_debate(make_debate(), ANNA)),
    ("close-debate", lambda: check_can_close_debate(make_debate(), ANNA, LangText("Fet"))),
    ("comment-depth-3", lambda: check_comment_depth(MAX_DEPTH)),
    ("comment-vote", lambda: check_comment_vote(False)),
]


def refusal(check: Check) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        check()
    return caught.value


def test_every_check_rule_has_a_refusal_case() -> None:
    assert {rule for rule, _ in REFUSALS} == set(CHECK_RULES)
    assert len(REFUSALS) == len(CHECK_RULES)


def test_rules_is_the_union_of_its_three_parts_without_conflicts() -> None:
    parts = (CHECK_RULES, SERVICE_RULES, FEDERATION_RULES)
    assert sum(len(part) for part in parts) == len(RULES)
    for part in parts:
        assert all(RULES[rule] == status for rule, status in part.items())


def test_statuses_are_only_400_403_409() -> None:
    assert set(RULES.values()) == {400, 403, 409}
    assert {r for r, s in CHECK_RULES.items() if s == 403} == {
        "not_verified", "territory_not_eligible", "not_author"
    }  # fmt: skip
    assert {r for r, s in CHECK_RULES.items() if s == 400} == {
        "invalid_answer_state", "answer_required", "conclusions_required"
    }  # fmt: skip
    assert dict(SERVICE_RULES) == {
        "not_admin": 403, "not_owner": 403, "no_vote_to_withdraw": 409, "wrong_audience": 400
    }  # fmt: skip


@pytest.mark.parametrize(("rule", "check"), REFUSALS, ids=[rule for rule, _ in REFUSALS])
def test_each_rule_refuses_with_its_name_and_status(rule: str, check: Check) -> None:
    violation = refusal(check)
    assert violation.rule == rule
    assert violation.status == RULES[rule]
    assert violation.detail and rule in str(violation)
    problem = violation.problem()
    assert problem.status == RULES[rule]
    assert problem.extensions == {"rule": rule}
    assert problem.to_json()["rule"] == rule


@pytest.mark.parametrize("check", [c for _, c in ALLOWED], ids=[name for name, _ in ALLOWED])
def test_allowed_cases_pass(check: Check) -> None:
    check()


# -- phases --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0 - SECOND, None),
        (T0, PROPOSALS_PHASE),  # start inclusive
        (T0 + 10 * DAY - SECOND, PROPOSALS_PHASE),
        (T0 + 10 * DAY, SUPPORTS_PHASE),  # end exclusive: the next phase owns the instant
        (T0 + 20 * DAY - SECOND, SUPPORTS_PHASE),
        (T0 + 20 * DAY, RESULTS_PHASE),
        (T0 + 30 * DAY - SECOND, RESULTS_PHASE),
        (T0 + 30 * DAY, None),
    ],
)
def test_active_phase_start_inclusive_end_exclusive(now: datetime, expected: Phase | None) -> None:
    assert active_phase(make_process(), now) == expected


def test_phase_boundaries_with_a_gap() -> None:
    alone = phase(T0, T0 + DAY, supports=True)
    assert not phase_is_active(alone, T0 - SECOND)
    assert phase_is_active(alone, T0)
    assert not phase_is_active(alone, T0 + DAY)
    process = make_process(phases=(alone,))
    check_can_support(RESIDENT, ctx(process=process, now=T0))
    assert refusal(
        lambda: check_can_support(RESIDENT, ctx(process=process, now=T0 + DAY))
    ).rule == ("supports_phase_closed")


@pytest.mark.parametrize("now", [BEFORE, IN_PROPOSALS, T0 + 20 * DAY, IN_RESULTS, AFTER])
def test_supports_refused_outside_the_supports_phase(now: datetime) -> None:
    assert (
        refusal(lambda: check_can_support(RESIDENT, ctx(now=now))).rule == "supports_phase_closed"
    )
    assert (
        refusal(lambda: check_can_withdraw_support(RESIDENT, make_process(), now, True)).rule
        == "supports_phase_closed"
    )


@pytest.mark.parametrize("now", [T0 + 10 * DAY, IN_SUPPORTS, T0 + 20 * DAY - SECOND])
def test_supports_allowed_inside_the_supports_phase(now: datetime) -> None:
    check_can_support(RESIDENT, ctx(now=now))
    check_can_withdraw_support(RESIDENT, make_process(), now, True)


@pytest.mark.parametrize("now", [BEFORE, IN_SUPPORTS, AFTER, T0 + 10 * DAY])
def test_proposals_and_debates_only_in_their_phase(now: datetime) -> None:
    assert refusal(lambda: check_can_propose(make_process(), now)).rule == "proposals_phase_closed"
    assert refusal(lambda: check_can_debate(make_process(), now)).rule == "debates_phase_closed"


def test_comment_on_ama_debate_window_start_inclusive_end_exclusive() -> None:
    debate = make_debate(start=T0, end=T0 + DAY)
    check_can_comment(None, T0, debate=debate)
    check_can_comment(None, T0 + DAY - SECOND, debate=debate)
    for now in (T0 - SECOND, T0 + DAY):
        violation = refusal(functools.partial(check_can_comment, None, now, debate=debate))
        assert violation.rule == "debate_not_open"


def test_comment_in_process_phase_checked_before_debate_state() -> None:
    debate = make_debate(closed_at=T0)
    violation = refusal(lambda: check_can_comment(make_process(), AFTER, debate=debate))
    assert violation.rule == "comments_phase_closed"


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        active_phase(make_process(), datetime(2026, 3, 2))


# -- territories ---------------------------------------------------------------------------

RAVAL_PADDED = Territory(TerritoryKind.NEIGHBOURHOOD, "1", "el Raval", "1")


@pytest.mark.parametrize(
    ("eligible", "home", "covered"),
    [
        (VILA_DE_GRACIA, VILA_DE_GRACIA, True),
        (VILA_DE_GRACIA, CAMP_D_EN_GRASSOT, False),  # same district, other neighbourhood
        (VILA_DE_GRACIA, GRACIA_DISTRICT, False),  # district residents: neighbourhood unknown
        (EL_RAVAL, RAVAL_PADDED, True),  # "01" and "1" are the same open-data code
        (GRACIA_DISTRICT, VILA_DE_GRACIA, True),
        (GRACIA_DISTRICT, CAMP_D_EN_GRASSOT, True),
        (GRACIA_DISTRICT, GRACIA_DISTRICT, True),
        (GRACIA_DISTRICT, EL_RAVAL, False),
        (GRACIA_DISTRICT, CIUTAT_VELLA, False),
        (CIUTAT_VELLA, RAVAL_PADDED, True),
        (GRACIA_DISTRICT, Territory(TerritoryKind.NEIGHBOURHOOD, "31"), False),  # no district
        (CITY, VILA_DE_GRACIA, True),
        (CITY, CIUTAT_VELLA, True),
        (CITY, CITY, True),
        (CITY, Territory(TerritoryKind.CITY, "08001"), False),
        (VILA_DE_GRACIA, CITY, False),
        (GRACIA_DISTRICT, CITY, False),
    ],
)
def test_territory_covers(eligible: Territory, home: Territory, covered: bool) -> None:
    assert territory_covers(eligible, home) is covered
    process = make_process(eligible=(eligible,))
    if covered:
        check_territory_eligible(process, Resident(ANNA, home))
        check_can_support(Resident(ANNA, home), ctx(process=process))
    else:
        violation = refusal(lambda: check_territory_eligible(process, Resident(ANNA, home)))
        assert violation.rule == "territory_not_eligible" and violation.status == 403


def test_any_eligible_territory_is_enough() -> None:
    process = make_process(eligible=(EL_RAVAL, GRACIA_DISTRICT))
    check_territory_eligible(process, Resident(ANNA, CAMP_D_EN_GRASSOT))
    check_territory_eligible(process, Resident(ANNA, EL_RAVAL))
    violation = refusal(lambda: check_territory_eligible(process, Resident(ANNA, CIUTAT_VELLA)))
    assert "district 01" in violation.detail


def test_unverified_resident_is_refused_before_territory() -> None:
    assert refusal(lambda: check_territory_eligible(make_process(), Resident(ANNA))).rule == (
        "not_verified"
    )


# -- support order, limits, threshold ------------------------------------------------------


def test_support_rules_first_failure_wins_in_the_documented_order() -> None:
    everything_wrong: dict[str, object] = dict(
        process=make_process(SupportRules(supports_per_participant=1, threshold_per_proposal=1)),
        proposal_state=ProposalState.REJECTED,
        proposal_final_supports=5,
        resident_active_supports=5,
        already_supported=True,
        now=IN_PROPOSALS,
    )
    open_now: dict[str, object] = {"now": IN_SUPPORTS}
    accepted = open_now | {"proposal_state": ProposalState.ACCEPTED}
    under_limit = accepted | {"already_supported": False}
    order: list[tuple[str, Resident, dict[str, object]]] = [
        ("not_verified", Resident(ANNA), {}),
        ("territory_not_eligible", Resident(ANNA, EL_RAVAL), {}),
        ("supports_phase_closed", RESIDENT, {}),
        ("proposal_withdrawn", RESIDENT, open_now | {"proposal_state": ProposalState.WITHDRAWN}),
        ("proposal_rejected", RESIDENT, open_now),
        ("already_supported", RESIDENT, accepted),
        ("support_limit_reached", RESIDENT, under_limit),
        ("threshold_reached", RESIDENT, under_limit | {"resident_active_supports": 0}),
    ]
    for rule, resident, fixes in order:
        context = ctx(**(everything_wrong | fixes))
        assert refusal(functools.partial(check_can_support, resident, context)).rule == rule


@pytest.mark.parametrize(("active", "allowed"), [(0, True), (2, True), (3, False), (4, False)])
def test_support_limit_boundary(active: int, allowed: bool) -> None:
    context = ctx(resident_active_supports=active)
    if allowed:
        check_can_support(RESIDENT, context)
    else:
        assert refusal(lambda: check_can_support(RESIDENT, context)).rule == "support_limit_reached"


@pytest.mark.parametrize(
    ("final", "accumulate", "allowed"),
    [(0, False, True), (1, False, True), (2, False, False), (3, False, False), (2, True, True)],
)
def test_threshold_boundary(final: int, accumulate: bool, allowed: bool) -> None:
    rules = SupportRules(threshold_per_proposal=2, accumulate_beyond_threshold=accumulate)
    context = ctx(process=make_process(rules), proposal_final_supports=final)
    if allowed:
        check_can_support(RESIDENT, context)
    else:
        assert refusal(lambda: check_can_support(RESIDENT, context)).rule == "threshold_reached"


def test_remaining_supports() -> None:
    assert remaining_supports(make_process(), 0) == 3
    assert remaining_supports(make_process(), 2) == 1
    assert remaining_supports(make_process(), 7) == 0
    assert remaining_supports(make_process(SupportRules()), 7) is None


# -- minimum supports per participant ---------------------------------------------------------


def test_support_states_flip_to_final_at_the_minimum_and_back() -> None:
    assert support_states(3, ["p1", "p2"]) == {"p1": "temporary", "p2": "temporary"}
    assert support_states(3, ["p1", "p2", "p3"]) == dict.fromkeys(["p1", "p2", "p3"], "final")
    assert support_states(3, ["p1", "p2", "p3", "p4"]) == dict.fromkeys(
        ["p1", "p2", "p3", "p4"], "final"
    )
    # Withdrawing p2 drops below the minimum: the rest are temporary again.
    assert support_states(3, ["p1", "p3"]) == {"p1": "temporary", "p3": "temporary"}
    assert support_states(0, ["p1"]) == {"p1": "final"}
    assert support_states(3, []) == {}


def test_supports_are_final() -> None:
    assert supports_are_final(0, 0) and supports_are_final(0, 1)
    assert not supports_are_final(2, 1)
    assert supports_are_final(2, 2) and supports_are_final(2, 3)


def test_counted_supports_count_final_only() -> None:
    active = {ANNA: ["p1", "p2"], BERNAT: ["p1"], "carla": ["p2", "p3", "p1"]}
    assert counted_supports(0, active) == {"p1": 3, "p2": 2, "p3": 1}
    assert counted_supports(2, active) == {"p1": 2, "p2": 2, "p3": 1}
    assert counted_supports(3, active) == {"p1": 1, "p2": 1, "p3": 1}
    assert counted_supports(4, active) == {"p1": 0, "p2": 0, "p3": 0}


def test_count_changes_flip_both_ways() -> None:
    # Reaching the minimum: the new support and the two earlier ones all start counting.
    assert count_changes(3, ["p1", "p2"], ["p1", "p2", "p3"]) == {"p1": 1, "p2": 1, "p3": 1}
    # Dropping below it: the withdrawn one and the remaining ones all stop counting.
    assert count_changes(3, ["p1", "p2", "p3"], ["p1", "p3"]) == {"p1": -1, "p2": -1, "p3": -1}
    # Above the minimum: only the proposal concerned moves.
    assert count_changes(2, ["p1", "p2"], ["p1", "p2", "p3"]) == {"p3": 1}
    assert count_changes(2, ["p1", "p2", "p3"], ["p1", "p3"]) == {"p2": -1}
    # Still below: nothing counted moves.
    assert count_changes(3, ["p1"], ["p1", "p2"]) == {}
    assert count_changes(0, [], ["p1"]) == {"p1": 1}


def test_threshold_counts_final_supports_only() -> None:
    # Two temporary supports do not fill a threshold of 2: the caller passes final ones only.
    rules = SupportRules(threshold_per_proposal=2, minimum_supports_per_participant=2)
    final = counted_supports(2, {ANNA: ["p1"], BERNAT: ["p1"]})["p1"]
    check_can_support(RESIDENT, ctx(process=make_process(rules), proposal_final_supports=final))


# -- rules frozen -----------------------------------------------------------------------------

LATER_SUPPORTS = (PROPOSALS_PHASE, phase(T0 + 10 * DAY, T0 + 25 * DAY, supports=True))


@pytest.mark.parametrize(
    ("what", "changes"),
    [
        ("support rules", {"rules": SupportRules(supports_per_participant=4)}),
        ("support rules", {"rules": SupportRules(3, minimum_supports_per_participant=1)}),
        ("support rules", {"rules": SupportRules(3, threshold_per_proposal=10)}),
        ("support rules", {"rules": SupportRules(3, accumulate_beyond_threshold=True)}),
        ("eligible territories", {"eligible": (VILA_DE_GRACIA, EL_RAVAL)}),
        ("eligible territories", {"eligible": (GRACIA_DISTRICT,)}),
        ("supports phases", {"phases": LATER_SUPPORTS}),
        ("supports phases", {"phases": (PROPOSALS_PHASE, phase(T0 + 10 * DAY, T0 + 20 * DAY))}),
    ],
)
def test_rules_frozen_once_supports_opened(what: str, changes: dict[str, object]) -> None:
    before, after = make_process(), make_process(**changes)
    check_rules_change(before, after, T0 + 10 * DAY - SECOND)  # one second before: allowed
    for now in (T0 + 10 * DAY, IN_SUPPORTS, AFTER):  # from the opening on, even after closing
        violation = refusal(functools.partial(check_rules_change, before, after, now))
        assert violation.rule == "rules_frozen" and violation.status == 409
        assert what in violation.detail


def test_rules_frozen_allows_harmless_edits() -> None:
    before = make_process()
    renamed = make_process(
        name=LangText("Nou nom"),
        summary=LangText("Resum"),
        eligible=(Territory(TerritoryKind.NEIGHBOURHOOD, "31", "Vila de Gràcia", "6"),),
        phases=(phase(T0, T0 + 9 * DAY, proposals=True), SUPPORTS_PHASE, RESULTS_PHASE),
    )
    check_rules_change(before, renamed, IN_SUPPORTS)
    check_rules_change(before, before, AFTER)


def test_rules_never_frozen_without_a_supports_phase() -> None:
    before = make_process(phases=(PROPOSALS_PHASE,))
    assert supports_open_from(before) is None
    check_rules_change(before, make_process(SupportRules(9), phases=(PROPOSALS_PHASE,)), AFTER)
    assert supports_open_from(make_process()) == T0 + 10 * DAY


# -- proposals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proposal", "actor", "now", "rule"),
    [
        (make_proposal(), BERNAT, IN_PROPOSALS, "not_author"),
        (make_proposal(state=ProposalState.WITHDRAWN), ANNA, IN_PROPOSALS, "proposal_withdrawn"),
        (make_proposal(state=ProposalState.ACCEPTED), ANNA, IN_PROPOSALS, "proposal_answered"),
        (make_proposal(state=ProposalState.REJECTED), ANNA, IN_PROPOSALS, "proposal_answered"),
        (make_proposal(state=ProposalState.EVALUATING), BERNAT, IN_PROPOSALS, "not_author"),
        (make_proposal(), ANNA, IN_PROPOSALS + DEFAULT_EDIT_WINDOW, "edit_window_closed"),
        (make_proposal(), ANNA, AFTER, "edit_window_closed"),
    ],
)
def test_edit_proposal_refusals(proposal: Proposal, actor: str, now: datetime, rule: str) -> None:
    assert refusal(lambda: check_can_edit_proposal(proposal, actor, now)).rule == rule


def test_edit_window_is_end_exclusive_and_configurable() -> None:
    proposal = make_proposal()
    check_can_edit_proposal(proposal, ANNA, IN_PROPOSALS)
    check_can_edit_proposal(proposal, ANNA, IN_PROPOSALS + DEFAULT_EDIT_WINDOW - SECOND)
    check_can_edit_proposal(proposal, ANNA, IN_PROPOSALS + DAY, timedelta(days=2))
    assert DEFAULT_EDIT_WINDOW == timedelta(minutes=5)


def test_withdraw_proposal_rules() -> None:
    assert (
        refusal(lambda: check_can_withdraw_proposal(make_proposal(), BERNAT, final_supports=0)).rule
        == "not_author"
    )
    check_can_withdraw_proposal(make_proposal(state=ProposalState.ACCEPTED), ANNA, final_supports=0)


def test_delete_proposal_rules() -> None:
    """Only its author, never once answered, never with a final support (temporary ones go)."""
    check_can_delete_proposal(make_proposal(), ANNA, final_supports=0)
    check_can_delete_proposal(make_proposal(state=ProposalState.WITHDRAWN), ANNA, final_supports=0)
    accepted = make_proposal(state=ProposalState.ACCEPTED)
    cases = [
        (make_proposal(), BERNAT, 0, "not_author"),
        (make_proposal(), BERNAT, 2, "not_author"),  # who first
        (make_proposal(), ANNA, 1, "proposal_has_supports"),
        (accepted, ANNA, 0, "proposal_answered"),
    ]
    for proposal, actor, final, rule in cases:
        violation = refusal(
            functools.partial(check_can_delete_proposal, proposal, actor, final_supports=final)
        )
        assert (violation.rule, violation.status) == (rule, RULES[rule])


def test_delete_debate_or_comment_by_its_author_only() -> None:
    check_can_delete(ANNA, ANNA, "a comment")
    violation = refusal(lambda: check_can_delete(ANNA, BERNAT, "a comment"))
    assert (violation.rule, violation.status) == ("not_author", 403)
    assert "delete a comment" in violation.detail


@pytest.mark.parametrize("state", ["evaluating", "accepted", "rejected"])
@pytest.mark.parametrize("current", [s for s in ProposalState if s is not ProposalState.WITHDRAWN])
def test_answer_states_allowed(current: ProposalState, state: str) -> None:
    assert check_can_answer(current, state, "Per què") == ProposalState(state)


@pytest.mark.parametrize("state", ["notAnswered", "withdrawn", "approved", ""])
def test_answer_invalid_states(state: str) -> None:
    violation = refusal(lambda: check_can_answer(ProposalState.NOT_ANSWERED, state, "x"))
    assert violation.rule == "invalid_answer_state" and violation.status == 400


@pytest.mark.parametrize("answer", [None, "", "   ", LangText(""), LangText(" \n")])
def test_rejection_needs_an_answer(answer: LangText | str | None) -> None:
    violation = refusal(lambda: check_can_answer(ProposalState.EVALUATING, "rejected", answer))
    assert violation.rule == "answer_required"
    check_can_answer(ProposalState.EVALUATING, "accepted", answer)


def test_withdrawn_proposal_cannot_be_answered_whatever_the_request() -> None:
    violation = refusal(lambda: check_can_answer(ProposalState.WITHDRAWN, "bogus", None))
    assert violation.rule == "proposal_withdrawn"


# -- debates and comments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("debate", "actor", "conclusions", "rule"),
    [
        (make_debate(), BERNAT, "done", "not_author"),
        (make_debate(closed_at=T0), BERNAT, "done", "not_author"),
        (make_debate(closed_at=T0), ANNA, None, "already_closed"),
        (make_debate(), ANNA, None, "conclusions_required"),
        (make_debate(), ANNA, LangText("", (("ca", "fet"),)), "conclusions_required"),
    ],
)
def test_close_debate_refusals(
    debate: Debate, actor: str, conclusions: LangText | str | None, rule: str
) -> None:
    assert refusal(lambda: check_can_close_debate(debate, actor, conclusions)).rule == rule


def test_edit_debate_refusals() -> None:
    assert refusal(lambda: check_can_edit_debate(make_debate(), BERNAT)).rule == "not_author"
    closed = make_debate(closed_at=T0)
    assert refusal(lambda: check_can_edit_debate(closed, ANNA)).rule == "debate_closed"


@pytest.mark.parametrize(("parent", "depth"), [(None, 1), (0, 1), (1, 2), (2, 3), (3, 4)])
def test_comment_depth(parent: int | None, depth: int) -> None:
    assert comment_depth(parent) == depth


def test_comment_depth_limit() -> None:
    for depth in (1, 2, 3):
        check_comment_depth(comment_depth(depth - 1))
    violation = refusal(lambda: check_comment_depth(comment_depth(3)))
    assert violation.rule == "max_depth_reached"
    with pytest.raises(ValueError, match="negative"):
        comment_depth(-1)
    with pytest.raises(ValueError, match="at least 1"):
        check_comment_depth(0)


def test_a_rejection_or_withdrawal_binds_only_supports_judged_after_it() -> None:
    # A remote support is judged at its published time: one given before the proposal was
    # rejected (or withdrawn) still counts when its delivery arrives after the answer.
    answered = IN_SUPPORTS + timedelta(minutes=5)
    for state, rule in ((ProposalState.REJECTED, "proposal_rejected"),
                        (ProposalState.WITHDRAWN, "proposal_withdrawn")):  # fmt: skip
        earlier = ctx(proposal_state=state, proposal_state_since=answered)
        check_can_support(RESIDENT, earlier)
        for later in (answered, answered + timedelta(seconds=1)):
            with pytest.raises(RuleViolation) as refused:
                check_can_support(RESIDENT, dataclasses.replace(earlier, now=later))
            assert refused.value.rule == rule
        with pytest.raises(RuleViolation):
            check_can_support(RESIDENT, ctx(proposal_state=state))  # time unknown: binds
