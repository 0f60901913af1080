"""Accounts on a real SQLite file: argon2id, roles, verification, the keyed census, tokens."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from argon2 import PasswordHasher

from federation.instance.accounts import (
    TOUCH_INTERVAL,
    AccountError,
    Accounts,
    CensusRefused,
    UnknownUser,
    census_hash,
    normalise_id_number,
    parse_census_csv,
    token_hash,
)
from federation.instance.ports import Role, TokenScope, VerificationMethod
from federation.store.instance import SqliteCensusStore, SqliteTokenStore, SqliteUserStore
from federation.store.migrations import INSTANCE_MIGRATIONS
from federation.store.sqlite import applied_versions, open_database

SECRET = "census-key-" + "k" * 32
PASSWORD = "correct horse battery"
ID_NUMBER = "12345678Z"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "barri.sqlite3"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await open_database(db_path, migrations=INSTANCE_MIGRATIONS)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(db: aiosqlite.Connection, clock: Clock) -> Accounts:
    return Accounts(
        SqliteUserStore(db),
        SqliteCensusStore(db),
        SqliteTokenStore(db),
        secret=SECRET,
        reserved=("raval", "localhost"),
        clock=clock,
    )


def _file_bytes(db_path: Path) -> bytes:
    # The main file and the WAL: a committed row may still live only in the latter.
    return b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))


async def test_instance_migrations_apply(db: aiosqlite.Connection) -> None:
    assert await applied_versions(db) == [m.version for m in INSTANCE_MIGRATIONS]
    assert INSTANCE_MIGRATIONS[0].version == 1 and len(INSTANCE_MIGRATIONS) >= 3


async def test_password_is_stored_as_argon2id(accounts: Accounts, db_path: Path) -> None:
    user = await accounts.create_user("alice", PASSWORD)
    assert user.password_hash.startswith("$argon2id$")
    assert user.role is Role.RESIDENT and not user.verified
    assert PASSWORD.encode() not in _file_bytes(db_path)
    assert await accounts.login("alice", PASSWORD) == user
    assert await accounts.login("ALICE", PASSWORD) == user


async def test_an_account_without_password_never_signs_in(accounts: Accounts) -> None:
    user = await accounts.create_user("tokenonly", None)
    assert not user.password_hash.startswith("$argon2")
    for attempt in ("", "!locked", user.password_hash, PASSWORD):
        assert await accounts.login("tokenonly", attempt) is None
    owner = await accounts.authenticate_token(await accounts.create_token("tokenonly"))
    assert owner is not None and owner.user == user


async def test_wrong_password_and_unknown_user_are_refused(accounts: Accounts) -> None:
    await accounts.create_user("alice", PASSWORD)
    assert await accounts.login("alice", PASSWORD + "!") is None
    assert await accounts.login("alice", "") is None
    assert await accounts.login("nobody", PASSWORD) is None


async def test_weaker_hash_is_upgraded_at_login(db: aiosqlite.Connection, clock: Clock) -> None:
    users = SqliteUserStore(db)
    stores = (users, SqliteCensusStore(db), SqliteTokenStore(db))
    weak = Accounts(*stores, secret=SECRET, hasher=PasswordHasher(time_cost=1, memory_cost=64))
    await weak.create_user("alice", PASSWORD)
    strong = Accounts(*stores, secret=SECRET)
    before = (await strong.get("alice")).password_hash
    assert await strong.login("alice", PASSWORD) is not None
    after = (await strong.get("alice")).password_hash
    assert after != before and after.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(after)


@pytest.mark.parametrize("password", ["", "short", "123456789"])
async def test_weak_passwords_are_refused(accounts: Accounts, password: str) -> None:
    with pytest.raises(AccountError, match="at least 10 characters"):
        await accounts.create_user("alice", password)
    assert await accounts.list_users() == []


@pytest.mark.parametrize("username", ["", "al ice", "alice!", "a" * 31, "àlex", "a.b"])
async def test_invalid_usernames_are_refused(accounts: Accounts, username: str) -> None:
    with pytest.raises(AccountError, match="invalid username"):
        await accounts.create_user(username, PASSWORD)


async def test_usernames_are_lowercase_unique_and_not_reserved(accounts: Accounts) -> None:
    user = await accounts.create_user("Alice_1", PASSWORD, Role.ADMIN)
    assert user.username == "alice_1" and user.role is Role.ADMIN
    with pytest.raises(AccountError, match="already taken"):
        await accounts.create_user("ALICE_1", PASSWORD)
    with pytest.raises(AccountError, match="reserved"):
        await accounts.create_user("raval", PASSWORD)
    assert [u.username for u in await accounts.list_users()] == ["alice_1"]


async def test_manual_verification(accounts: Accounts, clock: Clock) -> None:
    await accounts.create_user("alice", PASSWORD)
    user = await accounts.verify("alice", "08019-01", by="admin")
    assert user.verification is not None
    assert user.verification.territory == "08019-01"
    assert user.verification.method is VerificationMethod.MANUAL
    assert (user.verification.verified_at, user.verification.verified_by) == (clock.now, "admin")
    with pytest.raises(AccountError, match="invalid territory"):
        await accounts.verify("alice", "no spaces allowed", by="admin")
    with pytest.raises(UnknownUser, match="nobody"):
        await accounts.verify("nobody", "08019-01", by="admin")


def test_id_numbers_are_normalised_and_keyed() -> None:
    assert normalise_id_number(" 1234-5678 z\t") == "12345678Z"
    expected = hmac.new(SECRET.encode(), b"12345678Z", hashlib.sha256).hexdigest()
    assert census_hash(SECRET, "1234 5678-z") == expected
    assert census_hash(SECRET + "x", ID_NUMBER) != expected


async def test_one_identity_verifies_one_account(accounts: Accounts, db_path: Path) -> None:
    report = await accounts.import_census([(ID_NUMBER, "08019-01"), ("X1234567L", "08019-02")])
    assert (report.added, report.updated, report.unchanged) == (2, 0, 0)
    await accounts.create_user("alice", PASSWORD)
    await accounts.create_user("bob", PASSWORD)
    alice = await accounts.claim_census("alice", "1234-5678-z")
    assert alice.verification is not None
    assert alice.verification.method is VerificationMethod.CENSUS
    assert alice.verification.territory == "08019-01"
    with pytest.raises(CensusRefused, match="already verified another account"):
        await accounts.claim_census("bob", ID_NUMBER)
    assert not (await accounts.get("bob")).verified
    # Claiming again is harmless; claiming a second identity is not allowed.
    assert (await accounts.claim_census("alice", ID_NUMBER)).verified
    with pytest.raises(CensusRefused, match="another identity"):
        await accounts.claim_census("alice", "X1234567L")
    with pytest.raises(CensusRefused, match="not in the census"):
        await accounts.claim_census("bob", "00000000T")
    assert (await accounts.claim_census("bob", "x1234567-l")).verification is not None


async def test_census_stores_the_hash_not_the_number(
    accounts: Accounts, db: aiosqlite.Connection, db_path: Path
) -> None:
    await accounts.import_census([(ID_NUMBER, "08019-01")])
    await accounts.create_user("alice", PASSWORD)
    await accounts.claim_census("alice", ID_NUMBER)
    stored = _file_bytes(db_path)
    assert census_hash(SECRET, ID_NUMBER).encode() in stored  # the probe can see the data
    for form in (ID_NUMBER, "12345678", "1234-5678"):
        assert form.encode() not in stored
    await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert ID_NUMBER.encode() not in _file_bytes(db_path)


async def test_census_import_counts_moves_and_repeats(accounts: Accounts) -> None:
    await accounts.import_census([(ID_NUMBER, "08019-01")])
    report = await accounts.import_census([(ID_NUMBER, "08019-02"), ("Y7654321G", "08019-01")])
    assert (report.added, report.updated, report.unchanged) == (1, 1, 0)
    again = await accounts.import_census([(ID_NUMBER, "08019-02")])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)
    await accounts.create_user("alice", PASSWORD)
    user = await accounts.claim_census("alice", ID_NUMBER)
    assert user.verification is not None and user.verification.territory == "08019-02"


def test_census_csv_is_parsed_and_bad_rows_are_skipped() -> None:
    text = "ID_Number, Territory\n1234-5678 z,08019-01\n,08019-01\nX1,bad code\nY2,08019-02\n"
    parsed = parse_census_csv(text.splitlines(True))
    assert parsed.rows == [("12345678Z", "08019-01"), ("Y2", "08019-02")]
    assert parsed.skipped == [3, 4]
    with pytest.raises(AccountError, match="missing: territory"):
        parse_census_csv(["id_number,district\n", "1,2\n"])


async def test_tokens_are_stored_hashed_and_authenticate(
    accounts: Accounts, db: aiosqlite.Connection, db_path: Path, clock: Clock
) -> None:
    await accounts.create_user("alice", PASSWORD)
    token = await accounts.create_token("alice", TokenScope.READ)
    assert re.fullmatch(r"barri_pat_[A-Za-z0-9_-]{43}", token)
    rows = list(await db.execute_fetchall("SELECT token_hash, scope FROM access_tokens"))
    assert [tuple(r) for r in rows] == [(hashlib.sha256(token.encode()).hexdigest(), "read")]
    assert token_hash(token) == rows[0][0]
    assert token.encode() not in _file_bytes(db_path)
    clock.now += 60
    owner = await accounts.authenticate_token(token)
    assert owner is not None and owner.user.username == "alice" and owner.scope is TokenScope.READ
    found = await SqliteTokenStore(db).find_token(token_hash(token))
    assert found is not None and found.last_used_at == clock.now


async def test_a_tokens_last_use_is_written_at_most_once_a_minute(
    accounts: Accounts, db: aiosqlite.Connection, clock: Clock
) -> None:
    await accounts.create_user("alice", PASSWORD)
    token = await accounts.create_token("alice", TokenScope.WRITE)
    store = SqliteTokenStore(db)
    first = clock.now
    assert await accounts.authenticate_token(token) is not None
    clock.now += TOUCH_INTERVAL - 1
    assert await accounts.authenticate_token(token) is not None  # still authenticates
    found = await store.find_token(token_hash(token))
    assert found is not None and found.last_used_at == first
    clock.now += 1
    assert await accounts.authenticate_token(token) is not None
    found = await store.find_token(token_hash(token))
    assert found is not None and found.last_used_at == clock.now


async def test_forged_and_revoked_tokens_are_refused(accounts: Accounts) -> None:
    await accounts.create_user("alice", PASSWORD)
    token = await accounts.create_token("alice")
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert await accounts.authenticate_token(flipped) is None
    assert await accounts.authenticate_token("not a token") is None
    assert await accounts.authenticate_token(token) is not None
    assert await accounts.revoke_token(token) is True
    assert await accounts.authenticate_token(token) is None
    assert await accounts.revoke_token(token) is False
    with pytest.raises(UnknownUser):
        await accounts.create_token("nobody")
