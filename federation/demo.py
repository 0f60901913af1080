"""``barri demo``: a whole demo city on loopback in one command, seeded like real people would.

It starts the city's aggregator on port N (default 8700), the city's own instance on N+1 (it
owns the city-wide participatory budget) and three neighbourhood instances on N+2..N+4 —
Gràcia, Sants and Poblenou with their official codes — each a ``barri serve`` child process
with its own folder and SQLite file under ``.demo/``. The first run seeds them through the
public interfaces only (:mod:`federation.demo_seed`), waits until the aggregator's totals
equal what the seeding did, prints the URLs to open and a line of totals, then says
``barri demo: ready`` and runs until Ctrl-C (or SIGTERM), when it stops every child: SIGTERM,
a grace period, then SIGKILL. A later run reuses ``.demo/`` without seeding again; ``--fresh``
starts over. Children live in their own session (Ctrl-C reaches the demo, which stops them in
order) and, on Linux, die with the demo even if it is killed outright.

``--public-url https://{name}.barri.localhost --listen-host 0.0.0.0`` runs the same city behind
a TLS reverse proxy (deploy/compose.yaml): ids and every request then use the public origins,
and only the health checks go to the servers directly.

This module is the command (every ``barri`` command builds its parser, so it imports nothing
heavy); :mod:`federation.demo_run` runs the city.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

DEFAULT_PORT_BASE = 8700
LOOPBACK_URL = "http://127.0.0.1:{port}"
DEMO_DIR = Path(".demo")


def add_demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``barri demo [--port-base N] [--fresh] [--dir DIR]``."""
    demo = sub.add_parser(
        "demo",
        help="start a demo city on this computer (5 servers on 127.0.0.1) and print its URLs",
        description="Start a demo city on 127.0.0.1: the aggregator on port N, the city's"
        " instance on N+1, Gràcia, Sants and Poblenou on N+2 to N+4, seeded with residents,"
        " proposals, supports and comments. Stop it with Ctrl-C.",
    )
    demo.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE, metavar="N",
                      help=f"first of the five ports (default: {DEFAULT_PORT_BASE})")  # fmt: skip
    demo.add_argument("--fresh", action="store_true",
                      help="throw away the demo data of an earlier run and seed again")  # fmt: skip
    demo.add_argument("--dir", type=Path, default=DEMO_DIR,
                      help=f"where the demo keeps its data (default: ./{DEMO_DIR})")  # fmt: skip
    demo.add_argument("--public-url", default=LOOPBACK_URL, metavar="TEMPLATE",
                      help="each server's public origin, from {name} (aggregator, city, gracia,"
                      " sants, poblenou) and {port}, e.g. https://{name}.barri.localhost behind"
                      f" a TLS proxy (default: {LOOPBACK_URL})")  # fmt: skip
    demo.add_argument("--listen-host", default="127.0.0.1", metavar="HOST",
                      help="the address the servers listen on (default: 127.0.0.1)")  # fmt: skip
    demo.set_defaults(run=_demo_command)


def _demo_command(args: argparse.Namespace) -> int:
    if not 1024 <= args.port_base <= 65535 - 4:
        print("barri: error: --port-base must be from 1024 to 65531", file=sys.stderr)
        return 1
    if "{name}" not in args.public_url and "{port}" not in args.public_url:
        print("barri: error: --public-url needs {name} or {port}", file=sys.stderr)
        return 1
    # Imported here, not at the top: every `barri` command would pay its memory and time.
    from federation.demo_procs import DemoError
    from federation.demo_run import Origins, run_demo
    from federation.demo_seed import SeedError

    origins = Origins(args.port_base, args.public_url, args.listen_host)
    try:
        return asyncio.run(run_demo(args.dir, origins, fresh=args.fresh))
    except (DemoError, SeedError) as exc:
        print(f"barri: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
