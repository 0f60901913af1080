"""An aiosqlite connection that runs quick statements on the event loop's own thread.

aiosqlite runs every call on a thread of its own: a round trip costs about 30 µs of CPU (a
queue put, two thread wake-ups, a future resolved through the loop's self-pipe), where a point
read by primary key costs about 5 µs, and on a loaded machine each wake-up also waits for a
core. A server makes dozens of calls per act, so :class:`InlineConnection` runs a call on the
calling thread instead, when all three hold:

* the connection's thread is idle: every call queued to it has finished (a call runs inline
  only between queued ones, never beside one, and in the order it was made);
* the call cannot wait for a lock: a ``SELECT`` (WAL readers never block), a fetch from a
  cursor, or any statement but ``COMMIT`` inside a transaction this connection opened
  (``BEGIN IMMEDIATE`` took the write lock already);
* it is not a bulk write: a statement inside a transaction with more than
  ``INLINE_PARAMETERS`` parameters (rows, for ``executemany``), such as an inbox batch's
  multi-row ``INSERT``, takes the thread, where SQLite works without the GIL while the
  loop's thread, the one that bounds a busy server, goes on parsing and verifying
  (``benchmarks/results/ingest-ab-bulk-writes*.json``).

Everything else keeps aiosqlite's thread: ``BEGIN`` and single-statement writes, which may wait
up to the busy timeout for another process (a backfill worker, the CLI); ``COMMIT``, which may
run a checkpoint's I/O; scripts, backups, and the connection's own open and close.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any

import aiosqlite

#: Calls that step or finish a statement already prepared (they cannot wait for a lock).
_CURSOR_STEPS = frozenset({"fetchone", "fetchmany", "fetchall", "close"})
#: Parameters beyond which a write inside a transaction is a bulk write, run on the thread.
INLINE_PARAMETERS = 64
#: Calls that prepare and run the statement given as their first argument.
_STATEMENTS = frozenset({"execute", "executemany", "_execute_fetchall", "_execute_insert"})


def _head(sql: Any) -> str:
    """The statement's first keyword, upper-cased ("" when it is not SQL text)."""
    if not isinstance(sql, str):
        return ""
    words = sql.split(None, 1)
    return words[0].upper() if words else ""


class InlineConnection(aiosqlite.Connection):
    """``aiosqlite.Connection`` running quick calls inline while its thread is idle."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._queued = 0  # calls handed to the thread (written by the loop's thread only)
        self._finished = 0  # of those, calls that returned or raised (the thread's only)
        #: How many calls ran inline and how many went to the thread (for benchmarks).
        self.inline_calls = 0
        self.thread_calls = 0

    def _idle(self) -> bool:
        return self._queued == self._finished

    def _inline(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """Whether ``fn(*args)`` may run on the calling thread now (see the module doc)."""
        if not self._idle() or self._connection is None or not self._running:
            return False
        name = getattr(fn, "__name__", "")
        if name in _CURSOR_STEPS:
            return isinstance(getattr(fn, "__self__", None), sqlite3.Cursor)
        if name not in _STATEMENTS or not args:
            return False
        head = _head(args[0])
        if head == "SELECT":
            return True
        if not self._connection.in_transaction or head in ("COMMIT", "END", "BEGIN"):
            return False
        return len(args) < 2 or not isinstance(args[1], Sized) or len(args[1]) <= INLINE_PARAMETERS

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` inline when :meth:`_inline` allows it, else on the connection's thread."""
        if self._inline(fn, args):
            self.inline_calls += 1
            return fn(*args, **kwargs)
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")  # as aiosqlite says it, before counting
        self.thread_calls += 1

        def counted(*a: Any, **k: Any) -> Any:
            try:
                return fn(*a, **k)
            finally:
                self._finished += 1  # on the connection's thread, once fn is done with SQLite

        self._queued += 1
        return await super()._execute(counted, *args, **kwargs)  # type: ignore[no-untyped-call]


def connect(database: str | Path, **kwargs: Any) -> InlineConnection:
    """:func:`aiosqlite.connect` giving an :class:`InlineConnection` (kwargs: sqlite3's)."""
    # The loop's thread uses the sqlite3 connection too, never at the same time as the
    # connection's thread (InlineConnection._idle), so sqlite3's same-thread check is off.
    settings = {**kwargs, "check_same_thread": False}

    def connector() -> sqlite3.Connection:
        connection: sqlite3.Connection = sqlite3.connect(str(database), **settings)
        return connection

    return InlineConnection(connector, 64)


__all__ = ["InlineConnection", "connect"]
