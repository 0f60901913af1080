"""What the instance's domain needs from storage: small Protocols and the records they return.

The aiosqlite implementations live in :mod:`federation.store.instance`; nothing here knows SQL.
Times are POSIX seconds (``float``), passed in by the caller so tests control the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from activitypub.collections import PageRequest


class Role(StrEnum):
    """What an account may do on its instance (Decidim: admin, moderator, participant)."""

    ADMIN = "admin"
    MODERATOR = "moderator"
    RESIDENT = "resident"


class VerificationMethod(StrEnum):
    """How residency was confirmed: a census identity claim, or an admin/moderator by hand."""

    CENSUS = "census"
    MANUAL = "manual"


class TokenScope(StrEnum):
    """What a personal access token allows: reading only, or acting for the resident."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Verification:
    """A confirmed residency: the territory code, how, when and by whom (DESIGN.md §3)."""

    territory: str
    method: VerificationMethod
    verified_at: float
    verified_by: str | None


@dataclass(frozen=True)
class User:
    """A local account; ``id`` is internal only (published ids use ``username``)."""

    id: int
    username: str
    display_name: str | None
    password_hash: str
    role: Role
    created_at: float
    verification: Verification | None = None

    @property
    def verified(self) -> bool:
        """True once residency has been confirmed."""
        return self.verification is not None


@dataclass(frozen=True)
class Token:
    """A personal access token as stored: its SHA-256, never the token itself."""

    token_hash: str
    user_id: int
    scope: TokenScope
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True)
class CensusImport:
    """What one census import changed: new identities, territory changes, unchanged rows."""

    added: int
    updated: int
    unchanged: int


class ClaimOutcome(StrEnum):
    """The result of claiming a census identity for an account."""

    CLAIMED = "claimed"
    ALREADY_YOURS = "already_yours"
    NOT_IN_CENSUS = "not_in_census"
    CLAIMED_BY_OTHER = "claimed_by_other"
    ACCOUNT_HAS_OTHER = "account_has_other"


@dataclass(frozen=True)
class StoredKeys:
    """A local actor's private keys as PKCS#8 PEM (RSA-2048 and Ed25519)."""

    actor_id: str
    rsa_private_pem: str
    ed25519_private_pem: str
    created_at: float


class UserStore(Protocol):
    """Accounts and their verification."""

    async def add_user(
        self, username: str, password_hash: str, role: Role, *, now: float
    ) -> User | None:
        """Insert an account; None when the username is taken."""
        ...

    async def get_user(self, username: str) -> User | None:
        """The account with this username, with its verification."""
        ...

    async def get_user_by_id(self, user_id: int) -> User | None:
        """The account with this internal id."""
        ...

    async def list_users(self) -> list[User]:
        """Every account, by username."""
        ...

    async def count_users(self) -> int:
        """How many accounts exist."""
        ...

    async def page_residents(self, page: PageRequest) -> tuple[list[User], str | None, str | None]:
        """One page of the verified residents, newest account first, with the next and
        previous cursors (``/residents``)."""
        ...

    async def count_residents(self) -> int:
        """How many accounts hold a verification."""
        ...

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Replace the stored hash (after a rehash with stronger parameters)."""
        ...

    async def set_verification(self, user_id: int, verification: Verification) -> None:
        """Record (or replace) the account's verification."""
        ...


class CensusStore(Protocol):
    """Keyed hashes of identity numbers, each claimable by one account."""

    async def import_hashes(
        self, entries: Sequence[tuple[str, str]], *, now: float
    ) -> CensusImport:
        """Add or update (identity hash, territory) pairs in one transaction."""
        ...

    async def claim(
        self, identity_hash: str, user_id: int, *, now: float
    ) -> tuple[ClaimOutcome, str | None]:
        """Atomically claim the identity and verify the account; the outcome and territory."""
        ...

    async def count_census(self) -> int:
        """How many identities the census holds."""
        ...


class TokenStore(Protocol):
    """Personal access tokens by hash."""

    async def add_token(
        self, token_hash: str, user_id: int, scope: TokenScope, *, now: float
    ) -> None:
        """Store a new token hash."""
        ...

    async def find_token(self, token_hash: str) -> Token | None:
        """The token with this hash, revoked or not."""
        ...

    async def touch_token(self, token_hash: str, *, now: float) -> None:
        """Record a use of the token."""
        ...

    async def revoke_token(self, token_hash: str, *, now: float) -> bool:
        """Revoke the token; False when there was no live token with that hash."""
        ...


class ActorKeyStore(Protocol):
    """Private keys of local actors."""

    async def get_keys(self, actor_id: str) -> StoredKeys | None:
        """The stored keys of the actor, if any."""
        ...

    async def get_keys_many(self, actor_ids: Sequence[str]) -> list[StoredKeys]:
        """The stored keys of those of the actors that have some."""
        ...

    async def add_keys(self, keys: StoredKeys) -> StoredKeys:
        """Store keys unless the actor has some already; returns whichever are stored."""
        ...
