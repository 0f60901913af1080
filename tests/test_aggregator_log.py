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
