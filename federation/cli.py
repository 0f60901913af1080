"""The ``barri`` command line: one readable line on error, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from federation import __doc__ as _about


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand registers itself here."""
    parser = argparse.ArgumentParser(
        prog="barri",
        description="Barri: ActivityPub servers for neighbourhood democracy.",
        epilog=_about,
    )
    parser.add_argument("--version", action="version", version="barri 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "demo",
        help="start a demo city on loopback (not available yet: it arrives with the demo issue)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``barri`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        print(
            "barri: the demo city is not built yet; this release has the protocol core only.",
            file=sys.stderr,
        )
        return 2
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
