"""Issue 6 "What must show", refusals and the roster, with real instances (aggregator_city).

Refused and flagged, never counted: a support proved with instance B's key for a resident of A;
a support from an instance not on the roster; a resident over the per-participant limit; a
support published outside the phase; a support whose proof was stripped or altered; a replayed
delivery. The misbehaving ones are made the way a broken or hostile instance would: signed with
the real keys the instances hold, since the instances themselves refuse to publish them.
Then: removing an instance takes its supports out of the totals, and adding it back restores
them without fetching anything the aggregator stored.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from activitypub import as2
from federation.aggregator.recompute import recompute
from federation.vocab.context import format_datetime, plain_context
from tests.aggregator_city import Hood, Town, deliver, town
from tests.test_aggregator_city import proposals


async def crafted_like(
    t: Town, hood: Hood, name: str, proposal: str, *, published: datetime | None = None
) -> dict[str, Any]:
    """A support as resident ``name`` of ``hood`` would publish it, not yet proved."""
    if name not in hood.users:
        await hood.resident(name)
    return {
        "@context": plain_context(),
        "id": f"{hood.origin}/supports/{uuid.uuid4().hex}",
        "type": "Like",
        "actor": hood.actor(name),
        "object": proposal,
        "published": format_datetime(published or datetime.now(UTC)),
        "to": [t.process.owner, t.city.actor],
    }


async def instances(t: Town) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    body = await t.city.get("/api/v1/instances")
    anomalies = {i["origin"]: i["anomalies"] for i in body["instances"]}
    refused = {i["origin"]: i["refused"] for i in body["instances"]}
    return anomalies, refused, body["unlisted"]


async def test_every_kind_of_bad_support_is_refused_or_flagged_and_never_counted(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with town(tmp_path, unused_tcp_port_factory) as t:
        ideas = await proposals(t)
        a, b, d, e = t.a, t.b, t.d, t.e
        for hood, name, chosen in (
            (a, "a1", ideas[:3]), (b, "b1", ideas[1:2]), (d, "d1", ideas[2:3]),
            (e, "e1", ideas[:1]),
        ):  # fmt: skip
            await hood.resident(name)
            for idea in chosen:
                await t.support(hood, name, idea)
        await t.settle()
        truth = t.truth()
        assert await t.counted() == truth

        # Over the limit: a fourth support by a1 (three allowed), proved by a1's own key. It is
        # published a second after the three real ones: timestamps have seconds precision and a
        # tie is broken by id, so in the same second this random id could be the one that counts.
        later = datetime.now(UTC) + timedelta(seconds=1)
        over = await crafted_like(t, a, "a1", ideas[3], published=later)
        over = (await a.keys(a.actor("a1"))).prove(over)
        assert await deliver(await a.keys(a.actor("a1")), over, t.city.inbox) == 202
        # Outside the phase: published two days ago, before the supports phase opened.
        early = datetime.now(UTC) - timedelta(days=2)
        before = await crafted_like(t, a, "a2", ideas[0], published=early)
        before = (await a.keys(a.actor("a2"))).prove(before)
        assert await deliver(await a.keys(a.actor("a2")), before, t.city.inbox) == 202
        # B's key proves a support "by" a resident of A: refused at the door, filed under B...
        forged = (await b.keys(b.actor("b1"))).prove(await crafted_like(t, a, "a3", ideas[0]))
        assert await deliver(await b.keys(b.actor("b1")), forged, t.city.inbox) == 401
        # ...and relayed by B's Group, flagged as B's forgery.
        relay = {
            "@context": forged["@context"], "id": f"{b.group}/announces/{uuid.uuid4().hex}",
            "type": "Announce", "actor": b.group, "object": forged, "to": [t.city.actor],
        }  # fmt: skip
        relay = (await b.keys(b.group)).prove(relay)
        assert await deliver(await b.keys(b.group), relay, t.city.inbox) == 202
        # A proof stripped: the delivery is HTTP-signed by its actor, the support never counts.
        stripped = await crafted_like(t, b, "b2", ideas[0])
        assert await deliver(await b.keys(b.actor("b2")), stripped, t.city.inbox) == 202
        # A real, captured support with its proof altered: refused at the door, filed under D.
        [real] = [x for x in await d.published(d.actor("d1")) if as2.has_type(x, "Like")]
        altered = {**copy.deepcopy(real), "object": ideas[0]}
        assert await deliver(await d.keys(d.actor("d1")), altered, t.city.inbox) == 401
        # The same real support delivered again: a replay, refused and filed under D.
        assert await deliver(await d.keys(d.actor("d1")), real, t.city.inbox) == 409
        await t.settle()

        assert await t.counted() == truth  # nothing of the above counts
        anomalies, refused, unlisted = await instances(t)
        assert anomalies == {
            a.origin: {"out_of_phase": 1, "over_limit": 1},
            b.origin: {"forged": 2},
            d.origin: {},
        }
        assert refused == {
            a.origin: {},
            b.origin: {"verification_method_not_owned": 1},
            d.origin: {"proof_signature_invalid": 1, "replayed": 1},
        }
        assert unlisted == [{"origin": e.origin, "anomalies": {"not_on_roster": 1}, "refused": {}}]
        comparison = await recompute(t.city.aggregator)
        assert comparison.agree, comparison.differences()


async def test_removing_an_instance_drops_its_supports_and_restoring_refetches_nothing(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    async with town(tmp_path, unused_tcp_port_factory) as t:
        ideas = await proposals(t)
        for hood, name in ((t.a, "a1"), (t.b, "b1"), (t.b, "b2"), (t.d, "d1")):
            await hood.resident(name)
            await t.support(hood, name, ideas[0])
        await t.settle()
        full = await t.counted()
        assert full == t.truth() == {ideas[0]: {"31": 1, "01": 2, "18": 1}}

        await t.city.runtime.roster.remove(t.b.origin)
        await t.settle()
        assert await t.counted() == {ideas[0]: {"31": 1, "18": 1}}
        listing = await t.city.get("/api/v1/instances")
        entry = next(i for i in listing["instances"] if i["origin"] == t.b.origin)
        assert entry["active"] is False

        fetched = dict(t.b.hits)
        await t.city.runtime.roster.add(t.b.origin, t.b.code)
        await t.settle()
        assert await t.counted() == full
        new = {path for path, n in t.b.hits.items() if n > fetched.get(path, 0)}
        # Only discovery and the follow (NodeInfo, the instance actor and the Group).
        assert new <= {"/.well-known/nodeinfo", "/nodeinfo/2.1", "/actor", "/groups/assoc"}, new
        assert (await recompute(t.city.aggregator)).agree
