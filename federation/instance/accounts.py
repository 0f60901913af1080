"""Residents' accounts: usernames, argon2id passwords, roles, verification, census and tokens.

Decidim's rules carry over (DESIGN.md §3, ../shared/reference/decidim.md): a resident is
*verified* when the association confirms residency, by hand or by claiming a census identity;
the census keeps only keyed hashes (HMAC-SHA256 with the instance secret) of identity numbers,
and one identity verifies one account (Decidim's ``unique_id``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from federation.config_values import TERRITORY_CODE
from federation.instance.ports import (
    CensusImport,
    CensusStore,
    ClaimOutcome,
    Role,
    TokenScope,
    TokenStore,
    User,
    UserStore,
    Verification,
    VerificationMethod,
)

if TYPE_CHECKING:
    from argon2 import PasswordHasher

USERNAME = re.compile(r"^[a-z0-9_]{1,30}$")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything, but a megabyte "password" is an attack
# Not an argon2 hash, so every login with a password fails (like "!" in /etc/shadow).
LOCKED_PASSWORD = "!locked"  # noqa: S105
TOKEN_PREFIX = "barri_pat_"  # noqa: S105 (a public prefix, like GitHub's ghp_)
_TOKEN = re.compile(r"^barri_pat_[A-Za-z0-9_-]{43}$")
#: A token's last use is written at most this often (seconds): a write per request would cost
#: every C2S act a second transaction for a date nobody needs to the second.
TOUCH_INTERVAL = 60.0
_CENSUS_COLUMNS = ("id_number", "territory")


class AccountError(Exception):
    """A refused account operation; the message is one line a person can act on."""


class UnknownUser(AccountError):
    """No account has this username."""


class CensusRefused(AccountError):
    """A census claim that cannot verify the account; the message says which rule refused it."""


@dataclass(frozen=True)
class TokenOwner:
    """The account a valid personal access token acts for, and what it may do."""

    user: User
    scope: TokenScope


@dataclass(frozen=True)
class CensusRows:
    """Rows read from a census CSV: (normalised id number, territory), and skipped line numbers."""

    rows: list[tuple[str, str]]
    skipped: list[int]


def check_username(username: str) -> str:
    """The username as stored (lowercase, ``[a-z0-9_]{1,30}``), or AccountError."""
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise AccountError(
            f"invalid username {username!r}: use 1-30 lowercase letters, digits or _"
        )
    return name


def check_password(password: str) -> None:
    """Refuse passwords shorter than 10 characters (OWASP: length over composition rules)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password too weak: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"password too long: at most {MAX_PASSWORD_LENGTH} characters")


def check_territory(code: str) -> str:
    """A territory code as the config accepts it, or AccountError."""
    text = code.strip()
    if not TERRITORY_CODE.match(text):
        raise AccountError(f"invalid territory code {code!r}")
    return text


def normalise_id_number(id_number: str) -> str:
    """An identity document number without spaces or dashes, upper case (``12345678-z`` → ...Z)."""
    return re.sub(r"[\s\-]+", "", id_number).upper()


def census_hash(secret: str, id_number: str) -> str:
    """HMAC-SHA256(secret, normalised id number), hex: what the census stores instead of it."""
    message = normalise_id_number(id_number).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def new_token() -> str:
    """A fresh personal access token: ``barri_pat_`` and 32 random bytes in base64url."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    return TOKEN_PREFIX + raw


def token_hash(token: str) -> str:
    """The SHA-256 hex of a token: all the store keeps (a random 256-bit token needs no salt)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_census_csv(lines: Iterable[str]) -> CensusRows:
    """Read ``id_number,territory`` CSV rows; rows with an empty or bad value are skipped."""
    import csv  # only the census import (an admin's command or page) reads CSV

    reader = csv.DictReader(lines)
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in _CENSUS_COLUMNS if name not in header]
    if missing:
        raise AccountError(
            f"census CSV needs the columns id_number,territory (missing: {', '.join(missing)})"
        )
    reader.fieldnames = header
    rows: list[tuple[str, str]] = []
    skipped: list[int] = []
    for record in reader:
        id_number = normalise_id_number(record.get("id_number") or "")
        territory = (record.get("territory") or "").strip()
        if id_number and TERRITORY_CODE.match(territory):
            rows.append((id_number, territory))
        else:
            skipped.append(reader.line_num)
    return CensusRows(rows, skipped)


class Accounts:
    """The account rules over the stores; every refusal is an :class:`AccountError`."""

    def __init__(
        self,
        users: UserStore,
        census: CensusStore,
        tokens: TokenStore,
        *,
        secret: str,
        reserved: Collection[str] = (),
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users, self.census, self.tokens = users, census, tokens
        self._secret = secret
        self._reserved = frozenset(reserved)
        self._given_hasher = hasher
        self._clock = clock

    @functools.cached_property
    def _hasher(self) -> PasswordHasher:
        """argon2id with RFC 9106's low-memory profile, built by the first password handled."""
        if self._given_hasher is not None:
            return self._given_hasher
        # Imported here: argon2-cffi is not needed until someone registers or logs in.
        from argon2 import PasswordHasher

        return PasswordHasher()

    async def create_user(
        self, username: str, password: str | None, role: Role = Role.RESIDENT
    ) -> User:
        """Register an account with an argon2id password hash (OWASP password storage);
        ``None``: a locked password that no login matches (tokens only)."""
        name = check_username(username)
        if name in self._reserved:
            raise AccountError(f"the username {name!r} is reserved on this instance")
        if password is None:
            hashed = LOCKED_PASSWORD
        else:
            check_password(password)
            # argon2 is deliberately slow: hash off the event loop.
            hashed = await asyncio.to_thread(self._hasher.hash, password)
        user = await self.users.add_user(name, hashed, role, now=self._clock())
        if user is None:
            raise AccountError(f"the username {name!r} is already taken")
        return user

    async def get(self, username: str) -> User:
        """The account, or UnknownUser."""
        user = await self.users.get_user(username.strip().lower())
        if user is None:
            raise UnknownUser(f"no user named {username!r}")
        return user

    async def login(self, username: str, password: str) -> User | None:
        """The account when the password matches, else None (same answer for unknown users)."""
        user = await self.users.get_user(username.strip().lower())
        if user is None:
            return None
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            await asyncio.to_thread(self._hasher.verify, user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if self._hasher.check_needs_rehash(user.password_hash):
            rehashed = await asyncio.to_thread(self._hasher.hash, password)
            await self.users.set_password_hash(user.id, rehashed)
        return user

    async def verify(self, username: str, territory: str, *, by: str | None) -> User:
        """Confirm residency by hand (an admin or moderator, or the operator's CLI)."""
        user = await self.get(username)
        verification = Verification(
            check_territory(territory), VerificationMethod.MANUAL, self._clock(), by
        )
        await self.users.set_verification(user.id, verification)
        return await self.get(user.username)

    async def import_census(self, rows: Iterable[tuple[str, str]]) -> CensusImport:
        """Store the keyed hash of each (id number, territory) row; never the number itself."""
        entries = [(census_hash(self._secret, number), territory) for number, territory in rows]
        return await self.census.import_hashes(entries, now=self._clock())

    async def claim_census(self, username: str, id_number: str) -> User:
        """Verify an account by its census identity; one identity verifies one account."""
        user = await self.get(username)
        if not normalise_id_number(id_number):
            raise CensusRefused("the identity number is empty")
        identity = census_hash(self._secret, id_number)
        outcome, _ = await self.census.claim(identity, user.id, now=self._clock())
        if outcome is ClaimOutcome.NOT_IN_CENSUS:
            raise CensusRefused("this identity number is not in the census")
        if outcome is ClaimOutcome.CLAIMED_BY_OTHER:
            raise CensusRefused("this identity already verified another account (one per person)")
        if outcome is ClaimOutcome.ACCOUNT_HAS_OTHER:
            raise CensusRefused(f"{user.username} is already verified with another identity")
        return await self.get(user.username)

    async def create_token(self, username: str, scope: TokenScope = TokenScope.WRITE) -> str:
        """A new personal access token for the account; only its hash is stored."""
        user = await self.get(username)
        token = new_token()
        await self.tokens.add_token(token_hash(token), user.id, scope, now=self._clock())
        return token

    async def authenticate_token(self, token: str) -> TokenOwner | None:
        """The account and scope of a live token, or None (malformed, unknown or revoked)."""
        if not _TOKEN.match(token):
            return None
        found = await self.tokens.find_token(token_hash(token))
        if found is None or found.revoked_at is not None:
            return None
        user = await self.users.get_user_by_id(found.user_id)
        if user is None:
            return None
        now = self._clock()
        if found.last_used_at is None or now - found.last_used_at >= TOUCH_INTERVAL:
            await self.tokens.touch_token(found.token_hash, now=now)
        return TokenOwner(user, found.scope)

    async def revoke_token(self, token: str) -> bool:
        """Revoke a token; False when it was unknown or already revoked."""
        return await self.tokens.revoke_token(token_hash(token), now=self._clock())

    async def list_users(self) -> list[User]:
        """Every account, by username."""
        return await self.users.list_users()
