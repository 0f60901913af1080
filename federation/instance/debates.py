"""Debates: opened by a resident (in a process or not), closed by its author with conclusions."""

from __future__ import annotations

import dataclasses
from typing import Any

from activitypub.collections import PageRequest, PageResult
from federation.instance.acts import ActsBase, not_found, refuse
from federation.instance.content import CONCLUSIONS_MAX
from federation.instance.ports import User
from federation.instance.rules import (
    check_can_close_debate,
    check_can_debate,
    check_can_edit_debate,
)
from federation.model import Debate, LangText
from federation.store.domain import DebateRecord
from federation.store.paging import first_page
from federation.vocab.debate import debate_to_ap


class DebateActs(ActsBase):
    """Debates: create, edit, close, read."""

    async def create_debate(
        self, author: User, process_id: str | None, *, name: str, body_markdown: str
    ) -> Debate:
        """A resident's debate, published as their ``Create`` (and Announced by the Group)."""
        process = None if process_id is None else (await self.process_record(process_id)).process
        check_can_debate(process, self.now())
        title = self.clean_name(name)
        source, html = self.render("body", body_markdown)
        actor, debate_id = self.actor_id(author), self.new_id("debates")
        audience = process.owner if process is not None else self.group_id
        to, cc, recipients = self.public_addressing(actor, audience)
        debate = Debate(
            id=debate_id,
            author=actor,
            audience=audience,
            process=process_id,
            name=LangText(title),
            content_html=html,
            source_markdown=source,
            published=self.now(),
            url=debate_id,
            replies=f"{debate_id}/replies",
            context=f"{debate_id}/context",
            to=to,
            cc=cc,
        )
        await self._publish_debate("Create", debate, recipients)
        return debate

    async def _publish_debate(self, kind: str, debate: Debate, recipients: list[str]) -> None:
        doc = debate_to_ap(debate)
        activity = self.activity(kind, debate.author, doc, debate.to, debate.cc)

        async def write(_db: Any) -> None:
            await self.domain.put_debate(debate, doc, local=True)

        await self.publisher.publish(
            activity, actor=debate.author, public=True, recipients=recipients, write=write
        )

    async def debate_record(self, debate_id: str) -> DebateRecord:
        """A known debate or 404."""
        record = await self.domain.get_debate(debate_id)
        if record is None:
            not_found("debate", debate_id)
        return record

    async def edit_debate(
        self, author: User, debate_id: str, *, name: str, body_markdown: str
    ) -> Debate:
        """The author edits an open debate's title and text, published as their ``Update``."""
        record = await self.debate_record(debate_id)
        if not record.local:
            refuse("not_author", "only the author may edit a debate")
        check_can_edit_debate(record.debate, self.actor_id(author))
        title = self.clean_name(name)
        source, html = self.render("body", body_markdown)
        edited = dataclasses.replace(
            record.debate,
            name=LangText(title),
            content_html=html,
            source_markdown=source,
            updated=self.now(),
        )
        _, _, recipients = self.public_addressing(edited.author, edited.audience)
        await self._publish_debate("Update", edited, recipients)
        return edited

    async def close_debate(self, author: User, debate_id: str, *, conclusions: str) -> Debate:
        """The author closes the debate with conclusions (markdown), as an ``Update``."""
        record = await self.debate_record(debate_id)
        if not record.local:
            refuse("not_author", "only the author may close a debate")
        check_can_close_debate(record.debate, self.actor_id(author), conclusions)
        _, html = self.render("conclusions", conclusions, CONCLUSIONS_MAX)
        now = self.now()
        closed = dataclasses.replace(
            record.debate, closed_at=now, conclusions=LangText(html), updated=now
        )
        _, _, recipients = self.public_addressing(closed.author, closed.audience)
        await self._publish_debate("Update", closed, recipients)
        return closed

    async def get_debate(self, debate_id: str) -> Debate | None:
        """A debate known here."""
        record = await self.domain.get_debate(debate_id)
        return None if record is None else record.debate

    async def list_debates(
        self, process_id: str | None, *, page: PageRequest | None = None
    ) -> PageResult:
        """A process's debates (None: those outside any process), newest first (items: Debate)."""
        return await self.domain.page_debates(process_id, page or first_page())
