"""Shared test data for the instance domain (HB's tests): a process draft and its clock."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from federation.config import InstanceConfig, load_config
from federation.config_writer import InitOptions, write_instance_config

T0 = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
PROPOSALS_START, PROPOSALS_END = T0, T0 + timedelta(days=28)
SUPPORTS_START, SUPPORTS_END = PROPOSALS_END, PROPOSALS_END + timedelta(days=30)
IN_PROPOSALS = T0 + timedelta(days=1)
IN_SUPPORTS = SUPPORTS_START + timedelta(days=1)
AFTER_ALL = SUPPORTS_END + timedelta(days=1)


def iso(value: datetime) -> str:
    """RFC 3339 with Z, seconds precision."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def process_draft(
    *,
    per_participant: int = 3,
    threshold: int = 0,
    accumulate: bool = False,
    minimum: int = 0,
    territories: tuple[tuple[str, str, str | None], ...] = (("neighbourhood", "01", "01"),),
) -> dict[str, Any]:
    """A process in the vocabulary's JSON form without id/owner/published (what the CLI reads)."""
    return copy.deepcopy(
        {
            "type": ["Page", "ParticipatoryProcess"],
            "name": "Pressupostos participatius 2027",
            "nameMap": {"ca": "Pressupostos participatius 2027", "en": "Budget 2027"},
            "summary": "Proposa i dona suport.",
            "phases": [
                {
                    "type": "Phase",
                    "name": "Propostes",
                    "startTime": iso(PROPOSALS_START),
                    "endTime": iso(PROPOSALS_END),
                    "allowsProposals": True,
                    "allowsSupports": False,
                    "allowsComments": True,
                    "allowsDebates": True,
                },
                {
                    "type": "Phase",
                    "name": "Suports",
                    "startTime": iso(SUPPORTS_START),
                    "endTime": iso(SUPPORTS_END),
                    "allowsProposals": False,
                    "allowsSupports": True,
                    "allowsComments": True,
                    "allowsDebates": False,
                },
            ],
            "supportRules": {
                "type": "SupportRules",
                "supportsPerParticipant": per_participant,
                "thresholdPerProposal": threshold,
                "accumulateBeyondThreshold": accumulate,
                "minimumSupportsPerParticipant": minimum,
            },
            "eligibleTerritories": [
                {
                    "type": "Territory",
                    "territoryKind": kind,
                    "territoryCode": code,
                    **({"districtCode": district} if district else {}),
                }
                for kind, code, district in territories
            ],
        }
    )


class Clock:
    """A settable clock for the services (timezone-aware)."""

    def __init__(self, now: datetime = IN_PROPOSALS) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def instance_config(
    tmp_path: Path, port: int, *, name: str = "raval", report_to: tuple[str, ...] = ()
) -> InstanceConfig:
    """A loopback instance config (territory neighbourhood 01 in district 01) in tmp_path."""
    options = InitOptions(
        base_url=f"http://127.0.0.1:{port}",
        name=f"AV {name.title()}",
        secret="s" * 43,
        group="av",
        territory="01",
        district="01",
        report_to=report_to,
        allow_loopback=True,
        listen=f"127.0.0.1:{port}",
    )
    return load_config(write_instance_config(tmp_path / name, options), environ={})


async def count_rows(db: aiosqlite.Connection) -> dict[str, int]:
    """Row counts of every table (to prove a refused act wrote nothing). ``remote_actors`` is
    left out: it caches actor documents fetched from their own origin, as checking a refused
    act's signature does (the in-memory actor cache keeps them as well)."""
    rows = await db.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name != 'remote_actors'"
    )
    counts = {}
    for (table,) in rows:
        found = list(await db.execute_fetchall(f"SELECT COUNT(*) FROM {table}"))
        counts[str(table)] = int(found[0][0])
    return counts
