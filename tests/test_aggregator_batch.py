"""The aggregator writes each inbox batch's votes in one transaction, and counts exactly.

Deliveries recorded together are handled together: every vote of the batch is stored once
(a copy delivered to two inboxes included), counted once, and only marked done after the
batch's write; a write that fails leaves every row of the batch to be retried, none lost.
A row recorded on the strength of its own proof (auth "proof") is not verified again; one
recorded on an HTTP signature is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from federation.aggregator.ingest import Outcome, Provenance
from tests.test_aggregator_ingest import Scene, scene


async def _rows(s: Scene, sql: str) -> list[Any]:
    return list(await s.city.aggregator.db.execute_fetchall(sql))


async def _deliver_all(s: Scene, likes: list[dict[str, Any]]) -> None:
    for like in likes:
        assert await s.a.deliver(like, s.city.inbox) == 202


async def test_a_batch_of_votes_is_stored_once_and_counted_exactly(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        ingest = s.city.runtime.ingest
        before = ingest.counts.copy()
        residents = [s.a.add_resident(f"r{n}") for n in range(6)]
        likes = [s.a.support(r, s.proposals[n % 3]) for n, r in enumerate(residents)]
        await _deliver_all(s, likes)
        # The same copy again, to the Service's own inbox: recorded there, stored once.
        assert await s.a.deliver(likes[0], s.city.actor + "/inbox") == 202
        withdrawn = s.a.undo(likes[1])
        assert await s.a.deliver(withdrawn, s.city.inbox) == 202
        await s.city.settle()
        p0, p1, p2, _ = s.proposals
        assert await s.supports() == {p0: 2, p1: 1, p2: 2}
        stored = await _rows(s, "SELECT kind, COUNT(*) FROM activities GROUP BY kind")
        assert dict(stored) == {"support": 6, "undo": 1}
        assert ingest.counts[("Like", "stored")] - before[("Like", "stored")] == 6
        assert ingest.counts[("Like", "duplicate")] - before[("Like", "duplicate")] == 1
        assert ingest.counts[("Undo", "stored")] - before[("Undo", "stored")] == 1
        left = await _rows(s, "SELECT COUNT(*) FROM inbox_messages WHERE state != 'done'")
        assert left == [(0,)]
        assert await s.agrees()


async def test_a_failed_batch_write_is_retried_and_nothing_is_lost(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        db = s.city.aggregator.db
        await db.execute(
            "CREATE TRIGGER full BEFORE INSERT ON activities"
            " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        residents = [s.a.add_resident(f"r{n}") for n in range(4)]
        await _deliver_all(s, [s.a.support(r, s.proposals[0]) for r in residents])
        await s.city.settle()
        assert await s.supports() == {}
        waiting = await _rows(
            s, "SELECT state, attempts, error FROM inbox_messages WHERE activity LIKE '%Like%'"
        )
        assert len(waiting) == 4
        assert all(
            state == "new" and n >= 1 and "disk full" in error for state, n, error in waiting
        )
        await db.execute("DROP TRIGGER full")
        # Time passes: the retries are due.
        await db.execute("UPDATE inbox_messages SET next_attempt_at = ?", (time.time(),))
        await s.city.settle()
        assert await s.supports() == {s.proposals[0]: 4}
        assert await _rows(s, "SELECT COUNT(*) FROM activities") == [(4,)]
        assert await s.agrees()


async def test_only_a_row_recorded_on_its_proof_skips_the_second_check(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        anna, berta = s.a.add_resident("anna"), s.a.add_resident("berta")
        ingest = s.city.runtime.ingest
        # A copy whose proof does not cover what it says now (the object was changed).
        altered = s.a.support(anna, s.proposals[0])
        altered["object"] = s.proposals[1]
        # Recorded on an HTTP signature by its actor: the proof is checked, and fails.
        http = Provenance.inbox(anna)
        assert await ingest.accept(altered, http) is Outcome.STORED
        await s.city.aggregator.state.sync()
        assert await s.supports() == {}
        assert (await s.anomalies())[s.a.origin] == {"forged": 1}
        # "proof" is the pipeline's word that it verified this very document's proof by its
        # actor (only the pipeline records rows): ingest takes it, and counts the vote.
        genuine = s.a.support(berta, s.proposals[0])
        assert await ingest.accept(genuine, Provenance.inbox(berta, proved=True)) is Outcome.STORED
        # The claim stands only for the actor that the pipeline authenticated: anna's altered
        # copy handed over by berta's delivery is checked, and flagged, not counted.
        other = json.loads(json.dumps(altered))
        other["id"] = other["id"] + "-2"
        assert await ingest.accept(other, Provenance.inbox(berta, proved=True)) is Outcome.STORED
        await s.city.aggregator.state.sync()
        assert await s.supports() == {s.proposals[0]: 1}
        assert (await s.anomalies())[s.a.origin] == {"forged": 2}


async def test_which_ids_are_held_is_one_question_per_page(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        anna, berta = s.a.add_resident("anna"), s.a.add_resident("berta")
        genuine = s.a.support(anna, s.proposals[0])
        broken = s.a.support(berta, s.proposals[0])
        del broken["proof"]
        for like in (genuine, broken):
            assert await s.a.deliver(like, s.city.inbox) == 202
        await s.city.settle()
        log = s.city.aggregator.log
        unknown = [f"{anna}/supports/nothing-{n}" for n in range(450)]  # several statements
        held = await log.verified_among([genuine["id"], broken["id"], *unknown])
        assert held == {genuine["id"]}  # the copy without a proof is stored, not verified
        assert await log.verified_among([]) == set()


async def test_a_voter_whose_residency_is_fresh_is_not_fetched_again(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with scene(tmp_path, unused_tcp_port_factory) as s:
        documents = s.city.runtime.documents
        anna = s.a.add_resident("anna")
        assert not documents.resident_fresh(anna)
        assert await s.a.deliver(s.a.support(anna, s.proposals[0]), s.city.inbox) == 202
        await s.city.settle()
        assert documents.resident_fresh(anna)  # the batch's preparation fetched it
        path = anna.removeprefix(s.a.origin)
        fetched = s.a.hits[path]
        asked: list[str] = []
        known_resident = documents.known_resident

        async def counted(actor: str) -> None:
            asked.append(actor)
            await known_resident(actor)

        monkeypatch.setattr(documents, "known_resident", counted)
        assert await s.a.deliver(s.a.support(anna, s.proposals[1]), s.city.inbox) == 202
        await s.city.settle()
        assert s.a.hits[path] == fetched  # fresh: the next batch asked nobody
        # Only ingest's own check of the genuine vote: the preparation started no task for it.
        assert asked == [anna]
        assert await s.supports() == {s.proposals[0]: 1, s.proposals[1]: 1}
        documents.refresh_seconds = 0.0
        assert not documents.resident_fresh(anna)  # stale: the next vote would refetch it
