"""``barri backup`` / ``barri restore`` on a real server, during writes, with deliveries pending.

A ``barri serve`` process has a follower on a peer node (``tests.apnode``) that then goes
down; residents keep proposing through the forms while ``barri backup`` copies the database
from another process. The server stops, the backup is restored into a fresh folder (with the
same barri.toml) and served again: every proposal made before the backup is there, residents
log in with their passwords, and the deliveries that were waiting for the peer go out to it
once it is back. Restore refuses while a server answers, and refuses foreign files.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from activitypub.runtime import FEDERATION
from federation.backup import (
    BackupError,
    Target,
    backup,
    check_backup,
    restore,
    server_running,
    target_of,
)
from federation.demo_web import Browser
from tests.apnode import NodeState, make_app

PASSWORD = "correct horse battery"
AS2 = "application/activity+json"


async def barri(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run ``barri ARGS`` in a subprocess: (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "federation.cli", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate(stdin.encode() if stdin else None)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def ok(*args: str, stdin: str | None = None) -> str:
    code, out, err = await barri(*args, stdin=stdin)
    assert code == 0, err
    return out


@asynccontextmanager
async def serving(config: Path, base_url: str) -> AsyncIterator[None]:
    """``barri serve`` as a real process, until the block ends (SIGINT, clean exit)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "federation.cli", "serve", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                try:
                    async with session.get(base_url + "/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        yield
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        _out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()


@asynccontextmanager
async def peer_up(state: NodeState, port: int) -> AsyncIterator[TestServer]:
    """The peer node on its port (the same actors and keys each time it comes up)."""
    state.handled.clear()
    server = TestServer(make_app(state), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def draft() -> dict[str, Any]:
    """A process open now for proposals, for residents of neighbourhood 01."""
    now = datetime.now(UTC)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "type": ["Page", "ParticipatoryProcess"],
        "name": "Pressupost del Raval",
        "phases": [
            {"type": "Phase", "name": "Propostes",
             "startTime": (now - timedelta(days=1)).strftime(stamp),
             "endTime": (now + timedelta(days=30)).strftime(stamp),
             "allowsProposals": True, "allowsSupports": True, "allowsComments": True,
             "allowsDebates": False},
        ],
        "supportRules": {"type": "SupportRules", "supportsPerParticipant": 3},
        "eligibleTerritories": [{"type": "Territory", "territoryKind": "neighbourhood",
                                 "territoryCode": "01", "districtCode": "01"}],
    }  # fmt: skip


def pending_to(database: Path, host: str) -> list[tuple[str, int]]:
    """(activity id, attempts) of the deliveries still waiting for ``host``, read-only."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT activity_id, attempts FROM deliveries WHERE state = 'new' AND host = ?",
            (host,),
        ).fetchall()
    finally:
        db.close()
    return [(str(a), int(n)) for a, n in rows]


async def wait_until(check: Callable[[], bool], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


class Posting:
    """Residents proposing in a loop until stopped; remembers when each proposal was made."""

    def __init__(self, residents: list[Browser], process: str) -> None:
        self.residents, self.process = residents, process
        self.made: list[tuple[float, str]] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            resident = self.residents[n % len(self.residents)]
            proposal = await resident.propose(self.process, f"Proposta {n}", f"Text {n}.")
            self.made.append((time.monotonic(), proposal))
            n += 1

    async def stop(self) -> None:
        self._stop.set()
        await self._task


async def follow_group(peer: TestServer, state: NodeState, inbox: str, group: str) -> None:
    follow = {"@context": "https://www.w3.org/ns/activitystreams",
              "id": f"{state.origin}/follows/1", "type": "Follow",
              "actor": state.actor_id("bob"), "object": group}  # fmt: skip
    await peer.app[FEDERATION].deliver(follow, [inbox])


async def followers(session: aiohttp.ClientSession, group: str) -> int:
    async with session.get(group + "/followers", headers={"Accept": AS2}) as response:
        return int((await response.json())["totalItems"])


async def test_backup_during_writes_restores_everything_and_resumes_deliveries(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    port, peer_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    base, peer_host = f"http://127.0.0.1:{port}", f"127.0.0.1:{peer_port}"
    config = tmp_path / "live" / "barri.toml"
    await ok("init", "instance", "--dir", str(config.parent), "--base-url", base,
             "--name", "AV Raval", "--group", "avraval", "--territory", "01",
             "--district", "01", "--allow-loopback", "--listen", f"127.0.0.1:{port}")  # fmt: skip
    admin_cli = ("admin", "--config", str(config))
    await ok(*admin_cli, "create-user", "admin", "--admin", "--password-stdin", stdin=PASSWORD)
    (tmp_path / "process.json").write_text(json.dumps(draft()))
    out = await ok(*admin_cli, "process", "create", "--file", str(tmp_path / "process.json"))
    process, group = out.strip().splitlines()[-1], f"{base}/groups/avraval"
    peer = NodeState(origin=f"http://{peer_host}", db_path=tmp_path / "peer.sqlite3")
    for actor in ("instance", "alice", "bob"):
        peer.add_actor(actor)
    saved = tmp_path / "backup.sqlite3"
    residents = [Browser(base, name) for name in ("ana", "pau")]
    admin = Browser(base, "admin")
    try:
        async with serving(config, base), aiohttp.ClientSession() as session:
            async with peer_up(peer, peer_port) as node:
                await follow_group(node, peer, f"{base}/inbox", group)
                await wait_until_async(lambda: followers(session, group), 1)
            # The peer is down from here on: the Group's Announces to bob wait in the queue.
            await admin.login(PASSWORD)
            for resident in residents:
                await resident.register(PASSWORD)
                await admin.verify(resident.username, "01")
            posting = Posting(residents, process)
            database = config.parent / "barri.sqlite3"
            # Past the breaker's threshold (10 failures): later rows wait, never attempted.
            await wait_until(
                lambda: (
                    sum(1 for _a, n in pending_to(database, peer_host) if n == 0) >= 3
                    and sum(1 for _a, n in pending_to(database, peer_host) if n > 0) >= 10
                ),
                "deliveries waiting for the peer",
            )
            started = time.monotonic()
            made_before = [proposal for when, proposal in posting.made if when < started]
            saved_out = await ok("backup", "--config", str(config), "--to", str(saved))
            assert saved_out.startswith(f"backed up to {saved} (")
            count = len(posting.made)
            await wait_until(lambda: len(posting.made) > count + 2, "writes after the backup")
            await posting.stop()
            # While the server runs, restore refuses in one line and changes nothing.
            code, _out, err = await barri("restore", "--config", str(config), "--from", str(saved))
            assert code == 1 and len(err.splitlines()) == 1
            assert "the server is running" in err and database.exists()
        waiting = pending_to(saved, peer_host)
        fresh = tmp_path / "restored" / "barri.toml"
        fresh.parent.mkdir()
        shutil.copy(config, fresh)  # the config travels with its backup: same ids, same secret
        restored_out = await ok("restore", "--config", str(fresh), "--from", str(saved))
        assert restored_out.startswith(f"restored {fresh.parent / 'barri.sqlite3'} (")
        async with peer_up(peer, peer_port), serving(fresh, base):
            for proposal in made_before:
                await assert_served(proposal)
            await Browser(base, "pau").login(PASSWORD)  # accounts and the secret came back
            due_now = {activity for activity, attempts in waiting if attempts == 0}
            await wait_until(
                lambda: due_now <= {r.activity["id"] for r in peer.handled},
                "the waiting deliveries reaching the peer",
            )
            later = {a for a, n in waiting if n > 0}
            still = {a for a, _n in pending_to(fresh.parent / "barri.sqlite3", peer_host)}
            sent = {r.activity["id"] for r in peer.handled}
            assert later <= still | sent  # retried ones keep their schedule; none is lost
    finally:
        for browser in (*residents, admin):
            await browser.close()


async def wait_until_async(read: Callable[[], Any], expected: object) -> None:
    deadline = time.monotonic() + 60
    while (value := await read()) != expected:
        assert time.monotonic() < deadline, f"{value} != {expected}"
        await asyncio.sleep(0.1)


async def assert_served(object_id: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(object_id, headers={"Accept": AS2}) as response:
            assert response.status == 200, object_id
            assert (await response.json())["id"] == object_id
        async with session.get(object_id, headers={"Accept": "text/html"}) as response:
            assert response.status == 200 and "text/html" in response.content_type


# -- refusals, without a server ----------------------------------------------------------------


def _target(tmp_path: Path, kind: str = "instance", port: int = 9) -> Target:
    return Target(tmp_path / "barri.toml", kind, tmp_path / "barri.sqlite3", "127.0.0.1", port)


def _barri_db(path: Path, table: str) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
    db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, note TEXT)")
    db.execute(f"INSERT INTO {table} (note) VALUES ('before')")
    db.commit()
    db.close()


def test_restore_refuses_foreign_files_and_keeps_the_replaced_database(tmp_path: Path) -> None:
    target = _target(tmp_path)
    (tmp_path / "notes.sqlite3").write_bytes(b"not a database at all, just text" * 100)
    with pytest.raises(BackupError, match="not a readable SQLite database"):
        check_backup(tmp_path / "notes.sqlite3", "instance")
    _barri_db(tmp_path / "aggregator.sqlite3", "roster")
    with pytest.raises(BackupError, match="an aggregator's database, not an instance's"):
        restore(target, tmp_path / "aggregator.sqlite3")
    _barri_db(target.database, "users")
    copy = backup(target, tmp_path / "copy.sqlite3")
    assert copy.rows["users"] == 1 and oct(copy.path.stat().st_mode & 0o777) == "0o600"
    db = sqlite3.connect(target.database)
    db.execute("INSERT INTO users (note) VALUES ('after')")
    db.commit()
    db.close()
    restored = restore(target, copy.path)
    assert restored.rows["users"] == 1
    kept = list(tmp_path.glob("barri.sqlite3.before-restore-*"))
    assert len(kept) == 1
    assert sqlite3.connect(kept[0]).execute("SELECT COUNT(*) FROM users").fetchone() == (2,)


async def test_restore_refuses_while_something_answers_on_the_listen_port(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    port = unused_tcp_port_factory()
    _barri_db(tmp_path / "saved.sqlite3", "users")
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    async with server:
        assert server_running("127.0.0.1", port) and server_running("0.0.0.0", port)
        with pytest.raises(BackupError, match="the server is running"):
            restore(_target(tmp_path, port=port), tmp_path / "saved.sqlite3")
    assert not (tmp_path / "barri.sqlite3").exists()


def test_target_reads_either_kind_of_config(tmp_path: Path) -> None:
    from federation.cli import main

    base, listen = "http://127.0.0.1:8700", "127.0.0.1:8700"
    args = ["init", "aggregator", "--dir", str(tmp_path / "a"), "--base-url", base]
    assert main([*args, "--allow-loopback", "--listen", listen]) == 0
    target = target_of(tmp_path / "a" / "barri.toml")
    assert (target.kind, target.listen_port) == ("aggregator", 8700)
    assert target.database == tmp_path / "a" / "barri.sqlite3"


def run_script(name: str, *args: Path) -> subprocess.CompletedProcess[str]:
    """Run deploy/NAME with sh, ``barri`` being this interpreter's federation.cli."""
    environment = {"PATH": "/usr/bin:/bin", "BARRI": f"{sys.executable} -m federation.cli",
                   "KEEP": "1", "PYTHONPATH": ":".join(sys.path)}  # fmt: skip
    script = Path(__file__).resolve().parent.parent / "deploy" / name
    command = ["sh", str(script), *map(str, args)]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)


def test_the_deploy_scripts_back_up_prune_and_restore(tmp_path: Path) -> None:
    from federation.cli import main

    config = tmp_path / "gracia" / "barri.toml"
    args = ["init", "instance", "--dir", str(config.parent), "--base-url", "http://127.0.0.1:9"]
    assert main([*args, "--name", "AV Gràcia", "--allow-loopback"]) == 0
    _barri_db(config.parent / "barri.sqlite3", "users")
    dest = tmp_path / "backups"
    (dest / "gracia").mkdir(parents=True)
    stale = dest / "gracia" / "gracia-20000101T000000Z.sqlite3"
    stale.write_bytes(b"an old copy")
    done = run_script("backup.sh", dest, config)
    assert done.returncode == 0, done.stderr
    [copy] = (dest / "gracia").glob("gracia-*.sqlite3")  # KEEP=1: the old copy is gone
    assert copy != stale and (dest / "gracia" / "barri.toml").read_bytes() == config.read_bytes()
    db = sqlite3.connect(config.parent / "barri.sqlite3")
    db.execute("INSERT INTO users (note) VALUES ('after the backup')")
    db.commit()
    db.close()
    done = run_script("restore.sh", config, copy)
    assert done.returncode == 0, done.stderr
    restored = sqlite3.connect(config.parent / "barri.sqlite3")
    assert restored.execute("SELECT note FROM users").fetchall() == [("before",)]
    restored.close()
    assert len(list(config.parent.glob("barri.sqlite3.before-restore-*"))) == 1
    failed = run_script("backup.sh", dest, tmp_path / "none.toml")
    assert failed.returncode == 1 and "none.toml" in failed.stderr
