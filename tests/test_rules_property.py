"""Property test: an instance deciding only with federation.instance.rules agrees with a tiny model.

Random sequences of support, withdraw support, answer, withdraw proposal, clock advances across
phases and per-participant limit changes (weighted towards supports, so limits, thresholds and
minimums are reached within short runs) drive two machines side by side:

* ``Instance`` keeps state the way a service would and asks *only* the rule functions
  (``check_*``, ``counted_supports``, ``support_states``) what is allowed and what counts;
* ``Model`` is written from the issue's rules in a few plain lines each, sharing no code.

At every step both must refuse with the same rule (or both accept) and agree on each
proposal's counted total (final supports only, minimum-supports respected).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from federation.instance.rules import (
    Resident,
    RuleViolation,
    check_can_answer,
    check_can_withdraw_proposal,
    check_rules_change,
)
from federation.instance.support_rules import (
    SupportContext,
    check_can_support,
    check_can_withdraw_support,
    counted_supports,
    support_states,
)
from federation.model import (
    LangText,
    Phase,
    Process,
    Proposal,
    ProposalState,
    SupportRules,
    Territory,
    TerritoryKind,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SUPPORTS_OPEN = T0 + timedelta(days=2)
SUPPORTS_CLOSE = T0 + timedelta(days=5)
END = T0 + timedelta(days=6)
SECOND = timedelta(seconds=1)
AUTHOR = "https://gracia.barri.example/users/author"

VILA = Territory(TerritoryKind.NEIGHBOURHOOD, "31", "la Vila de Gràcia", "06")
GRASSOT = Territory(TerritoryKind.NEIGHBOURHOOD, "33", "el Camp d'en Grassot", "06")
RAVAL = Territory(TerritoryKind.NEIGHBOURHOOD, "01", "el Raval", "01")
HOMES: dict[str, Territory | None] = {
    "vila": VILA,
    "vila2": VILA,
    "vila3": VILA,
    "grassot": GRASSOT,
    "raval": RAVAL,
    "anon": None,
}
RESIDENTS = tuple(HOMES)
PROPOSALS = ("p0", "p1")

# Eligible territories, and by hand (not via territory_covers) who lives in them.
ELIGIBILITY: dict[str, tuple[tuple[Territory, ...], set[str]]] = {
    "vila": ((VILA,), {"vila", "vila2", "vila3"}),
    "district 06": (
        (Territory(TerritoryKind.DISTRICT, "06"),),
        {"vila", "vila2", "vila3", "grassot"},
    ),
    "city": (
        (Territory(TerritoryKind.CITY, "08019"),),
        {"vila", "vila2", "vila3", "grassot", "raval"},
    ),
    "raval+vila": ((RAVAL, VILA), {"vila", "vila2", "vila3", "raval"}),
}


def make_phase(start: datetime, end: datetime, supports: bool) -> Phase:
    return Phase(
        name=LangText("phase"),
        start=start,
        end=end,
        allows_proposals=not supports,
        allows_supports=supports,
        allows_comments=True,
        allows_debates=False,
    )


class Instance:
    """What a service does: keep state, ask only the rule functions."""

    def __init__(self, rules: SupportRules, eligible: tuple[Territory, ...]) -> None:
        self.process = Process(
            id="https://gracia.barri.example/processes/1",
            owner="https://gracia.barri.example/groups/association",
            name=LangText("Pressupostos"),
            summary=None,
            phases=(
                make_phase(T0, SUPPORTS_OPEN, supports=False),
                make_phase(SUPPORTS_OPEN, SUPPORTS_CLOSE, supports=True),
                make_phase(SUPPORTS_CLOSE, END, supports=False),
            ),
            rules=rules,
            eligible=eligible,
            published=T0,
        )
        self.now = T0
        self.states = dict.fromkeys(PROPOSALS, ProposalState.NOT_ANSWERED)
        self.active: dict[str, list[str]] = {r: [] for r in RESIDENTS}

    def counts(self) -> dict[str, int]:
        totals = counted_supports(self.process.rules.minimum_supports_per_participant, self.active)
        return {p: totals.get(p, 0) for p in PROPOSALS}

    def resident(self, name: str) -> Resident:
        return Resident(f"https://gracia.barri.example/users/{name}", HOMES[name])

    def support(self, name: str, proposal: str) -> str | None:
        context = SupportContext(
            process=self.process,
            proposal_state=self.states[proposal],
            proposal_final_supports=self.counts()[proposal],
            resident_active_supports=len(self.active[name]),
            already_supported=proposal in self.active[name],
            now=self.now,
        )
        try:
            check_can_support(self.resident(name), context)
        except RuleViolation as violation:
            return violation.rule
        self.active[name].append(proposal)
        return None

    def withdraw_support(self, name: str, proposal: str) -> str | None:
        has = proposal in self.active[name]
        try:
            check_can_withdraw_support(self.resident(name), self.process, self.now, has)
        except RuleViolation as violation:
            return violation.rule
        self.active[name].remove(proposal)
        return None

    def answer(self, proposal: str, state: str) -> str | None:
        try:
            self.states[proposal] = check_can_answer(self.states[proposal], state, "Motiu")
        except RuleViolation as violation:
            return violation.rule
        return None

    def withdraw_proposal(self, proposal: str) -> str | None:
        stored = Proposal(
            id=f"https://gracia.barri.example/proposals/{proposal}",
            author=AUTHOR,
            audience=self.process.owner,
            process=self.process.id,
            name=LangText(proposal),
            content_html="",
            source_markdown=None,
            published=T0,
            state=self.states[proposal],
        )
        try:
            check_can_withdraw_proposal(stored, AUTHOR, final_supports=self.counts()[proposal])
        except RuleViolation as violation:
            return violation.rule
        self.states[proposal] = ProposalState.WITHDRAWN
        return None

    def change_limit(self, limit: int, minimum: int) -> str | None:
        rules = dataclasses.replace(
            self.process.rules,
            supports_per_participant=limit,
            minimum_supports_per_participant=minimum,
        )
        after = dataclasses.replace(self.process, rules=rules)
        try:
            check_rules_change(self.process, after, self.now)
        except RuleViolation as violation:
            return violation.rule
        self.process = after
        return None


class Model:
    """The issue's support rules, each in a line or two, sharing no code with the rules module."""

    def __init__(self, rules: SupportRules, eligible_residents: set[str]) -> None:
        self.limit = rules.supports_per_participant
        self.threshold = rules.threshold_per_proposal
        self.accumulate = rules.accumulate_beyond_threshold
        self.minimum = rules.minimum_supports_per_participant
        self.eligible = eligible_residents
        self.now = T0
        self.state = dict.fromkeys(PROPOSALS, "notAnswered")
        self.active: dict[str, list[str]] = {r: [] for r in RESIDENTS}

    def is_final(self, name: str) -> bool:
        return len(self.active[name]) >= self.minimum

    def count(self, proposal: str) -> int:
        return sum(1 for r in RESIDENTS if proposal in self.active[r] and self.is_final(r))

    def supports_open(self) -> bool:
        return SUPPORTS_OPEN <= self.now < SUPPORTS_CLOSE

    def support(self, name: str, proposal: str) -> str | None:
        refusal = (
            "not_verified" if name == "anon"
            else "territory_not_eligible" if name not in self.eligible
            else "supports_phase_closed" if not self.supports_open()
            else "proposal_withdrawn" if self.state[proposal] == "withdrawn"
            else "proposal_rejected" if self.state[proposal] == "rejected"
            else "already_supported" if proposal in self.active[name]
            else "support_limit_reached" if 0 < self.limit <= len(self.active[name])
            else "threshold_reached"
            if 0 < self.threshold <= self.count(proposal) and not self.accumulate
            else None
        )  # fmt: skip
        if refusal is None:
            self.active[name].append(proposal)
        return refusal

    def withdraw_support(self, name: str, proposal: str) -> str | None:
        if not self.supports_open():
            return "supports_phase_closed"
        if proposal not in self.active[name]:
            return "no_support_to_withdraw"
        self.active[name].remove(proposal)
        return None

    def answer(self, proposal: str, state: str) -> str | None:
        if self.state[proposal] == "withdrawn":
            return "proposal_withdrawn"
        self.state[proposal] = state
        return None

    def withdraw_proposal(self, proposal: str) -> str | None:
        if self.state[proposal] == "withdrawn":
            return "already_withdrawn"
        if self.count(proposal) > 0:
            return "proposal_has_supports"
        self.state[proposal] = "withdrawn"
        return None

    def change_limit(self, limit: int, minimum: int) -> str | None:
        if (limit, minimum) != (self.limit, self.minimum) and self.now >= SUPPORTS_OPEN:
            return "rules_frozen"
        self.limit, self.minimum = limit, minimum
        return None


residents = st.sampled_from(RESIDENTS)
proposals = st.sampled_from(PROPOSALS)
# Clock moves: a step forward, or a jump to just before / at a supports-phase boundary.
BOUNDARIES = (SUPPORTS_OPEN - SECOND, SUPPORTS_OPEN, SUPPORTS_CLOSE - SECOND, SUPPORTS_CLOSE)
STEPS = (SECOND, timedelta(hours=1), timedelta(hours=12), timedelta(days=1))
# Most runs start at or inside the supports phase, where most rules have something to decide.
STARTS = (SUPPORTS_OPEN, SUPPORTS_OPEN + timedelta(days=1), SUPPORTS_OPEN - SECOND, T0)

Operation = tuple[str, tuple[object, ...]]
OPERATIONS: dict[str, st.SearchStrategy[tuple[object, ...]]] = {
    "support": st.tuples(residents, proposals),
    "withdraw_support": st.tuples(residents, proposals),
    "answer": st.tuples(proposals, st.sampled_from(["evaluating", "accepted", "rejected"])),
    "withdraw_proposal": st.tuples(proposals),
    "change_limit": st.integers(0, 3).flatmap(
        lambda limit: st.tuples(st.just(limit), st.integers(0, limit or 3))
    ),
    "advance": st.tuples(st.sampled_from(STEPS + BOUNDARIES)),
}
WEIGHTED_KINDS = ["support"] * 10 + ["withdraw_support"] * 3 + ["advance"] * 3 + [
    "answer", "withdraw_proposal", "change_limit"
]  # fmt: skip


def operation() -> st.SearchStrategy[Operation]:
    return st.sampled_from(WEIGHTED_KINDS).flatmap(
        lambda kind: OPERATIONS[kind].map(lambda args: (kind, args))
    )


@st.composite
def support_rules(draw: st.DrawFn) -> SupportRules:
    limit = draw(st.integers(0, 3))
    return SupportRules(
        supports_per_participant=limit,
        threshold_per_proposal=draw(st.integers(0, 2)),
        accumulate_beyond_threshold=draw(st.booleans()),
        minimum_supports_per_participant=draw(st.integers(0, limit or 3)),
    )


def advance(instance: Instance, model: Model, move: object) -> None:
    """Move both clocks forward by a step, or to a boundary if it lies ahead."""
    if isinstance(move, timedelta):
        model.now += move
    else:
        assert isinstance(move, datetime)
        model.now = max(model.now, move)  # the clock never runs backwards
    instance.now = model.now


def assert_agree(instance: Instance, model: Model) -> None:
    """Same counted totals, same temporary/final states, nobody beyond the limit."""
    assert instance.counts() == {p: model.count(p) for p in PROPOSALS}
    rules = instance.process.rules
    for name in RESIDENTS:
        states = support_states(rules.minimum_supports_per_participant, instance.active[name])
        assert set(states.values()) <= {"final" if model.is_final(name) else "temporary"}
        limit = rules.supports_per_participant
        assert limit == 0 or len(instance.active[name]) <= limit


@settings(max_examples=200, deadline=None)
@given(
    rules=support_rules(),
    eligibility=st.sampled_from(sorted(ELIGIBILITY)),
    start=st.sampled_from(STARTS),
    operations=st.lists(operation(), min_size=10, max_size=60),
)
def test_instance_rules_agree_with_the_model(
    rules: SupportRules, eligibility: str, start: datetime, operations: list[Operation]
) -> None:
    territories, living_there = ELIGIBILITY[eligibility]
    instance, model = Instance(rules, territories), Model(rules, living_there)
    instance.now = model.now = start
    for kind, args in operations:
        if kind == "advance":
            advance(instance, model, args[0])
            continue
        expected = getattr(model, kind)(*args)
        note(f"{model.now.isoformat()} {kind}{args} -> {expected or 'ok'}")
        event(f"{kind}: {expected or 'ok'}")
        assert getattr(instance, kind)(*args) == expected
        assert_agree(instance, model)
