"""C2S on real instances over loopback (issue 5): a resident's client posts to their outbox.

Two instances: the city (C) owns a process; la Vila de Gràcia (A) follows it. Residents of A
post through C2S with OAuth access tokens (the full flow) or personal access tokens; what
they post goes through the Deliberation service, is delivered to the city and counts there.
Every refusal is problem+json naming its rule and leaves both databases as they were.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from activitypub import as2
from federation.instance.app import ACCOUNTS, DB
from federation.instance.ports import Role, TokenScope, User
from federation.instance.rules import RULES
from federation.model import LangText, Process, ProposalState
from federation.vocab.context import plain_context
from tests.html_browser import Browser, log_in
from tests.instance_fixtures import count_rows
from tests.test_handlers import draft
from tests.test_instance_federation import Instance, of_type, process_draft, start
from tests.test_oauth import ClientApp, pkce, start_client_app
from tests.test_readside import instance_config

AS2 = "application/activity+json"
LD = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
PROBLEM = "application/problem+json"


@dataclass
class Net:
    city: Instance
    gracia: Instance
    process: Process
    local_process: Process
    admin: User
    client: ClientApp
    http: aiohttp.ClientSession
    pats: dict[str, str]

    def outbox(self, name: str) -> str:
        return self.gracia.actor(name) + "/outbox"


async def oauth_token(instance: Instance, username: str, client: ClientApp, scope: str) -> str:
    """The whole OAuth flow for a resident: consent in a browser, code, token."""
    base = instance.config.base_url
    browser = Browser(base)
    try:
        await log_in(browser, username)
        verifier, challenge = pkce()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client.client_id,
                "redirect_uri": client.redirect_uri,
                "scope": scope,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        page = await browser.get("/oauth/authorize?" + query)
        response, _ = await browser.submit(page, "/oauth/authorize", {"decision": "allow"})
        code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
        }
        async with browser.http.post(base + "/oauth/token", data=form) as token_response:
            body = await token_response.json()
        return str(body["access_token"])
    finally:
        await browser.close()


@pytest.fixture
async def net(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[Net]:
    async with AsyncExitStack() as stack:
        configs = [
            instance_config(
                tmp_path,
                unused_tcp_port_factory(),
                name="Barcelona",
                territory="08019",
                kind="city",
            ),
            instance_config(
                tmp_path,
                unused_tcp_port_factory(),
                name="AV Vila de Gràcia",
                territory="31",
                district="06",
            ),
        ]
        c, a = [await start(stack, config) for config in configs]
        admin = await c.resident("admin", None, Role.ADMIN)
        process = await c.deliberation.create_process(process_draft(), by=admin)
        await a.deliberation.follow_remote_process(process.id)
        await c.observer.wait(of_type("Follow", actor=a.group))
        await a.observer.wait(of_type("Accept", actor=c.group))
        local_admin = await a.resident("gadmin", None, Role.ADMIN)
        # Gràcia's own process: proposals open, supports not yet.
        local = await a.deliberation.create_process(draft(supports_open=False), by=local_admin)
        pats = {}
        for name, code in (("ana", "31"), ("pau", "31"), ("joan", None)):
            await a.resident(name, code)
            pats[name] = await a.app[ACCOUNTS].create_token(name, TokenScope.WRITE)
        pats["ana_read"] = await a.app[ACCOUNTS].create_token("ana", TokenScope.READ)
        client = await start_client_app(unused_tcp_port_factory())
        stack.push_async_callback(client.server.close)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Net(c, a, process, local, admin, client, http, pats)


async def call(
    net: Net,
    method: str,
    url: str,
    token: str | None,
    body: Any = None,
    *,
    content_type: str = LD,
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Accept": AS2}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None:
        headers["Content-Type"] = content_type
    async with net.http.request(method, url, data=data, headers=headers) as response:
        text = await response.text()
        parsed = json.loads(text) if text else {}
        return response.status, parsed, dict(response.headers)


async def post(net: Net, name: str, body: Any, token: str | None = None) -> dict[str, Any]:
    """POST to the resident's outbox and expect 201 + Location + the stored activity."""
    status, stored, headers = await call(
        net, "POST", net.outbox(name), token or net.pats[name], body
    )
    assert status == 201, stored
    assert headers["Location"] == stored["id"]
    assert headers["Content-Type"].startswith(AS2)
    return stored


async def propose(net: Net, name: str = "ana", process: Process | None = None) -> dict[str, Any]:
    proposal = {
        "type": ["Page", "Proposal"],
        "process": (process or net.process).id,
        "name": "Un banc a la plaça",
        "source": {"content": "Volem **un banc** a la plaça.", "mediaType": "text/markdown"},
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
    }
    return await post(net, name, {"type": "Create", "object": proposal})


async def test_a_c2s_support_counts_at_the_city_and_its_undo_removes_it(net: Net) -> None:
    c, a = net.city, net.gracia
    created = await propose(net)
    assert as2.types(created) == ["Create"] and created["actor"] == a.actor("ana")
    proposal = created["object"]
    assert proposal["attributedTo"] == a.actor("ana") and proposal["audience"] == c.group
    assert proposal["content"] == "<p>Volem <strong>un banc</strong> a la plaça.</p>"
    assert created["proof"]["verificationMethod"] == a.actor("ana") + "#ed25519-key"
    await c.observer.wait(of_type("Create", actor=a.actor("ana")))
    assert await c.deliberation.get_proposal(proposal["id"]) is not None

    token = await oauth_token(a, "pau", net.client, "read write")
    like = await post(net, "pau", {"type": "Like", "object": proposal["id"]}, token)
    assert like["id"].startswith(a.config.base_url + "/supports/")
    assert like["to"] == [c.group] and not as2.is_addressed_publicly(like)
    assert like["@context"] == like["proof"]["@context"] == plain_context()
    await c.observer.wait(of_type("Like", object=proposal["id"]))
    assert await c.deliberation.support_count(proposal["id"]) == 1

    undo = await post(net, "pau", {"type": "Undo", "object": like["id"]}, token)
    assert as2.types(undo) == ["Undo"] and as2.first_id(undo, "object") == like["id"]
    await c.observer.wait(of_type("Undo", actor=a.actor("pau")))
    assert await c.deliberation.support_count(proposal["id"]) == 0

    # pau's outbox: with his token the private Like and Undo are there; for others they are not.
    outbox = net.outbox("pau") + "?page=true"
    status, page, headers = await call(net, "GET", outbox, token)
    assert status == 200 and [item["id"] for item in page["orderedItems"]] == [
        undo["id"],
        like["id"],
    ]
    assert page["orderedItems"][1] == like and "private" in headers["Cache-Control"]
    for other in (None, net.pats["ana"]):
        status, page, _ = await call(net, "GET", outbox, other)
        assert status == 200 and page["orderedItems"] == []
    status, collection, _ = await call(net, "GET", net.outbox("pau"), token)
    assert collection["totalItems"] == 2
    # "Authorization: Signature" is a (cavage) signed fetch, not C2S: the public view.
    headers = {"Authorization": 'Signature keyId="x",signature="y"', "Accept": AS2}
    async with net.http.get(outbox, headers=headers) as response:
        assert response.status == 200
        assert (await response.json(content_type=None))["orderedItems"] == []


async def test_bare_objects_comments_debates_edits_votes_and_deletion(net: Net) -> None:
    c = net.city
    proposal_id = (await propose(net))["object"]["id"]
    # A bare Note is wrapped in a Create (ActivityPub §6.2.1): a comment on the proposal.
    note = {
        "type": "Note",
        "inReplyTo": proposal_id,
        "content": "<p>Molt bé!</p>",
        "alignment": "inFavor",
    }
    created = await post(net, "pau", note)
    comment = created["object"]
    assert as2.types(created) == ["Create"] and comment["alignment"] == "inFavor"
    assert comment["source"]["content"] == "Molt bé!" and comment["depth"] == 1
    await c.observer.wait(of_type("Create", object=comment["id"]))

    debate = await post(
        net,
        "ana",
        {
            "type": "Debate",
            "name": "Places o aparcament?",
            "content": "Parlem-ne.",
            "process": net.process.id,
        },
    )
    assert debate["object"]["audience"] == c.group

    edited = await post(
        net,
        "ana",
        {
            "type": "Update",
            "object": {
                "type": ["Page", "Proposal"],
                "id": proposal_id,
                "name": "Dos bancs a la plaça",
            },
        },
    )
    assert edited["object"]["name"] == "Dos bancs a la plaça"
    assert edited["object"]["source"]["content"] == "Volem **un banc** a la plaça."

    vote = await post(net, "ana", {"type": "Dislike", "object": comment["id"]})
    assert as2.types(vote) == ["Dislike"]
    undone = await post(net, "ana", {"type": "Undo", "object": vote["id"]})
    assert as2.first_id(undone, "object") == vote["id"]
    # A vote and its Undo use no Barri term: AS2 + data-integrity only (DESIGN.md §4).
    for doc in (vote, undone):
        assert doc["@context"] == doc["proof"]["@context"] == plain_context()

    deleted = await post(net, "pau", {"type": "Delete", "object": comment["id"]})
    assert as2.types(deleted) == ["Delete"]
    status, _, _ = await call(net, "GET", comment["id"], None)
    assert status == 410
    withdrawn = await post(
        net,
        "ana",
        {
            "type": "Update",
            "object": {"type": "Proposal", "id": proposal_id, "proposalState": "withdrawn"},
        },
    )
    assert withdrawn["object"]["proposalState"] == "withdrawn"


async def test_the_residents_inbox_with_the_token(net: Net) -> None:
    c, a = net.city, net.gracia
    proposal_id = (await propose(net))["object"]["id"]
    await c.observer.wait(of_type("Create", actor=a.actor("ana")))
    # The city answers: its Group's Update reaches ana's instance, addressed to her.
    await c.deliberation.answer_proposal(
        net.admin, proposal_id, state=ProposalState.ACCEPTED, answer=LangText("Sí!")
    )
    await a.observer.wait(of_type("Update", actor=c.group))
    status, page, _ = await call(net, "GET", a.actor("ana") + "/inbox?page=true", net.pats["ana"])
    assert status == 200
    updates = [item for item in page["orderedItems"] if as2.types(item) == ["Update"]]
    assert updates and updates[0]["object"]["proposalState"] == "accepted"
    status, page, _ = await call(net, "GET", a.actor("pau") + "/inbox?page=true", net.pats["pau"])
    assert status == 200 and page["orderedItems"] == []  # not addressed to pau
    status, problem, _ = await call(net, "GET", a.actor("ana") + "/inbox", net.pats["pau"])
    assert (status, problem["reason"]) == (403, "not_your_inbox")
    status, problem, _ = await call(net, "GET", a.actor("ana") + "/inbox", None)
    assert (status, problem["reason"]) == (401, "token_missing")


async def test_every_refusal_names_its_rule_and_changes_nothing(net: Net) -> None:
    c, a = net.city, net.gracia
    proposal_id = (await propose(net))["object"]["id"]
    like = await post(net, "pau", {"type": "Like", "object": proposal_id})
    local_proposal = (await propose(net, "ana", net.local_process))["object"]["id"]
    await c.observer.wait(of_type("Like", object=proposal_id))
    ana, pau, joan = net.pats["ana"], net.pats["pau"], net.pats["joan"]
    outbox = net.outbox("ana")
    long_name = {"type": "Proposal", "process": net.process.id, "name": "x" * 500, "content": "y"}
    cases: list[tuple[str, str | None, Any, dict[str, Any], int, str]] = [
        (outbox, None, {"type": "Note"}, {}, 401, "token_missing"),
        (outbox, "barri_pat_" + "A" * 43, {"type": "Note"}, {}, 401, "token_invalid"),
        (outbox, net.pats["ana_read"], {"type": "Note"}, {}, 403, "insufficient_scope"),
        (outbox, pau, {"type": "Note"}, {}, 403, "not_your_outbox"),
        (a.actor("nobody") + "/outbox", ana, {"type": "Note"}, {}, 404, "not_found"),
        (
            outbox,
            ana,
            {"type": "Note"},
            {"content_type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        (outbox, ana, None, {"raw": b"{not json"}, 400, "invalid_json"),
        (outbox, ana, None, {"raw": b'{"type": "Like", "type": "Undo"}'}, 400, "invalid_json"),
        (outbox, ana, None, {"raw": b"x" * (300 * 1024)}, 413, "too_large"),
        (
            outbox,
            ana,
            {"@context": {"id": "https://evil.example/id"}, "type": "Like", "object": proposal_id},
            {},
            400,
            "term_redefined",
        ),
        (outbox, ana, {"type": "Follow", "object": c.group}, {}, 422, "unsupported_activity"),
        (
            outbox,
            ana,
            {"type": "Like", "actor": a.actor("pau"), "object": proposal_id},
            {},
            403,
            "actor_mismatch",
        ),
        (outbox, ana, {"type": "Create", "object": proposal_id}, {}, 422, "invalid_input"),
        (
            outbox,
            ana,
            {"type": "Create", "object": {"type": "Image"}},
            {},
            422,
            "unsupported_object",
        ),
        (
            outbox,
            ana,
            {"type": "Proposal", "process": net.process.id, "content": "x"},
            {},
            422,
            "invalid_input",
        ),
        (outbox, ana, long_name, {}, 400, "invalid_input"),
        (
            outbox,
            ana,
            {"type": "Like", "object": a.config.base_url + "/proposals/none"},
            {},
            404,
            "not_found",
        ),
        (outbox, ana, {"type": "Dislike", "object": proposal_id}, {}, 422, "unsupported_activity"),
        (outbox, ana, {"type": "Like", "object": local_proposal}, {}, 409, "supports_phase_closed"),
        (
            net.outbox("pau"),
            pau,
            {"type": "Like", "object": proposal_id},
            {},
            409,
            "already_supported",
        ),
        (
            net.outbox("joan"),
            joan,
            {"type": "Like", "object": proposal_id},
            {},
            403,
            "not_verified",
        ),
        (outbox, ana, {"type": "Undo", "object": like["id"]}, {}, 403, "not_author"),
        (net.outbox("pau"), pau, {"type": "Delete", "object": proposal_id}, {}, 403, "not_author"),
        (
            outbox,
            ana,
            {"type": "Update", "object": {"type": "Note", "id": proposal_id}},
            {},
            422,
            "update_not_supported",
        ),
        (
            outbox,
            ana,
            {"type": "Note", "inReplyTo": proposal_id, "content": "x", "alignment": "maybe"},
            {},
            422,
            "invalid_input",
        ),
    ]
    before = (await count_rows(a.app[DB]), await count_rows(c.app[DB]))
    for url, token, body, options, status, reason in cases:
        got, problem, headers = await call(net, "POST", url, token, body, **options)
        assert (got, problem.get("reason")) == (status, reason), (body, problem)
        assert headers["Content-Type"].startswith(PROBLEM), body
        assert problem["type"].endswith("#" + reason) and problem["status"] == status
        assert problem.get("detail"), problem
        if reason in RULES:  # a domain rule keeps the status the rules table gives it
            assert RULES[reason] == status
    assert (await count_rows(a.app[DB]), await count_rows(c.app[DB])) == before
