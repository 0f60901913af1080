"""A resident deletes their own proposal, debate or comment: ``Delete`` of a Tombstone.

ActivityPub §6.4: the object is replaced by a ``Tombstone`` and its id answers 410 from then
on; the ``Delete`` (vocab-spec "delete") reaches everyone the object reached, and the local
Group Announces it (FEP-1b12). Only the author deletes (``not_author``), and only objects
written here. Decidim has no deletion, only withdrawal, which a supported proposal refuses
(``proposal_has_supports``); an answered proposal keeps its record too (``proposal_answered``).
The rules are checked before anything is published and again inside the writing transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from federation.instance.acts import ActsBase, not_found, refuse
from federation.instance.ports import User
from federation.instance.rules import check_can_delete, check_can_delete_proposal
from federation.model import Deletion, Tombstone
from federation.store.proposals import ProposalRecord
from federation.vocab.deletion import deletion_to_ap

#: Removes the object's row(s) inside the transaction that stores the ``Delete``.
Removal = Callable[[], Awaitable[None]]


class DeletionActs(ActsBase):
    """Deleting one's own proposals, debates and comments."""

    async def _own_proposal_to_delete(self, actor: str, proposal_id: str) -> ProposalRecord:
        record = await self.proposal_record(proposal_id)
        if not record.local:
            refuse("not_author", "only its author's instance deletes a proposal")
        check_can_delete_proposal(record.proposal, actor, final_supports=record.final_supports)
        return record

    async def delete_proposal(self, author: User, proposal_id: str) -> Deletion:
        """The author deletes a proposal no final support counts for and no answer was given."""
        actor = self.actor_id(author)
        record = await self._own_proposal_to_delete(actor, proposal_id)
        proposal = record.proposal

        async def remove() -> None:
            # A support may have become final since the first check: judged again here.
            await self._own_proposal_to_delete(actor, proposal_id)
            await self.proposals.delete_proposal(proposal_id)

        others = (proposal.audience, *proposal.cc)
        return await self._delete(actor, proposal_id, "Proposal", others, remove)

    async def delete_debate(self, author: User, debate_id: str) -> Deletion:
        """The author deletes a debate (open or closed); its comments stay, hanging from nothing."""
        record = await self.domain.get_debate(debate_id)
        if record is None:
            not_found("debate", debate_id)
        actor = self.actor_id(author)
        if not record.local:
            refuse("not_author", "only its author's instance deletes a debate")
        check_can_delete(record.debate.author, actor, "a debate")

        async def remove() -> None:
            if not await self.domain.delete_debate(debate_id):
                not_found("debate", debate_id)

        others = (record.debate.audience, *record.debate.cc)
        return await self._delete(actor, debate_id, "Debate", others, remove)

    async def delete_comment(self, author: User, comment_id: str) -> Deletion:
        """The author deletes a comment; its replies stay in the thread."""
        record = await self.comments.get_comment(comment_id)
        if record is None or record.deleted:
            not_found("comment", comment_id)
        actor = self.actor_id(author)
        if not record.local:
            refuse("not_author", "only its author's instance deletes a comment")
        check_can_delete(record.comment.author, actor, "a comment")

        async def remove() -> None:
            if not await self.comments.mark_comment_deleted(comment_id):
                not_found("comment", comment_id)

        comment = record.comment
        others = (comment.audience, *comment.cc)
        return await self._delete(actor, comment_id, "Note", others, remove)

    async def _delete(
        self,
        actor: str,
        object_id: str,
        former_type: str,
        others: tuple[str | None, ...],
        remove: Removal,
    ) -> Deletion:
        """Publish the ``Delete`` to everyone the object reached; remove it, keep a Tombstone."""
        now = self.now()
        to, cc, recipients = self.public_addressing(actor, *others)
        deletion = Deletion(
            id=self.new_id("activities"), actor=actor, object_id=object_id,
            former_type=former_type, deleted=now, published=now, to=to, cc=cc,
        )  # fmt: skip

        async def write(_db: Any) -> None:
            await remove()
            await self.domain.add_tombstone(Tombstone(object_id, former_type, now))

        await self.publisher.publish(
            deletion_to_ap(deletion), actor=actor, public=True, recipients=recipients, write=write
        )
        return deletion
