"""One (actor, process) group of the incremental tally: its likes, their cached verdicts and
what it counts, kept small (a city holds tens of thousands of groups and hundreds of thousands
of likes; see incremental.py)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from itertools import chain

from .records import Anomaly
from .rules import Counted, GroupOutcome, Screened

Key = tuple[str, str]  # (actor, process)


class Clean(Enum):
    """The verdict of a like counted without anomaly: all its copies are genuine and agree, so
    its canonical copy is its first kept copy, and its ``Counted`` is rebuilt from that."""

    CLEAN = 1


CLEAN = Clean.CLEAN
#: A cached per-like verdict; None in a group's list means "screen it again".
Verdict = Screened | Clean


def compact(screened: Screened) -> Verdict:
    """What to keep of a verdict: a like counted without anomaly is the shared ``CLEAN``."""
    return CLEAN if not screened.anomalies and screened.active else screened


class Group:
    """One (actor, process) group: its like ids, their cached verdicts, and what it counts.

    Members are one flat list, ``[like id, verdict, like id, verdict, …]`` (a verdict of None:
    screen it again), a list header less than two parallel lists. What the group counts is kept
    flat too, ``(like id, proposal, published)`` per counted like, with the neighbourhood,
    district and instance they all count in: one actor's likes share a roster entry, so a
    ``Counted`` per like would repeat three fields and cost a tuple each. ``key`` is the
    group's one shared key tuple, which the indexes hold too.
    """

    __slots__ = ("anomalies", "counted", "district", "entries", "hood", "instance", "key")

    def __init__(self, key: Key) -> None:
        self.key = key
        self.entries: list[str | Verdict | None] = []
        self.counted: tuple[str | datetime, ...] = ()
        self.hood = self.district = self.instance = ""
        self.anomalies: tuple[Anomaly, ...] = ()

    def __len__(self) -> int:
        return len(self.entries) // 2

    def add(self, like_id: str, verdict: Verdict) -> None:
        """Add a like with its verdict, or replace the verdict of a member."""
        try:
            self.entries[self.entries.index(like_id) + 1] = verdict  # verdicts are never str
        except ValueError:
            self.entries += (like_id, verdict)

    def append(self, like_id: str, verdict: Verdict) -> None:
        """Add a like that is in no group yet (``add`` would look for it first: O(n))."""
        self.entries += (like_id, verdict)

    def discard(self, like_id: str) -> None:
        """Take a like out (its canonical copy moved it to another group)."""
        if like_id in self.entries:
            at = self.entries.index(like_id)
            del self.entries[at : at + 2]

    def forget_verdicts(self) -> None:
        """Every member is screened again at the next combine (a record it reads changed)."""
        self.entries[1::2] = [None] * len(self)

    def outcome(self) -> tuple[Counted, ...]:
        """What the group counts, as the ``Counted`` values ``combine`` returned."""
        hood, district, instance = self.hood, self.district, self.instance
        flat = self.counted
        return tuple(
            Counted(flat[i], flat[i + 1], hood, district, flat[i + 2], instance)  # type: ignore[arg-type]
            for i in range(0, len(flat), 3)
        )

    def keep(self, outcome: GroupOutcome | None) -> None:
        """Keep ``combine``'s outcome flat (see the class docstring)."""
        counted = () if outcome is None else outcome.counted
        self.anomalies = () if outcome is None else outcome.anomalies
        self.counted = tuple(
            chain.from_iterable((c.like_id, c.proposal, c.published) for c in counted)
        )
        if counted:
            first = counted[0]
            self.hood, self.district = first.neighbourhood, first.district
            self.instance = first.instance
