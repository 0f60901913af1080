"""Which event loop a server runs on: uvloop's for the aggregator, asyncio's when told so.

The aggregator's ``barri serve`` runs on uvloop (``federation.serving.run_fast``); an instance
keeps the standard loop (uvloop would cost each small server ~2 MB); ``BARRI_EVENT_LOOP=asyncio``
puts the aggregator back on the standard loop. The serving processes themselves are checked in
test_aggregator_app.py and test_cli.py (``loaded_uvloop``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from federation.serving import EVENT_LOOP_VARIABLE, run_fast


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def loaded_uvloop(pid: int) -> bool:
    """Whether the process ``pid`` has uvloop's extension mapped (Linux's /proc)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return any("/uvloop/loop." in line for line in maps.splitlines())


def test_run_fast_runs_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EVENT_LOOP_VARIABLE, raising=False)
    assert run_fast(_loop_module()).startswith("uvloop")


def test_run_fast_runs_on_asyncio_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_VARIABLE, "asyncio")
    assert run_fast(_loop_module()).startswith("asyncio")


def test_run_fast_returns_what_the_coroutine_returns_and_closes_its_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> int:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        return 7

    assert run_fast(main()) == 7
    assert loops[0].is_closed()
