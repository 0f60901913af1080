"""Upgrading an aggregator database to migrations 8 and 9, which slim what it keeps.

Each database is created at the version before the migration, with rows written by that
version's own SQL. Migration 8: a Tally was kept twice (alone and in its Create) and every
provisional one was kept; after it the ``document`` column is gone, each process keeps its
newest Tally and its final one, read out of its Create as it was stored alone, and the
superseded ones are remembered with the time their successor was published. Migration 9:
residents' actor documents lose their ``@context`` and keep everything else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from federation.store.aggregator_publish import PublishStore, SupersededTally
from federation.store.aggregator_schema import AGGREGATOR_MIGRATIONS
from federation.store.sqlite import applied_versions, open_database

CONTEXT = ["https://www.w3.org/ns/activitystreams", {"barri": "https://w3id.org/barri#"}]
P1, P2 = "https://n.example/processes/1", "https://n.example/processes/2"
# Version 7's insert: the Tally alone in `document`, its Create in `activity`.
_OLD_INSERT = (
    "INSERT INTO tallies (id, activity_id, process_id, final, fingerprint, published_at,"
    " document, activity, counted) VALUES (?, ?, ?, ?, 'f', ?, ?, ?, ?)"
)


def tally(n: int) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "id": f"https://city.example/tallies/{n}",
        "type": "barri:Tally",
        "barri:inputsCount": n,
        "proof": {"type": "DataIntegrityProof", "proofValue": f"z{n}"},
    }


def create(n: int) -> dict[str, Any]:
    body = {key: value for key, value in tally(n).items() if key != "@context"}
    return {"@context": CONTEXT, "id": f"https://city.example/activities/{n}", "type": "Create",
            "object": body}  # fmt: skip


# (n, process, final, published_at): P1 has two provisional Tallies, P2 one and its final.
ROWS = [(1, P1, 0, 10.0), (2, P2, 0, 20.0), (3, P1, 0, 30.0), (4, P2, 1, 40.0)]


async def test_upgrade_keeps_each_processs_newest_and_final_tally_once(tmp_path: Path) -> None:
    path = tmp_path / "aggregator.db"
    before = tuple(m for m in AGGREGATOR_MIGRATIONS if m.version < 8)
    db = await open_database(path, migrations=before)
    try:
        for n, process, final, at in ROWS:
            counted = '["s1"]' if final else None
            await db.execute(
                _OLD_INSERT,
                (tally(n)["id"], create(n)["id"], process, final, at, json.dumps(tally(n)),
                 json.dumps(create(n)), counted),
            )  # fmt: skip
    finally:
        await db.close()
    db = await open_database(path, migrations=AGGREGATOR_MIGRATIONS)
    try:
        assert await applied_versions(db) == [m.version for m in AGGREGATOR_MIGRATIONS]
        columns = {r[1] for r in await db.execute_fetchall("PRAGMA table_info(tallies)")}
        assert "document" not in columns and "activity" in columns
        store = PublishStore(db)
        newest, closing = await store.latest(P1), await store.final(P2)
        assert newest is not None and newest.tally() == tally(3)
        assert closing is not None and closing.tally() == tally(4)
        assert json.loads(closing.activity) == create(4)
        assert await store.counted(P2) == ("s1",)
        assert await store.count() == 2
        assert await store.final_processes() == {P2}
        assert await store.latest_fingerprint(P1) == newest.fingerprint
        assert await store.latest_fingerprint("https://n.example/processes/none") is None
        assert await store.by_id(tally(1)["id"]) is None
        assert await store.superseded(tally(1)["id"]) == SupersededTally(
            tally(1)["id"], create(1)["id"], P1, 30.0
        )
        assert await store.superseded(create(2)["id"]) == SupersededTally(
            tally(2)["id"], create(2)["id"], P2, 40.0
        )
        assert await store.superseded(tally(3)["id"]) is None
    finally:
        await db.close()


async def test_upgrade_drops_the_context_of_residents_documents_only(tmp_path: Path) -> None:
    path = tmp_path / "aggregator.db"
    before = tuple(m for m in AGGREGATOR_MIGRATIONS if m.version < 9)
    actor = {"@context": CONTEXT, "id": "https://n.example/u/anna", "type": "Person",
             "verifiedResidentOf": {"type": "Territory", "territoryCode": "31"}}  # fmt: skip
    bare = {"id": "https://n.example/u/biel", "type": "Person"}
    db = await open_database(path, migrations=before)
    try:
        for doc in (actor, bare):
            await db.execute(
                "INSERT INTO residents (actor, origin, kind, code, district, document,"
                " fetched_at, rev) VALUES (?, 'https://n.example', NULL, NULL, NULL, ?, 1.0, 0)",
                (doc["id"], json.dumps(doc, sort_keys=True)),
            )
    finally:
        await db.close()
    db = await open_database(path, migrations=AGGREGATOR_MIGRATIONS)
    try:
        rows = await db.execute_fetchall("SELECT actor, document FROM residents ORDER BY actor")
        stored = {row[0]: json.loads(row[1]) for row in rows}
        assert stored[actor["id"]] == {k: v for k, v in actor.items() if k != "@context"}
        assert stored[bare["id"]] == bare
    finally:
        await db.close()
