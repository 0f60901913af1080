"""One neighbourhood instance set up once through the ``barri`` CLI, copied for every run.

Setting up residents costs an RSA key each (about 60 ms of CLI time per resident), so the
instance is built once per shape (residents, proposals) under a cache folder and copied:

- ``barri init instance`` on a fixed loopback port (ids embed it, so every copy serves there);
- per resident ``barri admin create-user NAME --no-password``, ``verify`` and ``token create``,
  through :mod:`benchmarks.citysim.cliworker` (two workers at a time);
- ``barri admin process create``: one open phase with proposals, supports and comments;
- ``barri serve`` once, to create the proposals over C2S (``Create{Proposal}`` to residents'
  outboxes), then stopped: the copy starts with them in place.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from federation.demo_data import Place, process_draft

ROOT = Path(__file__).resolve().parents[2]
TERRITORY, DISTRICT = "0101", "01"
VERSION = 1  # bump when the template's shape changes
AS2 = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


@dataclass(frozen=True)
class Template:
    """A built instance: its folder, port, residents' tokens, process and proposals."""

    directory: Path
    port: int
    tokens: dict[str, str]
    process: str
    proposals: list[str]

    @property
    def base_url(self) -> str:
        """The instance's origin."""
        return f"http://127.0.0.1:{self.port}"

    def actor(self, name: str) -> str:
        """A resident's actor id."""
        return f"{self.base_url}/users/{name}"


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:PORT can be bound now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``barri``: no operator ``BARRI_*`` overrides, the repo on path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARRI_")}
    env["PYTHONPATH"] = str(ROOT)
    return env | extra


async def load_or_build(cache: Path, residents: int, proposals: int, limit: int) -> Template:
    """The cached template for this shape, built first when missing or its port is taken."""
    folder = cache / f"v{VERSION}-r{residents}-p{proposals}-l{limit}"
    meta = folder / "meta.json"
    if meta.exists():
        data = json.loads(meta.read_text())
        if port_is_free(int(data["port"])):
            return Template(
                folder / "instance",
                int(data["port"]),
                data["tokens"],
                data["process"],
                data["proposals"],
            )
        print(f"c2s: port {data['port']} of the cached template is taken; rebuilding", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    template = await _build(folder, residents, proposals, limit)
    meta.write_text(
        json.dumps(
            {
                "port": template.port,
                "tokens": template.tokens,
                "process": template.process,
                "proposals": template.proposals,
            }
        )
    )
    return template


async def _build(folder: Path, residents: int, proposals: int, limit: int) -> Template:
    port, directory = free_port(), folder / "instance"
    config = str(directory / "barri.toml")
    base = f"http://127.0.0.1:{port}"
    await run_commands(
        [
            {
                "argv": [
                    "init",
                    "instance",
                    "--dir",
                    str(directory),
                    "--base-url",
                    base,
                    "--name",
                    "Bench",
                    "--group",
                    "bench",
                    "--territory",
                    TERRITORY,
                    "--territory-kind",
                    "neighbourhood",
                    "--district",
                    DISTRICT,
                    "--report-to",
                    "http://127.0.0.1:9/actor",
                    "--allow-loopback",
                    "--listen",
                    f"127.0.0.1:{port}",
                ]
            }
        ]
    )
    names = [f"r{i:05d}" for i in range(residents)]
    admin = ["admin", "--config", config]
    chunks = [names[i::2] for i in range(2)]
    outputs = await asyncio.gather(
        *(
            run_commands(
                [
                    cmd
                    for name in chunk
                    for cmd in (
                        {"argv": [*admin, "create-user", name, "--no-password"]},
                        {"argv": [*admin, "verify", name, "--territory", TERRITORY]},
                        {"argv": [*admin, "token", "create", name, "--scope", "write"]},
                    )
                ]
            )
            for chunk in chunks
        )
    )
    tokens = {
        name: out[3 * i + 2].strip().splitlines()[-1]
        for chunk, out in zip(chunks, outputs, strict=True)
        for i, name in enumerate(chunk)
    }
    place = Place("bench", "Bench", "Bench", "bench", TERRITORY, "neighbourhood", DISTRICT, ())
    draft = process_draft(place, datetime.now(UTC))
    draft["supportRules"]["supportsPerParticipant"] = limit
    draft_path = folder / "process.json"
    draft_path.write_text(json.dumps(draft))
    created = await run_commands(
        [{"argv": [*admin, "process", "create", "--file", str(draft_path)]}]
    )
    process = created[0].strip().splitlines()[-1]
    template = Template(directory, port, tokens, process, [])
    server = await start_server(template, report_to="http://127.0.0.1:9/actor")
    try:
        await wait_healthy(template.base_url, server)
        template.proposals.extend(await _create_proposals(template, names, proposals))
    finally:
        await stop_server(server)
    return template


async def run_commands(commands: list[dict[str, Any]]) -> list[str]:
    """Each ``barri`` command's output, run in one worker process (CliWorker protocol)."""
    pipe = asyncio.subprocess.PIPE
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.citysim.cliworker",
        stdin=pipe,
        stdout=pipe,
        stderr=pipe,
        cwd=ROOT,
        env=clean_env(),
    )
    out, err = await worker.communicate(json.dumps(commands).encode())
    if worker.returncode != 0:
        raise BenchError(f"setup failed: {err.decode(errors='replace').strip()[-500:]}")
    result: list[str] = json.loads(out)
    return result


async def start_server(
    template: Template, *, report_to: str, profile_to: Path | None = None, code: Path = ROOT
) -> asyncio.subprocess.Process:
    """``barri serve`` of the template (under :mod:`benchmarks.profiled` when ``profile_to``).

    ``code``: the checkout whose ``federation`` runs (another worktree, to compare versions).
    """
    config = str(template.directory / "barri.toml")
    head = ["-m", "federation.cli"]
    if profile_to is not None:
        head = [str(Path(__file__).parents[1] / "profiled.py"), str(profile_to)]
    log = (template.directory / "serve.log").open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *head,
            "serve",
            "--config",
            config,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=code,
            env=clean_env(BARRI_REPORT_TO=report_to, PYTHONPATH=str(code)),
        )
    finally:
        log.close()


async def wait_healthy(base_url: str, process: asyncio.subprocess.Process) -> None:
    """Until ``/healthz`` answers 200 (BenchError if the server exits first)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if process.returncode is not None:
                raise BenchError(f"the server at {base_url} exited ({process.returncode})")
            try:
                async with session.get(base_url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise BenchError(f"the server at {base_url} did not answer in 60 s")


async def stop_server(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then wait (SIGKILL after 60 s)."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _create_proposals(template: Template, names: list[str], count: int) -> list[str]:
    ids: list[str] = [""] * count
    gate = asyncio.Semaphore(8)
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            name = names[i % len(names)]
            proposal = {
                "type": ["Page", "Proposal"],
                "process": template.process,
                "name": f"Proposta {i}",
                "source": {"content": f"Text de la proposta {i}.", "mediaType": "text/markdown"},
            }
            body = json.dumps({"type": "Create", "object": proposal}).encode()
            headers = {"Authorization": f"Bearer {template.tokens[name]}", "Content-Type": AS2}
            async with (
                gate,
                session.post(
                    template.actor(name) + "/outbox", data=body, headers=headers
                ) as response,
            ):
                answer = await response.json(content_type=None)
                if response.status != 201:
                    raise BenchError(f"proposal {i}: HTTP {response.status}: {answer}")
            ids[i] = str(answer["object"]["id"])

        await asyncio.gather(*(one(i) for i in range(count)))
    return ids
