"""The instance's read side on 127.0.0.1: objects by id, Tombstones, collections, private supports.

The store is filled directly (the read side reads it; HB's service writes it), so every case
here is about what the read routes answer; tests/test_instance_federation.py drives the same
routes through real federated acts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from activitypub import as2
from activitypub.httpsig import sign_request
from activitypub.runtime import FEDERATION, LocalKeys
from federation.config import InstanceConfig, load_config
from federation.config_writer import InitOptions, write_instance_config
from federation.instance.app import ACCOUNTS, ACTORS, DB, create_app
from federation.instance.readpaging import BULK_LIMIT
from federation.instance.readside import (
    HTML_RENDERERS,
    prefers_html,
    register_html,
)
from federation.model import Comment, Debate, LangText, Process, Proposal, Support, Tombstone
from federation.store.comments import CommentStore
from federation.store.domain import DomainStore
from federation.store.outbox import OutboxStore, activity_body
from federation.store.proposals import ProposalStore
from federation.store.sqlite import transaction
from federation.validation import validate
from federation.vocab.comment import comment_to_ap
from federation.vocab.context import document_context
from federation.vocab.debate import debate_to_ap
from federation.vocab.process import process_from_ap, process_to_ap
from federation.vocab.proposal import proposal_to_ap
from federation.vocab.support import support_to_ap
from tests.apnode import NodeState, start_node
from tests.html_browser import assert_accessible
from tests.instance_fixtures import T0, iso, process_draft

AS2 = "application/activity+json"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
GROUP = "assoc"


# --- helpers shared with tests/test_handlers.py and tests/test_instance_federation.py ------------


def instance_config(
    tmp_path: Path,
    port: int,
    *,
    name: str = "Vila de Gràcia",
    territory: str = "31",
    kind: str = "neighbourhood",
    district: str | None = "06",
    report_to: tuple[str, ...] = (),
) -> InstanceConfig:
    """A loopback instance config whose ids use ``port``; its files under ``tmp_path/port``."""
    options = InitOptions(
        base_url=f"http://127.0.0.1:{port}",
        name=name,
        secret="s" * 43,
        group=GROUP,
        territory=territory,
        territory_kind=kind,
        district=district if kind == "neighbourhood" else None,
        report_to=report_to,
        allow_loopback=True,
        listen=f"127.0.0.1:{port}",
    )
    return load_config(write_instance_config(tmp_path / f"i{port}", options), environ={})


@asynccontextmanager
async def running(
    config: InstanceConfig, prepare: Callable[[web.Application], None] | None = None
) -> AsyncIterator[TestServer]:
    """The instance app (read side included) served on its configured loopback port."""
    app = create_app(config)
    if prepare is not None:
        prepare(app)
    server = TestServer(app, host="127.0.0.1", port=config.listen_port)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@asynccontextmanager
async def node(tmp_path: Path, name: str, port: int) -> AsyncIterator[tuple[NodeState, TestServer]]:
    """A tests.apnode node (a Mastodon-like server) on ``port``."""
    nodes = cast(
        AsyncGenerator[tuple[NodeState, TestServer], None], start_node(tmp_path, name, port)
    )
    started = await anext(nodes)
    try:
        yield started
    finally:
        await nodes.aclose()


def make_process(config: InstanceConfig, suffix: str = "p1", **draft: Any) -> Process:
    """A process owned by the instance's Group (from the shared test draft)."""
    group = f"{config.base_url}/groups/{GROUP}"
    doc = {"@context": document_context(), **process_draft(**draft)}
    doc |= {
        "id": f"{config.base_url}/processes/{suffix}",
        "attributedTo": group,
        "audience": group,
        "published": iso(T0),
        "to": [as2.PUBLIC],
        "cc": [group + "/followers"],
    }
    return process_from_ap(doc)


def make_proposal(
    base: str, process: Process, suffix: str, *, author: str | None = None, minutes: int = 0
) -> Proposal:
    """A proposal into ``process`` by a resident of ``base``."""
    proposal_id = f"{base}/proposals/{suffix}"
    author = author or f"{base}/users/ana"
    return Proposal(
        id=proposal_id,
        author=author,
        audience=process.owner,
        process=process.id,
        name=LangText.of(f"Proposal {suffix}", {"ca": f"Proposta {suffix}"}),
        content_html=f"<p>Body {suffix}</p>",
        source_markdown=f"Body {suffix}",
        published=T0 + timedelta(days=1, minutes=minutes),
        replies=proposal_id + "/replies",
        context=proposal_id + "/context",
        to=(as2.PUBLIC,),
        cc=(author + "/followers", process.owner),
    )


def make_comment(base: str, parent: str, root: str, suffix: str, depth: int = 1) -> Comment:
    """A comment replying to ``parent`` in the thread of ``root``."""
    return Comment(
        id=f"{base}/comments/{suffix}",
        author=f"{base}/users/ana",
        in_reply_to=parent,
        context=root + "/context",
        content_html=f"<p>Comment {suffix}</p>",
        source_markdown=f"Comment {suffix}",
        depth=depth,
        published=T0 + timedelta(days=2),
        to=(as2.PUBLIC,),
    )


async def get(
    url: str, *, accept: str = AS2, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any] | str, str]:
    """GET ``url`` as spelt (aiohttp would unescape ``%3A`` in a query, and the request would
    not match what a signature signed): status, parsed JSON (or text) and Content-Type."""
    fields = {"Accept": accept, **(headers or {})}
    async with aiohttp.ClientSession() as http:
        async with http.get(URL(url, encoded=True), headers=fields) as response:
            body = await response.read()
            content_type = response.headers.get("Content-Type", "")
            if "json" in content_type:
                return response.status, json.loads(body), content_type
            return response.status, body.decode(), content_type


async def signed_get(url: str, keys: LocalKeys) -> tuple[int, dict[str, Any]]:
    """GET ``url`` with a cavage-12 signature by ``keys``' actor (authorised fetch)."""
    headers = sign_request("GET", url, {"Accept": AS2}, None, keys.signing_key)
    status, body, _ = await get(url, headers=headers)
    assert isinstance(body, dict)
    return status, body


async def signed_walk(url: str, keys: LocalKeys) -> tuple[str, list[Any]]:
    """A collection's id and every item, one page at a time (the page links must keep any
    query), after checking that each page is part of it and its ``totalItems``."""
    status, collection = await signed_get(url, keys)
    assert status == 200, (url, collection)
    items: list[Any] = []
    page_url: Any = collection["first"] + "&limit=1"
    while page_url is not None:
        status, page = await signed_get(page_url, keys)
        assert status == 200, page
        assert page["partOf"] == collection["id"]
        items += page["orderedItems"]
        page_url = page.get("next")
    assert collection["totalItems"] == len(items)
    return collection["id"], items


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
async def remote(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> AsyncIterator[NodeState]:
    async with node(tmp_path, "remote", unused_tcp_port_factory()) as (state, _):
        yield state


@pytest.fixture
def config(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int], remote: NodeState
) -> InstanceConfig:
    # The remote node's instance actor is the configured aggregator.
    return instance_config(
        tmp_path, unused_tcp_port_factory(), report_to=(remote.actor_id("instance"),)
    )


@dataclasses.dataclass
class Seeded:
    server: TestServer
    config: InstanceConfig
    process: Process
    proposals: list[Proposal]
    debate: Debate
    comments: list[Comment]
    rendered: list[str]


async def seed(server: TestServer, config: InstanceConfig) -> Seeded:
    base, db = config.base_url, server.app[DB]
    process = make_process(config)
    proposals = [make_proposal(base, process, f"n{i}", minutes=i) for i in range(3)]
    debate = Debate(
        id=f"{base}/debates/d1", author=f"{base}/users/ana", audience=process.owner,
        process=process.id, name=LangText("Debate"), content_html="<p>Debate</p>",
        source_markdown="Debate", published=T0, replies=f"{base}/debates/d1/replies",
        context=f"{base}/debates/d1/context",
    )  # fmt: skip
    root = proposals[0].id
    first = make_comment(base, root, root, "c1")
    reply = make_comment(base, first.id, root, "c2", depth=2)
    async with transaction(db):
        await DomainStore(db).put_process(
            process, process_to_ap(process), local=True, supports_from=None
        )
        for proposal in proposals:
            await ProposalStore(db).put_proposal(proposal, proposal_to_ap(proposal), local=True)
        await DomainStore(db).put_debate(debate, debate_to_ap(debate), local=True)
        for comment in (first, reply):
            await CommentStore(db).put_comment(
                comment, comment_to_ap(comment), root_id=root, local=True, external=False
            )
    return Seeded(server, config, process, proposals, debate, [first, reply], [])


@pytest.fixture
async def seeded(config: InstanceConfig) -> AsyncIterator[Seeded]:
    rendered: list[str] = []

    async def page(request: web.Request, object_id: str) -> web.Response:
        rendered.append(object_id)
        return web.Response(text=f"<h1>{object_id}</h1>", content_type="text/html")

    def prepare(app: web.Application) -> None:
        for kind in ("proposal", "tombstone"):
            register_html(app, kind, page)
        # Whatever HD's pages registered for debates, this app has no debate page.
        app.get(HTML_RENDERERS, {}).pop("debate", None)

    async with running(config, prepare) as server:
        data = await seed(server, config)
        data.rendered = rendered
        yield data


# --- content negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        (AS2, False),
        ('application/ld+json; profile="https://www.w3.org/ns/activitystreams"', False),
        ("*/*", False),
        ("", False),
        ("text/html;q=0.5, application/activity+json", False),
        ("application/activity+json;q=0.4, text/html;q=0.8", True),
        ("text/html;q=bogus, application/json;q=0.1", False),
    ],
)
def test_prefers_html(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html


def test_register_html_rejects_unknown_kinds() -> None:
    app = web.Application()

    async def page(request: web.Request, object_id: str) -> web.Response:
        return web.Response(text="")

    register_html(app, "debate", page)
    registry = app[HTML_RENDERERS]
    assert list(registry) == ["debate"]
    with pytest.raises(ValueError, match="unknown kind"):
        register_html(app, "supports", page)


# --- objects -------------------------------------------------------------------------------------


async def test_objects_are_served_as_as2_and_validate(seeded: Seeded) -> None:
    base = seeded.config.base_url
    cases = [
        ("process", seeded.process.id),
        ("proposal", seeded.proposals[0].id),
        ("debate", seeded.debate.id),
        ("comment", seeded.comments[1].id),
    ]
    for shape, object_id in cases:
        status, doc, content_type = await get(object_id)
        assert (status, content_type) == (200, AS2), (object_id, doc)
        assert isinstance(doc, dict) and doc["id"] == object_id
        validate(shape, doc)
    status, doc, _ = await get(seeded.proposals[0].id)
    assert isinstance(doc, dict) and doc["supportCount"] == 0  # counts are public
    status, _, content_type = await get(f"{base}/proposals/nope")
    assert (status, content_type) == (404, "application/problem+json")


async def test_browsers_get_the_registered_page_and_clients_get_json(seeded: Seeded) -> None:
    proposal = seeded.proposals[1].id
    status, page, content_type = await get(proposal, accept=BROWSER)
    assert status == 200 and content_type.startswith("text/html")
    assert page == f"<h1>{proposal}</h1>" and seeded.rendered == [proposal]
    # No renderer for debates: browsers get AS2 there.
    status, _, content_type = await get(seeded.debate.id, accept=BROWSER)
    assert (status, content_type) == (200, AS2)
    # The renderer is only asked about ids that exist.
    status, _, _ = await get(seeded.config.base_url + "/proposals/missing", accept=BROWSER)
    assert status == 404 and seeded.rendered == [proposal]


async def test_unknown_ids_are_an_html_404_for_browsers_and_problem_json_for_as2(
    seeded: Seeded,
) -> None:
    base = seeded.config.base_url
    paths = ("processes", "proposals", "debates", "comments", "activities", "supports", "votes")
    for path in paths:
        url = f"{base}/{path}/nope"
        status, page, content_type = await get(
            url, accept=BROWSER, headers={"Accept-Language": "en"}
        )
        assert (status, content_type.split(";")[0]) == (404, "text/html"), url
        assert isinstance(page, str)
        shown = assert_accessible(page)
        assert "There is nothing here." in shown.text and shown.headings[0][1] == "Not found"
        for accept in (AS2, "*/*", ""):
            status, problem, content_type = await get(url, accept=accept)
            assert (status, content_type) == (404, "application/problem+json"), (url, accept)
            assert isinstance(problem, dict) and problem["status"] == 404
    # What exists is still served, and a known id never reaches the 404 page.
    status, page, _ = await get(seeded.process.id, accept=BROWSER)
    assert status == 200 and isinstance(page, str) and "There is nothing here" not in page


async def test_without_a_not_found_page_browsers_get_the_problem(
    config: InstanceConfig,
) -> None:
    def prepare(app: web.Application) -> None:
        app.get(HTML_RENDERERS, {}).pop("not_found", None)

    async with running(config, prepare):
        status, _, content_type = await get(config.base_url + "/proposals/nope", accept=BROWSER)
        assert (status, content_type) == (404, "application/problem+json")


async def test_a_deleted_id_answers_410_with_its_tombstone(seeded: Seeded) -> None:
    proposal = seeded.proposals[2].id
    deleted = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
    db = seeded.server.app[DB]
    async with transaction(db):
        await ProposalStore(db).delete_proposal(proposal)
        await DomainStore(db).add_tombstone(Tombstone(proposal, "Proposal", deleted))
    status, doc, content_type = await get(proposal)
    assert (status, content_type) == (410, AS2)
    validate("tombstone", doc)
    assert isinstance(doc, dict)
    assert (doc["type"], doc["formerType"], doc["deleted"]) == (
        "Tombstone", "Proposal", "2026-02-03T10:00:00Z",
    )  # fmt: skip
    status, page, _ = await get(proposal, accept=BROWSER)
    assert status == 200 and page == f"<h1>{proposal}</h1>"  # HD's tombstone page decides


# --- collections ---------------------------------------------------------------------------------


async def walk(url: str) -> tuple[dict[str, Any], list[Any]]:
    """The collection at ``url`` and every item, following ``next`` links."""
    status, collection, _ = await get(url)
    assert status == 200 and isinstance(collection, dict)
    items: list[Any] = []
    link: str | None = collection["first"]
    while link:
        status, page, _ = await get(link)
        assert status == 200 and isinstance(page, dict), page
        assert page["type"] == "OrderedCollectionPage" and page["partOf"] == url
        # Only the collection counts its items: a page that did would scan the table again.
        assert "totalItems" not in page
        items.extend(page["orderedItems"])
        link = page.get("next")
    return collection, items


async def test_process_proposals_newest_first_with_cursor_paging(seeded: Seeded) -> None:
    url = seeded.process.id + "/proposals"
    collection, items = await walk(url)
    assert (collection["type"], collection["totalItems"]) == ("OrderedCollection", 3)
    assert [item["id"] for item in items] == [p.id for p in reversed(seeded.proposals)]
    assert all("@context" not in item and item["supportCount"] == 0 for item in items)
    # limit=1: each page has a next/prev and walking back returns where we came from.
    status, first, _ = await get(url + "?page=true&limit=1")
    assert isinstance(first, dict) and "prev" not in first
    status, second, _ = await get(first["next"])
    assert isinstance(second, dict) and second["orderedItems"][0]["id"] == seeded.proposals[1].id
    assert [len(second["orderedItems"]), "limit=1" in second["next"]] == [1, True]  # kept
    status, back, _ = await get(second["prev"])
    assert isinstance(back, dict) and back["orderedItems"][0]["id"] == seeded.proposals[2].id
    for bad in ("?after=%%%", "?before=a&after=b", "?limit=0"):
        status, _, content_type = await get(url + bad)
        assert (status, content_type) == (400, "application/problem+json")
    status, _, _ = await get(seeded.config.base_url + "/processes/none/proposals")
    assert status == 404


async def test_process_debates_and_thread_collections(seeded: Seeded) -> None:
    _, debates = await walk(seeded.process.id + "/debates")
    assert [item["id"] for item in debates] == [seeded.debate.id]
    root = seeded.proposals[0].id
    _, replies = await walk(root + "/replies")
    assert [item["id"] for item in replies] == [seeded.comments[0].id]  # direct replies only
    _, nested = await walk(seeded.comments[0].id + "/replies")
    assert [item["id"] for item in nested] == [seeded.comments[1].id]
    _, context = await walk(root + "/context")
    assert [item["id"] for item in context] == [c.id for c in seeded.comments]  # oldest first
    status, _, _ = await get(seeded.config.base_url + "/proposals/none/context")
    assert status == 404


async def test_nodeinfo_counts_processes(seeded: Seeded) -> None:
    status, links, _ = await get(seeded.config.base_url + "/.well-known/nodeinfo")
    assert isinstance(links, dict)
    href = next(link["href"] for link in links["links"] if link["href"].endswith("2.1"))
    status, info, _ = await get(href)
    assert status == 200
    assert isinstance(info, dict) and info["metadata"]["barri"]["processes"] == 1


# --- private supports ----------------------------------------------------------------------------


async def add_support(seeded: Seeded, proposal: Proposal, actor: str, suffix: str) -> str:
    """A final support of ``proposal`` by ``actor``, with its Like in the outbox."""
    like_id = f"{seeded.config.base_url}/supports/{suffix}"
    support = Support(
        id=like_id, actor=actor, proposal=proposal.id, published=T0 + timedelta(days=30),
        to=(proposal.audience, *seeded.config.report_to),
    )  # fmt: skip
    document = support_to_ap(support)
    db = seeded.server.app[DB]
    async with transaction(db):
        await ProposalStore(db).add_support(
            support, document, process_id=proposal.process, local=True, state="final"
        )
        await ProposalStore(db).refresh_counts([proposal.id])
        await OutboxStore(db).add_activity(
            like_id, actor, "Like", proposal.id, activity_body(document), public=False,
            published=iso(support.published),
        )  # fmt: skip
    return like_id


async def test_supports_are_listed_only_to_the_aggregator(
    seeded: Seeded, remote: NodeState
) -> None:
    proposal = seeded.proposals[0]
    base = seeded.config.base_url
    likes = [await add_support(seeded, proposal, f"{base}/users/u{i}", f"s{i}") for i in range(2)]
    url = proposal.id + "/supports"
    status, problem, _ = await get(url)
    assert isinstance(problem, dict)
    assert (status, problem["reason"]) == (403, "supports_private")
    # The aggregator (the remote server's instance actor, listed in report_to) may list them.
    status, collection = await signed_get(url, remote.keys["instance"])
    assert (status, collection["totalItems"]) == (200, 2)
    status, page = await signed_get(collection["first"], remote.keys["instance"])
    assert status == 200 and page["orderedItems"] == list(reversed(likes))  # ids only
    # Another actor of the aggregator's server is not the aggregator.
    status, refused = await signed_get(url, remote.keys["alice"])
    assert (status, refused["reason"]) == (403, "supports_private")
    # The count stays public on the proposal.
    status, doc, _ = await get(proposal.id)
    assert isinstance(doc, dict) and doc["supportCount"] == 2
    # A support Like itself follows the same rule.
    status, problem, _ = await get(likes[0])
    assert isinstance(problem, dict) and (status, problem["reason"]) == (403, "supports_private")
    status, like = await signed_get(likes[0], remote.keys["instance"])
    assert (status, like["id"], like["type"]) == (200, likes[0], "Like")


async def test_residents_are_listed_with_their_documents_only_to_the_aggregator(
    seeded: Seeded, remote: NodeState
) -> None:
    accounts = seeded.server.app[ACCOUNTS]
    for n in range(5):
        await accounts.create_user(f"r{n}", None)
    for n in (0, 1, 3, 4):
        await accounts.verify(f"r{n}", "31", by="test")  # r2 is not verified: not listed
    url = seeded.config.base_url + "/residents"
    status, problem, _ = await get(url)
    assert isinstance(problem, dict) and (status, problem["reason"]) == (403, "residents_private")
    status, refused = await signed_get(url, remote.keys["alice"])  # not the aggregator
    assert (status, refused["reason"]) == (403, "residents_private")
    status, collection = await signed_get(url, remote.keys["instance"])
    assert (status, collection["type"], collection["totalItems"]) == (
        200, "OrderedCollection", 4,
    )  # fmt: skip
    items, link = [], collection["first"] + "&limit=3"
    while link:
        status, page = await signed_get(link, remote.keys["instance"])
        assert status == 200 and page["partOf"] == url and len(page["orderedItems"]) <= 3
        assert "security" in json.dumps(page["@context"])  # the actor documents' context
        items.extend(page["orderedItems"])
        link = page.get("next")
    assert [i["id"] for i in items] == [
        f"{seeded.config.base_url}/users/r{n}" for n in (4, 3, 1, 0)
    ]
    for item in items:  # each is the document its id serves, without its own @context
        status, served, _ = await get(item["id"])
        assert isinstance(served, dict) and status == 200
        assert item == {k: v for k, v in served.items() if k != "@context"}
        assert item["verifiedResidentOf"]["territoryCode"] == "31"


async def test_collections_an_aggregator_reads_whole_serve_bigger_pages(
    seeded: Seeded, remote: NodeState
) -> None:
    """/residents (like the support logs) gives up to BULK_LIMIT items a page, where other
    collections stop at 100: fewer signed GETs for a backfill."""
    accounts = seeded.server.app[ACCOUNTS]
    for n in range(130):
        await accounts.create_user(f"b{n}", None)
        await accounts.verify(f"b{n}", "31", by="test")
    url = seeded.config.base_url + "/residents?page=true&limit=1000"
    status, page = await signed_get(url, remote.keys["instance"])
    assert (status, len(page["orderedItems"]), "next" in page) == (200, 130, False)
    status, small = await signed_get(url.replace("1000", "50"), remote.keys["instance"])
    assert (len(small["orderedItems"]), "limit=50" in small["next"]) == (50, True)
    assert 130 < BULK_LIMIT < 1000


async def test_the_owning_group_and_its_server_actor_may_list_supports(
    seeded: Seeded, remote: NodeState
) -> None:
    # A proposal into a process owned elsewhere: remote "bob" stands for the owning Group.
    owner = remote.actor_id("bob")
    foreign = dataclasses.replace(seeded.process, id=remote.origin + "/processes/x", owner=owner)
    proposal = make_proposal(seeded.config.base_url, foreign, "abroad")
    db = seeded.server.app[DB]
    async with transaction(db):
        await ProposalStore(db).put_proposal(proposal, proposal_to_ap(proposal), local=True)
    await add_support(seeded, proposal, proposal.author, "abroad-1")
    url = proposal.id + "/supports"
    for name in ("bob", "instance"):
        status, collection = await signed_get(url, remote.keys[name])
        assert (status, collection["totalItems"]) == (200, 1), name
    status, problem = await signed_get(url, remote.keys["alice"])
    assert (status, problem["reason"]) == (403, "supports_private")


async def test_a_forged_signature_is_401_not_403(seeded: Seeded, remote: NodeState) -> None:
    url = seeded.proposals[0].id + "/supports"
    headers = sign_request("GET", url, {"Accept": AS2}, None, remote.keys["instance"].signing_key)
    headers["Signature"] = headers["Signature"].replace('signature="', 'signature="AAAA')
    status, problem, _ = await get(url, headers=headers)
    assert status == 401 and isinstance(problem, dict)


# --- outbox and followers ------------------------------------------------------------------------


async def test_outbox_lists_public_activities_verbatim(seeded: Seeded, remote: NodeState) -> None:
    app = seeded.server.app
    group = app[ACTORS].group_id
    db = app[DB]
    base = seeded.config.base_url
    public: dict[str, Any] = {"@context": document_context(), "type": "Create", "actor": group}
    public |= {"id": f"{base}/activities/a1", "object": seeded.process.id, "to": [as2.PUBLIC]}
    public["proof"] = {"type": "DataIntegrityProof"}
    private: dict[str, Any] = {"@context": document_context(), "type": "Accept", "actor": group}
    private |= {"id": f"{base}/activities/a2", "object": "x", "to": [remote.actor_id("bob")]}
    async with transaction(db):
        for doc, is_public in ((public, True), (private, False)):
            await OutboxStore(db).add_activity(
                doc["id"], group, doc["type"], None, activity_body(doc), public=is_public,
                published=iso(T0),
            )  # fmt: skip
        await OutboxStore(db).put_follow(
            "f1", remote.actor_id("alice"), group, inbox=remote.actor_id("alice") + "/inbox",
            shared_inbox=remote.origin + "/inbox", state="accepted", now=0.0,
        )  # fmt: skip
    collection, items = await walk(group + "/outbox")
    if collection["totalItems"] == 0:
        pytest.skip("app.py still serves the empty outbox (collection_handler not wired yet)")
    assert collection["totalItems"] == 1 and items == [public]  # with its @context and proof
    # The private Accept is readable by its addressee only.
    status, _, _ = await get(private["id"])
    assert status == 403
    status, accept = await signed_get(private["id"], remote.keys["bob"])
    assert (status, accept["type"]) == (200, "Accept")
    followers, ids = await walk(group + "/followers")
    assert followers["totalItems"] == 1 and ids == [remote.actor_id("alice")]
    assert app[FEDERATION] is not None


# --- {process}/supports at the process's owner ---------------------------------------------------


async def store_support(
    seeded: Seeded, proposal: Proposal, actor: str, like_id: str, *, state: str, local: bool
) -> str:
    """A support of ``proposal`` in ``state``, given here (``local``) or received."""
    support = Support(
        id=like_id, actor=actor, proposal=proposal.id, published=T0 + timedelta(days=30),
        to=(proposal.audience, *seeded.config.report_to),
    )  # fmt: skip
    db = seeded.server.app[DB]
    async with transaction(db):
        await ProposalStore(db).add_support(
            support, support_to_ap(support), process_id=proposal.process, local=local,
            state=state,
        )  # fmt: skip
        await ProposalStore(db).refresh_counts([proposal.id])
    return like_id


async def test_the_owner_lists_every_support_it_counts_in_a_process(
    seeded: Seeded, remote: NodeState
) -> None:
    base, db, app = seeded.config.base_url, seeded.server.app[DB], seeded.server.app
    # A proposal by a resident of another instance, into our process: counted here too.
    foreign = make_proposal(remote.origin, seeded.process, "afar", author=remote.actor_id("bob"))
    other = make_process(seeded.config, "p2")
    elsewhere = make_proposal(base, other, "other")
    async with transaction(db):
        await ProposalStore(db).put_proposal(foreign, proposal_to_ap(foreign), local=False)
        await DomainStore(db).put_process(
            other, process_to_ap(other), local=True, supports_from=None
        )
        await ProposalStore(db).put_proposal(elsewhere, proposal_to_ap(elsewhere), local=True)
    counted = [
        await store_support(seeded, seeded.proposals[0], f"{base}/users/u0", f"{base}/supports/a",
                            state="final", local=True),
        await store_support(seeded, foreign, remote.actor_id("alice"), remote.origin + "/likes/1",
                            state="final", local=False),
        await store_support(seeded, seeded.proposals[1], f"{base}/users/u1", f"{base}/supports/b",
                            state="final", local=True),
    ]  # fmt: skip
    # Not counted: a temporary support (below the minimum), a withdrawn one, another process's.
    await store_support(seeded, seeded.proposals[2], f"{base}/users/u2", f"{base}/supports/t",
                        state="temporary", local=True)  # fmt: skip
    await store_support(seeded, foreign, remote.actor_id("bob"), remote.origin + "/likes/2",
                        state="withdrawn", local=False)  # fmt: skip
    await store_support(seeded, elsewhere, f"{base}/users/u0", f"{base}/supports/o",
                        state="final", local=True)  # fmt: skip
    url = seeded.process.id + "/supports"

    status, problem, _ = await get(url)
    assert isinstance(problem, dict) and (status, problem["reason"]) == (403, "supports_private")
    status, problem = await signed_get(url, remote.keys["alice"])  # a supporter, not a reader
    assert (status, problem["reason"]) == (403, "supports_private")
    await app[ACCOUNTS].create_user("ana", "correct horse battery")
    resident = await app[ACTORS].keys_for(app[ACTORS].person_id("ana"))
    status, problem = await signed_get(url, resident)  # our own resident is no reader either
    assert (status, problem["reason"]) == (403, "supports_private")

    own_server = await app[ACTORS].keys_for(app[ACTORS].application_id)
    for reader in (remote.keys["instance"], own_server):  # the aggregator, our server actor
        status, collection = await signed_get(url, reader)
        assert (status, collection["type"], collection["totalItems"]) == (
            200, "OrderedCollection", 3,
        )  # fmt: skip
        ids: list[str] = []
        link: str | None = collection["first"] + "&limit=2"
        while link:
            status, page = await signed_get(link, reader)
            assert status == 200 and page["partOf"] == url
            ids.extend(page["orderedItems"])
            link = page.get("next")
        assert ids == list(reversed(counted))  # newest first, ids only

    # The other process lists its own; a process cached from elsewhere has none here.
    status, collection = await signed_get(other.id + "/supports", own_server)
    assert (status, collection["totalItems"]) == (200, 1)
    cached = dataclasses.replace(
        seeded.process, id=remote.origin + "/processes/city", owner=remote.actor_id("bob")
    )
    async with transaction(db):
        await DomainStore(db).put_process(
            cached, process_to_ap(cached), local=False, supports_from=None
        )
    status, problem, content_type = await get(cached.id + "/supports")
    assert (status, content_type) == (404, "application/problem+json")
    status, problem = await signed_get(base + "/processes/nope/supports", own_server)
    assert status == 404
