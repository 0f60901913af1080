"""What the ``barri`` command line and the modules adding commands to it share.

Kept apart from :mod:`federation.cli` so that :mod:`federation.instance.cli` can use it without
an import cycle, and light: every ``barri`` command imports it, so it imports nothing heavy.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from federation.config_values import CONFIG_FILE

Command = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A command failed in a way the operator can fix; the message is the one line shown."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``, the server's config file (default ``./barri.toml``, DESIGN.md §8)."""
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(CONFIG_FILE),
        metavar="FILE",
        help=f"the server's config file (default: ./{CONFIG_FILE})",
    )


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(text.split())
