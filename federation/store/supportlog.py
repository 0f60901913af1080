"""The support log: every signed Like and withdrawal Undo an instance knows (DESIGN.md §6).

Rows are appended in the order the instance learnt of them (``seq``), each with its signed
document and its actor's origin, so an aggregator reading the instance-wide log can ask for
the part its own residents wrote (``authors=local``) or leave out the actors of instances whose
own logs it read already (``exclude_origins``): each support is then read once, from its
author's instance, instead of once there and again from the process owner's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from activitypub import as2, jsontext
from activitypub.collections import PageRequest, PageResult
from activitypub.origin import OriginError, origin_of
from federation.store.domain import dump, fetch_int
from federation.store.paging import page_rows

#: Most origins one reader may leave out (``exclude_origins``): more than fit in a request line
#: (aiohttp reads up to 8 KB), so only a bigger proxy limit lets more through.
MAX_EXCLUDED = 300


@dataclass(frozen=True)
class LogFilter:
    """Which items of the instance-wide log a reader asked for: only those whose actor is of
    ``local`` (this instance's origin) when set, and none whose actor is of an ``excluded``
    origin. Origins are FEP-fe34 normalised (:func:`actor_origin`)."""

    local: str | None = None
    excluded: tuple[str, ...] = ()

    def where(self) -> tuple[str, tuple[str, ...]]:
        """The SQL condition and its parameters (the column and the marks are code)."""
        clauses, params = ["1 = 1"], list[str]()
        if self.local is not None:
            clauses.append("actor_origin = ?")
            params.append(self.local)
        if self.excluded:
            marks = ", ".join("?" * len(self.excluded))
            # An item whose actor's origin is unknown is listed: leaving it out could lose it.
            clauses.append(f"(actor_origin IS NULL OR actor_origin NOT IN ({marks}))")
            params.extend(self.excluded)
        return " AND ".join(clauses), tuple(params)


def actor_origin(document: Mapping[str, Any]) -> str | None:
    """The normalised origin of the document's ``actor`` (FEP-fe34), None when it has none."""
    actor = as2.first_id(document, "actor")
    try:
        return None if actor is None else str(origin_of(actor))
    except OriginError:
        return None


async def log_item(
    db: aiosqlite.Connection, process_id: str, item_id: str, kind: str, document: Mapping[str, Any]
) -> None:
    """Append a signed Like or Undo to the log (once per id)."""
    await db.execute(
        "INSERT INTO support_log (process_id, item_id, kind, document, actor_origin)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id) DO NOTHING",
        (process_id, item_id, kind, dump(document), actor_origin(document)),
    )


def _items(rows: list[Any], after: str | None, before: str | None) -> PageResult:
    """A page of stored documents, spliced into the page as stored (not parsed again)."""
    return PageResult([jsontext.stored_fragment(row[1]) for row in rows], after, before)


async def page_process(db: aiosqlite.Connection, process_id: str, page: PageRequest) -> PageResult:
    """Signed Likes and Undos of a process, newest first."""
    rows, after, before = await page_rows(
        db, table="support_log", columns="seq, document", where="process_id = ?",
        params=(process_id,), page=page,
    )  # fmt: skip
    return _items(rows, after, before)


async def count_process(db: aiosqlite.Connection, process_id: str) -> int:
    """How many items a process's log holds."""
    sql = "SELECT COUNT(*) FROM support_log WHERE process_id = ?"
    return await fetch_int(db, sql, (process_id,))


async def page_instance(
    db: aiosqlite.Connection, page: PageRequest, chosen: LogFilter = LogFilter()
) -> PageResult:
    """The items of the whole log that ``chosen`` lets through, newest first: the instance's
    own processes' Likes and Undos (local and received) and its residents' in other
    instances' processes."""
    where, params = chosen.where()
    rows, after, before = await page_rows(
        db, table="support_log", columns="seq, document", where=where, params=params, page=page
    )
    return _items(rows, after, before)


async def count_instance(db: aiosqlite.Connection, chosen: LogFilter = LogFilter()) -> int:
    """How many items of the whole log ``chosen`` lets through."""
    where, params = chosen.where()
    return await fetch_int(db, f"SELECT COUNT(*) FROM support_log WHERE {where}", params)  # noqa: S608 (code only)


__all__ = [
    "MAX_EXCLUDED",
    "LogFilter",
    "actor_origin",
    "count_instance",
    "count_process",
    "log_item",
    "page_instance",
    "page_process",
]
