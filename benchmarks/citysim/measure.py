"""What a run measures: process resources from /proc, DB sizes, the crypto ceiling, latency."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from benchmarks.citysim.cluster import City
from benchmarks.citysim.workload import Act


def proc_stats(pid: int) -> dict[str, float]:
    """Peak and current RSS (MB, VmHWM and VmRSS) and CPU seconds (utime+stime) of a live
    process, and the CPU seconds of the children it has reaped (cutime+cstime: the
    aggregator's backfill workers) (Linux /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return {}
    hwm = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmHWM:")), 0)  # fmt: skip
    now = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")), 0)  # fmt: skip
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
    children = (int(fields[13]) + int(fields[14])) / ticks  # cutime, cstime (fields 16, 17)
    return {"peak_rss_mb": round(hwm / 1024, 1), "rss_mb": round(now / 1024, 1),
            "cpu_seconds": round(cpu, 2), "children_cpu_seconds": round(children, 2)}  # fmt: skip


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc, its main thread's children)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def autogroup(pid: int) -> str | None:
    """The scheduler autogroup of ``pid`` and its niceness ("/autogroup-12 nice 19"), if any."""
    try:
        return Path(f"/proc/{pid}/autogroup").read_text().strip()
    except OSError:
        return None


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine since boot (Linux /proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0, 0
    ticks = [int(value) for value in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Share of the machine's CPU time in use between two :func:`cpu_jiffies` readings (1.0:
    every core busy): near 1, a process that got little CPU was starved, not idle."""
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total > 0 else None


def rss_mb(pid: int) -> float | None:
    """Resident set size (MB, VmRSS) of a live process right now (Linux /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kb = next((int(line.split()[1]) for line in status.splitlines()
               if line.startswith("VmRSS:")), 0)  # fmt: skip
    return round(kb / 1024, 1)


def db_sizes(directory: Path) -> dict[str, int]:
    """Bytes of every SQLite file (with -wal) per server folder."""
    sizes: dict[str, int] = {}
    for path in sorted(directory.glob("*/*.sqlite*")) + sorted(directory.glob("*/*.db*")):
        key = path.parent.name
        sizes[key] = sizes.get(key, 0) + path.stat().st_size
    return sizes


def _rate(operation: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            operation()
        count += 50
    return count / elapsed


def crypto_ceiling(seconds: float = 1.0) -> dict[str, float]:
    """Ed25519 (cryptography, and PyNaCl when installed) and RSA-2048 (PKCS#1 v1.5, SHA-256)
    verifications per second on this core."""
    message = b"x" * 512
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_sig, ed_pub = ed_key.sign(message), ed_key.public_key()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_sig = rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    rsa_pub = rsa_key.public_key()
    found: dict[str, float] = {
        "ed25519_verify_per_s": round(_rate(lambda: ed_pub.verify(ed_sig, message), seconds)),
        "rsa2048_verify_per_s": round(_rate(
            lambda: rsa_pub.verify(rsa_sig, message, padding.PKCS1v15(), hashes.SHA256()),
            seconds)),
    }  # fmt: skip
    try:
        import nacl.signing  # the fastest well-kept Ed25519 (libsodium); the bench extra has it
    except ImportError:
        return found
    nacl_key = nacl.signing.SigningKey.generate()
    signed, verify = nacl_key.sign(message), nacl_key.verify_key
    found["ed25519_pynacl_verify_per_s"] = round(_rate(lambda: verify.verify(signed), seconds))
    return found


def _delta(act: Act) -> int:
    return {"support": 1, "withdraw": -1}.get(act.kind, 0)


def latencies(
    done: list[tuple[float, Act]],
    ids: dict[str, str],
    polls: list[tuple[float, dict[str, int]]],
) -> list[tuple[float, float]]:
    """(sent at, act→counted seconds) per support and withdrawal.

    An act on proposal p counts at the first poll whose count for p equals the count right
    after it or after a later act on p already sent (the aggregator may be ahead).
    """
    history: dict[str, list[tuple[float, int]]] = {}
    counts: dict[str, int] = {}
    for when, act in sorted(done, key=lambda item: item[0]):
        if _delta(act) == 0:
            continue
        iri = ids[act.proposal]
        counts[iri] = counts.get(iri, 0) + _delta(act)
        history.setdefault(iri, []).append((when, counts[iri]))
    found: list[tuple[float, float]] = []
    for iri, acts in history.items():
        seen = [(t, snap.get(iri, 0)) for t, snap in polls]
        for k, (sent, _after) in enumerate(acts):
            for t, value in seen:
                if t < sent:
                    continue
                later = {after for when, after in acts[k:] if when <= t}
                if value in later:
                    found.append((sent, t - sent))
                    break
    return found


def recoveries(
    counted: list[tuple[float, float]], events: list[tuple[str, float]], started: float
) -> dict[str, float]:
    """Seconds from each fault's end ("… back") until every act sent before it was counted."""
    found: dict[str, float] = {}
    for name, at in events:
        if not name.endswith(" back"):
            continue
        end = started + at
        seen = [sent + lat for sent, lat in counted if sent <= end]
        found[name] = round(max(seen) - end, 2) if seen else 0.0
    return found


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p99 and max in seconds (None when nothing was measured)."""
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": pick(0.5), "p99": pick(0.99), "max": round(ordered[-1], 3), "n": len(values)}


def _hops(found: dict[str, dict[str, float | None]]) -> str:
    parts = [f"{name.removesuffix('_s')} p50 {v.get('p50')} / p99 {v.get('p99')} s"
             for name, v in found.items()]  # fmt: skip
    return "; ".join(parts) or "no hops measured"


def _rows(database: Path, sql: str, *params: str) -> list[tuple[str, float]]:
    """Rows of a server's database, read-only (none when it has no such file or table)."""
    if not database.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            return [(str(key), float(when)) for key, when in db.execute(sql, params)]
    except sqlite3.Error:
        return []


def hops(city: City, liked_at: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """Where supports' act→counted time went, from the servers' own records (wall clock):
    ``delivered_s`` from the resident's 201 until its instance's delivery to the aggregator was
    accepted (the instance's outgoing queue), ``ingested_s`` from then until the aggregator
    handled it (its inbox queue), and ``handled_s`` the whole way: the act→counted latency
    without the latency poller's interval (counted is the handling batch's commit, moments
    later). Read before a cold rebuild empties the aggregator."""
    target = urlsplit(city.aggregator.base_url).netloc
    delivered: dict[str, float] = {}
    for site in city.sites.values():
        delivered.update(_rows(
            site.directory / "barri.sqlite3",
            "SELECT activity_id, updated_at FROM deliveries WHERE host = ? AND state = 'sent'",
            target,
        ))  # fmt: skip
    ingested = dict(_rows(
        city.aggregator.directory / "barri.sqlite3",
        "SELECT id, MIN(received_at) FROM activities WHERE kind = 'support' GROUP BY id",
    ))  # fmt: skip
    sent = [(like, at) for like, at in liked_at.items() if like in delivered]
    return {
        "delivered_s": percentiles([delivered[like] - at for like, at in sent]),
        "ingested_s": percentiles([ingested[like] - delivered[like]
                                   for like, _ in sent if like in ingested]),
        "handled_s": percentiles([ingested[like] - at
                                  for like, at in liked_at.items() if like in ingested]),
    }  # fmt: skip


def summary_of(results: dict[str, Any]) -> str:
    """A readable few lines of a run's results."""
    lat = results.get("latency_s", {})
    burst = results.get("burst") or {}
    lines = [
        f"citysim {results['profile']} x{results.get('scale', 1.0):g}:"
        f" {'EXACT' if results['exact'] else 'MISMATCH'}"
        f" ({results['acts']} acts, faults: {', '.join(results['faults']) or 'none'};"
        f" code {results.get('code', '?')})",
        f"  acts sent in {results['send_seconds']:.1f} s ({results['acts_per_s']:.0f}/s);"
        f" converged {results['converge_seconds']:.1f} s after the last act",
        f"  act→counted p50 {lat.get('p50')} s, p99 {lat.get('p99')} s, max {lat.get('max')} s"
        f" (n={lat.get('n')}); of which {_hops(results.get('latency_hops') or {})}",
        f"  ingest at the aggregator: {results['ingest_per_s']:.0f} counted acts/s;"
        f" ceiling {results['ceiling']}; ratio {results['ratio_to_ceiling']:.3f}",
        f"  aggregator CPU: {results.get('aggregator_capacity')}; the machine's cores were"
        f" {results.get('machine_busy')} busy from the stream's start to convergence"
        f" (neighbourhood instances at nice {results.get('instance_nice')}, the city's at 0;"
        f" autogroups"
        f" {results.get('autogroups')})",
        f"  aggregator {results['aggregator']}; one instance {results['instance']};"
        f" idle before the stream {results.get('idle_before_stream')}",
        f"  instances' CPU seconds since their start {results.get('instances_cpu')}",
        f"  aggregator's wall time by /metrics: {results.get('aggregator_work')}",
        f"  DB bytes {results['db_bytes']}",
    ]
    if burst.get("supports"):
        lines.insert(2, f"  burst: {burst['supports']} supports sent in {burst['seconds']} s"
                        f" ({burst['per_s']}/s)")  # fmt: skip
    if results.get("proxy"):
        lines.append(f"  fault proxy {results['proxy']}; resident retries"
                     f" {results.get('driver_retries')}")  # fmt: skip
    if results.get("malicious"):
        bad = results["malicious"]
        lines.append(
            f"  malicious: {bad['forged']} forged refused, {bad['backdated']} backdated"
            f" and {bad['over_limit']} over-limit flagged, {len(bad['counted'])} counted"
        )
    cold = results.get("cold_rebuild")
    if cold:
        lines.append(f"  cold rebuild: {'exact' if cold['exact'] else 'MISMATCH'},"
                     f" {cold['supports']} supports in {cold['seconds']} s"
                     f" ({cold['supports_per_s']}/s, {cold.get('supports_per_cpu_s')} per CPU s),"
                     f" whole first pass done at {cold.get('backfill_done_s')} s;"
                     f" aggregator {cold['aggregator']}; backfill workers"
                     f" {cold.get('workers')}; instances serving"
                     f" {cold.get('instances_cpu_seconds')} CPU s;"
                     f" cores {cold.get('machine_busy')} busy; started after the instances"
                     f" settled ({cold.get('instances_settled_s')} s)")  # fmt: skip
    if results.get("timeline"):
        lines.append("  timeline (s): " + ", ".join(f"{e} {t}" for e, t in results["timeline"]))
    if results.get("recovery_s"):
        lines.append(
            "  all acts sent before a fault's end counted within (s): "
            + ", ".join(f"{e} +{t}" for e, t in results["recovery_s"].items())
        )
    return "\n".join(lines)
