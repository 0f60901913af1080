"""Debates merged across instances, on the results page (issue 6 "Merge", "A results page").

With real instances (tests/aggregator_city.py): a resident of B comments on A's proposal, a
resident of A answers her, a Mastodon user replies from outside the roster, a resident of D
opens a debate in the process and one of A comments on it. The aggregator holds one record per
object whatever route brought it (the Group's Announce, a direct delivery, a backfilled
FEP-7888 context collection), threads them across instances, shows the outsider's reply marked
external (and never counts it), and hides what its author deleted. The results page shows all
of it as accessible HTML with no script.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp

from activitypub import as2
from activitypub.runtime import FEDERATION
from federation.model import Alignment
from tests.aggregator_city import Town, deliver, town
from tests.html_browser import assert_accessible
from tests.test_aggregator_city import proposals
from tests.test_handlers import ResidentNode, resident_node, stamp


@dataclass
class Talk:
    """The town, its proposals, the Mastodon-like node and the ids of what was said."""

    town: Town
    ideas: list[str]
    mastodon: ResidentNode
    said: dict[str, str]


async def mastodon_reply(t: Town, m: ResidentNode, proposal: str) -> str:
    """alice, on a Mastodon-like server, replies to a proposal on its author's instance."""
    note_id = m.new_id("activities")
    note = {
        "@context": "https://www.w3.org/ns/activitystreams", "id": note_id, "type": "Note",
        "attributedTo": m.actor_id("alice"), "inReplyTo": proposal, "published": stamp(),
        "content": "<p>I agree! <script>alert(1)</script></p>", "to": [as2.PUBLIC],
    }  # fmt: skip
    m.served[note_id] = note  # what a refetch of the note gets
    create = {
        "@context": "https://www.w3.org/ns/activitystreams", "id": m.new_id("activities"),
        "type": "Create", "actor": m.actor_id("alice"),
        "object": {k: v for k, v in note.items() if k != "@context"}, "to": [as2.PUBLIC],
    }  # fmt: skip
    assert m.server is not None
    await m.server.app[FEDERATION].deliver(create, [f"{t.a.origin}/inbox"])
    return note_id


@asynccontextmanager
async def talk(tmp_path: Path, ports: Callable[[], int]) -> AsyncIterator[Talk]:
    async with town(tmp_path, ports) as t, resident_node(tmp_path, ports()) as m:
        m.territories.clear()
        assert m.server is not None
        t.city.others.append(m.server)
        ideas = await proposals(t)
        rita, ana, pol = t.b.users["rita"], t.a.users["ana"], t.d.users["pol"]
        first = await t.b.deliberation.comment(
            rita, ideas[0], body_markdown="A favor!", alignment=Alignment.IN_FAVOR
        )
        await t.settle()
        reply = await t.a.deliberation.comment(ana, first.id, body_markdown="Gràcies, Rita.")
        debate = await t.d.deliberation.create_debate(
            pol, t.process.id, name="On posem les fonts?", body_markdown="Parlem-ne."
        )
        await t.settle()
        a1 = await t.a.resident("a1")
        on_debate = await t.a.deliberation.comment(a1, debate.id, body_markdown="A la plaça.")
        outsider = await mastodon_reply(t, m, ideas[0])
        await t.settle()
        said = {"first": first.id, "reply": reply.id, "debate": debate.id,
                "on_debate": on_debate.id, "outsider": outsider}  # fmt: skip
        yield Talk(t, ideas, m, said)


async def thread_ids(t: Town, root: str) -> list[tuple[str, str | None, bool]]:
    """(id, inReplyTo, external) of each comment the aggregator shows under ``root``."""
    roster = {h.origin for h in t.hoods.values() if h.rostered}
    rows = await t.city.aggregator.merged.thread(root, f"{root}/context")
    return sorted((r.id, r.in_reply_to, r.origin not in roster) for r in rows)


async def objects(t: Town) -> tuple[int, int]:
    rows = list(
        await t.city.aggregator.db.execute_fetchall(
            "SELECT COUNT(*), COUNT(DISTINCT id) FROM objects"
        )
    )
    return int(rows[0][0]), int(rows[0][1])


async def test_threads_merge_across_instances_once_whatever_the_route(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with talk(tmp_path, unused_tcp_port_factory) as k:
        t, s = k.town, k.said
        expected = sorted([
            (s["first"], k.ideas[0], False),
            (s["reply"], s["first"], False),
            (s["outsider"], k.ideas[0], True),
        ])  # fmt: skip
        assert await thread_ids(t, k.ideas[0]) == expected
        [debate] = await t.city.aggregator.merged.debates_of(t.process.id)
        assert debate.id == s["debate"] and debate.origin == t.d.origin
        assert await thread_ids(t, s["debate"]) == [(s["on_debate"], s["debate"], False)]
        stored = await objects(t)
        assert stored == (5, 5)
        # Again through every route: a direct delivery by its author, and backfill of the
        # instances' collections (the context collections on A and D, D's process debates).
        [create] = [
            a for a in await t.b.published(t.b.actor("rita"))
            if as2.has_type(a, "Create") and as2.first_id(a, "object") == s["first"]
        ]  # fmt: skip
        keys = await t.b.keys(t.b.actor("rita"))
        assert await deliver(keys, create, t.city.actor + "/inbox") == 202
        await t.settle()
        report = await t.city.runtime.backfill.run()
        assert all(isinstance(n, int) for n in report.values()), report
        walked = {c.collection: c for c in await t.city.aggregator.store.cursors()}
        for collection in (
            f"{k.ideas[0]}/context",
            f"{s['debate']}/context",
            f"{t.process.id}/debates",
            f"{t.process.id}/proposals",
        ):
            assert walked[collection].passes >= 1, collection
        assert walked[f"{k.ideas[0]}/context"].items >= 3  # rita's, ana's and alice's
        assert await objects(t) == stored
        assert await thread_ids(t, k.ideas[0]) == expected
        # Comments count nowhere: supports alone make the totals.
        assert (await t.city.results(t.process.id))["supports"] == 0


async def test_a_deleted_comment_is_hidden_and_backfill_does_not_bring_it_back(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with talk(tmp_path, unused_tcp_port_factory) as k:
        t, s = k.town, k.said
        await t.a.deliberation.delete_comment(t.a.users["ana"], s["reply"])
        await t.settle()
        shown = [row[0] for row in await thread_ids(t, k.ideas[0])]
        assert shown == sorted([s["first"], s["outsider"]])
        await t.city.runtime.backfill.run()
        assert [row[0] for row in await thread_ids(t, k.ideas[0])] == shown
        # Someone else's "deletion" of rita's comment changes nothing.
        fake = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{k.mastodon.origin}/activities/{uuid.uuid4().hex}", "type": "Delete",
            "actor": k.mastodon.actor_id("alice"), "object": s["first"], "to": [as2.PUBLIC],
        }  # fmt: skip
        assert k.mastodon.server is not None
        await k.mastodon.server.app[FEDERATION].deliver(fake, [t.city.inbox])
        await t.settle()
        assert [row[0] for row in await thread_ids(t, k.ideas[0])] == shown


async def test_a_comment_made_while_the_aggregator_was_down_comes_back_by_backfill(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with talk(tmp_path, unused_tcp_port_factory) as k:
        t = k.town
        await t.city.stop()
        late = await t.d.deliberation.comment(
            t.d.users["pol"], k.said["first"], body_markdown="I jo també."
        )
        await t.settle()
        await t.retries(due=time.time() + 3600)  # the deliveries wait: backfill alone
        await t.city.start()
        await t.city.runtime.backfill.run()
        shown = await thread_ids(t, k.ideas[0])
        assert (late.id, k.said["first"], False) in shown and len(shown) == 4


async def page(url: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Accept": "text/html"}) as response:
            return response.status, await response.text(), dict(response.headers)


async def test_the_results_page_shows_ranking_territories_debates_and_anomalies(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with talk(tmp_path, unused_tcp_port_factory) as k:
        t = k.town
        for hood, name in ((t.a, "a2"), (t.b, "b1"), (t.d, "d1"), (t.e, "e1")):
            await hood.resident(name)
            await t.support(hood, name, k.ideas[1])
        await t.support(t.a, "a2", k.ideas[0])
        await t.settle()
        base = t.city.config.base_url
        status, html, headers = await page(base + "/")
        assert status == 200 and "script-src" not in headers["Content-Security-Policy"]
        index = assert_accessible(html)
        [link] = [a.attrs["href"] for a in index.find("a") if "/processes?id=" in a.attrs["href"]]
        assert link == "/processes?id=" + quote(t.process.id, safe="")
        status, html, _ = await page(base + link)
        assert status == 200
        doc = assert_accessible(html)
        assert doc.find("svg", role="img") and '<title id="chart-title">' in html
        # Ranked: "Un carril bici" (3 counted: A, B, D; E's is not) before "Més arbres" (1).
        assert html.index("Un carril bici") < html.index("Més arbres")
        assert '<td class="num">3</td>' in html
        for code in ("06", "01", "03", "31", "18"):
            assert f"<td>{code}</td>" in html
        # The merged debate: rita's comment, ana's reply, the outsider marked external.
        assert "A favor!" in html and "Gràcies, Rita." in html and "I agree!" in html
        assert html.count('class="badge external"') == 1
        assert "<script>" not in html and "alert(1)" not in html.split("I agree!")[0][-200:]
        assert "On posem les fonts?" in html and "A la plaça." in html
        # Anomalies per instance: E is not on the roster.
        assert t.e.origin in html and "not_on_roster: 1" in html
        status, html, _ = await page(
            base + "/processes?id=" + quote("https://x.example/p", safe="")
        )
        assert status == 404
        assert_accessible(html)
