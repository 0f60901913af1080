"""The cold rebuild of a city a finished run left, again, without running the city again.

``python -m benchmarks.citysim.rebuild DIR [--name NAME] [--py-spy BINARY]``

A ``barcelona`` run takes two hours to make its city and minutes to rebuild it; tuning the
rebuild needs the rebuild alone. This starts every server a finished run left in ``DIR``
(each ``*/barri.toml``, on the ports it had), reads the aggregator's results for every
process (the totals that run found exact), empties the aggregator as ``--cold-rebuild`` does
(:func:`benchmarks.citysim.runner.cold_rebuild`: keys, roster and Follows kept), and times its
backfill until it shows those totals again. The figures go to
``benchmarks/results/citysim-NAME-rebuild.json`` and a readable ``.txt``; with ``--py-spy``,
the rebuild's profiles to ``citysim-NAME-rebuild*-pyspy.txt``. Exit 1 unless it converged
to the same totals.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from benchmarks.citysim import cluster
from benchmarks.citysim.cluster import City, CityError
from benchmarks.citysim.faults import FaultProxy, Faults
from benchmarks.citysim.runner import RESULTS, cold_rebuild, result_of
from benchmarks.citysim.sampling import Sampler
from benchmarks.citysim.workload import observed
from benchmarks.provenance import code_version
from federation.demo_data import Place
from federation.demo_procs import DemoError
from federation.demo_seed import Site


def reopen(directory: Path) -> City:
    """The City a run left in ``directory``: its aggregator and instances, from their configs."""
    aggregator: Site | None = None
    sites: dict[str, Site] = {}
    for config in sorted(directory.glob("*/barri.toml")):
        values = tomllib.loads(config.read_text(encoding="utf-8"))
        key, base_url = config.parent.name, str(values["base_url"])
        port = int(str(values["listen"]).rsplit(":", 1)[1])
        if values.get("kind") == "aggregator":
            aggregator = Site("aggregator", None, port, config.parent, base_url)
            continue
        kind = str(values.get("territory_kind", "neighbourhood"))
        name, group = str(values.get("name", key)), str(values.get("group", key))
        territory = str(values.get("territory", ""))
        place = Place(key, key, name, group, territory, kind, values.get("district"), ())
        sites[key] = Site(key, place, port, config.parent, base_url)
    if aggregator is None or not sites:
        raise CityError(f"{directory} holds no finished city (no aggregator or no instance)")
    public = URL(aggregator.base_url).port
    proxied = public if public is not None and public != aggregator.port else None
    return City(directory, aggregator, sites, proxy_port=proxied)


async def totals_now(city: City, session: aiohttp.ClientSession) -> tuple[dict[str, Any], set[str]]:
    """What the aggregator shows for every process (the shape ``converge`` compares), and
    every proposal id (each proposal's state is compared too)."""
    async with session.get(city.aggregator.base_url + "/api/v1/processes") as response:
        listed = (await response.json())["processes"]
    city.processes = {str(entry["id"]): str(entry["id"]) for entry in listed}
    bodies = {iri: await result_of(city, session, iri) for iri in city.processes.values()}
    every = {str(p["id"]) for body in bodies.values() for p in body.get("proposals", [])}
    return {iri: observed(body, every) for iri, body in bodies.items()}, every


async def rebuild_again(directory: Path, name: str, spy: str | None) -> dict[str, Any]:
    """Start the city, note its totals, rebuild the aggregator from empty; the figures."""
    city = reopen(directory)
    sampler = Sampler(spy, RESULTS, f"{name}-again")
    # A city whose aggregator sat behind the fault proxy is known by the proxy's origin: one
    # that passes everything through stands there now.
    proxy = FaultProxy(city.aggregator.local_url, Faults())
    runner = None if city.proxy_port is None else await proxy.start(city.proxy_port)
    try:
        await cluster.start(city)
        async with aiohttp.ClientSession() as session:
            want, every = await totals_now(city, session)
            if not any(totals["supports"] for totals in want.values()):
                raise CityError(f"the aggregator in {directory} counts no support to rebuild")
            rebuilt = await cold_rebuild(city, session, want, every, sampler)
    finally:
        await sampler.stop_all()
        await city.servers.stop()
        await proxy.close()
        if runner is not None:
            await runner.cleanup()
    return {"name": name, "directory": str(directory), "instances": len(city.sites),
            "code": code_version(), "cold_rebuild": rebuilt}  # fmt: skip


def summary(results: dict[str, Any]) -> str:
    """One readable paragraph of a rebuild's figures."""
    cold = results["cold_rebuild"]
    verdict = "exact" if cold["exact"] else f"MISMATCH {sorted(cold['mismatches'])[:3]}"
    return (f"citysim rebuild of {results['name']} ({results['instances']} instances,"
            f" code {results['code']}): {verdict}, {cold['supports']} supports in"
            f" {cold['seconds']} s ({cold['supports_per_s']}/s, {cold['supports_per_cpu_s']} per"
            f" CPU s; the last stored at {cold.get('last_stored_s')} s), its whole first pass"
            f" (threads too) done at {cold.get('backfill_done_s')} s;"
            f" aggregator {cold['aggregator']}; backfill workers {cold['workers']};"
            f" instances serving {cold['instances_cpu_seconds']} CPU s;"
            f" cores {cold['machine_busy']} busy; instances settled in"
            f" {cold['instances_settled_s']} s")  # fmt: skip


def main() -> int:
    """Rebuild the city in DIR again, write the figures, exit 1 unless exact."""
    parser = argparse.ArgumentParser(prog="citysim.rebuild", description=__doc__)
    parser.add_argument("dir", type=Path, help="the --dir of a finished citysim run")
    parser.add_argument("--name", help="names the result files (default: the folder's name)")
    parser.add_argument("--py-spy", metavar="BINARY", help="sample the rebuild with py-spy")
    args = parser.parse_args()
    directory = args.dir.resolve()
    name = args.name or directory.name
    try:
        results = asyncio.run(rebuild_again(directory, name, args.py_spy))
    except (CityError, DemoError, OSError, KeyError, ValueError) as exc:
        print(f"citysim.rebuild: error: {exc}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"citysim-{name}-rebuild.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    text = summary(results)
    path.with_suffix(".txt").write_text(text + "\n")
    print(text)
    return 0 if results["cold_rebuild"]["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
