"""Open-data exports and /metrics of the aggregator, over the real instances of the merge tests.

``export.csv`` uses Decidim's open-data column names where they exist (reference/decidim.md
§c) and flattens the territory breakdown the way Decidim flattens nested values;
``export.jsonld`` is JSON-LD that reads as RDF with the network off and carries the signed
Tally as published; ``/metrics`` is Prometheus text with the families the README lists.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from rdflib import RDF, URIRef

from activitypub.integrity import verify_document
from activitypub.jsonld import to_graph
from activitypub.lag import LAG_BUCKETS
from federation.aggregator.app import PUBLISHER_TASK
from federation.aggregator.exports import DECIDIM_COLUMNS, plain_text
from federation.aggregator.metrics import escape_label
from federation.instance.app import ACCOUNTS
from federation.model import LangText, ProposalState
from federation.validation import validate
from tests.test_aggregator_merge import Talk, talk

BARRI = "https://w3id.org/barri/ns#"
AS = "https://www.w3.org/ns/activitystreams#"
SAMPLE = re.compile(r'^[a-z_]+(\{([a-z]+="([^"\\]|\\.)*",?)*\})? -?[0-9.]+(e[+-]?[0-9]+)?$')

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")


async def fetch(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.text()


async def counted_scene(k: Talk) -> str:
    """Supports on two proposals, an official answer on one; returns the export base URL."""
    t = k.town
    for hood, name, idea in (
        (t.a, "a2", 1), (t.b, "b1", 1), (t.d, "d1", 1), (t.d, "d2", 1), (t.e, "e1", 1),
        (t.a, "a3", 0),
    ):  # fmt: skip
        if name not in hood.users:
            await hood.resident(name)
        await t.support(hood, name, k.ideas[idea])
    await t.settle()
    return f"{t.city.config.base_url}/api/v1/processes/{quote(t.process.id, safe='')}"


async def test_the_csv_export_uses_decidim_columns_and_counts_roster_comments_only(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with talk(tmp_path, unused_tcp_port_factory) as k:
        t = k.town
        api = await counted_scene(k)
        admin = await t.a.app[ACCOUNTS].get("admin")
        await t.a.deliberation.answer_proposal(
            admin, k.ideas[1], state=ProposalState.ACCEPTED,
            answer=LangText("=Acceptada: es farà el 2027."),
        )  # fmt: skip
        await t.settle()
        status, content_type, text = await fetch(api + "/export.csv")
        assert status == 200 and content_type.startswith("text/csv")
        rows = list(csv.reader(io.StringIO(text)))
        header = rows[0]
        assert tuple(header[: len(DECIDIM_COLUMNS)]) == DECIDIM_COLUMNS
        assert header[len(DECIDIM_COLUMNS) :] == [
            "host", "process", "votes/district/01", "votes/district/03", "votes/district/06",
            "votes/neighbourhood/01", "votes/neighbourhood/18", "votes/neighbourhood/31",
        ]  # fmt: skip
        body = [dict(zip(header, row, strict=True)) for row in rows[1:]]
        assert [r["id"] for r in body][:2] == [k.ideas[1], k.ideas[0]]
        first, second = body[0], body[1]
        assert (first["title"], first["votes"], first["state"]) == (
            "Un carril bici",
            "4",
            "accepted",
        )
        # A formula-looking answer is quoted as text (CSV injection), and shown as plain text.
        assert first["answer"] == "'=Acceptada: es farà el 2027."
        assert (first["votes/neighbourhood/18"], first["votes/district/03"]) == ("2", "2")
        assert (first["votes/neighbourhood/31"], first["votes/district/06"]) == ("1", "1")
        assert first["host"] == t.a.origin and first["process"] == t.process.id
        # rita's comment and ana's reply count; alice's reply from outside the roster does not.
        assert (second["comments"], second["votes"], second["body"]) == ("2", "1", "Més arbres")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", second["published_at"])
        status, _, _ = await fetch(
            f"{t.city.config.base_url}/api/v1/processes/{quote('https://x.example/p', safe='')}"
            "/export.csv"
        )
        assert status == 404


async def test_the_jsonld_export_reads_as_rdf_and_carries_the_signed_tally(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with talk(tmp_path, unused_tcp_port_factory) as k:
        t = k.town
        # Only this test publishes: the debounced loop (30 s) would sign a Tally first on a
        # machine slow enough for the scene to take that long.
        assert t.city.server is not None
        t.city.server.app[PUBLISHER_TASK].cancel()
        api = await counted_scene(k)
        status, content_type, text = await fetch(api + "/export.jsonld")
        assert status == 200 and content_type.startswith("application/ld+json")
        before = json.loads(text)
        unsigned = before["items"][0]
        assert "proof" not in unsigned and unsigned["inputsCount"] == 5
        row = await t.city.runtime.publisher.publish(t.process.id, final=False)
        assert row is not None
        _, _, text = await fetch(api + "/export.jsonld")
        document = json.loads(text)
        tally = {"@context": document["@context"], **document["items"][0]}
        validate("tally", tally)
        assert tally["id"] == row.id and tally["inputsCount"] == 5

        async def service(url: str, refresh: bool) -> dict[str, Any]:
            return dict(await t.city.aggregator.service.document())

        assert await verify_document(tally, service, owner=t.city.actor)
        graph = to_graph(document)
        collection = URIRef(document["id"])
        items = set(graph.objects(collection, URIRef(AS + "items")))
        assert URIRef(row.id) in items and URIRef(k.ideas[1]) in items
        assert (URIRef(row.id), RDF.type, URIRef(BARRI + "Tally")) in graph
        assert (URIRef(k.ideas[1]), RDF.type, URIRef(BARRI + "Proposal")) in graph


async def test_metrics_are_prometheus_text(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with talk(tmp_path, unused_tcp_port_factory) as k:
        t = k.town
        await counted_scene(k)
        await t.city.runtime.publisher.publish(t.process.id, final=False)
        status, content_type, text = await fetch(t.city.config.base_url + "/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#"):
                assert re.fullmatch(r"# (HELP|TYPE) [a-z_]+ .+", line), line
                continue
            assert SAMPLE.fullmatch(line), line
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
        assert samples['barri_ingested_activities_total{type="Like",outcome="stored"}'] >= 6
        assert samples['barri_stored_activities{kind="support"}'] == 6
        assert samples['barri_anomalies{rule="not_on_roster"}'] == 1
        for hood in t.hoods.values():
            if hood.rostered:
                assert samples[f'barri_backlog{{instance="{hood.origin}"}}'] == 0
        assert samples[f'barri_supports_counted{{process="{t.process.id}"}}'] == 5
        assert 0 <= samples[f'barri_tally_age_seconds{{process="{t.process.id}"}}'] < 3600
        assert "barri_tally_sync_age_seconds" in samples
        # Where the inbox's time went: every phase of its batches, and the fetches it made.
        assert samples["barri_inbox_rows_total"] >= 6
        assert 1 <= samples["barri_inbox_batches_total"] <= samples["barri_inbox_rows_total"]
        phases = {"claim", "prepare", "handle", "commit", "finish"}
        named = {p for p in phases if f'barri_inbox_phase_seconds_total{{phase="{p}"}}' in samples}
        assert named == phases
        assert samples['barri_inbox_phase_seconds_total{phase="handle"}'] > 0
        # The lag histogram: one observation per row handled, cumulative buckets up to +Inf.
        count = samples["barri_inbox_lag_seconds_count"]
        assert count == samples["barri_inbox_rows_total"]
        bounds = [f"{b:g}" for b in LAG_BUCKETS] + ["+Inf"]
        seen = [samples[f'barri_inbox_lag_seconds_bucket{{le="{b}"}}'] for b in bounds]
        assert seen == sorted(seen) and seen[-1] == count
        assert 0 <= samples["barri_inbox_lag_seconds_sum"] <= count * 300
        assert samples['barri_fetches_total{outcome="ok"}'] > 0
        assert samples["barri_fetch_seconds_total"] > 0
        # Whole backfill passes: none ran yet; one counted once it ends, none running after.
        assert (samples["barri_backfill_running"], samples["barri_backfill_passes_total"]) == (0, 0)
        await t.city.runtime.backfill.run()
        _, _, text = await fetch(t.city.config.base_url + "/metrics")
        assert "\nbarri_backfill_passes_total 1\n" in text
        assert "\nbarri_backfill_running 0\n" in text


def test_plain_text_and_label_escaping() -> None:
    assert plain_text("<p>Un <strong>banc</strong></p><ul><li>a</li><li>b</li></ul>") == (
        "Un banc\na\nb"
    )
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
