"""``barri tally --recompute`` agrees with the incremental totals after any stream (hypothesis).

At the engine + store level: hypothesis draws a stream of stored activities and record changes
(supports and undos as real JSON documents, proved or forged, duplicated, out of phase, ahead
of their proposal; a resident's Delete of a support; residency changes; instances removed and
restored; a process closed) and writes it through the aggregator's own stores, as ingest would.
At random points, and at the end, the running ``TallyState`` (fed from the columns) must equal
``recompute`` (which re-reads every stored document through the converters).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from federation.aggregator.config import AggregatorConfig
from federation.aggregator.recompute import recompute
from federation.aggregator.wiring import Aggregator, open_aggregator
from federation.model import (
    LangText,
    Phase,
    Process,
    Proposal,
    Support,
    SupportRules,
    Territory,
    TerritoryKind,
    UndoSupport,
)
from federation.store.aggregator import RosterRow
from federation.store.aggregator_log import ActivityRow, ProcessRow, ProposalRow, ResidentRow
from federation.vocab.actors import person_extras
from federation.vocab.context import document_context, format_datetime
from federation.vocab.process import process_to_ap
from federation.vocab.proposal import proposal_to_ap
from federation.vocab.support import support_to_ap, undo_support_to_ap
from tests.aggregator_env import make_config

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOOD = TerritoryKind.NEIGHBOURHOOD
ROSTER = {
    "https://a.example": ("31", "06"),
    "https://b.example": ("32", "06"),
    "https://c.example": ("43", "07"),
}
ORIGINS = (*ROSTER, "https://x.example")
ACTORS = tuple(f"{o}/users/{n}" for o in ORIGINS for n in ("u", "v"))
AGGREGATOR = "https://city.example/actor"


def hour(n: int) -> datetime:
    return T0 + timedelta(hours=n)


def _process(number: int, limit: int, minimum: int) -> Process:
    phase = Phase(
        name=LangText("Suports"), start=hour(10), end=hour(20), allows_proposals=True,
        allows_supports=True, allows_comments=True, allows_debates=False,
    )  # fmt: skip
    return Process(
        id=f"https://a.example/processes/{number}",
        owner="https://a.example/groups/assoc",
        name=LangText(f"Procés {number}"),
        summary=None,
        phases=(phase,),
        rules=SupportRules(
            supports_per_participant=limit, minimum_supports_per_participant=minimum
        ),
        eligible=(Territory(TerritoryKind.CITY, "08019"),),
        published=hour(0),
    )


PROCESSES = (_process(1, 2, 0), _process(2, 0, 2))
PROPOSALS = tuple(
    Proposal(
        id=f"{origin}/proposals/{n}",
        author=f"{origin}/users/author",
        audience="https://a.example/groups/assoc",
        process=PROCESSES[n % 2].id,
        name=LangText(f"Proposta {n}"),
        content_html="<p>·</p>",
        source_markdown="·",
        published=hour(1),
    )
    for n, origin in enumerate(("https://a.example", "https://b.example", "https://a.example"))
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An aggregator database with its migrations and Service keys, copied per example."""
    directory = tmp_path_factory.mktemp("template")
    config = make_config(directory, 1)

    async def create() -> None:
        async with open_aggregator(config):
            pass

    asyncio.run(create())
    return config.database


@dataclass
class World:
    """One example's aggregator and what the stream created so far."""

    aggregator: Aggregator
    likes: list[dict[str, Any]]
    clock: float = T0.timestamp()

    def tick(self) -> float:
        self.clock += 60.0
        return self.clock


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """A stream of stored things and syncs (see the module docstring)."""
    hours = st.one_of(st.integers(10, 19), st.integers(8, 22))  # mostly inside the phase
    recent = st.sampled_from((0, 0, 1, 2, 3))  # withdraw one of the last few supports, mostly
    support = st.tuples(
        st.just("support"),
        st.integers(0, len(ACTORS) - 1),
        st.integers(0, len(PROPOSALS) - 1),
        hours,
        st.sampled_from(("own", "own", "own", "forged", "other")),
    )
    op = st.one_of(
        support, support, support,
        st.tuples(st.just("undo"), recent, hours),
        st.tuples(st.just("delete"), recent, hours),
        st.tuples(st.just("copy"), recent),
        st.tuples(st.just("resident"), st.integers(0, len(ACTORS) - 1),
                  st.sampled_from((None, "own", "elsewhere"))),
        st.tuples(st.just("roster"), st.sampled_from(tuple(ROSTER)), st.booleans()),
        st.tuples(st.just("proposal"), st.integers(0, len(PROPOSALS) - 1)),
        st.tuples(st.just("close"), st.integers(0, 1), st.integers(12, 30)),
        st.tuples(st.just("sync"),),
    )  # fmt: skip
    return draw(st.lists(op, min_size=1, max_size=40))


def _support_row(world: World, actor: str, proposal: str, published: int, how: str) -> ActivityRow:
    origin = actor.split("/users/")[0]
    like = support_to_ap(
        Support(
            id=f"{origin}/supports/{len(world.likes)}", actor=actor, proposal=proposal,
            published=hour(published), to=("https://a.example/groups/assoc", AGGREGATOR),
        )
    )  # fmt: skip
    world.likes.append(like)
    signer = {"own": origin, "forged": origin, "other": "https://b.example"}[how]
    return _row(world, like, "support", actor, proposal, published, how != "forged", signer)


def _row(
    world: World, document: dict[str, Any], kind: str, actor: str, target: str, published: int,
    proof_ok: bool, signer: str,
) -> ActivityRow:  # fmt: skip
    origin = actor.split("/users/")[0]
    return ActivityRow(
        0, document["id"], kind, actor, origin, target, "", format_datetime(hour(published)),
        world.tick(), proof_ok, signer, "inbox", actor, json.dumps(document),
    )  # fmt: skip


def _withdrawal(world: World, index: int, published: int, delete: bool) -> ActivityRow | None:
    if not world.likes:
        return None
    like = world.likes[-1 - index % len(world.likes)]
    actor, origin = like["actor"], like["actor"].split("/users/")[0]
    if delete:
        document: dict[str, Any] = {
            "@context": document_context(), "id": f"{like['id']}/delete", "type": "Delete",
            "actor": actor, "object": like["id"], "published": format_datetime(hour(published)),
            "to": like["to"],
        }  # fmt: skip
    else:
        document = undo_support_to_ap(
            UndoSupport(id=f"{like['id']}/undo", actor=actor, support=like["id"],
                        published=hour(published), to=tuple(like["to"]))
        )  # fmt: skip
    return _row(world, document, "undo", actor, like["id"], published, True, origin)


def _resident(actor: str, where: str | None) -> ResidentRow:
    origin = actor.split("/users/")[0]
    code, district = ROSTER.get(origin, ("99", "99"))
    if where == "elsewhere":
        code = "98"
    territory = None if where is None else Territory(HOOD, code, district_code=district)
    document = json.dumps({"id": actor, "type": "Person", **person_extras(territory)})
    return ResidentRow(
        actor, origin, None if territory is None else "neighbourhood",
        None if territory is None else code, None if territory is None else district,
        document, 0.0, 0,
    )  # fmt: skip


async def apply(world: World, op: tuple[Any, ...]) -> None:
    """Write one operation through the aggregator's stores."""
    agg, kind = world.aggregator, op[0]
    if kind == "support":
        _, actor, proposal, published, how = op
        await agg.log.add_activity(
            _support_row(world, ACTORS[actor], PROPOSALS[proposal].id, published, how)
        )
    elif kind in ("undo", "delete"):
        row = _withdrawal(world, op[1], op[2], kind == "delete")
        if row is not None:
            await agg.log.add_activity(row)
    elif kind == "copy" and world.likes:
        like = world.likes[-1 - op[1] % len(world.likes)]
        origin = like["actor"].split("/users/")[0]
        # Another copy of the same id whose proof does not verify (a relay's broken copy).
        copy = _row(world, like, "support", like["actor"], like["object"], 12, False, origin)
        await agg.log.add_activity(copy)
    elif kind == "resident":
        await agg.log.put_resident(_resident(ACTORS[op[1]], op[2]))
    elif kind == "roster":
        await agg.store.set_active(op[1], op[2], now=world.tick())
    elif kind == "proposal":
        await _put_proposal(agg, PROPOSALS[op[1]])
    elif kind == "close":
        await agg.log.close_process(PROCESSES[op[1]].id, hour(op[2]).timestamp())
    elif kind == "sync":
        await agg.state.sync()
        comparison = await recompute(agg)
        assert comparison.agree, comparison.differences()


async def _put_proposal(agg: Aggregator, proposal: Proposal) -> None:
    origin = proposal.id.split("/proposals/")[0]
    document = json.dumps(proposal_to_ap(proposal), sort_keys=True)
    await agg.log.put_proposal(
        ProposalRow(proposal.id, proposal.process, origin, proposal.name.default, "notAnswered",
                    format_datetime(proposal.published), document, 0.0, 0)
    )  # fmt: skip


async def _world(agg: Aggregator) -> World:
    for origin, (code, district) in ROSTER.items():
        await agg.store.put_roster(
            RosterRow(origin, origin, code, district, None, None, True, 0.0, None, None)
        )
    for process in PROCESSES:
        document = json.dumps(process_to_ap(process), sort_keys=True)
        await agg.log.put_process(
            ProcessRow(process.id, process.owner, "https://a.example", document, None, 0.0, 0)
        )
    for actor in ACTORS:
        await agg.log.put_resident(_resident(actor, "own"))
    await _put_proposal(agg, PROPOSALS[0])  # the others arrive (or not) in the stream
    return World(agg, [])


@contextmanager
def _copy(template: Path) -> Iterator[AggregatorConfig]:
    """A fresh aggregator directory whose database is a copy of the template."""
    with tempfile.TemporaryDirectory() as directory:
        config = make_config(Path(directory), 1)
        shutil.copyfile(template, config.database)
        yield config


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations())
@example(ops=[("support", 0, 0, 12, "own"), ("delete", 0, 12), ("sync",)])
@example(ops=[("undo", 0, 12), ("support", 2, 0, 12, "own"), ("undo", 0, 13), ("copy", 0)])
@example(ops=[("support", 0, 1, 12, "own"), ("sync",), ("proposal", 1), ("close", 1, 12)])
def test_recompute_agrees_with_the_incremental_tally_after_any_stream(
    template: Path, ops: list[tuple[Any, ...]]
) -> None:
    async def run(config: AggregatorConfig) -> None:
        async with open_aggregator(config) as agg:
            world = await _world(agg)
            for op in ops:
                await apply(world, op)
            await apply(world, ("sync",))
        # A restart rebuilds the same totals from the store alone.
        async with open_aggregator(config) as again:
            comparison = await recompute(again)
            assert comparison.agree, comparison.differences()

    with _copy(template) as config:
        asyncio.run(run(config))
