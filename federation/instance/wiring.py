"""One instance's stores, accounts and actors over its SQLite file, for the app and the CLI."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiosqlite

from federation.config import InstanceConfig
from federation.instance.accounts import Accounts
from federation.instance.actors import ActorDocumentHook, LocalActors
from federation.serving import StartupError
from federation.store.instance import (
    SqliteActorKeyStore,
    SqliteCensusStore,
    SqliteTokenStore,
    SqliteUserStore,
)
from federation.store.migrations import INSTANCE_MIGRATIONS
from federation.store.sqlite import SchemaError, open_database


@dataclass(frozen=True)
class Instance:
    """What one instance's code shares: config, database connection, accounts and actors."""

    config: InstanceConfig
    db: aiosqlite.Connection
    users: SqliteUserStore
    accounts: Accounts
    actors: LocalActors


async def _open(config: InstanceConfig) -> aiosqlite.Connection:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        return await open_database(config.database, migrations=INSTANCE_MIGRATIONS)
    except (OSError, sqlite3.Error, SchemaError, ValueError) as exc:
        raise StartupError(f"cannot open the database {config.database}: {exc}") from exc


@asynccontextmanager
async def open_instance(
    config: InstanceConfig, *, document_hook: ActorDocumentHook | None = None
) -> AsyncIterator[Instance]:
    """Open the database (applying migrations), wire the stores, close it at the end (§8)."""
    db = await _open(config)
    try:
        users = SqliteUserStore(db)
        actors = LocalActors(config, SqliteActorKeyStore(db), users, document_hook=document_hook)
        accounts = Accounts(
            users,
            SqliteCensusStore(db),
            SqliteTokenStore(db),
            secret=config.secret,
            reserved=actors.reserved_usernames,
        )
        yield Instance(config, db, users, accounts, actors)
    finally:
        await db.close()
