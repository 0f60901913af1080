"""The aggregator's JSON API, version 1 (issue 6): processes, results, instances.

``GET /api/v1/processes`` lists the processes the aggregator counts; ``GET
/api/v1/processes/{process IRI, url-encoded}/results`` gives each proposal (IRI, name, host
instance, state, supports, supports by neighbourhood code), totals by neighbourhood, district
and city, participants, the as-of time and whether the result is final; ``GET
/api/v1/instances`` gives the roster with follow state, last activity, backlog and anomaly
counts. An open process is computed from the tally after a sync, so changes made by the CLI
show at once; a closed one is its final Tally (:mod:`.views`). Errors are RFC 9457 problems.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from activitypub import jsontext
from federation.aggregator.roster import RosterService, RosterStatus
from federation.aggregator.views import ProcessView, process_view, process_views
from federation.aggregator.wiring import Aggregator
from federation.model import TerritoryKind
from federation.store.aggregator_log import ProposalRow
from federation.tally import ProcessTally, TallyResult
from federation.vocab.context import format_datetime

PREFIX = "/api/v1"
AggregatorGetter = Callable[[web.Request], Aggregator]
RosterGetter = Callable[[web.Request], RosterService]


def _iso(value: float | datetime | None) -> str | None:
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return format_datetime(when)


def _json(body: Mapping[str, Any]) -> web.Response:
    return web.Response(body=jsontext.dumpb(body), content_type="application/json", charset="utf-8")


def _by_code(tally: ProcessTally, kind: TerritoryKind) -> dict[str, int]:
    return {t.code: t.supports for t in tally.totals if t.kind is kind}


def results_url(base_url: str, process_id: str) -> str:
    """Where the results of ``process_id`` are served."""
    return f"{base_url}{PREFIX}/processes/{quote(process_id, safe='')}/results"


def process_summary(aggregator: Aggregator, view: ProcessView) -> dict[str, Any]:
    """One entry of ``GET /api/v1/processes``."""
    tally = view.tally
    return {
        "id": tally.process,
        "name": view.name,
        "owner": view.row.owner,
        "host": view.row.origin,
        "proposals": len(tally.results),
        "supports": tally.supports,
        "participants": tally.participants,
        "final": view.final,
        "results": results_url(aggregator.config.base_url, tally.process),
    }


def _proposal(totals: Any, cached: ProposalRow | None) -> dict[str, Any]:
    return {
        "id": totals.proposal,
        "name": cached.name if cached else None,
        "host": totals.host,
        "state": cached.state if cached else None,
        "supports": totals.supports,
        "byTerritory": {t.code: t.supports for t in totals.by_territory},
    }


def process_results(view: ProcessView) -> dict[str, Any]:
    """The body of ``GET /api/v1/processes/{iri}/results``: proposals ranked by supports."""
    tally = view.tally
    return {
        "process": tally.process,
        "name": view.name,
        "asOf": _iso(view.as_of),
        "final": view.final,
        "supports": tally.supports,
        "participants": tally.participants,
        "inputsDigest": tally.inputs_digest,
        "proposals": [_proposal(r, view.proposals.get(r.proposal)) for r in view.ranked()],
        "totals": {
            "city": _by_code(tally, TerritoryKind.CITY),
            "districts": _by_code(tally, TerritoryKind.DISTRICT),
            "neighbourhoods": _by_code(tally, TerritoryKind.NEIGHBOURHOOD),
        },
    }


def instance_entry(
    status: RosterStatus, result: TallyResult, refused: Mapping[str, Counter[str]]
) -> dict[str, Any]:
    """One entry of ``GET /api/v1/instances``."""
    row = status.row
    anomalies = result.anomaly_counts().get(row.origin, {})
    return {
        "origin": row.origin,
        "url": row.url,
        "territory": row.territory,
        "district": row.district,
        "active": row.active,
        "instanceActor": row.instance_actor,
        "group": row.group_actor,
        "follows": [{"target": f.target, "state": f.state} for f in status.follows],
        "addedAt": _iso(row.added_at),
        "removedAt": _iso(row.removed_at),
        "lastActivity": _iso(row.last_activity_at),
        "backlog": status.backlog,
        "anomalies": {str(rule): n for rule, n in sorted(anomalies.items())},
        "refused": dict(sorted(refused.get(row.origin, Counter()).items())),
    }


def unlisted(
    listed: set[str], result: TallyResult, refused: Mapping[str, Counter[str]]
) -> list[dict[str, Any]]:
    """Origins off the roster that sent something flagged (a Mastodon user, a stray server)."""
    counts = result.anomaly_counts()
    return [
        {
            "origin": origin,
            "anomalies": {str(rule): n for rule, n in sorted(counts.get(origin, {}).items())},
            "refused": dict(sorted(refused.get(origin, Counter()).items())),
        }
        for origin in sorted((counts.keys() | refused.keys()) - listed)
    ]


def add_api_routes(
    app: web.Application, aggregator: AggregatorGetter, roster: RosterGetter
) -> None:
    """Register the v1 API on ``app``; the getters find the shared objects per request."""

    async def processes(request: web.Request) -> web.Response:
        agg = aggregator(request)
        views = await process_views(agg)
        entries = [process_summary(agg, view) for view in views]
        return _json({"asOf": _iso(agg.state.synced_at), "processes": entries})

    async def results(request: web.Request) -> web.Response:
        view = await process_view(
            aggregator(request), request.match_info["process"], documents=False
        )
        return _json(process_results(view))

    async def instances(request: web.Request) -> web.Response:
        agg = aggregator(request)
        result = await agg.state.result()
        refused: dict[str, Counter[str]] = {}
        for refusal in await agg.store.refusals():
            refused.setdefault(refusal.origin, Counter())[refusal.reason] += 1
        statuses = await roster(request).status()
        body = [instance_entry(status, result, refused) for status in statuses]
        listed = {status.row.origin for status in statuses}
        return _json(
            {
                "asOf": _iso(agg.state.synced_at),
                "instances": body,
                "unlisted": unlisted(listed, result, refused),
            }
        )

    app.router.add_get(f"{PREFIX}/processes", processes)
    app.router.add_get(PREFIX + "/processes/{process:.+}/results", results)
    app.router.add_get(f"{PREFIX}/instances", instances)
