"""Comments and comment votes over aiosqlite (Decidim comments: threads to depth 3, up/down votes).

Write methods run inside the caller's ``transaction(db)``; reads take no lock. Documents are
read back through ``federation.vocab`` converters (see :mod:`federation.store.domain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from activitypub.collections import PageRequest, PageResult
from federation.model import Comment, CommentVote
from federation.store.domain import dump, fetch_one, load
from federation.store.paging import page_rows
from federation.vocab.comment import comment_from_ap
from federation.vocab.context import format_datetime

_COMMENT_COLUMNS = "seq, document, root_id, local, external, deleted"


@dataclass(frozen=True)
class ThreadEntry:
    """One comment of a thread with its vote totals; ``external`` = not a Barri resident."""

    comment: Comment
    external: bool
    up: int
    down: int


@dataclass(frozen=True)
class CommentRecord:
    """A stored comment with where it hangs and how it was received."""

    comment: Comment
    root_id: str
    local: bool
    external: bool
    deleted: bool
    document: dict[str, Any]


@dataclass(frozen=True)
class VoteRecord:
    """A comment vote as stored."""

    vote_id: str
    actor: str
    comment_id: str
    up: bool
    active: bool
    document: dict[str, Any]


def _comment(row: Sequence[Any]) -> CommentRecord:
    document = load(row[1])
    return CommentRecord(
        comment_from_ap(document),
        row[2],
        bool(row[3]),
        bool(row[4]),
        bool(row[5]),
        document,
    )


def _vote(row: Sequence[Any]) -> VoteRecord:
    return VoteRecord(
        vote_id=row[0],
        actor=row[1],
        comment_id=row[2],
        up=int(row[3]) == 1,
        active=bool(row[4]),
        document=load(row[5]),
    )


class CommentStore:
    """SQL for comments and comment votes on the shared connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # --- comments -----------------------------------------------------------------------------

    async def put_comment(
        self,
        comment: Comment,
        document: Mapping[str, Any],
        *,
        root_id: str,
        local: bool,
        external: bool,
    ) -> None:
        """Insert or replace a comment by id (in the caller's transaction)."""
        await self.db.execute(
            "INSERT INTO comments (id, root_id, parent_id, author, depth, alignment, local,"
            " external, document, published) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET document = excluded.document,"
            " alignment = excluded.alignment",
            (
                comment.id,
                root_id,
                comment.in_reply_to,
                comment.author,
                comment.depth,
                comment.alignment.value,
                int(local),
                int(external),
                dump(document),
                format_datetime(comment.published),
            ),
        )

    async def get_comment(self, comment_id: str) -> CommentRecord | None:
        """A comment by id (deleted ones too, flagged)."""
        row = await fetch_one(
            self.db,
            f"SELECT {_COMMENT_COLUMNS} FROM comments WHERE id = ?",  # noqa: S608
            (comment_id,),
        )
        return None if row is None else _comment(row)

    async def thread_comments(self, root_id: str) -> list[ThreadEntry]:
        """Every live comment under a root with its vote totals, in insertion order."""
        rows = await self.db.execute_fetchall(
            "SELECT c.seq, c.document, c.external,"
            " (SELECT COUNT(*) FROM comment_votes v WHERE v.comment_id = c.id"
            "  AND v.active = 1 AND v.weight = 1),"
            " (SELECT COUNT(*) FROM comment_votes v WHERE v.comment_id = c.id"
            "  AND v.active = 1 AND v.weight = -1)"
            " FROM comments c WHERE c.root_id = ? AND c.deleted = 0 ORDER BY c.seq",
            (root_id,),
        )
        return [
            ThreadEntry(comment_from_ap(load(r[1])), bool(r[2]), int(r[3]), int(r[4])) for r in rows
        ]

    async def page_replies(self, parent_id: str, page: PageRequest) -> PageResult:
        """Direct replies to an object, oldest first (FEP-7888 ``replies``)."""
        rows, after, before = await page_rows(
            self.db, table="comments", columns="seq, document",
            where="parent_id = ? AND deleted = 0", params=(parent_id,), page=page,
            newest_first=False,
        )  # fmt: skip
        return PageResult([comment_from_ap(load(r[1])) for r in rows], after, before)

    async def page_context(self, root_id: str, page: PageRequest) -> PageResult:
        """Every comment of a conversation, oldest first (FEP-7888 ``context``)."""
        rows, after, before = await page_rows(
            self.db, table="comments", columns="seq, document",
            where="root_id = ? AND deleted = 0", params=(root_id,), page=page,
            newest_first=False,
        )  # fmt: skip
        return PageResult([comment_from_ap(load(r[1])) for r in rows], after, before)

    async def mark_comment_deleted(self, comment_id: str) -> bool:
        """Soft-delete a comment (its replies stay in the thread); False if there was none."""
        cursor = await self.db.execute(
            "UPDATE comments SET deleted = 1 WHERE id = ? AND deleted = 0", (comment_id,)
        )
        return cursor.rowcount == 1

    # --- comment votes ------------------------------------------------------------------------

    async def active_vote(self, actor: str, comment_id: str) -> VoteRecord | None:
        """The actor's live vote on a comment, if any."""
        row = await fetch_one(
            self.db,
            "SELECT id, actor, comment_id, weight, active, document FROM comment_votes"
            " WHERE actor = ? AND comment_id = ? AND active = 1",
            (actor, comment_id),
        )
        return None if row is None else _vote(row)

    async def votes_in_thread(self, actor: str, root_id: str) -> dict[str, bool]:
        """The actor's live votes on the comments under a root: comment id → up (True)."""
        rows = await self.db.execute_fetchall(
            "SELECT v.comment_id, v.weight FROM comment_votes v"
            " JOIN comments c ON c.id = v.comment_id"
            " WHERE v.actor = ? AND v.active = 1 AND c.root_id = ? AND c.deleted = 0",
            (actor, root_id),
        )
        return {str(row[0]): int(row[1]) == 1 for row in rows}

    async def get_vote(self, vote_id: str) -> VoteRecord | None:
        """A comment vote by its activity id."""
        row = await fetch_one(
            self.db,
            "SELECT id, actor, comment_id, weight, active, document FROM comment_votes"
            " WHERE id = ?",
            (vote_id,),
        )
        return None if row is None else _vote(row)

    async def add_vote(self, vote: CommentVote, document: Mapping[str, Any]) -> None:
        """Record a live vote; an earlier live vote of the actor on the comment is retracted."""
        await self.db.execute(
            "UPDATE comment_votes SET active = 0 WHERE actor = ? AND comment_id = ? AND active = 1",
            (vote.actor, vote.comment),
        )
        await self.db.execute(
            "INSERT INTO comment_votes (id, actor, comment_id, weight, active, document,"
            " published) VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                vote.id,
                vote.actor,
                vote.comment,
                1 if vote.up else -1,
                dump(document),
                format_datetime(vote.published) if vote.published else None,
            ),
        )

    async def retract_vote(self, vote_id: str, undo_id: str) -> bool:
        """Mark a vote retracted by ``undo_id``; False when it was not live."""
        cursor = await self.db.execute(
            "UPDATE comment_votes SET active = 0, undo_id = ? WHERE id = ? AND active = 1",
            (undo_id, vote_id),
        )
        return cursor.rowcount == 1
