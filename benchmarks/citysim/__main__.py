"""``python -m benchmarks.citysim --profile ci|district|barcelona [fault flags]``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from benchmarks.citysim.cluster import CityError
from benchmarks.citysim.faults import Faults
from benchmarks.citysim.measure import summary_of
from benchmarks.citysim.profiles import PROFILES, scaled
from benchmarks.citysim.runner import simulate, write
from federation.demo_procs import DemoError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citysim", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ci")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every act count")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--dir", type=Path, default=Path(".citysim"))
    parser.add_argument("--kill-aggregator", action="store_true",
                        help="SIGKILL the aggregator mid-stream and restart it")  # fmt: skip
    parser.add_argument("--instance-down", action="store_true",
                        help="stop one instance for a few seconds mid-stream")  # fmt: skip
    parser.add_argument("--duplicate", action="store_true",
                        help="deliver every activity to the aggregator twice")  # fmt: skip
    parser.add_argument("--reorder", action="store_true",
                        help="hold Likes up to 2 s so their Undo arrives first")  # fmt: skip
    parser.add_argument("--drop", type=float, default=0.0, metavar="FRACTION",
                        help="lose this fraction of deliveries (backfill recovers)")  # fmt: skip
    parser.add_argument("--clock-skew", type=float, default=0.0, metavar="SECONDS",
                        help="one instance's clock this far ahead, another's behind")  # fmt: skip
    parser.add_argument("--malicious", action="store_true",
                        help="a rostered instance forges supports")  # fmt: skip
    parser.add_argument("--cold-rebuild", action="store_true",
                        help="then empty the aggregator, time its rebuild")  # fmt: skip
    parser.add_argument("--py-spy", metavar="BINARY",
                        help="py-spy the aggregator and the city instance with it")  # fmt: skip
    parser.add_argument("--all-faults", action="store_true",
                        help="every fault at once (drop 0.05, clock skew 120 s)")  # fmt: skip
    return parser


def faults_of(args: argparse.Namespace) -> Faults:
    """The Faults the flags ask for."""
    if args.all_faults:
        return Faults(True, True, True, True, 0.05, 120.0, True, args.cold_rebuild)
    return Faults(args.kill_aggregator, args.instance_down, args.duplicate, args.reorder,
                  args.drop, args.clock_skew, args.malicious, args.cold_rebuild)  # fmt: skip


def main() -> int:
    """Run one profile, write its results, exit 1 unless the totals were exact."""
    args = _parser().parse_args()
    if not 0.0 <= args.drop < 1.0:
        print("citysim: error: --drop must be a fraction from 0 to below 1", file=sys.stderr)
        return 2
    profile = scaled(PROFILES[args.profile], args.scale)
    try:
        results = asyncio.run(simulate(profile, args.dir.resolve(), seed=args.seed,
                                       faults=faults_of(args), scale=args.scale,
                                       spy=args.py_spy))  # fmt: skip
    except (CityError, DemoError) as exc:
        print(f"citysim: error: {exc}", file=sys.stderr)
        return 2
    write(results)
    print(summary_of(results))
    return 0 if results["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
