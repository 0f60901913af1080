"""Open-data exports of one process: CSV with Decidim's column names, and JSON-LD (issue 6).

``GET /api/v1/processes/{iri}/export.csv``: one row per proposal, ranked by supports, with the
column names of Decidim's open-data proposals export where one exists (``id``, ``title``,
``body``, ``state``, ``answer``, ``votes``, ``comments``, ``published_at``, ``url``;
reference/decidim.md §c), then ours: ``host``, ``process``, and the supports per territory
flattened the way Decidim flattens nested values (``votes/district/06``,
``votes/neighbourhood/31``). ``comments`` counts the visible comments written on roster
instances (external replies are shown, never counted).

``GET /api/v1/processes/{iri}/export.jsonld``: an AS2 ``Collection`` in our inline context whose
items are the process's Tally (the final or latest signed one as published; while nothing was
published yet, the current count, unsigned) and every proposal document as its host served it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

from activitypub import as2
from federation.aggregator.views import ProcessView, process_view
from federation.aggregator.wiring import Aggregator
from federation.model import Proposal, TerritoryKind
from federation.tally import ProposalTotals, to_tally
from federation.tally.records import normal_origin
from federation.validation import ValidationError, validate
from federation.vocab import VocabError
from federation.vocab.context import document_context, format_datetime
from federation.vocab.proposal import proposal_from_ap
from federation.vocab.tally import tally_to_ap
from federation.vocab.wire import embed

PREFIX = "/api/v1/processes/"
DECIDIM_COLUMNS = (
    "id", "title", "body", "state", "answer", "votes", "comments", "published_at", "url",
)  # fmt: skip
OUR_COLUMNS = ("host", "process")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
AggregatorGetter = Callable[[web.Request], Aggregator]


class _Text(HTMLParser):
    """The text of sanitised HTML, paragraphs on their own lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "li", "blockquote", "pre", "h1", "h2", "h3", "h4"):
            self.parts.append("\n")


def plain_text(html_text: str | None) -> str:
    """Plain text of an HTML fragment (Decidim exports ``body`` as plain text)."""
    if not html_text:
        return ""
    parser = _Text()
    parser.feed(html_text)
    parser.close()
    return "\n".join(line.strip() for line in "".join(parser.parts).splitlines()).strip()


def _cell(text: str) -> str:
    # A spreadsheet runs a cell that starts like a formula (CSV injection): quote it as text.
    return "'" + text if text.startswith(_FORMULA) else text


def _read(document: str) -> Proposal | None:
    try:
        doc = json.loads(document)
        validate("proposal", doc)
        return proposal_from_ap(doc)
    except (ValueError, ValidationError, VocabError):
        return None


def territory_columns(view: ProcessView) -> list[tuple[TerritoryKind, str]]:
    """The districts and neighbourhoods with any counted support, in code order."""
    kinds = (TerritoryKind.DISTRICT, TerritoryKind.NEIGHBOURHOOD)
    return [(t.kind, t.code) for t in view.tally.totals if t.kind in kinds]


def _districts(totals: ProposalTotals, districts: dict[str, str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for count in totals.by_territory:
        district = districts.get(count.code)
        if district is not None:
            found[district] = found.get(district, 0) + count.supports
    return found


def csv_rows(
    view: ProcessView, comments: dict[str, int], districts: dict[str, str]
) -> Iterable[list[str]]:
    """The header and one row per proposal (see the module docstring)."""
    places = territory_columns(view)
    yield [*DECIDIM_COLUMNS, *OUR_COLUMNS, *(f"votes/{k.value}/{c}" for k, c in places)]
    for totals in view.ranked():
        cached = view.proposals.get(totals.proposal)
        proposal = None if cached is None else _read(cached.document)
        hoods = {t.code: t.supports for t in totals.by_territory}
        by_district = _districts(totals, districts)
        context = (proposal.context if proposal else None) or f"{totals.proposal}/context"
        yield [
            totals.proposal,
            _cell(proposal.name.default if proposal else ""),
            _cell(
                (proposal.source_markdown or plain_text(proposal.content_html)) if proposal else ""
            ),
            proposal.state.value if proposal else "",
            _cell(plain_text(proposal.answer.default) if proposal and proposal.answer else ""),
            str(totals.supports),
            str(comments.get(context, 0)),
            format_datetime(proposal.published) if proposal else "",
            (proposal.url or proposal.id) if proposal else totals.proposal,
            totals.host,
            view.id,
            *(
                str((by_district if kind is TerritoryKind.DISTRICT else hoods).get(code, 0))
                for kind, code in places
            ),
        ]


def tally_document(
    view: ProcessView, tally_id: str, aggregator: str, published: dict[str, Any] | None
) -> dict[str, Any]:
    """The Tally the export carries: as published (signed), else the current count."""
    if published is not None:
        return published
    when = view.as_of or datetime.now(UTC)
    model = to_tally(
        view.tally, tally_id=tally_id, aggregator=aggregator,
        as_of=when, published=when, final=view.final,
        summary_html="<p>The current count; no Tally was published yet.</p>", to=(as2.PUBLIC,),
    )  # fmt: skip
    return tally_to_ap(model)


def add_export_routes(app: web.Application, aggregator: AggregatorGetter) -> None:
    """``export.csv`` and ``export.jsonld`` under each process's API path."""

    async def export_csv(request: web.Request) -> web.Response:
        agg = aggregator(request)
        view = await process_view(agg, request.match_info["process"])
        roster = await agg.store.roster(active_only=True)
        comments = await agg.merged.comment_counts(row.origin for row in roster)
        districts = {row.territory: row.district for row in roster}
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
        writer.writerows(csv_rows(view, comments, districts))
        name = (normal_origin(view.id) or "process").split("//")[-1].replace(":", "-")
        return web.Response(
            body=out.getvalue().encode("utf-8"),
            headers={
                "Content-Type": "text/csv; charset=utf-8; header=present",
                "Content-Disposition": f'attachment; filename="{name}-open-data-proposals.csv"',
            },
        )

    async def export_jsonld(request: web.Request) -> web.Response:
        agg = aggregator(request)
        view = await process_view(agg, request.match_info["process"])
        latest = await agg.published.latest(view.id)
        base = agg.config.base_url
        tally = tally_document(
            view, base + request.path + "#tally", agg.service.id,
            latest.tally() if latest else None,
        )  # fmt: skip
        proposals = [json.loads(view.proposals[r.proposal].document)
                     for r in view.ranked() if r.proposal in view.proposals]  # fmt: skip
        items = [embed(tally), *(embed(p) for p in proposals)]
        document = {
            "@context": document_context(),
            "id": base + request.path,
            "type": "Collection",
            "name": view.name,
            "totalItems": len(items),
            "items": items,
        }
        # json, not orjson: an export is a published format, downloaded now and then.
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        return web.Response(body=body, headers={"Content-Type": "application/ld+json"})

    app.router.add_get(PREFIX + "{process:.+}/export.csv", export_csv)
    app.router.add_get(PREFIX + "{process:.+}/export.jsonld", export_jsonld)


__all__ = ["add_export_routes", "csv_rows", "plain_text", "tally_document"]
