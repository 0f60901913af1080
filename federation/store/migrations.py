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

_0004_INSTANCE_DOMAIN = (
    # Processes, local (owned by our Group) or cached from another instance (the city's).
    # `document` is the process JSON without proof; `supports_from` is the start (POSIX
    # seconds) of its first supports phase: its rules are frozen from then on.
    """
    CREATE TABLE processes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        local INTEGER NOT NULL CHECK (local IN (0, 1)),
        document TEXT NOT NULL,
        supports_from REAL,
        published TEXT NOT NULL,
        updated TEXT,
        fetched_at REAL
    )
    """,
    # Proposals of local processes (by anyone) and our residents' proposals anywhere, plus
    # remote ones we show. `final_supports` counts the final supports known here (Decidim's
    # proposal_votes_count); the document's supportCount is filled from it when read.
    """
    CREATE TABLE proposals (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        process_id TEXT NOT NULL,
        author TEXT NOT NULL,
        local INTEGER NOT NULL CHECK (local IN (0, 1)),
        state TEXT NOT NULL CHECK (state IN
            ('notAnswered', 'evaluating', 'accepted', 'rejected', 'withdrawn')),
        document TEXT NOT NULL,
        published TEXT NOT NULL,
        updated TEXT,
        final_supports INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX proposals_process ON proposals (process_id, seq)",
    "CREATE INDEX proposals_author ON proposals (author)",
    # Supports (Like ids). Decidim's minimum supports: `temporary` until the resident reaches
    # the minimum in the process, then `final`; `withdrawn` once undone (kept for audit).
    """
    CREATE TABLE supports (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        actor TEXT NOT NULL,
        proposal_id TEXT NOT NULL,
        process_id TEXT NOT NULL,
        local INTEGER NOT NULL CHECK (local IN (0, 1)),
        published TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('temporary', 'final', 'withdrawn')),
        undo_id TEXT,
        document TEXT NOT NULL
    )
    """,
    # One active support per resident per proposal (Decidim's ProposalVote uniqueness).
    "CREATE UNIQUE INDEX supports_active ON supports (actor, proposal_id)"
    " WHERE state != 'withdrawn'",
    "CREATE INDEX supports_proposal ON supports (proposal_id, state)",
    "CREATE INDEX supports_actor_process ON supports (actor, process_id, state)",
    # Undo ids that arrived before their Like: the Like, when it comes, is already withdrawn.
    """
    CREATE TABLE undone (
        like_id TEXT PRIMARY KEY,
        undo_id TEXT NOT NULL,
        actor TEXT NOT NULL,
        received_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE debates (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        process_id TEXT,
        author TEXT NOT NULL,
        local INTEGER NOT NULL CHECK (local IN (0, 1)),
        closed INTEGER NOT NULL DEFAULT 0 CHECK (closed IN (0, 1)),
        document TEXT NOT NULL,
        published TEXT NOT NULL,
        updated TEXT
    )
    """,
    "CREATE INDEX debates_process ON debates (process_id, seq)",
    # Comments: `root_id` is the proposal or debate the thread hangs from; `external` marks a
    # reply from outside Barri (a Mastodon user): shown, never counted (DESIGN.md §7).
    """
    CREATE TABLE comments (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        root_id TEXT NOT NULL,
        parent_id TEXT NOT NULL,
        author TEXT NOT NULL,
        depth INTEGER,
        alignment TEXT NOT NULL CHECK (alignment IN ('inFavor', 'against', 'neutral')),
        local INTEGER NOT NULL CHECK (local IN (0, 1)),
        external INTEGER NOT NULL DEFAULT 0 CHECK (external IN (0, 1)),
        document TEXT NOT NULL,
        published TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
    )
    """,
    "CREATE INDEX comments_root ON comments (root_id, seq)",
    "CREATE INDEX comments_parent ON comments (parent_id)",
    # Up (+1) / down (-1) votes on comments; one active vote per actor per comment.
    """
    CREATE TABLE comment_votes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        actor TEXT NOT NULL,
        comment_id TEXT NOT NULL,
        weight INTEGER NOT NULL CHECK (weight IN (-1, 1)),
        active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        undo_id TEXT,
        document TEXT NOT NULL,
        published TEXT
    )
    """,
    "CREATE UNIQUE INDEX comment_votes_active ON comment_votes (actor, comment_id)"
    " WHERE active = 1",
    "CREATE INDEX comment_votes_comment ON comment_votes (comment_id, active)",
    # Follows both ways: remote followers of our actors (their inbox and sharedInbox kept from
    # the Follow) and our own Follows of remote process Groups.
    """
    CREATE TABLE follows (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        follow_id TEXT NOT NULL UNIQUE,
        follower TEXT NOT NULL,
        target TEXT NOT NULL,
        inbox TEXT,
        shared_inbox TEXT,
        state TEXT NOT NULL CHECK (state IN ('pending', 'accepted')),
        created_at REAL NOT NULL,
        UNIQUE (follower, target)
    )
    """,
    "CREATE INDEX follows_target ON follows (target, state)",
    # Our outbox: every activity we published, as proved JSON, in publication order.
    """
    CREATE TABLE activities (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        actor TEXT NOT NULL,
        type TEXT NOT NULL,
        object_id TEXT,
        document TEXT NOT NULL,
        public INTEGER NOT NULL CHECK (public IN (0, 1)),
        published TEXT NOT NULL
    )
    """,
    "CREATE INDEX activities_actor ON activities (actor, seq)",
    "CREATE INDEX activities_object ON activities (object_id)",
    # What was deleted: GET of its id answers 410 with this Tombstone.
    """
    CREATE TABLE tombstones (
        id TEXT PRIMARY KEY,
        former_type TEXT NOT NULL,
        deleted TEXT NOT NULL
    )
    """,
)

_0005_OAUTH_AND_CLIENT_KEYS = (
    # Client ID Metadata Documents fetched for OAuth clients (a cache: refetched when stale).
    """
    CREATE TABLE oauth_clients (
        client_id TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        fetched_at REAL NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    # One resident's consent to one client; its code and tokens end with it (a reused code, a
    # replayed refresh token). `id` is random and opaque.
    """
    CREATE TABLE oauth_grants (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    )
    """,
    # Authorization codes (SHA-256 only) with their PKCE S256 challenge; used once.
    """
    CREATE TABLE oauth_codes (
        code_hash TEXT PRIMARY KEY,
        grant_id TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
        redirect_uri TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL
    )
    """,
    # Access and refresh tokens (SHA-256 only); a refresh token is used once (rotation).
    """
    CREATE TABLE oauth_tokens (
        token_hash TEXT PRIMARY KEY,
        grant_id TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
        scope TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL,
        last_used_at REAL,
        revoked_at REAL
    )
    """,
    "CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id)",
    # Ed25519 public keys only a resident's client holds (listed in the actor's assertionMethod).
    """
    CREATE TABLE client_keys (
        key_id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        public_key_multibase TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    )
    """,
    "CREATE INDEX client_keys_user ON client_keys (user_id)",
)

# The support log: every support Like and withdrawal Undo an instance counts in a process, in
# the order it learnt of them, with the signed document, so a backfill reads withdrawals too
# and verifies each item from the page instead of fetching it (DESIGN.md §6 "Backfill").
_0006_SUPPORT_LOG = (
    """
    CREATE TABLE support_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        process_id TEXT NOT NULL,
        item_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('like', 'undo')),
        document TEXT NOT NULL
    )
    """,
    "CREATE INDEX support_log_process ON support_log (process_id, seq)",
    "ALTER TABLE undone ADD COLUMN document TEXT",
    # Earlier local supports were stored before their proof was added: only proved ones move.
    "INSERT INTO support_log (process_id, item_id, kind, document)"
    " SELECT process_id, id, 'like', document FROM supports"
    " WHERE document LIKE '%\"proof\"%' ORDER BY seq",
)

_0007_DELIVERY_QUEUE_INDEXES = (
    # The queue's hot queries read only the index (DESIGN.md §6 "claimed atomically"): a claim
    # walks NEW rows by (due time, id) and skips leased rows and excluded hosts without reading
    # the row and its body; the earliest due row is the first unleased entry.
    "CREATE INDEX deliveries_claim ON deliveries (next_attempt_at, id, host, locked_until)"
    " WHERE state = 'new'",
    # The earliest lease to run out, among the few leased NEW rows (next_due).
    "CREATE INDEX deliveries_leased ON deliveries (locked_until, next_attempt_at)"
    " WHERE state = 'new' AND locked_until IS NOT NULL",
    "DROP INDEX deliveries_due",
)

#: One delivery body per activity (DESIGN.md §6): a Group's Announce to 74 follower instances
#: stored 74 copies of its ~14 KB body. Appended to every server's sequence under its own next
#: number. Existing rows keep their activity's body (that of its first row: an activity id is
#: one activity); DROP COLUMN needs SQLite 3.35, which RETURNING already requires.
DELIVERY_BODIES = (
    """
    CREATE TABLE delivery_bodies (
        activity_id TEXT PRIMARY KEY,
        body BLOB NOT NULL,
        created_at REAL NOT NULL
    )
    """,
    "INSERT INTO delivery_bodies (activity_id, body, created_at)"
    " SELECT d.activity_id, d.body, d.created_at FROM deliveries d"
    " WHERE d.id = (SELECT MIN(e.id) FROM deliveries e WHERE e.activity_id = d.activity_id)",
    "ALTER TABLE deliveries DROP COLUMN body",
)

#: Deliveries claimed host by host (DESIGN.md §6): each host's NEW rows in due order, so a claim
#: finds the hosts with work by a loose walk (one seek per host) and takes the oldest rows of
#: each. Appended to every server's sequence under its own next number.
HOST_CLAIMS = (
    "CREATE INDEX deliveries_host ON deliveries (host, next_attempt_at, id, locked_until)"
    " WHERE state = 'new'",
)

_0009_REMOTE_ACTORS = (
    """
    CREATE TABLE remote_actors (
        id TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        fetched_at REAL NOT NULL
    )
    """,
)

# Each support-log item's actor origin (FEP-fe34), so an aggregator asks for one author's part
# of an instance's log (federation.store.supportlog). Rows logged before it get their actor's
# ``scheme://authority``, lowercased; new rows the fully normalised origin (an old row whose
# spelling differs is listed where a filter would leave it out: read twice, never lost).
# json_extract is SQLite's (PostgreSQL: ``document::jsonb ->> 'actor'``).
_0011_SUPPORT_LOG_ORIGINS = (
    "ALTER TABLE support_log ADD COLUMN actor_origin TEXT",
    """
    UPDATE support_log SET actor_origin = lower(substr(a, 1, instr(a, '://') + 2 + CASE
            WHEN instr(substr(a, instr(a, '://') + 3), '/') > 0
            THEN instr(substr(a, instr(a, '://') + 3), '/') - 1 ELSE length(a) END))
    FROM (
        SELECT seq AS row_seq, coalesce(
            json_extract(document, '$.actor.id'), json_extract(document, '$.actor')) AS a
        FROM support_log
    ) AS actors
    WHERE support_log.seq = actors.row_seq AND instr(a, '://') > 0
    """,
    "CREATE INDEX support_log_actor_origin ON support_log (actor_origin, seq)",
)

# Which outbox activities create a comment (a Create of a Note replying to something, or the
# Group's Announce of one: federation.vocab.comment.creates_comment), so an aggregator reads an
# outbox without them (their threads list them). Rows written before it are read from their
# stored JSON, which this server wrote with plain-string types; one it misses is listed where
# the filter would leave it out (the reader skips it as before), never hidden.
_0012_OUTBOX_COMMENTS = (
    "ALTER TABLE activities ADD COLUMN creates_comment INTEGER NOT NULL DEFAULT 0"
    " CHECK (creates_comment IN (0, 1))",
    """
    UPDATE activities SET creates_comment = 1 WHERE CASE WHEN json_valid(document) THEN (
        type = 'Create' AND json_extract(document, '$.object.type') = 'Note'
        AND json_extract(document, '$.object.inReplyTo') IS NOT NULL
    ) OR (
        type = 'Announce' AND json_extract(document, '$.object.type') = 'Create'
        AND json_extract(document, '$.object.object.type') = 'Note'
        AND json_extract(document, '$.object.object.inReplyTo') IS NOT NULL
    ) ELSE 0 END
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
    Migration(4, "instance domain", _0004_INSTANCE_DOMAIN),
    Migration(5, "oauth grants, codes, tokens and client keys", _0005_OAUTH_AND_CLIENT_KEYS),
    Migration(6, "support log for backfill", _0006_SUPPORT_LOG),
    Migration(7, "delivery queue indexes for claims and next_due", _0007_DELIVERY_QUEUE_INDEXES),
    Migration(8, "one delivery body per activity", DELIVERY_BODIES),
    Migration(9, "remote actor documents as last fetched", _0009_REMOTE_ACTORS),
    Migration(10, "deliveries claimed host by host", HOST_CLAIMS),
    Migration(11, "support log actor origins", _0011_SUPPORT_LOG_ORIGINS),
    Migration(12, "outbox activities that create comments", _0012_OUTBOX_COMMENTS),
)

#: The protocol-only sequence, kept for callers that need just the queue and inbox tables.
MIGRATIONS: tuple[Migration, ...] = (
    *PROTOCOL_MIGRATIONS,
    Migration(2, "one delivery body per activity", DELIVERY_BODIES),
    Migration(3, "deliveries claimed host by host", HOST_CLAIMS),
)
