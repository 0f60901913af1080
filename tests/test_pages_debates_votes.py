"""Debates on the process page, the new-debate form and comment votes, on a real instance.

The instance runs on 127.0.0.1 with its SQLite file; a browser with a cookie jar reads the
pages (each one passing the accessibility check) and submits their forms. Every refusal
leaves every table unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from activitypub.collections import PageRequest
from activitypub.errors import Problem
from federation.config import InstanceConfig
from federation.instance.app import ACCOUNTS, DELIBERATION
from federation.instance.ports import Role, User
from federation.model import LangText, Phase, Process, SupportRules, Territory, TerritoryKind
from tests.apnode import start_node
from tests.html_browser import (
    PASSWORD,
    Browser,
    Page,
    assert_accessible,
    make_config,
    register,
    running,
)
from tests.test_pages import Site, new_proposal, open_draft


@pytest.fixture
def config(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> InstanceConfig:
    return make_config(tmp_path, unused_tcp_port_factory())


@pytest.fixture
async def site(config: InstanceConfig) -> AsyncIterator[Site]:
    async with running(config) as server:
        accounts = server.app[ACCOUNTS]
        admin = await accounts.create_user("admin", PASSWORD, Role.ADMIN)
        service = server.app[DELIBERATION]
        process = await service.create_process(open_draft(), by=admin)
        yield Site(server, config, service, admin, process)


@pytest.fixture
async def browser(site: Site) -> AsyncIterator[Browser]:
    visitor = Browser(site.config.base_url)
    yield visitor
    await visitor.close()


def path_of(object_id: str) -> str:
    return urlsplit(object_id).path


def no_debates_draft() -> dict[str, Any]:
    draft = open_draft()
    for phase in draft["phases"]:
        phase["allowsDebates"] = False
    return draft


async def user(site: Site, name: str) -> User:
    return await site.server.app[ACCOUNTS].get(name)


async def refused_post(
    site: Site, browser: Browser, action: str, data: dict[str, str], status: int
) -> Page:
    """POST a form that must be refused with ``status``, changing no table."""
    before = await site.rows()
    _, body = await browser.post(action, data, status=status)
    assert await site.rows() == before
    return assert_accessible(body)


# -- the service additions -------------------------------------------------------------------


async def test_list_debates_get_comment_and_my_votes(site: Site) -> None:
    await site.server.app[ACCOUNTS].create_user("maria", PASSWORD)
    maria = await user(site, "maria")
    service = site.service
    debates = [
        await service.create_debate(maria, site.process.id, name=f"D{n}", body_markdown="?")
        for n in range(3)
    ]
    outside = await service.create_debate(maria, None, name="Fora", body_markdown="?")
    first = await service.list_debates(site.process.id, page=PageRequest(None, None, 2))
    assert [d.id for d in first.items] == [debates[2].id, debates[1].id]  # newest first
    assert first.next_cursor is not None and first.prev_cursor is None
    rest = await service.list_debates(site.process.id, page=PageRequest(None, first.next_cursor, 2))
    assert [d.id for d in rest.items] == [debates[0].id] and rest.next_cursor is None
    assert [d.id for d in (await service.list_debates(None)).items] == [outside.id]
    comment = await service.comment(maria, debates[0].id, body_markdown="Sí")
    other = await service.comment(maria, debates[0].id, body_markdown="No")
    assert await service.get_comment(comment.id) == comment
    assert await service.get_comment(site.config.base_url + "/comments/nope") is None
    assert await service.my_comment_votes(maria, debates[0].id) == {}
    await service.vote_comment(maria, comment.id, up=True)
    await service.vote_comment(maria, other.id, up=False)
    assert await service.my_comment_votes(maria, debates[0].id) == {
        comment.id: True,
        other.id: False,
    }
    assert await service.my_comment_votes(maria, debates[1].id) == {}
    await service.unvote_comment(maria, other.id)
    assert await service.my_comment_votes(maria, debates[0].id) == {comment.id: True}


async def test_content_errors_keep_their_rule_and_limit(site: Site) -> None:
    await site.server.app[ACCOUNTS].create_user("maria", PASSWORD)
    await site.server.app[ACCOUNTS].verify("maria", "08019-01", by="test")
    maria = await user(site, "maria")
    before = await site.rows()
    with pytest.raises(Problem) as caught:
        await site.service.create_proposal(
            maria, site.process.id, name="x" * 151, body_markdown="text"
        )
    assert caught.value.status == 400
    assert caught.value.extensions == {
        "reason": "invalid_input", "field": "name", "rule": "too_long", "limit": 150,
    }  # fmt: skip
    with pytest.raises(Problem) as caught:
        await site.service.create_debate(maria, None, name="ok", body_markdown="<" * 3000)
    assert (caught.value.extensions["rule"], caught.value.extensions["limit"]) == (
        "too_long", 10000,
    )  # fmt: skip
    assert await site.rows() == before


# -- debates on the process page -------------------------------------------------------------


async def test_the_process_page_lists_debates_with_paging(site: Site, browser: Browser) -> None:
    page = await browser.get(site.process.id)
    assert "Encara no hi ha debats." in page.text
    await register(browser, "maria")
    maria = await user(site, "maria")
    for n in range(22):
        await site.service.create_debate(
            maria, site.process.id, name=f"Debat {n:02}", body_markdown="?"
        )
    closed = await site.service.create_debate(
        maria, site.process.id, name="Debat tancat", body_markdown="?"
    )
    await site.service.close_debate(maria, closed.id, conclusions="Fet.")
    page = await browser.get(site.process.id)
    names = [text for level, text, _ in page.headings if level == 3 and text.startswith("Debat")]
    assert names == ["Debat tancat"] + [f"Debat {n:02}" for n in range(21, 2, -1)]
    assert page.find("a", href=path_of(closed.id)) and "Tancat el" in page.text
    assert "Debats" in [text for level, text, _ in page.headings if level == 2]
    older = [
        t.attrs["href"] for t in page.find("a", rel="next") if "debates_after" in t.attrs["href"]
    ]
    assert len(older) == 1
    second = await browser.get(older[0])
    rest = [text for level, text, _ in second.headings if level == 3 and text.startswith("Debat")]
    assert rest == ["Debat 02", "Debat 01", "Debat 00"]
    assert [t for t in second.find("a", rel="prev") if "debates_before" in t.attrs["href"]]
    english = await browser.get(site.process.id + "?lang=en")
    assert "Debates" in english.text and "Start a new debate" in english.text
    await browser.get(path_of(site.process.id) + "?debates_after=garbage", status=400)


async def test_new_debate_form_creates_a_debate(site: Site, browser: Browser) -> None:
    local = path_of(site.process.id)
    action = local + "/debates/new"
    await browser.get(action, status=303)  # anonymous: log in first
    await register(browser, "maria")
    page = await browser.get(site.process.id)
    assert page.find("a", href=action)
    form_page = await browser.get(action)
    assert form_page.headings[0][1] == "Debat nou"
    _, body = await browser.submit(form_page, action, {"name": " ", "body": "x"}, status=422)
    assert "Omple tots els camps obligatoris." in assert_accessible(body).text
    response, _ = await browser.submit(
        form_page, action, {"name": "On fem la festa?", "body": "Idees de **llocs**."}
    )
    location = response.headers["Location"]
    assert location.startswith("/debates/") and location.endswith("?done=debate_created")
    debate_id = site.config.base_url + location.split("?")[0]
    debate = await site.service.get_debate(debate_id)
    assert debate is not None and debate.process == site.process.id
    assert (
        debate.author.endswith("/users/maria") and "<strong>llocs</strong>" in debate.content_html
    )
    shown = await browser.get(location)
    assert shown.headings[0][1] == "On fem la festa?" and "El teu debat està obert." in shown.text
    listed = await browser.get(site.process.id)
    assert listed.find("a", href=path_of(debate_id))


async def test_new_debate_refusals_write_nothing(site: Site, browser: Browser) -> None:
    closed = await site.service.create_process(no_debates_draft(), by=site.admin)
    await register(browser, "maria")
    page = await browser.get(closed.id)
    assert not [t for t in page.find("a") if t.attrs.get("href", "").endswith("/debates/new")]
    action = path_of(closed.id) + "/debates/new"
    form_page = await browser.get(action)
    data = {**form_page.form(action).fields, "name": "Tard", "body": "Massa tard?"}
    refused = await refused_post(site, browser, action, data, 409)
    assert "no admet debats" in refused.text
    assert refused.form(action).fields["name"] == "Tard"  # kept for correcting
    for token in (None, "forged"):
        sent = {"name": "x", "body": "y"} | ({"csrf": token} if token else {})
        page = await refused_post(site, browser, path_of(site.process.id) + "/debates/new",
                                  sent, 403)  # fmt: skip
        assert "formulari ha caducat" in page.text
    # A body whose HTML outgrows the content limit: the page names that exact limit.
    good = path_of(site.process.id) + "/debates/new"
    data = {**form_page.form(action).fields, "name": "Símbols", "body": "<" * 3000}
    refused = await refused_post(site, browser, good, data, 400)
    assert "com a màxim 10000 caràcters" in refused.text
    data |= {"name": "Campana \x07", "body": "ok"}
    refused = await refused_post(site, browser, good, data, 400)
    assert "caràcter de control" in refused.text
    await browser.get("/processes/nope/debates/new", status=404)


# -- comment votes ---------------------------------------------------------------------------


async def test_vote_buttons_show_counts_and_my_vote(site: Site, browser: Browser) -> None:
    await register(browser, "maria", verified_by=site)
    proposal_id = await new_proposal(browser, site, "Fonts", "Més fonts.")
    maria = await user(site, "maria")
    comment = await site.service.comment(maria, proposal_id, body_markdown="Sí")
    local = comment.id.rsplit("/", 1)[-1]
    up, down, unvote = (f"/comments/{local}/{a}" for a in ("upvote", "downvote", "unvote"))

    anonymous = Browser(site.config.base_url)
    try:
        page = await anonymous.get(proposal_id)
        assert not [f for f in page.forms if f.action.startswith("/comments/")]
        assert "A favor 0 · En contra 0" in page.text
    finally:
        await anonymous.close()

    page = await browser.get(proposal_id)
    assert page.form(up) and page.form(down) and not [f for f in page.forms if f.action == unvote]
    assert "del comentari de maria" in page.text  # the buttons' accessible names
    response, _ = await browser.submit(page, up, {})
    assert response.headers["Location"] == f"{path_of(proposal_id)}?done=voted#c-{local}"
    page = await browser.get(path_of(proposal_id) + "?done=voted")
    assert "El teu vot està registrat." in page.text and "Hi has votat a favor." in page.text
    assert "A favor 1 · En contra 0" in page.text
    assert page.form(unvote) and not [f for f in page.forms if f.action in (up, down)]
    assert await site.service.my_comment_votes(maria, proposal_id) == {comment.id: True}

    # A second vote (a stale page) is refused with the rule's message; nothing changes.
    token = page.form(unvote).fields["csrf"]
    refused = await refused_post(site, browser, down, {"csrf": token}, 409)
    assert "Ja has votat aquest comentari." in refused.text
    assert refused.headings[0][1] == "Fonts"  # the proposal's page, re-rendered

    await browser.submit(page, unvote, {})
    page = await browser.get(proposal_id)
    assert "A favor 0 · En contra 0" in page.text and page.form(up)
    refused = await refused_post(site, browser, unvote, {"csrf": token}, 409)
    assert "No havies votat aquest comentari." in refused.text
    for sent in ({}, {"csrf": "forged"}):
        assert "formulari ha caducat" in (await refused_post(site, browser, up, sent, 403)).text
    await refused_post(site, browser, "/comments/nope/upvote", {"csrf": token}, 404)
    # Voting down, in English.
    page = await browser.get(proposal_id + "?lang=en")
    await browser.submit(page, down, {})
    page = await browser.get(proposal_id + "?lang=en")
    assert "You voted down." in page.text and "Up 0 · Down 1" in page.text


async def test_votes_on_a_debate_comment_and_a_reply(site: Site, browser: Browser) -> None:
    await register(browser, "maria")
    maria = await user(site, "maria")
    debate = await site.service.create_debate(
        maria, site.process.id, name="Festa", body_markdown="?"
    )
    first = await site.service.comment(maria, debate.id, body_markdown="Música")
    reply = await site.service.comment(maria, first.id, body_markdown="Sí, música")
    joan = Browser(site.config.base_url)
    try:
        await register(joan, "joan")
        page = await joan.get(debate.id)
        reply_up = f"/comments/{reply.id.rsplit('/', 1)[-1]}/upvote"
        response, _ = await joan.submit(page, reply_up, {})
        assert response.headers["Location"].startswith(path_of(debate.id) + "?done=voted#c-")
        page = await joan.get(debate.id)
        assert "Hi has votat a favor." in page.text
    finally:
        await joan.close()
    thread = await site.service.thread(debate.id)
    assert [(e.comment.id, e.up, e.down) for e in thread] == [(first.id, 0, 0), (reply.id, 1, 0)]
    page = await browser.get(debate.id)  # maria has not voted: both forms, for both comments
    assert len([f for f in page.forms if f.action.endswith("/upvote")]) == 2


# -- a process of another instance -----------------------------------------------------------


async def test_a_debate_in_another_instance_s_process(
    site: Site, browser: Browser, tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with asynccontextmanager(start_node)(tmp_path, "city", unused_tcp_port_factory()) as (
        node,
        _,
    ):
        now = datetime.now(UTC).replace(microsecond=0)
        city = Process(
            id=f"{node.origin}/processes/city", owner=node.actor_id("alice"),
            name=LangText("Pressupost de ciutat"), summary=None,
            phases=(
                Phase(
                    name=LangText("Tot"), start=now - timedelta(days=1),
                    end=now + timedelta(days=9), allows_proposals=True, allows_supports=True,
                    allows_comments=True, allows_debates=True,
                ),
            ),
            rules=SupportRules(supports_per_participant=2),
            eligible=(Territory(TerritoryKind.CITY, "08019"),), published=now,
        )  # fmt: skip
        await site.service.remember_remote_object(city)
        await register(browser, "maria")
        page = await browser.get(f"/remote?id={quote(city.id, safe='')}")
        action = f"/remote/processes/debates/new?id={quote(city.id, safe='')}"
        assert page.find("a", href=action)
        form_page = await browser.get(action)
        response, _ = await browser.submit(form_page, action, {"name": "Bici", "body": "Carrils?"})
        debate_id = site.config.base_url + response.headers["Location"].split("?")[0]
        debate = await site.service.get_debate(debate_id)
        assert debate is not None and (debate.process, debate.audience) == (city.id, city.owner)
        listed = await browser.get(f"/remote?id={quote(city.id, safe='')}")
        assert listed.find("a", href=path_of(debate_id))
