"""federation.tally under random event streams (hypothesis), DESIGN.md §7.

(a) ``compute`` is blind to the order and duplication of its events; (b) an ``IncrementalTally``
fed the same events in any order, with roster and residency changes in between, equals
``compute`` at every step; (c) an independent naive model, written here as plain loops over
the five rules, agrees with ``compute`` on every count and every anomaly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.model import (
    LangText,
    Phase,
    Process,
    SupportRules,
    Territory,
    TerritoryKind,
)
from federation.tally import (
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
)
from federation.tally.large import LARGE_AT

CITY = "08019"
HOOD = TerritoryKind.NEIGHBOURHOOD
ROSTERED = {
    "https://a.example": Territory(HOOD, "31", district_code="06"),
    "https://b.example": Territory(HOOD, "32", district_code="06"),
    "https://c.example": Territory(HOOD, "43", district_code="07"),
}
STRANGER = "https://x.example"  # never on the roster
ORIGINS = (*ROSTERED, STRANGER)
ACTORS = (
    *(f"{origin}/users/{name}" for origin in ROSTERED for name in ("u", "v", "w")),
    f"{STRANGER}/users/eve",
)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
# Supports phases: hours [10, 20) and [30, 40); hours [0, 10) allow no supports.
PHASES = ((0, 10, False), (10, 20, True), (30, 40, True))
P1, P2 = "https://a.example/processes/1", "https://b.example/processes/2"
PROPOSALS = (
    ProposalRecord("https://a.example/proposals/1", P1, "https://a.example"),
    ProposalRecord("https://a.example/proposals/2", P1, "https://a.example"),
    ProposalRecord("https://b.example/proposals/3", P1, "https://b.example"),
    ProposalRecord("https://b.example/proposals/4", P2, "https://b.example"),
    ProposalRecord("https://c.example/proposals/5", P2, "https://c.example"),
)
# A support may name a proposal nobody recorded.
PROPOSAL_IDS = (*(p.proposal for p in PROPOSALS), "https://c.example/proposals/unknown")
PROCESS_OF = {p.proposal: p.process for p in PROPOSALS}


def hour(n: int) -> datetime:
    return T0 + timedelta(hours=n)


def origin(url: str) -> str:
    return "/".join(url.split("/")[:3])


# ---------------------------------------------------------------------------- strategies


# Each kind of trouble is switched on for about half the examples, so that the others keep
# enough clean supports to count, limit and deduplicate.
NOISE = ("roster", "residents", "proofs", "claims", "timing", "ids", "undos")
Noise = frozenset[str]


@st.composite
def rosters(draw: st.DrawFn, noisy: Noise = frozenset(NOISE)) -> Roster:
    entries = []
    for url, hood in ROSTERED.items():
        trouble = "roster" in noisy and draw(st.booleans())
        if trouble and draw(st.booleans()):
            continue  # this instance is not on the roster at all
        if trouble and draw(st.booleans()):  # moved to another neighbourhood
            hood = draw(st.sampled_from(tuple(ROSTERED.values())))
        entries.append(RosterEntry(url, hood, active=not (trouble and draw(st.booleans()))))
    return Roster(CITY, tuple(entries))


@st.composite
def residents(draw: st.DrawFn, noisy: Noise = frozenset(NOISE)) -> tuple[ResidentRecord, ...]:
    found = []
    others = (*ROSTERED.values(), None, Territory(TerritoryKind.DISTRICT, "06"))
    for actor in ACTORS:
        home: Territory | None = ROSTERED.get(origin(actor), ROSTERED["https://a.example"])
        if "residents" in noisy and draw(st.booleans()):
            if draw(st.booleans()):
                continue  # no record
            home = draw(st.sampled_from(others))
        found.append(ResidentRecord(actor, home))
    return tuple(found)


@st.composite
def process_records(draw: st.DrawFn, pid: str, eligible: Territory) -> ProcessRecord:
    limit = draw(st.integers(0, 3))
    minimum = draw(st.integers(0, limit or 2))
    phases = tuple(
        Phase(
            name=LangText("phase"),
            start=hour(a),
            end=hour(b),
            allows_proposals=not s,
            allows_supports=s,
            allows_comments=True,
            allows_debates=False,
        )
        for a, b, s in PHASES
    )
    process = Process(
        id=pid,
        owner=f"{origin(pid)}/groups/g",
        name=LangText(pid),
        summary=None,
        phases=phases,
        rules=SupportRules(limit, 0, False, minimum),
        eligible=(eligible,),
        published=T0,
    )
    grace = timedelta(hours=draw(st.sampled_from((0, 2))))
    closed = draw(st.sampled_from((None, 21, 39)))
    return ProcessRecord(process, grace, None if closed is None else hour(closed))


@st.composite
def supports(draw: st.DrawFn, noisy: Noise, index: int) -> SupportEvent:
    actor = draw(st.sampled_from(ACTORS))
    known = tuple(p.proposal for p in PROPOSALS)
    claims = "claims" in noisy and draw(st.booleans())
    proposal = draw(st.sampled_from(PROPOSAL_IDS if claims else known))
    process = PROCESS_OF.get(proposal, P1)
    if claims and draw(st.booleans()):
        process = P2 if process == P1 else P1  # claims the wrong process
    timing = "timing" in noisy and draw(st.booleans())
    published = draw(st.integers(8, 41) if timing else st.sampled_from((10, 15, 19, 30, 35)))
    delay = draw(st.sampled_from((0, 1, 2, 3))) if timing else 0
    signer, proof_ok = origin(actor), True
    if "proofs" in noisy and draw(st.booleans()):
        signer, proof_ok = draw(st.sampled_from(ORIGINS)), draw(st.booleans())
    # With "ids", a small pool of ids, so that one id sometimes carries different content.
    number, owner = index, actor
    if "ids" in noisy:
        number = draw(st.integers(0, 3))
        if draw(st.booleans()):  # someone else's id, same origin or not
            owner = draw(st.sampled_from(ACTORS))
    return SupportEvent(
        like_id=f"{owner}/likes/{number}",
        actor=actor,
        proposal=proposal,
        process=process,
        published=hour(published),
        received_at=hour(published + delay),
        proof_ok=proof_ok,
        signer_origin=signer,
    )


@st.composite
def undos_of(draw: st.DrawFn, likes: list[SupportEvent], noisy: Noise) -> UndoEvent:
    target = draw(st.sampled_from(likes))
    actor, proof_ok = target.actor, True
    published, received = target.published + timedelta(hours=1), target.published
    if "undos" in noisy and draw(st.booleans()):
        actor = draw(st.sampled_from(ACTORS))
        proof_ok = draw(st.booleans())
    if "undos" in noisy and draw(st.booleans()):
        # Around the end of the target's supports phase, to hit out-of-phase and late undos.
        end = 20 if target.published < hour(20) else 40
        published = hour(end + draw(st.integers(-3, 1)))
        received = published
    received += timedelta(hours=draw(st.sampled_from((0, 1, 3))))
    return UndoEvent(
        undo_id=f"{target.like_id}/undo/{draw(st.integers(0, 1))}",
        actor=actor,
        like_id=target.like_id,
        published=published,
        received_at=max(received, published),
        proof_ok=proof_ok,
        signer_origin=origin(actor),
    )


@st.composite
def tally_inputs(draw: st.DrawFn) -> TallyInputs:
    noisy: Noise = draw(st.frozensets(st.sampled_from(NOISE)))
    size = draw(st.integers(1, 40))
    likes = [draw(supports(noisy, index)) for index in range(size)]
    # Extra copies of some likes, received again by another route.
    for copy in draw(st.lists(st.sampled_from(likes), max_size=5)):
        likes.append(replace(copy, received_at=copy.received_at + timedelta(hours=1)))
    undos = draw(st.lists(undos_of(likes, noisy), max_size=8))
    processes = (
        draw(process_records(P1, Territory(TerritoryKind.DISTRICT, "06"))),
        draw(process_records(P2, Territory(TerritoryKind.CITY, CITY))),
    )
    return TallyInputs(
        roster=draw(rosters(noisy)),
        residents=draw(residents(noisy)),
        processes=processes,
        proposals=PROPOSALS,
        supports=tuple(likes),
        undos=tuple(undos),
    )


# ---------------------------------------------------------------------------- naive model


@dataclass
class Naive:
    counted: dict[str, set[str]]
    per_proposal: dict[tuple[str, str, str], int]
    totals: dict[tuple[str, str, str], int]
    participants: dict[str, int]
    anomalies: set[tuple[str, str, str]]


def genuine(event: SupportEvent | UndoEvent) -> bool:
    own_id = event.like_id if isinstance(event, SupportEvent) else event.undo_id
    return event.proof_ok and event.signer_origin == origin(event.actor) == origin(own_id)


def blame(event: SupportEvent | UndoEvent) -> str:
    return origin(event.actor) if not event.proof_ok else event.signer_origin


def naive_canonical(data: TallyInputs, flag: Any) -> dict[str, SupportEvent]:
    """One support per like id: the earliest-received genuine copy."""
    canon: dict[str, SupportEvent] = {}
    for like_id in sorted({s.like_id for s in data.supports}):
        copies = [s for s in set(data.supports) if s.like_id == like_id]
        for copy in copies:
            if not genuine(copy):
                flag(blame(copy), Rule.FORGED, like_id)
        good = [c for c in copies if genuine(c)]
        if not good:
            continue
        first = min(
            good,
            key=lambda c: (
                c.received_at,
                c.published,
                c.actor,
                c.proposal,
                c.process,
                c.signer_origin,
            ),
        )
        for copy in good:
            if (copy.actor, copy.proposal, copy.process, copy.published) != (
                first.actor,
                first.proposal,
                first.process,
                first.published,
            ):
                flag(origin(copy.actor), Rule.DUPLICATE, like_id)
        canon[like_id] = first
    return canon


def naive_window(record: ProcessRecord, published: datetime) -> tuple[datetime, datetime] | None:
    for phase in record.process.phases:
        if phase.allows_supports and phase.start <= published < phase.end:
            deadline = phase.end + record.grace
            if record.closed_at is not None:
                deadline = min(deadline, record.closed_at)
            return phase.end, deadline
    return None


def naive_eligible(record: ProcessRecord, hood: Territory) -> bool:
    for place in record.process.eligible:
        if place.kind is TerritoryKind.CITY and place.code == CITY:
            return True
        if place.kind is TerritoryKind.DISTRICT and place.code == hood.district_code:
            return True
        if place.kind is HOOD and place.code == hood.code:
            return True
    return False


def naive_undone(
    data: TallyInputs, event: SupportEvent, end: datetime, deadline: datetime, flag: Any
) -> bool:
    undone = False
    by_id: dict[str, list[UndoEvent]] = defaultdict(list)
    for u in set(data.undos):
        if u.like_id != event.like_id:
            continue
        if not genuine(u) or u.actor != event.actor:
            flag(blame(u), Rule.FORGED, event.like_id)
        else:
            by_id[u.undo_id].append(u)
    for copies in by_id.values():
        first = min(copies, key=lambda u: (u.received_at, u.published))
        if first.published >= end:
            flag(origin(event.actor), Rule.OUT_OF_PHASE, event.like_id)
        elif first.received_at >= deadline:
            flag(origin(event.actor), Rule.LATE_ARRIVAL, event.like_id)
        else:
            undone = True
    return undone


def naive(data: TallyInputs) -> Naive:
    """The five rules as plain loops, sharing no code with federation.tally."""
    anomalies: set[tuple[str, str, str]] = set()

    def flag(instance: str, rule: Rule, like_id: str) -> None:
        anomalies.add((instance, str(rule), like_id))

    roster = {e.origin: e for e in data.roster.entries}
    homes = {r.actor: r.territory for r in data.residents}
    records = {p.id: p for p in data.processes}
    proposals = {p.proposal: p for p in data.proposals}
    active: list[tuple[SupportEvent, Territory]] = []
    for like_id, event in naive_canonical(data, flag).items():
        entry = roster.get(origin(event.actor))
        if entry is None or not entry.active:
            flag(origin(event.actor), Rule.NOT_ON_ROSTER, like_id)
            continue
        home = homes.get(event.actor)
        if (
            home is None
            or home.kind is not HOOD
            or home.code != entry.territory.code
            or home.district_code not in (None, entry.territory.district_code)
        ):
            flag(entry.origin, Rule.NOT_VERIFIED, like_id)
            continue
        record, proposal = records.get(event.process), proposals.get(event.proposal)
        if record is None or proposal is None or proposal.process != event.process:
            flag(entry.origin, Rule.UNKNOWN_PROPOSAL, like_id)
            continue
        if not naive_eligible(record, entry.territory):
            flag(entry.origin, Rule.INELIGIBLE_TERRITORY, like_id)
            continue
        window = naive_window(record, event.published)
        if window is None:
            flag(entry.origin, Rule.OUT_OF_PHASE, like_id)
            continue
        if event.received_at >= window[1]:
            flag(entry.origin, Rule.LATE_ARRIVAL, like_id)
            continue
        if not naive_undone(data, event, window[0], window[1], flag):
            active.append((event, entry.territory))
    return naive_count(active, records, flag, anomalies)


def naive_count(
    active: list[tuple[SupportEvent, Territory]],
    records: dict[str, ProcessRecord],
    flag: Any,
    anomalies: set[tuple[str, str, str]],
) -> Naive:
    active.sort(key=lambda pair: (pair[0].published, pair[0].like_id))
    seen: set[tuple[str, str]] = set()
    per_actor: dict[tuple[str, str], list[tuple[SupportEvent, Territory]]] = defaultdict(list)
    for event, hood in active:
        if (event.actor, event.proposal) in seen:
            flag(origin(event.actor), Rule.DUPLICATE, event.like_id)
            continue
        seen.add((event.actor, event.proposal))
        per_actor[(event.actor, event.process)].append((event, hood))
    result = Naive(
        defaultdict(set), defaultdict(int), defaultdict(int), defaultdict(int), anomalies
    )
    for (actor, pid), mine in per_actor.items():
        rules = records[pid].process.rules
        if rules.supports_per_participant and len(mine) > rules.supports_per_participant:
            for event, _ in mine[rules.supports_per_participant :]:
                flag(origin(actor), Rule.OVER_LIMIT, event.like_id)
            mine = mine[: rules.supports_per_participant]
        if len(mine) < rules.minimum_supports_per_participant:
            for event, _ in mine:
                flag(origin(actor), Rule.BELOW_MINIMUM, event.like_id)
            mine = []
        if mine:
            result.participants[pid] += 1
        for event, hood in mine:
            result.counted[pid].add(event.like_id)
            result.per_proposal[(pid, event.proposal, hood.code)] += 1
            result.totals[(pid, "city", CITY)] += 1
            result.totals[(pid, "district", hood.district_code or "")] += 1
            result.totals[(pid, "neighbourhood", hood.code)] += 1
    return result


def as_naive(result: TallyResult) -> Naive:
    """The engine's result in the naive model's shape."""
    out = Naive(defaultdict(set), defaultdict(int), defaultdict(int), defaultdict(int), set())
    for tally in result.processes:
        if tally.counted:
            out.counted[tally.process] = set(tally.counted)
        if tally.participants:
            out.participants[tally.process] = tally.participants
        for totals in tally.results:
            for count in totals.by_territory:
                out.per_proposal[(tally.process, totals.proposal, count.code)] = count.supports
        for count in tally.totals:
            if count.supports:
                out.totals[(tally.process, count.kind.value, count.code)] = count.supports
    out.anomalies = {(a.instance, str(a.rule), a.like_id) for a in result.anomalies}
    return out


# ---------------------------------------------------------------------------- properties

SETTINGS = settings(max_examples=150, deadline=None)
#: Where groups turn large: every group at once, after two likes, or as in production.
LARGE_AT_CHOICES = st.sampled_from((0, 2, LARGE_AT))


@SETTINGS
@given(data=tally_inputs(), rng=st.randoms(use_true_random=False))
def test_compute_ignores_order_and_duplication(data: TallyInputs, rng: Any) -> None:
    supports = list(data.supports) + rng.sample(list(data.supports), k=len(data.supports) // 2)
    undos = list(data.undos) * 2
    rng.shuffle(supports)
    rng.shuffle(undos)
    shuffled = replace(data, supports=tuple(supports), undos=tuple(undos))
    assert compute(shuffled) == compute(data)


@SETTINGS
@given(data=tally_inputs())
def test_compute_agrees_with_the_naive_model(data: TallyInputs) -> None:
    got, want = as_naive(compute(data)), naive(data)
    assert got.counted == want.counted
    assert got.per_proposal == want.per_proposal
    assert got.totals == want.totals
    assert got.participants == want.participants
    assert got.anomalies == want.anomalies


@SETTINGS
@given(
    data=tally_inputs(),
    detours=st.lists(st.tuples(rosters(), residents()), max_size=3),
    rng=st.randoms(use_true_random=False),
    large_at=LARGE_AT_CHOICES,
)
def test_incremental_equals_compute_at_every_step(
    data: TallyInputs,
    detours: list[tuple[Roster, tuple[ResidentRecord, ...]]],
    rng: Any,
    large_at: int,
) -> None:
    events: list[Any] = [*data.supports, *data.undos, *data.supports[:3]]
    events += [("config", roster, people) for roster, people in detours]
    rng.shuffle(events)
    events.append(("config", data.roster, data.residents))
    tally = IncrementalTally(Roster(CITY), large_at)
    for record in data.processes:
        tally.set_process(record)
    for proposal in data.proposals:
        tally.add_proposal(proposal)
    for step, event in enumerate(events):
        if isinstance(event, SupportEvent):
            tally.add_support(event)
        elif isinstance(event, UndoEvent):
            tally.add_undo(event)
        else:
            _, roster, people = event
            tally.set_roster(roster)
            known = {r.actor: r.territory for r in people}
            for actor in ACTORS:  # a resident with no record becomes unverified
                tally.set_resident(actor, known.get(actor))
        if step % 7 == 0:
            assert tally.result() == compute(tally.inputs())
        elif step % 7 == 3:
            # One process read alone (the others left dirty) is what the full result says.
            expected = compute(tally.inputs())
            for record in data.processes[::2]:
                assert tally.process(record.id) == expected.process(record.id)
    assert tally.result() == compute(data)
    assert as_naive(tally.result()).counted == naive(data).counted


@SETTINGS
@given(data=tally_inputs(), removed=st.sampled_from(tuple(ROSTERED)), large_at=LARGE_AT_CHOICES)
def test_remove_then_restore_is_a_round_trip(
    data: TallyInputs, removed: str, large_at: int
) -> None:
    tally = IncrementalTally.from_inputs(data, large_at)
    before = tally.result()
    if data.roster.entry(removed) is None:
        return
    tally.remove_instance(removed)
    gone = tally.result()
    assert not any(
        like.startswith(removed + "/") for process in gone.processes for like in process.counted
    )
    assert gone == compute(replace(data, roster=data.roster.with_active(removed, False)))
    tally.restore_instance(removed)
    assert tally.result() == compute(replace(data, roster=data.roster.with_active(removed, True)))
    if data.roster.entry(removed).active:  # type: ignore[union-attr]
        assert tally.result() == before


@SETTINGS
@given(
    data=tally_inputs(),
    later=tally_inputs(),
    detour=st.tuples(rosters(), residents()),
    rng=st.randoms(use_true_random=False),
    large_at=LARGE_AT_CHOICES,
)
def test_the_bulk_rebuild_equals_feeding_and_keeps_updating(
    data: TallyInputs,
    later: TallyInputs,
    detour: tuple[Roster, tuple[ResidentRecord, ...]],
    rng: Any,
    large_at: int,
) -> None:
    """``from_inputs`` (one pass, the restart path) equals ``compute``, and events fed after it
    keep it equal: its indexes are those the one-at-a-time path would have built."""
    tally = IncrementalTally.from_inputs(data, large_at)
    assert tally.result() == compute(data)
    assert compute(tally.inputs()) == compute(data)
    events: list[Any] = [*later.supports, *later.undos, *data.supports[:2], *data.undos[:2]]
    rng.shuffle(events)
    for event in events:
        if isinstance(event, SupportEvent):
            tally.add_support(event)
        else:
            tally.add_undo(event)
    roster, people = detour
    tally.set_roster(roster)
    known = {r.actor: r.territory for r in people}
    for actor in ACTORS:
        tally.set_resident(actor, known.get(actor))
    assert tally.result() == compute(tally.inputs())
    tally.set_roster(data.roster)
    for record in data.residents:
        tally.set_resident(record.actor, record.territory)
    assert tally.result() == compute(tally.inputs())
