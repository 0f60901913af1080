"""InlineConnection: quick statements on the loop's thread, never beside the connection's thread.

Real SQLite files. A slow statement is made with a user SQL function that sleeps on the
connection's thread, so a call made meanwhile must queue behind it rather than run inline.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from federation.store.inline import INLINE_PARAMETERS, InlineConnection, connect
from federation.store.sqlite import open_database, transaction


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[InlineConnection]:
    conn = connect(tmp_path / "t.db", isolation_level=None)
    await conn  # starts its thread and opens the file
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    await conn.execute("INSERT INTO t (id, v) VALUES (1, 'one')")

    def slow(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    await conn.create_function("slow", 1, slow)
    try:
        yield conn
    finally:
        await conn.close()


async def _tick(ticks: list[int]) -> None:
    """Count loop turns every 10 ms: it stops counting while something blocks the loop."""
    while True:
        await asyncio.sleep(0.01)
        ticks[0] += 1


def _calls(conn: InlineConnection) -> tuple[int, int]:
    return conn.inline_calls, conn.thread_calls


async def test_an_idle_connection_reads_inline_and_begins_and_commits_on_its_thread(
    db: InlineConnection,
) -> None:
    before = _calls(db)
    rows = list(await db.execute_fetchall("SELECT v FROM t WHERE id = ?", (1,)))
    assert [tuple(r) for r in rows] == [("one",)]
    assert _calls(db) == (before[0] + 1, before[1])
    async with transaction(db):
        inside = _calls(db)
        await db.execute("INSERT INTO t (id, v) VALUES (2, 'two')")
        await db.execute("UPDATE t SET v = 'uno' WHERE id = 1")
        assert _calls(db) == (inside[0] + 2, inside[1])  # the writes ran inline
    after = _calls(db)
    # BEGIN IMMEDIATE and COMMIT went to the connection's thread (they may wait or do I/O).
    assert after[1] == before[1] + 2
    rows = list(await db.execute_fetchall("SELECT id, v FROM t ORDER BY id"))
    assert [tuple(r) for r in rows] == [(1, "uno"), (2, "two")]


async def test_a_bulk_write_in_a_transaction_goes_to_the_thread(db: InlineConnection) -> None:
    rows = range(10, 10 + INLINE_PARAMETERS // 2 + 1)  # two parameters a row: one too many
    values = ", ".join(["(?, ?)"] * len(rows))
    async with transaction(db):
        before = _calls(db)
        await db.execute_fetchall(
            f"INSERT INTO t (id, v) VALUES {values} RETURNING id",
            [value for n in rows for value in (n, str(n))],
        )
        assert _calls(db) == (before[0], before[1] + 1)
        await db.execute("INSERT INTO t (id, v) VALUES (?, ?)", (9, "nine"))
        assert _calls(db) == (before[0] + 1, before[1] + 1)  # a small one stays inline
    found = list(await db.execute_fetchall("SELECT COUNT(*) FROM t"))
    assert found[0][0] == 1 + 1 + len(rows)


async def test_a_write_outside_a_transaction_goes_to_the_thread(db: InlineConnection) -> None:
    before = _calls(db)
    await db.execute("INSERT INTO t (id, v) VALUES (3, 'three')")
    assert _calls(db) == (before[0], before[1] + 1)


async def test_a_call_made_while_the_thread_is_busy_queues_behind_it(
    db: InlineConnection,
) -> None:
    """A read made during a slow statement waits for it (queued, in order), never beside it."""
    slow = asyncio.create_task(db.execute("INSERT INTO t (id, v) VALUES (4, slow(0.3))"))
    await asyncio.sleep(0.05)  # the insert is running on the connection's thread
    before = _calls(db)
    rows = list(await db.execute_fetchall("SELECT v FROM t WHERE id = 4"))
    assert _calls(db) == (before[0], before[1] + 1)  # queued, not inline
    assert [tuple(r) for r in rows] == [("0.3",)]  # and ran after the insert
    await slow


async def test_a_cancelled_caller_does_not_free_the_connection_before_its_call_ends(
    db: InlineConnection,
) -> None:
    """Cancelling the awaiting task does not stop SQLite: calls made meanwhile still queue."""
    task = asyncio.create_task(db.execute("INSERT INTO t (id, v) VALUES (5, slow(0.3))"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not db._idle()  # the statement is still running on the connection's thread
    before = _calls(db)
    rows = list(await db.execute_fetchall("SELECT COUNT(*) FROM t WHERE id = 5"))
    assert _calls(db) == (before[0], before[1] + 1)
    assert [tuple(r) for r in rows] == [(1,)]
    assert db._idle()


async def test_an_inline_error_is_raised_as_sqlite_raises_it_and_the_connection_goes_on(
    db: InlineConnection,
) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await db.execute_fetchall("SELECT * FROM missing")
    with pytest.raises(sqlite3.IntegrityError):
        async with transaction(db):
            await db.execute("INSERT INTO t (id, v) VALUES (1, 'again')")
    assert not db.in_transaction  # rolled back
    rows = list(await db.execute_fetchall("SELECT v FROM t WHERE id = 1"))
    assert [tuple(r) for r in rows] == [("one",)]


async def test_cursor_fetches_run_inline_on_an_idle_connection(db: InlineConnection) -> None:
    async with db.execute("SELECT id FROM t") as cursor:
        before = _calls(db)
        assert [tuple(r) for r in await cursor.fetchall()] == [(1,)]
        assert _calls(db) == (before[0] + 1, before[1])


async def test_sqlite_is_never_used_by_two_threads_at_once(tmp_path: Path) -> None:
    """Many tasks writing and reading at once: every statement runs alone, totals add up."""
    db = await open_database(tmp_path / "busy.db")
    assert isinstance(db, InlineConnection)
    active: list[int] = []
    overlaps: list[int] = []
    lock = threading.Lock()

    def enter(value: int) -> int:
        with lock:
            active.append(threading.get_ident())
            if len(active) > 1:
                overlaps.append(len(active))
        time.sleep(0.0005)
        with lock:
            active.pop()
        return value

    try:
        await db.create_function("enter", 1, enter)
        await db.execute("CREATE TABLE n (k INTEGER PRIMARY KEY, c INTEGER NOT NULL)")
        await db.execute("INSERT INTO n (k, c) VALUES (1, 0)")

        async def bump(i: int) -> None:
            for _ in range(10):
                async with transaction(db):
                    rows = list(await db.execute_fetchall("SELECT enter(c) FROM n WHERE k = 1"))
                    await db.execute("UPDATE n SET c = enter(?) WHERE k = 1", (rows[0][0] + 1,))
                await db.execute_fetchall("SELECT enter(c) FROM n")
                await asyncio.sleep(0)

        await asyncio.gather(*(bump(i) for i in range(20)))
        rows = list(await db.execute_fetchall("SELECT c FROM n WHERE k = 1"))
        assert rows[0][0] == 200
        assert overlaps == []
        assert db.inline_calls > db.thread_calls > 0
    finally:
        await db.close()


async def test_a_write_waiting_for_another_process_lock_leaves_the_loop_free(
    tmp_path: Path,
) -> None:
    """Another connection (a backfill worker, the CLI) holds the write lock: reads still run
    inline at once (WAL), and a lone write waits on the connection's thread, not the loop's."""
    db = await open_database(tmp_path / "shared.db")
    other = sqlite3.connect(tmp_path / "shared.db", isolation_level=None, check_same_thread=False)
    try:
        await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t (id) VALUES (1)")
        ticks = [0]

        running = asyncio.create_task(_tick(ticks))
        rows = list(await db.execute_fetchall("SELECT COUNT(*) FROM t"))
        assert rows[0][0] == 0  # read at once: the other's insert is not committed
        write = asyncio.create_task(db.execute("INSERT INTO t (id) VALUES (2)"))
        await asyncio.sleep(0.3)
        assert not write.done() and ticks[0] >= 10  # the write waits; the loop went on
        other.execute("COMMIT")
        await write
        running.cancel()
        rows = list(await db.execute_fetchall("SELECT id FROM t ORDER BY id"))
        assert [r[0] for r in rows] == [1, 2]
    finally:
        other.close()
        await db.close()


async def test_a_select_on_its_own_line_is_still_a_read(db: InlineConnection) -> None:
    before = _calls(db)
    rows = list(await db.execute_fetchall("\n  SELECT\n v FROM t WHERE id = 1"))
    assert [tuple(r) for r in rows] == [("one",)]
    assert _calls(db) == (before[0] + 1, before[1])


async def test_a_closed_connection_refuses_calls_and_counts_none(tmp_path: Path) -> None:
    conn = connect(tmp_path / "c.db", isolation_level=None)
    await conn
    cursor = await conn.execute("SELECT 1")
    await conn.close()
    with pytest.raises(ValueError, match="Connection closed"):
        await conn.execute_fetchall("SELECT 1")
    with pytest.raises(ValueError, match="Connection closed"):
        await cursor.fetchall()  # reaches the connection's _execute itself
    assert conn._idle()


async def test_a_transaction_after_a_statement_left_unread_on_the_thread_commits(
    tmp_path: Path,
) -> None:
    """aiosqlite's thread holds its last result until it runs the next call: a PRAGMA whose
    row nobody read stays in progress there. BEGIN on the thread replaces it, so the COMMIT
    of inline writes finds no statement in progress (an inline BEGIN did not: bench_queue)."""
    db = await open_database(tmp_path / "pending.db")
    try:
        await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # a row left unread
        async with transaction(db):
            await db.execute("INSERT INTO t (id) VALUES (1)")
        rows = list(await db.execute_fetchall("SELECT id FROM t"))
        assert [r[0] for r in rows] == [1]
    finally:
        await db.close()


async def test_a_transaction_waits_on_the_thread_while_another_process_holds_the_lock(
    tmp_path: Path,
) -> None:
    db = await open_database(tmp_path / "locked.db", busy_timeout=5.0)
    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None, check_same_thread=False)
    try:
        await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        other.execute("BEGIN IMMEDIATE")
        ticks = [0]

        async def write() -> None:
            async with transaction(db):
                await db.execute("INSERT INTO t (id) VALUES (7)")

        running = asyncio.create_task(_tick(ticks))
        writing = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        assert not writing.done() and ticks[0] >= 10  # BEGIN waits on the thread; the loop runs
        other.execute("COMMIT")
        await writing
        running.cancel()
        rows = list(await db.execute_fetchall("SELECT id FROM t"))
        assert [r[0] for r in rows] == [7]
    finally:
        other.close()
        await db.close()


async def test_a_task_cancelled_while_its_commit_ran_stays_cancelled(
    db: InlineConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task cancelled while it awaited its COMMIT (which the connection's thread ran anyway)
    must end cancelled: the ROLLBACK that then finds no transaction used to raise instead, and
    an inbox processor being stopped went on running, its stop() waiting forever."""
    real = db.execute

    async def commit_then_cancelled(sql: str, *args: object) -> object:
        result = await real(sql, *args)
        if sql == "COMMIT":
            raise asyncio.CancelledError  # as a cancel() landing while COMMIT was queued
        return result

    monkeypatch.setattr(db, "execute", commit_then_cancelled)

    async def work() -> None:
        async with transaction(db):
            await db.execute("INSERT INTO t (id, v) VALUES (7, 'seven')")

    task = asyncio.create_task(work())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    monkeypatch.undo()
    assert not db.in_transaction
    rows = list(await db.execute_fetchall("SELECT v FROM t WHERE id = 7"))
    assert [tuple(r) for r in rows] == [("seven",)]  # the COMMIT went through
    async with transaction(db):  # and the write lock was let go
        await db.execute("DELETE FROM t WHERE id = 7")


async def test_opening_a_new_file_another_process_holds_waits_for_it(tmp_path: Path) -> None:
    """Setting WAL on a new file while another connection writes to it (not in WAL yet):
    SQLite says "database is locked" at once, busy timeout or not (two backfill workers
    opening it together); the open waits for the lock instead of failing."""
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE held (x)")
    release = threading.Timer(0.3, holder.execute, ("COMMIT",))
    release.start()
    try:
        db = await open_database(path, busy_timeout=5.0)
    finally:
        release.join()
        holder.close()
    try:
        mode = list(await db.execute_fetchall("PRAGMA journal_mode"))
        assert mode[0][0] == "wal"
    finally:
        await db.close()
