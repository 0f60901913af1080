"""Open a server's SQLite database: WAL, pragmas, and the numbered migrations (DESIGN.md §8).

One ``aiosqlite.Connection`` serves the whole server: an :class:`~.inline.InlineConnection`,
which runs quick statements on the loop's thread while its own thread is idle. It runs in
autocommit mode (``isolation_level=None``): a single statement is its own transaction, and a
multi-statement write uses :func:`transaction`. Because the connection is shared by every
coroutine, all writes go through :func:`write_lock`, so no statement ever lands inside another
coroutine's open transaction (where a rollback would silently undo it). Reads need no lock; in
WAL mode they never block writes.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from federation.store import inline
from federation.store.migrations import MIGRATIONS, Migration

log = logging.getLogger(__name__)

#: RETURNING (used by every claim) needs SQLite 3.35.
MIN_SQLITE = (3, 35, 0)
_LOCK_ATTR = "_barri_write_lock"
#: Bytes a WAL file is cut back to after a checkpoint: without a limit SQLite keeps it at its
#: largest size for good (a cold rebuild's VACUUM left a 366 MB WAL beside a 217 MB database).
WAL_SIZE_LIMIT = 64 * 1024 * 1024


class SchemaError(RuntimeError):
    """The database cannot be used by this code (too old an SQLite, or a newer schema)."""


def write_lock(db: aiosqlite.Connection) -> asyncio.Lock:
    """The connection's write lock; hold it for every write (it is not re-entrant)."""
    lock = getattr(db, _LOCK_ATTR, None)
    if not isinstance(lock, asyncio.Lock):
        # Kept on the connection itself, so it lives and dies with it: no module state.
        lock = asyncio.Lock()
        setattr(db, _LOCK_ATTR, lock)
    return lock


@asynccontextmanager
async def transaction(db: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` under the write lock; rolled back if the body raises."""
    async with write_lock(db):
        await db.execute("BEGIN IMMEDIATE")
        committed = False
        try:
            yield db
            await db.execute("COMMIT")
            committed = True
        finally:
            # Also reached on cancellation: never leave the shared connection mid-transaction.
            if not committed:
                await _rollback(db)


async def _rollback(db: aiosqlite.Connection) -> None:
    """ROLLBACK, unless the transaction already ended: a task cancelled while it awaited its
    COMMIT (queued to the connection's thread, which ran it anyway) finds none to roll back,
    and that error must not replace the CancelledError (the task would go on, uncancelled)."""
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError:
        if db.in_transaction:
            raise


async def open_database(
    path: str | Path,
    *,
    migrations: Sequence[Migration] = MIGRATIONS,
    busy_timeout: float = 5.0,
) -> aiosqlite.Connection:
    """Open (creating if needed) the database, set WAL and pragmas, apply pending migrations."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise SchemaError(f"SQLite {sqlite3.sqlite_version} is too old; Barri needs >= 3.35")
    # `timeout` is sqlite3_busy_timeout: a writer waits this long for another process's lock.
    db = await inline.connect(path, isolation_level=None, timeout=busy_timeout)
    ready = False
    try:
        await _set_pragmas(db, path, busy_timeout)
        await apply_migrations(db, migrations)
        ready = True
    finally:
        if not ready:
            await db.close()
    return db


async def _set_pragmas(db: aiosqlite.Connection, path: str | Path, patience: float) -> None:
    rows = await _journal_mode_wal(db, patience)
    mode = str(rows[0][0]) if rows else "?"
    if mode != "wal" and str(path) != ":memory:":
        # Some filesystems (network mounts) refuse WAL; the server still works, more slowly.
        log.warning("SQLite WAL unavailable", extra={"db_path": str(path), "journal_mode": mode})
    await db.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode, without fsync per commit
    await db.execute("PRAGMA foreign_keys = ON")
    await db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")


async def _journal_mode_wal(db: aiosqlite.Connection, patience: float) -> list[Any]:
    """``PRAGMA journal_mode = WAL``, tried again while another process holds the new file:
    SQLite answers "database is locked" at once there, without its busy handler (two backfill
    workers opening an aggregator's database together)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.05)


async def apply_migrations(db: aiosqlite.Connection, migrations: Sequence[Migration]) -> list[int]:
    """Apply each migration not yet in ``schema_migrations``, one transaction each, in order."""
    check_sequence(migrations)
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    known = max((m.version for m in migrations), default=0)
    newest = (await applied_versions(db) or [0])[-1]
    if newest > known:
        raise SchemaError(f"database schema version {newest} is newer than this code ({known})")
    applied: list[int] = []
    for migration in migrations:
        if await _apply_one(db, migration):
            applied.append(migration.version)
    return applied


async def _apply_one(db: aiosqlite.Connection, migration: Migration) -> bool:
    async with transaction(db):
        # Checked inside the transaction: two processes starting together apply it once.
        done = await db.execute_fetchall(
            "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
        )
        if list(done):
            return False
        for statement in migration.statements:
            await db.execute(statement)
        await db.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, time.time()),
        )
    log.info("applied migration", extra={"version": migration.version, "migration": migration.name})
    return True


async def applied_versions(db: aiosqlite.Connection) -> list[int]:
    """The versions recorded in ``schema_migrations``, ascending."""
    rows = await db.execute_fetchall("SELECT version FROM schema_migrations ORDER BY version")
    return [int(r[0]) for r in rows]


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Raise ``ValueError`` unless the versions are exactly 1, 2, 3, … in order."""
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1..n in order, got {versions}")
