"""``barri demo`` as a person runs it: a real process on free loopback ports, then Ctrl-C.

The demo starts five ``barri serve`` children and seeds them through their public interfaces;
the test reads its ready line, opens every URL it printed, compares the aggregator's JSON
totals with what the seeding did (and with a count made here from the demo's data), sends
SIGINT and checks that every child is gone and no port still answers. A second run reuses
the seeded folder; a port in use is one error line.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from federation.demo_data import SUPPORTS, WITHDRAWN_SUPPORTS
from federation.demo_seed import observed_totals

READY_WAIT = 90.0
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/\S*")


def free_base() -> int:
    """A port N with N..N+4 all free on 127.0.0.1 (bound together, then released)."""
    for _ in range(200):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            base = int(first.getsockname()[1])
        if base + 4 > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + 5):
                probe = socket.socket()
                sockets.append(probe)
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()
    raise RuntimeError("no five consecutive free ports")


class Demo:
    """A running ``barri demo`` and the lines it printed so far."""

    def __init__(self, cwd: Path, *args: str) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("BARRI_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "federation.cli", "demo", *args],
            cwd=cwd, env=environment, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, prefix: str, timeout: float = READY_WAIT) -> str:
        """Every line up to the one starting with ``prefix`` (fails at exit or timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {prefix!r} line within {timeout} s:\n" + "\n".join(self.lines))
            if line is None:
                pytest.fail(f"the demo exited before {prefix!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if line.startswith(prefix):
                return "\n".join(self.lines)

    def children(self) -> list[int]:
        """Pids whose parent is the demo (read from /proc)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                # Field 4, after the parenthesised command name (which may hold spaces).
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found.append(int(entry.name))
        return found

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT, then the exit status."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self.wait_for("barri demo: stopped", timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def get(url: str, accept: str = BROWSER_ACCEPT) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def supports_left() -> int:
    """How many supports the demo's data leaves standing, counted here from the data."""
    given = {(place, name, key) for (place, name), keys in SUPPORTS.items() for key in keys}
    return len(given - set(WITHDRAWN_SUPPORTS))


def aggregator_totals(base: int, expected: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for iri in expected:
        encoded = quote(iri, safe="")
        status, body = get(f"http://127.0.0.1:{base}/api/v1/processes/{encoded}/results")
        assert status == 200
        found[iri] = observed_totals(json.loads(body))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads children from /proc")
def test_the_demo_city_starts_agrees_and_stops_cleanly(tmp_path: Path) -> None:
    base = free_base()
    demo = Demo(tmp_path, "--port-base", str(base))
    try:
        output = demo.wait_for("barri demo: ready")
        urls = [m.group(0) for m in URL.finditer(output)]
        assert len(urls) == 14, output  # 4 instances and their processes, 6 at the aggregator
        assert {int(m.group(1)) for m in URL.finditer(output)} == set(range(base, base + 5))
        for url in urls:
            assert get(url)[0] == 200, url
        state = json.loads((tmp_path / ".demo" / "demo.json").read_text())
        assert state["seeded"] is True and len(state["expected"]) == 4
        assert aggregator_totals(base, state["expected"]) == state["expected"]
        status, body = get(f"http://127.0.0.1:{base}/api/v1/processes", "application/json")
        assert status == 200
        counted = sum(process["supports"] for process in json.loads(body)["processes"])
        printed = re.search(r"(\d+) supports counted", output)
        assert printed is not None and int(printed.group(1)) == counted == supports_left()
        children = demo.children()
        assert len(children) == 5
        assert demo.interrupt() == 0
        for pid in children:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert not any(answers(port) for port in range(base, base + 5))
    finally:
        demo.kill()

    again = Demo(tmp_path, "--port-base", str(base))
    try:
        output = again.wait_for("barri demo: ready")
        assert "kept in" in output and "seeding" not in output
        assert aggregator_totals(base, state["expected"]) == state["expected"]
        assert again.interrupt() == 0
    finally:
        again.kill()


def test_a_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    base = free_base()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 2))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "federation.cli", "demo", "--port-base", str(base)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"barri: error: port {base + 2} is in use on 127.0.0.1 (another demo running?);"
        " choose other ports with --port-base N (the demo uses N to N+4)"
    ]
    assert not (tmp_path / ".demo").exists()
