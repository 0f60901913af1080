"""Which outbox items the votes step of a backfill leaves to the threads (creations of
comments, :func:`federation.aggregator.backfill_items.creates_comment`)."""

from __future__ import annotations

from typing import Any

import pytest

from federation.aggregator.backfill_items import creates_comment

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
