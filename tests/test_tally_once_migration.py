"""Upgrading an aggregator database whose Tallies were stored twice (alone and in their Create).

The database is created at the version before migration 8, with a Tally row written by that
version's own SQL; after the upgrade the ``document`` column is gone, the row is still there,
and the Tally read out of its Create is the one that was stored alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from federation.store.aggregator_publish import PublishStore
from federation.store.aggregator_schema import AGGREGATOR_MIGRATIONS
from federation.store.sqlite import applied_versions, open_database

CONTEXT = ["https://www.w3.org/ns/activitystreams", {"barri": "https://w3id.org/barri#"}]
TALLY: dict[str, Any] = {
    "@context": CONTEXT,
    "id": "https://city.example/tallies/1",
    "type": "barri:Tally",
    "barri:inputsCount": 3,
    "proof": {"type": "DataIntegrityProof", "proofValue": "z1"},
}
CREATE: dict[str, Any] = {
    "@context": CONTEXT,
    "id": "https://city.example/activities/1",
    "type": "Create",
    "object": {key: value for key, value in TALLY.items() if key != "@context"},
    "proof": {"type": "DataIntegrityProof", "proofValue": "z2"},
}
# Version 7's insert: the Tally alone in `document`, its Create in `activity`.
_OLD_INSERT = (
    "INSERT INTO tallies (id, activity_id, process_id, final, fingerprint, published_at,"
    " document, activity, counted) VALUES (?, ?, ?, 1, 'f', 1.0, ?, ?, '[\"s1\"]')"
)


async def test_upgrade_keeps_each_tally_once_and_reads_it_out_of_its_create(
    tmp_path: Path,
) -> None:
    path = tmp_path / "aggregator.db"
    before = tuple(m for m in AGGREGATOR_MIGRATIONS if m.version < 8)
    db = await open_database(path, migrations=before)
    try:
        await db.execute(
            _OLD_INSERT,
            (TALLY["id"], CREATE["id"], "https://n.example/processes/1", json.dumps(TALLY),
             json.dumps(CREATE)),
        )  # fmt: skip
        await db.commit()
    finally:
        await db.close()
    db = await open_database(path, migrations=AGGREGATOR_MIGRATIONS)
    try:
        assert await applied_versions(db) == [m.version for m in AGGREGATOR_MIGRATIONS]
        columns = {r[1] for r in await db.execute_fetchall("PRAGMA table_info(tallies)")}
        assert "document" not in columns and "activity" in columns
        store = PublishStore(db)
        row = await store.final("https://n.example/processes/1")
        assert row is not None and row.id == TALLY["id"]
        assert row.tally() == TALLY
        assert json.loads(row.activity) == CREATE
        assert await store.counted(row.process_id) == ("s1",)
        assert await store.by_id(CREATE["id"]) == row
    finally:
        await db.close()
