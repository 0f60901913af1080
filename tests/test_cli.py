"""The ``barri`` command: init and admin in-process, serve as a real process on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from federation.cli import main
from federation.config import load_config
from federation.instance.accounts import TokenOwner
from federation.instance.wiring import open_instance

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
AS2 = "application/activity+json"


@pytest.fixture(autouse=True)
def _no_barri_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BARRI_"):
            monkeypatch.delenv(name)


def init(directory: Path, port: int = 8080, *extra: str) -> int:
    return main(
        [
            "init",
            "instance",
            "--dir",
            str(directory),
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--name",
            "AV Raval",
            "--territory",
            "08019-01",
            "--allow-loopback",
            "--listen",
            f"127.0.0.1:{port}",
            *extra,
        ]
    )


@pytest.fixture
def config_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert init(tmp_path / "raval") == 0
    capsys.readouterr()
    return tmp_path / "raval" / "barri.toml"


def admin(config_path: Path, *args: str, stdin: str | None = None) -> int:
    if stdin is None:
        return main(["admin", "--config", str(config_path), *args])
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return main(["admin", "--config", str(config_path), *args])
    finally:
        sys.stdin = saved


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("barri: error: ")
    return lines[0]


def create(config_path: Path, username: str, *flags: str) -> int:
    return admin(config_path, "create-user", username, "--password-stdin", *flags, stdin=PASSWORD)


def test_init_writes_a_config_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "new" / "raval"
    assert init(directory, 8080, "--report-to", "http://127.0.0.1:9/actor") == 0
    assert "barri serve --config" in capsys.readouterr().out
    config = load_config(directory / "barri.toml", environ={})
    assert config.base_url == "http://127.0.0.1:8080"
    assert config.report_to == ("http://127.0.0.1:9/actor",)
    assert len(config.secret) >= 32
    assert init(directory) == 1
    assert "already exists" in one_error_line(capsys)
    assert init(directory, 8080, "--force") == 0
    assert load_config(directory / "barri.toml", environ={}).secret != config.secret


def test_init_refuses_http_without_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "init",
            "instance",
            "--dir",
            str(tmp_path),
            "--base-url",
            "http://x.example",
            "--name",
            "X",
        ]
    )
    assert code == 1
    assert "base_url" in one_error_line(capsys)
    assert not (tmp_path / "barri.toml").exists()


def test_create_user_with_password_on_stdin(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert create(config_path, "alice", "--admin") == 0
    assert "/users/alice" in capsys.readouterr().out
    assert create(config_path, "bob", "--moderator") == 0
    assert create(config_path, "carla") == 0
    capsys.readouterr()
    assert admin(config_path, "list-users") == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert table == [
        ["USERNAME", "ROLE", "VERIFIED", "TERRITORY"],
        ["alice", "admin", "-"],
        ["bob", "moderator", "-"],
        ["carla", "resident", "-"],
    ]


def test_create_user_prompts_twice(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert admin(config_path, "create-user", "alice") == 1
    assert "differ" in one_error_line(capsys)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "short")
    assert admin(config_path, "create-user", "alice") == 1
    assert "at least 10 characters" in one_error_line(capsys)
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert admin(config_path, "create-user", "alice") == 0


def test_create_user_without_password_asks_nothing(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("asked for a password")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    assert admin(config_path, "create-user", "maria", "--no-password") == 0
    assert "created resident maria" in capsys.readouterr().out
    assert admin(config_path, "token", "create", "maria") == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("barri_pat_")
    flags = ("--no-password", "--password-stdin")
    with pytest.raises(SystemExit):
        admin(config_path, "create-user", "pau", *flags)


def test_account_errors_are_one_line(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert admin(config_path, "create-user", "alice", "--password-stdin", stdin="weak\n") == 1
    assert "at least 10 characters" in one_error_line(capsys)
    assert admin(config_path, "verify", "nobody", "--territory", "08019-01") == 1
    assert "no user named 'nobody'" in one_error_line(capsys)
    assert admin(config_path, "token", "create", "nobody") == 1
    assert "nobody" in one_error_line(capsys)
    assert create(config_path, "Not Valid") == 1
    assert "invalid username" in one_error_line(capsys)


def test_config_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert admin(tmp_path / "missing.toml", "list-users") == 1
    assert "no such file" in one_error_line(capsys)
    bad = tmp_path / "barri.toml"
    bad.write_text('kind = "instance"\nbase_url = "https://x.example"\nname = "X"\nsecret = "s"\n')
    assert admin(bad, "list-users") == 1
    line = one_error_line(capsys)
    assert "secret" in line and str(bad) in line
    assert main(["serve", "--config", str(bad)]) == 1
    assert "secret" in one_error_line(capsys)


def test_verify_and_census(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create(config_path, "alice")
    create(config_path, "bob")
    create(config_path, "carla")
    assert admin(config_path, "verify", "carla", "--territory", "08019-03") == 0
    census = tmp_path / "census.csv"
    census.write_text("id_number,territory\n1234-5678 z,08019-01\n,08019-01\nY1,08019-02\n")
    capsys.readouterr()
    assert admin(config_path, "census", "import", str(census)) == 0
    out = capsys.readouterr().out
    assert "2 rows read, 2 new" in out and "1 skipped (lines 3)" in out
    assert admin(config_path, "census", "claim", "alice", "12345678Z") == 0
    assert "08019-01 (census)" in capsys.readouterr().out
    assert admin(config_path, "census", "claim", "bob", "12345678-z") == 1
    assert "already verified another account" in one_error_line(capsys)
    assert admin(config_path, "list-users") == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [
        ["alice", "resident", "08019-01"],
        ["bob", "resident", "-"],
        ["carla", "resident", "08019-03"],
    ]
    assert b"12345678Z" not in b"".join(
        p.read_bytes() for p in config_path.parent.glob("*.sqlite3*")
    )


def test_unreadable_census_csv(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert admin(config_path, "census", "import", str(tmp_path / "nope.csv")) == 1
    assert "cannot read the census CSV" in one_error_line(capsys)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("dni,barri\n1,2\n")
    assert admin(config_path, "census", "import", str(wrong)) == 1
    assert "id_number,territory" in one_error_line(capsys)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"id_number,territory\n\xff\xfe,1\n")
    assert admin(config_path, "census", "import", str(binary)) == 1
    assert "not UTF-8" in one_error_line(capsys)


def test_token_is_the_last_line_and_works(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create(config_path, "alice")
    capsys.readouterr()
    assert admin(config_path, "token", "create", "alice", "--scope", "read") == 0
    token = capsys.readouterr().out.splitlines()[-1]
    assert token.startswith("barri_pat_")

    async def lookup(value: str) -> TokenOwner | None:
        async with open_instance(load_config(config_path, environ={})) as instance:
            return await instance.accounts.authenticate_token(value)

    owner = asyncio.run(lookup(token))
    assert owner is not None and owner.user.username == "alice" and owner.scope == "read"
    assert asyncio.run(lookup(token[:-2] + "xx")) is None


# --- serve, as a real process ----------------------------------------------------------------


def _http_get(url: str, accept: str = "*/*") -> tuple[int, bytes]:
    # No proxies: these requests must go straight to 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Accept": accept})
    with opener.open(request, timeout=30) as response:
        return response.status, response.read()


def _serve(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "federation.cli", "serve", "--config", str(config_path)]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BARRI_")}


def test_serve_runs_answers_and_stops_on_sigint(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    port = unused_tcp_port_factory()
    assert init(tmp_path, port) == 0
    config_path = tmp_path / "barri.toml"
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        _serve(config_path),
        cwd=REPO,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stderr is not None
        with ThreadPoolExecutor(1) as pool:
            ready = pool.submit(server.stdout.readline).result(timeout=120)
        assert f"on {base}" in ready
        assert _http_get(base + "/healthz") == (200, b'{"status": "ok", "database": "ok"}')
        status, body = _http_get(base + "/groups/av_raval", accept=AS2)
        group = json.loads(body)
        assert (status, group["id"], group["type"]) == (200, base + "/groups/av_raval", "Group")

        second = subprocess.run(
            _serve(config_path),
            cwd=REPO,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode != 0
        assert second.stderr.splitlines() == [
            f"barri: error: cannot listen on 127.0.0.1:{port}: Address already in use"
        ]

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=120) == 0
        assert "Traceback" not in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
