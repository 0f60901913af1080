"""Inbound changes to what we keep: official answers, authors' edits, deletions (DESIGN.md §6).

Only the owner changes an object (FEP-fe34 checks it at the inbox; the service checks it
again against what is stored): the owning Group answers a proposal, an author edits or
deletes their own proposal, debate or comment, a Group updates its process. Remote HTML is
re-sanitised before it is stored. A refusal raises ``RuleViolation`` and changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from activitypub import as2
from federation.instance.acts import refuse
from federation.instance.content import sanitise_html
from federation.instance.processes import ProcessActs
from federation.instance.rules import check_can_delete_proposal
from federation.model import (
    Comment,
    Debate,
    LangText,
    OfficialAnswer,
    Process,
    Proposal,
    ProposalState,
    Tombstone,
)
from federation.store.sqlite import transaction
from federation.vocab.comment import comment_to_ap
from federation.vocab.debate import debate_to_ap
from federation.vocab.proposal import proposal_to_ap


def clean_text(text: LangText | None) -> LangText | None:
    """A multilingual remote text with every language re-sanitised."""
    if text is None:
        return None
    return LangText.of(sanitise_html(text.default), {k: sanitise_html(v) for k, v in text.by_lang})


class ChangeActs(ProcessActs):
    """Answers, edits and deletions of objects we keep, by their owners."""

    async def receive_answer(self, answer: OfficialAnswer, activity: Mapping[str, Any]) -> None:
        """The owning Group answered a proposal known here: state and answer only."""
        record = await self.proposal_record(answer.proposal.id)
        if answer.group != record.proposal.audience:
            refuse("not_owner", f"only {record.proposal.audience} answers this proposal")
        if answer.group == self.group_id:
            return  # our own answer, come back through an Announce
        given = answer.proposal
        answered = dataclasses.replace(
            record.proposal, state=given.state, answer=clean_text(given.answer),
            answered_at=given.answered_at, updated=given.updated or answer.published,
        )  # fmt: skip
        doc = proposal_to_ap(answered)
        async with transaction(self.db):
            await self.proposals.put_proposal(answered, doc, local=record.local)

    async def receive_update(self, obj: Any, activity: Mapping[str, Any]) -> None:
        """An owner's ``Update`` of a remote process, proposal, debate or comment we keep."""
        actor = as2.first_id(activity, "actor") or ""
        if isinstance(obj, Process):
            known = await self.domain.get_process(obj.id)
            if known is not None and not known.local:
                require_owner(known.process.owner, actor)
                await self.cache_remote_process(obj)
        elif isinstance(obj, Proposal):
            await self._update_proposal(obj, actor)
        elif isinstance(obj, Debate):
            await self._update_debate(obj, actor)
        elif isinstance(obj, Comment):
            await self._update_comment(obj, actor)

    async def _update_proposal(self, proposal: Proposal, actor: str) -> None:
        record = await self.proposals.get_proposal(proposal.id)
        if record is None or record.local:
            return
        require_owner(record.proposal.author, actor)
        edited = dataclasses.replace(
            record.proposal, name=proposal.name, content_html=sanitise_html(proposal.content_html),
            source_markdown=proposal.source_markdown, location=proposal.location,
            updated=proposal.updated,
            # The author may withdraw; the state otherwise belongs to the process owner.
            state=ProposalState.WITHDRAWN
            if proposal.state is ProposalState.WITHDRAWN
            else record.proposal.state,
        )  # fmt: skip
        async with transaction(self.db):
            await self.proposals.put_proposal(edited, proposal_to_ap(edited), local=False)

    async def _update_debate(self, debate: Debate, actor: str) -> None:
        record = await self.domain.get_debate(debate.id)
        if record is None or record.local:
            return
        require_owner(record.debate.author, actor)
        clean = dataclasses.replace(
            debate, content_html=sanitise_html(debate.content_html),
            conclusions=clean_text(debate.conclusions),
        )  # fmt: skip
        async with transaction(self.db):
            await self.domain.put_debate(clean, debate_to_ap(clean), local=False)

    async def _update_comment(self, comment: Comment, actor: str) -> None:
        record = await self.comments.get_comment(comment.id)
        if record is None or record.local:
            return
        require_owner(record.comment.author, actor)
        clean = dataclasses.replace(
            comment, content_html=sanitise_html(comment.content_html),
            depth=record.comment.depth, context=record.comment.context,
        )  # fmt: skip
        async with transaction(self.db):
            await self.comments.put_comment(
                clean, comment_to_ap(clean), root_id=record.root_id, local=False,
                external=record.external,
            )  # fmt: skip

    async def receive_delete(
        self, object_id: str, actor: str, activity: Mapping[str, Any] | None = None
    ) -> None:
        """The author deleted a remote proposal, debate or comment: gone, a Tombstone stays.

        When the object was addressed to our Group (a proposal in one of our processes), the
        Group Announces the ``Delete`` to its followers, as it announced the object's ``Create``.
        """
        proposal = await self.proposals.get_proposal(object_id)
        debate = await self.domain.get_debate(object_id)
        comment = await self.comments.get_comment(object_id)
        found = (
            ("Proposal", proposal.proposal.author, proposal.local, proposal.proposal.audience)
            if proposal else
            ("Debate", debate.debate.author, debate.local, debate.debate.audience)
            if debate else
            ("Note", comment.comment.author, comment.local, comment.comment.audience)
            if comment and not comment.deleted else None
        )  # fmt: skip
        if found is None:
            return
        former_type, author, local, audience = found
        if local or author != actor:
            refuse("not_author", "only the author may delete it")
        if proposal is not None:
            # The same rule as for a local deletion: a supported or answered proposal stays
            # (its author's instance may not know every support the owner counts).
            check_can_delete_proposal(
                proposal.proposal, actor, final_supports=proposal.final_supports
            )

        async def write(_db: Any) -> None:
            if former_type == "Proposal":
                await self.proposals.delete_proposal(object_id)
            elif former_type == "Debate":
                await self.domain.delete_debate(object_id)
            else:
                await self.comments.mark_comment_deleted(object_id)
            await self.domain.add_tombstone(Tombstone(object_id, former_type, self.now()))

        ours = activity is not None and audience == self.group_id
        await self.commit_received(activity or {}, write, announce=ours)


def require_owner(owner: str, actor: str) -> None:
    if owner != actor:
        refuse("not_author", f"only {owner} may change it")
