"""An outbox read with ``exclude=comments`` (federation.instance.readside): no activity that
creates a comment or announces its creation, everything else as before, on real instances over
loopback; and migration 12 marks the comment creations an outbox held before it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from federation.store.migrations import INSTANCE_MIGRATIONS
from federation.store.sqlite import open_database
from federation.vocab.comment import creates_comment
from tests.test_instance_federation import City, city
from tests.test_readside import signed_get, signed_walk

__all__ = ["city"]  # the fixture, imported from test_instance_federation


async def _listed(city: City, url: str) -> tuple[str, list[dict[str, Any]]]:
    """The collection's id and every item (:func:`signed_walk`: one a page)."""
    return await signed_walk(url, city.mastodon.keys["instance"])


async def _until(check: Callable[[], Awaitable[Any]], what: str) -> None:
    """Wait (10 s at most) until ``check`` gives something true."""
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the city never had {what}")


async def _in_thread(instance: Any, proposal: str, comment: str) -> bool:
    return comment in {entry.comment.id for entry in await instance.deliberation.thread(proposal)}


async def _announced_comments(city: City, outbox: str, count: int) -> bool:
    _, whole = await _listed(city, outbox)
    return len([item for item in whole if creates_comment(item)]) == count


async def test_an_outbox_without_comments_lists_all_but_their_creations(city: City) -> None:
    """The city's Group announces a proposal, a comment and a reply; without comments its
    outbox keeps the proposal's announce (and the rest), and a resident's outbox keeps no
    Create of a comment."""
    c, a = city.city, city.gracia
    ana = await a.resident("ana", "31")
    proposal = await a.deliberation.create_proposal(
        ana, city.process.id, name="Un banc", body_markdown="Per seure."
    )
    # Each step waits until the city has handled the last: a comment the city receives before
    # its proposal is refused there as aimed at an unknown target (handlers.py), and this test
    # is about outboxes, not about delivery order.
    await _until(lambda: c.deliberation.get_proposal(proposal.id), "the proposal")
    first = await a.deliberation.comment(ana, proposal.id, body_markdown="Jo hi seuria.")
    await _until(lambda: _in_thread(c, proposal.id, first.id), "the comment")
    reply = await a.deliberation.comment(ana, first.id, body_markdown="I jo.")
    await _until(lambda: _in_thread(c, proposal.id, reply.id), "the reply")
    # The Group announces each comment as it handles it: its outbox lists both.
    await _until(lambda: _announced_comments(city, c.group + "/outbox", 2), "both announces")

    for outbox in (c.group + "/outbox", a.actor("ana") + "/outbox"):
        whole_id, whole = await _listed(city, outbox)
        part_id, part = await _listed(city, outbox + "?exclude=comments")
        assert whole_id == outbox and part_id == outbox + "?exclude=comments"
        comments = [item for item in whole if creates_comment(item)]
        assert len(comments) == 2, outbox  # the comment and the reply (or their announces)
        assert part == [item for item in whole if not creates_comment(item)]
    # The proposal's creation stays in the Group's part.
    _, group_part = await _listed(city, f"{c.group}/outbox?exclude=comments")
    assert any(item["object"]["object"]["id"] == proposal.id for item in group_part
               if item["type"] == "Announce")  # fmt: skip


async def test_an_outbox_excludes_nothing_else(city: City) -> None:
    keys = city.mastodon.keys["instance"]
    for query in ("exclude=supports", "exclude=", "exclude=comments,debates"):
        status, problem = await signed_get(f"{city.city.group}/outbox?{query}", keys)
        assert status == 400, query
        assert "exclude must be 'comments'" in problem["detail"]


async def test_migration_12_marks_the_comment_creations_held_before_it(tmp_path: Path) -> None:
    """Rows written before the column: a comment's Create and its announce are marked; a
    proposal's, a Note that replies to nothing and a row whose JSON is broken are not."""
    path = tmp_path / "instance.db"
    db = await open_database(path, migrations=INSTANCE_MIGRATIONS[:11])
    note = {"type": "Note", "id": "https://a.example/c/1", "inReplyTo": "https://a.example/p/1"}
    rows: dict[str, Any] = {
        "comment": {"type": "Create", "object": note},
        "announce": {"type": "Announce", "object": {"type": "Create", "object": note}},
        "proposal": {"type": "Create", "object": {"type": ["Page", "Proposal"], "id": "x"}},
        "top-level note": {"type": "Create", "object": {**note, "inReplyTo": None}},
        "broken": "{not json",
    }
    try:
        for n, (name, document) in enumerate(rows.items()):
            text = document if isinstance(document, str) else json.dumps(document)
            kind = "Announce" if name == "announce" else "Create"
            await db.execute(
                "INSERT INTO activities (id, actor, type, object_id, document, public, published)"
                " VALUES (?, 'https://a.example/users/ana', ?, NULL, ?, 1, '2026-01-01T00:00:00Z')",
                (f"https://a.example/activities/{n}", kind, text),
            )
        await db.commit()
    finally:
        await db.close()
    db = await open_database(path, migrations=INSTANCE_MIGRATIONS)
    await db.close()
    with sqlite3.connect(path) as plain:
        marked = dict(plain.execute("SELECT id, creates_comment FROM activities ORDER BY seq"))
    assert list(marked.values()) == [1, 1, 0, 0, 0]
