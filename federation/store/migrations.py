"""The numbered schema migrations, applied in order at start by :func:`open_database`.

Each server has its own sequence, and every sequence starts with the protocol migration 1:
:data:`INSTANCE_MIGRATIONS` for a neighbourhood instance (and, later, one for the aggregator).
A database file belongs to one server kind. Append new migrations at the end of a sequence with
its next version number; never edit or renumber one that has shipped. Each migration is a tuple
of single statements (run in one transaction), written in SQL that SQLite and PostgreSQL both
accept where that is cheap: TEXT/REAL/INTEGER columns, ``CHECK`` constraints, partial indexes,
``ON CONFLICT … DO NOTHING``.
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

_0002_INSTANCE_ACCOUNTS = (
    # Residents' accounts. The integer id never leaves the database: actor ids use the username.
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        display_name TEXT,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'resident'
            CHECK (role IN ('admin', 'moderator', 'resident')),
        created_at REAL NOT NULL
    )
    """,
    # At most one verification per account (DESIGN.md §3): the territory it is a resident of.
    """
    CREATE TABLE verifications (
        user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        territory TEXT NOT NULL,
        method TEXT NOT NULL CHECK (method IN ('census', 'manual')),
        verified_at REAL NOT NULL,
        verified_by TEXT
    )
    """,
    # The census holds keyed hashes (HMAC-SHA256 with the instance secret) of identity numbers,
    # never the numbers. One identity verifies one account (Decidim's `unique_id`), and one
    # account holds at most one identity: both columns are unique.
    """
    CREATE TABLE census (
        identity_hash TEXT PRIMARY KEY,
        territory TEXT NOT NULL,
        imported_at REAL NOT NULL,
        claimed_by INTEGER UNIQUE REFERENCES users (id) ON DELETE SET NULL,
        claimed_at REAL
    )
    """,
    # Personal access tokens: only the SHA-256 of the token is kept.
    """
    CREATE TABLE access_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
        created_at REAL NOT NULL,
        last_used_at REAL,
        revoked_at REAL
    )
    """,
    "CREATE INDEX access_tokens_user ON access_tokens (user_id)",
)

_0003_ACTOR_KEYS = (
    # Private keys of local actors (PEM, PKCS#8): they never leave this table except to sign.
    """
    CREATE TABLE actor_keys (
        actor_id TEXT PRIMARY KEY,
        rsa_private_pem TEXT NOT NULL,
        ed25519_private_pem TEXT NOT NULL,
        created_at REAL NOT NULL
    )
    """,
)

#: The protocol tables every Barri server has: migration 1 of every server's sequence.
PROTOCOL_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "deliveries and inbox_messages", _0001_DELIVERIES_AND_INBOX),
)

#: The neighbourhood instance's sequence. Versions are 1, 2, 3, … with no gaps (checked at open).
INSTANCE_MIGRATIONS: tuple[Migration, ...] = (
    *PROTOCOL_MIGRATIONS,
    Migration(2, "instance accounts, verifications, census and tokens", _0002_INSTANCE_ACCOUNTS),
    Migration(3, "local actor keys", _0003_ACTOR_KEYS),
)

#: The protocol-only sequence, kept for callers that need just the queue and inbox tables.
MIGRATIONS: tuple[Migration, ...] = PROTOCOL_MIGRATIONS
