"""The aggregator's activity log read without documents (what the tally reads at every sync and
restart, and the results API and Tallies read of a process's proposals), equal to the full rows
but for their (large) documents."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from federation.store.aggregator_log import ActivityLog, ActivityRow, ProposalRow, ResidentRow
from federation.store.aggregator_schema import AGGREGATOR_MIGRATIONS
from federation.store.sqlite import open_database

T0 = 1_700_000_000.0
ACTOR = "https://n1.example/users/anna"
PROPOSAL = "https://n1.example/proposals/7"
BIG = '{"@context":"' + "x" * 20_000 + '"}'


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await open_database(tmp_path / "agg.db", migrations=AGGREGATOR_MIGRATIONS)
    try:
        yield connection
    finally:
        await connection.close()


async def test_rows_read_without_documents_equal_the_full_rows_but_for_them(
    db: aiosqlite.Connection,
) -> None:
    log = ActivityLog(db)
    assert await log.put_resident(
        ResidentRow(ACTOR, "https://n1.example", "neighbourhood", "31", "3", BIG, T0, 0)
    )
    assert await log.put_proposal(
        ProposalRow(
            PROPOSAL, "https://n1.example/processes/1", "https://n1.example", "Benches",
            "notAnswered", "1", BIG, T0, 0,
        )
    )  # fmt: skip
    for read in (log.residents_after, log.proposals_after):
        [full] = await read(0)
        [bare] = await read(0, documents=False)
        assert full.document == BIG and bare.document == ""
        assert bare == dataclasses.replace(full, document="")
        assert await read(full.rev, documents=False) == []  # nothing newer
    [full] = await log.proposals_of("https://n1.example/processes/1")
    [bare] = await log.proposals_of("https://n1.example/processes/1", documents=False)
    assert bare == dataclasses.replace(full, document="") and full.document == BIG


async def test_residents_put_together_store_what_one_by_one_stores(tmp_path: Path) -> None:
    """A page of residents in one transaction leaves the rows, revs included, that putting
    them one by one leaves: a rewrite stating the same residency keeps its rev, a new
    territory moves it."""
    other = "https://n1.example/users/pau"
    rows = [
        ResidentRow(ACTOR, "https://n1.example", "neighbourhood", "31", "3", "{}", T0, 0),
        ResidentRow(other, "https://n1.example", None, None, None, "{}", T0, 0),
        ResidentRow(ACTOR, "https://n1.example", "neighbourhood", "31", "3", "{}", T0 + 1, 0),
        ResidentRow(other, "https://n1.example", "neighbourhood", "31", "3", "{}", T0 + 1, 0),
    ]
    stored = []
    for name, together in (("one.db", False), ("many.db", True)):
        db = await open_database(tmp_path / name, migrations=AGGREGATOR_MIGRATIONS)
        try:
            log = ActivityLog(db)
            if together:
                await log.put_residents(rows)
            else:
                for row in rows:
                    await log.put_resident(row)
            stored.append(await log.residents_after(0))
        finally:
            await db.close()
    assert stored[0] == stored[1]
    assert [(row.actor, row.code, row.rev, row.fetched_at) for row in stored[1]] == [
        (ACTOR, "31", 1, T0 + 1), (other, "31", 3, T0 + 1),
    ]  # fmt: skip


def _vote(n: int, kind: str) -> ActivityRow:
    return ActivityRow(
        seq=0, id=f"{ACTOR}/likes/{n}", kind=kind, actor=ACTOR, origin="https://n1.example",
        object=PROPOSAL, process="https://n1.example/processes/1",
        published="2026-03-01T10:00:00Z", received_at=T0, proof_ok=True,
        signer_origin="https://n1.example", route="backfill", via=None, document="{}",
    )  # fmt: skip


async def test_stored_by_kind_counts_what_a_full_count_counts(db: aiosqlite.Connection) -> None:
    """Counted on from the last call's newest row, the kinds stored equal a full count after
    every round of writes, and two calls at once do not add the same rows twice."""
    log = ActivityLog(db)
    assert await log.stored_by_kind() == {}
    written = 0
    for kinds in (["support"] * 3, ["support", "undo"], [], ["undo"] * 2):
        await log.add_activities([_vote(written + i, kind) for i, kind in enumerate(kinds)])
        written += len(kinds)
        full = await db.execute_fetchall("SELECT kind, COUNT(*) FROM activities GROUP BY kind")
        both = await asyncio.gather(log.stored_by_kind(), log.stored_by_kind())
        assert both[0] == both[1] == {str(kind): int(n) for kind, n in full}
    assert both[0] == {"support": 4, "undo": 3}
