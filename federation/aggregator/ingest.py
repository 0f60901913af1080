"""Turning received activities into stored, verified rows (DESIGN.md §5, §6, §7).

One entry point, :meth:`Ingest.accept`, for every route: the shared inbox (after the protocol
pipeline authenticated the sender), the inner activity of an ``Announce``, and backfill from an
outbox. Each document is validated (federation.validation) and read through the converters.

- ``Like`` (support) and ``Undo{Like}``: :mod:`.votes` (their own FEP-8b32 proof verified
  whatever the route, the raw signed JSON stored with the tally's fields).
- ``Create``/``Update`` of a proposal or process and the Group's official answer keep names,
  states and rules current; they are believed when the route authenticated their actor's
  origin or their proof verifies, else the object is refetched from its own origin.
- ``Create``/``Update`` of a debate or comment are merged by id (:mod:`.merge`), a ``Delete``
  hides its object (and, proved by a resident, withdraws the support it names, as an ``Undo``).
- ``Accept``/``Reject`` of our ``Follow`` record the instance's answer; a ``Follow`` of the
  Service and its ``Undo`` go to :mod:`.followers`.

Nothing here counts: :mod:`.state` feeds what is stored to the tally.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any

from activitypub import as2
from activitypub.origin import same_origin
from federation.aggregator.batch import vote_batch
from federation.aggregator.documents import DocumentFetch, Documents, read_process, read_proposal
from federation.aggregator.followers import Followers
from federation.aggregator.merge import Merger, deletion_time
from federation.aggregator.proofs import check_proof
from federation.aggregator.provenance import COUNTED_TYPES, Outcome, Provenance, Route, metric_label
from federation.aggregator.votes import Vote, Votes
from federation.store.aggregator import AggregatorStore, Refusal
from federation.store.aggregator_log import ActivityLog
from federation.tally.records import normal_origin
from federation.validation import ValidationError, validate_inbound
from federation.vocab import VocabError
from federation.vocab.answer import official_answer_from_ap
from federation.vocab.deletion import deletion_from_ap

log = logging.getLogger(__name__)


def _framed(inner: Mapping[str, Any], outer: Mapping[str, Any]) -> dict[str, Any]:
    """An embedded object read in its container's @context when it has none (JSON-LD §4.1)."""
    if "@context" in inner or "@context" not in outer:
        return dict(inner)
    return {"@context": outer["@context"], **inner}


class Ingest:
    """Verify, parse and store what arrives; one instance per server."""

    def __init__(
        self,
        *,
        store: AggregatorStore,
        log: ActivityLog,
        documents: Documents,
        fetch: DocumentFetch,
        merger: Merger | None = None,
        followers: Followers | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.log, self.documents = store, log, documents
        self.merger, self.followers = merger, followers
        self._fetch, self._clock = fetch, clock
        #: Activities handled since start, by (first type, outcome): the /metrics counter.
        self.counts: Counter[tuple[str, str]] = Counter()
        self.votes = Votes(
            owner=self, log=log, documents=documents, refuse=self.refuse, clock=clock
        )

    async def accept(
        self,
        activity: Mapping[str, Any],
        provenance: Provenance,
        *,
        depth: int = 0,
        text: str | None = None,
    ) -> Outcome:
        """Validate, verify and store one activity; the Outcome says what happened.
        ``text``: the activity's JSON as it came (it parses to ``activity``), if at hand."""
        outcome = await self._accept(activity, provenance, depth, text)
        self.counts[(metric_label(activity), outcome.value)] += 1
        return outcome

    @asynccontextmanager
    async def batch(self, *, unheld: Collection[str] = ()) -> AsyncIterator[None]:
        """Votes stored in this task until the end are written then, in one transaction
        (:mod:`.batch`); a vote handed over twice meanwhile is stored once. ``unheld``: ids
        the caller just found no verified copy of."""
        async with vote_batch(self, self.log, self.counts, unheld):
            yield

    async def _accept(
        self, activity: Mapping[str, Any], provenance: Provenance, depth: int, text: str | None
    ) -> Outcome:
        kinds = set(as2.types(activity))
        if kinds & {"Follow", "Undo"} and (follows := await self._follows(activity, provenance)):
            return follows
        if "Delete" in kinds:
            return await self._delete(activity, provenance, text)
        if "Like" in kinds or "Undo" in kinds:
            return await self.votes.vote(activity, provenance, text)
        if "Announce" in kinds and depth == 0:
            return await self._announce(activity, provenance)
        if kinds & {"Create", "Update"}:
            return await self._object(activity, provenance)
        if kinds & {"Accept", "Reject"}:
            return await self._follow_answer(activity, provenance, accepted="Accept" in kinds)
        return Outcome.IGNORED

    async def refuse(
        self, provenance: Provenance, activity_id: str, reason: str, detail: str
    ) -> None:
        """File a refusal under the origin the route authenticated (nobody else can be blamed)."""
        origin = normal_origin(provenance.via) if provenance.via else None
        if origin is None:
            log.info("refused %s: %s (%s)", activity_id, reason, detail)
            return
        await self.store.add_refusal(Refusal(origin, activity_id, reason, detail, self._clock()))

    # --- supports and undos (:mod:`.votes`) ---------------------------------------------------

    def accept_at_once(self, activity: Mapping[str, Any], provenance: Provenance) -> Outcome | None:
        """:meth:`accept` without waiting, for a vote whose every need is in memory: the
        common case of a backfill page after :meth:`ListedItems.warm`. None when anything is
        missing or unusual, and nothing was done: :meth:`accept` decides then, as always."""
        outcome = self.votes.at_once(activity, provenance)
        if outcome is not None:
            self.counts[(metric_label(activity), outcome.value)] += 1
        return outcome

    # --- announces --------------------------------------------------------------------------

    async def _announce(self, document: Mapping[str, Any], provenance: Provenance) -> Outcome:
        """FEP-1b12: the inner activity is checked on its own (its proof, or a refetch)."""
        announcer = as2.first_id(document, "actor")
        inner = as2.embedded(document, "object")
        if inner is not None:
            trusted = provenance.trusted_origin
            if announcer is None or trusted is None or not same_origin(announcer, trusted):
                trusted = None  # the Announce itself is unauthenticated: only proofs count
            relayed = Provenance(Route.ANNOUNCE, announcer, trusted and normal_origin(trusted))
            return await self.accept(_framed(inner, document), relayed, depth=1)
        inner_id = as2.first_id(document, "object")
        if inner_id is None:
            return Outcome.IGNORED
        # A bare id: fetch it from its own origin (id == URL), as DESIGN.md §5 allows.
        fetched = await self._fetch(inner_id)
        relayed = Provenance(Route.FETCH, announcer, normal_origin(inner_id))
        return await self.accept(fetched, relayed, depth=1)

    # --- proposals, processes, answers -------------------------------------------------------

    async def _authentic(
        self, document: Mapping[str, Any], actor: str, provenance: Provenance
    ) -> bool:
        if provenance.route is Route.INBOX and provenance.via == actor:
            return True
        trusted = provenance.trusted_origin
        if trusted is not None and same_origin(actor, trusted):
            return True
        check = await check_proof(document, actor, self.documents.actor)
        return check.ok and check.signer_origin == normal_origin(actor)

    async def _object(self, document: Mapping[str, Any], provenance: Provenance) -> Outcome:
        try:
            shape = validate_inbound(document)
        except ValidationError as exc:
            activity_id = as2.first_id(document, "id") or "(no id)"
            await self.refuse(provenance, activity_id, f"invalid_{exc.shape}", str(exc))
            return Outcome.INVALID
        actor = as2.first_id(document, "actor") or ""
        if shape == "official-answer":
            return await self._answer(document, actor, provenance)
        inner = as2.embedded(document, "object")
        if shape == "actor-person" and inner is not None:
            return await self._person(document, inner, actor, provenance)
        if shape in ("debate", "comment") and inner is not None and self.merger is not None:
            framed = _framed(inner, document)
            kept = await self.merger.created(document, framed, self._vouch(provenance))
            return Outcome.STORED if kept else Outcome.DUPLICATE
        if shape not in ("proposal", "process") or inner is None:
            return Outcome.IGNORED
        framed = _framed(inner, document)
        authentic = await self._authentic(document, actor, provenance)
        if shape == "process":
            process = read_process(framed)
            if process is None or not authentic or process.owner != actor:
                return Outcome.IGNORED
            await self.documents.store_process(process, framed)
            return Outcome.STORED
        proposal = read_proposal(framed)
        if proposal is None or proposal.author != actor:
            return Outcome.IGNORED
        if not authentic:
            # Not verifiable as sent: believe only the proposal's own origin.
            framed = dict(await self._fetch(proposal.id))
            proposal = read_proposal(framed)
            if proposal is None:
                return Outcome.IGNORED
        if await self.documents.process(proposal.process) is None:
            return Outcome.IGNORED
        stored = await self.documents.store_proposal(proposal, framed)
        return Outcome.STORED if stored else Outcome.DUPLICATE

    async def _answer(
        self, document: Mapping[str, Any], actor: str, provenance: Provenance
    ) -> Outcome:
        """The owning Group's official answer: state and answer of a proposal (§4)."""
        try:
            answer = official_answer_from_ap(document)
        except VocabError:
            return Outcome.INVALID
        process = await self.documents.process(answer.proposal.process)
        if process is None or process.owner != actor:
            return Outcome.IGNORED  # only the Group owning the process answers
        if not await self._authentic(document, actor, provenance):
            return Outcome.IGNORED
        inner = as2.embedded(document, "object") or {}
        stored = await self.documents.store_proposal(
            answer.proposal, _framed(inner, document), at=answer.published
        )
        return Outcome.STORED if stored else Outcome.DUPLICATE

    async def _person(
        self,
        document: Mapping[str, Any],
        person: Mapping[str, Any],
        actor: str,
        provenance: Provenance,
    ) -> Outcome:
        """A resident's ``Update`` (e.g. just verified): reread the residency from its origin."""
        if as2.first_id(person, "id") != actor:
            return Outcome.IGNORED  # only an actor updates itself
        if not await self._authentic(document, actor, provenance):
            return Outcome.IGNORED  # nobody may make us refetch on someone else's behalf
        await self.documents.resident(actor, force=True)
        return Outcome.STORED

    def _vouch(self, provenance: Provenance) -> Any:
        async def vouch(document: Mapping[str, Any], actor: str) -> bool:
            return await self._authentic(document, actor, provenance)

        return vouch

    # --- deletions --------------------------------------------------------------------------

    async def _delete(
        self, document: Mapping[str, Any], provenance: Provenance, text: str | None = None
    ) -> Outcome:
        """Hide the deleted object; a resident's proved ``Delete`` of a support withdraws it."""
        hidden = self.merger is not None and await self.merger.deleted(
            document, self._vouch(provenance)
        )
        if "proof" not in document:
            # Only a proved deletion can stand for a withdrawal (rule 4 reads the proof).
            return Outcome.STORED if hidden else Outcome.IGNORED
        try:
            deletion = deletion_from_ap(document)
        except VocabError:
            return Outcome.STORED if hidden else Outcome.INVALID
        now = self._clock()
        published = deletion_time(document, now)
        vote = Vote(deletion.id, "undo", deletion.actor, deletion.object_id, published)
        outcome = await self.votes.store(document, vote, provenance, now=now, text=text)
        return Outcome.STORED if hidden else outcome

    # --- follows ----------------------------------------------------------------------------

    async def _follows(self, document: Mapping[str, Any], provenance: Provenance) -> Outcome | None:
        """A ``Follow`` of the Service or its ``Undo`` (None: not about following us)."""
        sender = provenance.via if provenance.route is Route.INBOX else None
        done = None if self.followers is None else await self.followers.handle(document, sender)
        return None if done is None else Outcome.STORED if done else Outcome.IGNORED

    async def _follow_answer(
        self, document: Mapping[str, Any], provenance: Provenance, *, accepted: bool
    ) -> Outcome:
        """An instance's ``Accept``/``Reject`` of one of our Follows (ActivityPub §7.2, §7.3)."""
        actor = as2.first_id(document, "actor")
        follow_id = as2.first_id(document, "object")
        # Only the followed actor answers, and only what its authenticated delivery says.
        if provenance.route is not Route.INBOX or actor is None or provenance.via != actor:
            return Outcome.IGNORED
        follow = None if follow_id is None else await self.store.follow(follow_id)
        if follow is None or follow.target != actor or follow.state == "undone":
            return Outcome.IGNORED
        state = "accepted" if accepted else "rejected"
        await self.store.set_follow_state(follow.follow_id, state, now=self._clock())
        return Outcome.STORED


__all__ = ["COUNTED_TYPES", "Ingest", "Outcome", "Provenance", "Route"]
