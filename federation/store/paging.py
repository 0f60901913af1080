"""Cursor paging in SQL over an ``INTEGER seq`` column (mirrors ``activitypub.collections``).

Every domain table has an autoincrement ``seq`` assigned once at insert and never reused, so
a cursor naming a ``seq`` is stable while new rows arrive (ActivityPub §5, AS2 Core §2.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

from activitypub.collections import PageRequest, decode_cursor, encode_cursor

DEFAULT_LIMIT = 20
SEQ_SHAPE = (int,)


def first_page(limit: int = DEFAULT_LIMIT) -> PageRequest:
    """The request for a collection's first page."""
    return PageRequest(before=None, after=None, limit=limit)


def _cursor_seq(token: str | None) -> int | None:
    if token is None:
        return None
    key = decode_cursor(token, shape=SEQ_SHAPE)
    return int(key[0])


async def _exists(
    db: aiosqlite.Connection, table: str, where: str, params: Sequence[Any], cond: str, seq: int
) -> bool:
    rows = await db.execute_fetchall(
        f"SELECT 1 FROM {table} WHERE ({where}) AND seq {cond} ? LIMIT 1",  # noqa: S608
        (*params, seq),
    )
    return bool(list(rows))


async def page_rows(
    db: aiosqlite.Connection,
    *,
    table: str,
    columns: str,
    where: str,
    params: Sequence[Any],
    page: PageRequest,
    newest_first: bool = True,
) -> tuple[list[Sequence[Any]], str | None, str | None]:
    """One page of rows in display order, with the ``next`` and ``prev`` cursors.

    ``columns`` must start with ``seq``; ``table``, ``columns`` and ``where`` are code, never
    input (the values travel as ``params``). A cursor of the wrong shape raises ValueError.
    """
    after, before = _cursor_seq(page.after), _cursor_seq(page.before)
    # "forward" walks in display order; "back" walks against it (then the rows are reversed).
    forward, back = ("<", "DESC") if newest_first else (">", "ASC")
    backward, back_order = (">", "ASC") if newest_first else ("<", "DESC")
    anchor: int | None
    if before is not None:
        cond, order, anchor = backward, back_order, before
    else:
        cond, order, anchor = forward, back, after
    bound = f" AND seq {cond} ?" if anchor is not None else ""
    extra = (anchor,) if anchor is not None else ()
    rows: list[Sequence[Any]] = list(
        await db.execute_fetchall(
            f"SELECT {columns} FROM {table} WHERE ({where}){bound}"  # noqa: S608 (code only)
            f" ORDER BY seq {order} LIMIT ?",
            (*params, *extra, page.limit + 1),
        )
    )
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    if before is not None:
        rows.reverse()
    if not rows:
        return [], None, None
    first_seq, last_seq = int(rows[0][0]), int(rows[-1][0])

    async def beyond(cond: str, seq: int) -> bool:
        return await _exists(db, table, where, params, cond, seq)

    # The side we walked from knows by ``more``; the other side needs one look.
    if before is not None:
        has_prev, has_next = more, await beyond(forward, last_seq)
    else:
        has_next = more
        has_prev = anchor is not None and await beyond(backward, first_seq)
    next_cursor = encode_cursor((last_seq,)) if has_next else None
    prev_cursor = encode_cursor((first_seq,)) if has_prev else None
    return rows, next_cursor, prev_cursor
