"""The results pages: server-rendered HTML, no JavaScript (issue 6 "A results page").

``GET /`` lists the processes the aggregator counts; ``GET /processes?id=<process IRI>`` shows
one: proposals ranked by supports with an inline SVG bar chart (and the same numbers in a
table, which is what screen readers read), supports by district and neighbourhood in a
territory table, the merged debate of each proposal and the process's debates (replies from
outside the roster shown and marked external), and anomalies and refusals per instance.

Templates live in ``templates/`` beside this module; autoescape is always on and remote HTML
(comments, debates) goes through the content allow-list again (``sanitised``) before it is
marked safe. The pages set a Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import web
from markupsafe import Markup

from activitypub import jsontext
from activitypub.errors import Problem
from federation.aggregator.roster import RosterService
from federation.aggregator.views import ProcessView, process_view, process_views
from federation.aggregator.wiring import Aggregator
from federation.instance.content import sanitise_html
from federation.model import TerritoryKind
from federation.store.aggregator_merge import ObjectRow
from federation.vocab.context import format_datetime

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
CHART_ROWS = 20  # bars drawn; the table lists every proposal
THREADS_SHOWN = 100  # proposals whose merged debate the page shows (the most supported)
MAX_DEPTH = 6  # deeper replies are shown at this depth (a page, not a tree viewer)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
Getter = Callable[[web.Request], Any]


def sanitised(html_text: str | None) -> Markup:
    """Stored remote HTML re-sanitised with the content allow-list, then marked safe."""
    return Markup(sanitise_html(html_text or ""))  # noqa: S704 (sanitised on the line itself)


def make_environment() -> jinja2.Environment:
    """The pages' environment: autoescape on for every template, undefined names fail."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sanitised"] = sanitised
    env.filters["when"] = lambda value: "—" if value is None else format_datetime(value)
    return env


def actor_label(actor_id: str) -> str:
    """How a page names an actor: the last path segment at its host (``ana@gracia.example``)."""
    parts = urlsplit(actor_id)
    name = parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.netloc
    return f"{name}@{parts.netloc}"


def process_link(process_id: str) -> str:
    """The results page of a process."""
    return "/processes?id=" + quote(process_id, safe="")


@dataclass
class Entry:
    """One comment of a thread, with its replies."""

    id: str
    author: str
    host: str
    published: str
    content: str
    external: bool
    replies: list[Entry] = field(default_factory=list)


def thread_tree(root_id: str, rows: Iterable[ObjectRow], roster: set[str]) -> list[Entry]:
    """Comments nested under what they reply to (orphans hang from the root), oldest first."""
    entries: dict[str, Entry] = {}
    parents: dict[str, str | None] = {}
    for row in rows:
        document = jsontext.loads_stored(row.document)
        content = document.get("content") if isinstance(document.get("content"), str) else ""
        entries[row.id] = Entry(
            row.id, actor_label(row.author), urlsplit(row.id).netloc, row.published, content,
            row.origin not in roster,
        )  # fmt: skip
        parents[row.id] = row.in_reply_to
    top: list[Entry] = []
    for object_id, entry in entries.items():
        parent = parents[object_id]
        (entries[parent].replies if parent in entries else top).append(entry)
    _flatten_deep(top, 1)
    return top


def _flatten_deep(level: list[Entry], depth: int) -> None:
    """Replies deeper than MAX_DEPTH are listed beside their parent instead of under it."""
    for entry in list(level):
        if depth >= MAX_DEPTH:
            level.extend(entry.replies)
            entry.replies = []
        _flatten_deep(entry.replies, depth + 1)


@dataclass(frozen=True)
class Bar:
    """One bar of the chart."""

    rank: int
    label: str
    supports: int
    width: float
    y: int


def chart(view: ProcessView, width: float = 360.0, row: int = 28) -> list[Bar]:
    """The ranked proposals as bars scaled to the largest (at most CHART_ROWS)."""
    ranked = view.ranked()[:CHART_ROWS]
    top = max((r.supports for r in ranked), default=0) or 1
    bars = []
    for index, totals in enumerate(ranked):
        cached = view.proposals.get(totals.proposal)
        label = cached.name if cached else totals.proposal
        label = label if len(label) <= 40 else label[:39] + "…"
        bars.append(
            Bar(index + 1, label, totals.supports, width * totals.supports / top, index * row)
        )
    return bars


def territory_rows(view: ProcessView, districts: dict[str, str]) -> list[dict[str, Any]]:
    """Districts in code order, each followed by its neighbourhoods."""
    hoods = {t.code: t.supports for t in view.tally.totals if t.kind is TerritoryKind.NEIGHBOURHOOD}
    rows = []
    for total in view.tally.totals:
        if total.kind is not TerritoryKind.DISTRICT:
            continue
        rows.append({"kind": "district", "code": total.code, "supports": total.supports})
        for code in sorted(c for c in hoods if districts.get(c) == total.code):
            rows.append({"kind": "neighbourhood", "code": code, "supports": hoods[code]})
    placed = {row["code"] for row in rows if row["kind"] == "neighbourhood"}
    rows += [{"kind": "neighbourhood", "code": c, "supports": hoods[c]} for c in sorted(hoods)
             if c not in placed]  # fmt: skip
    return rows


async def _threads(
    aggregator: Aggregator, view: ProcessView, roster: set[str]
) -> tuple[dict[str, list[Entry]], list[dict[str, Any]]]:
    """Each proposal's merged thread, and the process's debates with theirs."""
    threads = {}
    for totals in view.ranked()[:THREADS_SHOWN]:
        cached = view.proposals.get(totals.proposal)
        context = None
        if cached is not None:
            context = jsontext.loads_stored(cached.document).get("context")
        context = context if isinstance(context, str) else f"{totals.proposal}/context"
        rows = await aggregator.merged.thread(totals.proposal, context)
        threads[totals.proposal] = thread_tree(totals.proposal, rows, roster)
    debates = []
    for debate in await aggregator.merged.debates_of(view.id):
        document = jsontext.loads_stored(debate.document)
        rows = await aggregator.merged.thread(debate.id, debate.context)
        debates.append({
            "id": debate.id, "name": document.get("name") or debate.id,
            "author": actor_label(debate.author), "content": document.get("content") or "",
            "closed": document.get("closedAt"), "external": debate.origin not in roster,
            "thread": thread_tree(debate.id, rows, roster),
        })  # fmt: skip
    return threads, debates


async def _anomalies(aggregator: Aggregator, roster: RosterService) -> list[dict[str, Any]]:
    """Per instance (roster first, then others that sent something flagged): rules, refusals."""
    result = await aggregator.state.result()
    counts = result.anomaly_counts()
    refused: dict[str, Counter[str]] = {}
    for refusal in await aggregator.store.refusals():
        refused.setdefault(refusal.origin, Counter())[refusal.reason] += 1
    listed = [s.row for s in await roster.status()]
    origins = [row.origin for row in listed]
    origins += sorted((counts.keys() | refused.keys()) - set(origins))
    names = {row.origin: f"{row.territory} ({row.district})" for row in listed}
    return [
        {
            "origin": origin,
            "territory": names.get(origin, "not on the roster"),
            "anomalies": sorted((str(rule), n) for rule, n in counts.get(origin, {}).items()),
            "refused": sorted(refused.get(origin, Counter()).items()),
        }
        for origin in origins
    ]


def add_page_routes(app: web.Application, aggregator: Getter, roster: Getter) -> None:
    """``/`` and ``/processes?id=…``; the environment lives in the handlers' closure."""
    env = make_environment()

    def render(name: str, status: int = 200, **context: Any) -> web.Response:
        body = env.get_template(name).render(**context)
        response = web.Response(text=body, content_type="text/html", status=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def index(request: web.Request) -> web.Response:
        agg: Aggregator = aggregator(request)
        views = await process_views(agg)  # the index shows totals only
        items = [{"view": v, "link": process_link(v.id)} for v in views]
        return render("index.html", site=agg.config.name, processes=items)

    async def process(request: web.Request) -> web.Response:
        agg: Aggregator = aggregator(request)
        process_id = request.query.get("id", "")
        try:
            view = await process_view(agg, process_id)
        except Problem as problem:
            return render("missing.html", status=problem.status, site=agg.config.name,
                          detail=problem.detail or "")  # fmt: skip
        rows = await agg.store.roster(active_only=True)
        listed = {row.origin for row in rows}
        threads, debates = await _threads(agg, view, listed)
        return render(
            "process.html", site=agg.config.name, view=view, bars=chart(view),
            territories=territory_rows(view, {r.territory: r.district for r in rows}),
            threads=threads, debates=debates, api="/api/v1/processes/" + quote(view.id, safe=""),
            instances=await _anomalies(agg, roster(request)),
        )  # fmt: skip

    app.router.add_get("/", index)
    app.router.add_get("/processes", process)


__all__ = ["Entry", "actor_label", "add_page_routes", "chart", "territory_rows", "thread_tree"]
