"""federation.tally: each DESIGN.md §7 rule refuses with its anomaly, the allowed case counts.

Every scenario goes through ``counted()``, which runs ``compute`` and checks that an
``IncrementalTally`` fed the same inputs forwards, backwards and twice over reaches the same
result, so each rule is also a check of the incremental engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from federation.model import (
    LangText,
    Phase,
    Process,
    SupportRules,
    Territory,
    TerritoryCount,
    TerritoryKind,
)
from federation.tally import (
    Anomaly,
    IncrementalTally,
    ProcessRecord,
    ProposalRecord,
    ResidentRecord,
    Roster,
    RosterEntry,
    Rule,
    SupportEvent,
    TallyInputs,
    TallyResult,
    UndoEvent,
    compute,
    incremental,
    to_tally,
)
from federation.tally.engine import ProcessCounts, process_tally
from federation.tally.rules import Counted
from federation.validation import validate
from federation.vocab.tally import inputs_digest, tally_from_ap, tally_to_ap

CITY = "08019"
A, B, C, X = (
    "https://gracia.barri.example",
    "https://camp.barri.example",
    "https://horta.barri.example",
    "https://rogue.example",
)
HOODS = {
    A: Territory(TerritoryKind.NEIGHBOURHOOD, "31", "la Vila de Gràcia", "06"),
    B: Territory(TerritoryKind.NEIGHBOURHOOD, "32", "el Camp d'en Grassot", "06"),
    C: Territory(TerritoryKind.NEIGHBOURHOOD, "43", "Horta", "07"),
}
ROSTER = Roster(CITY, tuple(RosterEntry(origin, hood) for origin, hood in HOODS.items()))
OPEN, CLOSE = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
GRACE = timedelta(hours=6)
PID = f"{A}/processes/p"


def at(day: int, hour: int = 12) -> datetime:
    """A moment in March 2026 (the supports phase is the whole month)."""
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def phase(start: datetime, end: datetime, *, supports: bool) -> Phase:
    return Phase(
        name=LangText("phase"),
        start=start,
        end=end,
        allows_proposals=not supports,
        allows_supports=supports,
        allows_comments=True,
        allows_debates=False,
    )


def process(
    pid: str = PID,
    rules: SupportRules | None = None,
    eligible: tuple[Territory, ...] = (Territory(TerritoryKind.DISTRICT, "06"),),
    grace: timedelta = GRACE,
    closed_at: datetime | None = None,
) -> ProcessRecord:
    phases = (
        phase(datetime(2026, 2, 1, tzinfo=UTC), OPEN, supports=False),
        phase(OPEN, CLOSE, supports=True),
        phase(CLOSE, datetime(2026, 5, 1, tzinfo=UTC), supports=False),
    )
    proc = Process(
        id=pid,
        owner=f"{A}/groups/association",
        name=LangText("Pressupostos"),
        summary=None,
        phases=phases,
        rules=rules or SupportRules(),
        eligible=eligible,
        published=datetime(2026, 1, 15, tzinfo=UTC),
    )
    return ProcessRecord(proc, grace, closed_at)


def user(origin: str, name: str) -> str:
    return f"{origin}/users/{name}"


def prop(n: int, pid: str = PID) -> ProposalRecord:
    return ProposalRecord(f"{A}/proposals/{pid[-1]}{n}", pid, A)


P1, P2, P3, P4, P5 = (prop(n).proposal for n in range(1, 6))


def like(
    like_id: str,
    actor: str,
    proposal: str = P1,
    published: datetime | None = None,
    received: datetime | None = None,
    *,
    proof_ok: bool = True,
    signer: str | None = None,
    pid: str = PID,
) -> SupportEvent:
    published = published or at(10)
    actor_origin = actor.split("/users/")[0]
    return SupportEvent(
        like_id=f"{actor_origin}/likes/{like_id}",
        actor=actor,
        proposal=proposal,
        process=pid,
        published=published,
        received_at=received or published + timedelta(minutes=1),
        proof_ok=proof_ok,
        signer_origin=signer or actor_origin,
    )


def undo(
    support: SupportEvent,
    published: datetime | None = None,
    received: datetime | None = None,
    *,
    actor: str | None = None,
    proof_ok: bool = True,
) -> UndoEvent:
    actor = actor or support.actor
    published = published or support.published + timedelta(hours=1)
    return UndoEvent(
        undo_id=f"{support.like_id}/undo",
        actor=actor,
        like_id=support.like_id,
        published=published,
        received_at=received or published + timedelta(minutes=1),
        proof_ok=proof_ok,
        signer_origin=actor.split("/users/")[0],
    )


ANA, BEL, CAT, DAN = user(A, "ana"), user(A, "bel"), user(B, "cat"), user(C, "dan")
RESIDENTS = tuple(
    ResidentRecord(actor, HOODS[actor.split("/users/")[0]]) for actor in (ANA, BEL, CAT, DAN)
)


def inputs(
    supports: tuple[SupportEvent, ...] = (),
    undos: tuple[UndoEvent, ...] = (),
    *,
    roster: Roster = ROSTER,
    residents: tuple[ResidentRecord, ...] = RESIDENTS,
    processes: tuple[ProcessRecord, ...] | None = None,
) -> TallyInputs:
    return TallyInputs(
        roster=roster,
        residents=residents,
        processes=processes or (process(),),
        proposals=tuple(prop(n) for n in range(1, 6)),
        supports=supports,
        undos=undos,
    )


def counted(data: TallyInputs) -> TallyResult:
    """compute(), checked against IncrementalTally fed forwards, backwards and twice."""
    result = compute(data)
    assert IncrementalTally.from_inputs(data).result() == result
    backwards = replace(data, supports=data.supports[::-1], undos=data.undos[::-1])
    assert IncrementalTally.from_inputs(backwards).result() == result
    twice = replace(data, supports=data.supports * 2, undos=data.undos * 2)
    assert compute(twice) == result
    # Undos first, then supports: an undo that arrives before its like still wins.
    early = IncrementalTally(data.roster)
    for record in data.processes:
        early.set_process(record)
    for proposal in data.proposals:
        early.add_proposal(proposal)
    for resident in data.residents:
        early.set_resident(resident.actor, resident.territory)
    for event in data.undos:
        early.add_undo(event)
    for support in data.supports:
        early.add_support(support)
    assert early.result() == result
    return result


def rules_of(result: TallyResult) -> list[tuple[str, Rule, str]]:
    return [(a.instance, a.rule, a.like_id) for a in result.anomalies]


def test_an_allowed_support_counts_everywhere() -> None:
    support = like("1", ANA)
    result = counted(inputs((support,)))
    tally = result.process(PID)
    assert tally.counted == (support.like_id,)
    assert tally.participants == 1
    assert tally.result(P1).supports == 1
    assert tally.result(P1).host == A
    assert tally.result(P1).by_territory == (TerritoryCount(TerritoryKind.NEIGHBOURHOOD, "31", 1),)
    assert tally.total(TerritoryKind.CITY, CITY) == 1
    assert tally.total(TerritoryKind.DISTRICT, "06") == 1
    assert tally.inputs_digest == inputs_digest([support.like_id])
    assert result.anomalies == ()
    # Every known proposal is listed, the unsupported ones with zero.
    assert [r.supports for r in tally.results] == [1, 0, 0, 0, 0]


def test_a_support_whose_proof_fails_is_forged() -> None:
    support = like("1", ANA, proof_ok=False)
    result = counted(inputs((support,)))
    assert result.process(PID).counted == ()
    assert rules_of(result) == [(A, Rule.FORGED, support.like_id)]


def test_a_support_signed_by_another_instance_is_forged_and_blames_the_signer() -> None:
    # Instance B's key signing for a resident of instance A.
    support = like("1", ANA, signer=B)
    result = counted(inputs((support,)))
    assert result.process(PID).counted == ()
    assert rules_of(result) == [(B, Rule.FORGED, support.like_id)]
    assert A in result.anomalies[0].detail


def test_a_like_id_on_another_origin_is_forged_and_cannot_displace_the_genuine_one() -> None:
    genuine = like("1", ANA, received=at(10, 13))
    # Instance B signs, with its own key, a Like by its own resident that reuses A's like id.
    squatter = replace(like("1", CAT, P2, received=at(10, 12)), like_id=genuine.like_id)
    result = counted(inputs((squatter, genuine)))
    assert result.process(PID).counted == (genuine.like_id,)
    assert result.process(PID).result(P1).supports == 1
    assert rules_of(result) == [(B, Rule.FORGED, genuine.like_id)]
    assert "is not on the actor's origin" in result.anomalies[0].detail


def test_a_forged_copy_is_flagged_but_the_genuine_copy_counts() -> None:
    genuine = like("1", ANA)
    tampered = replace(genuine, proof_ok=False, received_at=genuine.received_at - timedelta(1))
    result = counted(inputs((tampered, genuine)))
    assert result.process(PID).counted == (genuine.like_id,)
    assert rules_of(result) == [(A, Rule.FORGED, genuine.like_id)]


def test_an_actor_off_the_roster_is_not_counted() -> None:
    stranger = user(X, "eve")
    support = like("1", stranger)
    residents = (*RESIDENTS, ResidentRecord(stranger, HOODS[A]))
    result = counted(inputs((support,), residents=residents))
    assert result.process(PID).counted == ()
    assert rules_of(result) == [(X, Rule.NOT_ON_ROSTER, support.like_id)]


@pytest.mark.parametrize(
    "territory",
    [
        None,
        HOODS[B],
        Territory(TerritoryKind.DISTRICT, "06"),
        replace(HOODS[A], district_code="07"),
    ],
    ids=["unverified", "other-neighbourhood", "a-district", "wrong-district"],
)
def test_an_actor_not_verified_as_a_resident_of_the_instance_is_not_counted(
    territory: Territory | None,
) -> None:
    support = like("1", ANA)
    residents = (ResidentRecord(ANA, territory),)
    result = counted(inputs((support,), residents=residents))
    assert result.process(PID).counted == ()
    assert rules_of(result) == [(A, Rule.NOT_VERIFIED, support.like_id)]


def test_an_actor_with_no_residency_record_is_not_verified() -> None:
    support = like("1", ANA)
    result = counted(inputs((support,), residents=()))
    assert rules_of(result) == [(A, Rule.NOT_VERIFIED, support.like_id)]


def test_a_resident_outside_the_eligible_territory_is_refused() -> None:
    support = like("1", DAN)  # Horta, district 07; the process admits district 06
    result = counted(inputs((support,)))
    assert result.process(PID).counted == ()
    assert rules_of(result) == [(C, Rule.INELIGIBLE_TERRITORY, support.like_id)]


@pytest.mark.parametrize(
    ("eligible", "counts"),
    [
        (Territory(TerritoryKind.NEIGHBOURHOOD, "43"), True),
        (Territory(TerritoryKind.NEIGHBOURHOOD, "43", district_code="07"), True),
        (Territory(TerritoryKind.NEIGHBOURHOOD, "43", district_code="06"), False),
        (Territory(TerritoryKind.NEIGHBOURHOOD, "31"), False),
        (Territory(TerritoryKind.DISTRICT, "07"), True),
        (Territory(TerritoryKind.DISTRICT, "06"), False),
        (Territory(TerritoryKind.CITY, CITY), True),
        (Territory(TerritoryKind.CITY, "08001"), False),
    ],
)
def test_eligibility_by_neighbourhood_district_or_city(eligible: Territory, counts: bool) -> None:
    support = like("1", DAN)
    result = counted(inputs((support,), processes=(process(eligible=(eligible,)),)))
    assert result.process(PID).supports == (1 if counts else 0)
    assert bool(result.anomalies) is not counts


@pytest.mark.parametrize(
    ("published", "counts"),
    [
        (OPEN, True),  # start inclusive
        (CLOSE - timedelta(microseconds=1), True),
        (CLOSE, False),  # end exclusive
        (OPEN - timedelta(seconds=1), False),  # the proposals phase allows no supports
        (datetime(2026, 4, 10, tzinfo=UTC), False),
    ],
)
def test_a_support_must_be_published_in_a_supports_phase(published: datetime, counts: bool) -> None:
    support = like("1", ANA, published=published)
    result = counted(inputs((support,)))
    assert result.process(PID).supports == (1 if counts else 0)
    expected = [] if counts else [(A, Rule.OUT_OF_PHASE, support.like_id)]
    assert rules_of(result) == expected


@pytest.mark.parametrize(
    ("received", "counts"),
    [
        (CLOSE + GRACE - timedelta(seconds=1), True),
        (CLOSE + GRACE, False),
        (CLOSE + timedelta(days=3), False),
    ],
)
def test_late_arrival_within_and_after_the_grace(received: datetime, counts: bool) -> None:
    support = like("1", ANA, published=CLOSE - timedelta(minutes=5), received=received)
    result = counted(inputs((support,)))
    assert result.process(PID).supports == (1 if counts else 0)
    assert rules_of(result) == ([] if counts else [(A, Rule.LATE_ARRIVAL, support.like_id)])


def test_a_closed_result_takes_nothing_received_after_it_closed() -> None:
    closed = CLOSE + timedelta(hours=1)
    before = like("1", ANA, published=at(30), received=closed - timedelta(seconds=1))
    after = like("2", BEL, published=at(30), received=closed)
    result = counted(inputs((before, after), processes=(process(closed_at=closed),)))
    assert result.process(PID).counted == (before.like_id,)
    assert rules_of(result) == [(A, Rule.LATE_ARRIVAL, after.like_id)]


def test_a_support_of_an_unknown_proposal_waits_until_the_proposal_is_known() -> None:
    support = like("1", ANA, proposal=f"{B}/proposals/unknown")
    data = inputs((support,))
    result = counted(data)
    assert rules_of(result) == [(A, Rule.UNKNOWN_PROPOSAL, support.like_id)]
    tally = IncrementalTally.from_inputs(data)
    tally.add_proposal(ProposalRecord(support.proposal, PID, B))
    assert tally.result().process(PID).result(support.proposal).supports == 1
    assert tally.result().anomalies == ()
    assert tally.result() == compute(tally.inputs())


def test_an_undo_removes_its_support_whatever_the_order() -> None:
    support = like("1", ANA)
    withdrawal = undo(support)
    result = counted(inputs((support,), (withdrawal,)))
    assert result.process(PID).supports == 0
    assert result.process(PID).participants == 0
    assert result.anomalies == ()


def test_an_undo_published_before_its_like_still_removes_it() -> None:
    support = like("1", ANA)
    early = undo(support, published=support.published - timedelta(minutes=5))
    assert counted(inputs((support,), (early,))).process(PID).supports == 0


def test_supporting_again_after_an_undo_counts_the_new_support() -> None:
    first = like("1", ANA, published=at(5))
    second = like("2", ANA, published=at(7))
    result = counted(inputs((first, second), (undo(first),)))
    assert result.process(PID).counted == (second.like_id,)
    assert result.anomalies == ()


def test_an_undo_by_another_actor_is_forged_and_the_support_stands() -> None:
    support = like("1", ANA)
    hijack = undo(support, actor=BEL)
    result = counted(inputs((support,), (hijack,)))
    assert result.process(PID).supports == 1
    assert rules_of(result) == [(A, Rule.FORGED, support.like_id)]


def test_an_undo_with_a_bad_proof_changes_nothing() -> None:
    support = like("1", ANA)
    result = counted(inputs((support,), (undo(support, proof_ok=False),)))
    assert result.process(PID).supports == 1
    assert rules_of(result) == [(A, Rule.FORGED, support.like_id)]


def test_an_undo_after_the_phase_or_after_the_deadline_changes_nothing() -> None:
    support = like("1", ANA)
    after_close = undo(support, published=CLOSE + timedelta(minutes=1))
    late = replace(undo(support, published=at(20)), received_at=CLOSE + GRACE)
    for withdrawal, rule in ((after_close, Rule.OUT_OF_PHASE), (late, Rule.LATE_ARRIVAL)):
        result = counted(inputs((support,), (withdrawal,)))
        assert result.process(PID).supports == 1
        assert rules_of(result) == [(A, rule, support.like_id)]


def test_copies_of_one_like_count_once_without_an_anomaly() -> None:
    direct = like("1", ANA, received=at(10, 13))
    announced = replace(direct, received_at=at(11))
    backfilled = replace(direct, received_at=at(12))
    result = counted(inputs((backfilled, direct, announced)))
    assert result.process(PID).counted == (direct.like_id,)
    assert result.anomalies == ()


def test_a_second_like_of_the_same_proposal_is_a_duplicate_and_the_earliest_counts() -> None:
    later = like("a", ANA, published=at(12))
    earlier = like("b", ANA, published=at(11))
    result = counted(inputs((later, earlier)))
    assert result.process(PID).counted == (earlier.like_id,)
    assert rules_of(result) == [(A, Rule.DUPLICATE, later.like_id)]
    # Same published time: the like id breaks the tie.
    same = replace(later, published=earlier.published)
    result = counted(inputs((same, earlier)))
    assert result.process(PID).counted == (same.like_id,)  # ".../likes/a" < ".../likes/b"
    assert rules_of(result) == [(A, Rule.DUPLICATE, earlier.like_id)]


def test_two_signed_copies_of_one_id_that_disagree_are_flagged() -> None:
    original = like("1", ANA, proposal=P1, received=at(10, 13))
    rewritten = replace(original, proposal=P2, received_at=at(10, 14))
    result = counted(inputs((rewritten, original)))
    assert result.process(PID).result(P1).supports == 1  # the earliest-received copy
    assert result.process(PID).result(P2).supports == 0
    assert rules_of(result) == [(A, Rule.DUPLICATE, original.like_id)]


def test_a_like_whose_canonical_copy_changes_actor_is_counted_once() -> None:
    # Two signed copies of one id by two residents of the same instance: the earliest received
    # is canonical. Fed late-first, the like moves between (actor, process) groups.
    later = like("1", ANA, P1, received=at(10, 15))
    earlier = replace(later, actor=BEL, received_at=at(10, 11))
    result = counted(inputs((later, earlier)))
    assert result.process(PID).counted == (later.like_id,)
    assert result.process(PID).participants == 1
    assert rules_of(result) == [(A, Rule.DUPLICATE, later.like_id)]


def test_over_the_limit_the_earliest_count_and_the_instance_is_flagged() -> None:
    supports = tuple(
        like(str(n), ANA, proposal=prop(n).proposal, published=at(10 - n)) for n in range(1, 6)
    )
    result = counted(inputs(supports, processes=(process(rules=SupportRules(3)),)))
    earliest = sorted(supports, key=lambda s: s.published)
    assert set(result.process(PID).counted) == {s.like_id for s in earliest[:3]}
    assert rules_of(result) == sorted((A, Rule.OVER_LIMIT, s.like_id) for s in earliest[3:])
    assert result.flagged() == (A,)
    assert result.anomaly_counts() == {A: {Rule.OVER_LIMIT: 2}}


def test_one_more_clean_support_counts_as_a_full_recount_would_at_every_boundary() -> None:
    """A new clean like is counted without combining its group only when rules 4 and 5 plainly
    let it through; a second support of a proposal, or one past the limit, goes the long way."""
    data = inputs(processes=(process(rules=SupportRules(3)),))
    tally = IncrementalTally.from_inputs(data)
    fed: list[SupportEvent] = []
    steps = [
        like("1", ANA, proposal=prop(1).proposal, published=at(5)),
        like("2", ANA, proposal=prop(2).proposal, published=at(6)),  # one more: counted
        like("3", ANA, proposal=prop(2).proposal, published=at(4)),  # same proposal, earlier
        like("4", ANA, proposal=prop(3).proposal, published=at(7)),
        like("5", ANA, proposal=prop(4).proposal, published=at(3)),  # past the limit, earliest
        like("6", BEL, proposal=prop(1).proposal, published=at(8)),
        like("7", BEL, proposal=prop(5).proposal, published=at(9)),
    ]
    for event in steps:
        tally.add_support(event)
        fed.append(event)
        assert tally.result() == compute(replace(data, supports=tuple(fed)))
    result = tally.result().process(PID)
    assert set(result.counted) == {e.like_id for e in (steps[4], steps[2], steps[0], *steps[5:])}
    assert result.participants == 2
    assert rules_of(tally.result()) == sorted(
        [(A, Rule.DUPLICATE, steps[1].like_id), (A, Rule.OVER_LIMIT, steps[3].like_id)]
    )


def test_the_limit_counts_only_supports_that_passed_the_other_rules() -> None:
    out_of_phase = like("0", ANA, proposal=P3, published=OPEN - timedelta(days=1))
    withdrawn = like("1", ANA, proposal=P1, published=at(2))
    kept = (like("2", ANA, proposal=P2, published=at(3)), like("3", ANA, P4, published=at(4)))
    data = inputs(
        (out_of_phase, withdrawn, *kept),
        (undo(withdrawn),),
        processes=(process(rules=SupportRules(2)),),
    )
    result = counted(data)
    assert set(result.process(PID).counted) == {s.like_id for s in kept}
    assert rules_of(result) == [(A, Rule.OUT_OF_PHASE, out_of_phase.like_id)]


def test_below_the_minimum_no_support_counts_until_it_is_reached() -> None:
    rules = SupportRules(supports_per_participant=3, minimum_supports_per_participant=2)
    first, second = like("1", ANA, P1, at(3)), like("2", ANA, P2, at(4))
    result = counted(inputs((first,), processes=(process(rules=rules),)))
    assert result.process(PID).supports == 0
    assert result.process(PID).participants == 0
    assert rules_of(result) == [(A, Rule.BELOW_MINIMUM, first.like_id)]
    result = counted(inputs((first, second), processes=(process(rules=rules),)))
    assert result.process(PID).supports == 2
    assert result.anomalies == ()
    # Withdrawing one makes the other temporary again (one action, several totals).
    result = counted(inputs((first, second), (undo(second),), processes=(process(rules=rules),)))
    assert result.process(PID).supports == 0
    assert rules_of(result) == [(A, Rule.BELOW_MINIMUM, first.like_id)]


def test_territory_breakdown_by_neighbourhood_district_and_city() -> None:
    city_wide = process(eligible=(Territory(TerritoryKind.CITY, CITY),))
    supports = (
        like("1", ANA, P1),
        like("2", BEL, P1),
        like("3", CAT, P1),
        like("4", DAN, P1),
        like("5", ANA, P2),
        like("6", DAN, P2),
    )
    tally = counted(inputs(supports, processes=(city_wide,))).process(PID)
    hood, district = TerritoryKind.NEIGHBOURHOOD, TerritoryKind.DISTRICT
    assert tally.result(P1).by_territory == (
        TerritoryCount(hood, "31", 2),
        TerritoryCount(hood, "32", 1),
        TerritoryCount(hood, "43", 1),
    )
    assert tally.result(P2).by_territory == (
        TerritoryCount(hood, "31", 1),
        TerritoryCount(hood, "43", 1),
    )
    assert tally.totals == (
        TerritoryCount(TerritoryKind.CITY, CITY, 6),
        TerritoryCount(district, "06", 4),
        TerritoryCount(district, "07", 2),
        TerritoryCount(hood, "31", 3),
        TerritoryCount(hood, "32", 1),
        TerritoryCount(hood, "43", 2),
    )
    assert tally.participants == 4


def test_removing_an_instance_removes_its_supports_and_restoring_restores_them() -> None:
    supports = (like("1", ANA, P1), like("2", BEL, P2), like("3", CAT, P1))
    data = inputs(supports)
    tally = IncrementalTally.from_inputs(data)
    assert tally.result().process(PID).supports == 3
    tally.remove_instance(A)
    removed = tally.result()
    assert removed.process(PID).counted == (supports[2].like_id,)
    assert removed.process(PID).total(TerritoryKind.NEIGHBOURHOOD, "31") == 0
    assert {a.rule for a in removed.anomalies} == {Rule.NOT_ON_ROSTER}
    assert removed == compute(replace(data, roster=ROSTER.with_active(A, False)))
    tally.restore_instance(A)
    assert tally.result() == compute(data)
    assert tally.result().process(PID).supports == 3


def test_a_roster_territory_change_moves_the_counts() -> None:
    supports = (like("1", ANA, P1),)
    moved = ROSTER.with_entry(RosterEntry(A, HOODS[B]))
    tally = IncrementalTally.from_inputs(
        inputs(supports, residents=(ResidentRecord(ANA, HOODS[B]),))
    )
    assert tally.result().process(PID).supports == 0
    tally.set_roster(moved)
    assert tally.result().process(PID).total(TerritoryKind.NEIGHBOURHOOD, "32") == 1
    assert tally.result() == compute(tally.inputs())


def test_a_residency_change_applies_to_stored_supports() -> None:
    support = like("1", ANA)
    tally = IncrementalTally.from_inputs(inputs((support,), residents=()))
    assert tally.result().process(PID).supports == 0
    tally.set_resident(ANA, HOODS[A])
    assert tally.result().process(PID).supports == 1
    tally.set_resident(ANA, None)
    assert tally.result().process(PID).supports == 0
    assert tally.result() == compute(tally.inputs())


def test_limits_are_per_process() -> None:
    other = process(pid=f"{A}/processes/q", rules=SupportRules(1))
    here = process(rules=SupportRules(1))
    q1 = prop(1, other.id)
    supports = (like("1", ANA, P1), like("2", ANA, q1.proposal, pid=other.id))
    data = replace(inputs(supports, processes=(here, other)), proposals=(prop(1), q1))
    result = counted(data)
    assert result.process(PID).supports == 1
    assert result.process(other.id).supports == 1
    assert result.anomalies == ()


def test_anomalies_are_sorted_and_deduplicated() -> None:
    supports = (
        like("1", DAN),
        like("2", ANA, proof_ok=False),
        like("3", user(X, "eve")),
        like("4", ANA, published=CLOSE),
    )
    result = counted(inputs(supports))
    assert list(result.anomalies) == sorted(result.anomalies)
    assert len(set(result.anomalies)) == len(result.anomalies) == 4


def test_to_tally_publishes_a_valid_ranked_tally() -> None:
    city_wide = process(eligible=(Territory(TerritoryKind.CITY, CITY),))
    supports = (like("1", ANA, P1), like("2", BEL, P2), like("3", CAT, P2), like("4", DAN, P2))
    result = counted(inputs(supports, processes=(city_wide,)))
    tally = to_tally(
        result.process(PID),
        tally_id="https://city.barri.example/tallies/1",
        aggregator="https://city.barri.example/actor",
        as_of=at(20),
        published=at(20),
        final=False,
        summary_html="<p>4 suports</p>",
        to=("https://www.w3.org/ns/activitystreams#Public",),
    )
    assert [r.proposal for r in tally.results[:2]] == [P2, P1]
    assert [r.supports for r in tally.results] == [3, 1, 0, 0, 0]
    assert tally.inputs_count == 4
    assert tally.participants == 4
    assert tally.inputs_digest == inputs_digest(s.like_id for s in supports)
    document = tally_to_ap(tally)
    validate("tally", document)
    assert tally_from_ap(document) == tally


def test_conflicting_records_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="resident"):
        compute(inputs(residents=(ResidentRecord(ANA, HOODS[A]), ResidentRecord(ANA, None))))
    with pytest.raises(ValueError, match="twice"):
        Roster(CITY, (RosterEntry(A, HOODS[A]), RosterEntry(A + "/", HOODS[B])))
    with pytest.raises(ValueError, match="neighbourhood"):
        RosterEntry(A, Territory(TerritoryKind.DISTRICT, "06"))
    with pytest.raises(ValueError, match="timezone"):
        replace(like("1", ANA), published=datetime(2026, 3, 10))
    with pytest.raises(KeyError):
        ROSTER.with_active(X, False)


def test_origins_are_compared_normalised() -> None:
    # An uppercase host and an explicit default port are the same origin (FEP-fe34).
    support = like("1", ANA, signer="https://GRACIA.barri.example:443")
    assert counted(inputs((support,))).process(PID).supports == 1
    assert Anomaly(A, Rule.FORGED, "x", "y") < Anomaly(A, Rule.NOT_ON_ROSTER, "a", "a")


def test_an_id_on_the_same_origin_spelt_differently_is_the_actor_s() -> None:
    support = like("1", ANA)
    respelt = replace(
        support, like_id=support.like_id.replace(A, "https://GRACIA.barri.example:443")
    )
    assert counted(inputs((respelt,))).process(PID).counted == (respelt.like_id,)
    # A userinfo trick is not the same origin.
    trick = replace(support, like_id=f"{A}@rogue.example/likes/1")
    assert [a.rule for a in counted(inputs((trick,))).anomalies] == [Rule.FORGED]


def test_a_record_added_after_a_result_was_read_shows_in_the_next_one() -> None:
    """Found by the store-level stream: the cached result must not outlive a new record."""
    tally = IncrementalTally.from_inputs(inputs(()))
    assert tally.result().process(PID).results == tally.result().process(PID).results
    late = ProposalRecord(f"{B}/proposals/late", PID, B)
    tally.add_proposal(late)
    assert late.proposal in [r.proposal for r in tally.result().process(PID).results]
    other = replace(process(), process=replace(process().process, id=f"{A}/processes/q"))
    tally.set_process(other)
    assert [p.process for p in tally.result().processes] == sorted([PID, f"{A}/processes/q"])
    assert tally.result() == compute(tally.inputs())


def test_a_result_read_after_every_kind_of_change_equals_a_recount() -> None:
    """Each process's totals are rebuilt on read only when they changed: every change must
    mark what it touches (process, proposal, support, undo, residency, roster, city code),
    and a proposal's totals kept from the last read must still be right (its host moved)."""
    q, idle = f"{A}/processes/q", f"{A}/processes/r"  # r: no support ever
    tally = IncrementalTally.from_inputs(inputs(processes=(process(), process(q), process(idle))))
    first, second = like("1", ANA), like("2", CAT, P2)
    steps: list[Callable[[], None]] = [
        lambda: tally.add_support(first),
        lambda: tally.add_support(second),
        lambda: tally.add_support(like("3", BEL, prop(1, q).proposal, pid=q)),
        lambda: tally.add_proposal(prop(1, q)),
        lambda: tally.add_undo(undo(second)),
        lambda: tally.set_resident(ANA, HOODS[C]),
        lambda: tally.set_resident(ANA, HOODS[A]),
        lambda: tally.set_process(process(closed_at=at(5))),
        lambda: tally.set_process(process()),
        lambda: tally.add_proposal(ProposalRecord(P1, q, A)),
        lambda: tally.add_proposal(prop(1)),
        lambda: tally.add_proposal(replace(prop(1), host=B)),  # its host only: counts stay
        lambda: tally.add_proposal(prop(1)),
        lambda: tally.remove_instance(B),
        lambda: tally.restore_instance(B),
        lambda: tally.set_roster(Roster("08001", ROSTER.entries)),
    ]
    seen = [tally.result()]
    for step in steps:
        step()
        seen.append(tally.result())
        assert seen[-1] == compute(tally.inputs())
    # The steps did change the totals: the cache was not merely equal to stale values.
    assert len({repr(result) for result in seen}) >= 8


def test_the_sorted_counted_ids_follow_every_addition_and_removal_between_reads() -> None:
    """ProcessCounts sorts only what changed since the last read; the order must stay exact."""

    def group(*ids: str) -> tuple[Counted, ...]:
        return tuple(Counted(i, P1, "31", "06", at(1), A) for i in ids)

    counts = ProcessCounts()
    counts.replace((), group("c", "a", "b"))
    assert counts.sorted_counted() == ("a", "b", "c")
    counts.replace(group("c", "a", "b"), group("d", "a"))  # b and c go, d comes
    counts.replace(group("d", "a"), group("d"))  # a goes ...
    counts.replace(group("d"), group("d", "a"))  # ... and comes back before the next read
    assert counts.sorted_counted() == ("a", "d") and counts.supports == 2
    counts.replace(group("d", "a"), group("d", "a", "0", "z"))
    assert counts.sorted_counted() == ("0", "a", "d", "z") and counts.supports == 4


def test_one_process_is_read_without_rebuilding_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = "https://a.example/processes/2"
    data = replace(inputs(), processes=(process(), process(other)),
                   proposals=(*inputs().proposals, prop(1, other)))  # fmt: skip
    tally = IncrementalTally.from_inputs(data)
    tally.result()
    built: list[str] = []

    def counting(record: ProcessRecord, *rest: Any) -> Any:
        built.append(record.id)
        return process_tally(record, *rest)

    monkeypatch.setattr(incremental, "process_tally", counting)
    tally.add_support(like("1", ANA))
    tally.add_support(like("2", BEL, proposal=prop(1, other).proposal, pid=other))
    assert tally.process(PID).supports == 1
    assert built == [PID]  # the other busy process waits for its own reader
    assert tally.process(PID).inputs_digest == compute(tally.inputs()).process(PID).inputs_digest
    assert tally.result() == compute(tally.inputs())
    assert built == [PID, other]
    with pytest.raises(KeyError):
        tally.process("https://a.example/processes/unknown")
