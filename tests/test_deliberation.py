"""The Deliberation service on a real SQLite file: every act, every support rule, nothing written
when a rule refuses (every table counted before and after)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activitypub import as2
from activitypub.errors import Problem
from federation.instance.deliberation import Deliberation, problem_of
from federation.instance.outbox import Publisher
from federation.instance.ports import Role, User
from federation.instance.rules import Resident, RuleViolation
from federation.instance.wiring import Instance, open_instance
from federation.model import (
    Alignment,
    Comment,
    LangText,
    Process,
    Proposal,
    ProposalState,
    Support,
    UndoSupport,
)
from federation.store.outbox import OutboxStore
from federation.vocab.proposal import proposal_to_ap
from tests.instance_fixtures import (
    AFTER_ALL,
    IN_PROPOSALS,
    IN_SUPPORTS,
    Clock,
    count_rows,
    instance_config,
    process_draft,
)

PASSWORD = "correct horse battery"
AGGREGATOR = "https://city.barri.example/actor"


@dataclass
class Env:
    instance: Instance
    service: Deliberation
    clock: Clock
    users: dict[str, User]

    @property
    def outbox(self) -> OutboxStore:
        return OutboxStore(self.instance.db)

    def id_of(self, name: str) -> str:
        return self.instance.actors.person_id(name)


@pytest.fixture
async def env(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[Env]:
    config = instance_config(tmp_path, unused_tcp_port_factory(), report_to=(AGGREGATOR,))
    async with open_instance(config) as instance:
        clock = Clock()
        publisher = Publisher(
            instance.db, instance.actors, config, clock=lambda: clock().timestamp()
        )
        service = Deliberation(instance.db, instance.actors, config, publisher, clock=clock)
        accounts = instance.accounts
        users = {
            "admin": await accounts.create_user("admin", PASSWORD, Role.ADMIN),
            "newbie": await accounts.create_user("newbie", PASSWORD),
        }
        for name, territory in (("alice", "01"), ("bob", "01"), ("carol", "01"), ("dora", "02")):
            await accounts.create_user(name, PASSWORD)
            users[name] = await accounts.verify(name, territory, by="test")
        yield Env(instance, service, clock, users)


async def make_process(env: Env, **rules: Any) -> Process:
    return await env.service.create_process(process_draft(**rules), by=env.users["admin"])


async def make_proposal(env: Env, process: Process, author: str = "alice", n: int = 1) -> Proposal:
    env.clock.now = IN_PROPOSALS
    return await env.service.create_proposal(
        env.users[author], process.id, name=f"Proposal {n}", body_markdown=f"Do *thing* {n}"
    )


async def refused(env: Env, act: Awaitable[Any], rule: str) -> RuleViolation:
    """The act raises RuleViolation(rule) and no table changes."""
    before = await count_rows(env.instance.db)
    with pytest.raises(RuleViolation) as caught:
        await act
    assert caught.value.rule == rule, caught.value
    assert await count_rows(env.instance.db) == before
    return caught.value


# --- processes ---------------------------------------------------------------------------------


async def test_create_process_is_owned_by_the_group_and_published(env: Env) -> None:
    process = await make_process(env)
    group = env.instance.actors.group_id
    assert process.owner == group and process.id.startswith(
        env.instance.config.base_url + "/processes/"
    )
    assert await env.service.get_process(process.id) == process
    assert [p.id for p in await env.service.list_processes()] == [process.id]
    assert await env.service.count_local_processes() == 1
    activities = await env.outbox.activities_about(process.id)
    assert [(a.type, a.actor, a.public) for a in activities] == [("Create", group, True)]
    assert activities[0].document["proof"]["verificationMethod"] == group + "#ed25519-key"
    created = as2.embedded(activities[0].document, "object")
    assert created is not None and created["supportRules"]["supportsPerParticipant"] == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.pop("phases"), "phases"),
        (lambda d: d.update(id="https://x.example/p"), "id"),
        (lambda d: d["phases"][1].update(startTime="2026-02-02T00:00:00Z"), "phases[1].startTime"),
        (
            lambda d: d["supportRules"].update(minimumSupportsPerParticipant=9),
            "minimumSupportsPerParticipant",
        ),
        (lambda d: d.update(eligibleTerritories=[]), "eligibleTerritories"),
    ],
)
async def test_a_bad_draft_names_the_field_and_writes_nothing(
    env: Env, change: Callable[[dict[str, Any]], Any], field: str
) -> None:
    draft = process_draft()
    change(draft)
    before = await count_rows(env.instance.db)
    with pytest.raises(Problem) as caught:
        await env.service.create_process(draft, by=env.users["admin"])
    assert caught.value.extensions["reason"] == "invalid_input"
    assert field in caught.value.extensions["field"]
    assert await count_rows(env.instance.db) == before


async def test_only_admins_create_processes(env: Env) -> None:
    await refused(
        env, env.service.create_process(process_draft(), by=env.users["alice"]), "not_admin"
    )


async def test_rules_freeze_once_supports_open(env: Env) -> None:
    process = await make_process(env)
    admin = env.users["admin"]
    changed = process_draft(per_participant=5)
    updated = await env.service.update_process(process.id, changed, by=admin)
    assert updated.rules.supports_per_participant == 5 and updated.published == process.published
    env.clock.now = IN_SUPPORTS
    violation = await refused(
        env, env.service.update_process(process.id, process_draft(per_participant=7), by=admin),
        "rules_frozen",
    )  # fmt: skip
    assert violation.status == 409 and problem_of(violation).status == 409
    renamed = process_draft(per_participant=5) | {"name": "Nou nom"}
    assert (
        await env.service.update_process(process.id, renamed, by=admin)
    ).name.default == "Nou nom"


# --- proposals ---------------------------------------------------------------------------------


async def test_proposal_is_stored_published_and_announced(env: Env) -> None:
    process = await make_process(env)
    proposal = await make_proposal(env, process)
    assert proposal.content_html == "<p>Do <em>thing</em> 1</p>"
    assert proposal.audience == env.instance.actors.group_id and proposal.support_count == 0
    assert await env.service.get_proposal(proposal.id) == proposal
    page = await env.service.list_proposals(process.id)
    assert page.items == [proposal]
    create = (await env.outbox.activities_about(proposal.id))[0]
    assert create.type == "Create" and create.actor == env.id_of("alice")
    assert create.document["to"] == [as2.PUBLIC]
    assert create.document["cc"] == [
        env.id_of("alice") + "/followers",
        env.instance.actors.group_id,
    ]
    announces = await env.outbox.activities_about(create.activity_id)
    assert [(a.type, a.actor) for a in announces] == [("Announce", env.instance.actors.group_id)]
    assert announces[0].document["object"] == create.document  # embedded unchanged, with proof


async def test_proposal_rules(env: Env) -> None:
    process = await make_process(env)
    env.clock.now = IN_PROPOSALS
    service = env.service
    await refused(
        env,
        service.create_proposal(env.users["newbie"], process.id, name="x", body_markdown="y"),
        "not_verified",
    )
    await refused(
        env,
        service.create_proposal(env.users["dora"], process.id, name="x", body_markdown="y"),
        "territory_not_eligible",
    )
    env.clock.now = IN_SUPPORTS
    await refused(
        env,
        service.create_proposal(env.users["alice"], process.id, name="x", body_markdown="y"),
        "proposals_phase_closed",
    )
    env.clock.now = IN_PROPOSALS
    with pytest.raises(Problem) as caught:
        await service.create_proposal(env.users["alice"], process.id, name="  ", body_markdown="y")
    assert caught.value.extensions == {"reason": "invalid_input", "field": "name"}


async def test_edit_within_the_window_only_by_the_author(env: Env) -> None:
    process = await make_process(env)
    proposal = await make_proposal(env, process)
    env.clock.now = IN_PROPOSALS + timedelta(minutes=2)
    edited = await env.service.edit_proposal(
        env.users["alice"], proposal.id, name="Better", body_markdown="**b**"
    )
    assert (edited.name.default, edited.content_html, edited.updated) == (
        "Better",
        "<p><strong>b</strong></p>",
        env.clock.now,
    )
    assert (await env.service.get_proposal(proposal.id)) == edited
    await refused(
        env,
        env.service.edit_proposal(env.users["bob"], proposal.id, name="x", body_markdown="y"),
        "not_author",
    )
    env.clock.now = IN_PROPOSALS + timedelta(minutes=6)
    await refused(
        env,
        env.service.edit_proposal(env.users["alice"], proposal.id, name="x", body_markdown="y"),
        "edit_window_closed",
    )


async def test_withdraw_and_answer(env: Env) -> None:
    process = await make_process(env)
    first = await make_proposal(env, process, n=1)
    second = await make_proposal(env, process, n=2)
    env.clock.now = IN_SUPPORTS
    await env.service.support(env.users["bob"], second.id)
    await refused(
        env, env.service.withdraw_proposal(env.users["alice"], second.id), "proposal_has_supports"
    )
    withdrawn = await env.service.withdraw_proposal(env.users["alice"], first.id)
    assert withdrawn.state is ProposalState.WITHDRAWN
    await refused(
        env, env.service.withdraw_proposal(env.users["alice"], first.id), "already_withdrawn"
    )
    await refused(
        env,
        env.service.answer_proposal(
            env.users["bob"], second.id, state=ProposalState.ACCEPTED, answer=LangText("Sí")
        ),
        "not_admin",
    )
    await refused(
        env,
        env.service.answer_proposal(
            env.users["admin"], second.id, state=ProposalState.REJECTED, answer=LangText(" ")
        ),
        "answer_required",
    )
    answered = await env.service.answer_proposal(
        env.users["admin"],
        second.id,
        state=ProposalState.ACCEPTED,
        answer=LangText.of("D'acord", {"en": "Agreed"}),
    )
    assert answered.state is ProposalState.ACCEPTED and answered.answer == LangText.of(
        "<p>D'acord</p>", {"en": "<p>Agreed</p>"}
    )
    assert answered.answered_at == env.clock.now and answered.support_count == 1
    update = (await env.outbox.activities_about(second.id))[-1]
    assert (update.type, update.actor) == ("Update", env.instance.actors.group_id)
    assert update.document["object"]["proposalState"] == "accepted"
    assert update.document["object"]["supportCount"] == 1
    # the Group's own act is not announced again
    assert await env.outbox.activities_about(update.activity_id) == []


# --- supports ---------------------------------------------------------------------------------


async def test_support_is_private_counted_and_never_announced(env: Env) -> None:
    process = await make_process(env)
    proposal = await make_proposal(env, process)
    env.clock.now = IN_SUPPORTS
    support = await env.service.support(env.users["bob"], proposal.id)
    assert support.to == (env.instance.actors.group_id, AGGREGATOR)
    assert await env.service.support_count(proposal.id) == 1
    assert await env.service.has_supported(env.users["bob"], proposal.id)
    assert await env.service.remaining_supports(env.users["bob"], process.id) == 2
    stored = await env.outbox.get_activity(support.id)
    assert stored is not None and not stored.public and stored.type == "Like"
    assert not as2.is_addressed_publicly(stored.document)
    assert await env.outbox.activities_about(support.id) == []  # no Announce
    fetched = await env.service.get_proposal(proposal.id)
    assert fetched is not None and proposal_to_ap(fetched)["supportCount"] == 1


async def test_every_support_rule_refuses_with_its_name(env: Env) -> None:
    process = await make_process(env, per_participant=2, threshold=2)
    p1, p2, p3 = [await make_proposal(env, process, n=n) for n in (1, 2, 3)]
    service, users = env.service, env.users
    await refused(env, service.support(users["alice"], p1.id), "supports_phase_closed")
    env.clock.now = IN_SUPPORTS
    await refused(env, service.support(users["newbie"], p1.id), "not_verified")
    await refused(env, service.support(users["dora"], p1.id), "territory_not_eligible")
    await service.support(users["alice"], p1.id)
    await refused(env, service.support(users["alice"], p1.id), "already_supported")
    await service.support(users["alice"], p2.id)
    await refused(env, service.support(users["alice"], p3.id), "support_limit_reached")
    assert await service.remaining_supports(users["alice"], process.id) == 0
    await service.support(users["bob"], p1.id)
    await refused(env, service.support(users["carol"], p1.id), "threshold_reached")
    await service.answer_proposal(
        users["admin"], p3.id, state=ProposalState.REJECTED, answer=LangText("No")
    )
    await refused(env, service.support(users["carol"], p3.id), "proposal_rejected")
    env.clock.now = IN_PROPOSALS
    fresh = await make_proposal(env, process, n=4)
    await service.withdraw_proposal(users["alice"], fresh.id)
    env.clock.now = IN_SUPPORTS
    await refused(env, service.support(users["carol"], fresh.id), "proposal_withdrawn")
    await refused(env, service.withdraw_support(users["carol"], p1.id), "no_support_to_withdraw")
    env.clock.now = AFTER_ALL
    await refused(env, service.withdraw_support(users["alice"], p1.id), "supports_phase_closed")
    assert await service.support_count(p1.id) == 2


async def test_threshold_with_accumulation_allows_more(env: Env) -> None:
    process = await make_process(env, threshold=1, accumulate=True)
    proposal = await make_proposal(env, process)
    env.clock.now = IN_SUPPORTS
    for name in ("alice", "bob", "carol"):
        await env.service.support(env.users[name], proposal.id)
    assert await env.service.support_count(proposal.id) == 3


async def test_minimum_supports_temporary_then_final_then_temporary(env: Env) -> None:
    process = await make_process(env, per_participant=3, minimum=2)
    p1, p2 = [await make_proposal(env, process, n=n) for n in (1, 2)]
    env.clock.now = IN_SUPPORTS
    bob = env.users["bob"]
    await env.service.support(bob, p1.id)
    assert (
        await env.service.support_count(p1.id),
        await env.service.has_supported(bob, p1.id),
    ) == (0, True)
    await env.service.support(bob, p2.id)
    assert [await env.service.support_count(p.id) for p in (p1, p2)] == [1, 1]
    stored = await env.service.get_proposal(p1.id)
    assert stored is not None and stored.support_count == 1
    undo = await env.service.withdraw_support(bob, p2.id)
    assert isinstance(undo.support, Support) and undo.support.proposal == p2.id
    assert [await env.service.support_count(p.id) for p in (p1, p2)] == [0, 0]
    assert await env.service.remaining_supports(bob, process.id) == 2
    # and supporting again reaches the minimum again
    await env.service.support(bob, p2.id)
    assert [await env.service.support_count(p.id) for p in (p1, p2)] == [1, 1]
    undo_doc = await env.outbox.get_activity(undo.id)
    assert undo_doc is not None and undo_doc.type == "Undo" and not undo_doc.public


# --- debates and comments ---------------------------------------------------------------------


async def test_debate_open_and_close(env: Env) -> None:
    process = await make_process(env)
    env.clock.now = IN_PROPOSALS
    debate = await env.service.create_debate(
        env.users["alice"], process.id, name="Parlem", body_markdown="De què?"
    )
    assert debate.audience == env.instance.actors.group_id and debate.closed_at is None
    await refused(
        env, env.service.close_debate(env.users["bob"], debate.id, conclusions="x"), "not_author"
    )
    await refused(
        env,
        env.service.close_debate(env.users["alice"], debate.id, conclusions=" "),
        "conclusions_required",
    )
    closed = await env.service.close_debate(env.users["alice"], debate.id, conclusions="Fet")
    assert closed.closed_at == env.clock.now and closed.conclusions == LangText("<p>Fet</p>")
    assert await env.service.get_debate(debate.id) == closed
    free = await env.service.create_debate(
        env.users["bob"], None, name="Sense procés", body_markdown="hola"
    )
    assert free.process is None
    env.clock.now = IN_SUPPORTS  # the supports phase does not allow debates
    await refused(
        env,
        env.service.create_debate(env.users["alice"], process.id, name="x", body_markdown="y"),
        "debates_phase_closed",
    )


async def test_comment_threads_votes_and_depth(env: Env) -> None:
    process = await make_process(env)
    proposal = await make_proposal(env, process)
    service, users = env.service, env.users
    env.clock.now = IN_PROPOSALS + timedelta(minutes=1)
    c1 = await service.comment(
        users["bob"], proposal.id, body_markdown="A favor", alignment=Alignment.IN_FAVOR
    )
    env.clock.now += timedelta(minutes=1)
    c2 = await service.comment(
        users["carol"], proposal.id, body_markdown="En contra", alignment=Alignment.AGAINST
    )
    env.clock.now += timedelta(minutes=1)
    r1 = await service.comment(users["alice"], c1.id, body_markdown="Gràcies")
    env.clock.now += timedelta(minutes=1)
    r2 = await service.comment(users["bob"], r1.id, body_markdown="De res")
    assert (c1.depth, r1.depth, r2.depth) == (1, 2, 3)
    assert r2.context == proposal.context and r2.in_reply_to == r1.id
    await refused(
        env, service.comment(users["carol"], r2.id, body_markdown="massa"), "max_depth_reached"
    )
    await service.vote_comment(users["alice"], c1.id, up=True)
    await service.vote_comment(users["carol"], c1.id, up=False)
    await refused(env, service.vote_comment(users["alice"], c1.id, up=False), "already_voted")
    thread = await service.thread(proposal.id)
    assert [e.comment.id for e in thread] == [c1.id, r1.id, r2.id, c2.id]
    assert (thread[0].up, thread[0].down, thread[0].external) == (1, 1, False)
    await service.unvote_comment(users["carol"], c1.id)
    await refused(env, service.unvote_comment(users["carol"], c1.id), "no_vote_to_withdraw")
    assert ((await service.thread(proposal.id))[0].down) == 0
    env.clock.now = AFTER_ALL
    await refused(
        env,
        service.comment(users["bob"], proposal.id, body_markdown="tard"),
        "comments_phase_closed",
    )


# --- inbound (remote residents; the rules are the same) ---------------------------------------


async def test_remote_supports_follow_the_same_rules_and_undo_first_wins(env: Env) -> None:
    process = await make_process(env, per_participant=1)
    proposal = await make_proposal(env, process)
    env.clock.now = IN_SUPPORTS
    remote = "https://gracia.example/users/rosa"
    territory = env.service.resident(env.users["alice"]).verified_territory
    resident = Resident(remote, territory)

    def like(n: int, target: str = proposal.id) -> Support:
        return Support(id=f"https://gracia.example/supports/{n}", actor=remote, proposal=target,
                       published=env.clock.now, to=(env.instance.actors.group_id,))  # fmt: skip

    await env.service.receive_support(like(1), {}, resident=resident)
    assert await env.service.support_count(proposal.id) == 1
    await env.service.receive_support(like(1), {}, resident=resident)  # the same Like again
    assert await env.service.support_count(proposal.id) == 1
    await refused(
        env, env.service.receive_support(like(2), {}, resident=resident), "already_supported"
    )
    await refused(
        env, env.service.receive_support(like(3), {}, resident=Resident(remote)), "not_verified"
    )
    undo_first = UndoSupport(
        id="https://gracia.example/undo/9",
        actor=remote,
        support="https://gracia.example/supports/9",
        published=env.clock.now,
        to=(),
    )
    await env.service.receive_undo_support(undo_first, {})
    await env.service.receive_undo_support(
        UndoSupport(id="https://gracia.example/undo/1", actor=remote, support=like(1),
                    published=env.clock.now, to=()), {},
    )  # fmt: skip
    assert await env.service.support_count(proposal.id) == 0
    await env.service.receive_support(like(9), {}, resident=resident)  # its Undo came first
    assert await env.service.support_count(proposal.id) == 0
    assert not await env.service.proposals.active_support_ids(remote, process.id)


# --- property: the real service (SQLite, publisher) against a tiny model -----------------------

RESIDENTS = ("alice", "bob", "carol")
LIMIT, MINIMUM, THRESHOLD = 2, 2, 2

steps = st.lists(
    st.one_of(
        st.tuples(st.just("support"), st.sampled_from(RESIDENTS), st.integers(0, 2)),
        st.tuples(st.just("withdraw"), st.sampled_from(RESIDENTS), st.integers(0, 2)),
        st.tuples(st.just("reject"), st.just(""), st.integers(0, 2)),
        st.tuples(st.sampled_from(["open", "close"]), st.just(""), st.just(0)),
    ),
    max_size=18,
)


@dataclass
class Model:
    """The issue's support rules in a few plain lines, sharing no code with the service."""

    supported: dict[str, set[int]]
    rejected: set[int]
    open: bool = True

    def count(self, p: int) -> int:
        return sum(1 for s in self.supported.values() if p in s and len(s) >= MINIMUM)

    def support(self, user: str, p: int) -> str | None:
        mine = self.supported[user]
        refusal = (
            "supports_phase_closed" if not self.open else
            "proposal_rejected" if p in self.rejected else
            "already_supported" if p in mine else
            "support_limit_reached" if len(mine) >= LIMIT else
            "threshold_reached" if self.count(p) >= THRESHOLD else None
        )  # fmt: skip
        if refusal is None:
            mine.add(p)
        return refusal

    def withdraw(self, user: str, p: int) -> str | None:
        if not self.open:
            return "supports_phase_closed"
        if p not in self.supported[user]:
            return "no_support_to_withdraw"
        self.supported[user].discard(p)
        return None


async def outcome(act: Awaitable[Any]) -> str | None:
    try:
        await act
    except RuleViolation as violation:
        return violation.rule
    return None


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=steps)
async def test_counts_match_a_model_under_random_sequences(
    env: Env, script: list[tuple[str, str, int]]
) -> None:
    process = await make_process(env, per_participant=LIMIT, minimum=MINIMUM, threshold=THRESHOLD)
    proposals = [await make_proposal(env, process, n=n) for n in range(3)]
    env.clock.now = IN_SUPPORTS
    model = Model({name: set() for name in RESIDENTS}, set())
    service, users = env.service, env.users
    for op, user, p in script:
        target = proposals[p].id
        if op == "support":
            got, expected = (
                await outcome(service.support(users[user], target)),
                model.support(user, p),
            )
        elif op == "withdraw":
            got = await outcome(service.withdraw_support(users[user], target))
            expected = model.withdraw(user, p)
        elif op == "reject":
            got = await outcome(
                service.answer_proposal(
                    users["admin"], target, state=ProposalState.REJECTED, answer=LangText("No")
                )
            )
            expected = None
            model.rejected.add(p)
        else:
            model.open = op == "open"
            env.clock.now = IN_SUPPORTS if model.open else AFTER_ALL
            got = expected = None
        assert got == expected, (op, user, p)
        assert [await service.support_count(x.id) for x in proposals] == [
            model.count(i) for i in range(3)
        ]
        remaining = await service.remaining_supports(users["alice"], process.id)
        assert remaining == LIMIT - len(model.supported["alice"])


async def test_an_external_reply_is_sanitised_marked_announced_and_deletable(env: Env) -> None:
    process = await make_process(env)
    proposal = await make_proposal(env, process)
    masto = "https://masto.example/users/ana"
    reply = Comment(
        id="https://masto.example/users/ana/statuses/1", author=masto,
        in_reply_to=proposal.id, context=None,
        content_html='<p>Hola <script>alert(1)</script><a href="javascript:x">x</a></p>',
        source_markdown=None, published=env.clock.now,
    )  # fmt: skip
    activity: dict[str, Any] = {
        "id": reply.id + "/activity", "type": "Create", "actor": masto,
        "to": [as2.PUBLIC], "object": reply.id,
    }  # fmt: skip
    await env.service.receive_comment(reply, activity, external=True)
    await env.service.receive_comment(reply, activity, external=True)  # twice: stored once
    (entry,) = await env.service.thread(proposal.id)
    assert entry.external and entry.comment.depth == 1
    assert entry.comment.context == proposal.context
    assert (
        "script" not in entry.comment.content_html
        and "javascript" not in entry.comment.content_html
    )
    (announce,) = await env.outbox.activities_about(activity["id"])
    assert announce.type == "Announce" and announce.document["object"] == activity
    await refused(
        env, env.service.receive_delete(reply.id, "https://masto.example/users/eve"), "not_author"
    )
    await refused(env, env.service.receive_delete(proposal.id, masto), "not_author")
    await env.service.receive_delete(reply.id, masto)
    assert await env.service.thread(proposal.id) == []
    tombstone = await env.service.domain.get_tombstone(reply.id)
    assert tombstone is not None and tombstone.former_type == "Note"
