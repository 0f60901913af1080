"""The malicious instance: a rostered Barri server whose operator sends what Barri never would.

Mallory runs a real instance (set up like every other, on the aggregator's roster as
neighbourhood "99"), but sends crafted supports straight to the aggregator, signed with keys
read from its own database — what any operator can do:

- forged: Likes in the name of another instance's residents, signed with Mallory's keys (the
  HTTP signature by a Mallory resident; the proof either by that resident or claiming the
  victim's key) — refused at the door and filed under Mallory's origin;
- backdated: Likes ``published`` a month before the supports phase opened — ``out_of_phase``;
- over the limit: one resident supports ``limit + extra`` proposals — the earliest ``limit`` by
  ``published`` count (DESIGN.md §7 rule 5), the rest are ``over_limit``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from activitypub.actors import ed25519_key_id, main_key_id
from activitypub.httpsig import Scheme, SigningKey, sign_request
from activitypub.integrity import create_proof
from activitypub.keys import generate_ed25519
from federation.model import Support
from federation.vocab.support import support_to_ap

MALLORY = "mallory"
RESIDENTS = ("m0", "m1", "m2")
AS2 = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


@dataclass
class Plan:
    """What Mallory sent, and what the aggregator must therefore show."""

    forged: int = 0
    backdated: int = 0
    over_limit: int = 0
    counted: list[tuple[str, str, str]] = field(default_factory=list)  # (place, resident, key)
    statuses: list[int] = field(default_factory=list)


def _keys(database: Path, actor: str) -> tuple[rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey]:
    with sqlite3.connect(database) as db:
        row = db.execute(
            "SELECT rsa_private_pem, ed25519_private_pem FROM actor_keys WHERE actor_id = ?",
            (actor,),
        ).fetchone()
    if row is None:
        raise LookupError(f"no keys for {actor} in {database}")
    rsa_key, ed_key = (load_pem_private_key(pem.encode(), None) for pem in row)
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and isinstance(ed_key, ed25519.Ed25519PrivateKey)
    return rsa_key, ed_key


@dataclass
class Mallory:
    """Mallory's instance (base URL, database) and the aggregator she sends to."""

    base_url: str
    database: Path
    inbox: str  # the aggregator's inbox (its public URL)
    aggregator_actor: str
    session: aiohttp.ClientSession

    def actor(self, name: str) -> str:
        """A Mallory resident's actor id."""
        return f"{self.base_url}/users/{name}"

    async def send(self, document: dict[str, Any], signer: str) -> int:
        """POST ``document`` HTTP-signed (RFC 9421) with ``signer``'s own RSA key."""
        rsa_key, _ed = _keys(self.database, signer)
        body = json.dumps(document).encode()
        key = SigningKey(main_key_id(signer), rsa_key)
        headers = sign_request("POST", self.inbox, {"Content-Type": AS2}, body, key, Scheme.RFC9421)
        async with self.session.post(self.inbox, data=body, headers=headers) as response:
            return response.status

    def like(self, actor: str, proposal: str, owner: str, published: datetime, *,
             id_base: str | None = None) -> dict[str, Any]:  # fmt: skip
        """An unsigned Like by ``actor`` (its id on ``id_base``, default the actor's origin)."""
        base = id_base or actor.split("/users/", 1)[0]
        support = Support(id=f"{base}/supports/mallory-{proposal.rsplit('/', 1)[-1]}-"
                             f"{actor.rsplit('/', 1)[-1]}-{int(published.timestamp())}",
                          actor=actor, proposal=proposal, published=published,
                          to=(owner, self.aggregator_actor))  # fmt: skip
        return support_to_ap(support)


async def attack(mallory: Mallory, proposals: list[tuple[str, str]], owner: str,
                 victims: list[str], limit: int, extra: int = 3) -> Plan:  # fmt: skip
    """Send every kind of bad support; ``proposals`` are (key, id) of one process of ``owner``."""
    if len(proposals) <= limit:
        raise ValueError(f"the over-limit attack needs more than {limit} proposals in a process")
    plan = Plan()
    now = datetime.now(UTC).replace(microsecond=0)
    m0, m1, m2 = (mallory.actor(n) for n in RESIDENTS)
    _rsa, m0_ed = _keys(mallory.database, m0)
    for i, victim in enumerate(victims):
        key, proposal = proposals[i % len(proposals)]
        # Mallory's id and Mallory's proof, in the victim's name.
        doc = mallory.like(victim, proposal, owner, now, id_base=mallory.base_url)
        plan.statuses.append(await mallory.send(create_proof(doc, m0_ed, ed25519_key_id(m0)), m0))
        # The victim's id and a proof claiming the victim's key, made with another key.
        doc = mallory.like(victim, proposal, owner, now - timedelta(seconds=1))
        claimed = create_proof(doc, generate_ed25519(), ed25519_key_id(victim))
        plan.statuses.append(await mallory.send(claimed, m0))
        plan.forged += 2
    _rsa, m1_ed = _keys(mallory.database, m1)
    for _key, proposal in proposals[:3]:
        doc = mallory.like(m1, proposal, owner, now - timedelta(days=30))
        plan.statuses.append(await mallory.send(create_proof(doc, m1_ed, ed25519_key_id(m1)), m1))
        plan.backdated += 1
    _rsa, m2_ed = _keys(mallory.database, m2)
    for n, (key, proposal) in enumerate(proposals[: limit + extra]):
        doc = mallory.like(m2, proposal, owner, now - timedelta(seconds=limit + extra - n))
        plan.statuses.append(await mallory.send(create_proof(doc, m2_ed, ed25519_key_id(m2)), m2))
        if n < limit:
            plan.counted.append((MALLORY, "m2", key))
        else:
            plan.over_limit += 1
    return plan
