"""``barri admin process create --file`` and ``barri admin process list``, in-process."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from federation.cli import main
from federation.config import load_config
from federation.instance.wiring import open_instance
from federation.store.domain import DomainStore
from federation.store.outbox import OutboxStore
from tests.instance_fixtures import process_draft


@pytest.fixture(autouse=True)
def _no_barri_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BARRI_"):
            monkeypatch.delenv(name)


@pytest.fixture
def config_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    directory = tmp_path / "raval"
    args = ["init", "instance", "--dir", str(directory), "--base-url", "http://127.0.0.1:8080",
            "--name", "AV Raval", "--territory", "01", "--allow-loopback"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    return directory / "barri.toml"


def write_draft(tmp_path: Path, draft: Any, name: str = "process.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(draft, ensure_ascii=False), encoding="utf-8")
    return path


def process(config_path: Path, *args: str) -> int:
    return main(["admin", "--config", str(config_path), "process", *args])


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("barri: error: ")
    return lines[0]


def test_create_prints_the_iri_last_and_list_shows_it(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        process(config_path, "create", "--file", str(write_draft(tmp_path, process_draft()))) == 0
    )
    out = capsys.readouterr().out.splitlines()
    iri = out[-1]
    assert iri.startswith("http://127.0.0.1:8080/processes/") and " " not in iri
    assert "Pressupostos participatius 2027" in out[0]

    async def stored() -> tuple[str, str, list[str]]:
        async with open_instance(load_config(config_path, environ={})) as instance:
            record = await DomainStore(instance.db).get_process(iri)
            assert record is not None and record.local
            activities = await OutboxStore(instance.db).activities_about(iri)
            return record.process.owner, instance.actors.group_id, [a.type for a in activities]

    owner, group, kinds = asyncio.run(stored())
    assert owner == group and kinds == ["Create"]
    assert process(config_path, "list") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["IRI", "OWNER", "PROPOSALS", "NAME"]
    assert table[1].split()[:3] == [iri, "local", "0"]
    assert table[1].endswith("Pressupostos participatius 2027")


def test_list_with_no_processes_prints_the_header(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert process(config_path, "list") == 0
    assert capsys.readouterr().out.split() == ["IRI", "OWNER", "PROPOSALS", "NAME"]


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: d.pop("phases"), "phases"),
        (lambda d: d.update(id="http://127.0.0.1:8080/processes/mine"), "id"),
        (lambda d: d["phases"][0].update(endTime="2020-01-01T00:00:00Z"), "phases[0].endTime"),
        (lambda d: d["supportRules"].update(supportsPerParticipant=-1), "supportsPerParticipant"),
        (lambda d: d.update(name="x" * 151), "name"),
    ],
)
def test_a_bad_process_is_one_error_line_naming_the_field(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, named: str
) -> None:
    draft = process_draft()
    edit(draft)
    assert process(config_path, "create", "--file", str(write_draft(tmp_path, draft))) == 1
    line = one_error_line(capsys)
    assert named in line, line
    assert process(config_path, "list") == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # nothing was created


def test_unreadable_or_malformed_files(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert process(config_path, "create", "--file", str(tmp_path / "missing.json")) == 1
    assert "cannot read the process file" in one_error_line(capsys)
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",\n  "phases": [}', encoding="utf-8")
    assert process(config_path, "create", "--file", str(broken)) == 1
    assert "not valid JSON" in (line := one_error_line(capsys)) and "line 2" in line
    assert process(config_path, "create", "--file", str(write_draft(tmp_path, [1, 2]))) == 1
    assert "document: must be a JSON object" in one_error_line(capsys)
