"""What a backfill does with listed items (federation.aggregator.backfill_items): which outbox
items the votes step leaves to the threads (creations of comments), and which listed residents
a ``/residents`` page may vouch for."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from federation.aggregator.backfill_items import ListedItems
from federation.aggregator.documents import Documents
from federation.store.aggregator_log import ActivityLog
from federation.store.aggregator_schema import AGGREGATOR_MIGRATIONS
from federation.store.sqlite import open_database
from federation.vocab.comment import creates_comment

ORIGIN = "https://gracia.barri.example"
NOTE = {"id": f"{ORIGIN}/comments/1", "type": "Note", "inReplyTo": f"{ORIGIN}/proposals/1"}


def _create(obj: Any) -> dict[str, Any]:
    return {"id": f"{ORIGIN}/acts/1", "type": "Create", "actor": f"{ORIGIN}/users/ana",
            "object": obj}  # fmt: skip


def _announce(obj: Any) -> dict[str, Any]:
    return {"id": f"{ORIGIN}/announces/1", "type": "Announce", "actor": f"{ORIGIN}/groups/g",
            "object": obj}  # fmt: skip


@pytest.mark.parametrize(
    ("item", "left"),
    [
        (_create(NOTE), True),
        (_announce(_create(NOTE)), True),
        # A Note that replies to nothing is no comment (a Tally is a Note too).
        (_create({**NOTE, "inReplyTo": None}), False),
        (_create({"id": f"{ORIGIN}/tallies/1", "type": ["Note", "Tally"]}), False),
        # Edits and deletions of comments, proposals, a bare id: handled by the votes step.
        ({**_create(NOTE), "type": "Update"}, False),
        ({"id": f"{ORIGIN}/acts/2", "type": "Delete", "object": NOTE["id"]}, False),
        (_announce(_create({"id": f"{ORIGIN}/proposals/1", "type": ["Page", "Proposal"]})), False),
        (_create(NOTE["id"]), False),
        (_announce(NOTE["id"]), False),
    ],
)
def test_only_a_comment_s_creation_is_left_to_its_thread(item: dict[str, Any], left: bool) -> None:
    assert creates_comment(item) is left


async def test_a_residents_page_keeps_only_its_own_origin_s_persons(tmp_path: Path) -> None:
    """An instance speaks for its residents, nobody else's: of a ``/residents`` page, only the
    Persons of the listing's origin are kept (in one transaction); another origin's Person, a
    Group of the origin and a bare id are not, and nothing is fetched."""

    async def refused(url: str, *args: Any) -> Any:
        raise AssertionError(f"nothing is fetched, yet {url} was")

    db = await open_database(tmp_path / "agg.db", migrations=AGGREGATOR_MIGRATIONS)
    try:
        log = ActivityLog(db)
        documents = Documents(log, refused, refused, refresh_seconds=3600)
        person = {"type": "Person", "inbox": "x", "verifiedResidentOf": None}
        items: list[Any] = [
            {"id": f"{ORIGIN}/users/ana", **person},
            {"id": "https://raval.barri.example/users/pau", **person},
            {"id": f"{ORIGIN}/groups/g", "type": "Group", "inbox": "x"},
            f"{ORIGIN}/users/joan",
        ]
        page = {"@context": "https://www.w3.org/ns/activitystreams", "orderedItems": items}
        handler = ListedItems(SimpleNamespace(documents=documents), refused).residents(ORIGIN)  # type: ignore[arg-type]
        await handler.page(items, page)
        kept = await log.residents_after(0)
        assert [row.actor for row in kept] == [f"{ORIGIN}/users/ana"]
        assert documents.resident_fresh(f"{ORIGIN}/users/ana")
        assert not documents.resident_fresh("https://raval.barri.example/users/pau")
    finally:
        await db.close()
