"""Supports (Decidim's proposal votes): give, withdraw, count, with the minimum-supports rule.

A support is a ``Like`` addressed to the proposal's owning Group and the aggregators the
instance reports to, never to Public and never Announced (DESIGN.md §6). Decidim's
``minimum_votes_per_user``: a resident's supports in a process are ``temporary`` until they
reach the minimum, then all ``final``; withdrawing below it makes them temporary again. Only
final supports count. The rules are checked before anything is fetched and again inside the
transaction that writes, so two concurrent supports cannot both slip under a limit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from federation.instance.acts import ActsBase
from federation.instance.ports import User
from federation.instance.rules import (
    SupportContext,
    check_can_support,
    check_can_withdraw_support,
    support_states,
)
from federation.instance.rules import remaining_supports as remaining_for
from federation.model import Process, Support, UndoSupport
from federation.store.proposals import SupportRecord
from federation.vocab.support import support_from_ap, support_to_ap, undo_support_to_ap


class SupportActs(ActsBase):
    """Supports: give, withdraw, read counts."""

    async def support_context(
        self, actor: str, proposal_id: str, process: Process, now: datetime
    ) -> SupportContext:
        """What the support rules need, read from the store (inside or outside a transaction)."""
        record = await self.proposal_record(proposal_id)
        active = await self.proposals.active_support_ids(actor, process.id)
        return SupportContext(
            process=process,
            proposal_state=record.proposal.state,
            proposal_final_supports=await self.proposals.final_supports(proposal_id),
            resident_active_supports=len(active),
            already_supported=await self.proposals.active_support(actor, proposal_id) is not None,
            now=now,
        )

    async def _process_of_proposal(self, proposal_id: str) -> Process:
        record = await self.proposal_record(proposal_id)
        return (await self.process_record(record.proposal.process)).process

    async def support(self, resident: User, proposal_id: str) -> Support:
        """Support a proposal (Decidim's vote rules), published as a private ``Like``."""
        process = await self._process_of_proposal(proposal_id)
        who, now = self.resident(resident), self.now()
        check_can_support(who, await self.support_context(who.actor_id, proposal_id, process, now))
        support = Support(
            id=self.new_id("supports"),
            actor=who.actor_id,
            proposal=proposal_id,
            published=now,
            to=tuple(dict.fromkeys([process.owner, *self.config.report_to])),
        )
        doc = support_to_ap(support)

        async def write(_db: Any) -> None:
            # Checked again under the write lock: the state may have moved since.
            ctx = await self.support_context(who.actor_id, proposal_id, process, now)
            check_can_support(who, ctx)
            await self.record_support(support, doc, process, local=True)

        await self.publisher.publish(
            doc,
            actor=who.actor_id,
            public=False,
            recipients=[process.owner],
            also=self.config.report_to,
            write=write,
            announce=False,
        )
        return support

    async def record_support(
        self, support: Support, doc: dict[str, Any], process: Process, *, local: bool
    ) -> None:
        """Insert an active support and settle its resident's temporary/final states."""
        active = await self.proposals.active_support_ids(support.actor, process.id)
        minimum = process.rules.minimum_supports_per_participant
        states = support_states(minimum, [*active, support.id])
        await self.proposals.add_support(
            support, doc, process_id=process.id, local=local, state=states[support.id]
        )
        moved = await self.proposals.set_support_states(states)
        await self.proposals.refresh_counts([*moved, support.proposal])

    async def withdraw_support(self, resident: User, proposal_id: str) -> UndoSupport:
        """Withdraw the resident's support, published as ``Undo{Like}`` to the same recipients."""
        process = await self._process_of_proposal(proposal_id)
        who, now = self.resident(resident), self.now()
        active = await self.proposals.active_support(who.actor_id, proposal_id)
        check_can_withdraw_support(who, process, now, active is not None)
        assert active is not None  # the check above refused otherwise
        like = support_from_ap(active.document)
        undo = UndoSupport(
            id=self.new_id("activities"), actor=who.actor_id, support=like, published=now,
            to=like.to,
        )  # fmt: skip

        async def write(_db: Any) -> None:
            still = await self.proposals.active_support(who.actor_id, proposal_id)
            check_can_withdraw_support(who, process, now, still is not None)
            await self.settle_withdrawal(active, undo.id, process)

        await self.publisher.publish(
            undo_support_to_ap(undo),
            actor=who.actor_id,
            public=False,
            recipients=[process.owner],
            also=self.config.report_to,
            write=write,
            announce=False,
        )
        return undo

    async def settle_withdrawal(
        self, active: SupportRecord, undo_id: str, process: Process
    ) -> None:
        """Withdraw a support and flip the resident's others back to temporary if below minimum."""
        await self.proposals.withdraw_support(active.support_id, undo_id)
        left = await self.proposals.active_support_ids(active.actor, process.id)
        minimum = process.rules.minimum_supports_per_participant
        moved = await self.proposals.set_support_states(support_states(minimum, left))
        await self.proposals.refresh_counts([*moved, active.proposal_id])

    async def remaining_supports(self, resident: User, process_id: str) -> int | None:
        """Supports the resident may still give in a process; None = unlimited."""
        process = (await self.process_record(process_id)).process
        active = await self.proposals.active_support_ids(self.actor_id(resident), process_id)
        return remaining_for(process, len(active))

    async def has_supported(self, resident: User, proposal_id: str) -> bool:
        """Whether the resident actively supports the proposal (temporary or final)."""
        return await self.proposals.active_support(self.actor_id(resident), proposal_id) is not None

    async def support_count(self, proposal_id: str) -> int:
        """Final supports of the proposal known here (Decidim counts final votes only)."""
        return await self.proposals.final_supports(proposal_id)
