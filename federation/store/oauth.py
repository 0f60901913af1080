"""OAuth 2.0 grants, codes and tokens, cached client metadata and residents' client keys (SQL).

Only hashes of codes and tokens are stored (SHA-256: they are 256-bit random values, so no salt
is needed), never the values themselves. A *grant* is one consent of a resident to one client
for some scopes; its authorization code and every access and refresh token it produced hang
from it, so revoking the grant (a reused code, a replayed refresh token, a revoked refresh
token) ends them all at once. Writes hold the connection's write lock (DESIGN.md §8).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from federation.store.domain import fetch_int, fetch_one
from federation.store.sqlite import transaction, write_lock


@dataclass(frozen=True)
class CodeRecord:
    """An authorization code as stored, with its grant's user, client and scope."""

    grant_id: str
    user_id: int
    client_id: str
    scope: str
    redirect_uri: str
    code_challenge: str
    expires_at: float
    used_before: bool


@dataclass(frozen=True)
class TokenRecord:
    """An access or refresh token as stored, with its grant (``None`` grant fields: none)."""

    token_hash: str
    grant_id: str
    kind: str
    user_id: int
    client_id: str
    scope: str
    expires_at: float
    used_at: float | None
    revoked: bool
    last_used_at: float | None = None


@dataclass(frozen=True)
class ClientKeyRecord:
    """A resident's registered client key (FEP-521a Multikey held only by their client)."""

    key_id: str
    user_id: int
    name: str
    public_key_multibase: str
    created_at: float


_SELECT_TOKENS = (
    "SELECT t.token_hash, t.grant_id, t.kind, g.user_id, g.client_id, t.scope, t.expires_at,"
    " t.used_at, (t.revoked_at IS NOT NULL OR g.revoked_at IS NOT NULL), t.last_used_at"
    " FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id"
)


def _token(row: Sequence[Any]) -> TokenRecord:
    return TokenRecord(
        token_hash=str(row[0]), grant_id=str(row[1]), kind=str(row[2]), user_id=int(row[3]),
        client_id=str(row[4]), scope=str(row[5]), expires_at=float(row[6]),
        used_at=None if row[7] is None else float(row[7]), revoked=bool(row[8]),
        last_used_at=None if row[9] is None else float(row[9]),
    )  # fmt: skip


class OAuthStore:
    """SQL for ``oauth_clients``, ``oauth_grants``, ``oauth_codes`` and ``oauth_tokens``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # --- client metadata documents (a cache) ---------------------------------------------------

    async def get_client(self, client_id: str) -> tuple[dict[str, Any], float, float] | None:
        """A cached client document with when it was fetched and when it expires."""
        row = await fetch_one(
            self.db,
            "SELECT document, fetched_at, expires_at FROM oauth_clients WHERE client_id = ?",
            (client_id,),
        )
        if row is None:
            return None
        document = json.loads(row[0])
        return (document if isinstance(document, dict) else {}), float(row[1]), float(row[2])

    async def put_client(
        self, client_id: str, document: Mapping[str, Any], *, now: float, expires_at: float
    ) -> None:
        """Cache (or refresh) a client's metadata document."""
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        async with write_lock(self.db):
            await self.db.execute(
                "INSERT INTO oauth_clients (client_id, document, fetched_at, expires_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET"
                " document = excluded.document, fetched_at = excluded.fetched_at,"
                " expires_at = excluded.expires_at",
                (client_id, text, now, expires_at),
            )

    # --- grants and codes ----------------------------------------------------------------------

    async def add_grant(
        self,
        grant_id: str,
        *,
        user_id: int,
        client_id: str,
        scope: str,
        code_hash: str,
        redirect_uri: str,
        code_challenge: str,
        now: float,
        code_expires_at: float,
    ) -> None:
        """A resident's consent and its one authorization code, in one transaction."""
        async with transaction(self.db):
            await self.db.execute(
                "INSERT INTO oauth_grants (id, user_id, client_id, scope, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (grant_id, user_id, client_id, scope, now),
            )
            await self.db.execute(
                "INSERT INTO oauth_codes (code_hash, grant_id, redirect_uri, code_challenge,"
                " expires_at) VALUES (?, ?, ?, ?, ?)",
                (code_hash, grant_id, redirect_uri, code_challenge, code_expires_at),
            )

    async def consume_code(self, code_hash: str, *, now: float) -> CodeRecord | None:
        """Mark a code used (first use wins, atomically); None when there is no such code."""
        async with write_lock(self.db):
            fresh = list(
                await self.db.execute_fetchall(
                    "UPDATE oauth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL"
                    " RETURNING code_hash",
                    (now, code_hash),
                )
            )
        row = await fetch_one(
            self.db,
            "SELECT c.grant_id, g.user_id, g.client_id, g.scope, c.redirect_uri,"
            " c.code_challenge, c.expires_at FROM oauth_codes c"
            " JOIN oauth_grants g ON g.id = c.grant_id WHERE c.code_hash = ?",
            (code_hash,),
        )
        if row is None:
            return None
        return CodeRecord(
            grant_id=str(row[0]), user_id=int(row[1]), client_id=str(row[2]), scope=str(row[3]),
            redirect_uri=str(row[4]), code_challenge=str(row[5]), expires_at=float(row[6]),
            used_before=not fresh,
        )  # fmt: skip

    async def revoke_grant(self, grant_id: str, *, now: float) -> None:
        """End a grant: every token it produced stops working."""
        async with write_lock(self.db):
            await self.db.execute(
                "UPDATE oauth_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, grant_id),
            )

    # --- tokens -------------------------------------------------------------------------------

    async def add_tokens(
        self, grant_id: str, tokens: Sequence[tuple[str, str, float]], *, scope: str, now: float
    ) -> None:
        """Store ``(hash, kind, expires_at)`` tokens of a grant in one transaction."""
        async with transaction(self.db):
            for token_hash, kind, expires_at in tokens:
                await self.db.execute(
                    "INSERT INTO oauth_tokens (token_hash, grant_id, kind, scope, created_at,"
                    " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (token_hash, grant_id, kind, scope, now, expires_at),
                )

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        """A token by hash, revoked or not."""
        row = await fetch_one(self.db, _SELECT_TOKENS + " WHERE t.token_hash = ?", (token_hash,))
        return None if row is None else _token(row)

    async def use_refresh_token(self, token_hash: str, *, now: float) -> bool:
        """Mark a refresh token rotated; False when it was already used (a replay)."""
        async with write_lock(self.db):
            rows = await self.db.execute_fetchall(
                "UPDATE oauth_tokens SET used_at = ? WHERE token_hash = ? AND kind = 'refresh'"
                " AND used_at IS NULL RETURNING token_hash",
                (now, token_hash),
            )
        return bool(list(rows))

    async def revoke_token(self, token_hash: str, *, now: float) -> None:
        """Revoke one token (an access token; a refresh token's caller revokes its grant)."""
        async with write_lock(self.db):
            await self.db.execute(
                "UPDATE oauth_tokens SET revoked_at = ? WHERE token_hash = ?"
                " AND revoked_at IS NULL",
                (now, token_hash),
            )

    async def touch_token(self, token_hash: str, *, now: float) -> None:
        """Record a use of an access token."""
        async with write_lock(self.db):
            await self.db.execute(
                "UPDATE oauth_tokens SET last_used_at = ? WHERE token_hash = ?", (now, token_hash)
            )

    async def count_live_tokens(self, user_id: int, *, now: float) -> int:
        """Unexpired, unrevoked tokens of a resident (for tests and the operator)."""
        return await fetch_int(
            self.db,
            "SELECT COUNT(*) FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id"
            " WHERE g.user_id = ? AND t.revoked_at IS NULL AND g.revoked_at IS NULL"
            " AND t.expires_at > ? AND t.used_at IS NULL",
            (user_id, now),
        )


class ClientKeyStore:
    """SQL for ``client_keys``: public keys residents registered for their own clients."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def add_key(self, record: ClientKeyRecord) -> bool:
        """Register a key; False when its id (the resident's key name) is already taken."""
        async with write_lock(self.db):
            cursor = await self.db.execute(
                "INSERT INTO client_keys (key_id, user_id, name, public_key_multibase,"
                " created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id) DO NOTHING",
                (record.key_id, record.user_id, record.name, record.public_key_multibase,
                 record.created_at),
            )  # fmt: skip
            added = cursor.rowcount == 1
            await cursor.close()
        return added

    async def keys_of(self, user_id: int) -> list[ClientKeyRecord]:
        """A resident's live client keys, oldest first."""
        rows = await self.db.execute_fetchall(
            "SELECT key_id, user_id, name, public_key_multibase, created_at FROM client_keys"
            " WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at, key_id",
            (user_id,),
        )
        return [
            ClientKeyRecord(str(r[0]), int(r[1]), str(r[2]), str(r[3]), float(r[4])) for r in rows
        ]

    async def revoke_key(self, key_id: str, user_id: int, *, now: float) -> bool:
        """Take a key out of the actor's ``assertionMethod``; False when there was none."""
        async with write_lock(self.db):
            cursor = await self.db.execute(
                "UPDATE client_keys SET revoked_at = ? WHERE key_id = ? AND user_id = ?"
                " AND revoked_at IS NULL",
                (now, key_id, user_id),
            )
            revoked = cursor.rowcount == 1
            await cursor.close()
        return revoked
