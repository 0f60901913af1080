"""Roster on loopback: discovery, signed Follows and their answers, removal and restoration."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from activitypub.integrity import verify_document
from federation.aggregator.cli import main as cli_main
from federation.aggregator.config import load_aggregator_config
from federation.aggregator.roster import RosterError
from tests.aggregator_env import city
from tests.barri_node import hood


async def test_add_discovers_the_instance_and_follows_its_actor_and_group(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        node = await c.add_node("gracia", hood("31", "06"))
        found = await c.runtime.roster.discover(node.origin + "/")
        assert (found.instance_actor, found.group_actor) == (node.instance_actor, node.group)
        assert (found.territory, found.district) == ("31", "06")
        # No --district: it comes from the instance's NodeInfo.
        row, warnings = await c.runtime.roster.add(node.origin, "31")
        assert (row.territory, row.district, row.active, warnings) == ("31", "06", True, [])
        await c.settle()
        follows = [a for a in node.received if a["type"] == "Follow"]
        assert {f["object"] for f in follows} == {node.instance_actor, node.group}
        for follow in follows:
            assert follow["actor"] == c.actor
            # Proved by the Service's Ed25519 key (and it arrived HTTP-signed: it was recorded).
            await verify_document(follow, c.runtime.federation.fetch_actor, owner=c.actor)
        status = await c.runtime.roster.status()
        assert sorted((f.target, f.state) for f in status[0].follows) == sorted(
            [(node.instance_actor, "accepted"), (node.group, "accepted")]
        )


async def test_a_rejected_follow_is_recorded_as_rejected(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        node = await c.add_node("gracia", hood("31", "06"))
        node.accept_follows = False
        await c.add_to_roster(node)
        states = {f.state for f in await c.aggregator.store.follows(node.origin)}
        assert states == {"pending"}
        # An Accept from someone else than the followed actor changes nothing.
        follow = await c.aggregator.store.follows(node.origin)
        forged = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": node.new_id("accepts"),
            "type": "Reject",
            "actor": node.group,
            "object": follow[0].follow_id,
        }
        target = follow[0].target
        if target == node.group:
            forged["actor"] = node.instance_actor
        assert await node.deliver(forged, c.inbox) == 202
        await c.settle()
        assert {f.state for f in await c.aggregator.store.follows(node.origin)} == {"pending"}
        forged["id"], forged["actor"] = node.new_id("rejects"), target
        assert await node.deliver(forged, c.inbox) == 202
        await c.settle()
        states_by_target = {
            f.target: f.state for f in await c.aggregator.store.follows(node.origin)
        }
        assert states_by_target[target] == "rejected"


async def test_remove_sends_undo_follow_and_add_restores_with_new_follows(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        node = await c.add_node("gracia", hood("31", "06"))
        await c.add_to_roster(node)
        removed = await c.runtime.roster.remove(node.origin)
        assert removed.active is False
        await c.settle()
        undos = [a for a in node.received if a["type"] == "Undo"]
        assert {u["object"]["object"] for u in undos} == {node.instance_actor, node.group}
        assert {f.state for f in await c.aggregator.store.follows(node.origin)} == {"undone"}
        rows = await c.aggregator.store.roster()
        assert [(r.origin, r.active) for r in rows] == [(node.origin, False)]
        await c.add_to_roster(node)
        follows = await c.aggregator.store.follows(node.origin)
        assert sorted(f.state for f in follows) == ["accepted", "accepted", "undone", "undone"]
        assert (await c.aggregator.store.roster())[0].active is True


async def test_operator_errors_are_one_line(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        node = await c.add_node("gracia", hood("31", "06"))
        with pytest.raises(RosterError, match="not on the roster"):
            await c.runtime.roster.remove(node.origin)
        with pytest.raises(RosterError, match="territory code"):
            await c.runtime.roster.add(node.origin, "not a code!")
        with pytest.raises(RosterError, match="cannot discover"):
            await c.runtime.roster.add(f"http://127.0.0.1:{unused_tcp_port_factory()}", "31")
        row, warnings = await c.runtime.roster.add(node.origin, "32", "06")
        assert row.territory == "32"
        assert warnings == [f"{node.origin} says its territory is 31, not 32"]


# --- the CLI: init, roster add/list/remove, tally --recompute --------------------------------


def run_cli(*argv: str) -> int:
    return cli_main(list(argv))


def test_init_aggregator_writes_a_loadable_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "city"
    args = ("init", "aggregator", "--dir", str(target), "--base-url", "http://127.0.0.1:9")
    assert run_cli(*args, "--allow-loopback") == 0
    config = load_aggregator_config(target / "barri.toml", environ={})
    assert (config.kind, config.base_url, config.allow_loopback) == (
        "aggregator",
        "http://127.0.0.1:9",
        True,
    )
    assert "barri serve --config" in capsys.readouterr().out
    assert run_cli(*args, "--allow-loopback") == 1
    assert capsys.readouterr().err.startswith("barri: error: ")
    # Plain http without --allow-loopback is refused, naming the key.
    assert run_cli(*args[:3], str(tmp_path / "other"), *args[4:]) == 1
    assert "base_url" in capsys.readouterr().err


async def test_cli_roster_and_tally_against_a_running_aggregator(
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        config = str(tmp_path / "city" / "barri.toml")
        node = await c.add_node("gracia", hood("31", "06"))
        process = node.add_process()
        proposal = node.add_proposal(node.add_resident("author"), process)
        for name in ("anna", "berta"):
            like = node.support(node.add_resident(name), proposal)
            node.publish(node.group, node.announce(like))
        code = await asyncio.to_thread(
            run_cli, "roster", "--config", config, "add", node.origin, "--territory", "31"
        )
        out = capsys.readouterr()
        assert code == 0, out.err
        assert f"added {node.origin} (neighbourhood 31, district 06)" in out.out
        assert "backfilled 2 items" in out.err
        await c.settle()
        # The running server sees what the CLI stored, and the instance's Accepts came back.
        results = await c.results(process)
        assert results["supports"] == 2
        assert {f.state for f in await c.aggregator.store.follows(node.origin)} == {"accepted"}
        assert await asyncio.to_thread(run_cli, "roster", "--config", config, "list") == 0
        listing = capsys.readouterr().out.splitlines()
        assert listing[0].split()[:3] == ["ORIGIN", "TERRITORY", "DISTRICT"]
        assert listing[1].split()[:5] == [node.origin, "31", "06", "yes", "accepted"]
        assert await asyncio.to_thread(run_cli, "tally", "--config", config, "--recompute") == 0
        assert "recomputed 2 supports and 0 undos" in capsys.readouterr().out
        assert (
            await asyncio.to_thread(run_cli, "roster", "--config", config, "remove", node.origin)
            == 0
        )
        await c.settle()
        assert (await c.results(process))["supports"] == 0
        assert {a["type"] for a in node.received} >= {"Follow", "Undo"}


async def test_tally_recompute_exits_1_when_the_roads_disagree(
    tmp_path: Path,
    unused_tcp_port_factory: Callable[[], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with city(tmp_path, unused_tcp_port_factory) as c:
        config = str(tmp_path / "city" / "barri.toml")
        node = await c.add_node("gracia", hood("31", "06"))
        await c.add_to_roster(node)
        process = node.add_process()
        author = node.add_resident("author")
        first, second = node.add_proposal(author, process), node.add_proposal(author, process)
        assert await node.deliver(node.support(node.add_resident("anna"), first), c.inbox) == 202
        await c.settle()
        assert (await c.results(process))["supports"] == 1
        await c.stop()
        # Tamper with the copied column: the signed JSON still says `first`.
        async with c.aggregator_db() as db:
            await db.execute("UPDATE activities SET object = ?", (second,))
            await db.commit()
        assert await asyncio.to_thread(run_cli, "tally", "--config", config, "--recompute") == 1
        err = capsys.readouterr().err
        assert "DISAGREES" in err and f"process {process}" in err
