"""The neighbourhood instance's accounts, census, tokens and actor keys over aiosqlite.

Implements the Protocols of :mod:`federation.instance.ports` on the server's shared connection
(see :func:`federation.store.sqlite.open_database` with ``INSTANCE_MIGRATIONS``). Every write
holds :func:`write_lock` or runs in :func:`transaction`; all SQL is parameterised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

from activitypub.collections import PageRequest
from federation.instance.ports import (
    CensusImport,
    ClaimOutcome,
    Role,
    StoredKeys,
    Token,
    TokenScope,
    User,
    Verification,
    VerificationMethod,
)
from federation.store.paging import page_rows
from federation.store.sqlite import transaction, write_lock

_USER_SELECT = (
    "SELECT u.id, u.username, u.display_name, u.password_hash, u.role, u.created_at,"
    " v.territory, v.method, v.verified_at, v.verified_by"
    " FROM users u LEFT JOIN verifications v ON v.user_id = u.id"
)
# The verified residents as a table with a ``seq`` (the account's id) for cursor paging.
_RESIDENTS = (
    "(SELECT u.id AS seq, u.id, u.username, u.display_name, u.password_hash, u.role,"
    " u.created_at, v.territory, v.method, v.verified_at, v.verified_by"
    " FROM users u JOIN verifications v ON v.user_id = u.id)"
)
_UPSERT_VERIFICATION = (
    "INSERT INTO verifications (user_id, territory, method, verified_at, verified_by)"
    " VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id) DO UPDATE SET territory = excluded.territory,"
    " method = excluded.method, verified_at = excluded.verified_at,"
    " verified_by = excluded.verified_by"
)


def _user(row: Sequence[Any]) -> User:
    verification = None
    if row[6] is not None:
        verification = Verification(
            territory=row[6],
            method=VerificationMethod(row[7]),
            verified_at=float(row[8]),
            verified_by=row[9],
        )
    return User(
        id=int(row[0]),
        username=row[1],
        display_name=row[2],
        password_hash=row[3],
        role=Role(row[4]),
        created_at=float(row[5]),
        verification=verification,
    )


class SqliteUserStore:
    """``UserStore``: the ``users`` and ``verifications`` tables."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def add_user(
        self, username: str, password_hash: str, role: Role, *, now: float
    ) -> User | None:
        """Insert an account; None when the username is taken."""
        async with write_lock(self._db):
            cursor = await self._db.execute(
                "INSERT INTO users (username, password_hash, role, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (username) DO NOTHING",
                (username, password_hash, str(role), now),
            )
            inserted = cursor.rowcount == 1
            await cursor.close()
        return await self.get_user(username) if inserted else None

    async def get_user(self, username: str) -> User | None:
        """The account with this username, with its verification."""
        rows = list(
            await self._db.execute_fetchall(_USER_SELECT + " WHERE u.username = ?", (username,))
        )
        return _user(rows[0]) if rows else None

    async def get_user_by_id(self, user_id: int) -> User | None:
        """The account with this internal id."""
        rows = list(await self._db.execute_fetchall(_USER_SELECT + " WHERE u.id = ?", (user_id,)))
        return _user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        """Every account, by username."""
        rows = await self._db.execute_fetchall(_USER_SELECT + " ORDER BY u.username")
        return [_user(row) for row in rows]

    async def count_users(self) -> int:
        """How many accounts exist."""
        rows = list(await self._db.execute_fetchall("SELECT COUNT(*) FROM users"))
        return int(rows[0][0])

    async def page_residents(self, page: PageRequest) -> tuple[list[User], str | None, str | None]:
        """One page of the verified residents, newest account first, and its cursors."""
        rows, after, before = await page_rows(
            self._db, table=_RESIDENTS, where="1 = 1", params=(), page=page,
            columns="seq, id, username, display_name, password_hash, role, created_at,"
            " territory, method, verified_at, verified_by",
        )  # fmt: skip
        return [_user(row[1:]) for row in rows], after, before

    async def count_residents(self) -> int:
        """How many accounts hold a verification."""
        rows = list(await self._db.execute_fetchall("SELECT COUNT(*) FROM verifications"))
        return int(rows[0][0])

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Replace the stored hash (after a rehash with stronger parameters)."""
        async with write_lock(self._db):
            await self._db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )

    async def set_verification(self, user_id: int, verification: Verification) -> None:
        """Record (or replace) the account's verification."""
        async with write_lock(self._db):
            await self._db.execute(_UPSERT_VERIFICATION, _verification_row(user_id, verification))


def _verification_row(user_id: int, v: Verification) -> tuple[Any, ...]:
    return (user_id, v.territory, str(v.method), v.verified_at, v.verified_by)


class SqliteCensusStore:
    """``CensusStore``: the ``census`` table of keyed identity hashes."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def import_hashes(
        self, entries: Sequence[tuple[str, str]], *, now: float
    ) -> CensusImport:
        """Add or update (identity hash, territory) pairs in one transaction."""
        added = updated = unchanged = 0
        async with transaction(self._db):
            for identity_hash, territory in dict(entries).items():
                rows = list(
                    await self._db.execute_fetchall(
                        "SELECT territory FROM census WHERE identity_hash = ?", (identity_hash,)
                    )
                )
                if not rows:
                    added += 1
                    await self._db.execute(
                        "INSERT INTO census (identity_hash, territory, imported_at)"
                        " VALUES (?, ?, ?)",
                        (identity_hash, territory, now),
                    )
                elif rows[0][0] != territory:
                    # A move within the city: a later claim verifies with the new territory.
                    updated += 1
                    await self._db.execute(
                        "UPDATE census SET territory = ?, imported_at = ? WHERE identity_hash = ?",
                        (territory, now, identity_hash),
                    )
                else:
                    unchanged += 1
        return CensusImport(added=added, updated=updated, unchanged=unchanged)

    async def claim(
        self, identity_hash: str, user_id: int, *, now: float
    ) -> tuple[ClaimOutcome, str | None]:
        """Atomically claim the identity and verify the account; the outcome and territory."""
        async with transaction(self._db):
            rows = list(
                await self._db.execute_fetchall(
                    "SELECT territory, claimed_by FROM census WHERE identity_hash = ?",
                    (identity_hash,),
                )
            )
            if not rows:
                return ClaimOutcome.NOT_IN_CENSUS, None
            territory, claimed_by = str(rows[0][0]), rows[0][1]
            outcome = await self._claim_outcome(identity_hash, user_id, claimed_by)
            if outcome is ClaimOutcome.CLAIMED:
                await self._db.execute(
                    "UPDATE census SET claimed_by = ?, claimed_at = ? WHERE identity_hash = ?",
                    (user_id, now, identity_hash),
                )
            if outcome in (ClaimOutcome.CLAIMED, ClaimOutcome.ALREADY_YOURS):
                verification = Verification(territory, VerificationMethod.CENSUS, now, None)
                await self._db.execute(
                    _UPSERT_VERIFICATION, _verification_row(user_id, verification)
                )
            return outcome, territory

    async def _claim_outcome(
        self, identity_hash: str, user_id: int, claimed_by: int | None
    ) -> ClaimOutcome:
        if claimed_by == user_id:
            return ClaimOutcome.ALREADY_YOURS
        if claimed_by is not None:
            return ClaimOutcome.CLAIMED_BY_OTHER
        other = await self._db.execute_fetchall(
            "SELECT 1 FROM census WHERE claimed_by = ? AND identity_hash <> ?",
            (user_id, identity_hash),
        )
        return ClaimOutcome.ACCOUNT_HAS_OTHER if list(other) else ClaimOutcome.CLAIMED

    async def count_census(self) -> int:
        """How many identities the census holds."""
        rows = list(await self._db.execute_fetchall("SELECT COUNT(*) FROM census"))
        return int(rows[0][0])


class SqliteTokenStore:
    """``TokenStore``: the ``access_tokens`` table (SHA-256 hashes only)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def add_token(
        self, token_hash: str, user_id: int, scope: TokenScope, *, now: float
    ) -> None:
        """Store a new token hash."""
        async with write_lock(self._db):
            await self._db.execute(
                "INSERT INTO access_tokens (token_hash, user_id, scope, created_at)"
                " VALUES (?, ?, ?, ?)",
                (token_hash, user_id, str(scope), now),
            )

    async def find_token(self, token_hash: str) -> Token | None:
        """The token with this hash, revoked or not."""
        rows = list(
            await self._db.execute_fetchall(
                "SELECT token_hash, user_id, scope, created_at, last_used_at, revoked_at"
                " FROM access_tokens WHERE token_hash = ?",
                (token_hash,),
            )
        )
        if not rows:
            return None
        row = rows[0]
        return Token(
            token_hash=row[0],
            user_id=int(row[1]),
            scope=TokenScope(row[2]),
            created_at=float(row[3]),
            last_used_at=None if row[4] is None else float(row[4]),
            revoked_at=None if row[5] is None else float(row[5]),
        )

    async def touch_token(self, token_hash: str, *, now: float) -> None:
        """Record a use of the token."""
        async with write_lock(self._db):
            await self._db.execute(
                "UPDATE access_tokens SET last_used_at = ? WHERE token_hash = ?", (now, token_hash)
            )

    async def revoke_token(self, token_hash: str, *, now: float) -> bool:
        """Revoke the token; False when there was no live token with that hash."""
        async with write_lock(self._db):
            cursor = await self._db.execute(
                "UPDATE access_tokens SET revoked_at = ?"
                " WHERE token_hash = ? AND revoked_at IS NULL",
                (now, token_hash),
            )
            changed = cursor.rowcount == 1
            await cursor.close()
        return changed


_KEYS = "SELECT actor_id, rsa_private_pem, ed25519_private_pem, created_at FROM actor_keys"


class SqliteActorKeyStore:
    """``ActorKeyStore``: the ``actor_keys`` table."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def get_keys(self, actor_id: str) -> StoredKeys | None:
        """The stored keys of the actor, if any."""
        rows = list(
            await self._db.execute_fetchall(
                "SELECT actor_id, rsa_private_pem, ed25519_private_pem, created_at"
                " FROM actor_keys WHERE actor_id = ?",
                (actor_id,),
            )
        )
        if not rows:
            return None
        row = rows[0]
        return StoredKeys(row[0], row[1], row[2], float(row[3]))

    async def get_keys_many(self, actor_ids: Sequence[str]) -> list[StoredKeys]:
        """The stored keys of those of the actors that have some (one query per 500)."""
        found: list[StoredKeys] = []
        for start in range(0, len(actor_ids), 500):
            chunk = actor_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"{_KEYS} WHERE actor_id IN ({marks})"
            rows = await self._db.execute_fetchall(sql, chunk)
            found += [StoredKeys(row[0], row[1], row[2], float(row[3])) for row in rows]
        return found

    async def add_keys(self, keys: StoredKeys) -> StoredKeys:
        """Store keys unless the actor has some already; returns whichever are stored."""
        async with write_lock(self._db):
            # Two processes (serve and an admin command) may generate at once: the first wins.
            await self._db.execute(
                "INSERT INTO actor_keys"
                " (actor_id, rsa_private_pem, ed25519_private_pem, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (actor_id) DO NOTHING",
                (keys.actor_id, keys.rsa_private_pem, keys.ed25519_private_pem, keys.created_at),
            )
        stored = await self.get_keys(keys.actor_id)
        if stored is None:
            raise RuntimeError(f"keys of {keys.actor_id} vanished after insert")
        return stored
