"""Supports and their withdrawals stored as verified rows: the vote half of ingest (DESIGN.md §5,
§7, vocab-spec "support").

Whatever the route, a ``Like`` or ``Undo{Like}`` is validated and read through its converter,
its own FEP-8b32 proof is verified (:mod:`.proofs`; the inbox's own check of that very proof
stands), the proposal's process and the actor's residency are fetched and cached, and the raw
signed JSON is stored with the tally's fields, deduplicated by id. Inside an ingest batch
(:mod:`.batch`) the rows are written together; :meth:`Votes.at_once` stores a backfilled vote
without awaiting anything when all it needs is in memory.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activitypub import as2, jsontext
from activitypub.integrity import ContextMemo
from activitypub.memo import EqualMemo
from federation.aggregator.batch import open_batch
from federation.aggregator.documents import Documents
from federation.aggregator.proofs import ProofCheck, check_proof, proof_at_once
from federation.aggregator.provenance import Outcome, Provenance, metric_label
from federation.store.aggregator_log import ActivityLog, ActivityRow
from federation.tally.records import normal_origin
from federation.validation import ValidationError, shape_of, validate
from federation.vocab import VocabError
from federation.vocab.context import format_datetime
from federation.vocab.support import support_from_ap, undo_support_from_ap

#: (provenance, activity id, reason, detail) -> file the refusal (``Ingest.refuse``).
Refuse = Callable[[Provenance, str, str, str], Awaitable[None]]


@dataclass(frozen=True)
class Vote:
    """What the tally reads of a support (target: the proposal) or undo (target: the like)."""

    id: str
    kind: str
    actor: str
    target: str
    published: datetime


def read_vote(shape: str, document: Mapping[str, Any]) -> Vote:
    """A support or undo-support, validated and read through its converter (vocab-spec
    "support"); ValidationError or VocabError when it is not one."""
    validate(shape, document)
    if shape == "support":
        support = support_from_ap(document)
        return Vote(support.id, "support", support.actor, support.proposal, support.published)
    undo = undo_support_from_ap(document)
    undone = undo.support if isinstance(undo.support, str) else undo.support.id
    return Vote(undo.id, "undo", undo.actor, undone, undo.published)


def stored_text(document: Mapping[str, Any]) -> str:
    """The stored copy's text, which ``has_genuine_copy`` compares with the copies stored
    before (``json`` wrote the same bytes but for floats below 1e-4: such a copy is verified
    again)."""
    return jsontext.dumps(document)


class Votes:
    """Verify, resolve and store votes for one ``Ingest`` (``owner``: whose batch they join)."""

    def __init__(
        self,
        *,
        owner: object,
        log: ActivityLog,
        documents: Documents,
        refuse: Refuse,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._owner, self.log, self.documents = owner, log, documents
        self._refuse, self._clock = refuse, clock
        #: Canonical forms of the @contexts met, for the proofs verified here (backfill).
        self.canonical: ContextMemo = EqualMemo()

    async def vote(
        self, document: Mapping[str, Any], provenance: Provenance, text: str | None = None
    ) -> Outcome:
        shape = shape_of(document)
        if shape not in ("support", "undo-support"):
            return Outcome.IGNORED  # a comment vote (Lemmy-style): shown, never counted
        try:
            vote = read_vote(shape, document)
        except (ValidationError, VocabError) as exc:
            activity_id = as2.first_id(document, "id") or "(no id)"
            await self._refuse(provenance, activity_id, f"invalid_{shape}", str(exc))
            return Outcome.INVALID
        return await self.store(document, vote, provenance, text=text)

    async def store(
        self,
        document: Mapping[str, Any],
        vote: Vote,
        provenance: Provenance,
        *,
        now: float | None = None,
        text: str | None = None,
    ) -> Outcome:
        """Verify the vote's own proof, resolve what the tally needs, store the raw copy."""
        home = normal_origin(vote.actor) or vote.actor
        raw = stored_text(document) if text is None else text
        proved = provenance.proved and provenance.via == vote.actor
        batch = open_batch(self._owner)
        unheld = batch is not None and vote.id in batch.unheld
        if not (proved or unheld) and await self.log.has_genuine_copy(vote.id, home, raw):
            # This very copy verified before: nothing to check again. Any other copy is
            # verified, so a forgery is flagged whether it comes before or after the original.
            return Outcome.DUPLICATE
        if proved:
            check = ProofCheck(True, home)  # the inbox verified this very proof (FEP-8b32)
        else:
            check = await check_proof(document, vote.actor, self.documents.actor, self.canonical)
        if not check.ok and provenance.trusted_origin != home:
            # Unverifiable, and not handed over by the actor's own instance: it is evidence
            # against nobody but the relay that authenticated itself, so it is filed there.
            detail = f"a copy of {vote.id} whose proof does not verify, relayed from elsewhere"
            await self._refuse(provenance, vote.id, "unverifiable_copy", detail)
            return Outcome.INVALID
        genuine = check.ok and check.signer_origin == home
        process = ""
        if genuine:
            # Only a genuine vote makes us fetch: a forged one must not steer our fetches.
            if vote.kind == "support":
                process = await self.documents.process_of(vote.target)
            await self.documents.known_resident(vote.actor)
        row = self.row(vote, provenance, check, process, raw, now)
        if batch is not None:
            # Written with the rest of the inbox batch; a copy stored already is found then.
            return Outcome.STORED if batch.add(row, metric_label(document)) else Outcome.DUPLICATE
        stored = await self.log.add_activity(row)
        return Outcome.STORED if stored else Outcome.DUPLICATE

    def row(
        self,
        vote: Vote,
        provenance: Provenance,
        check: ProofCheck,
        process: str,
        raw: str,
        now: float | None = None,
    ) -> ActivityRow:
        """The stored copy of a verified vote: the tally's fields and the raw signed JSON."""
        return ActivityRow(
            seq=0,
            id=vote.id,
            kind=vote.kind,
            actor=vote.actor,
            origin=normal_origin(vote.actor) or vote.actor,
            object=vote.target,
            process=process,
            published=format_datetime(vote.published),
            received_at=self._clock() if now is None else now,
            proof_ok=check.ok,
            signer_origin=check.signer_origin,
            route=provenance.route.value,
            via=provenance.via,
            document=raw,
        )

    def at_once(self, document: Mapping[str, Any], provenance: Provenance) -> Outcome | None:
        """:meth:`vote` of a plain ``Like`` or ``Undo`` inside a batch that found no verified
        copy of it, whose actor's document, fresh residency and (for a support) proposal's
        process are held, and whose proof by the actor's own key verifies."""
        batch = open_batch(self._owner)
        shape = shape_of(document) if document.get("type") in ("Like", "Undo") else None
        if batch is None or provenance.proved or shape not in ("support", "undo-support"):
            return None
        try:
            vote = read_vote(shape, document)
        except (ValidationError, VocabError):
            return None  # accept() files the refusal
        documents = self.documents
        actor = documents.peek(vote.actor)
        process = documents.process_held(vote.target) if vote.kind == "support" else ""
        if (
            vote.id not in batch.unheld or actor is None or process is None
            or not documents.resident_fresh(vote.actor)
        ):  # fmt: skip
            return None
        check = proof_at_once(document, vote.actor, actor, self.canonical)
        if check is None:
            return None
        row = self.row(vote, provenance, check, process, stored_text(document))
        return Outcome.STORED if batch.add(row, metric_label(document)) else Outcome.DUPLICATE
