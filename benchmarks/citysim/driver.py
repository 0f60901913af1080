"""Residents acting through the real interfaces: C2S outbox POSTs with their personal tokens,
official answers through the admin pages; every act timestamped when its POST was answered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.citysim.cluster import PASSWORD, City, CityError
from benchmarks.citysim.workload import ALIGNMENTS, Act
from federation.demo_web import Browser

AS2 = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
ARRIVAL_WAIT = 600.0  # a big city announces hundreds of proposals to every instance
DOWN_WAIT = 120.0  # how long a resident keeps retrying an act refused while a server is down
RETRY_PAUSE = 0.5


@dataclass
class Driver:
    """Sends acts and keeps what they made: proposal ids, Like ids, act times."""

    city: City
    session: aiohttp.ClientSession
    ids: dict[str, str] = field(default_factory=dict)  # proposal key -> IRI
    likes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    liked_at: dict[str, float] = field(default_factory=dict)  # Like id -> its 201 (wall clock)
    done: list[tuple[float, Act]] = field(default_factory=list)
    retries: int = 0  # POSTs repeated because an instance was down

    async def post(self, act: Act, activity: dict[str, Any]) -> dict[str, Any]:
        """POST to the resident's outbox; the stored activity (CityError unless 201)."""
        actor = self.city.actor(act.place, act.resident)
        headers = {"Authorization": f"Bearer {self.city.tokens[(act.place, act.resident)]}",
                   "Content-Type": AS2, "Accept": AS2}  # fmt: skip
        body = json.dumps(activity).encode()
        deadline = time.monotonic() + DOWN_WAIT
        while True:
            try:
                async with self.session.post(actor + "/outbox", data=body,
                                             headers=headers) as response:  # fmt: skip
                    answer = await response.json(content_type=None)
                    status = response.status
            except aiohttp.ClientConnectionError as exc:
                # Down, or a pooled connection it closed on its way down (before the request
                # was read: a graceful stop finishes the requests it has read).
                status, answer = 0, f"connection lost: {exc}"
            # 503: an instance down, or a recipient it must reach first (the process owner).
            if status not in (0, 502, 503) or time.monotonic() > deadline:
                break
            self.retries += 1
            await asyncio.sleep(RETRY_PAUSE)
        if status != 201:
            raise CityError(f"{act}: HTTP {status}: {answer}")
        self.done.append((time.monotonic(), act))
        return dict(answer)

    async def act(self, act: Act) -> None:
        """One act of the stream."""
        if act.kind == "propose":
            proposal = {"type": ["Page", "Proposal"], "process": self.city.processes[act.process],
                        "name": f"Proposta {act.proposal}",
                        "source": {"content": f"Text de {act.proposal}.",
                                   "mediaType": "text/markdown"}}  # fmt: skip
            created = await self.post(act, {"type": "Create", "object": proposal})
            self.ids[act.proposal] = str(created["object"]["id"])
        elif act.kind == "support":
            like = await self.post(act, {"type": "Like", "object": self.ids[act.proposal]})
            self.likes[(act.place, act.resident, act.proposal)] = str(like["id"])
            self.liked_at[str(like["id"])] = time.time()
        elif act.kind == "withdraw":
            like_id = self.likes[(act.place, act.resident, act.proposal)]
            await self.post(act, {"type": "Undo", "object": like_id})
        elif act.kind == "comment":
            note = {"type": "Note", "inReplyTo": self.ids[act.proposal],
                    "content": f"Un comentari de {act.resident}.",
                    "alignment": ALIGNMENTS[len(self.done) % 3]}  # fmt: skip
            await self.post(act, {"type": "Create", "object": note})
        else:
            raise CityError(f"unknown act {act.kind}")

    async def run(self, acts: Iterable[Act], concurrency: int) -> None:
        """Every act, each resident's in order, ``concurrency`` residents at a time."""
        queues: dict[tuple[str, str], list[Act]] = {}
        for act in acts:
            queues.setdefault((act.place, act.resident), []).append(act)
        gate = asyncio.Semaphore(concurrency)

        async def resident(items: list[Act]) -> None:
            for item in items:
                async with gate:
                    await self.act(item)

        await asyncio.gather(*(resident(items) for items in queues.values()))

    async def answer(self, acts: list[Act]) -> None:
        """Official answers through each owner's admin page (/admin/answers)."""
        browsers: dict[str, Browser] = {}
        try:
            for act in acts:
                if act.place not in browsers:
                    browsers[act.place] = Browser(self.city.sites[act.place].base_url, "admin")
                    await browsers[act.place].login(PASSWORD)
                text = f"Resposta oficial: {act.state}."
                await browsers[act.place].answer(self.ids[act.proposal], act.state, text)
                self.done.append((time.monotonic(), act))
        finally:
            await asyncio.gather(*(b.close() for b in browsers.values()))

    async def wait_arrivals(self, keys: list[str], places: list[str]) -> None:
        """Every city-wide proposal has reached every instance (the city Group's Announces)."""
        for place in places:
            browser = Browser(self.city.sites[place].base_url, "admin")
            try:
                await browser.login(PASSWORD)
                for key in keys:
                    if not self.ids[key].startswith(browser.base_url + "/"):
                        await browser.wait_for(self.ids[key], ARRIVAL_WAIT)
            finally:
                await browser.close()
