"""Residents' clients: acts POSTed to their outboxes with K requests in flight.

Every act is one ``POST /users/NAME/outbox`` with the resident's personal token, the AS2
content type and a JSON body made ahead of time. The answer's status and the request's
latency (from just before the POST to the end of the answer's body) are kept per act.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.c2skit.template import AS2, Template


@dataclass(frozen=True)
class Act:
    """One POST: who, what (the activity), and a label for the results."""

    resident: str
    kind: str
    activity: dict[str, Any]
    key: tuple[str, str] | None = None  # (resident, proposal) of a support, to undo it later


@dataclass
class Outcome:
    """What a batch of acts gave."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    likes: dict[tuple[str, str], str] = field(default_factory=dict)  # support -> Like id
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        """Acts answered 201."""
        return self.statuses.get(201, 0)


def supports(template: Template, count: int, rng: random.Random) -> list[Act]:
    """``count`` Likes, each of a distinct (resident, proposal) pair, in random order."""
    names = sorted(template.tokens)
    pairs: set[tuple[str, str]] = set()
    if count > len(names) * len(template.proposals):
        raise ValueError("more supports than (resident, proposal) pairs")
    while len(pairs) < count:
        pairs.add((rng.choice(names), rng.choice(template.proposals)))
    ordered = sorted(pairs)
    rng.shuffle(ordered)
    return [Act(r, "support", {"type": "Like", "object": p}, key=(r, p)) for r, p in ordered]


def withdrawals(likes: dict[tuple[str, str], str], count: int, rng: random.Random) -> list[Act]:
    """``count`` Undos of Likes given earlier."""
    chosen = rng.sample(sorted(likes), min(count, len(likes)))
    return [Act(r, "withdraw", {"type": "Undo", "object": likes[(r, p)]}) for r, p in chosen]


def comments(template: Template, count: int, rng: random.Random) -> list[Act]:
    """``count`` Notes replying to random proposals (bare objects, wrapped by the server)."""
    names = sorted(template.tokens)
    alignments = ("inFavor", "against", "neutral")
    return [
        Act(
            name,
            "comment",
            {
                "type": "Note",
                "inReplyTo": rng.choice(template.proposals),
                "content": f"Un comentari {i} de {name}.",
                "alignment": alignments[i % 3],
            },
        )
        for i, name in enumerate(rng.choice(names) for _ in range(count))
    ]


async def run(template: Template, acts: Sequence[Act], concurrency: int) -> Outcome:
    """POST every act with ``concurrency`` requests in flight; never raises on a refusal."""
    outcome = Outcome()
    queue = list(reversed(acts))
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                act = queue.pop()
                await _post(session, template, act, outcome)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        outcome.seconds = time.perf_counter() - start
    return outcome


async def _post(
    session: aiohttp.ClientSession, template: Template, act: Act, outcome: Outcome
) -> None:
    headers = {
        "Authorization": f"Bearer {template.tokens[act.resident]}",
        "Content-Type": AS2,
        "Accept": AS2,
    }
    body = json.dumps(act.activity).encode()
    url = template.actor(act.resident) + "/outbox"
    start = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            answer = await response.read()
            status = response.status
    except aiohttp.ClientError as exc:
        outcome.errors.append(f"{act.kind}: {exc!r}")
        return
    outcome.latencies.append(time.perf_counter() - start)
    outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
    if status != 201:
        if len(outcome.errors) < 20:
            outcome.errors.append(f"{act.kind}: HTTP {status}: {answer[:300]!r}")
        return
    if act.key is not None:
        outcome.likes[act.key] = str(json.loads(answer)["id"])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
