"""The aggregator's migrations: the protocol tables, then the city's own (DESIGN.md §7, §8).

Tables whose rows change what the tally counts (``roster``, ``residents``, ``processes``,
``proposals``) carry a ``rev``: one more than the table's highest when a row is written, so a
server finds what another process (the CLI) changed since it last looked. ``activities`` is
append-only and read by ``seq``. SQL stays portable (TEXT/REAL/INTEGER, CHECK, partial indexes,
``ON CONFLICT``), as in :mod:`federation.store.migrations`.
"""

from __future__ import annotations

from federation.store.migrations import (
    DELIVERY_BODIES,
    HOST_CLAIMS,
    PROTOCOL_MIGRATIONS,
    Migration,
)

_0002_SERVICE_KEYS = (
    # The Service actor's private keys (PEM, PKCS#8): they never leave this table except to sign.
    """
    CREATE TABLE actor_keys (
        actor_id TEXT PRIMARY KEY,
        rsa_private_pem TEXT NOT NULL,
        ed25519_private_pem TEXT NOT NULL,
        created_at REAL NOT NULL
    )
    """,
)

_0003_AGGREGATOR = (
    # The city's list of instances (DESIGN.md §7 rule 1): one row per origin, never deleted;
    # removal clears `active` so that restoring needs no refetch.
    """
    CREATE TABLE roster (
        origin TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        territory TEXT NOT NULL,
        district TEXT NOT NULL,
        instance_actor TEXT,
        group_actor TEXT,
        active INTEGER NOT NULL CHECK (active IN (0, 1)),
        added_at REAL NOT NULL,
        removed_at REAL,
        last_activity_at REAL,
        rev INTEGER NOT NULL
    )
    """,
    "CREATE INDEX roster_rev ON roster (rev)",
    # Our Follows of each instance's actors, with the answer they got.
    """
    CREATE TABLE follows (
        follow_id TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        target TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'rejected', 'undone')),
        document TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
    "CREATE INDEX follows_origin ON follows (origin, target)",
    # Backfill position per (instance, collection): `next_url` is the page to read next in the
    # current pass (NULL between passes); `marker` is the newest item id of the last finished
    # pass, where the next pass stops; `pass_newest` the newest id seen in the current one.
    """
    CREATE TABLE cursors (
        origin TEXT NOT NULL,
        collection TEXT NOT NULL,
        next_url TEXT,
        marker TEXT,
        pass_newest TEXT,
        items INTEGER NOT NULL DEFAULT 0,
        total INTEGER,
        passes INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (origin, collection)
    )
    """,
    # Every verified support and undo, as the raw signed JSON (the source of truth), with the
    # fields the tally reads copied into columns so that a restart rebuilds without parsing.
    # One row per (id, verification outcome, signer): a forged copy never hides a genuine one.
    """
    CREATE TABLE activities (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('support', 'undo')),
        actor TEXT NOT NULL,
        origin TEXT NOT NULL,
        object TEXT NOT NULL,
        process TEXT NOT NULL,
        published TEXT NOT NULL,
        received_at REAL NOT NULL,
        proof_ok INTEGER NOT NULL CHECK (proof_ok IN (0, 1)),
        signer_origin TEXT NOT NULL,
        route TEXT NOT NULL,
        via TEXT,
        document TEXT NOT NULL,
        UNIQUE (id, proof_ok, signer_origin)
    )
    """,
    "CREATE INDEX activities_origin ON activities (origin, seq)",
    # What each actor's own instance states about its residency (verifiedResidentOf).
    """
    CREATE TABLE residents (
        actor TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        kind TEXT,
        code TEXT,
        district TEXT,
        document TEXT NOT NULL,
        fetched_at REAL NOT NULL,
        rev INTEGER NOT NULL
    )
    """,
    "CREATE INDEX residents_rev ON residents (rev)",
    # Processes as fetched from their owner, and when the aggregator froze each (final Tally).
    """
    CREATE TABLE processes (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        origin TEXT NOT NULL,
        document TEXT NOT NULL,
        closed_at REAL,
        fetched_at REAL NOT NULL,
        rev INTEGER NOT NULL
    )
    """,
    "CREATE INDEX processes_rev ON processes (rev)",
    # Proposals: their process, host instance, name and state (kept current by Create/Update).
    """
    CREATE TABLE proposals (
        id TEXT PRIMARY KEY,
        process_id TEXT NOT NULL,
        origin TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        version TEXT NOT NULL,
        document TEXT NOT NULL,
        fetched_at REAL NOT NULL,
        rev INTEGER NOT NULL
    )
    """,
    "CREATE INDEX proposals_rev ON proposals (rev)",
    "CREATE INDEX proposals_process ON proposals (process_id)",
    # Deliveries refused at the door, filed under the origin that authenticated them.
    """
    CREATE TABLE refusals (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        origin TEXT NOT NULL,
        activity_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (origin, activity_id, reason)
    )
    """,
)

_0004_PUBLISH_AND_MERGE = (
    # Every Tally the Service published (the signed Tally and its signed Create), oldest first;
    # the Service's outbox pages over `seq`. At most one final Tally per process, which keeps
    # the ids it counted (`counted`, a JSON list: its inputsDigest can be checked forever).
    """
    CREATE TABLE tallies (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        activity_id TEXT NOT NULL UNIQUE,
        process_id TEXT NOT NULL,
        final INTEGER NOT NULL CHECK (final IN (0, 1)),
        fingerprint TEXT NOT NULL,
        published_at REAL NOT NULL,
        document TEXT NOT NULL,
        activity TEXT NOT NULL,
        counted TEXT
    )
    """,
    "CREATE INDEX tallies_process ON tallies (process_id, seq)",
    "CREATE UNIQUE INDEX tallies_final ON tallies (process_id) WHERE final = 1",
    # Who follows the Service (a regional aggregator, a fediverse account): Tallies go to them.
    """
    CREATE TABLE followers (
        actor TEXT PRIMARY KEY,
        follow_id TEXT NOT NULL,
        inbox TEXT NOT NULL,
        created_at REAL NOT NULL
    )
    """,
    # Debates and comments merged from every route: one row per object id (DESIGN.md §7).
    # `context` is the thread (FEP-7888); `version` orders edits; the JSON is kept as received.
    """
    CREATE TABLE objects (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('debate', 'comment')),
        origin TEXT NOT NULL,
        author TEXT NOT NULL,
        process_id TEXT,
        in_reply_to TEXT,
        context TEXT,
        published TEXT NOT NULL,
        version TEXT NOT NULL,
        document TEXT NOT NULL,
        fetched_at REAL NOT NULL
    )
    """,
    "CREATE INDEX objects_context ON objects (context)",
    "CREATE INDEX objects_reply ON objects (in_reply_to)",
    "CREATE INDEX objects_process ON objects (process_id)",
    # Deleted ids (Tombstones), whatever arrived first: a deleted object is never shown.
    """
    CREATE TABLE deletions (
        object_id TEXT PRIMARY KEY,
        actor TEXT NOT NULL,
        activity_id TEXT NOT NULL,
        deleted_at REAL NOT NULL
    )
    """,
)

# Handled inbox rows keep their ids only (group_inbox.DONE_BODY): ingest stored what they
# carried. Rows marked done by earlier versions drop theirs here.
_0006_DONE_BODIES = ("UPDATE inbox_messages SET activity = '{}' WHERE state = 'done'",)

# Tallies took most of a city's database: each was stored twice (alone and inside its Create),
# and every provisional one was kept (a whole count per process every tally_debounce_seconds:
# 282 MB of a Barcelona aggregator's 542 MB after half an hour). Now the Create alone is kept
# (the Tally is read out of it, TallyRow.tally), and only each process's newest Tally and final
# one: the ids of those superseded are remembered, to answer 410 Gone.
_0008_TALLIES_KEPT = (
    """
    CREATE TABLE superseded_tallies (
        id TEXT PRIMARY KEY,
        activity_id TEXT NOT NULL UNIQUE,
        process_id TEXT NOT NULL,
        superseded_at REAL NOT NULL
    )
    """,
    """
    INSERT INTO superseded_tallies (id, activity_id, process_id, superseded_at)
    SELECT old.id, old.activity_id, old.process_id,
           (SELECT MIN(n.published_at) FROM tallies n
            WHERE n.process_id = old.process_id AND n.seq > old.seq)
    FROM tallies old
    WHERE old.final = 0
      AND EXISTS (SELECT 1 FROM tallies n WHERE n.process_id = old.process_id AND n.seq > old.seq)
    """,
    """
    DELETE FROM tallies
    WHERE final = 0 AND EXISTS (
        SELECT 1 FROM tallies n WHERE n.process_id = tallies.process_id AND n.seq > tallies.seq
    )
    """,
    "ALTER TABLE tallies DROP COLUMN document",
)

# A resident's stored actor document drops its @context (the same 3.5 KB for every actor of
# an instance: 115 MB of a Barcelona aggregator's residents table); nothing reads it as JSON-LD.
_0009_RESIDENTS_WITHOUT_CONTEXT = (
    """
    UPDATE residents SET document = json_remove(document, '$."@context"')
    WHERE json_valid(document) AND json_type(document, '$."@context"') IS NOT NULL
    """,
)

#: The aggregator's sequence: protocol tables, then its own. Versions 1..n, no gaps.
AGGREGATOR_MIGRATIONS: tuple[Migration, ...] = (
    *PROTOCOL_MIGRATIONS,
    Migration(2, "aggregator service actor keys", _0002_SERVICE_KEYS),
    Migration(3, "aggregator roster, follows, cursors, activities and caches", _0003_AGGREGATOR),
    Migration(
        4, "aggregator tallies, followers, merged debates and deletions", _0004_PUBLISH_AND_MERGE
    ),
    Migration(5, "one delivery body per activity", DELIVERY_BODIES),
    Migration(6, "handled inbox rows drop their bodies", _0006_DONE_BODIES),
    Migration(7, "deliveries claimed host by host", HOST_CLAIMS),
    Migration(8, "tallies stored once, the newest and final of each process", _0008_TALLIES_KEPT),
    Migration(9, "residents' actor documents without @context", _0009_RESIDENTS_WITHOUT_CONTEXT),
)
