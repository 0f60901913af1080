"""Upgrading an instance's support log to one that knows each item's actor origin, in place.

The database is created at version 10 with rows written by that version's SQL; after the
upgrade every row is still there, each with its actor's origin (``scheme://authority``,
lowercased), new rows get the FEP-fe34 normalised origin, and the filters of
:mod:`federation.store.supportlog` read the column.
"""

from __future__ import annotations

import json
from pathlib import Path

from activitypub import jsontext
from activitypub.collections import PageRequest
from federation.store import supportlog
from federation.store.migrations import INSTANCE_MIGRATIONS
from federation.store.sqlite import applied_versions, open_database

_OLD_INSERT = "INSERT INTO support_log (process_id, item_id, kind, document) VALUES (?, ?, ?, ?)"
PROCESS = "https://city.example/processes/1"
# (item id, the document's actor, the origin the upgrade gives it)
_OLD_ROWS = [
    ("https://raval.example/l/1", "https://raval.example/users/ana", "https://raval.example"),
    ("https://RAVAL.example/l/2", "HTTPS://RAVAL.example/users/pau", "https://raval.example"),
    ("http://127.0.0.1:8101/l/3", "http://127.0.0.1:8101/users/x", "http://127.0.0.1:8101"),
    (
        "https://m.example/l/4",
        {"id": "https://m.example/@bob", "type": "Person"},
        "https://m.example",
    ),
    ("https://bare.example/l/5", "https://bare.example", "https://bare.example"),
    ("urn:x:6", "urn:uuid:6", None),
]


async def _old_database(path: Path) -> None:
    db = await open_database(path, migrations=INSTANCE_MIGRATIONS[:10])
    try:
        for item_id, actor, _origin in _OLD_ROWS:
            document = {"id": item_id, "type": "Like", "actor": actor, "object": PROCESS + "/p"}
            await db.execute(_OLD_INSERT, (PROCESS, item_id, "like", json.dumps(document)))
    finally:
        await db.close()


async def test_every_logged_item_gets_its_actor_origin(tmp_path: Path) -> None:
    path = tmp_path / "barri.sqlite3"
    await _old_database(path)
    db = await open_database(path, migrations=INSTANCE_MIGRATIONS)
    try:
        assert (await applied_versions(db))[-1] == len(INSTANCE_MIGRATIONS)
        rows = await db.execute_fetchall("SELECT item_id, actor_origin FROM support_log")
        assert dict(rows) == {item_id: origin for item_id, _actor, origin in _OLD_ROWS}
        # A new row: the normalised origin (default port dropped, host lowercased).
        like = {"id": "https://n.example/l/7", "type": "Like", "actor": "HTTPS://N.example:443/u"}
        await supportlog.log_item(db, PROCESS, like["id"], "like", like)
        rows = await db.execute_fetchall(
            "SELECT actor_origin FROM support_log WHERE item_id = ?", (like["id"],)
        )
        assert list(rows) == [("https://n.example",)]
        # The filters read it: raval's own part, and everything but raval's and m's (an item
        # whose actor has no origin is never left out).
        page = PageRequest(before=None, after=None, limit=50)
        own = supportlog.LogFilter(local="https://raval.example")
        listed = await supportlog.page_instance(db, page, own)
        assert [jsontext.loads(jsontext.dumpb(item))["id"] for item in listed.items] == [
            "https://RAVAL.example/l/2", "https://raval.example/l/1",
        ]  # fmt: skip
        rest = supportlog.LogFilter(excluded=("https://m.example", "https://raval.example"))
        assert await supportlog.count_instance(db, rest) == 4
        assert await supportlog.count_instance(db, supportlog.LogFilter()) == 7
    finally:
        await db.close()
