"""One actor flooding a process with likes costs the tally linear work, and counts exactly.

Any server with a key can send thousands of signed likes by one actor: each is stored and
flagged (off the roster, a duplicate, over the limit), and each lands in the same (actor,
process) group. Combining the whole group again per like made that quadratic (4,000 likes from
an actor off the roster took 14.7 s of the event loop). Past ``LARGE_AT`` members a group moves
one like at a time; these tests count the work done (never time it) and compare every result
with ``compute``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from federation.model import SupportRules
from federation.tally import (
    IncrementalTally,
    ProposalRecord,
    ResidentRecord,
    Rule,
    SupportEvent,
    compute,
    rules,
)
from federation.tally import incremental as engine
from federation.tally.large import LARGE_AT
from tests.test_tally import (
    HOODS,
    PID,
    RESIDENTS,
    ROSTER,
    A,
    X,
    at,
    inputs,
    like,
    process,
    undo,
    user,
)  # fmt: skip

FLOOD = 6 * LARGE_AT
MALLORY, ROGUE = user(A, "mallory"), user(X, "rogue")


@contextmanager
def combined_sizes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The size of every group ``combine_active`` is asked to combine (rules 4 and 5)."""
    sizes: list[int] = []
    real = rules.combine_active

    def counting(process: str, active: list[Any], anomalies: list[Any], ctx: Any) -> Any:
        sizes.append(len(active) + len(anomalies))
        return real(process, active, anomalies, ctx)

    monkeypatch.setattr(engine, "combine_active", counting)
    yield sizes


def proposals(n: int) -> tuple[ProposalRecord, ...]:
    return tuple(ProposalRecord(f"{A}/proposals/f{i}", PID, A) for i in range(n))


def off_roster(i: int) -> SupportEvent:
    """A signed like from a server that is not on the roster: stored, flagged, never counted."""
    return like(f"r{i}", ROGUE, proposals(1)[0].proposal)


def duplicate(i: int) -> SupportEvent:
    """The same proposal again and again, each like published a second later."""
    return like(f"d{i}", MALLORY, proposals(1)[0].proposal, at(5) + timedelta(seconds=i))


def backdated(i: int) -> SupportEvent:
    """The same proposal, each like published earlier than the last: each wins it in turn."""
    return like(f"b{i}", MALLORY, proposals(1)[0].proposal, at(20) - timedelta(seconds=i))


def over_limit(i: int) -> SupportEvent:
    """A different proposal each time, past the limit of 3, earlier each time."""
    return like(f"o{i}", MALLORY, proposals(FLOOD)[i].proposal, at(20) - timedelta(seconds=i))


SHAPES: dict[str, Callable[[int], SupportEvent]] = {
    "off_roster": off_roster,
    "duplicate": duplicate,
    "backdated": backdated,
    "over_limit": over_limit,
}


def flood_tally(limit: int, minimum: int = 0) -> IncrementalTally:
    tally = IncrementalTally(ROSTER)
    rules = SupportRules(supports_per_participant=limit, minimum_supports_per_participant=minimum)
    tally.set_process(process(rules=rules))
    for record in proposals(FLOOD):
        tally.add_proposal(record)
    tally.set_resident(MALLORY, HOODS[A])
    return tally


def expected(tally: IncrementalTally) -> Any:
    return compute(tally.inputs())


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_flood_is_combined_a_bounded_number_of_times(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tally = flood_tally(limit=3)
    with combined_sizes(monkeypatch) as sizes:
        for i in range(FLOOD):
            tally.add_support(SHAPES[shape](i))
        result = tally.result()
    # The group is combined per like only while small, then once for the read: the old
    # engine combined every like's whole group, sum(range(FLOOD)) = 66,048 members.
    assert sum(sizes) <= LARGE_AT * LARGE_AT + 2 * FLOOD, sum(sizes)
    assert result == expected(tally)
    assert len(result.anomalies) >= FLOOD - 3


def test_each_flood_is_counted_as_compute_counts() -> None:
    tally = flood_tally(limit=3)
    for shape in SHAPES.values():
        for i in range(FLOOD):
            tally.add_support(shape(i))
    result = tally.result()
    assert result == expected(tally)
    rules = {a.rule for a in result.anomalies}
    assert rules == {Rule.NOT_ON_ROSTER, Rule.DUPLICATE, Rule.OVER_LIMIT}
    # Mallory's three earliest winners count: the first duplicate (day 5) wins its proposal,
    # then the two over_limit likes published last (each a second before the previous).
    assert sorted(result.processes[0].counted) == sorted(
        (duplicate(0).like_id, over_limit(FLOOD - 1).like_id, over_limit(FLOOD - 2).like_id)
    )


@pytest.mark.parametrize("limit, minimum", [(0, 0), (3, 0), (3, 3), (0, 2), (2, 3)])
def test_withdrawals_in_a_large_group_move_the_next_winner_in(limit: int, minimum: int) -> None:
    """Undo the winners one by one (and the minimum crossed both ways) as compute would."""
    tally = flood_tally(limit, minimum)
    likes = [over_limit(i) for i in range(FLOOD)] + [duplicate(i) for i in range(LARGE_AT)]
    for event in likes:
        tally.add_support(event)
    assert tally.result() == expected(tally)
    # The earliest likes are the last over_limit ones: withdrawing them walks down the list.
    for event in reversed(likes[FLOOD - 8 : FLOOD]):
        tally.add_undo(undo(event, at(21)))
        assert tally.result() == expected(tally)
    for event in likes[FLOOD:][:5]:
        tally.add_undo(undo(event, at(21)))
        assert tally.result() == expected(tally)


def test_record_changes_recount_a_large_group() -> None:
    """A residency lost and regained, the roster, the process's limit: each recounts it."""
    tally = flood_tally(limit=3)
    for i in range(FLOOD):
        tally.add_support(over_limit(i))
    tally.set_resident(MALLORY, None)
    assert tally.result() == expected(tally) and not tally.result().processes[0].counted
    tally.set_resident(MALLORY, HOODS[A])
    assert len(tally.result().processes[0].counted) == 3
    tally.set_process(process(rules=SupportRules(supports_per_participant=10)))
    assert tally.result() == expected(tally)
    assert len(tally.result().processes[0].counted) == 10
    tally.remove_instance(A)
    assert tally.result() == expected(tally) and not tally.result().processes[0].counted
    tally.restore_instance(A)
    assert tally.result() == expected(tally)


def test_a_restart_keeps_a_large_group_large_and_exact() -> None:
    """``from_inputs`` builds a flooded group once, and later likes still move one at a time."""
    data = replace(
        inputs(
            tuple(over_limit(i) for i in range(FLOOD)),
            processes=(process(rules=SupportRules(supports_per_participant=3)),),
        ),
        residents=(*RESIDENTS, ResidentRecord(MALLORY, HOODS[A])),
        proposals=proposals(FLOOD),
    )
    tally = IncrementalTally.from_inputs(data)
    assert tally.result() == compute(data)
    early = like("early", MALLORY, proposals(FLOOD)[0].proposal, at(2))
    tally.add_support(early)
    assert tally.result() == expected(tally)
    assert early.like_id in tally.result().processes[0].counted


def test_reading_the_totals_leaves_a_floods_anomalies_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``processes()`` (the Tally publisher, the process listing) never gathers and sorts the
    anomalies, which a flood makes the one costly part of a read; ``result()`` still does."""
    tally = flood_tally(limit=3)
    for i in range(FLOOD):
        tally.add_support(off_roster(i))
        tally.add_support(over_limit(i))
    sorted_sizes: list[int] = []
    real = engine.sorted_anomalies

    def counting(anomalies: Any) -> Any:
        found = real(anomalies)
        sorted_sizes.append(len(found))
        return found

    monkeypatch.setattr(engine, "sorted_anomalies", counting)
    want = expected(tally)
    assert tally.processes() == want.processes
    assert tally.process(PID) == want.process(PID)
    assert sorted_sizes == []
    assert tally.result() == want
    assert sorted_sizes == [len(want.anomalies)] and len(want.anomalies) >= 2 * FLOOD - 3
