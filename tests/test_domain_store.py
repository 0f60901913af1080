"""The instance domain's SQL on a real SQLite file: migration, round trips, paging, supports."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiosqlite
import pytest

from activitypub.collections import PageRequest, page_sequence
from federation.instance.ports import StoredKeys
from federation.model import (
    Alignment,
    Comment,
    CommentVote,
    LangText,
    Process,
    Proposal,
    ProposalState,
    Support,
    Tombstone,
)
from federation.store.comments import CommentStore
from federation.store.delivery import SqliteDeliveryStore, insert_deliveries
from federation.store.domain import DomainStore
from federation.store.instance import SqliteActorKeyStore
from federation.store.migrations import INSTANCE_MIGRATIONS
from federation.store.outbox import OutboxStore, activity_body
from federation.store.paging import page_rows
from federation.store.proposals import ProposalStore, SupportFacts
from federation.store.sqlite import applied_versions, open_database, transaction
from federation.vocab.comment import comment_to_ap
from federation.vocab.comment_vote import comment_vote_to_ap
from federation.vocab.process import process_from_ap, process_to_ap
from federation.vocab.proposal import proposal_to_ap
from federation.vocab.support import support_to_ap
from tests.instance_fixtures import IN_PROPOSALS, T0, process_draft

BASE = "https://raval.example"
GROUP = f"{BASE}/groups/av"
ALICE, BOB = f"{BASE}/users/alice", f"{BASE}/users/bob"
PROCESS_ID = f"{BASE}/processes/p1"

TABLES = (
    "processes", "proposals", "supports", "undone", "debates", "comments", "comment_votes",
    "follows", "activities", "tombstones",
)  # fmt: skip


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_database(tmp_path / "domain.sqlite3", migrations=INSTANCE_MIGRATIONS)
    try:
        yield conn
    finally:
        await conn.close()


def make_process() -> Process:
    draft = process_draft() | {
        "id": PROCESS_ID,
        "attributedTo": GROUP,
        "published": "2026-01-15T09:00:00Z",
    }
    return process_from_ap(draft)


def make_proposal(n: int, author: str = ALICE) -> Proposal:
    return Proposal(
        id=f"{BASE}/proposals/{n}",
        author=author,
        audience=GROUP,
        process=PROCESS_ID,
        name=LangText(f"Proposal {n}"),
        content_html="<p>text</p>",
        source_markdown="text",
        published=T0 + timedelta(minutes=n),
    )


def make_support(n: int, actor: str, proposal: int) -> Support:
    return Support(
        id=f"{BASE}/supports/{n}",
        actor=actor,
        proposal=f"{BASE}/proposals/{proposal}",
        published=IN_PROPOSALS,
        to=(GROUP,),
    )


async def test_migration_creates_the_domain_tables(db: aiosqlite.Connection) -> None:
    assert await applied_versions(db) == [m.version for m in INSTANCE_MIGRATIONS]
    assert INSTANCE_MIGRATIONS[3].name == "instance domain"  # later migrations follow it
    rows = await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    names = {row[0] for row in rows}
    assert set(TABLES) <= names


async def test_process_round_trip_and_listing_order(db: aiosqlite.Connection) -> None:
    store = DomainStore(db)
    local = make_process()
    remote = process_from_ap(
        process_to_ap(local)
        | {
            "id": "https://city.example/processes/c1",
            "attributedTo": "https://city.example/groups/city",
        }
    )
    async with transaction(db):
        await store.put_process(remote, process_to_ap(remote), local=False, supports_from=None)
        await store.put_process(local, process_to_ap(local), local=True, supports_from=1.5)
    found = await store.get_process(PROCESS_ID)
    assert found is not None and found.process == local and found.local
    assert found.supports_from == 1.5
    assert [r.process.id for r in await store.list_processes()] == [local.id, remote.id]
    assert await store.count_processes() == 1
    assert await store.count_processes(local_only=False) == 2
    assert await store.get_process(f"{BASE}/processes/none") is None


async def test_a_process_read_again_after_a_change_is_the_changed_one(
    db: aiosqlite.Connection,
) -> None:
    """Reads are memoised on the stored row: a new version, or new flags, are read anew."""
    store = DomainStore(db)
    first = make_process()
    async with transaction(db):
        await store.put_process(first, process_to_ap(first), local=True, supports_from=1.5)
    assert (await store.get_process(PROCESS_ID)) == (await store.get_process(PROCESS_ID))
    renamed = process_from_ap(process_to_ap(first) | {"name": "Pressupostos renamed"})
    assert renamed != first
    async with transaction(db):
        await store.put_process(renamed, process_to_ap(renamed), local=True, supports_from=1.5)
    found = await store.get_process(PROCESS_ID)
    assert found is not None and found.process == renamed
    async with transaction(db):
        await store.put_process(renamed, process_to_ap(renamed), local=False, supports_from=None)
    found = await store.get_process(PROCESS_ID)
    assert found is not None and (found.local, found.supports_from) == (False, None)


async def test_paging_matches_the_reference_paginator(db: aiosqlite.Connection) -> None:
    store = ProposalStore(db)
    async with transaction(db):
        for n in range(1, 8):
            await store.put_proposal(make_proposal(n), proposal_to_ap(make_proposal(n)), local=True)
    keyed = [((n,), f"{BASE}/proposals/{n}") for n in range(1, 8)]
    for newest_first in (True, False):
        request = PageRequest(None, None, 3)
        seen: list[str] = []
        while True:
            rows, after, before = await page_rows(
                db, table="proposals", columns="seq, id", where="process_id = ?",
                params=(PROCESS_ID,), page=request, newest_first=newest_first,
            )  # fmt: skip
            expected = page_sequence(keyed, request, newest_first=newest_first)
            assert [r[1] for r in rows] == expected.items
            assert (after, before) == (expected.next_cursor, expected.prev_cursor)
            seen += [r[1] for r in rows]
            if after is None:
                break
            request = PageRequest(None, after, 3)
        assert len(seen) == 7 and len(set(seen)) == 7
        # and back again from the last page
        back = PageRequest(before, None, 3) if before else None
        if back is not None:
            rows, _, _ = await page_rows(
                db, table="proposals", columns="seq, id", where="process_id = ?",
                params=(PROCESS_ID,), page=back, newest_first=newest_first,
            )  # fmt: skip
            assert [r[1] for r in rows] == page_sequence(
                keyed, back, newest_first=newest_first
            ).items
    with pytest.raises(ValueError, match="collection"):
        await store.page_proposals(PROCESS_ID, PageRequest(None, "WyJ4Il0", 3))


async def test_supports_one_active_per_actor_and_counts_follow_states(
    db: aiosqlite.Connection,
) -> None:
    store = ProposalStore(db)
    async with transaction(db):
        for n in (1, 2):
            await store.put_proposal(make_proposal(n), proposal_to_ap(make_proposal(n)), local=True)
        for n, actor, proposal in ((1, ALICE, 1), (2, ALICE, 2), (3, BOB, 1)):
            support = make_support(n, actor, proposal)
            await store.add_support(
                support, support_to_ap(support), process_id=PROCESS_ID, local=True,
                state="temporary",
            )  # fmt: skip
    with pytest.raises(sqlite3.IntegrityError):
        async with transaction(db):
            again = make_support(9, ALICE, 1)
            await store.add_support(
                again, support_to_ap(again), process_id=PROCESS_ID, local=True, state="final"
            )
    assert await store.active_support_ids(ALICE, PROCESS_ID) == [
        f"{BASE}/supports/1",
        f"{BASE}/supports/2",
    ]
    async with transaction(db):
        moved = await store.set_support_states(
            {f"{BASE}/supports/1": "final", f"{BASE}/supports/2": "final"}
        )
        await store.refresh_counts(moved)
    assert sorted(moved) == [f"{BASE}/proposals/1", f"{BASE}/proposals/2"]
    record = await store.get_proposal(f"{BASE}/proposals/1")
    assert record is not None and record.final_supports == 1
    assert record.proposal.support_count == 1
    async with transaction(db):
        assert await store.withdraw_support(f"{BASE}/supports/1", f"{BASE}/activities/u1")
        assert not await store.withdraw_support(f"{BASE}/supports/1", f"{BASE}/activities/u2")
        await store.refresh_counts([f"{BASE}/proposals/1"])
    assert await store.final_supports(f"{BASE}/proposals/1") == 0
    assert await store.active_support(ALICE, f"{BASE}/proposals/1") is None
    # after withdrawing, the same resident may support again (partial unique index)
    async with transaction(db):
        again = make_support(10, ALICE, 1)
        await store.add_support(
            again, support_to_ap(again), process_id=PROCESS_ID, local=True, state="final"
        )
    ids = (await store.page_support_ids(f"{BASE}/proposals/1", PageRequest(None, None, 10))).items
    assert ids == [f"{BASE}/supports/10", f"{BASE}/supports/3"]


async def test_support_facts_and_settled_states_in_one_statement_each(
    db: aiosqlite.Connection,
) -> None:
    store = ProposalStore(db)
    p1, p2 = f"{BASE}/proposals/1", f"{BASE}/proposals/2"
    async with transaction(db):
        for n in (1, 2):
            await store.put_proposal(make_proposal(n), proposal_to_ap(make_proposal(n)), local=True)
        for n, actor, proposal, state in ((1, ALICE, 1, "temporary"), (2, ALICE, 2, "temporary"),
                                          (3, BOB, 1, "final")):  # fmt: skip
            support = make_support(n, actor, proposal)
            await store.add_support(
                support, support_to_ap(support), process_id=PROCESS_ID, local=True, state=state
            )
    assert await store.process_of(p1) == PROCESS_ID
    assert await store.process_of(f"{BASE}/proposals/9") is None
    facts = await store.support_facts(ALICE, p1, PROCESS_ID)
    assert facts == SupportFacts(ProposalState.NOT_ANSWERED, 1, 2, True)
    assert await store.support_facts(BOB, p2, PROCESS_ID) == SupportFacts(
        ProposalState.NOT_ANSWERED, 0, 1, False
    )
    assert await store.support_facts(ALICE, f"{BASE}/proposals/9", PROCESS_ID) is None
    assert await store.count_active(ALICE, PROCESS_ID) == 2
    async with transaction(db):
        moved = await store.settle_states(ALICE, PROCESS_ID, "final")
        assert await store.settle_states(ALICE, PROCESS_ID, "final") == []  # nothing left to move
        await store.refresh_counts(moved)
    assert sorted(moved) == [p1, p2]
    bob = await store.active_support(BOB, p1)
    assert bob is not None and bob.state == "final"  # only Alice's rows were hers to move
    facts = await store.support_facts(BOB, p1, PROCESS_ID)
    assert facts is not None and facts.final_supports == 2
    async with transaction(db):
        assert await store.withdraw_support(f"{BASE}/supports/2", f"{BASE}/activities/u1")
        assert await store.settle_states(ALICE, PROCESS_ID, "temporary") == [p1]
    withdrawn = await store.get_support(f"{BASE}/supports/2")
    assert withdrawn is not None and withdrawn.state == "withdrawn"  # withdrawn stays so
    assert await store.count_active(ALICE, PROCESS_ID) == 1


async def test_undo_before_like_is_remembered(db: aiosqlite.Connection) -> None:
    store = ProposalStore(db)
    async with transaction(db):
        await store.remember_undone("https://x.example/l/1", "https://x.example/u/1", "a", 1.0)
        await store.remember_undone("https://x.example/l/1", "https://x.example/u/2", "a", 2.0)
    assert await store.undone_by("https://x.example/l/1") == ("https://x.example/u/1", "a")
    assert await store.undone_by("https://x.example/l/2") is None


async def test_comments_votes_and_thread(db: aiosqlite.Connection) -> None:
    store = CommentStore(db)
    root = f"{BASE}/proposals/1"
    first = Comment(
        id=f"{BASE}/comments/1", author=ALICE, in_reply_to=root, context=f"{root}/context",
        content_html="<p>a</p>", source_markdown="a", alignment=Alignment.IN_FAVOR, depth=1,
        published=T0,
    )  # fmt: skip
    reply = Comment(
        id="https://masto.example/notes/2", author="https://masto.example/users/m",
        in_reply_to=first.id, context=None, content_html="<p>b</p>", source_markdown=None,
        published=T0 + timedelta(minutes=1),
    )  # fmt: skip
    async with transaction(db):
        await store.put_comment(
            first, comment_to_ap(first), root_id=root, local=True, external=False
        )
        await store.put_comment(
            reply, comment_to_ap(reply), root_id=root, local=False, external=True
        )
        for n, actor, up in ((1, ALICE, True), (2, BOB, True), (3, BOB, False)):
            vote = CommentVote(id=f"{BASE}/votes/{n}", actor=actor, comment=first.id, up=up)
            await store.add_vote(vote, comment_vote_to_ap(vote))
    entries = await store.thread_comments(root)
    assert [(e.comment.id, e.external, e.up, e.down) for e in entries] == [
        (first.id, False, 1, 1),  # bob's second vote replaced his first
        (reply.id, True, 0, 0),
    ]
    assert (await store.page_replies(root, PageRequest(None, None, 5))).items == [first]
    async with transaction(db):
        assert await store.retract_vote(f"{BASE}/votes/3", f"{BASE}/activities/u")
        assert await store.mark_comment_deleted(reply.id)
    assert [(e.up, e.down) for e in await store.thread_comments(root)] == [(1, 0)]
    record = await store.get_comment(reply.id)
    assert record is not None and record.deleted and record.external


async def test_outbox_follows_and_tombstones(db: aiosqlite.Connection) -> None:
    outbox, domain = OutboxStore(db), DomainStore(db)
    async with transaction(db):
        for n, public in ((1, True), (2, False), (3, True)):
            doc = {"id": f"{BASE}/activities/{n}", "type": "Create", "actor": ALICE}
            await outbox.add_activity(
                doc["id"], ALICE, "Create", None, activity_body(doc), public=public,
                published="2026-02-01T08:00:00Z",
            )  # fmt: skip
        await outbox.put_follow(
            "https://m.example/f/1", "https://m.example/users/x", GROUP,
            inbox="https://m.example/users/x/inbox", shared_inbox="https://m.example/inbox",
            state="accepted", now=1.0,
        )  # fmt: skip
        await domain.add_tombstone(Tombstone(f"{BASE}/proposals/9", "Proposal", T0))
    page = await outbox.page_outbox(ALICE, PageRequest(None, None, 10))
    assert [a.activity_id for a in page.items] == [f"{BASE}/activities/3", f"{BASE}/activities/1"]
    private = await outbox.page_outbox(ALICE, PageRequest(None, None, 10), include_private=True)
    assert len(private.items) == 3 and await outbox.count_outbox(ALICE) == 2
    assert [f.follower for f in await outbox.followers(GROUP)] == ["https://m.example/users/x"]
    assert await outbox.known_inbox("https://m.example/users/x") == (
        "https://m.example/users/x/inbox",
        "https://m.example/inbox",
    )
    assert await domain.get_tombstone(f"{BASE}/proposals/9") == Tombstone(
        f"{BASE}/proposals/9", "Proposal", T0
    )


async def test_insert_deliveries_rolls_back_with_the_caller(db: aiosqlite.Connection) -> None:
    with pytest.raises(RuntimeError):
        async with transaction(db):
            assert (
                await insert_deliveries(db, "a1", ALICE, b"{}", ["https://x.example/i"], 1.0) == 1
            )
            raise RuntimeError("the domain write failed")
    assert await SqliteDeliveryStore(db).list() == []
    async with transaction(db):
        count = await insert_deliveries(
            db, "a1", ALICE, b"{}", ["https://x.example/i", "https://x.example/i"], 1.0
        )
    assert count == 1
    assert (
        await SqliteDeliveryStore(db).enqueue("a1", ALICE, b"{}", ["https://x.example/i"], now=2.0)
        == 0
    )


async def test_keys_of_many_actors_in_one_call(db: aiosqlite.Connection) -> None:
    """The keys of those of the actors asked for that have some, as one at a time gives them
    (more than one query's worth of ids included)."""
    store = SqliteActorKeyStore(db)
    ids = [f"https://n1.example/users/u{n}" for n in range(3)]
    for n, actor in enumerate(ids):
        await store.add_keys(StoredKeys(actor, f"rsa {n}", f"ed {n}", 1.0 + n))
    asked = [ids[2], "https://n1.example/users/nobody", ids[0], *[f"x{n}" for n in range(600)]]
    found = await store.get_keys_many(asked)
    assert sorted(found, key=lambda k: k.actor_id) == [
        await store.get_keys(ids[0]), await store.get_keys(ids[2]),
    ]  # fmt: skip
    assert await store.get_keys_many([]) == []
