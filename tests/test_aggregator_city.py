"""Issue 6 "What must show", with real instances (tests/aggregator_city.py): exact totals.

Residents of three rostered instances and one outsider support and withdraw through their
instances' Deliberation service; the aggregator's totals equal the ground truth the test
computes from what it made them do. The same truth comes out of a second aggregator fed every
captured signed activity twice, in reverse order (each Undo before its Like), once through a
Group's Announce and once directly, with fresh HTTP signatures; and out of the first one after
it was stopped mid-stream and caught up by backfill (supports) and the instances' own
delivery retries (withdrawals made while it was down, which no collection it may read lists).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from activitypub import as2
from activitypub.integrity import verify_proof_with_key
from activitypub.runtime import FEDERATION
from federation.aggregator.app import BACKFILL_TASK
from federation.aggregator.backfill import own_log_url, rest_of_log_url
from federation.aggregator.recompute import recompute
from federation.instance.app import ACCOUNTS, DB
from federation.instance.ports import TokenScope
from federation.model import LangText, ProposalState
from federation.store.aggregator import RosterRow
from federation.vocab.context import document_context, format_datetime, plain_context
from tests.aggregator_city import Hood, Town, deliver, town
from tests.aggregator_env import City, inbox_quiet, make_config

NAMES = {"a": ("a1", "a2", "a3", "a4"), "b": ("b1", "b2", "b3"), "d": ("d1", "d2", "d3"),
         "e": ("e1", "e2")}  # fmt: skip


async def proposals(t: Town) -> list[str]:
    """Four proposals in A's process: two by a resident of A, one each by B and D."""
    ana, rita, pol = (
        await t.a.resident("ana"),
        await t.b.resident("rita"),
        await t.d.resident("pol"),
    )
    made = [
        await t.a.deliberation.create_proposal(ana, t.process.id, name=n, body_markdown=n)
        for n in ("Més arbres", "Un carril bici")
    ]
    made.append(
        await t.b.deliberation.create_proposal(rita, t.process.id, name="Bancs", body_markdown="·")
    )
    made.append(
        await t.d.deliberation.create_proposal(pol, t.process.id, name="Fonts", body_markdown="·")
    )
    await t.settle()  # every instance has every proposal (A's Group announced them)
    return [p.id for p in made]


async def stream(t: Town, ideas: list[str], rng: random.Random, names: dict[str, Any]) -> None:
    """Each resident supports one to three proposals; some withdraw one, some support again."""
    for hood_name, people in names.items():
        hood = t.hoods[hood_name]
        for name in people:
            if name not in hood.users:
                await hood.resident(name)
            chosen = rng.sample(ideas, rng.randint(1, 3))
            for idea in chosen:
                await t.support(hood, name, idea)
            if rng.random() < 0.4:
                await t.withdraw(hood, name, chosen[0])
                if rng.random() < 0.5:
                    await t.support(hood, name, chosen[0])  # a new Like: it counts


def liked(t: Town) -> int:
    """How many Likes the outsider instance E published."""
    return sum(1 for hood, _, _, sign in t.acts if hood == "e" and sign > 0)


async def captured(t: Town) -> list[tuple[Hood, dict[str, Any]]]:
    """Every support and withdrawal the residents published, each actor's newest first."""
    found = []
    for hood in t.hoods.values():
        for name in hood.users:
            activities = await hood.published(hood.actor(name))
            votes = [a for a in activities if as2.has_type(a, "Like", "Undo")]
            found += [(hood, a) for a in reversed(votes)]
    return found


async def replay_city(t: Town, stack: AsyncExitStack) -> City:
    """A second aggregator with the same roster, which has received nothing."""
    first = t.city
    port = first.ports()
    second = City(make_config(first.tmp_path / "replay", port), first.tmp_path, first.ports, stack)
    await second.start()
    stack.push_async_callback(second.stop)
    for hood in t.hoods.values():
        if hood.rostered:
            row = RosterRow(
                hood.origin, hood.origin, hood.code, hood.district, hood.origin + "/actor",
                hood.group, True, 0.0, None, None,
            )  # fmt: skip
            await second.aggregator.store.put_roster(row)
    second.others = first.others
    return second


async def announced(hood: Hood, activity: dict[str, Any], to: str) -> dict[str, Any]:
    """The instance's Group relaying ``activity`` unchanged in a proved Announce (FEP-1b12)."""
    announce = {
        "@context": document_context(),
        "id": f"{hood.group}/announces/{uuid.uuid4()}",
        "type": "Announce",
        "actor": hood.group,
        "object": activity,
        "to": [to],
    }
    return (await hood.keys(hood.group)).prove(announce)


async def test_live_totals_equal_the_truth_and_so_does_a_reversed_doubled_replay(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    rng = random.Random(6)
    async with town(tmp_path, unused_tcp_port_factory) as t, AsyncExitStack() as stack:
        ideas = await proposals(t)
        await stream(t, ideas, rng, NAMES)
        await t.settle()
        truth = t.truth()
        assert truth and sum(sum(v.values()) for v in truth.values()) >= 10
        assert await t.counted() == truth
        body = await t.city.get("/api/v1/instances")
        assert {i["origin"]: i["anomalies"] for i in body["instances"]} == {
            h.origin: {} for h in t.hoods.values() if h.rostered
        }
        assert body["unlisted"] == [
            {"origin": t.e.origin, "anomalies": {"not_on_roster": liked(t)}, "refused": {}}
        ]
        assert (await recompute(t.city.aggregator)).agree

        # Replay: every captured activity twice, newest first, through an Announce and direct.
        second = await replay_city(t, stack)
        votes = await captured(t)
        assert sum(1 for _, a in votes if as2.has_type(a, "Undo")) >= 2
        for hood, activity in votes:
            relay = await announced(hood, activity, second.actor)
            assert await deliver(await hood.keys(hood.group), relay, second.actor + "/inbox") == 202
            keys = await hood.keys(activity["actor"])
            assert await deliver(keys, activity, second.inbox) == 202
        await second.settle()
        assert await t.counted(second) == truth
        assert (await recompute(second.aggregator)).agree
        rows = list(await second.aggregator.db.execute_fetchall(
            "SELECT COUNT(*), COUNT(DISTINCT id) FROM activities"
        ))  # fmt: skip
        assert rows[0][0] == rows[0][1] == len(votes)  # each activity stored once
        replayed = await second.get("/api/v1/instances")
        assert replayed["unlisted"] == body["unlisted"]


async def test_stopped_mid_stream_it_catches_up_by_backfill_and_the_instances_retries(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    rng = random.Random(2016)
    async with town(tmp_path, unused_tcp_port_factory) as t:
        ideas = await proposals(t)  # two hosted on A (the process owner), one on B, one on D
        await stream(t, ideas, rng, {"a": ("a1", "a2"), "b": ("b1",), "d": ("d1",)})
        await t.settle()
        assert await t.counted() == t.truth()
        await t.city.stop()

        # While it is down: a new proposal, new supports, and withdrawals of counted supports.
        abel = await t.a.resident("abel")
        late = await t.a.deliberation.create_proposal(
            abel, t.process.id, name="Un pipi-can", body_markdown="·"
        )
        await t.settle()
        before = len(t.acts)
        stale = list(_active(t))[:2]
        for hood_name, actor, proposal in stale:
            await t.withdraw(t.hoods[hood_name], actor.rsplit("/", 1)[1], proposal)
        newcomers: list[tuple[Hood, str]] = []
        for hood, name, proposal in (
            (t.d, "pep", late.id), (t.b, "b5", late.id), (t.b, "b5", ideas[0]),
            (t.a, "a5", ideas[1]), (t.d, "pep", ideas[2]),
        ):  # fmt: skip
            if name not in hood.users:
                await hood.resident(name)
                newcomers.append((hood, name))
            await t.support(hood, name, proposal)
        await t.settle()
        await t.retries(due=_far())  # the instances' retries are not due yet

        hits_before = {hood.name: Counter(hood.hits) for hood in t.hoods.values()}
        await t.city.start(backfill_on_start=True)
        assert t.city.server is not None
        await t.city.server.app[BACKFILL_TASK]
        # Each instance's /residents gave the voters' actor documents: the residents who
        # arrived while the aggregator was down were not fetched one by one.
        for hood in t.hoods.values():
            fetched = hood.hits - hits_before[hood.name]
            assert fetched["/residents"] >= (1 if hood.rostered else 0), hood.name
            assert not [n for h, n in newcomers if h is hood and fetched[f"/users/{n}"]], fetched
        await inbox_quiet(t.city.runtime.federation)  # (the instances' queues wait: not due)
        # Backfill brought the new proposal, every support and every withdrawal: each
        # instance's ``/support-log?authors=local`` lists each signed Like and Undo its residents
        # gave (pep's support of B's proposal is in D's, its author's), each verified from the
        # page by its proof; the rest of each log leaves out every instance so read (pep's
        # support is in A's, the owner's, too: not read again).
        assert any(t.acts[i][3] < 0 for i in range(before, len(t.acts)))
        assert await t.counted() == t.truth()
        pep = await t.city.aggregator.db.execute_fetchall(
            "SELECT route FROM activities WHERE actor = ?", (t.d.actor("pep"),)
        )
        assert [row[0] for row in pep] == ["backfill", "backfill"]  # from the logs
        # The instance logs list every Like the per-process and per-proposal support
        # collections would: those are not walked too.
        walked = await t.city.aggregator.db.execute_fetchall("SELECT collection FROM cursors")
        walked_urls = {row[0] for row in walked}
        rostered = [h.origin for h in t.hoods.values() if h.rostered]
        assert {own_log_url(origin) for origin in rostered} <= walked_urls
        assert {rest_of_log_url(origin, rostered) for origin in rostered} <= walked_urls
        assert not [url for url in walked_urls if url.endswith("/supports")]
        assert t.process.id + "/support-log" not in walked_urls
        # Their outboxes were read without the comments' creations (the threads list them).
        outboxes = [url for url in walked_urls if "/outbox" in url]
        assert outboxes and all(url.endswith("/outbox?exclude=comments") for url in outboxes)
        results = await t.city.results(t.process.id)
        assert any(p["id"] == late.id and p["name"] == "Un pipi-can" for p in results["proposals"])

        await t.retries(due=0.0)
        await t.settle()
        assert await t.counted() == t.truth()
        assert (await recompute(t.city.aggregator)).agree
        # A second pass finds nothing new.
        report = await t.city.runtime.backfill.run()
        assert all(isinstance(n, int) for n in report.values()), report
        assert {h.origin for h in t.hoods.values() if h.rostered} == set(report)
        assert await t.counted() == t.truth()


def _active(t: Town) -> dict[tuple[str, str, str], None]:
    """The supports currently active, oldest first, as (instance, actor, proposal)."""
    active: dict[tuple[str, str, str], None] = {}
    for hood, actor, proposal, sign in t.acts:
        if sign > 0:
            active[(hood, actor, proposal)] = None
        else:
            active.pop((hood, actor, proposal), None)
    return active


def _far() -> float:
    return time.time() + 3600.0


async def c2s_like(hood: Hood, name: str, proposal: str) -> dict[str, Any]:
    """The resident's client POSTs a bare ``Like`` to its outbox; the stored Like (C2S §6)."""
    token = await hood.app[ACCOUNTS].create_token(name, TokenScope.WRITE)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/activity+json"}
    body = json.dumps({"type": "Like", "object": proposal})
    async with aiohttp.ClientSession() as http:
        async with http.post(hood.actor(name) + "/outbox", data=body, headers=headers) as response:
            assert response.status == 201, await response.text()
            like: dict[str, Any] = await response.json(content_type=None)
    return like


async def old_like(t: Town, hood: Hood, name: str, proposal: str) -> dict[str, Any]:
    """A support as an older version stored it: the whole inline Barri object in its @context
    (and so in its proof's), stored and delivered by the instance exactly as signed."""
    user = await hood.resident(name)
    keys = await hood.keys(hood.actor(name))
    like = keys.prove({
        "@context": document_context(), "id": f"{hood.origin}/supports/{uuid.uuid4().hex}",
        "type": "Like", "actor": hood.actor(name), "object": proposal,
        "published": format_datetime(datetime.now(UTC)), "to": [t.process.owner, t.city.actor],
    })  # fmt: skip
    await hood.deliberation.support_signed(user, like)
    t.acts.append((hood.name, hood.actor(name), proposal, 1))
    return like


async def test_a_c2s_support_carries_no_barri_context_and_old_full_context_likes_still_count(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """DESIGN.md §4: a support uses no Barri term, so it carries AS2 + data-integrity only; a
    Like stored with the whole Barri context by an older version counts live and by backfill."""
    async with town(tmp_path, unused_tcp_port_factory) as t:
        ideas = await proposals(t)
        a = t.a
        await a.resident("a1")
        like = await c2s_like(a, "a1", ideas[0])
        t.acts.append(("a", a.actor("a1"), ideas[0], 1))
        assert like["@context"] == like["proof"]["@context"] == plain_context()
        assert len(json.dumps(like, separators=(",", ":"))) < 1_000
        verify_proof_with_key(like, (await a.keys(a.actor("a1"))).ed25519.public_key())
        live_old = await old_like(t, a, "a2", ideas[1])
        await t.settle()
        assert await t.counted() == t.truth() == {ideas[0]: {"31": 1}, ideas[1]: {"31": 1}}
        rows = await t.city.aggregator.db.execute_fetchall(
            "SELECT id, route, document FROM activities WHERE proof_ok = 1 ORDER BY seq"
        )
        stored = {row[0]: (row[1], json.loads(row[2])) for row in rows}
        assert stored[like["id"]] == ("inbox", like)  # as the instance published it
        assert stored[live_old["id"]][1]["@context"] == document_context()

        # Down while an older version stores one more: it comes back by backfill alone.
        await t.city.stop()
        late_old = await old_like(t, a, "a3", ideas[2])
        await t.settle()
        await t.retries(due=_far())
        await t.city.start(backfill_on_start=True)
        assert t.city.server is not None
        await t.city.server.app[BACKFILL_TASK]
        await inbox_quiet(t.city.runtime.federation)
        assert await t.counted() == t.truth()
        route = await t.city.aggregator.db.execute_fetchall(
            "SELECT route, document FROM activities WHERE id = ?", (late_old["id"],)
        )
        assert [(r[0], json.loads(r[1])) for r in route] == [("backfill", late_old)]

        # This version withdraws an old Like with an Undo that carries no Barri context.
        await t.retries(due=0.0)
        await t.withdraw(a, "a2", ideas[1])
        await t.settle()
        undo = (await a.published(a.actor("a2")))[-1]
        assert as2.has_type(undo, "Undo") and undo["@context"] == plain_context()
        assert await t.counted() == t.truth() == {ideas[0]: {"31": 1}, ideas[2]: {"31": 1}}
        assert (await recompute(t.city.aggregator)).agree


async def test_a_support_its_owner_refused_is_backfilled_from_its_authors_instance(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """The owner judges a remote support at its ``published`` time: a client clock two
    minutes ahead (within the skew both tolerate) puts it after an answer that in fact came
    later, and the owner refuses it. The aggregator's rules still count it; with its direct
    delivery lost (the aggregator was down) only the author's instance lists it, in its
    ``/support-log``, which backfill reads."""
    async with town(tmp_path, unused_tcp_port_factory) as t:
        ideas = await proposals(t)
        await t.city.stop()
        b, worker = t.b, t.b.app[FEDERATION].worker
        assert worker is not None
        rosa = await b.resident("rosa")
        await worker.stop()  # B's deliveries wait while the answer is given
        ahead = format_datetime(datetime.now(UTC) + timedelta(minutes=2))
        like = {
            "@context": plain_context(), "id": f"{b.origin}/supports/{uuid.uuid4().hex}",
            "type": "Like", "actor": b.actor("rosa"), "object": ideas[0], "published": ahead,
            "to": [t.process.owner, t.city.actor],
        }  # fmt: skip
        await b.deliberation.support_signed(rosa, (await b.keys(b.actor("rosa"))).prove(like))
        t.acts.append(("b", b.actor("rosa"), ideas[0], 1))
        admin = await t.a.app[ACCOUNTS].get("admin")
        await t.a.deliberation.answer_proposal(
            admin, ideas[0], state=ProposalState.REJECTED, answer=LangText("=No és viable.")
        )
        await worker.start()
        await t.settle()
        await t.retries(due=_far())  # B's delivery to the aggregator waits for its retry
        owned = await t.a.app[DB].execute_fetchall(
            "SELECT COUNT(*) FROM supports WHERE id = ?", (like["id"],)
        )
        assert next(iter(owned))[0] == 0  # the owner refused it as given after the rejection

        await t.city.start(backfill_on_start=True)
        assert t.city.server is not None
        await t.city.server.app[BACKFILL_TASK]
        assert await t.counted() == t.truth()
        route = await t.city.aggregator.db.execute_fetchall(
            "SELECT route, via FROM activities WHERE id = ?", (like["id"],)
        )
        assert list(route) == [("backfill", b.origin + "/actor")]
