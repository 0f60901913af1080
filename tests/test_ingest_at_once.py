"""Ingest's synchronous path for a backfill page's votes (``Ingest.accept_at_once``): it stores
exactly what :meth:`Ingest.accept` stores, and whenever anything it needs is not in memory or
anything is unusual it does nothing at all, leaving the vote to ``accept``; and a proof check
reads the voter's actor once (federation.aggregator.proofs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from activitypub.integrity import create_proof
from activitypub.keys import multikey_encode
from federation.aggregator.documents import Documents
from federation.aggregator.ingest import Ingest
from federation.aggregator.proofs import ProofCheck, check_proof
from federation.aggregator.provenance import Outcome, Provenance, Route
from federation.model import Support, UndoSupport
from federation.store.aggregator import AggregatorStore
from federation.store.aggregator_log import ActivityLog, ActivityRow, ProposalRow
from federation.store.aggregator_schema import AGGREGATOR_MIGRATIONS
from federation.store.sqlite import open_database
from federation.vocab.support import support_to_ap, undo_support_to_ap

ORIGIN = "https://gracia.barri.example"
ANA = f"{ORIGIN}/users/ana"
GROUP = f"{ORIGIN}/groups/gracia"
PROCESS = f"{ORIGIN}/processes/pam"
PROPOSALS = [f"{ORIGIN}/proposals/{n}" for n in range(3)]
WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
BACKFILL = Provenance(Route.BACKFILL, f"{ORIGIN}/actor", None)


def _actor() -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/activitystreams"], "id": ANA, "type": "Person",
        "inbox": f"{ANA}/inbox",
        "assertionMethod": [{
            "id": f"{ANA}#ed25519-key", "type": "Multikey", "controller": ANA,
            "publicKeyMultibase": multikey_encode(KEY.public_key()),
        }],
    }  # fmt: skip


def _signed(document: dict[str, Any], key: Ed25519PrivateKey = KEY) -> dict[str, Any]:
    return create_proof(document, key, f"{ANA}#ed25519-key", created=WHEN)


def _like(n: int, **changes: Any) -> dict[str, Any]:
    support = Support(id=f"{ANA}/likes/{n}", actor=ANA, proposal=PROPOSALS[n % len(PROPOSALS)],
                      published=WHEN, to=(GROUP,))  # fmt: skip
    return _signed({**support_to_ap(support), **changes})


def _undo(n: int) -> dict[str, Any]:
    undo = UndoSupport(id=f"{ANA}/undos/{n}", actor=ANA, support=f"{ANA}/likes/{n}",
                       published=WHEN, to=(GROUP,))  # fmt: skip
    return _signed(undo_support_to_ap(undo))


@dataclass
class City:
    """An ingest over a real SQLite file, with what the votes need held in memory or not."""

    ingest: Ingest
    log: ActivityLog
    actor_calls: list[str] = field(default_factory=list)
    holds_actor: bool = True


async def _refused(url: str, *args: Any) -> Any:
    raise AssertionError(f"nothing is fetched, yet {url} was")


async def _city(path: Path, *, known: tuple[str, ...] = tuple(PROPOSALS), fresh: bool = True
                ) -> AsyncIterator[City]:  # fmt: skip
    db = await open_database(path, migrations=AGGREGATOR_MIGRATIONS)
    try:
        log = ActivityLog(db)
        city: City

        async def actor(url: str, refresh: bool) -> Mapping[str, Any]:
            city.actor_calls.append(url)
            return _actor()

        def peek(url: str) -> Mapping[str, Any] | None:
            return _actor() if city.holds_actor and url == ANA else None

        documents = Documents(log, _refused, actor, refresh_seconds=3600, peek=peek)
        ingest = Ingest(store=AggregatorStore(db), log=log, documents=documents, fetch=_refused)
        city = City(ingest, log)
        for proposal in known:
            await log.put_proposal(ProposalRow(proposal, PROCESS, ORIGIN, "p", "open",
                                               "2026-01-01T00:00:00Z", "{}", 0.0, 0))  # fmt: skip
            assert await documents.process_of(proposal) == PROCESS  # now held in memory
        if fresh:
            await documents.learn(ANA, _actor())
        yield city
    finally:
        await db.close()


def _stored(rows: list[ActivityRow]) -> list[ActivityRow]:
    return [replace(row, seq=0, received_at=0.0) for row in rows]


async def _all(log: ActivityLog) -> list[ActivityRow]:
    return [row async for row in log.documents()]


VOTES: list[Callable[[], dict[str, Any]]] = [
    lambda: _like(0),
    lambda: _like(1),
    lambda: _like(2),
    lambda: _undo(0),
]


async def test_at_once_stores_what_accept_stores(tmp_path: Path) -> None:
    votes = [make() for make in VOTES]
    ids = [vote["id"] for vote in votes]
    async for quick in _city(tmp_path / "quick.db"):
        async with quick.ingest.batch(unheld=ids):
            outcomes = [quick.ingest.accept_at_once(vote, BACKFILL) for vote in votes]
        assert outcomes == [Outcome.STORED] * len(votes)
        assert quick.actor_calls == []  # everything came from memory
        async for slow in _city(tmp_path / "slow.db"):
            async with slow.ingest.batch(unheld=ids):
                for vote in votes:
                    assert await slow.ingest.accept(vote, BACKFILL) is Outcome.STORED
            expected = _stored(await _all(slow.log))
            assert len(expected) == len(votes)
            assert _stored(await _all(quick.log)) == expected
            assert quick.ingest.counts == slow.ingest.counts


@dataclass(frozen=True)
class Case:
    """A vote the synchronous path must leave to ``accept``, and the city it meets."""

    name: str
    vote: Callable[[], dict[str, Any]]
    known: tuple[str, ...] = tuple(PROPOSALS)
    fresh: bool = True
    holds_actor: bool = True
    batch: bool = True
    unheld: bool = True


CASES = [
    Case("no batch open", lambda: _like(0), batch=False),
    Case("a verified copy may be held", lambda: _like(0), unheld=False),
    Case("the actor is not in memory", lambda: _like(0), holds_actor=False),
    Case("the proposal's process is not in memory", lambda: _like(0), known=()),
    Case("the residency is not fresh", lambda: _like(0), fresh=False),
    Case("signed by another key", lambda: _signed(_like(0), OTHER_KEY)),
    Case("no proof", lambda: {k: v for k, v in _like(0).items() if k != "proof"}),
    Case("a public Like (a comment vote)", lambda: _like(0, to=["as:Public"])),
    Case("two types", lambda: _like(0, type=["Like", "Delete"])),
    Case("invalid: no recipients", lambda: {k: v for k, v in _like(0).items() if k != "to"}),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_at_once_does_nothing_unless_everything_is_at_hand(
    tmp_path: Path, case: Case
) -> None:
    vote = case.vote()
    async for city in _city(tmp_path / "city.db", known=case.known, fresh=case.fresh):
        city.holds_actor = case.holds_actor
        if not case.batch:
            assert city.ingest.accept_at_once(vote, BACKFILL) is None
        else:
            unheld = [vote["id"]] if case.unheld else []
            async with city.ingest.batch(unheld=unheld):
                assert city.ingest.accept_at_once(vote, BACKFILL) is None
        assert await _all(city.log) == []
        assert not city.ingest.counts


async def test_a_proof_check_reads_the_actor_once(tmp_path: Path) -> None:
    async for city in _city(tmp_path / "city.db"):
        actor = city.ingest.documents.actor
        assert await check_proof(_like(0), ANA, actor) == ProofCheck(True, ORIGIN)
        assert city.actor_calls == [ANA]
