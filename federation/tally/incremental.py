"""The tally kept up to date event by event (DESIGN.md §7), equal to ``compute`` at all times.

Every rule looks only at one actor's supports in one process (rules.py), so an event touches a
few *groups*: a support or an undo re-evaluates its actor's group in that process, a residency
change that actor's groups, a roster change the groups of the instances it changes, a process or
proposal record the groups that name it. Each re-evaluation swaps the group's previous outcome
for the new one in the running ``ProcessCounts``, touching only the supports whose fate changed;
nothing is recounted globally. A like's per-like verdict (``screen``) is cached until the like,
its undos or a record it reads changes.

Memory is per like (a city holds hundreds of thousands): a like keeps only its copies (the bare
event in the common one-copy case), a slot in its group's member list and one in its verdict
list. The common verdict, counted without anomaly, is a shared marker: its ``Counted`` is
rebuilt from the canonical copy and the roster when the group is combined. A group keeps what it
counts flat, (like id, proposal, published) per counted like and its territory once, since one
actor's supports all count in one place. Its ``LikeView`` is rebuilt when a like is screened
again, and each group's key is one shared tuple.

A group past ``LARGE_AT`` members (one actor's flood of likes) is a ``LargeGroup`` instead
(large.py): rules 4 and 5 kept sorted, so a like moves the counts by bisection rather than by
combining the whole group again.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain

from federation.model import Territory

from .engine import ProcessCounts, ProcessTally, TallyResult, context_of, process_tally
from .groups import CLEAN, Group, Key, compact
from .large import LARGE_AT, LargeGroup, Shift
from .records import (
    Anomaly,
    ProcessRecord,
    ProposalRecord,
    ResidentRecord,
    Roster,
    SupportEvent,
    TallyInputs,
    UndoEvent,
    sorted_anomalies,
)
from .rules import (
    Context,
    Counted,
    LikeView,
    Origins,
    Screened,
    combine,
    combine_active,
    counted_as,
    like_view,
    screen,
)

#: What is kept of one like: its only copy, or its distinct copies in canonical order.
Copies = SupportEvent | tuple[SupportEvent, ...]


def _as_tuple(kept: Copies | None) -> tuple[SupportEvent, ...]:
    if kept is None:
        return ()
    return (kept,) if isinstance(kept, SupportEvent) else kept


def _add(index: dict[str, tuple[Key, ...]], name: str, key: Key) -> None:
    """Add ``key`` to the small tuple ``index`` keeps for ``name`` (a set costs 216 bytes)."""
    found = index.get(name, ())
    if key not in found:
        index[name] = (*found, key)


class IncrementalTally:
    """Feed verified events and record changes in any order; ``result()`` equals ``compute``."""

    def __init__(self, roster: Roster, large_at: int = LARGE_AT) -> None:
        #: Groups with more members are kept as a ``LargeGroup`` (tests set it low).
        self._large_at = large_at
        self._residents: dict[str, Territory | None] = {}
        self._processes: dict[str, ProcessRecord] = {}
        self._proposals: dict[str, ProposalRecord] = {}
        # The context reads these dicts live, so updating them updates what the rules see.
        self._ctx = Context(roster, self._residents, self._processes, self._proposals, Origins())
        self._undos: dict[str, set[UndoEvent]] = {}
        # The distinct copies of each like id; its canonical copy names its group.
        self._likes: dict[str, Copies] = {}
        # Each group's members, their cached verdicts (dropped whenever the like or a record
        # it depends on changes) and what it counts.
        self._groups: dict[Key, Group | LargeGroup] = {}
        self._counts: dict[str, ProcessCounts] = {}
        # Which groups to re-evaluate when a record changes (kept add-only: a stale entry only
        # costs one needless re-evaluation).
        self._by_actor: dict[str, tuple[Key, ...]] = {}  # an actor has a group or a few
        self._by_origin: dict[str, set[str]] = {}
        # Groups with a like whose proposal is unknown, or known in another process (rule 3
        # holds it until the record comes); a proposal the rules know needs no index.
        self._waiting: dict[str, set[Key]] = {}
        self._proposals_of: dict[str, dict[str, ProposalRecord]] = {}
        self._cached: TallyResult | None = None
        # The result's parts, rebuilt on read only where something changed: a process's totals
        # sort all its counted ids (for the digest), so a busy city must not redo every one.
        self._tallies: dict[str, ProcessTally] = {}
        self._stale: dict[str, ProcessTally] = {}  # a changed process's last totals read
        self._dirty: set[str] = set()
        self._anomalies: tuple[Anomaly, ...] | None = None

    @classmethod
    def from_inputs(cls, inputs: TallyInputs, large_at: int = LARGE_AT) -> IncrementalTally:
        """A tally holding ``inputs``, built in one pass as ``compute`` counts (a restart).

        Equal to feeding every record and event one at a time, without re-evaluating a group
        once per event: each like is screened once and each group combined once. Conflicting
        records are refused as ``compute`` refuses them.
        """
        ctx = context_of(inputs)
        tally = cls(inputs.roster, large_at)
        tally._residents.update(ctx.residents)
        tally._processes.update(ctx.processes)
        for record in ctx.proposals.values():
            tally._proposals[record.proposal] = record
            tally._proposals_of.setdefault(record.process, {})[record.proposal] = record
        for undo in inputs.undos:
            tally._undos.setdefault(undo.like_id, set()).add(undo)
        # One group's views at a time: a city's would be hundreds of megabytes all at once.
        for key, like_ids in tally._gather(inputs.supports).items():
            views = [tally._view(like_id, _as_tuple(tally._likes[like_id])) for like_id in like_ids]
            tally._bulk_group(key, views)
        return tally

    def _gather(self, supports: Iterable[SupportEvent]) -> dict[Key, list[str]]:
        """Keep every like's distinct copies; the like ids by the (actor, process) of their
        canonical copy, in the order first met (``from_inputs`` only)."""
        likes = self._likes
        for event in supports:
            kept = likes.get(event.like_id)
            if kept is None:
                likes[event.like_id] = event
            elif event not in _as_tuple(kept):
                likes[event.like_id] = (*_as_tuple(kept), event)
        groups: dict[Key, list[str]] = {}
        for like_id, kept in likes.items():
            # A lone copy is its like's canonical copy; several are ordered by the rules.
            event = kept if isinstance(kept, SupportEvent) else self._view(like_id, kept).event
            groups.setdefault((event.actor, event.process), []).append(like_id)
        return groups

    def _bulk_group(self, key: Key, views: list[LikeView]) -> None:
        """Index one group's likes and count its outcome (``from_inputs`` only)."""
        actor, process = key = self._key(*key)
        group = self._groups[key] = Group(key)
        screened = []
        for view in views:
            self._keep(view)
            self._note_waiting(view.event, key)
            screened.append(found := screen(view, self._ctx))
            group.entries += (view.like_id, compact(found))
        _add(self._by_actor, actor, key)
        self._by_origin.setdefault(self._ctx.origins.blame(actor), set()).add(actor)
        outcome = combine(process, screened, self._ctx)
        if outcome.counted:
            self._counts.setdefault(process, ProcessCounts()).apply(outcome, 1)
        group.keep(outcome)
        if len(group) > self._large_at:
            self._enlarge(group)

    @property
    def roster(self) -> Roster:
        """The roster currently applied."""
        return self._ctx.roster

    def process_records(self) -> tuple[ProcessRecord, ...]:
        """The process records currently applied, by id."""
        return tuple(self._processes[pid] for pid in sorted(self._processes))

    def add_support(self, event: SupportEvent) -> None:
        """Record one received copy of a support; a copy seen before changes nothing."""
        copies = _as_tuple(self._likes.get(event.like_id))
        if event in copies:
            return
        self._index_like(event.like_id, (*copies, event))

    def add_undo(self, event: UndoEvent) -> None:
        """Record one received copy of an undo; it applies to its like whenever that arrives."""
        undos = self._undos.setdefault(event.like_id, set())
        if event in undos:
            return
        undos.add(event)
        copies = _as_tuple(self._likes.get(event.like_id))
        if copies:
            self._index_like(event.like_id, copies)

    def set_resident(self, actor: str, territory: Territory | None) -> None:
        """Set the verified residency an actor's own instance states (None: not verified)."""
        if actor in self._residents and self._residents[actor] == territory:
            return
        self._residents[actor] = territory
        self._refresh_all(self._by_actor.get(actor, ()))

    def set_roster(self, roster: Roster) -> None:
        """Apply a new roster; only the instances whose entry changed are re-evaluated."""
        old, self._ctx.roster = self._ctx.roster, roster
        self._cached = None
        if old.city_code != roster.city_code:
            self._tallies.clear()  # every process's city total is named by the code
            self._refresh_all(self._groups)
            return
        before = {entry.origin: entry for entry in old.entries}
        after = {entry.origin: entry for entry in roster.entries}
        changed = {o for o in before.keys() | after.keys() if before.get(o) != after.get(o)}
        actors = chain.from_iterable(self._by_origin.get(origin, ()) for origin in changed)
        self._refresh_all(chain.from_iterable(self._by_actor[a] for a in set(actors)))

    def remove_instance(self, origin: str) -> None:
        """Take an instance off the active roster: its supports stop counting."""
        self.set_roster(self._ctx.roster.with_active(origin, False))

    def restore_instance(self, origin: str) -> None:
        """Put a removed instance back: its stored supports count again."""
        self.set_roster(self._ctx.roster.with_active(origin, True))

    def set_process(self, record: ProcessRecord) -> None:
        """Add or replace a process (phases, rules, eligibility, grace, closing time)."""
        if self._processes.get(record.id) == record:
            return
        self._processes[record.id] = record
        self._changed(record.id)  # the result lists every known process, counted or not
        # A process record changes seldom: a scan of the groups beats an index per group.
        self._refresh_all(key for key in self._groups if key[1] == record.id)

    def add_proposal(self, record: ProposalRecord) -> None:
        """Add or replace a proposal record (its process and host)."""
        previous = self._proposals.get(record.proposal)
        if previous == record:
            return
        if previous is not None:
            self._proposals_of[previous.process].pop(record.proposal, None)
        self._proposals[record.proposal] = record
        self._proposals_of.setdefault(record.process, {})[record.proposal] = record
        # The result lists every known proposal, supported or not.
        self._changed(record.process, *(() if previous is None else (previous.process,)))
        # Its first record: the likes that waited for it. A record that moves it to another
        # process (rare): every like naming it, found by a scan, so a like still refused after
        # this record needs no index either; only another move can change its fate.
        touched = self._waiting.pop(record.proposal, set())
        if previous is not None and previous.process != record.process:
            touched |= self._naming(record.proposal)
        self._refresh_all(touched)

    def result(self) -> TallyResult:
        """The totals and anomalies over everything fed so far (equal to ``compute``)."""
        if self._cached is None:
            for pid in self._dirty:
                if (stale := self._tallies.pop(pid, None)) is not None:
                    self._stale[pid] = stale
            self._dirty.clear()
            if self._anomalies is None:
                found = chain.from_iterable(map(self._anomalies_of, self._groups.values()))
                self._anomalies = sorted_anomalies(found)
            processes = tuple(self._process_tally(pid) for pid in sorted(self._processes))
            self._cached = TallyResult(processes, self._anomalies)
        return self._cached

    def processes(self) -> tuple[ProcessTally, ...]:
        """Every process's totals by id (``result().processes``), without gathering and sorting
        the anomalies: a flood's hundred thousand would make each read of the totals slow."""
        if self._cached is not None:
            return self._cached.processes
        return tuple(self.process(pid) for pid in sorted(self._processes))

    def process(self, pid: str) -> ProcessTally:
        """One process's totals (equal to ``result().process(pid)``), rebuilding only that one
        when it changed: a reader of one process does not pay for every other busy one."""
        if self._cached is not None:
            return self._cached.process(pid)
        if pid not in self._processes:
            raise KeyError(pid)
        if pid in self._dirty:
            self._dirty.discard(pid)
            if (stale := self._tallies.pop(pid, None)) is not None:
                self._stale[pid] = stale
        return self._process_tally(pid)

    def _process_tally(self, pid: str) -> ProcessTally:
        """A process's totals, from the cache unless it changed since the last read."""
        found = self._tallies.get(pid)
        if found is None:
            proposals = self._proposals_of.get(pid, {}).values()
            counts = self._counts.get(pid) or ProcessCounts()
            # The previous read's per-proposal totals stand where the counts did not move.
            stale = self._stale.pop(pid, None)
            previous = None if stale is None else {r.proposal: r for r in stale.results}
            found = process_tally(
                self._processes[pid], proposals, counts, self.roster.city_code, previous
            )
            counts.touched.clear()
            self._tallies[pid] = found
        return found

    def _changed(self, *processes: str) -> None:
        """The totals of these processes must be rebuilt at the next read."""
        self._cached = None
        self._dirty.update(processes)

    def inputs(self) -> TallyInputs:
        """Everything fed so far, as the inputs ``compute`` recounts from."""
        return TallyInputs(
            roster=self._ctx.roster,
            residents=tuple(ResidentRecord(a, t) for a, t in self._residents.items()),
            processes=tuple(self._processes.values()),
            proposals=tuple(self._proposals.values()),
            supports=tuple(chain.from_iterable(map(_as_tuple, self._likes.values()))),
            undos=tuple(chain.from_iterable(self._undos.values())),
        )

    def _index_like(self, like_id: str, copies: tuple[SupportEvent, ...]) -> None:
        """Rebuild a like's view and re-evaluate its group (and the one it left, if any)."""
        before = self._likes.get(like_id)
        old = None if before is None else self._key(*self._group_of(like_id, _as_tuple(before)))
        view = self._view(like_id, copies)
        self._keep(view)
        actor, _ = key = self._key(view.event.actor, view.event.process)
        if old != key:
            # The group the like left goes first: its counts must let go of the like before
            # the new group counts it, or the two would cancel out in the same process.
            if old is not None:
                self._leave(old, like_id)
            _add(self._by_actor, actor, key)
            self._by_origin.setdefault(self._ctx.origins.blame(actor), set()).add(actor)
        self._note_waiting(view.event, key)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key)
        if isinstance(group, LargeGroup):
            self._put_large(group, like_id, screen(view, self._ctx))
            return
        verdict = compact(screen(view, self._ctx))
        if old is None:
            group.append(like_id, verdict)
        else:
            group.add(like_id, verdict)
        if len(group) > self._large_at:
            self._enlarge(group)
        elif old is not None or verdict is not CLEAN or not self._count_one_more(group, view.event):
            self._refresh(key)

    def _leave(self, key: Key, like_id: str) -> None:
        """Take a like out of the group it was in and let go of what that group counted."""
        group = self._groups[key]
        if isinstance(group, LargeGroup):
            self._changed(key[1])
            self._anomalies = None
            shift: Shift = []
            was = group.counting
            group.discard(like_id, shift)
            self._shift(group, shift, was)
            if not len(group):
                del self._groups[key]
            return
        group.discard(like_id)
        self._refresh(key)

    def _count_one_more(self, group: Group, event: SupportEvent) -> bool:
        """Count a new clean like without combining its group again, when rules 4 and 5 plainly
        let it through: the group counts every active like it has (no anomaly), none of this
        proposal, and one more stays within the limit (the minimum is met already). False when
        the group must be combined instead (DESIGN.md §7; equal to ``combine``)."""
        flat, process = group.counted, group.key[1]
        if group.anomalies or not flat or event.proposal in flat[1::3]:
            return False
        limit = self._processes[process].process.rules.supports_per_participant
        entry = self._ctx.roster.entry(self._ctx.origins(event.actor))
        if (limit and len(flat) // 3 >= limit) or entry is None or entry.origin != group.instance:
            return False
        item = counted_as(event, entry)
        if (item.neighbourhood, item.district) != (group.hood, group.district):
            return False
        group.counted = (*flat, event.like_id, event.proposal, event.published)
        self._changed(process)
        self._counts[process].add(item)
        return True

    def _refresh_all(self, keys: Iterable[Key]) -> None:
        """Re-evaluate groups after a record change: every like in them is screened again."""
        for key in set(keys):
            if (group := self._groups.get(key)) is not None:
                group.forget_verdicts()
                self._refresh(key)

    def _refresh(self, key: Key) -> None:
        """Re-evaluate one (actor, process) group and swap its contribution to the counts."""
        self._changed(key[1])
        group = self._groups.get(key)
        if group is None:
            return
        if isinstance(group, LargeGroup):
            self._rebuild(group)
            return
        new = combine_active(key[1], *self._active(group), self._ctx) if len(group) else None
        if group.anomalies or (new is not None and new.anomalies):
            self._anomalies = None
        if group.counted or (new is not None and new.counted):
            after = () if new is None else new.counted
            self._counts.setdefault(key[1], ProcessCounts()).replace(group.outcome(), after)
        group.keep(new)
        if not len(group):
            del self._groups[key]

    def _put_large(self, group: LargeGroup, like_id: str, screened: Screened) -> None:
        """One like's new verdict in a large group: only what it moves changes in the counts."""
        self._cached = self._anomalies = None
        shift: Shift = []
        was = group.counting
        group.put(like_id, screened, shift)
        if shift:
            self._changed(group.key[1])
            self._shift(group, shift, was)

    def _shift(self, group: LargeGroup, shift: Shift, was: bool) -> None:
        """Apply a large group's changes, and its participant when it starts or stops counting."""
        if shift:
            counts = self._counts.setdefault(group.key[1], ProcessCounts())
            counts.shift(shift, group.counting - was)

    def _enlarge(self, small: Group) -> None:
        """Keep a group that grew past ``large_at`` members as a ``LargeGroup`` from now on."""
        key = small.key
        if small.counted:
            self._counts[key[1]].replace(small.outcome(), ())
        large = self._groups[key] = LargeGroup(key)
        large.verdicts = dict.fromkeys(small.entries[0::2])  # type: ignore[arg-type]
        self._cached = self._anomalies = None
        self._changed(key[1])
        self._rebuild(large)

    def _rebuild(self, group: LargeGroup) -> None:
        """Count a large group again from its verdicts, screening those forgotten (a record it
        reads changed) under the process's current rules."""
        self._anomalies = None
        likes, ctx = self._likes, self._ctx

        def screened(like_id: str) -> Screened:
            return screen(self._view(like_id, _as_tuple(likes[like_id])), ctx)

        before, after = group.rebuild(self._processes.get(group.key[1]), screened)
        if before or after:
            self._counts.setdefault(group.key[1], ProcessCounts()).replace(before, after)
        if not len(group):
            del self._groups[group.key]

    def _anomalies_of(self, group: Group | LargeGroup) -> tuple[Anomaly, ...]:
        """A group's anomalies (a large group combines them again only after it changed)."""
        return group.anomalies if isinstance(group, Group) else group.combined(self._ctx)

    def _active(self, group: Group) -> tuple[list[Counted], list[Anomaly]]:
        """A group's active likes and per-like anomalies, screening only dropped verdicts."""
        active: list[Counted] = []
        anomalies: list[Anomaly] = []
        entries, likes, entry = group.entries, self._likes, None
        for at in range(0, len(entries), 2):
            like_id, found = entries[at], entries[at + 1]
            assert isinstance(like_id, str)
            if found is CLEAN:
                # Every copy is genuine and agrees: the first kept copy is the canonical one.
                kept = likes[like_id]
                event = kept if isinstance(kept, SupportEvent) else kept[0]
                if entry is None:  # one actor, so one roster entry for the whole group
                    entry = self._ctx.roster.entry(self._ctx.origins(event.actor))
                    assert entry is not None  # a clean verdict is dropped with its entry
                active.append(counted_as(event, entry))
                continue
            if found is None:
                found = screen(self._view(like_id, _as_tuple(likes[like_id])), self._ctx)
                entries[at + 1] = compact(found)
            assert isinstance(found, Screened)
            anomalies.extend(found.anomalies)
            if found.active is not None:
                active.append(found.active)
        return active, anomalies

    def _view(self, like_id: str, copies: tuple[SupportEvent, ...]) -> LikeView:
        """The like's view over ``copies`` and the undos naming it."""
        return like_view(like_id, copies, self._undos.get(like_id, ()), self._ctx.origins)

    def _note_waiting(self, event: SupportEvent, key: Key) -> None:
        """Index the group of a like whose proposal the rules cannot place yet."""
        record = self._proposals.get(event.proposal)
        if record is None or record.process != event.process:
            self._waiting.setdefault(event.proposal, set()).add(key)

    def _naming(self, proposal: str) -> set[Key]:
        """Every group with a like of ``proposal`` (a scan: only when a record changes)."""
        found = set()
        for like_id, kept in self._likes.items():
            copies = _as_tuple(kept)
            event = copies[0] if len(copies) == 1 else self._view(like_id, copies).event
            if event.proposal == proposal:
                found.add(self._key(event.actor, event.process))
        return found

    def _keep(self, view: LikeView) -> None:
        """Keep a like's copies only: the bare event when there is one."""
        copies = view.copies
        self._likes[view.like_id] = copies[0] if len(copies) == 1 else copies

    def _group_of(self, like_id: str, copies: tuple[SupportEvent, ...]) -> Key:
        """The group of a like with these copies: its canonical copy's (actor, process)."""
        event = copies[0] if len(copies) == 1 else self._view(like_id, copies).event
        return (event.actor, event.process)

    def _key(self, actor: str, process: str) -> Key:
        """The group's one shared key tuple, when it has a group (indexes hold it too)."""
        key = (actor, process)
        group = self._groups.get(key)
        return key if group is None else group.key
