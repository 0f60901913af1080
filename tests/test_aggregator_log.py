"""The aggregator's activity log read without documents (what the tally reads at every sync and
restart, and the results API and Tallies read of a process's proposals), equal to the full rows
but for their (large) documents."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from federation.store.aggregator_log import ActivityLog, ProposalRow, ResidentRow
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
