"""The seeded workload and its ground truth: what residents do, and what must be counted.

The model is deliberately simple and independent of Barri's tally: a support counts when its
Like was sent and not undone; it counts in the process of its proposal, for the supporter's
neighbourhood and district; participants are distinct supporters per process. Honest residents
never exceed a process's limit (every Like ever sent counts against it, withdrawn or not).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmarks.citysim.profiles import CITY_CODE, Profile

STATES = ("evaluating", "accepted", "rejected")
ALIGNMENTS = ("inFavor", "against", "neutral")


@dataclass(frozen=True)
class Hood:
    """A neighbourhood instance (or, with kind "city", the city's own instance)."""

    key: str
    code: str
    district: str | None
    kind: str  # "neighbourhood" or "city"
    residents: tuple[str, ...]


@dataclass(frozen=True)
class Act:
    """One resident's act: kind is propose, support, withdraw, comment or answer."""

    kind: str
    place: str
    resident: str
    proposal: str  # the proposal's key (for propose: the new one's key)
    process: str = ""  # propose: the process's owner key
    state: str = ""  # answer: the official state


@dataclass
class Workload:
    """The city, the proposals phase, the stream of acts, and the answers."""

    hoods: list[Hood]
    proposals: list[Act]
    stream: list[Act]
    answers: list[Act]
    burst: list[Act] = field(default_factory=list)  # the participatory-budget rush, last
    process_of: dict[str, str] = field(default_factory=dict)  # proposal key -> owner key


def city_layout(profile: Profile) -> list[Hood]:
    """The city's instance first, then each neighbourhood with its district code."""
    names = tuple(f"c{n:03d}" for n in range(profile.city_residents))
    hoods = [Hood("city", CITY_CODE, None, "city", names)]
    for i in range(profile.hoods):
        district = f"{i % profile.districts + 1:02d}"
        residents = tuple(f"r{n:04d}" for n in range(profile.residents))
        hoods.append(Hood(f"h{i + 1:02d}", f"{i + 1:02d}", district, "neighbourhood", residents))
    return hoods


def generate(profile: Profile, seed: int) -> Workload:
    """The whole workload for ``profile``, the same for the same seed."""
    rng = random.Random(seed)
    hoods = city_layout(profile)
    work = Workload(hoods, [], [], [])
    _proposals(work, profile, rng)
    _stream(work, profile, rng)
    answered = rng.sample([p.proposal for p in work.proposals], k=profile.answers)
    for key in answered:
        owner = work.process_of[key]
        work.answers.append(Act("answer", owner, "admin", key, state=rng.choice(STATES)))
    return work


def _proposals(work: Workload, profile: Profile, rng: random.Random) -> None:
    everyone = [(h.key, r) for h in work.hoods for r in h.residents]
    for hood in work.hoods[1:]:
        for n in range(profile.hood_proposals):
            key = f"{hood.key}-p{n:03d}"
            author = rng.choice(hood.residents)
            work.proposals.append(Act("propose", hood.key, author, key, process=hood.key))
            work.process_of[key] = hood.key
    for n in range(profile.city_proposals):
        key = f"city-p{n:03d}"
        place, author = rng.choice(everyone)
        work.proposals.append(Act("propose", place, author, key, process="city"))
        work.process_of[key] = "city"


def _stream(work: Workload, profile: Profile, rng: random.Random) -> None:
    """Supports, withdrawals and comments, interleaved at random."""
    by_process: dict[str, list[str]] = {}
    for key, owner in work.process_of.items():
        by_process.setdefault(owner, []).append(key)
    weights = {k: rng.paretovariate(1.2) for k in work.process_of}  # a few popular ones
    kinds = ["support"] * profile.supports + ["comment"] * profile.comments
    rng.shuffle(kinds)
    supporters = [(h.key, r) for h in work.hoods[1:] for r in h.residents]
    liked: dict[tuple[str, str], set[str]] = {}
    used: Counter[tuple[str, str, str]] = Counter()  # (place, resident, process) -> Likes
    active: list[tuple[str, str, str]] = []
    undo_every = max(1, profile.supports // max(1, profile.withdrawals))
    for i, kind in enumerate(kinds):
        place, resident = rng.choice(supporters)
        choices = by_process[place] + by_process["city"]
        if kind == "comment":
            key = rng.choices(choices, weights=[weights[k] for k in choices])[0]
            work.stream.append(Act("comment", place, resident, key))
            continue
        mine = liked.setdefault((place, resident), set())
        open_ = [k for k in choices if k not in mine
                 and used[(place, resident, work.process_of[k])] < profile.limit]  # fmt: skip
        if not open_:
            continue  # this resident has used every support; the act is skipped
        key = rng.choices(open_, weights=[weights[k] for k in open_])[0]
        mine.add(key)
        used[(place, resident, work.process_of[key])] += 1
        work.stream.append(Act("support", place, resident, key))
        active.append((place, resident, key))
        if i % undo_every == 0 and len(active) > 1:
            # Every other withdrawal undoes the support just given (its Undo follows its Like
            # within milliseconds: the reorder fault makes it overtake); the rest an older one.
            at = len(active) - 1 if (i // undo_every) % 2 else rng.randrange(len(active))
            place_u, resident_u, key_u = active.pop(at)
            work.stream.append(Act("withdraw", place_u, resident_u, key_u))
    _burst(work, profile, rng, supporters, liked, used)


def _burst(work: Workload, profile: Profile, rng: random.Random,
           supporters: list[tuple[str, str]], liked: dict[tuple[str, str], set[str]],
           used: Counter[tuple[str, str, str]]) -> None:  # fmt: skip
    """The participatory-budget burst: supports of city-wide proposals only, within limits."""
    city = [k for k, owner in work.process_of.items() if owner == "city"]
    tries = 0
    while len(work.burst) < profile.burst and tries < 4 * profile.burst:
        tries += 1
        place, resident = rng.choice(supporters)
        mine = liked.setdefault((place, resident), set())
        if used[(place, resident, "city")] >= profile.limit:
            continue
        key = rng.choice(city)
        if key in mine:
            continue
        mine.add(key)
        used[(place, resident, "city")] += 1
        work.burst.append(Act("support", place, resident, key))


def expected(
    work: Workload,
    ids: dict[str, str],
    processes: dict[str, str],
    extra: Iterable[tuple[str, str, str]] = (),
    extra_codes: Mapping[str, tuple[str, str | None]] | None = None,
) -> dict[str, Any]:
    """Per process IRI: what the aggregator must show (same shape as :func:`observed`).

    ``extra``: (place, resident, proposal key) supports that count beyond the stream's (the
    malicious instance's honest ones), from places whose codes are in ``extra_codes``.
    """
    codes = {h.key: (h.code, h.district) for h in work.hoods} | dict(extra_codes or {})
    live: set[tuple[str, str, str]] = set(extra)
    for act in [*work.stream, *work.burst]:
        if act.kind == "support":
            live.add((act.place, act.resident, act.proposal))
        elif act.kind == "withdraw":
            live.discard((act.place, act.resident, act.proposal))
    per = {owner: _empty() for owner in processes}
    for place, resident, key in live:
        totals = per[work.process_of[key]]
        code, district = codes[place]
        totals["supports"] += 1
        totals["participants"].add((place, resident))
        totals["proposals"][ids[key]] += 1
        totals["neighbourhoods"][code] += 1
        totals["districts"][district or ""] += 1
    return {
        processes[owner]: _final(t, {ids[a.proposal]: a.state for a in work.answers
                                     if work.process_of[a.proposal] == owner})
        for owner, t in per.items()
    }  # fmt: skip


def _empty() -> dict[str, Any]:
    return {"supports": 0, "participants": set(), "proposals": Counter(),
            "neighbourhoods": Counter(), "districts": Counter()}  # fmt: skip


def _final(totals: dict[str, Any], states: dict[str, str]) -> dict[str, Any]:
    return {
        "supports": totals["supports"],
        "participants": len(totals["participants"]),
        "proposals": dict(sorted(totals["proposals"].items())),
        "neighbourhoods": dict(sorted(totals["neighbourhoods"].items())),
        "districts": dict(sorted(totals["districts"].items())),
        "states": states,
    }


def observed(results: dict[str, Any], answered: set[str]) -> dict[str, Any]:
    """The same shape, read from the aggregator's ``/api/v1/processes/{iri}/results``."""
    proposals = results.get("proposals", [])
    totals = results.get("totals", {})
    return {
        "supports": results.get("supports"),
        "participants": results.get("participants"),
        "proposals": dict(sorted((p["id"], p["supports"]) for p in proposals if p["supports"])),
        "neighbourhoods": dict(sorted(totals.get("neighbourhoods", {}).items())),
        "districts": dict(sorted(totals.get("districts", {}).items())),
        "states": {p["id"]: p.get("state") for p in proposals if p["id"] in answered},
    }
