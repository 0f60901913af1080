"""The numbered schema migrations, applied in order at start by :func:`open_database`.

Append new migrations at the end with the next version number; never edit or renumber one that
has shipped. Each migration is a tuple of single statements (run in one transaction), written in
SQL that SQLite and PostgreSQL both accept where that is cheap: TEXT/REAL/INTEGER columns,
``CHECK`` constraints, partial indexes, ``ON CONFLICT … DO NOTHING``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step: a version number, a name for humans and its statements."""

    version: int
    name: str
    statements: tuple[str, ...]


_0001_DELIVERIES_AND_INBOX = (
    # The outgoing queue (DESIGN.md §6): one row per (activity, inbox); the body is unsigned.
    # `host` is activitypub.storage.inbox_host(inbox), kept so claims can skip hosts in SQL.
    """
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        activity_id TEXT NOT NULL,
        inbox TEXT NOT NULL,
        host TEXT NOT NULL,
        sender TEXT NOT NULL,
        body BLOB NOT NULL,
        state TEXT NOT NULL DEFAULT 'new'
            CHECK (state IN ('new', 'sent', 'gone', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        locked_until REAL,
        last_error TEXT,
        last_status INTEGER,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (activity_id, inbox)
    )
    """,
    # claim and next_due only ever look at NEW rows, by due time.
    "CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'new'",
    # Recorded incoming activities (style.md §4), deduplicated on the (inbox, activity) pair.
    """
    CREATE TABLE inbox_messages (
        id INTEGER PRIMARY KEY,
        inbox TEXT NOT NULL,
        activity_id TEXT NOT NULL,
        actor TEXT NOT NULL,
        activity TEXT NOT NULL,
        auth TEXT NOT NULL CHECK (auth IN ('httpsig', 'proof')),
        state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        next_attempt_at REAL NOT NULL,
        locked_until REAL,
        received_at REAL NOT NULL,
        UNIQUE (inbox, activity_id)
    )
    """,
    "CREATE INDEX inbox_messages_due ON inbox_messages (next_attempt_at) WHERE state = 'new'",
)

#: Every migration, in order. Versions are 1, 2, 3, … with no gaps (a test checks it).
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "deliveries and inbox_messages", _0001_DELIVERIES_AND_INBOX),
)
