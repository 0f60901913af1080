"""Online backup and restore of a server's SQLite file (DESIGN.md §8), for ``barri backup``.

:func:`backup` copies a live database through SQLite's online backup API in one step, under
one read transaction: in WAL mode the server keeps writing meanwhile and the copy is the
database exactly as it was at one instant, committed transactions only, never a torn file
(https://sqlite.org/backup.html). The copy is checked (``PRAGMA integrity_check``), made a
single self-contained file (rollback journal, not WAL), written 0600 (it holds the actors'
private keys) and renamed into place only when complete.

:func:`restore` puts a backup in place of a server's database. It refuses while the server
answers on its listen address, checks the backup (integrity, a Barri database of the same
kind), and keeps the database it replaces beside it as ``<name>.before-restore-<time>``
together with its WAL, so nothing is ever lost by a restore. Queued deliveries are part of the
database: a restored server sends what was pending at the time of the backup.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from federation.aggregator.config import config_kind, load_aggregator_config
from federation.config import load_config
from federation.config_values import CONFIG_FILE, ConfigError

#: A table only each kind of server has: a backup is restored onto a server of its own kind.
KIND_TABLES = {"instance": "users", "aggregator": "roster"}
_SIDE_FILES = ("-wal", "-shm", "-journal")
PROBE_TIMEOUT = 0.5


class BackupError(Exception):
    """A backup or restore cannot be done; the message is the one line the operator sees."""


@dataclass(frozen=True)
class Target:
    """The database of the server a config file describes, and where that server listens."""

    config: Path
    kind: str
    database: Path
    listen_host: str
    listen_port: int


@dataclass(frozen=True)
class Copied:
    """A finished copy: where it is, its size in bytes, and its row counts per table."""

    path: Path
    size: int
    rows: dict[str, int]


def target_of(config_path: Path) -> Target:
    """Read an instance's or an aggregator's config (``ConfigError`` if it is wrong)."""
    if config_kind(config_path) == "aggregator":
        agg = load_aggregator_config(config_path)
        return Target(config_path, "aggregator", agg.database, agg.listen_host, agg.listen_port)
    inst = load_config(config_path)
    return Target(config_path, "instance", inst.database, inst.listen_host, inst.listen_port)


def backup(target: Target, destination: Path, *, now: datetime | None = None) -> Copied:
    """Copy the live database to ``destination`` (a file, or a folder for a dated file)."""
    if not target.database.is_file():
        raise BackupError(f"there is no database at {target.database} to back up")
    if destination.is_dir():
        stamp = _stamp(now)
        destination = destination / f"{target.database.stem}-{target.kind}-{stamp}.sqlite3"
    if destination.resolve() == target.database.resolve():
        raise BackupError(f"{destination} is the live database itself; choose another path")
    with _connect(target.database, "the database") as source:
        _copy_into(source, destination)
    return _describe(destination)


def restore(target: Target, source: Path, *, now: datetime | None = None) -> Copied:
    """Replace the server's database by the backup ``source``; the server must be stopped."""
    if server_running(target.listen_host, target.listen_port):
        raise BackupError(
            f"the server is running (it answers on {target.listen_host}:{target.listen_port});"
            " stop it before restoring"
        )
    if not source.is_file():
        raise BackupError(f"there is no backup file at {source}")
    check_backup(source, target.kind)
    database = target.database
    database.parent.mkdir(parents=True, exist_ok=True)
    staged = database.with_name(f".{database.name}.restoring-{os.getpid()}")
    with _connect(source, "the backup") as backup_db:
        _copy_into(backup_db, staged)
    if database.exists():
        _set_aside(database, f"before-restore-{_stamp(now)}")
    os.replace(staged, database)
    return _describe(database)


def check_backup(path: Path, kind: str) -> None:
    """Refuse a file that is not an intact Barri database of ``kind`` (one line says why)."""
    with _connect(path, "the backup") as db:
        try:
            verdict = db.execute("PRAGMA integrity_check").fetchone()
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{path} is not a readable SQLite database ({exc})") from exc
    if verdict is None or verdict[0] != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check: {verdict}")
    if "schema_migrations" not in names:
        raise BackupError(f"{path} is not a Barri database (no schema_migrations table)")
    found = next((k for k, table in KIND_TABLES.items() if table in names), None)
    if found != kind:
        what = f"an {found}'s" if found else "an unknown server's"
        raise BackupError(f"{path} is {what} database, not an {kind}'s")


def server_running(host: str, port: int) -> bool:
    """True when something accepts connections on the server's listen address."""
    # A wildcard address is reached through loopback.
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    try:
        with socket.create_connection((probe, port), timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _connect(path: Path, what: str) -> Iterator[sqlite3.Connection]:
    """A connection to an existing file (sqlite3 would create a missing one)."""
    if not path.is_file():
        raise BackupError(f"{what} {path} does not exist")
    try:
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {what} {path}: {exc}") from exc
    try:
        yield db
    finally:
        db.close()


def _copy_into(source: sqlite3.Connection, destination: Path) -> None:
    """Online-backup ``source`` into a new file, checked, then renamed to ``destination``."""
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)  # created 0600 before SQLite writes a byte of it
        copy = sqlite3.connect(partial, isolation_level=None)
        try:
            # pages=-1: every page in one step, under one read transaction: a snapshot that
            # concurrent writers (other connections, in WAL mode) never make restart.
            source.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            verdict = copy.execute("PRAGMA integrity_check").fetchone()
        finally:
            copy.close()
        if verdict is None or verdict[0] != "ok":
            raise BackupError(f"the copy failed SQLite's integrity check: {verdict}")
        _fsync(partial)
        os.replace(partial, destination)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy into {destination}: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"cannot write {destination}: {exc.strerror}") from exc
    finally:
        partial.unlink(missing_ok=True)


def _set_aside(database: Path, suffix: str) -> None:
    """Rename the database and its WAL/SHM files together (a WAL belongs to its database)."""
    for side in ("", *_SIDE_FILES):
        current = database.with_name(database.name + side)
        if current.exists():
            current.rename(database.with_name(f"{database.name}.{suffix}{side}"))


def _describe(path: Path) -> Copied:
    with _connect(path, "the copy") as db:
        tables = [
            str(row[0])
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        count = 'SELECT COUNT(*) FROM "{}"'  # table names read from sqlite_master itself
        rows = {t: int(db.execute(count.format(t)).fetchone()[0]) for t in tables}
    return Copied(path, path.stat().st_size, rows)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


# --- command line ----------------------------------------------------------------------------


def add_backup_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``barri backup --config FILE --to PATH`` and ``barri restore --config FILE --from PATH``."""
    config_help = f"the server's config file (default: ./{CONFIG_FILE})"
    save = sub.add_parser(
        "backup",
        help="copy a server's database while it runs (instance or aggregator)",
        description="Copy the database of the server FILE describes, safely while it runs."
        " Keep barri.toml too: its secret is needed to use the copy.",
    )
    save.add_argument("--config", type=Path, default=Path(CONFIG_FILE), metavar="FILE",
                      help=config_help)  # fmt: skip
    save.add_argument("--to", type=Path, required=True, metavar="PATH",
                      help="the backup file to write, or a folder for a dated file")  # fmt: skip
    save.set_defaults(run=_backup_command)
    load = sub.add_parser(
        "restore",
        help="put a backup in place of a stopped server's database",
        description="Replace the database of the server FILE describes by a backup. Stop the"
        " server first; the database it replaces is kept beside it (.before-restore-<time>).",
    )
    load.add_argument("--config", type=Path, default=Path(CONFIG_FILE), metavar="FILE",
                      help=config_help)  # fmt: skip
    load.add_argument("--from", dest="source", type=Path, required=True, metavar="PATH",
                      help="the backup file written by `barri backup`")  # fmt: skip
    load.set_defaults(run=_restore_command)


def _summary(copied: Copied) -> str:
    shown = ("users", "proposals", "supports", "comments", "roster", "activities", "deliveries")
    counts = ", ".join(f"{copied.rows[t]} {t}" for t in shown if t in copied.rows)
    return f"{copied.path} ({copied.size:,} bytes; {counts})"


def _backup_command(args: argparse.Namespace) -> int:
    try:
        copied = backup(target_of(args.config), args.to)
    except (BackupError, ConfigError) as exc:
        print(f"barri: error: {exc}", file=sys.stderr)
        return 1
    print(f"backed up to {_summary(copied)}")
    return 0


def _restore_command(args: argparse.Namespace) -> int:
    try:
        target = target_of(args.config)
        copied = restore(target, args.source)
    except (BackupError, ConfigError) as exc:
        print(f"barri: error: {exc}", file=sys.stderr)
        return 1
    print(f"restored {_summary(copied)}; start the server with: barri serve --config {args.config}")
    return 0
