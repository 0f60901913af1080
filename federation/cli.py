"""The ``barri`` command line: one readable line on error, never a traceback.

``barri init instance`` writes a commented ``barri.toml``; ``barri serve`` runs the instance it
describes; ``barri admin`` (:mod:`federation.instance.cli`) manages accounts, verification, the
census, access tokens and the Group's participatory processes.

Every command builds the whole parser, so the modules that add commands to it import only
argparse-level things at their top; what a command runs (the aiohttp apps, the instance, the
aggregator) is imported by its handler: an instance must fit a Raspberry Pi (DESIGN.md §1).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from federation import __doc__ as _about
from federation.aggregator.cli import add_aggregator_commands, add_init_aggregator
from federation.backup import add_backup_commands
from federation.cli_support import CliError, Command, add_config_option, one_line
from federation.client import add_client_commands
from federation.config import TERRITORY_KINDS, load_config
from federation.config_values import DEFAULT_LISTEN, ConfigError
from federation.config_writer import InitOptions, write_instance_config
from federation.demo import add_demo_command
from federation.instance.cli import add_admin_commands


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand registers itself here."""
    parser = argparse.ArgumentParser(
        prog="barri",
        description="Barri: ActivityPub servers for neighbourhood democracy.",
        epilog=_about,
    )
    parser.add_argument("--version", action="version", version="barri 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_demo_command(sub)
    _add_init(sub)
    serve = sub.add_parser("serve", help="run the server a config file describes")
    add_config_option(serve)
    serve.add_argument("--verbose", action="store_true", help="log requests and progress")
    serve.set_defaults(run=_serve)
    add_admin_commands(sub)
    add_aggregator_commands(sub)
    add_backup_commands(sub)
    add_client_commands(sub)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand without a description its one-line help as one (for --help)."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, child in action.choices.items():
            if child.description is None and helps.get(name):
                text = str(helps[name])
                child.description = text[0].upper() + text[1:] + "."
            _describe(child)


def _add_init(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = sub.add_parser("init", help="write the config of a new server")
    kinds = init.add_subparsers(dest="kind", metavar="KIND", required=True)
    add_init_aggregator(kinds)
    p = kinds.add_parser("instance", help="a neighbourhood association's instance")
    p.add_argument("--dir", type=Path, required=True, help="folder for barri.toml and the data")
    p.add_argument("--base-url", required=True, help="public origin, e.g. https://raval.example")
    p.add_argument("--name", required=True, help="the association's name")
    p.add_argument("--group", help="the Group's handle (default: made from --name)")
    p.add_argument("--territory", metavar="CODE", help="official code of the territory served")
    p.add_argument("--territory-kind", choices=TERRITORY_KINDS, default="neighbourhood")
    p.add_argument("--district", metavar="CODE", help="official code of its district")
    p.add_argument(
        "--report-to",
        action="append",
        default=[],
        metavar="ACTOR_ID",
        help="an aggregator actor id to report to (repeatable)",
    )
    p.add_argument("--allow-loopback", action="store_true", help="tests and demos only")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT")
    p.add_argument("--force", action="store_true", help="overwrite an existing barri.toml")
    p.set_defaults(run=_init_instance)


def _init_instance(args: argparse.Namespace) -> int:
    options = InitOptions(
        base_url=args.base_url,
        name=args.name,
        secret=secrets.token_urlsafe(32),
        group=args.group,
        territory=args.territory,
        territory_kind=args.territory_kind,
        district=args.district,
        report_to=tuple(args.report_to),
        allow_loopback=args.allow_loopback,
        listen=args.listen,
    )
    path = write_instance_config(args.dir, options, force=args.force)
    print(f"wrote {path}; start it with: barri serve --config {path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """``barri serve`` of an instance (the aggregator's commands take over an aggregator's)."""
    config = load_config(args.config)
    # Imported here, not at the top: every `barri` command would pay its memory and time.
    from federation.instance.app import create_app
    from federation.serving import configure_logging, serve_until_signalled

    configure_logging(args.verbose)
    app = create_app(config)
    return asyncio.run(
        serve_until_signalled(app, config.listen_host, config.listen_port, config.base_url)
    )


# --- entry point ---------------------------------------------------------------------------


def _operator_error(exc: Exception) -> bool:
    """A CliError, ConfigError, AccountError or StartupError: the operator can fix it."""
    if isinstance(exc, CliError | ConfigError):
        return True
    # The other two live in modules only some commands load; asked only once a command failed.
    from federation.instance.accounts import AccountError
    from federation.serving import StartupError

    return isinstance(exc, AccountError | StartupError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``barri`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Command | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 0
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Never a traceback for the operator; the type names the bug for a report.
        detail = one_line(str(exc))
        if not _operator_error(exc):
            detail = f"unexpected {type(exc).__name__}: {detail}"
        print(f"barri: error: {detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
