"""Proposals: a resident creates, edits and withdraws; the owning Group answers (issue 4).

A proposal lives on its author's instance even when its process is remote (the city's): it is
stored here and its ``Create`` delivered to the remote owning Group, which accepts it when the
author's territory is eligible (DESIGN.md §6). Answers are the owning Group's ``Update``.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from activitypub import as2
from activitypub.collections import PageRequest, PageResult
from federation.instance.acts import FOLLOWERS, ActsBase, refuse
from federation.instance.content import ANSWER_MAX
from federation.instance.ports import User
from federation.instance.rules import (
    check_can_answer,
    check_can_edit_proposal,
    check_can_propose,
    check_can_withdraw_proposal,
    check_territory_eligible,
)
from federation.model import LangText, Location, OfficialAnswer, Proposal, ProposalState
from federation.store.paging import first_page
from federation.store.proposals import ProposalRecord
from federation.vocab.answer import official_answer_to_ap
from federation.vocab.proposal import proposal_to_ap


class ProposalActs(ActsBase):
    """Proposals: create, edit, withdraw, answer, read."""

    async def create_proposal(
        self,
        author: User,
        process_id: str,
        *,
        name: str,
        body_markdown: str,
        location: Location | None = None,
    ) -> Proposal:
        """A resident's proposal in a (local or remote) process, published as their ``Create``."""
        process = (await self.process_record(process_id)).process
        now = self.now()
        check_territory_eligible(process, self.resident(author))
        check_can_propose(process, now)
        title = self.clean_name(name)
        source, html = self.render("body", body_markdown)
        actor = self.actor_id(author)
        proposal_id = self.new_id("proposals")
        to, cc, recipients = self.public_addressing(actor, process.owner)
        proposal = Proposal(
            id=proposal_id,
            author=actor,
            audience=process.owner,
            process=process.id,
            name=LangText(title),
            content_html=html,
            source_markdown=source,
            published=now,
            url=proposal_id,
            support_count=0,
            location=location,
            replies=f"{proposal_id}/replies",
            context=f"{proposal_id}/context",
            to=to,
            cc=cc,
        )
        await self._publish_proposal("Create", proposal, recipients)
        return proposal

    async def _publish_proposal(
        self, kind: str, proposal: Proposal, recipients: list[str], *, local: bool = True
    ) -> None:
        doc = proposal_to_ap(proposal)
        activity = self.activity(kind, proposal.author, doc, proposal.to, proposal.cc)

        async def write(_db: Any) -> None:
            await self.proposals.put_proposal(proposal, doc, local=local)

        await self.publisher.publish(
            activity, actor=proposal.author, public=True, recipients=recipients, write=write
        )

    async def _own_proposal(self, author: User, proposal_id: str) -> ProposalRecord:
        record = await self.proposal_record(proposal_id)
        if not record.local:
            refuse("not_author", "only the author may change a proposal")
        return record

    async def edit_proposal(
        self, author: User, proposal_id: str, *, name: str, body_markdown: str
    ) -> Proposal:
        """The author's edit within the edit window (Decidim ``edit_time``), as an ``Update``."""
        record = await self._own_proposal(author, proposal_id)
        window = timedelta(minutes=self.config.edit_window_minutes)
        check_can_edit_proposal(record.proposal, self.actor_id(author), self.now(), window)
        title = self.clean_name(name)
        source, html = self.render("body", body_markdown)
        edited = dataclasses.replace(
            record.proposal,
            name=LangText(title),
            content_html=html,
            source_markdown=source,
            updated=self.now(),
        )
        _, _, recipients = self.public_addressing(edited.author, edited.audience)
        await self._publish_proposal("Update", edited, recipients)
        return edited

    async def withdraw_proposal(self, author: User, proposal_id: str) -> Proposal:
        """The author withdraws a proposal no final support counts for, as an ``Update``."""
        record = await self._own_proposal(author, proposal_id)
        check_can_withdraw_proposal(
            record.proposal, self.actor_id(author), final_supports=record.final_supports
        )
        withdrawn = dataclasses.replace(
            record.proposal, state=ProposalState.WITHDRAWN, updated=self.now()
        )
        _, _, recipients = self.public_addressing(withdrawn.author, withdrawn.audience)
        await self._publish_proposal("Update", withdrawn, recipients)
        return withdrawn

    async def answer_proposal(
        self, admin: User, proposal_id: str, *, state: ProposalState, answer: LangText
    ) -> Proposal:
        """The owning Group's official answer (state + text), published as its ``Update``."""
        self.require_staff(admin, "answer proposals")
        record = await self.proposal_record(proposal_id)
        proposal = record.proposal
        if proposal.audience != self.group_id:
            refuse("not_owner", f"only {proposal.audience} answers this proposal")
        new_state = check_can_answer(proposal.state, state, answer)
        now = self.now()
        answered = dataclasses.replace(
            proposal,
            state=new_state,
            answer=self.render_lang("officialAnswer", answer, ANSWER_MAX),
            answered_at=now,
            updated=now,
        )
        followers = self.group_id + FOLLOWERS
        update = OfficialAnswer(
            id=self.new_id("activities"),
            group=self.group_id,
            proposal=answered,
            published=now,
            to=(as2.PUBLIC,),
            cc=(followers, proposal.author),
        )
        doc = proposal_to_ap(answered)

        async def write(_db: Any) -> None:
            await self.proposals.put_proposal(answered, doc, local=record.local)

        recipients = [followers] + ([] if self.is_local(proposal.author) else [proposal.author])
        await self.publisher.publish(
            official_answer_to_ap(update),
            actor=self.group_id,
            public=True,
            recipients=recipients,
            write=write,
        )
        return answered

    async def get_proposal(self, proposal_id: str) -> Proposal | None:
        """A proposal known here; ``support_count`` = final supports known here."""
        record = await self.proposals.get_proposal(proposal_id)
        return None if record is None else record.proposal

    async def list_proposals(
        self, process_id: str, *, page: PageRequest | None = None
    ) -> PageResult:
        """A process's proposals, newest first, cursor paged (items: ``Proposal``)."""
        return await self.proposals.page_proposals(process_id, page or first_page())
