"""Processes, debates and tombstones over aiosqlite (issue 4 "Domain").

Documents are kept as the JSON the vocabulary converters wrote (without proof) and read back
through the same converters, so nothing outside ``federation.vocab`` interprets wire JSON.
Write methods run inside the caller's ``transaction(db)`` (they take no lock themselves), so
a domain change commits together with its outbox activity and deliveries (DESIGN.md §6).
Reads take no lock (WAL). Proposals and supports live in :mod:`federation.store.proposals`,
comments and their votes in :mod:`federation.store.comments`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from activitypub import jsontext
from activitypub.collections import PageRequest, PageResult
from federation.model import Debate, Process, Tombstone
from federation.store.paging import page_rows
from federation.vocab.context import format_datetime
from federation.vocab.debate import debate_from_ap
from federation.vocab.deletion import tombstone_from_ap
from federation.vocab.process import process_from_ap


def dump(document: Mapping[str, Any]) -> str:
    """The compact JSON text a document is stored as."""
    return jsontext.dumps(document)


def load(text: str) -> dict[str, Any]:
    """A stored document back as a dict."""
    value = jsontext.loads_stored(text)
    if not isinstance(value, dict):
        raise ValueError("a stored document is not a JSON object")
    return value


async def fetch_one(
    db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()
) -> Sequence[Any] | None:
    """The first row of a query, or None."""
    rows = list(await db.execute_fetchall(sql, params))
    return rows[0] if rows else None


async def fetch_int(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> int:
    """A single integer (a COUNT or SUM; NULL is 0)."""
    row = await fetch_one(db, sql, params)
    return 0 if row is None or row[0] is None else int(row[0])


@dataclass(frozen=True)
class ProcessRecord:
    """A stored process: local (owned by our Group) or cached from its owner's instance."""

    process: Process
    local: bool
    document: dict[str, Any]
    supports_from: float | None


@dataclass(frozen=True)
class DebateRecord:
    """A stored debate and whether it was written here."""

    debate: Debate
    local: bool
    document: dict[str, Any]


_PROCESS_COLUMNS = "seq, document, local, supports_from"


def _process(row: Sequence[Any]) -> ProcessRecord:
    return _read_process(row[1], bool(row[2]), None if row[3] is None else float(row[3]))


@functools.lru_cache(maxsize=64)
def _read_process(text: str, local: bool, supports_from: float | None) -> ProcessRecord:
    """A process row as a record, memoised on the stored text itself (never stale): parsing
    and converting a process costs ~150 µs and every support and comment reads its process.
    The record is shared, its ``document`` too: read-only, as every cached document here."""
    document = load(text)
    return ProcessRecord(process_from_ap(document), local, document, supports_from)


class DomainStore:
    """SQL for processes, debates and tombstones on the shared connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # --- processes ----------------------------------------------------------------------------

    async def put_process(
        self,
        process: Process,
        document: Mapping[str, Any],
        *,
        local: bool,
        supports_from: float | None,
        fetched_at: float | None = None,
    ) -> None:
        """Insert or replace a process by id (in the caller's transaction)."""
        await self.db.execute(
            "INSERT INTO processes (id, owner, local, document, supports_from, published,"
            " updated, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, local = excluded.local,"
            " document = excluded.document, supports_from = excluded.supports_from,"
            " updated = excluded.updated, fetched_at = excluded.fetched_at",
            (
                process.id,
                process.owner,
                int(local),
                dump(document),
                supports_from,
                format_datetime(process.published),
                format_datetime(process.updated) if process.updated else None,
                fetched_at,
            ),
        )

    async def get_process(self, process_id: str) -> ProcessRecord | None:
        """A process by id, local or cached."""
        row = await fetch_one(
            self.db,
            f"SELECT {_PROCESS_COLUMNS} FROM processes WHERE id = ?",  # noqa: S608
            (process_id,),
        )
        return None if row is None else _process(row)

    async def list_processes(self) -> list[ProcessRecord]:
        """Local processes first, then cached remote ones, each newest first."""
        rows = await self.db.execute_fetchall(
            f"SELECT {_PROCESS_COLUMNS} FROM processes"  # noqa: S608
            " ORDER BY local DESC, seq DESC"
        )
        return [_process(row) for row in rows]

    async def count_processes(self, *, local_only: bool = True) -> int:
        """How many processes this instance owns (or knows, with ``local_only=False``)."""
        return await fetch_int(
            self.db, "SELECT COUNT(*) FROM processes WHERE local = 1 OR ? = 0", (int(local_only),)
        )

    # --- debates ------------------------------------------------------------------------------

    async def put_debate(self, debate: Debate, document: Mapping[str, Any], *, local: bool) -> None:
        """Insert or replace a debate by id (in the caller's transaction)."""
        await self.db.execute(
            "INSERT INTO debates (id, process_id, author, local, closed, document, published,"
            " updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET closed = excluded.closed,"
            " document = excluded.document, updated = excluded.updated",
            (
                debate.id,
                debate.process,
                debate.author,
                int(local),
                int(debate.closed_at is not None),
                dump(document),
                format_datetime(debate.published),
                format_datetime(debate.updated) if debate.updated else None,
            ),
        )

    async def get_debate(self, debate_id: str) -> DebateRecord | None:
        """A debate by id."""
        row = await fetch_one(
            self.db, "SELECT document, local FROM debates WHERE id = ?", (debate_id,)
        )
        if row is None:
            return None
        document = load(row[0])
        return DebateRecord(debate_from_ap(document), bool(row[1]), document)

    async def page_debates(self, process_id: str | None, page: PageRequest) -> PageResult:
        """Debates of a process (or without one, for None), newest first."""
        where, params = (
            ("process_id IS NULL", ()) if process_id is None else ("process_id = ?", (process_id,))
        )
        rows, after, before = await page_rows(
            self.db, table="debates", columns="seq, document", where=where, params=params,
            page=page,
        )  # fmt: skip
        return PageResult([debate_from_ap(load(r[1])) for r in rows], after, before)

    # --- tombstones ---------------------------------------------------------------------------

    async def add_tombstone(self, tombstone: Tombstone) -> None:
        """Remember that an id was deleted (served with 410 afterwards)."""
        await self.db.execute(
            "INSERT INTO tombstones (id, former_type, deleted) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (tombstone.id, tombstone.former_type, format_datetime(tombstone.deleted)),
        )

    async def get_tombstone(self, object_id: str) -> Tombstone | None:
        """The Tombstone of a deleted id, or None."""
        row = await fetch_one(
            self.db, "SELECT id, former_type, deleted FROM tombstones WHERE id = ?", (object_id,)
        )
        if row is None:
            return None
        return tombstone_from_ap(_tombstone_document(row[0], row[1], row[2]))

    async def delete_debate(self, debate_id: str) -> bool:
        """Remove a debate row (its Tombstone is added separately)."""
        cursor = await self.db.execute("DELETE FROM debates WHERE id = ?", (debate_id,))
        return cursor.rowcount == 1


def _tombstone_document(object_id: str, former_type: str, deleted: str) -> dict[str, Any]:
    return {"id": object_id, "type": "Tombstone", "formerType": former_type, "deleted": deleted}


__all__ = [
    "DebateRecord",
    "DomainStore",
    "ProcessRecord",
    "dump",
    "fetch_int",
    "fetch_one",
    "load",
]
