"""Supports (Decidim's proposal votes): give, withdraw, count, with the minimum-supports rule.

A support is a ``Like`` addressed to the proposal's owning Group and the aggregators the
instance reports to, never to Public and never Announced (DESIGN.md §6). Decidim's
``minimum_votes_per_user``: a resident's supports in a process are ``temporary`` until they
reach the minimum, then all ``final``; withdrawing below it makes them temporary again. Only
final supports count. The rules are checked before anything is fetched and again inside the
transaction that writes, so two concurrent supports cannot both slip under a limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from federation.instance.acts import ActsBase, invalid, not_found
from federation.instance.ports import User
from federation.instance.support_rules import (
    SupportContext,
    check_can_support,
    check_can_withdraw_support,
    support_state,
)
from federation.instance.support_rules import remaining_supports as remaining_for
from federation.model import Process, Support, UndoSupport
from federation.store.proposals import SupportRecord
from federation.vocab.support import (
    support_from_ap,
    support_to_ap,
    undo_support_from_ap,
    undo_support_to_ap,
)


class SupportActs(ActsBase):
    """Supports: give, withdraw, read counts."""

    async def support_context(
        self,
        actor: str,
        proposal_id: str,
        process: Process,
        now: datetime,
        *,
        remote: bool = False,
    ) -> SupportContext:
        """What the support rules need, read in one query (inside or outside a transaction).

        ``remote``: a support from another instance, judged at its ``published`` time, so a
        rejection or withdrawal after that time does not bind it; a local one is judged now.
        """
        facts = await self.proposals.support_facts(actor, proposal_id, process.id)
        if facts is None:
            not_found("proposal", proposal_id)
        return SupportContext(
            process=process,
            proposal_state=facts.proposal_state,
            proposal_final_supports=facts.final_supports,
            resident_active_supports=facts.resident_active_supports,
            already_supported=facts.already_supported,
            now=now,
            proposal_state_since=facts.state_since if remote else None,
        )

    async def _process_of_proposal(self, proposal_id: str) -> Process:
        process_id = await self.proposals.process_of(proposal_id)
        if process_id is None:
            not_found("proposal", proposal_id)
        return (await self.process_record(process_id)).process

    async def support(self, resident: User, proposal_id: str) -> Support:
        """Support a proposal (Decidim's vote rules), published as a private ``Like``."""
        return (await self.support_published(resident, proposal_id))[0]

    async def support_published(
        self, resident: User, proposal_id: str
    ) -> tuple[Support, dict[str, Any]]:
        """:meth:`support`, and the ``Like`` as proved, stored and queued (for a C2S answer)."""
        process = await self._process_of_proposal(proposal_id)
        support = Support(
            id=self.new_id("supports"),
            actor=self.actor_id(resident),
            proposal=proposal_id,
            published=self.now(),
            to=tuple(dict.fromkeys([process.owner, *self.config.report_to])),
        )
        return support, await self._give(resident, support, support_to_ap(support), process)

    async def support_signed(self, resident: User, signed: Mapping[str, Any]) -> Support:
        """A support whose ``Like`` the resident's own client proved (DESIGN.md §6 "C2S").

        The same rules as :meth:`support`; the document is stored and delivered exactly as
        signed (the caller verified its proof and its id). The id, time and addressing are
        the client's, so the caller also checks them against the rules of the C2S API.
        """
        support = support_from_ap(signed)
        if support.actor != self.actor_id(resident):
            invalid("actor", "a resident supports in their own name only", status=403)
        process = await self._process_of_proposal(support.proposal)
        await self._give(resident, support, dict(signed), process)
        return support

    async def _give(
        self, resident: User, support: Support, doc: dict[str, Any], process: Process
    ) -> dict[str, Any]:
        who, now = self.resident(resident), self.now()
        check_can_support(
            who, await self.support_context(who.actor_id, support.proposal, process, now)
        )
        # Proved before it is stored, so the support log serves the signed Like.
        proved = await self.publisher.prove(doc, who.actor_id)

        async def write(_db: Any) -> None:
            # Checked again under the write lock: the state may have moved since.
            ctx = await self.support_context(who.actor_id, support.proposal, process, now)
            check_can_support(who, ctx)
            await self.record_support(
                support, proved, process, local=True, active=ctx.resident_active_supports
            )

        return await self.publisher.publish(
            proved,
            actor=who.actor_id,
            public=False,
            recipients=[process.owner],
            also=self.config.report_to,
            write=write,
            announce=False,
        )

    async def record_support(
        self,
        support: Support,
        doc: dict[str, Any],
        process: Process,
        *,
        local: bool,
        active: int | None = None,
    ) -> None:
        """Insert an active support and settle its resident's temporary/final states.

        ``active``: the resident's active supports in the process before this one, when the
        caller read it in this transaction already.
        """
        if active is None:
            active = await self.proposals.count_active(support.actor, process.id)
        minimum = process.rules.minimum_supports_per_participant
        state = support_state(minimum, active + 1)
        await self.proposals.add_support(
            support, doc, process_id=process.id, local=local, state=state
        )
        moved = await self.proposals.settle_states(support.actor, process.id, state)
        await self.proposals.refresh_counts([*moved, support.proposal])

    async def withdraw_support(self, resident: User, proposal_id: str) -> UndoSupport:
        """Withdraw the resident's support, published as ``Undo{Like}`` to the same recipients."""
        return (await self.withdraw_published(resident, proposal_id))[0]

    async def withdraw_published(
        self, resident: User, proposal_id: str
    ) -> tuple[UndoSupport, dict[str, Any]]:
        """:meth:`withdraw_support`, and the ``Undo`` as proved, stored and queued."""
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
        stored = await self._withdraw(resident, active, process, undo.id, undo_support_to_ap(undo))
        return undo, stored

    async def withdraw_signed(self, resident: User, signed: Mapping[str, Any]) -> UndoSupport:
        """A withdrawal whose ``Undo{Like}`` the resident's client proved: kept as signed."""
        undo = undo_support_from_ap(signed)
        like_id = undo.support if isinstance(undo.support, str) else undo.support.id
        record = await self.proposals.get_support(like_id)
        if record is None or undo.actor != self.actor_id(resident):
            not_found("support of yours", like_id)
        process = (await self.process_record(record.process_id)).process
        who = self.resident(resident)
        active = await self.proposals.active_support(who.actor_id, record.proposal_id)
        is_active = active is not None and active.support_id == like_id
        check_can_withdraw_support(who, process, self.now(), is_active)
        assert active is not None  # the check above refused otherwise
        await self._withdraw(resident, active, process, undo.id, dict(signed))
        return undo

    async def _withdraw(
        self,
        resident: User,
        active: SupportRecord,
        process: Process,
        undo_id: str,
        doc: dict[str, Any],
    ) -> dict[str, Any]:
        who, now = self.resident(resident), self.now()
        proved = await self.publisher.prove(doc, who.actor_id)

        async def write(_db: Any) -> None:
            still = await self.proposals.active_support(who.actor_id, active.proposal_id)
            is_active = still is not None and still.support_id == active.support_id
            check_can_withdraw_support(who, process, now, is_active)
            await self.settle_withdrawal(active, undo_id, process, proved)

        return await self.publisher.publish(
            proved,
            actor=who.actor_id,
            public=False,
            recipients=[process.owner],
            also=self.config.report_to,
            write=write,
            announce=False,
        )

    async def settle_withdrawal(
        self,
        active: SupportRecord,
        undo_id: str,
        process: Process,
        undo: Mapping[str, Any] | None = None,
    ) -> None:
        """Withdraw a support and flip the resident's others back to temporary if below minimum."""
        await self.proposals.withdraw_support(active.support_id, undo_id, undo)
        left = await self.proposals.count_active(active.actor, process.id)
        minimum = process.rules.minimum_supports_per_participant
        state = support_state(minimum, left)
        moved = await self.proposals.settle_states(active.actor, process.id, state)
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
