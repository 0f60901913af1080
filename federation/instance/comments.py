"""Comments (threaded to depth 3, with alignment) and up/down votes on them (Decidim comments).

A comment is a ``Note`` replying to a proposal, a debate or another comment; its ``context``
is the root's conversation (FEP-7888). Votes are Lemmy-style public ``Like``/``Dislike``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from federation.instance.acts import ActsBase, not_found, refuse
from federation.instance.content import COMMENT_SOURCE_MAX
from federation.instance.ports import User
from federation.instance.rules import (
    check_can_comment,
    check_can_edit_comment,
    check_comment_depth,
    check_comment_vote,
    comment_depth,
)
from federation.model import Alignment, Comment, CommentVote, Debate, Process, UndoCommentVote
from federation.store.comments import ThreadEntry
from federation.vocab.comment import comment_to_ap
from federation.vocab.comment_vote import (
    comment_vote_from_ap,
    comment_vote_to_ap,
    undo_comment_vote_to_ap,
)


@dataclass(frozen=True)
class Parent:
    """Where a new comment hangs: its root (proposal or debate) and what the rules need."""

    id: str
    author: str
    root_id: str
    context: str
    audience: str
    depth: int  # of the new comment
    process: Process | None
    debate: Debate | None


class CommentActs(ActsBase):
    """Comments and comment votes."""

    async def parent_of(self, parent_id: str) -> Parent:
        """Resolve a parent id (proposal, debate or comment known here) or 404."""
        comment = await self.comments.get_comment(parent_id)
        if comment is not None:
            root = await self._root(comment.root_id)
            return Parent(
                parent_id, comment.comment.author, root.root_id, root.context, root.audience,
                comment_depth(comment.comment.depth or 1), root.process, root.debate,
            )  # fmt: skip
        return await self._root(parent_id)

    async def _root(self, root_id: str) -> Parent:
        proposal = await self.proposals.get_proposal(root_id)
        if proposal is not None:
            p = proposal.proposal
            process = await self.process_or_none(p.process)
            context = p.context or f"{p.id}/context"
            return Parent(p.id, p.author, p.id, context, p.audience, 1, process, None)
        debate = await self.domain.get_debate(root_id)
        if debate is not None:
            d = debate.debate
            process = await self.process_or_none(d.process)
            context = d.context or f"{d.id}/context"
            return Parent(d.id, d.author, d.id, context, d.audience, 1, process, d)
        not_found("proposal, debate or comment", root_id)

    async def comment(
        self,
        author: User,
        parent_id: str,
        *,
        body_markdown: str,
        alignment: Alignment = Alignment.NEUTRAL,
    ) -> Comment:
        """A resident's comment, published as their ``Create{Note}`` (Announced by the Group)."""
        parent = await self.parent_of(parent_id)
        check_comment_depth(parent.depth)
        check_can_comment(parent.process, self.now(), debate=parent.debate)
        source, html = self.render("body", body_markdown, COMMENT_SOURCE_MAX)
        actor, comment_id = self.actor_id(author), self.new_id("comments")
        to, cc, recipients = self.public_addressing(actor, parent.audience, parent.author)
        comment = Comment(
            id=comment_id,
            author=actor,
            in_reply_to=parent.id,
            context=parent.context,
            content_html=html,
            source_markdown=source,
            alignment=Alignment(alignment),
            depth=parent.depth,
            published=self.now(),
            audience=parent.audience,
            to=to,
            cc=cc,
        )
        await self._publish_comment("Create", comment, parent.root_id, recipients)
        return comment

    async def _publish_comment(
        self, kind: str, comment: Comment, root_id: str, recipients: list[str]
    ) -> None:
        doc = comment_to_ap(comment)
        activity = self.activity(kind, comment.author, doc, comment.to, comment.cc)

        async def write(_db: Any) -> None:
            await self.comments.put_comment(
                comment, doc, root_id=root_id, local=True, external=False
            )

        await self.publisher.publish(
            activity, actor=comment.author, public=True, recipients=recipients, write=write
        )

    async def edit_comment(self, author: User, comment_id: str, *, body_markdown: str) -> Comment:
        """The author edits a comment's text, published as their ``Update{Note}``."""
        record = await self.comments.get_comment(comment_id)
        if record is None or record.deleted:
            not_found("comment", comment_id)
        if not record.local:
            refuse("not_author", "only the author may edit a comment")
        check_can_edit_comment(record.comment.author, self.actor_id(author))
        source, html = self.render("body", body_markdown, COMMENT_SOURCE_MAX)
        edited = replace(
            record.comment, content_html=html, source_markdown=source, updated=self.now()
        )
        # Everyone the comment reached (its root's owner, a remote parent's author) hears of it.
        _, _, recipients = self.public_addressing(edited.author, edited.audience, *edited.cc)
        await self._publish_comment("Update", edited, record.root_id, recipients)
        return edited

    async def vote_comment(self, voter: User, comment_id: str, *, up: bool) -> CommentVote:
        """An up (``Like``) or down (``Dislike``) vote on a comment; one per resident."""
        record = await self.comments.get_comment(comment_id)
        if record is None or record.deleted:
            not_found("comment", comment_id)
        actor = self.actor_id(voter)
        check_comment_vote(await self.comments.active_vote(actor, comment_id) is not None)
        audience = record.comment.audience or self.group_id
        to, cc, recipients = self.public_addressing(actor, audience, record.comment.author)
        vote = CommentVote(
            id=self.new_id("votes"), actor=actor, comment=comment_id, up=up,
            published=self.now(), audience=audience, to=to, cc=cc,
        )  # fmt: skip
        doc = comment_vote_to_ap(vote)

        async def write(_db: Any) -> None:
            check_comment_vote(await self.comments.active_vote(actor, comment_id) is not None)
            await self.comments.add_vote(vote, doc)

        await self.publisher.publish(
            doc, actor=actor, public=True, recipients=recipients, write=write
        )
        return vote

    async def unvote_comment(self, voter: User, comment_id: str) -> None:
        """Retract the resident's vote on a comment, as ``Undo`` of it."""
        actor = self.actor_id(voter)
        active = await self.comments.active_vote(actor, comment_id)
        if active is None:
            refuse("no_vote_to_withdraw", "you have not voted on this comment")
        vote = comment_vote_from_ap(active.document)
        undo = UndoCommentVote(
            id=self.new_id("activities"), actor=actor, vote=vote, published=self.now(),
            audience=vote.audience, to=vote.to, cc=vote.cc,
        )  # fmt: skip
        record = await self.comments.get_comment(comment_id)
        author = record.comment.author if record is not None else None
        _, _, recipients = self.public_addressing(actor, vote.audience, author)

        async def write(_db: Any) -> None:
            if not await self.comments.retract_vote(active.vote_id, undo.id):
                refuse("no_vote_to_withdraw", "you have not voted on this comment")

        await self.publisher.publish(
            undo_comment_vote_to_ap(undo),
            actor=actor,
            public=True,
            recipients=recipients,
            write=write,
        )

    async def get_comment(self, comment_id: str) -> Comment | None:
        """A comment known here (local or remote); None once deleted."""
        record = await self.comments.get_comment(comment_id)
        return None if record is None or record.deleted else record.comment

    async def my_comment_votes(self, voter: User, root_id: str) -> dict[str, bool]:
        """The resident's live votes in a thread: comment id → True (up) or False (down)."""
        return await self.comments.votes_in_thread(self.actor_id(voter), root_id)

    async def thread(self, root_id: str) -> list[ThreadEntry]:
        """The comments under a proposal or debate, depth-first, siblings by ``published``."""
        entries = await self.comments.thread_comments(root_id)
        children: dict[str, list[ThreadEntry]] = defaultdict(list)
        known = {entry.comment.id for entry in entries}
        for entry in sorted(entries, key=lambda e: (e.comment.published, e.comment.id)):
            parent = entry.comment.in_reply_to
            # A reply whose parent was deleted hangs from the root, so it stays visible.
            children[parent if parent in known else root_id].append(entry)
        ordered: list[ThreadEntry] = []
        stack = list(reversed(children.get(root_id, [])))
        while stack:
            entry = stack.pop()
            ordered.append(entry)
            stack.extend(reversed(children.get(entry.comment.id, [])))
        return ordered
