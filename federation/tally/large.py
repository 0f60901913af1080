"""A large (actor, process) group, counted incrementally: rules 4 and 5 per like by bisection.

An honest group holds a handful of likes (the per-participant limit plus a few withdrawn), and
``Group`` simply combines all of them again when one changes. An actor with thousands of likes
in one process (a flood: any server with a key can send them, and each is stored and flagged)
would make that quadratic and stall the aggregator, so past ``LARGE_AT`` members a group keeps
what rules 4 and 5 need to move one like at a time (DESIGN.md §7):

- the active likes of each proposal, sorted by (published, like id): the first one is the
  proposal's winner (rule 4), the others are duplicates;
- the winners, sorted the same way: the first ``limit`` of them count (rule 5), and none when
  fewer than the minimum would.

Adding or withdrawing one active like moves at most a winner or two, so the running counts get
a short list of changes (``Shift``): O(log n) comparisons, plus the sorted lists' memmove (a
few microseconds at 100,000 likes, benchmarks/bench_flood.py). An inactive like (refused by
rules 1–3 or undone) changes nothing counted. The anomalies are the only part built from the
whole group, and only when the result is read (``rules_4_and_5``, the small path's own rules).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from datetime import datetime

from .records import Anomaly, ProcessRecord
from .rules import Context, Counted, Screened, rules_4_and_5

#: Groups with more members than this are kept as a ``LargeGroup``.
LARGE_AT = 64

#: The changes to a process's counts, in order: (a like counted as, +1 or -1).
Shift = list[tuple[Counted, int]]

_Order = tuple[datetime, str]  # (published, like id): rule 4 and 5's order


def _order(counted: Counted) -> _Order:
    return (counted.published, counted.like_id)


class LargeGroup:
    """One (actor, process) group with many likes: its verdicts, and rules 4 and 5 kept sorted.

    ``verdicts`` maps every member to its screened verdict (None: screen it again). ``limit``
    and ``minimum`` are the process's rules, read when the group is (re)built.
    """

    __slots__ = ("_active", "_by_proposal", "_winners", "anomalies", "key", "limit", "minimum",
                 "verdicts")  # fmt: skip

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.verdicts: dict[str, Screened | None] = {}
        self.limit = self.minimum = 0
        #: The group's anomalies as last combined; None until the result is read again.
        self.anomalies: tuple[Anomaly, ...] | None = None
        self._active: dict[str, Counted] = {}
        self._by_proposal: dict[str, list[_Order]] = {}
        self._winners: list[tuple[datetime, str, Counted]] = []

    def __len__(self) -> int:
        return len(self.verdicts)

    @property
    def counting(self) -> bool:
        """True when the group counts anything (its actor is a participant)."""
        return self._counts(len(self._winners))

    def active(self) -> list[Counted]:
        """The likes that passed rules 1–3 and are not undone."""
        return list(self._active.values())

    def counted(self) -> list[Counted]:
        """What the group counts now (rules 4 and 5)."""
        if not self.counting:
            return []
        chosen = self._winners[: self.limit] if self.limit else self._winners
        return [counted for _, _, counted in chosen]

    def rebuild(
        self, record: ProcessRecord | None, screen: Callable[[str], Screened]
    ) -> tuple[list[Counted], list[Counted]]:
        """Count again from the verdicts under ``record``'s rules, screening those forgotten;
        what the group counted before and what it counts now."""
        before = self.counted()
        rules = None if record is None else record.process.rules
        self.limit = 0 if rules is None else rules.supports_per_participant
        self.minimum = 0 if rules is None else rules.minimum_supports_per_participant
        self._active.clear()
        self._by_proposal.clear()
        self._winners.clear()
        ignored: Shift = []
        for like_id, verdict in self.verdicts.items():  # values replaced, keys unchanged
            self.put(like_id, screen(like_id) if verdict is None else verdict, ignored)
            ignored.clear()
        return before, self.counted()

    def combined(self, ctx: Context) -> tuple[Anomaly, ...]:
        """The group's anomalies (unsorted: the result sorts them all once), kept until the
        group changes: only a read of the result asks, so a flood pays for it once per read."""
        if self.anomalies is None:
            verdicts = self.verdicts.values()
            found = [a for verdict in verdicts if verdict is not None for a in verdict.anomalies]
            found += rules_4_and_5(self.key[1], self.active(), ctx)[1]
            self.anomalies = tuple(found)
        return self.anomalies

    def forget_verdicts(self) -> None:
        """Every member is screened again at the next rebuild (a record it reads changed)."""
        self.verdicts = dict.fromkeys(self.verdicts)

    def put(self, like_id: str, screened: Screened, shift: Shift) -> None:
        """Add a like, or replace its verdict; what changes in the counts goes to ``shift``."""
        self.anomalies = None
        before = self._active.pop(like_id, None)
        if before is not None:
            self._withdraw(before, shift)
        self.verdicts[like_id] = screened
        if screened.active is not None:
            self._active[like_id] = screened.active
            self._enter(screened.active, shift)

    def discard(self, like_id: str, shift: Shift) -> None:
        """Take a like out (its canonical copy moved it to another group)."""
        self.anomalies = None
        self.verdicts.pop(like_id, None)
        before = self._active.pop(like_id, None)
        if before is not None:
            self._withdraw(before, shift)

    def _enter(self, counted: Counted, shift: Shift) -> None:
        """Rule 4 for a new active like: it wins its proposal when it is the earliest."""
        ranked = self._by_proposal.setdefault(counted.proposal, [])
        at = bisect_left(ranked, order := _order(counted))
        ranked.insert(at, order)
        if at == 0:
            if len(ranked) > 1:
                self._lose(self._active[ranked[1][1]], shift)
            self._win(counted, shift)

    def _withdraw(self, counted: Counted, shift: Shift) -> None:
        """Rule 4 for a like no longer active: the next earliest wins its proposal."""
        ranked = self._by_proposal[counted.proposal]
        at = bisect_left(ranked, _order(counted))
        del ranked[at]
        if at == 0:
            self._lose(counted, shift)
            if ranked:
                self._win(self._active[ranked[0][1]], shift)
        if not ranked:
            del self._by_proposal[counted.proposal]

    def _win(self, counted: Counted, shift: Shift) -> None:
        """Rule 5 for a new winner: counted when among the first ``limit`` (and the minimum met)."""
        winners, size = self._winners, len(self._winners)
        item = (counted.published, counted.like_id, counted)
        at = bisect_left(winners, item)
        if self._counts(size) != self._counts(size + 1):
            before = self.counted()
            winners.insert(at, item)
            self._swap(before, shift)
            return
        winners.insert(at, item)
        if not self._counts(size + 1) or (self.limit and at >= self.limit):
            return
        shift.append((counted, 1))
        if self.limit and size >= self.limit:
            shift.append((winners[self.limit][2], -1))  # pushed past the limit

    def _lose(self, counted: Counted, shift: Shift) -> None:
        """Rule 5 for a winner no longer: the next one within the limit counts instead."""
        winners, size = self._winners, len(self._winners)
        at = bisect_left(winners, (counted.published, counted.like_id, counted))
        if self._counts(size) != self._counts(size - 1):
            before = self.counted()
            del winners[at]
            self._swap(before, shift)
            return
        del winners[at]
        if not self._counts(size - 1) or (self.limit and at >= self.limit):
            return
        shift.append((counted, -1))
        if self.limit and size - 1 >= self.limit:
            shift.append((winners[self.limit - 1][2], 1))  # back within the limit

    def _swap(self, before: list[Counted], shift: Shift) -> None:
        """The minimum was crossed: everything counted before goes, everything now comes."""
        shift.extend((counted, -1) for counted in before)
        shift.extend((counted, 1) for counted in self.counted())

    def _counts(self, winners: int) -> bool:
        """True when ``winners`` winners count: the first ``limit`` reach the minimum."""
        kept = min(winners, self.limit) if self.limit else winners
        return kept >= max(self.minimum, 1)
