"""Residents edit their own comments and debates (issue 5: Update of one's own objects).

Real instances over loopback (the C2S ``net``: the city C owns a process, Gràcia A follows
it). The service edits and refuses (a refusal leaves every row of every table as it was);
C2S maps ``Update{Note}`` and ``Update{Debate}`` onto it; the city shows the edited text.
"""

from __future__ import annotations

from typing import Any

import aiosqlite
import pytest

from activitypub import as2
from activitypub.errors import Problem
from federation.instance.app import ACCOUNTS, DB
from federation.instance.ports import User
from federation.instance.rules import RULES, RuleViolation
from tests import test_c2s
from tests.test_c2s import PROBLEM, Net, call, post, propose
from tests.test_instance_federation import of_type

net = test_c2s.net  # the two instances and residents of the C2S tests (a fixture)


#: Bookkeeping that changes while we look: which deliveries exist is compared (a refused act
#: would queue one), not their status; a token's ``last_used_at`` moves with every request.
#: The inbound queue is left out: the city's relays keep arriving, no outgoing act writes there.
TRANSPORT = {
    "deliveries": "id, activity_id",
    "access_tokens": "token_hash, user_id, scope, created_at, revoked_at",
}


async def snapshot(db: aiosqlite.Connection) -> dict[str, list[Any]]:
    """Every row of every table, sorted (an edit keeps row counts, so counts are not enough)."""
    tables = await db.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    rows: dict[str, list[Any]] = {}
    for (table,) in tables:
        if table == "inbox_messages":
            continue
        columns = TRANSPORT.get(str(table), "*")
        found = await db.execute_fetchall(f"SELECT {columns} FROM {table}")
        rows[str(table)] = sorted(map(repr, found))
    return rows


async def user(net: Net, name: str) -> User:
    return await net.gracia.app[ACCOUNTS].get(name)


async def comment_and_debate(net: Net) -> tuple[str, str]:
    """pau's comment on ana's proposal in the city's process, and ana's debate there."""
    proposal_id = (await propose(net))["object"]["id"]
    note = {"type": "Note", "inReplyTo": proposal_id, "content": "Molt bé!"}
    comment_id = (await post(net, "pau", note))["object"]["id"]
    debate = {
        "type": "Debate",
        "name": "Places?",
        "content": "Parlem-ne.",
        "process": net.process.id,
    }
    debate_id = (await post(net, "ana", debate))["object"]["id"]
    return comment_id, debate_id


async def test_the_service_edits_and_refuses_without_writing(net: Net) -> None:
    a = net.gracia
    service = a.deliberation
    comment_id, debate_id = await comment_and_debate(net)
    ana, pau = await user(net, "ana"), await user(net, "pau")

    comment = await service.edit_comment(pau, comment_id, body_markdown="Molt **bé**!")
    assert comment.content_html == "<p>Molt <strong>bé</strong>!</p>"
    assert comment.updated is not None
    stored = await service.get_comment(comment_id)
    assert stored is not None and stored.source_markdown == "Molt **bé**!"
    debate = await service.edit_debate(
        ana, debate_id, name="Places o cotxes?", body_markdown="<script>x</script>Parlem."
    )
    assert debate.name.default == "Places o cotxes?" and "<script" not in debate.content_html
    got = await service.get_debate(debate_id)
    assert got is not None and got.name.default == "Places o cotxes?"
    kinds = [s.type for s in await service.outbox.activities_about(debate_id)]
    assert "Update" in kinds

    await service.close_debate(ana, debate_id, conclusions="Places.")
    other = (await propose(net))["object"]["id"]
    removed = await post(net, "pau", {"type": "Note", "inReplyTo": other, "content": "x"})
    deletion = await service.delete_comment(pau, removed["object"]["id"])
    await a.observer.wait(of_type("Announce", actor=net.city.group, object=deletion.id))
    before = await snapshot(a.app[DB])
    refusals: list[tuple[Any, str]] = [
        (service.edit_comment(ana, comment_id, body_markdown="meu"), "not_author"),
        (service.edit_debate(pau, debate_id, name="n", body_markdown="b"), "not_author"),
        (service.edit_debate(ana, debate_id, name="n", body_markdown="b"), "debate_closed"),
        (service.edit_comment(pau, comment_id, body_markdown="x" * 1001), "invalid_input"),
        (service.edit_comment(pau, comment_id, body_markdown="  "), "invalid_input"),
        (service.edit_comment(pau, removed["object"]["id"], body_markdown="y"), "not_found"),
        (service.edit_debate(ana, a.config.base_url + "/debates/x", name="n", body_markdown="b"),
         "not_found"),
    ]  # fmt: skip
    for attempt, reason in refusals:
        with pytest.raises((RuleViolation, Problem)) as caught:
            await attempt
        exc = caught.value
        if isinstance(exc, RuleViolation):
            assert (exc.rule, exc.status) == (reason, RULES[reason])
        else:
            assert isinstance(exc, Problem) and exc.extensions["reason"] == reason
    assert await snapshot(a.app[DB]) == before


async def test_c2s_updates_of_own_comment_and_debate_reach_the_city(net: Net) -> None:
    c, a = net.city, net.gracia
    comment_id, debate_id = await comment_and_debate(net)
    await c.observer.wait(of_type("Create", object=debate_id))
    await c.observer.wait(of_type("Create", object=comment_id))
    for object_id in (comment_id, debate_id):  # the city's Group relays both back: let it land
        await a.observer.wait(of_type("Announce", actor=c.group, inner=object_id))

    # Another resident's Update is refused, naming the rule, and changes nothing anywhere.
    before = (await snapshot(a.app[DB]), await snapshot(c.app[DB]))
    for name, body in (
        ("ana", {"type": "Update", "object": {"type": "Note", "id": comment_id, "content": "x"}}),
        ("pau", {"type": "Update", "object": {"type": "Debate", "id": debate_id, "name": "x"}}),
    ):
        status, problem, headers = await call(net, "POST", net.outbox(name), net.pats[name], body)
        assert (status, problem["reason"]) == (403, "not_author"), problem
        assert headers["Content-Type"].startswith(PROBLEM)
    assert (await snapshot(a.app[DB]), await snapshot(c.app[DB])) == before

    source = {"content": "Molt **bé**, de debò!", "mediaType": "text/markdown"}
    note = {"type": "Note", "id": comment_id, "source": source}
    updated = await post(net, "pau", {"type": "Update", "object": note})
    assert as2.types(updated) == ["Update"] and updated["actor"] == a.actor("pau")
    assert updated["object"]["content"] == "<p>Molt <strong>bé</strong>, de debò!</p>"
    assert updated["proof"]["verificationMethod"] == a.actor("pau") + "#ed25519-key"
    stored = await a.deliberation.outbox.get_activity(updated["id"])
    assert stored is not None and stored.document == updated

    debate = {"type": ["Page", "Debate"], "id": debate_id, "name": "Places o cotxes?"}
    edited = await post(net, "ana", {"type": "Update", "object": debate})
    assert edited["object"]["name"] == "Places o cotxes?"
    assert edited["object"]["source"]["content"] == "Parlem-ne."  # text kept when left out

    await c.observer.wait(of_type("Update", object=comment_id))
    await c.observer.wait(of_type("Update", object=debate_id))
    seen = await c.deliberation.get_comment(comment_id)
    assert seen is not None and seen.content_html == "<p>Molt <strong>bé</strong>, de debò!</p>"
    seen_debate = await c.deliberation.get_debate(debate_id)
    assert seen_debate is not None and seen_debate.name.default == "Places o cotxes?"
    status, page, _ = await call(net, "GET", comment_id, None)
    assert status == 200 and "de debò" in page["content"]
