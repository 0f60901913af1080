"""Inbound acts from other instances, applied with the same rules as local ones (DESIGN.md §6).

The inbox handlers (HC) validate and parse each activity, then call these with dataclasses.
A refusal raises ``RuleViolation`` (or ``Problem`` for an unknown target) and changes nothing;
the handler records the rule. Remote HTML is re-sanitised before it is stored. A public act
on something the local Group owns is Announced by the Group (FEP-1b12) in the same
transaction that stores it. Acts are judged at their ``published`` time when it is recent.
Answers, edits and deletions by their owners are in :mod:`federation.instance.inbound_changes`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from activitypub import as2
from activitypub.errors import Problem
from activitypub.fetch import FetchError
from federation.instance.acts import ActsBase, refuse
from federation.instance.comments import CommentActs
from federation.instance.content import sanitise_html
from federation.instance.inbound_changes import ChangeActs, clean_text
from federation.instance.processes import ProcessActs
from federation.instance.rules import (
    Resident,
    check_can_comment,
    check_can_debate,
    check_can_propose,
    check_comment_depth,
    check_territory_eligible,
)
from federation.instance.support_rules import check_can_support, check_can_withdraw_support
from federation.instance.supports import SupportActs
from federation.model import (
    Comment,
    CommentVote,
    Debate,
    Process,
    Proposal,
    ProposalState,
    Support,
    Territory,
    UndoCommentVote,
    UndoSupport,
)
from federation.store.sqlite import transaction
from federation.validation import shape_of
from federation.vocab import VocabError
from federation.vocab.actors import resident_territory_from_ap
from federation.vocab.comment import comment_to_ap
from federation.vocab.comment_vote import comment_vote_to_ap
from federation.vocab.debate import debate_to_ap
from federation.vocab.proposal import proposal_to_ap
from federation.vocab.support import support_to_ap


class InboundActs(ChangeActs, SupportActs, CommentActs, ProcessActs, ActsBase):
    """What arrives from other instances: proposals, debates, comments, supports, votes, …"""

    async def resident_territory(self, actor_id: str) -> Territory | None:
        """The verified territory a remote actor's document names (``verifiedResidentOf``)."""
        federation = self._federation()
        if federation is None or federation.actors is None:
            raise Problem(503, "Unavailable", "the server is not running", reason="no_network")
        try:
            document = await federation.actors.actor(actor_id)
        except FetchError as exc:
            raise Problem(
                503, "Unavailable", f"cannot fetch {actor_id}: {exc}", reason="actor_unreachable"
            ) from exc
        try:
            return resident_territory_from_ap(document)
        except VocabError:
            return None  # a malformed claim is no claim

    # --- proposals and debates ----------------------------------------------------------------

    async def receive_proposal(self, proposal: Proposal, activity: Mapping[str, Any]) -> None:
        """A remote resident proposes into a LOCAL process (eligible territory, open phase)."""
        if await self.proposals.get_proposal(proposal.id) is not None:
            return  # the same proposal by another route
        process = await self.process_record(proposal.process)
        if not process.local:
            await self.remember_remote_object(proposal)
            return
        if proposal.audience != self.group_id:
            refuse("wrong_audience", f"audience must be {self.group_id}, the process owner")
        territory = await self.resident_territory(proposal.author)
        check_territory_eligible(process.process, Resident(proposal.author, territory))
        check_can_propose(process.process, self.judged_at(proposal.published))
        # Only the owning Group answers: a new proposal starts unanswered, whatever it says.
        clean = dataclasses.replace(
            proposal, content_html=sanitise_html(proposal.content_html),
            state=ProposalState.NOT_ANSWERED, answer=None, answered_at=None, support_count=0,
        )  # fmt: skip
        doc = proposal_to_ap(clean)

        async def write(_db: Any) -> None:
            await self.proposals.put_proposal(clean, doc, local=False)

        await self.commit_received(activity, write, announce=True)

    async def receive_debate(self, debate: Debate, activity: Mapping[str, Any]) -> None:
        """A remote debate addressed to our Group (phase rules apply), or a cached one."""
        if await self.domain.get_debate(debate.id) is not None:
            return
        process = await self.domain.get_process(debate.process) if debate.process else None
        ours = debate.audience == self.group_id and (process is None or process.local)
        if ours:
            check_can_debate(process.process if process else None, self.judged_at(debate.published))
        clean = dataclasses.replace(
            debate, content_html=sanitise_html(debate.content_html),
            conclusions=clean_text(debate.conclusions),
        )  # fmt: skip
        doc = debate_to_ap(clean)

        async def write(_db: Any) -> None:
            await self.domain.put_debate(clean, doc, local=False)

        await self.commit_received(activity, write, announce=ours)

    # --- comments and their votes -------------------------------------------------------------

    async def receive_comment(
        self, comment: Comment, activity: Mapping[str, Any], *, external: bool
    ) -> None:
        """A remote comment (``external``: not from a Barri resident) under something we know."""
        if await self.comments.get_comment(comment.id) is not None:
            return
        parent = await self.parent_of(comment.in_reply_to)
        check_comment_depth(parent.depth)
        ours = parent.audience == self.group_id
        if ours:
            at = self.judged_at(comment.published)
            check_can_comment(parent.process, at, debate=parent.debate)
        clean = dataclasses.replace(
            comment, content_html=sanitise_html(comment.content_html), depth=parent.depth,
            context=comment.context or parent.context,
        )  # fmt: skip
        doc = comment_to_ap(clean)

        async def write(_db: Any) -> None:
            await self.comments.put_comment(
                clean, doc, root_id=parent.root_id, local=False, external=external
            )

        await self.commit_received(activity, write, announce=ours)

    async def receive_comment_vote(self, vote: CommentVote, activity: Mapping[str, Any]) -> None:
        """A remote up/down vote on a comment known here; a later vote replaces an earlier one."""
        record = await self.comments.get_comment(vote.comment)
        if record is None or record.deleted:
            raise Problem(404, "Not Found", f"no comment {vote.comment}", reason="not_found")
        if await self.comments.get_vote(vote.id) is not None:
            return
        doc = comment_vote_to_ap(vote)

        async def write(_db: Any) -> None:
            await self.comments.add_vote(vote, doc)

        ours = (record.comment.audience or "") == self.group_id
        await self.commit_received(activity, write, announce=ours)

    async def receive_undo_comment_vote(
        self, undo: UndoCommentVote, activity: Mapping[str, Any]
    ) -> None:
        """A remote voter retracts a vote (only their own)."""
        vote_id = undo.vote if isinstance(undo.vote, str) else undo.vote.id
        record = await self.comments.get_vote(vote_id)
        if record is None or not record.active:
            return
        if record.actor != undo.actor:
            refuse("not_author", "only the voter may retract a vote")
        async with transaction(self.db):
            await self.comments.retract_vote(vote_id, undo.id)

    # --- supports -----------------------------------------------------------------------------

    async def receive_support(
        self, support: Support, activity: Mapping[str, Any], *, resident: Resident
    ) -> None:
        """A remote resident supports a proposal of a LOCAL process: all support rules apply."""
        if await self.proposals.get_support(support.id) is not None:
            return
        record = await self.proposal_record(support.proposal)
        process = await self.process_record(record.proposal.process)
        if not process.local:
            refuse("not_owner", "supports are counted by the process's owning instance")
        # The signed Like as received, so the support log serves its proof (validated already).
        doc = dict(activity) if "proof" in activity else support_to_ap(support)
        early_undo = await self.proposals.undone_by(support.id)
        at = self.judged_at(support.published)
        if early_undo is None:
            check_can_support(
                resident,
                await self.support_context(
                    support.actor, support.proposal, process.process, at, remote=True
                ),
            )
        async with transaction(self.db):
            if early_undo is not None and early_undo[1] == support.actor:
                # An Undo that arrived first still wins (DESIGN.md §7.4): stored, never counted.
                await self.proposals.add_support(
                    support, doc, process_id=process.process.id, local=False,
                    state="withdrawn", undo_id=early_undo[0],
                )  # fmt: skip
                undo_doc = await self.proposals.undone_document(support.id)
                if undo_doc is not None:
                    await self.proposals.log_support_item(
                        process.process.id, early_undo[0], "undo", undo_doc
                    )
                return
            ctx = await self.support_context(
                support.actor, support.proposal, process.process, at, remote=True
            )
            check_can_support(resident, ctx)
            await self.record_support(support, doc, process.process, local=False)

    async def receive_undo_support(self, undo: UndoSupport, activity: Mapping[str, Any]) -> None:
        """A remote resident withdraws a support; an Undo before its Like is remembered."""
        like_id = undo.support if isinstance(undo.support, str) else undo.support.id
        record = await self.proposals.get_support(like_id)
        if record is None:
            async with transaction(self.db):
                await self.proposals.remember_undone(
                    like_id, undo.id, undo.actor, time.time(), activity
                )
            return
        if record.actor != undo.actor:
            refuse("not_author", "only the supporter may withdraw a support")
        if record.state == "withdrawn":
            return
        process = (await self.process_record(record.process_id)).process
        at = self.judged_at(undo.published)
        check_can_withdraw_support(Resident(undo.actor), process, at, True)
        async with transaction(self.db):
            await self.settle_withdrawal(record, undo.id, process, activity)

    async def remember_remote_object(self, obj: Any, *, external: bool = False) -> None:
        """Cache a remote process, proposal, debate or comment we show (no rules: not ours)."""
        if isinstance(obj, Process):
            await self.cache_remote_process(obj)
            return
        async with transaction(self.db):
            await self._remember(obj, external)

    async def _remember(self, obj: Any, external: bool) -> None:
        if isinstance(obj, Proposal):
            known = await self.proposals.get_proposal(obj.id)
            if known is None or not known.local:
                clean = dataclasses.replace(obj, content_html=sanitise_html(obj.content_html))
                await self.proposals.put_proposal(clean, proposal_to_ap(clean), local=False)
        elif isinstance(obj, Debate):
            clean_debate = dataclasses.replace(obj, content_html=sanitise_html(obj.content_html))
            await self.domain.put_debate(clean_debate, debate_to_ap(clean_debate), local=False)
        elif isinstance(obj, Comment):
            parent = await self.comments.get_comment(obj.in_reply_to)
            root = parent.root_id if parent is not None else obj.in_reply_to
            clean_comment = dataclasses.replace(obj, content_html=sanitise_html(obj.content_html))
            await self.comments.put_comment(
                clean_comment, comment_to_ap(clean_comment), root_id=root, local=False,
                external=external,
            )  # fmt: skip


def admits_official_answer(activity: Mapping[str, Any], actor: str) -> bool:
    """The one non-owner Update the inbox lets through (vocab-spec "official-answer").

    The Group owning a proposal's process (the proposal's ``audience``) may ``Update`` it with
    an answer; FEP-fe34 leaves who may update what to the application. Only the shape is
    admitted here: :meth:`InboundActs.receive_answer` re-checks the Group against the stored
    proposal, and refuses everything else.
    """
    if not as2.has_type(activity, "Update"):
        return False
    inner = as2.embedded(activity, "object")
    if inner is None or actor not in as2.ids(inner, "audience"):
        return False
    return shape_of(activity) == "official-answer"


__all__ = ["InboundActs", "admits_official_answer"]
