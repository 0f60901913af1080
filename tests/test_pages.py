"""The HTML pages on a real instance (127.0.0.1, real SQLite): accounts, forms, CSRF, a11y.

A browser (:mod:`tests.html_browser`) is an aiohttp ClientSession with a cookie jar; every
page it fetches also passes ``assert_accessible`` (lang, one h1, headings in order, a label
for every input, a skip link, no script of any kind).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from federation.config import InstanceConfig
from federation.instance.app import ACCOUNTS, DB, DELIBERATION
from federation.instance.deliberation import Deliberation
from federation.instance.ports import Role, User
from federation.instance.web.sessions import SESSION_COOKIE
from federation.model import (
    Alignment,
    Comment,
    LangText,
    Phase,
    Process,
    Proposal,
    ProposalState,
    SupportRules,
    Territory,
    TerritoryKind,
    Tombstone,
)
from federation.store.sqlite import transaction
from tests.apnode import start_node
from tests.html_browser import (
    HTML_TYPE,
    PASSWORD,
    Browser,
    Page,
    assert_accessible,
    log_in,
    make_config,
    register,
    running,
)
from tests.instance_fixtures import count_rows, iso, process_draft


@pytest.fixture
def config(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> InstanceConfig:
    return make_config(tmp_path, unused_tcp_port_factory())


@pytest.fixture
async def server(config: InstanceConfig) -> AsyncIterator[TestServer]:
    async with running(config) as started:
        yield started


@pytest.fixture
async def browser(config: InstanceConfig, server: TestServer) -> AsyncIterator[Browser]:
    visitor = Browser(config.base_url)
    yield visitor
    await visitor.close()


async def user_count(server: TestServer) -> int:
    return len(await server.app[ACCOUNTS].list_users())


# -- accounts --------------------------------------------------------------------------------


async def test_register_creates_a_resident_and_logs_in(
    server: TestServer, browser: Browser
) -> None:
    page = await browser.get("/register")
    assert page.find("input", name="csrf") and browser.cookie(SESSION_COOKIE)
    anonymous_token = page.form("/register").fields["csrf"]
    await register(browser, "maria")
    user = await server.app[ACCOUNTS].get("maria")
    assert user.role is Role.RESIDENT and not user.verified
    after = await browser.get("/login")
    assert "maria" in after.text
    # A new CSRF token once logged in: the anonymous one is worthless now.
    assert after.form("/logout").fields["csrf"] != anonymous_token


@pytest.mark.parametrize(
    ("username", "password", "confirm", "status", "message"),
    [
        ("Bad Name!", PASSWORD, PASSWORD, 422, "lletres minúscules"),
        ("maria", "short", "short", 422, "com a mínim 10"),
        ("maria", PASSWORD, PASSWORD + "x", 422, "no coincideixen"),
        ("av_raval", PASSWORD, PASSWORD, 409, "reservat"),
    ],
)
async def test_register_refusals_are_explained_in_the_page_language(
    server: TestServer,
    browser: Browser,
    username: str,
    password: str,
    confirm: str,
    status: int,
    message: str,
) -> None:
    page = await browser.get("/register")
    before = await user_count(server)
    _, body = await browser.submit(
        page,
        "/register",
        {"username": username, "password": password, "confirm": confirm},
        status=status,
    )
    again = assert_accessible(body)
    assert message in again.text
    assert again.form("/register").fields["username"] == username  # kept for correcting
    assert again.form("/register").fields.get("password", "") == ""  # never echoed back
    assert await user_count(server) == before


async def test_register_a_taken_name_is_a_409(server: TestServer, browser: Browser) -> None:
    await server.app[ACCOUNTS].create_user("maria", PASSWORD)
    page = await browser.get("/register")
    _, body = await browser.submit(
        page,
        "/register",
        {"username": "maria", "password": PASSWORD, "confirm": PASSWORD},
        status=409,
    )
    assert "ja està agafat" in assert_accessible(body).text


async def test_login_logout(server: TestServer, browser: Browser) -> None:
    await server.app[ACCOUNTS].create_user("joan", PASSWORD)
    page = await browser.get("/login")
    _, body = await browser.submit(
        page, "/login", {"username": "joan", "password": "wrong password!"}, status=422
    )
    failed = assert_accessible(body)
    assert "no són correctes" in failed.text and "Sessió iniciada" not in failed.text
    response, _ = await browser.submit(failed, "/login", {"username": "joan", "password": PASSWORD})
    assert response.headers["Location"] == "/"
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    assert int(cookie["max-age"]) == 14 * 24 * 3600
    home = await browser.get("/login")
    assert "Sessió iniciada com a joan" in home.text
    response, _ = await browser.submit(home, "/logout", {})
    assert response.cookies[SESSION_COOKIE].value == ""
    assert browser.cookie(SESSION_COOKIE) is None
    out = await browser.get("/login")
    assert "joan" not in out.text and out.find("a", href="/register")


async def test_login_goes_back_only_to_local_paths(server: TestServer, browser: Browser) -> None:
    await server.app[ACCOUNTS].create_user("joan", PASSWORD)
    for wanted, landed in [
        ("/register?x=1", "/register?x=1"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ]:
        page = await browser.get("/login?next=" + quote(wanted, safe=""))
        assert page.form("/login").fields["next"] == landed
        data = {"username": "joan", "password": PASSWORD, "next": wanted}
        response, _ = await browser.submit(page, "/login", data)
        assert response.headers["Location"] == landed


# -- CSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token", "OTHER"])
async def test_post_without_the_session_token_is_refused_and_writes_nothing(
    server: TestServer, browser: Browser, config: InstanceConfig, token: str | None
) -> None:
    page = await browser.get("/register")
    data = {"username": "eve", "password": PASSWORD, "confirm": PASSWORD}
    if token == "OTHER":
        # A valid token, but of another visitor's session.
        other = Browser(config.base_url)
        try:
            token = (await other.get("/register")).form("/register").fields["csrf"]
        finally:
            await other.close()
    if token is not None:
        data["csrf"] = token
    assert page.form("/register").fields["csrf"] != token
    before = await user_count(server)
    _, body = await browser.post("/register", data, status=403)
    refused = assert_accessible(body)
    assert "formulari ha caducat" in refused.text
    assert await user_count(server) == before


async def test_post_from_a_foreign_origin_is_refused(server: TestServer, browser: Browser) -> None:
    page = await browser.get("/register")
    data = {**page.form("/register").fields, "username": "eve"}
    data |= {"password": PASSWORD, "confirm": PASSWORD}
    _, body = await browser.post(
        "/register", data, status=403, headers={"Origin": "https://evil.example"}
    )
    assert "formulari" in Page(body).text
    assert await user_count(server) == 0
    await browser.post("/register", data, headers={"Origin": browser.base})
    assert await user_count(server) == 1


async def test_a_post_without_any_session_is_refused(
    server: TestServer, config: InstanceConfig
) -> None:
    async with aiohttp.ClientSession() as http:
        data = {"username": "eve", "password": PASSWORD, "csrf": "x" * 43}
        async with http.post(f"{config.base_url}/login", data=data) as response:
            assert response.status == 403
            assert response.content_type == HTML_TYPE


# -- errors ----------------------------------------------------------------------------------


async def test_unknown_form_fields_and_odd_input_never_give_a_500(
    server: TestServer, browser: Browser
) -> None:
    page = await browser.get("/login")
    token = page.form("/login").fields["csrf"]
    weird: list[dict[str, Any]] = [
        {"csrf": token},
        {"csrf": token, "username": "\x00", "password": "\ud7ff" * 3},
        {"csrf": token, "username": "joan", "password": "p" * 5000},
    ]
    for data in weird:
        _, body = await browser.post("/login", data, status=422)
        assert_accessible(body)


# -- the deliberation pages ------------------------------------------------------------------

TERRITORY = ("neighbourhood", "08019-01", "08019-1")
AS2 = "application/activity+json"


def open_draft(
    *, proposals: bool = True, supports: bool = True, per_participant: int = 3
) -> dict[str, Any]:
    """A process whose current phase (around the real now) takes what the test needs."""
    draft = process_draft(per_participant=per_participant, territories=(TERRITORY,))
    now = datetime.now(UTC).replace(microsecond=0)

    def phase(name: str, start: datetime, end: datetime, active: bool) -> dict[str, Any]:
        return {
            "type": "Phase",
            "name": name,
            "startTime": iso(start),
            "endTime": iso(end),
            "allowsProposals": proposals and active,
            "allowsSupports": supports and active,
            "allowsComments": True,
            "allowsDebates": True,
        }

    draft["phases"] = [
        phase("Ara", now - timedelta(days=1), now + timedelta(days=30), True),
        phase("Després", now + timedelta(days=30), now + timedelta(days=60), False),
    ]
    return draft


@dataclass
class Site:
    server: TestServer
    config: InstanceConfig
    service: Deliberation
    admin: User
    process: Process

    async def rows(self) -> dict[str, int]:
        return await count_rows(self.server.app[DB])


@pytest.fixture
async def site(server: TestServer, config: InstanceConfig) -> Site:
    accounts = server.app[ACCOUNTS]
    admin = await accounts.create_user("admin", PASSWORD, Role.ADMIN)
    service = server.app[DELIBERATION]
    process = await service.create_process(open_draft(), by=admin)
    return Site(server, config, service, admin, process)


async def new_proposal(browser: Browser, site: Site, name: str, body: str) -> str:
    """Fill in the new proposal form of the site's process; the proposal's id."""
    local = site.process.id.rsplit("/", 1)[-1]
    action = f"/processes/{local}/proposals/new"
    form_page = await browser.get(action)
    response, _ = await browser.submit(form_page, action, {"name": name, "body": body})
    location = response.headers["Location"]
    assert location.startswith("/proposals/") and location.endswith("?done=proposal_created")
    return site.config.base_url + location.split("?")[0]


async def test_start_page_and_process_page(site: Site, browser: Browser) -> None:
    home = await browser.get("/")
    assert home.headings[0][1] == "AV Raval"
    assert "Pressupostos participatius 2027" in home.text
    assert home.find("a", href=urlsplit(site.process.id).path)
    page = await browser.get(site.process.id)
    assert page.headings[0][1] == "Pressupostos participatius 2027"
    active = page.find("li", **{"aria-current": "step"})
    assert len(active) == 1 and "phase-active" in active[0].attrs["class"]
    assert "Ara fase actual" in page.text and "Després" in page.text
    assert "En aquesta fase: propostes noves, suports, comentaris i debats." in page.text
    assert "fins a 3 propostes" in page.text and "el barri 08019-01" in page.text
    local = site.process.id.rsplit("/", 1)[-1]
    assert page.find("a", href=f"/processes/{local}/proposals/new")
    english = await browser.get(site.process.id + "?lang=en")
    assert "Each participant can support up to 3 proposals." in english.text
    # The same URL answers AS2 to servers.
    async with browser.http.get(site.process.id, headers={"Accept": AS2}) as response:
        assert response.status == 200 and (await response.json())["id"] == site.process.id


async def test_no_proposal_link_when_the_phase_takes_none(site: Site, browser: Browser) -> None:
    closed = await site.service.create_process(open_draft(proposals=False), by=site.admin)
    page = await browser.get(closed.id)
    assert not [t for t in page.find("a") if t.attrs.get("href", "").endswith("/proposals/new")]
    assert "En aquesta fase: comentaris i debats." in page.text


async def test_register_propose_support_comment(site: Site, browser: Browser) -> None:
    await register(browser, "maria")
    local = site.process.id.rsplit("/", 1)[-1]
    action = f"/processes/{local}/proposals/new"
    # Not verified yet: the rule refuses, the form says why and keeps the input, nothing written.
    before = await site.rows()
    form_page = await browser.get(action)
    values = {"name": "Més bancs a la plaça", "body": "Calen **bancs**."}
    _, body = await browser.submit(form_page, action, values, status=403)
    refused = assert_accessible(body)
    assert "residència verificada" in refused.text
    assert refused.form(action).fields["name"] == "Més bancs a la plaça"
    assert await site.rows() == before

    await site.server.app[ACCOUNTS].verify("maria", "08019-01", by="test")
    proposal_id = await new_proposal(browser, site, "Més bancs a la plaça", "Calen **bancs**.")
    stored = await site.service.get_proposal(proposal_id)
    assert stored is not None and stored.author.endswith("/users/maria")
    page = await browser.get(proposal_id + "?done=proposal_created")
    assert page.headings[0][1] == "Més bancs a la plaça"
    assert "La teva proposta està publicada." in page.text
    assert page.find("strong") and "Calen bancs." in page.text
    assert "0 suports" in page.text and "Sense resposta" in page.text

    # Another resident, not verified, cannot support: 403 on the proposal page.
    joan = Browser(site.config.base_url)
    try:
        await register(joan, "joan")
        joan_page = await joan.get(proposal_id)
        before = await site.rows()
        _, body = await joan.submit(
            joan_page, urlsplit(proposal_id).path + "/support", {}, status=403
        )
        assert "residència verificada" in assert_accessible(body).text
        assert await site.rows() == before
    finally:
        await joan.close()

    page = await browser.get(proposal_id)
    response, _ = await browser.submit(page, urlsplit(proposal_id).path + "/support", {})
    assert response.headers["Location"] == urlsplit(proposal_id).path + "?done=supported"
    page = await browser.get(proposal_id + "?done=supported")
    assert "1 suport" in page.text and "Pots donar 2 suports més en aquest procés." in page.text
    assert page.form(urlsplit(proposal_id).path + "/unsupport")
    assert await site.service.support_count(proposal_id) == 1

    # Supporting twice is a 409 with the rule's message; the count stays.
    token = page.form(urlsplit(proposal_id).path + "/unsupport").fields["csrf"]
    _, body = await browser.post(
        urlsplit(proposal_id).path + "/support", {"csrf": token}, status=409
    )
    assert "Ja dones suport a aquesta proposta." in Page(body).text
    assert await site.service.support_count(proposal_id) == 1

    await browser.submit(page, urlsplit(proposal_id).path + "/unsupport", {})
    assert await site.service.support_count(proposal_id) == 0

    page = await browser.get(proposal_id)
    path = urlsplit(proposal_id).path
    await browser.submit(page, path + "/comment", {"body": "Molt *bé*", "alignment": "inFavor"})
    page = await browser.get(proposal_id)
    assert "Comentaris (1)" in page.text and "Molt bé" in page.text
    assert page.find("span", **{"class": "badge inFavor"})
    thread = await site.service.thread(proposal_id)
    assert [e.comment.alignment for e in thread] == [Alignment.IN_FAVOR]


async def test_replies_nest_to_depth_three(site: Site, browser: Browser) -> None:
    await register(browser, "maria", verified_by=site)
    proposal_id = await new_proposal(browser, site, "Fonts", "Més fonts.")
    path = urlsplit(proposal_id).path
    parent = None
    for depth in (1, 2, 3):
        url = proposal_id if parent is None else f"{proposal_id}?reply_to={quote(parent)}"
        page = await browser.get(url)
        values = {"body": f"nivell {depth}", "alignment": "neutral"}
        if parent is not None:
            assert page.form(path + "/comment").fields["parent"] == parent
            assert "Respons a maria." in page.text
        await browser.submit(page, path + "/comment", values)
        parent = (await site.service.thread(proposal_id))[-1].comment.id
    page = await browser.get(proposal_id)
    replies = [t for t in page.find("a") if "reply_to=" in t.attrs.get("href", "")]
    assert len(replies) == 2  # depth 1 and 2 can be answered, depth 3 cannot
    assert len(page.find("ol")) == 3  # the thread and two nested levels
    # Forcing a fourth level through the form: the service's rule refuses, 409 on the page.
    assert parent is not None
    data = {**page.form(path + "/comment").fields, "body": "nivell 4", "parent": parent}
    _, body = await browser.post(path + "/comment", data, status=409)
    assert "tres nivells" in assert_accessible(body).text
    assert len(await site.service.thread(proposal_id)) == 3


async def test_external_comments_are_marked(site: Site, browser: Browser) -> None:
    await register(browser, "maria", verified_by=site)
    proposal_id = await new_proposal(browser, site, "Arbres", "Més arbres.")
    remote = Comment(
        id="http://127.0.0.1:9/notes/1",
        author="http://127.0.0.1:9/users/bob",
        in_reply_to=proposal_id,
        context=None,
        content_html='<p>Hola! <script>alert(1)</script><a href="javascript:x()">x</a></p>',
        source_markdown=None,
        published=datetime.now(UTC).replace(microsecond=0),
    )
    await site.service.remember_remote_object(remote, external=True)
    page = await browser.get(proposal_id + "?lang=en")
    assert "from elsewhere on the fediverse" in page.text and "bob@127.0.0.1:9" in page.text
    assert "alert(1)" not in page.text
    assert page.find("article", **{"class": "card comment external"})


async def test_markup_in_a_proposal_is_escaped_or_sanitised(site: Site, browser: Browser) -> None:
    await register(browser, "maria", verified_by=site)
    name = '<script>alert("t")</script> Títol'
    body = '<script>alert("b")</script>\n\n<img src=x onerror=alert(1)> [l](javascript:alert(2))'
    proposal_id = await new_proposal(browser, site, name, body)
    async with browser.http.get(proposal_id, headers={"Accept": "text/html"}) as response:
        html = await response.text()
    page = assert_accessible(html)  # no <script>, no on* attribute, no javascript: link
    assert page.headings[0][1] == name  # shown as text
    assert "&lt;script&gt;" in html
    assert not page.find("img")


async def test_csrf_refusal_on_actions_writes_nothing(site: Site, browser: Browser) -> None:
    await register(browser, "maria")
    await site.server.app[ACCOUNTS].verify("maria", "08019-01", by="test")
    proposal_id = await new_proposal(browser, site, "Fonts", "Més fonts.")
    path = urlsplit(proposal_id).path
    before = await site.rows()
    for action, data in [
        ("/support", {}),
        ("/comment", {"body": "hola", "alignment": "neutral"}),
        ("/withdraw", {}),
    ]:
        for token in (None, "bad"):
            sent = data | ({"csrf": token} if token else {})
            _, body = await browser.post(path + action, sent, status=403)
            assert "formulari ha caducat" in assert_accessible(body).text
    assert await site.rows() == before
    assert await site.service.support_count(proposal_id) == 0


async def test_anonymous_and_unknown(site: Site, browser: Browser) -> None:
    local = site.process.id.rsplit("/", 1)[-1]
    async with browser.http.get(
        f"{browser.base}/processes/{local}/proposals/new", allow_redirects=False
    ) as response:
        assert response.status == 303
        assert response.headers["Location"].startswith("/login?next=%2Fprocesses%2F")
    page = await browser.get("/login")
    token = page.form("/login").fields["csrf"]
    _, body = await browser.post(f"/processes/{local}/proposals/new", {"csrf": token}, status=403)
    assert "Has d'iniciar la sessió" in assert_accessible(body).text
    await browser.get("/processes/nope/proposals/new", status=303)
    await register(browser, "maria")
    await browser.get("/processes/nope/proposals/new", status=404)
    _, body = await browser.post("/proposals/nope/support", {"csrf": token}, status=403)
    fresh = (await browser.get("/")).forms[0].fields["csrf"]
    _, body = await browser.post("/proposals/nope/support", {"csrf": fresh}, status=404)
    assert_accessible(body)


async def test_admin_verifies_and_answers(site: Site, browser: Browser) -> None:
    await site.server.app[ACCOUNTS].create_user("joan", PASSWORD)
    await register(browser, "maria", verified_by=site)
    proposal_id = await new_proposal(browser, site, "Fonts", "Més fonts.")
    await browser.get("/admin/verify", status=403)
    await browser.get("/admin/answers", status=403)

    admin = Browser(site.config.base_url)
    try:
        await log_in(admin, "admin")
        page = await admin.get("/admin/verify")
        forms = {f.fields["username"]: f for f in page.forms if f.action == "/admin/verify"}
        assert sorted(forms) == ["admin", "joan"]  # maria is verified already
        assert forms["joan"].fields["territory"] == "08019-01"  # the instance's own by default
        data = forms["joan"].fields | {"territory": "no good!"}
        _, body = await admin.post("/admin/verify", data, status=422)
        assert "no és un codi de territori" in assert_accessible(body).text
        assert not (await site.server.app[ACCOUNTS].get("joan")).verified
        response, _ = await admin.post("/admin/verify", forms["joan"].fields)
        done = await admin.get(response.headers["Location"])
        assert "joan ja és resident verificat de 08019-01." in done.text
        assert [f.fields["username"] for f in done.forms if f.action == "/admin/verify"] == [
            "admin"
        ]
        assert (await site.server.app[ACCOUNTS].get("joan")).verified

        listing = await admin.get("/admin/answers")
        links = [t.attrs["href"] for t in listing.find("a") if "proposal=" in t.attrs["href"]]
        assert [parse_qs(urlsplit(href).query)["proposal"] for href in links] == [[proposal_id]]
        link = links[0]
        chosen = await admin.get(link)
        answer = chosen.form("/admin/answers")
        _, body = await admin.post(
            "/admin/answers", answer.fields | {"state": "rejected", "answer": ""}, status=422
        )
        assert_accessible(body)
        _, body = await admin.post(
            "/admin/answers", answer.fields | {"state": "withdrawn", "answer": "x"}, status=400
        )
        assert "Tria un estat de resposta" in assert_accessible(body).text
        await admin.post(
            "/admin/answers", answer.fields | {"state": "accepted", "answer": "Ho farem."}
        )
    finally:
        await admin.close()
    stored = await site.service.get_proposal(proposal_id)
    assert stored is not None and stored.state is ProposalState.ACCEPTED
    page = await browser.get(proposal_id)
    assert "Acceptada" in page.text and "Resposta oficial" in page.text and "Ho farem." in page.text


async def test_debate_page_close_and_comment(site: Site, browser: Browser) -> None:
    await register(browser, "maria")
    maria = await site.server.app[ACCOUNTS].get("maria")
    debate = await site.service.create_debate(
        maria, site.process.id, name="Com fem la festa?", body_markdown="Idees?"
    )
    path = urlsplit(debate.id).path
    page = await browser.get(debate.id)
    assert page.headings[0][1] == "Com fem la festa?" and "Obert" in page.text
    await browser.submit(page, path + "/comment", {"body": "Música!", "alignment": "neutral"})
    page = await browser.get(debate.id)
    assert "Música!" in page.text
    _, body = await browser.submit(page, path + "/close", {"conclusions": " "}, status=422)
    assert "Omple tots els camps obligatoris." in assert_accessible(body).text
    await browser.submit(page, path + "/close", {"conclusions": "Farem **concert**."})
    page = await browser.get(debate.id)
    assert "Conclusions" in page.text and "Farem concert." in page.text
    assert not [f for f in page.forms if f.action.endswith("/close")]
    assert not [f for f in page.forms if f.action.endswith("/comment")]
    closed = await site.service.get_debate(debate.id)
    assert closed is not None and closed.closed_at is not None


async def test_comment_ids_lead_to_their_thread(site: Site, browser: Browser) -> None:
    await register(browser, "maria", verified_by=site)
    proposal_id = await new_proposal(browser, site, "Fonts", "Més fonts.")
    maria = await site.server.app[ACCOUNTS].get("maria")
    comment = await site.service.comment(maria, proposal_id, body_markdown="Sí")
    async with browser.http.get(
        comment.id, headers={"Accept": "text/html"}, allow_redirects=False
    ) as response:
        assert response.status == 303
        anchor = comment.id.rsplit("/", 1)[-1]
        assert response.headers["Location"] == f"{urlsplit(proposal_id).path}#c-{anchor}"


async def test_supports_closed_phase(site: Site, browser: Browser) -> None:
    process = await site.service.create_process(open_draft(supports=False), by=site.admin)
    await register(browser, "maria")
    await site.server.app[ACCOUNTS].verify("maria", "08019-01", by="test")
    maria = await site.server.app[ACCOUNTS].get("maria")
    proposal = await site.service.create_proposal(
        maria, process.id, name="Fonts", body_markdown="Més fonts."
    )
    page = await browser.get(proposal.id)
    assert "Els suports no són oberts en la fase actual." in page.text
    token = page.forms[0].fields["csrf"]
    _, body = await browser.post(
        urlsplit(proposal.id).path + "/support", {"csrf": token}, status=409
    )
    assert "no admet suports" in assert_accessible(body).text


async def test_process_proposals_are_paged(site: Site, browser: Browser) -> None:
    await register(browser, "maria", verified_by=site)
    maria = await site.server.app[ACCOUNTS].get("maria")
    for n in range(23):
        await site.service.create_proposal(
            maria, site.process.id, name=f"Proposta {n:02}", body_markdown="Text."
        )
    first = await browser.get(site.process.id)
    names = [text for level, text, _ in first.headings if level == 3 and text.startswith("Prop")]
    assert names == [f"Proposta {n:02}" for n in range(22, 2, -1)]  # newest first, 20
    older = [t.attrs["href"] for t in first.find("a", rel="next")]
    assert len(older) == 1 and not first.find("a", rel="prev")
    second = await browser.get(older[0])
    rest = [text for level, text, _ in second.headings if level == 3 and text.startswith("Prop")]
    assert rest == ["Proposta 02", "Proposta 01", "Proposta 00"]
    assert second.find("a", rel="prev") and not second.find("a", rel="next")
    await browser.get(urlsplit(site.process.id).path + "?after=garbage", status=400)


async def test_deleted_objects_answer_410(site: Site, browser: Browser) -> None:
    # A Tombstone written the way the store keeps them (tests/test_deletions.py deletes for real).
    gone = f"{site.config.base_url}/proposals/gone1"
    async with transaction(site.server.app[DB]):
        await site.service.domain.add_tombstone(Tombstone(gone, "Proposal", datetime.now(UTC)))
    page = await browser.get(gone, status=410)
    assert page.headings[0][1] == "Esborrat"
    async with browser.http.get(gone, headers={"Accept": AS2}) as response:
        assert response.status == 410 and (await response.json())["type"] == "Tombstone"


async def test_taking_part_in_another_instance_s_process(
    site: Site, browser: Browser, tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """A city-wide process owned elsewhere: shown, proposed into and supported from here."""
    async with asynccontextmanager(start_node)(tmp_path, "city", unused_tcp_port_factory()) as (
        node,
        _,
    ):
        now = datetime.now(UTC).replace(microsecond=0)
        city = Process(
            id=f"{node.origin}/processes/city",
            owner=node.actor_id("alice"),
            name=LangText.of("Pressupost de ciutat", {"en": "City budget"}),
            summary=None,
            phases=(
                Phase(
                    name=LangText("Tot"), start=now - timedelta(days=1),
                    end=now + timedelta(days=9), allows_proposals=True, allows_supports=True,
                    allows_comments=True, allows_debates=True,
                ),
            ),
            rules=SupportRules(supports_per_participant=2),
            eligible=(Territory(TerritoryKind.CITY, "08019"),),
            published=now,
        )  # fmt: skip
        theirs = Proposal(
            id=f"{node.origin}/proposals/bikes",
            author=node.actor_id("bob"),
            audience=city.owner,
            process=city.id,
            name=LangText("Carrils bici"),
            content_html="<p>Més <em>carrils</em></p><script>x()</script>",
            source_markdown=None,
            published=now,
        )
        await site.service.remember_remote_object(city)
        await site.service.remember_remote_object(theirs)
        await register(browser, "maria", verified_by=site)

        home = await browser.get("/")
        remote_path = f"/remote?id={quote(city.id, safe='')}"
        assert home.find("a", href=remote_path)
        assert f"allotjat a {urlsplit(node.origin).netloc}" in home.text
        page = await browser.get(remote_path)
        assert page.headings[0][1] == "Pressupost de ciutat"
        assert "Each participant" not in page.text and "fins a 2 propostes" in page.text
        english = [t.attrs["href"] for t in page.find("a", hreflang="en")]
        assert parse_qs(urlsplit(english[0]).query) == {"id": [city.id], "lang": ["en"]}
        assert page.find("a", href=f"/remote?id={quote(theirs.id, safe='')}")

        # Propose into it: the proposal is ours (a local id), in their process.
        propose = f"/remote/processes/proposals/new?id={quote(city.id, safe='')}"
        assert page.find("a", href=propose)
        form_page = await browser.get(propose)
        response, _ = await browser.submit(
            form_page, propose, {"name": "Més fonts a la ciutat", "body": "Fonts."}
        )
        ours = site.config.base_url + response.headers["Location"].split("?")[0]
        stored = await site.service.get_proposal(ours)
        assert stored is not None and stored.process == city.id

        # Support and comment on theirs through the /remote forms.
        their_page = await browser.get(f"/remote?id={quote(theirs.id, safe='')}")
        assert their_page.headings[0][1] == "Carrils bici" and their_page.find("em")
        support = f"/remote/proposals/support?id={quote(theirs.id, safe='')}"
        response, _ = await browser.submit(their_page, support, {})
        back = urlsplit(response.headers["Location"])
        assert back.path == "/remote"
        assert parse_qs(back.query) == {"id": [theirs.id], "done": ["supported"]}
        maria = await site.server.app[ACCOUNTS].get("maria")
        assert await site.service.has_supported(maria, theirs.id)
        after = await browser.get(response.headers["Location"])
        assert "Pots donar 1 suport més en aquest procés." in after.text
        comment = f"/remote/proposals/comment?id={quote(theirs.id, safe='')}"
        await browser.submit(after, comment, {"body": "Sí!", "alignment": "inFavor"})
        assert [e.comment.in_reply_to for e in await site.service.thread(theirs.id)] == [theirs.id]
        # A local id given to /remote goes to its own page; an unknown one is a 404.
        await browser.get(f"/remote?id={quote(ours, safe='')}", status=303)
        await browser.get("/remote?id=http%3A%2F%2F127.0.0.1%3A9%2Fnope", status=404)
