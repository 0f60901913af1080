"""The outbox (every activity we published, proved) and follows, over aiosqlite (DESIGN.md §6).

``activities`` is the actors' outboxes in publication order, kept as the proved JSON that was
delivered, so a backfill reader gets exactly what the inboxes got. ``follows`` holds both
directions: remote followers of our actors (with the inbox and sharedInbox their Follow named)
and our own Follows of remote process Groups. Writes run in the caller's ``transaction(db)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from activitypub import jsontext
from activitypub.collections import PageRequest, PageResult
from federation.store.domain import fetch_int, fetch_one, load
from federation.store.paging import page_rows


@dataclass(frozen=True)
class StoredActivity:
    """One published activity as it was delivered."""

    activity_id: str
    actor: str
    type: str
    object_id: str | None
    public: bool
    published: str
    document: dict[str, Any]


@dataclass(frozen=True)
class Follow:
    """A follow relation; ``inbox``/``shared_inbox`` are the follower's (for remote followers)."""

    follow_id: str
    follower: str
    target: str
    inbox: str | None
    shared_inbox: str | None
    state: str


_ACTIVITY_COLUMNS = "seq, id, actor, type, object_id, public, published, document"
_FOLLOW_COLUMNS = "follow_id, follower, target, inbox, shared_inbox, state"


def _activity(row: Sequence[Any]) -> StoredActivity:
    return StoredActivity(
        activity_id=row[1],
        actor=row[2],
        type=row[3],
        object_id=row[4],
        public=bool(row[5]),
        published=row[6],
        document=load(row[7]),
    )


def _outbox_where(comments: bool) -> str:
    """The outbox rows of one actor (parameters: actor, include_private), with or without
    the activities that create comments."""
    where = "actor = ? AND (public = 1 OR ? = 1)"
    return where if comments else where + " AND creates_comment = 0"


def _follow(row: Sequence[Any]) -> Follow:
    return Follow(str(row[0]), str(row[1]), str(row[2]), row[3], row[4], str(row[5]))


class OutboxStore:
    """SQL for ``activities`` and ``follows`` on the shared connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # --- activities ---------------------------------------------------------------------------

    async def add_activity(
        self,
        activity_id: str,
        actor: str,
        kind: str,
        object_id: str | None,
        body: bytes,
        *,
        public: bool,
        published: str,
        comment: bool = False,
    ) -> None:
        """Insert a published activity (its proved JSON ``body``) into the actor's outbox;
        ``comment``: it creates a comment, or announces its creation."""
        await self.db.execute(
            "INSERT INTO activities (id, actor, type, object_id, document, public, published,"
            " creates_comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (activity_id, actor, kind, object_id, body.decode("utf-8"), int(public), published,
             int(comment)),
        )  # fmt: skip

    async def get_activity(self, activity_id: str) -> StoredActivity | None:
        """A published activity by id."""
        row = await fetch_one(
            self.db,
            f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE id = ?",  # noqa: S608
            (activity_id,),
        )
        return None if row is None else _activity(row)

    async def page_outbox(
        self,
        actor: str,
        page: PageRequest,
        *,
        include_private: bool = False,
        comments: bool = True,
    ) -> PageResult:
        """An actor's outbox, newest first (without ``comments``: none that creates one, nor
        announces its creation); items are ``StoredActivity``s."""
        rows, after, before = await page_rows(
            self.db, table="activities", columns=_ACTIVITY_COLUMNS,
            where=_outbox_where(comments), params=(actor, int(include_private)), page=page,
        )  # fmt: skip
        return PageResult([_activity(row) for row in rows], after, before)

    async def count_outbox(
        self, actor: str, *, include_private: bool = False, comments: bool = True
    ) -> int:
        """How many activities an actor's outbox holds (public ones unless asked; without
        ``comments`` as :meth:`page_outbox` says)."""
        return await fetch_int(
            self.db,
            f"SELECT COUNT(*) FROM activities WHERE {_outbox_where(comments)}",  # noqa: S608 (code only)
            (actor, int(include_private)),
        )

    async def activities_about(self, object_id: str) -> list[StoredActivity]:
        """Every activity whose object is ``object_id``, in publication order."""
        rows = await self.db.execute_fetchall(
            f"SELECT {_ACTIVITY_COLUMNS} FROM activities"  # noqa: S608
            " WHERE object_id = ? ORDER BY seq",
            (object_id,),
        )
        return [_activity(row) for row in rows]

    # --- follows ------------------------------------------------------------------------------

    async def put_follow(
        self,
        follow_id: str,
        follower: str,
        target: str,
        *,
        inbox: str | None,
        shared_inbox: str | None,
        state: str,
        now: float,
    ) -> None:
        """Record a Follow (a repeated Follow replaces the earlier one of the same pair)."""
        await self.db.execute(
            "INSERT INTO follows (follow_id, follower, target, inbox, shared_inbox, state,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (follower, target) DO UPDATE SET follow_id = excluded.follow_id,"
            " inbox = excluded.inbox, shared_inbox = excluded.shared_inbox,"
            " state = excluded.state",
            (follow_id, follower, target, inbox, shared_inbox, state, now),
        )

    async def set_follow_state(self, follow_id: str, state: str) -> bool:
        """Move a Follow to ``pending`` or ``accepted``; False when there is none."""
        cursor = await self.db.execute(
            "UPDATE follows SET state = ? WHERE follow_id = ?", (state, follow_id)
        )
        return cursor.rowcount == 1

    async def remove_follow(self, follower: str, target: str) -> bool:
        """Forget a follow relation (Undo{Follow}, Reject); False when there was none."""
        cursor = await self.db.execute(
            "DELETE FROM follows WHERE follower = ? AND target = ?", (follower, target)
        )
        return cursor.rowcount == 1

    async def get_follow(self, follow_id: str) -> Follow | None:
        """A follow by its Follow activity id."""
        row = await fetch_one(
            self.db,
            f"SELECT {_FOLLOW_COLUMNS} FROM follows WHERE follow_id = ?",  # noqa: S608
            (follow_id,),
        )
        return None if row is None else _follow(row)

    async def find_follow(self, follower: str, target: str) -> Follow | None:
        """The follow of ``target`` by ``follower``, if any."""
        row = await fetch_one(
            self.db,
            f"SELECT {_FOLLOW_COLUMNS} FROM follows"  # noqa: S608
            " WHERE follower = ? AND target = ?",
            (follower, target),
        )
        return None if row is None else _follow(row)

    async def followers(self, target: str) -> list[Follow]:
        """Accepted followers of a (local) actor, oldest first."""
        rows = await self.db.execute_fetchall(
            f"SELECT {_FOLLOW_COLUMNS} FROM follows"  # noqa: S608
            " WHERE target = ? AND state = 'accepted' ORDER BY seq",
            (target,),
        )
        return [_follow(row) for row in rows]

    async def page_followers(self, target: str, page: PageRequest) -> PageResult:
        """Accepted followers' actor ids, newest first (the ``followers`` collection)."""
        rows, after, before = await page_rows(
            self.db, table="follows", columns="seq, follower",
            where="target = ? AND state = 'accepted'", params=(target,), page=page,
        )  # fmt: skip
        return PageResult([str(row[1]) for row in rows], after, before)

    async def count_followers(self, target: str) -> int:
        """How many accepted followers an actor has."""
        return await fetch_int(
            self.db,
            "SELECT COUNT(*) FROM follows WHERE target = ? AND state = 'accepted'",
            (target,),
        )

    async def known_inbox(self, actor: str) -> tuple[str | None, str | None] | None:
        """``(inbox, sharedInbox)`` a remote follower gave us, or None when we have none."""
        row = await fetch_one(
            self.db,
            "SELECT inbox, shared_inbox FROM follows WHERE follower = ? AND inbox IS NOT NULL"
            " ORDER BY seq DESC LIMIT 1",
            (actor,),
        )
        return None if row is None else (row[0], row[1])


def activity_body(activity: Mapping[str, Any]) -> bytes:
    """The bytes an activity is stored and delivered as (compact UTF-8 JSON)."""
    return jsontext.dumpb(activity)
