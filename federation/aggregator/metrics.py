"""``GET /metrics``: the aggregator in Prometheus text format 0.0.4 (DESIGN.md §8).

- ``barri_ingested_activities_total{type,outcome}``: activities ingest handled since start
  (every route; the inner activity of an Announce counts too);
- ``barri_stored_activities{kind}``: verified supports and undos stored (the source of truth);
- ``barri_anomalies{rule}`` and ``barri_instance_anomalies{instance,rule}``: the tally's flags;
- ``barri_refusals{reason}``: deliveries refused at the door, by reason;
- ``barri_backlog{instance}``: per roster instance, unprocessed inbox rows plus backfill items
  known but not read;
- ``barri_supports_counted{process}``, ``barri_participants{process}``;
- ``barri_tally_age_seconds{process}``: since the process's newest published Tally;
- ``barri_tally_sync_age_seconds``: since the tally last read the store;
- ``barri_inbox_rows_total``, ``barri_inbox_batches_total`` and
  ``barri_inbox_phase_seconds_total{phase}``: inbox rows and batches handled, and the wall
  time batches spent claiming, preparing (warm-up fetches), handling,
  committing and finishing them: where a lagging inbox waits;
- ``barri_inbox_rate_limited_total``: deliveries from servers off the roster answered 429
  (:mod:`.quota`);
- ``barri_inbox_lag_seconds`` (histogram): from each inbox row's receipt until the batch
  that handled it was committed and counted, the aggregator's share of act→counted;
- ``barri_backfill_running`` and ``barri_backfill_passes_total``: whole backfill passes over
  the roster running now, and finished since start (an operator, or a benchmark, waits for
  the first pass of a rebuild to end);
- ``barri_fetches_total{outcome}`` and ``barri_fetch_seconds_total``: outbound GETs (actors,
  objects, collection pages) and their wall time in all.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from activitypub.fetch import FetchStats
from activitypub.lag import LagHistogram
from federation.aggregator.wiring import Aggregator, Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Getter = Callable[[web.Request], Any]


def escape_label(value: str) -> str:
    """A label value escaped as the exposition format requires (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{escape_label(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


class Exposition:
    """Families of samples, written with their HELP and TYPE lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        """One metric family: ``# HELP``, ``# TYPE`` and its samples (sorted by labels)."""
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in sorted(samples, key=lambda s: sorted(s[0].items())):
            number = int(value) if float(value).is_integer() else round(value, 3)
            self.lines.append(f"{name}{_labels(labels)} {number}")

    def histogram(self, name: str, help_text: str, histogram: LagHistogram) -> None:
        """One histogram family: cumulative ``_bucket{le}`` samples, ``_sum`` and ``_count``."""
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        for bound, seen in histogram.cumulative():
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            self.lines.append(f'{name}_bucket{{le="{le}"}} {seen}')
        self.lines.append(f"{name}_sum {round(histogram.sum, 3)}")
        self.lines.append(f"{name}_count {histogram.count}")

    def text(self) -> str:
        """The whole exposition, newline-terminated."""
        return "\n".join(self.lines) + "\n"


async def collect(aggregator: Aggregator, runtime: Runtime, now: float) -> str:
    """Every metric, now."""
    out = Exposition()
    ingested = runtime.ingest.counts
    out.family(
        "barri_ingested_activities_total", "counter",
        "Activities handled by ingest since start, by type and outcome.",
        [({"type": t, "outcome": o}, n) for (t, o), n in ingested.items()],
    )  # fmt: skip
    stored = await aggregator.log.stored_by_kind()
    out.family(
        "barri_stored_activities", "gauge", "Verified supports and undos stored.",
        [({"kind": kind}, stored.get(kind, 0)) for kind in ("support", "undo")],
    )  # fmt: skip
    result = await aggregator.state.result()
    rules = Counter(str(a.rule) for a in result.anomalies)
    out.family("barri_anomalies", "gauge", "Supports refused or flagged by the tally, by rule.",
               [({"rule": rule}, n) for rule, n in rules.items()])  # fmt: skip
    per_instance = Counter((a.instance, str(a.rule)) for a in result.anomalies)
    out.family("barri_instance_anomalies", "gauge", "Tally anomalies per instance and rule.",
               [({"instance": i, "rule": r}, n) for (i, r), n in per_instance.items()])  # fmt: skip
    reasons = Counter(r.reason for r in await aggregator.store.refusals())
    out.family("barri_refusals", "gauge", "Deliveries refused at the door, by reason.",
               [({"reason": reason}, n) for reason, n in reasons.items()])  # fmt: skip
    statuses = await runtime.roster.status()
    out.family(
        "barri_backlog", "gauge", "Activities of a roster instance not processed yet.",
        [({"instance": s.row.origin}, s.backlog) for s in statuses if s.row.active],
    )  # fmt: skip
    out.family("barri_supports_counted", "gauge", "Supports counted per process.",
               [({"process": t.process}, t.supports) for t in result.processes])  # fmt: skip
    out.family("barri_participants", "gauge", "Residents with a counted support, per process.",
               [({"process": t.process}, t.participants) for t in result.processes])  # fmt: skip
    published = await aggregator.published.published_at()
    out.family("barri_tally_age_seconds", "gauge", "Seconds since a process's newest Tally.",
               [({"process": p}, now - when) for p, when in published.items()])  # fmt: skip
    synced = aggregator.state.synced_at
    age: list[tuple[dict[str, str], float]] = []
    if synced is not None:
        age.append(({}, now - synced.timestamp()))
    out.family("barri_tally_sync_age_seconds", "gauge",
               "Seconds since the tally last read the store.", age)  # fmt: skip
    _work(out, runtime)
    return out.text()


def _work(out: Exposition, runtime: Runtime) -> None:
    """Where the inbox's and the fetcher's wall time went since start."""
    processor = runtime.federation.processor
    out.family("barri_inbox_rows_total", "counter", "Inbox rows handled since start.",
               [({}, processor.rows)])  # fmt: skip
    out.family("barri_inbox_batches_total", "counter", "Inbox batches handled since start.",
               [({}, processor.batches)])  # fmt: skip
    out.family(
        "barri_inbox_phase_seconds_total", "counter",
        "Wall seconds inbox batches spent per phase since start.",
        [({"phase": phase}, seconds) for phase, seconds in processor.seconds.items()],
    )  # fmt: skip
    out.histogram(
        "barri_inbox_lag_seconds",
        "Seconds from an inbox row's receipt until its batch was committed and counted.",
        processor.lag,
    )
    quota = runtime.door.quota
    out.family("barri_inbox_rate_limited_total", "counter",
               "Deliveries from servers off the roster answered 429 since start.",
               [({}, 0 if quota is None else quota.limited)])  # fmt: skip
    backfill = runtime.backfill
    out.family("barri_backfill_running", "gauge", "Whole backfill passes running now.",
               [({}, backfill.running)])  # fmt: skip
    out.family("barri_backfill_passes_total", "counter",
               "Whole backfill passes finished since start.", [({}, backfill.passes)])  # fmt: skip
    fetcher = runtime.federation.fetcher
    stats = fetcher.stats if fetcher is not None else FetchStats()
    out.family(
        "barri_fetches_total", "counter", "Outbound GETs since start, by outcome.",
        [({"outcome": "ok"}, stats.fetches - stats.failed), ({"outcome": "failed"}, stats.failed)],
    )  # fmt: skip
    out.family("barri_fetch_seconds_total", "counter",
               "Wall seconds of outbound GETs since start (concurrent ones add up).",
               [({}, stats.seconds)])  # fmt: skip


def metrics_handler(aggregator: Getter, runtime: Getter) -> Callable[[web.Request], Any]:
    """The ``/metrics`` handler over the app's shared objects."""

    async def handler(request: web.Request) -> web.Response:
        text = await collect(aggregator(request), runtime(request), time.time())
        return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})

    return handler


__all__ = ["Exposition", "collect", "escape_label", "metrics_handler"]
