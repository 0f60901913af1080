"""A rebuild from nothing shared among backfill worker processes (backfill_pool, backfill_worker).

Real instances and a real aggregator on 127.0.0.1, real worker processes started by the
aggregator, each with its own connection to the same SQLite file.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.ingestkit.aggregator import wipe
from federation.aggregator.app import BACKFILL_TASK
from federation.aggregator.backfill import own_log_url, rest_of_log_url
from federation.aggregator.backfill_pool import (
    backfill_at_start,
    largest_first,
    shared_backfill,
    workers_for,
)
from federation.aggregator.backfill_worker import config_from_wire, config_to_wire
from federation.aggregator.config import AggregatorConfig, parse_aggregator_config
from federation.config_values import ConfigError
from federation.store.aggregator import RosterRow
from tests.aggregator_city import Town, town
from tests.aggregator_env import inbox_quiet


async def _supports(t: Town) -> list[str]:
    """Proposals on A and B; residents of every instance support some, one withdraws."""
    ana, rita = await t.a.resident("ana"), await t.b.resident("rita")
    ideas = [
        (await t.a.deliberation.create_proposal(ana, t.process.id, name=n, body_markdown=n)).id
        for n in ("Més arbres", "Un carril bici")
    ]
    made = await t.b.deliberation.create_proposal(rita, t.process.id, name="B", body_markdown="·")
    ideas.append(made.id)
    await t.settle()
    rng = random.Random(8)
    for hood in t.hoods.values():
        for n in range(4):
            name = f"{hood.name}{n}"
            await hood.resident(name)
            for idea in rng.sample(ideas, 2):
                await t.support(hood, name, idea)
    await t.withdraw(t.a, "a0", next(p for _, a, p, _ in t.acts if a == t.a.actor("a0")))
    await t.settle()
    return ideas


async def _votes_size(t: Town, row: RosterRow) -> int:
    """The ``totalItems`` an instance's own residents' support log and its Group's outbox
    state (an unsigned GET of the log is refused: the aggregator's own fetcher signs it)."""
    fetcher = t.city.runtime.federation.fetcher
    assert fetcher is not None and row.group_actor is not None
    group = (await fetcher.get_activity(row.group_actor)).document
    total = 0
    for url in (own_log_url(row.origin), group["outbox"]):
        found = (await fetcher.get_activity(url)).document["totalItems"]
        assert isinstance(found, int)
        total += found
    return total


async def _rebuild(t: Town, workers: int) -> None:
    """Stop the aggregator, empty what it learnt, start it with ``workers`` and wait for the
    start-up backfill and the inbox to finish."""
    await t.city.stop()
    wipe(t.city.config.database)
    t.city.config = dataclasses.replace(t.city.config, backfill_workers=workers)
    await t.city.start(backfill_on_start=True)
    assert t.city.server is not None
    await t.city.server.app[BACKFILL_TASK]
    await inbox_quiet(t.city.runtime.federation)
    await t.city.aggregator.state.sync()


async def test_a_rebuild_from_nothing_is_shared_among_workers_and_counts_the_same(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with town(tmp_path, unused_tcp_port_factory) as t:
        await _supports(t)
        want = await t.counted()
        assert want == t.truth() and want
        unlisted = (await t.city.get("/api/v1/instances"))["unlisted"]
        assert unlisted and unlisted[0]["origin"] == t.e.origin  # E is off the roster
        await t.retries(due=10**10)  # the instances' retries stay out of the way

        await _rebuild(t, workers=2)
        assert await t.counted() == want
        assert (await t.city.get("/api/v1/instances"))["unlisted"] == unlisted
        # The workers walked: the cursors are all there, and the server's own fetcher made
        # almost none of the GETs (three each: the heads of its own log and of its Group's
        # outbox, and that Group, to hand the largest out first).
        fetcher = t.city.runtime.federation.fetcher
        assert fetcher is not None
        cursors = await t.city.aggregator.db.execute_fetchall("SELECT collection FROM cursors")
        walked = {row[0] for row in cursors}
        rostered = [h for h in t.hoods.values() if h.rostered]
        assert {own_log_url(h.origin) for h in rostered} <= walked
        # The rest of each log left out every instance whose own log was read: all of them.
        every = [h.origin for h in rostered]
        assert {rest_of_log_url(h.origin, every) for h in rostered} <= walked
        # Each support was read once: the rest of A's log (it owns the process) held only the
        # supports of E's residents, whose instance is not on the roster; B's and D's, none.
        by_e = sum(1 for _, actor, _, _ in t.acts if actor.startswith(t.e.origin + "/"))
        assert by_e == 8
        rests = {
            h.origin: cursor.items for h in rostered
            if (cursor := await t.city.aggregator.store.cursor(
                h.origin, rest_of_log_url(h.origin, every))) is not None
        }  # fmt: skip
        assert rests == {t.a.origin: by_e, t.b.origin: 0, t.d.origin: 0}
        assert fetcher.stats.fetches <= 3 * len(rostered)
        # The jobs were handed out largest first: A's Group announces every proposal and
        # comment of its process.
        rows = await t.city.aggregator.store.roster(active_only=True)
        ranked = await largest_first(t.city.runtime, rows)
        sizes = [await _votes_size(t, row) for row in ranked]
        assert ranked[0].origin == t.a.origin and sizes == sorted(sizes, reverse=True)
        assert sizes[0] > sizes[-1] > 0
        routes = await t.city.aggregator.db.execute_fetchall(
            "SELECT DISTINCT route FROM activities WHERE kind IN ('support', 'undo')"
        )
        assert [row[0] for row in routes] == ["backfill"]

        # The same rebuild in the server's own process counts the same, fetching it all itself.
        await _rebuild(t, workers=1)
        assert await t.counted() == want
        fetcher = t.city.runtime.federation.fetcher
        assert fetcher is not None and fetcher.stats.fetches > len(rostered)


async def test_later_passes_stay_in_the_server(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """Something stored already: the start-up pass is the server's own, even with workers."""
    async with town(tmp_path, unused_tcp_port_factory) as t:
        await _supports(t)
        await t.retries(due=10**10)
        await t.city.stop()
        t.city.config = dataclasses.replace(t.city.config, backfill_workers=4)
        await t.city.start(backfill_on_start=True)
        assert t.city.server is not None
        await t.city.server.app[BACKFILL_TASK]
        fetcher = t.city.runtime.federation.fetcher
        assert fetcher is not None
        rostered = [h for h in t.hoods.values() if h.rostered]
        assert fetcher.stats.fetches > len(rostered)  # walked here, not in workers
        report = await backfill_at_start(t.city.aggregator, t.city.runtime)
        assert {h.origin for h in rostered} == set(report)
        assert all(isinstance(n, int) for n in report.values()), report


def _row(origin: str) -> RosterRow:
    return RosterRow(origin, origin, "31", "06", None, None, True, 0.0, None, None)


async def test_a_worker_that_dies_fails_only_its_walks(tmp_path: Path) -> None:
    config = _config(tmp_path)
    rows = [_row(f"http://127.0.0.1:{port}") for port in (1, 2, 3)]
    died = [sys.executable, "-c", "import sys; sys.stdin.readline(); sys.exit(3)"]
    report = await shared_backfill(config, rows, 2, command=died)
    assert set(report) == {row.origin for row in rows}
    for value in report.values():  # each was handed out before the workers died
        assert value == "the backfill worker exited (3) before finishing"


# A stand-in worker: notes each job in the file named by argv[1], reports one item read.
_NOTING = """
import json, sys
sys.stdin.readline()
for line in sys.stdin:
    job = json.loads(line)
    covered = ",".join(job.get("covered", ["-"]))
    with open(sys.argv[1], "a") as out:
        out.write(job["step"] + " " + job["origin"] + " " + covered + "\\n")
    print(json.dumps({**job, "read": 1}), flush=True)
"""


async def test_every_instance_s_residents_are_read_before_any_votes(tmp_path: Path) -> None:
    """Two workers, five instances: all fifteen jobs done, every residents step before any
    votes and every votes step before any rest (barriers between the phases), the rest told
    the origins covered as they stood once the votes were read, and each origin's items
    summed over its three jobs."""
    config, noted = _config(tmp_path), tmp_path / "jobs.txt"
    rows = [_row(f"http://127.0.0.1:{port}") for port in range(1, 6)]
    asked: list[int] = []
    ordered: list[int] = []
    ranked = [row.origin for row in reversed(rows)]

    async def covered() -> list[str]:
        asked.append(len(noted.read_text().splitlines()))  # jobs done when it was asked
        return [rows[3].origin, rows[1].origin]

    async def order() -> list[str]:
        ordered.append(len(noted.read_text().splitlines()))
        return ranked

    report = await shared_backfill(
        config, rows, 2, covered=covered, order=order,
        command=[sys.executable, "-c", _NOTING, str(noted)],
    )  # fmt: skip
    assert report == {row.origin: 3 for row in rows}
    lines = [line.split() for line in noted.read_text().splitlines()]
    assert [line[0] for line in lines] == ["residents"] * 5 + ["votes"] * 5 + ["rest"] * 5
    assert asked == [10] and ordered == [5]
    for step in range(3):
        origins = [line[1] for line in lines[5 * step : 5 * step + 5]]
        assert sorted(origins) == sorted(row.origin for row in rows)
    assert {line[2] for line in lines[:10]} == {"-"}
    assert {line[2] for line in lines[10:]} == {f"{rows[1].origin},{rows[3].origin}"}


async def test_votes_and_the_rest_are_handed_out_in_the_order_given(tmp_path: Path) -> None:
    """One worker takes its jobs in the order they are handed out: the residents in roster
    order, the votes and the rest in the order asked for once the residents were read."""
    config, noted = _config(tmp_path), tmp_path / "jobs.txt"
    rows = [_row(f"http://127.0.0.1:{port}") for port in range(1, 6)]
    ranked = [rows[n].origin for n in (3, 0, 4, 1, 2)]

    async def order() -> list[str]:
        return ranked

    await shared_backfill(
        config, rows, 1, order=order, command=[sys.executable, "-c", _NOTING, str(noted)]
    )
    origins = [line.split()[1] for line in noted.read_text().splitlines()]
    assert origins == [row.origin for row in rows] + ranked + ranked


async def test_a_worker_reports_an_origin_off_the_roster(tmp_path: Path) -> None:
    """The real worker, on an aggregator whose roster is empty: each origin is an error line,
    and the worker exits once its stdin closes."""
    config = _config(tmp_path)
    rows = [_row("http://127.0.0.1:1"), _row("http://127.0.0.1:2")]
    report = await shared_backfill(config, rows, 2)
    assert report == {row.origin: "not an active roster instance" for row in rows}


def _config(tmp_path: Path) -> AggregatorConfig:
    text = 'kind = "aggregator"\nbase_url = "http://127.0.0.1:9"\nname = "A"\n'
    text += "allow_loopback = true\n"
    return parse_aggregator_config(text, tmp_path / "barri.toml", environ={})


def test_the_config_crosses_to_a_worker_unchanged(tmp_path: Path) -> None:
    config = dataclasses.replace(_config(tmp_path), backfill_workers=3)
    assert config_from_wire(config_to_wire(config)) == config
    with pytest.raises(ValueError, match="not an aggregator config"):
        config_from_wire('{"base_url": "x"}')
    with pytest.raises(ValueError, match="not an aggregator config"):
        config_from_wire("not json")


@pytest.mark.parametrize(("value", "workers"), [("0", None), ("1", 1), ("3", 3), ("64", 64)])
def test_backfill_workers_setting(tmp_path: Path, value: str, workers: int | None) -> None:
    text = 'kind = "aggregator"\nbase_url = "https://agg.example"\nname = "A"\n'
    config = parse_aggregator_config(
        text + f"backfill_workers = {value}\n", tmp_path / "barri.toml", environ={}
    )
    assert config.backfill_workers == int(value)
    chosen = workers_for(config)
    assert chosen == workers if workers is not None else 1 <= chosen <= 4


@pytest.mark.parametrize("value", ["-1", "65", "true", '"many"', "2.5"])
def test_backfill_workers_refuses_what_is_not_a_count(tmp_path: Path, value: str) -> None:
    text = 'kind = "aggregator"\nbase_url = "https://agg.example"\nname = "A"\n'
    with pytest.raises(ConfigError, match="backfill_workers: must be a whole number"):
        parse_aggregator_config(
            text + f"backfill_workers = {value}\n", tmp_path / "barri.toml", environ={}
        )


def test_an_environment_variable_sets_the_workers(tmp_path: Path) -> None:
    text = 'kind = "aggregator"\nbase_url = "https://agg.example"\nname = "A"\n'
    config = parse_aggregator_config(
        text, tmp_path / "barri.toml", environ={"BARRI_BACKFILL_WORKERS": "2"}
    )
    assert config.backfill_workers == 2
    assert config.delivery_concurrency == 16  # the default


def test_the_aggregator_sets_its_delivery_concurrency(tmp_path: Path) -> None:
    text = 'kind = "aggregator"\nbase_url = "https://agg.example"\nname = "A"\n'
    path = tmp_path / "barri.toml"
    config = parse_aggregator_config(text + "delivery_concurrency = 64\n", path, environ={})
    assert config.delivery_concurrency == 64
    with pytest.raises(ConfigError, match="delivery_concurrency: must be a whole number of sends"):
        parse_aggregator_config(text + "delivery_concurrency = 0\n", path, environ={})
