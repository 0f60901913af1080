"""The aggregator's commands: ``init aggregator``, ``roster add|remove|list``, ``tally``, serve.

Hooked into ``barri`` by :func:`add_init_aggregator` (under ``barri init``) and
:func:`add_aggregator_commands` (``roster``, ``tally``, and ``serve`` of a config whose kind is
``aggregator``). :func:`main` runs the same commands on their own
(``python -m federation.aggregator.cli``). Every operator error is one ``barri: error:`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from federation.aggregator.config import (
    AggregatorInit,
    config_kind,
    load_aggregator_config,
    write_aggregator_config,
)
from federation.cli_support import add_config_option, one_line
from federation.config_values import DEFAULT_LISTEN, ConfigError

if TYPE_CHECKING:
    from aiohttp import web

    from federation.aggregator.backfill import Progress
    from federation.aggregator.roster import RosterStatus
    from federation.aggregator.wiring import Aggregator

Command = Callable[[argparse.Namespace], int]
Action = Callable[["Aggregator", argparse.Namespace], Awaitable[int]]
DELIVERY_WAIT = 30.0  # seconds the CLI waits for its Follow/Undo deliveries before leaving them


def add_init_aggregator(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``barri init aggregator --dir DIR --base-url URL [--allow-loopback]``."""
    p = kinds.add_parser("aggregator", help="the city's aggregator")
    p.add_argument("--dir", type=Path, required=True, help="folder for barri.toml and the data")
    p.add_argument("--base-url", required=True, help="public origin, e.g. https://participa.city")
    p.add_argument("--name", default="Barri city aggregator", help="name of the Service actor")
    p.add_argument("--city", default="08019", metavar="CODE", help="the city's official code")
    p.add_argument("--allow-loopback", action="store_true", help="tests and demos only")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT")
    p.add_argument("--force", action="store_true", help="overwrite an existing barri.toml")
    p.set_defaults(run=_guarded(_init))


def add_aggregator_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``barri roster …`` and ``barri tally …``; ``barri serve`` learns to run an aggregator."""
    roster = sub.add_parser("roster", help="the aggregator's roster of instances")
    add_config_option(roster)
    actions = roster.add_subparsers(dest="roster_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="discover, follow and backfill an instance")
    add.add_argument("url", metavar="URL", help="the instance's base URL")
    add.add_argument("--territory", required=True, metavar="CODE", help="its neighbourhood code")
    add.add_argument("--district", metavar="CODE", help="its district (default: from NodeInfo)")
    add.add_argument("--group", metavar="ACTOR_ID", help="its Group (default: from NodeInfo)")
    add.add_argument("--no-backfill", action="store_true", help="follow only; backfill later")
    add.set_defaults(run=_with_aggregator(_roster_add))
    remove = actions.add_parser("remove", help="unfollow an instance; its supports stop counting")
    remove.add_argument("url", metavar="URL")
    remove.set_defaults(run=_with_aggregator(_roster_remove))
    listing = actions.add_parser("list", help="instances, follow state, last activity, backlog")
    listing.set_defaults(run=_with_aggregator(_roster_list))
    tally = sub.add_parser("tally", help="the aggregator's totals")
    add_config_option(tally)
    tally.add_argument(
        "--recompute",
        action="store_true",
        help="recount from the stored signed activities; exit 1 if it disagrees",
    )
    tally.set_defaults(run=_with_aggregator(_tally))
    serve = sub.choices.get("serve")
    if serve is not None:
        serve.set_defaults(run=_serve_any(serve.get_default("run")))


# --- plumbing ------------------------------------------------------------------------------


def _operator_error(exc: Exception) -> bool:
    """A ConfigError, RosterError, StartupError or BackfillError: the operator can fix it."""
    if isinstance(exc, ConfigError):
        return True
    # Imported only once a command failed: every `barri` command builds this module's parsers.
    from federation.aggregator.backfill import BackfillError
    from federation.aggregator.roster import RosterError
    from federation.serving import StartupError

    return isinstance(exc, RosterError | StartupError | BackfillError)


def _guarded(command: Command) -> Command:
    """Operator errors as one ``barri: error:`` line and exit status 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except Exception as exc:
            if not _operator_error(exc):
                raise
            print(f"barri: error: {one_line(str(exc))}", file=sys.stderr)
            return 1

    return run


def _with_aggregator(action: Action) -> Command:
    """Load the config, open the aggregator (migrations, tally rebuild), run, close."""

    def run(args: argparse.Namespace) -> int:
        config = load_aggregator_config(args.config)
        # Imported here, not at the top: every `barri` command would pay its memory and time.
        from federation.aggregator.wiring import open_aggregator

        async def go() -> int:
            async with open_aggregator(config) as aggregator:
                return await action(aggregator, args)

        return asyncio.run(go())

    return _guarded(run)


def _init(args: argparse.Namespace) -> int:
    options = AggregatorInit(
        base_url=args.base_url,
        name=args.name,
        city=args.city,
        allow_loopback=args.allow_loopback,
        listen=args.listen,
    )
    path = write_aggregator_config(args.dir, options, force=args.force)
    print(f"wrote {path}; start it with: barri serve --config {path}")
    return 0


# --- roster --------------------------------------------------------------------------------


def _progress(stream: Any = sys.stderr) -> Callable[[Progress], None]:
    def show(progress: Progress) -> None:
        total = "?" if progress.total is None else str(progress.total)
        owner, name = progress.collection.rsplit("/", 2)[-2:]
        line = f"backfill {owner[:12]} {name}: {progress.items}/{total} items"
        stream.write("\r" + line.ljust(60))
        stream.flush()

    return show


async def _flush_deliveries(runtime: Any) -> None:
    """Send the queued Follows/Undos now; what does not go stays queued for the server."""
    try:
        await runtime.federation.worker.run_until_idle(timeout=DELIVERY_WAIT)
    except TimeoutError:
        print("barri: some deliveries are still queued; the server will send them")


async def _roster_add(aggregator: Aggregator, args: argparse.Namespace) -> int:
    from federation.aggregator.wiring import running_federation

    async with running_federation(aggregator) as runtime:
        row, warnings = await runtime.roster.add(
            args.url, args.territory, args.district, group=args.group
        )
        for warning in warnings:
            print(f"barri: warning: {warning}", file=sys.stderr)
        print(
            f"added {row.origin} (neighbourhood {row.territory}, district {row.district});"
            f" following {row.instance_actor} and {row.group_actor}"
        )
        await _flush_deliveries(runtime)
        if not args.no_backfill:
            read = await runtime.backfill.instance(row, _progress())
            print(f"\nbackfilled {read} items from {row.origin}", file=sys.stderr)
    return 0


async def _roster_remove(aggregator: Aggregator, args: argparse.Namespace) -> int:
    from federation.aggregator.wiring import running_federation

    async with running_federation(aggregator) as runtime:
        row = await runtime.roster.remove(args.url)
        print(f"removed {row.origin}: unfollowed; its supports no longer count (data kept)")
        await _flush_deliveries(runtime)
    return 0


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(status: RosterStatus) -> tuple[str, ...]:
    row = status.row
    follows = ",".join(sorted({f.state for f in status.follows if f.state != "undone"})) or "-"
    return (
        row.origin,
        row.territory,
        row.district,
        "yes" if row.active else "removed",
        follows,
        _when(row.last_activity_at),
        str(status.backlog),
    )


async def _roster_list(aggregator: Aggregator, args: argparse.Namespace) -> int:
    from federation.aggregator.roster import RosterService
    from federation.aggregator.wiring import build_federation

    roster = RosterService(aggregator, await build_federation(aggregator))
    header = ("ORIGIN", "TERRITORY", "DISTRICT", "ACTIVE", "FOLLOWS", "LAST ACTIVITY", "BACKLOG")
    rows: list[tuple[str, ...]] = [header]
    rows += [_row(status) for status in await roster.status()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip())
    return 0


# --- tally ---------------------------------------------------------------------------------


async def _tally(aggregator: Aggregator, args: argparse.Namespace) -> int:
    if not args.recompute:
        result = await aggregator.state.result()
        for tally in result.processes:
            print(f"{tally.process}: {tally.supports} supports, {tally.participants} participants")
        print(f"{len(result.anomalies)} anomalies; {aggregator.state.waiting} supports waiting")
        return 0
    from federation.aggregator.recompute import recompute

    comparison = await recompute(aggregator)
    summary = (
        f"recomputed {comparison.supports} supports and {comparison.undos} undos"
        f" over {len(comparison.recomputed.processes)} processes"
    )
    if comparison.agree:
        print(f"{summary}: agrees with the incremental totals")
        return 0
    print(f"barri: error: {summary}: DISAGREES with the incremental totals", file=sys.stderr)
    for line in comparison.differences():
        print(f"  {line}", file=sys.stderr)
    return 1


# --- serve ---------------------------------------------------------------------------------


def _serve_any(instance_serve: Command | None) -> Command:
    """``barri serve``: an aggregator when the config says so, else what it did before."""

    def run(args: argparse.Namespace) -> int:
        if config_kind(args.config) == "aggregator":
            return _guarded(lambda a: serve_aggregator(a.config, verbose=a.verbose))(args)
        if instance_serve is None:
            print("barri: error: this config is not an aggregator's", file=sys.stderr)
            return 1
        return instance_serve(args)

    return run


def serve_aggregator(path: Path, *, verbose: bool = False) -> int:
    """Run the aggregator a config file describes until SIGINT or SIGTERM."""
    config = load_aggregator_config(path)
    from federation.aggregator.app import create_app
    from federation.serving import configure_logging, serve_until_signalled

    configure_logging(verbose)
    label = f"aggregator {config.base_url}"
    app = create_app(config)
    app.on_startup.append(_freeze_startup_objects)  # after the rebuild (cleanup_ctx) is done
    return asyncio.run(serve_until_signalled(app, config.listen_host, config.listen_port, label))


async def _freeze_startup_objects(_app: web.Application) -> None:
    """What start-up built (modules, caches, the rebuilt tally) lives as long as the server:
    move it out of the cyclic collector's sight (gc.freeze), so that the collections the
    short-lived JSON of every request sets off do not walk it again and again; and let the
    young generation grow to 10,000 objects (not 700) before one, since a request's parsed
    activity alone holds hundreds of containers, all freed by reference counting anyway."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


# --- standalone ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """A parser with only the aggregator's commands (the same as under ``barri``)."""
    parser = argparse.ArgumentParser(prog="barri", description="Barri's city aggregator.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    init = sub.add_parser("init", help="write the config of a new server")
    add_init_aggregator(init.add_subparsers(dest="kind", metavar="KIND", required=True))
    serve = sub.add_parser("serve", help="run the aggregator a config file describes")
    add_config_option(serve)
    serve.add_argument("--verbose", action="store_true", help="log requests and progress")
    add_aggregator_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one aggregator command; exit status 0 on success, 1 on an operator error."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
