"""The resident's inbox as C2S reads it: the activities this server received for them (SQL).

``inbox_messages`` records what arrived at an actor's own inbox and at the shared inbox (the
pipeline keeps the inbox URL it arrived at). A resident's inbox is what arrived at their inbox
plus what arrived at the shared inbox addressed to them (``to``, ``cc``, ``bto``, ``bcc`` or
``audience``; JSON1 ``json_each`` reads a single value or an array alike). Newest first, cursor
paged over the row id (stable while rows arrive).
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from activitypub import jsontext
from activitypub.collections import PageRequest, PageResult
from federation.store.domain import fetch_int
from federation.store.paging import page_rows

_TABLE = "(SELECT id AS seq, inbox, activity FROM inbox_messages)"
_ADDRESSED = (
    "EXISTS (SELECT 1 FROM json_each(activity, '$.to') WHERE value = ?)"
    " OR EXISTS (SELECT 1 FROM json_each(activity, '$.cc') WHERE value = ?)"
    " OR EXISTS (SELECT 1 FROM json_each(activity, '$.bto') WHERE value = ?)"
    " OR EXISTS (SELECT 1 FROM json_each(activity, '$.bcc') WHERE value = ?)"
    " OR EXISTS (SELECT 1 FROM json_each(activity, '$.audience') WHERE value = ?)"
)
_WHERE = f"inbox = ? OR (inbox = ? AND ({_ADDRESSED}))"


def _params(inbox: str, shared_inbox: str, actor_id: str) -> tuple[str, ...]:
    return (inbox, shared_inbox, *([actor_id] * 5))


async def page_inbox(
    db: aiosqlite.Connection, *, inbox: str, shared_inbox: str, actor_id: str, page: PageRequest
) -> PageResult:
    """One page of the actor's received activities (their JSON as recorded), newest first."""
    rows, after, before = await page_rows(
        db, table=_TABLE, columns="seq, activity", where=_WHERE,
        params=_params(inbox, shared_inbox, actor_id), page=page,
    )  # fmt: skip
    items: list[Any] = [jsontext.loads_stored(row[1]) for row in rows]
    return PageResult(items, after, before)


async def count_inbox(
    db: aiosqlite.Connection, *, inbox: str, shared_inbox: str, actor_id: str
) -> int:
    """How many activities the actor's inbox holds."""
    return await fetch_int(
        db,
        f"SELECT COUNT(*) FROM {_TABLE} WHERE {_WHERE}",  # noqa: S608 (code, not input)
        _params(inbox, shared_inbox, actor_id),
    )
