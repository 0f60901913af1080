"""A resident deletes their own proposal, debate or comment, on a real instance (127.0.0.1, SQLite).

Through the service and through the pages: a ``Delete`` of a Tombstone is published (and
Announced by the Group), the id answers 410 afterwards, and every refusal (someone else, a
supported or answered proposal, a missing CSRF token) leaves every table unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from activitypub import as2
from activitypub.errors import Problem
from federation.config import InstanceConfig
from federation.instance.app import ACCOUNTS, DB, DELIBERATION
from federation.instance.ports import Role, User
from federation.instance.rules import RuleViolation
from federation.model import Comment, LangText, Proposal, ProposalState
from federation.store.outbox import OutboxStore
from federation.validation import validate
from tests.html_browser import (
    PASSWORD,
    Browser,
    Page,
    assert_accessible,
    log_in,
    make_config,
    running,
)
from tests.test_pages import Site, new_proposal, open_draft

AS2 = "application/activity+json"


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
        for name in ("maria", "joan"):
            await accounts.create_user(name, PASSWORD)
            await accounts.verify(name, "08019-01", by="test")
        yield Site(server, config, service, admin, process)


@pytest.fixture
async def browser(site: Site) -> AsyncIterator[Browser]:
    visitor = Browser(site.config.base_url)
    await log_in(visitor, "maria")
    yield visitor
    await visitor.close()


async def user(site: Site, name: str) -> User:
    return await site.server.app[ACCOUNTS].get(name)


def path_of(object_id: str) -> str:
    return urlsplit(object_id).path


async def refused(site: Site, act: Awaitable[Any], rule: str) -> None:
    """The act is refused with ``rule`` (or a 404 problem for ``not_found``); nothing changes."""
    before = await site.rows()
    if rule == "not_found":
        with pytest.raises(Problem) as problem:
            await act
        assert problem.value.status == 404
    else:
        with pytest.raises(RuleViolation) as caught:
            await act
        assert caught.value.rule == rule, caught.value
    assert await site.rows() == before


async def fetch(url: str, accept: str = AS2) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Accept": accept}) as response:
            if "json" in response.content_type:
                return response.status, await response.json(content_type=None)
            return response.status, await response.text()


async def delete_activity(site: Site, object_id: str) -> dict[str, Any]:
    """The one Delete published about ``object_id`` (checked against its shape)."""
    outbox = OutboxStore(site.server.app[DB])
    [stored] = [a for a in await outbox.activities_about(object_id) if a.type == "Delete"]
    validate("delete", stored.document)
    announces = await outbox.activities_about(stored.activity_id)
    assert [a.type for a in announces] == ["Announce"]  # the Group relays it (FEP-1b12)
    return stored.document


async def make_proposal(site: Site, name: str = "maria") -> Proposal:
    return await site.service.create_proposal(
        await user(site, name), site.process.id, name="Fonts", body_markdown="Més fonts."
    )


# -- the service -----------------------------------------------------------------------------


async def test_the_author_deletes_a_proposal(site: Site) -> None:
    proposal = await make_proposal(site)
    maria = await user(site, "maria")
    deletion = await site.service.delete_proposal(maria, proposal.id)
    assert (deletion.object_id, deletion.former_type, deletion.actor) == (
        proposal.id, "Proposal", proposal.author,
    )  # fmt: skip
    document = await delete_activity(site, proposal.id)
    assert document["object"]["type"] == "Tombstone"
    assert document["object"]["formerType"] == "Proposal"
    assert as2.PUBLIC in document["to"] and site.service.group_id in document["cc"]
    assert "proof" in document
    assert await site.service.get_proposal(proposal.id) is None
    status, tombstone = await fetch(proposal.id)
    assert status == 410 and tombstone["type"] == "Tombstone"
    status, page = await fetch(proposal.id, accept="text/html")
    assert status == 410 and "Esborrat" in assert_accessible(page).text
    listed = await site.service.list_proposals(site.process.id)
    assert proposal.id not in [p.id for p in listed.items]
    await refused(site, site.service.delete_proposal(maria, proposal.id), "not_found")


async def test_proposal_deletion_refusals_change_nothing(site: Site) -> None:
    maria, joan = await user(site, "maria"), await user(site, "joan")
    proposal = await make_proposal(site)
    await refused(site, site.service.delete_proposal(joan, proposal.id), "not_author")
    await refused(site, site.service.delete_proposal(site.admin, proposal.id), "not_author")
    await site.service.support(joan, proposal.id)  # final at once (no minimum)
    await refused(site, site.service.delete_proposal(maria, proposal.id), "proposal_has_supports")
    await site.service.withdraw_support(joan, proposal.id)
    answered = await make_proposal(site)
    await site.service.answer_proposal(
        site.admin, answered.id, state=ProposalState.EVALUATING, answer=LangText("Ho mirem.")
    )
    await refused(site, site.service.delete_proposal(maria, answered.id), "proposal_answered")
    unknown = site.config.base_url + "/proposals/nope"
    await refused(site, site.service.delete_proposal(maria, unknown), "not_found")
    # A proposal cached from another instance is not this instance's to delete.
    theirs = Proposal(
        id="http://127.0.0.1:9/proposals/x", author="http://127.0.0.1:9/users/ana",
        audience=site.service.group_id, process=site.process.id, name=LangText("Altra"),
        content_html="<p>x</p>", source_markdown=None, published=proposal.published,
    )  # fmt: skip
    await site.service.remember_remote_object(theirs)
    await refused(site, site.service.delete_proposal(maria, theirs.id), "not_author")
    # Once the support is withdrawn the author may delete it after all.
    await site.service.delete_proposal(maria, proposal.id)
    assert await site.service.support_count(proposal.id) == 0


async def test_a_temporary_support_goes_with_its_proposal(site: Site) -> None:
    draft = open_draft()
    draft["supportRules"]["minimumSupportsPerParticipant"] = 2
    process = await site.service.create_process(draft, by=site.admin)
    maria, joan = await user(site, "maria"), await user(site, "joan")
    proposal = await site.service.create_proposal(
        maria, process.id, name="Fonts", body_markdown="Més fonts."
    )
    await site.service.support(joan, proposal.id)  # temporary: below joan's minimum
    assert await site.service.support_count(proposal.id) == 0
    await site.service.delete_proposal(maria, proposal.id)
    assert not await site.service.has_supported(joan, proposal.id)
    assert await site.service.remaining_supports(joan, process.id) == 3


async def test_debates_and_comments_are_deleted_by_their_author_only(site: Site) -> None:
    maria, joan = await user(site, "maria"), await user(site, "joan")
    service = site.service
    debate = await service.create_debate(maria, site.process.id, name="Festa", body_markdown="?")
    first = await service.comment(joan, debate.id, body_markdown="Música")
    reply = await service.comment(maria, first.id, body_markdown="Sí")
    await refused(site, service.delete_comment(maria, first.id), "not_author")
    await refused(site, service.delete_debate(joan, debate.id), "not_author")
    deletion = await service.delete_comment(joan, first.id)
    assert deletion.former_type == "Note"
    assert (await delete_activity(site, first.id))["actor"] == service.actor_id(joan)
    # The reply stays, hanging from the debate now.
    assert [e.comment.id for e in await service.thread(debate.id)] == [reply.id]
    assert await service.get_comment(first.id) is None
    assert (await fetch(first.id))[0] == 410
    await refused(site, service.delete_comment(joan, first.id), "not_found")
    remote = Comment(
        id="http://127.0.0.1:9/notes/1", author="http://127.0.0.1:9/users/bob",
        in_reply_to=debate.id, context=None, content_html="<p>Hola</p>", source_markdown=None,
        published=debate.published,
    )  # fmt: skip
    await service.remember_remote_object(remote, external=True)
    await refused(site, service.delete_comment(maria, remote.id), "not_author")
    await service.delete_debate(maria, debate.id)
    assert (await delete_activity(site, debate.id))["object"]["formerType"] == "Debate"
    assert await service.get_debate(debate.id) is None
    status, tombstone = await fetch(debate.id)
    assert (status, tombstone["formerType"]) == (410, "Debate")
    await refused(site, service.delete_debate(maria, debate.id), "not_found")


# -- the pages -------------------------------------------------------------------------------


async def refused_post(
    site: Site, browser: Browser, action: str, data: dict[str, str], status: int
) -> Page:
    before = await site.rows()
    _, body = await browser.post(action, data, status=status)
    assert await site.rows() == before
    return assert_accessible(body)


async def test_deleting_a_proposal_from_its_page(site: Site, browser: Browser) -> None:
    proposal_id = await new_proposal(browser, site, "Més bancs", "Calen bancs.")
    path = path_of(proposal_id)
    action = path + "/delete"
    page = await browser.get(proposal_id)
    assert page.find("a", href=action)
    before = await site.rows()
    confirm = await browser.get(action)  # asking changes nothing
    assert await site.rows() == before
    assert confirm.headings[0][1] == "Vols esborrar aquesta proposta?"
    assert "Més bancs" in confirm.text and confirm.find("a", href=path)
    # Someone else: no link, a 403 page, and a refused POST.
    joan = Browser(site.config.base_url)
    try:
        await log_in(joan, "joan")
        assert not (await joan.get(proposal_id)).find("a", href=action)
        assert "Només ho pot fer qui ho va escriure." in (await joan.get(action, status=403)).text
        token = (await joan.get("/")).forms[0].fields["csrf"]
        page = await refused_post(site, joan, action, {"csrf": token}, 403)
        assert "Només ho pot fer qui ho va escriure." in page.text
    finally:
        await joan.close()
    for sent in ({}, {"csrf": "forged"}):
        assert "formulari ha caducat" in (await refused_post(site, browser, action, sent, 403)).text
    response, _ = await browser.submit(confirm, action, {})
    process_path = path_of(site.process.id)
    assert response.headers["Location"] == process_path + "?done=deleted"
    listed = await browser.get(response.headers["Location"])
    assert "S'ha esborrat." in listed.text and not listed.find("a", href=path)
    gone = await browser.get(proposal_id, status=410)
    assert gone.headings[0][1] == "Esborrat"
    await browser.get(action, status=404)
    await delete_activity(site, proposal_id)


async def test_a_supported_proposal_offers_no_deletion(site: Site, browser: Browser) -> None:
    proposal_id = await new_proposal(browser, site, "Fonts", "Més fonts.")
    await site.service.support(await user(site, "joan"), proposal_id)
    action = path_of(proposal_id) + "/delete"
    page = await browser.get(proposal_id)
    assert not page.find("a", href=action)
    confirm = await browser.get(action)  # a stale link still asks; the service refuses
    data = confirm.form(action).fields
    page = await refused_post(site, browser, action, data, 409)
    assert "no es pot retirar ni esborrar" in page.text
    assert page.form(action)  # the confirmation, with the reason above it


async def test_deleting_a_comment_and_a_debate_from_their_pages(
    site: Site, browser: Browser
) -> None:
    maria, joan = await user(site, "maria"), await user(site, "joan")
    debate = await site.service.create_debate(
        maria, site.process.id, name="Festa", body_markdown="?"
    )
    mine = await site.service.comment(maria, debate.id, body_markdown="La **meva** idea")
    theirs = await site.service.comment(joan, debate.id, body_markdown="La seva")
    comment_action = path_of(mine.id) + "/delete"
    page = await browser.get(debate.id)
    assert page.find("a", href=comment_action)
    assert not page.find("a", href=path_of(theirs.id) + "/delete")
    await browser.get(path_of(theirs.id) + "/delete", status=403)
    confirm = await browser.get(comment_action)
    assert confirm.headings[0][1] == "Vols esborrar aquest comentari?"
    assert "La meva idea" in confirm.text
    response, _ = await browser.submit(confirm, comment_action, {})
    assert response.headers["Location"] == path_of(debate.id) + "?done=deleted#comments"
    page = await browser.get(path_of(debate.id) + "?done=deleted")
    assert "S'ha esborrat." in page.text and "La meva idea" not in page.text
    assert "La seva" in page.text

    debate_action = path_of(debate.id) + "/delete"
    assert page.find("a", href=debate_action)
    confirm = await browser.get(debate_action + "?lang=en")
    assert confirm.headings[0][1] == "Delete this debate?"
    response, _ = await browser.submit(confirm, debate_action, {})
    assert response.headers["Location"] == path_of(site.process.id) + "?done=deleted"
    await browser.get(debate.id, status=410)
    # A debate outside any process: back to the start page, which confirms it.
    free = await site.service.create_debate(maria, None, name="Lliure", body_markdown="?")
    confirm = await browser.get(path_of(free.id) + "/delete")
    response, _ = await browser.submit(confirm, path_of(free.id) + "/delete", {})
    assert response.headers["Location"] == "/?done=deleted"
    # (?lang=en above is remembered in the language cookie)
    assert "It has been deleted." in (await browser.get("/?done=deleted")).text


async def test_anonymous_visitors_are_sent_to_log_in(site: Site) -> None:
    proposal = await make_proposal(site)
    visitor = Browser(site.config.base_url)
    try:
        page = await visitor.get(proposal.id)
        assert not [t for t in page.find("a") if t.attrs.get("href", "").endswith("/delete")]
        async with visitor.http.get(
            site.config.base_url + path_of(proposal.id) + "/delete", allow_redirects=False
        ) as response:
            assert response.status == 303
            assert response.headers["Location"].startswith("/login?next=")
        token = (await visitor.get("/login")).form("/login").fields["csrf"]
        page = await refused_post(
            site, visitor, path_of(proposal.id) + "/delete", {"csrf": token}, 403
        )
        assert "Has d'iniciar la sessió" in page.text
    finally:
        await visitor.close()
    assert await site.service.get_proposal(proposal.id) is not None
