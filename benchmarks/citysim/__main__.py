"""``python -m benchmarks.citysim --profile ci|district|barcelona [fault flags]``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from benchmarks.citysim.measure import summary_of
from benchmarks.citysim.profiles import PROFILES, scaled
from benchmarks.citysim.runner import Faults, simulate, write


def main() -> int:
    """Run one profile, write its results, exit 1 unless the totals were exact."""
    parser = argparse.ArgumentParser(prog="citysim", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ci")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every act count")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--dir", type=Path, default=Path(".citysim"))
    parser.add_argument("--kill-aggregator", action="store_true")
    parser.add_argument("--instance-down", action="store_true")
    args = parser.parse_args()
    profile = scaled(PROFILES[args.profile], args.scale)
    faults = Faults(args.kill_aggregator, args.instance_down)
    results = asyncio.run(simulate(profile, args.dir.resolve(), seed=args.seed, faults=faults))
    write(results)
    print(summary_of(results))
    return 0 if results["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
