"""Proposals and supports over aiosqlite (Decidim proposals and ``ProposalVote``; issue 4).

A support row is ``temporary`` or ``final`` (Decidim ``minimum_votes_per_user``) while active,
``withdrawn`` once undone; ``proposals.final_supports`` caches the count of final ones and is
recomputed by :meth:`ProposalStore.refresh_counts` whenever states move. Write methods run in
the caller's ``transaction(db)``; reads take no lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from activitypub.collections import PageRequest, PageResult
from federation.model import Proposal, ProposalState, Support
from federation.store import supportlog
from federation.store.domain import dump, fetch_int, fetch_one, load
from federation.store.paging import page_rows
from federation.vocab.context import format_datetime
from federation.vocab.proposal import proposal_from_ap

ACTIVE = ("temporary", "final")


@dataclass(frozen=True)
class ProposalRecord:
    """A stored proposal; ``proposal.support_count`` is the final supports known here."""

    proposal: Proposal
    local: bool
    final_supports: int
    document: dict[str, Any]


@dataclass(frozen=True)
class SupportRecord:
    """A stored support (the ``Like``) and its Decidim state."""

    support_id: str
    actor: str
    proposal_id: str
    process_id: str
    state: str
    local: bool
    undo_id: str | None
    document: dict[str, Any]


@dataclass(frozen=True)
class SupportFacts:
    """What the support rules need about a proposal and a resident, read together."""

    proposal_state: ProposalState
    final_supports: int
    resident_active_supports: int
    already_supported: bool
    state_since: datetime | None = None  # the proposal's last update (answer, withdrawal)


_PROPOSAL_COLUMNS = "seq, document, local, final_supports"
_SUPPORT_COLUMNS = "id, actor, proposal_id, process_id, state, local, undo_id, document"


def _proposal(row: Sequence[Any]) -> ProposalRecord:
    document = load(row[1])
    count = int(row[3])
    # The count is ours (final supports known here), whatever the stored document said.
    proposal = dataclasses.replace(proposal_from_ap(document), support_count=count)
    return ProposalRecord(proposal, bool(row[2]), count, document)


def _support(row: Sequence[Any]) -> SupportRecord:
    return SupportRecord(
        support_id=row[0],
        actor=row[1],
        proposal_id=row[2],
        process_id=row[3],
        state=row[4],
        local=bool(row[5]),
        undo_id=row[6],
        document=load(row[7]),
    )


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class ProposalStore:
    """SQL for proposals, supports and early Undos on the shared connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    # --- proposals ----------------------------------------------------------------------------

    async def put_proposal(
        self, proposal: Proposal, document: Mapping[str, Any], *, local: bool
    ) -> None:
        """Insert or replace a proposal by id (in the caller's transaction); counts are kept."""
        await self.db.execute(
            "INSERT INTO proposals (id, process_id, author, local, state, document, published,"
            " updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
            " document = excluded.document, updated = excluded.updated",
            (
                proposal.id,
                proposal.process,
                proposal.author,
                int(local),
                proposal.state.value,
                dump(document),
                format_datetime(proposal.published),
                format_datetime(proposal.updated) if proposal.updated else None,
            ),
        )

    async def get_proposal(self, proposal_id: str) -> ProposalRecord | None:
        """A proposal by id, its support count filled from the final supports known here."""
        row = await fetch_one(
            self.db,
            f"SELECT {_PROPOSAL_COLUMNS} FROM proposals WHERE id = ?",  # noqa: S608
            (proposal_id,),
        )
        return None if row is None else _proposal(row)

    async def process_of(self, proposal_id: str) -> str | None:
        """The process a proposal belongs to, without reading its document; None if unknown."""
        row = await fetch_one(
            self.db, "SELECT process_id FROM proposals WHERE id = ?", (proposal_id,)
        )
        return None if row is None else str(row[0])

    async def page_proposals(self, process_id: str, page: PageRequest) -> PageResult:
        """A process's proposals, newest first; items are ``Proposal``s."""
        rows, after, before = await page_rows(
            self.db, table="proposals", columns=_PROPOSAL_COLUMNS, where="process_id = ?",
            params=(process_id,), page=page,
        )  # fmt: skip
        return PageResult([_proposal(row).proposal for row in rows], after, before)

    async def count_proposals(self, process_id: str) -> int:
        """How many proposals a process has here."""
        return await fetch_int(
            self.db, "SELECT COUNT(*) FROM proposals WHERE process_id = ?", (process_id,)
        )

    async def delete_proposal(self, proposal_id: str) -> bool:
        """Remove a proposal and its supports (its Tombstone is added separately)."""
        await self.db.execute("DELETE FROM supports WHERE proposal_id = ?", (proposal_id,))
        cursor = await self.db.execute("DELETE FROM proposals WHERE id = ?", (proposal_id,))
        return cursor.rowcount == 1

    # --- supports -----------------------------------------------------------------------------

    async def get_support(self, support_id: str) -> SupportRecord | None:
        """A support by its Like id, whatever its state."""
        row = await fetch_one(
            self.db,
            f"SELECT {_SUPPORT_COLUMNS} FROM supports WHERE id = ?",  # noqa: S608
            (support_id,),
        )
        return None if row is None else _support(row)

    async def active_support(self, actor: str, proposal_id: str) -> SupportRecord | None:
        """The actor's one active support of a proposal, if any."""
        row = await fetch_one(
            self.db,
            f"SELECT {_SUPPORT_COLUMNS} FROM supports"  # noqa: S608
            " WHERE actor = ? AND proposal_id = ? AND state != 'withdrawn'",
            (actor, proposal_id),
        )
        return None if row is None else _support(row)

    async def support_facts(
        self, actor: str, proposal_id: str, process_id: str
    ) -> SupportFacts | None:
        """What the support rules read, in one query; None when the proposal is unknown."""
        row = await fetch_one(
            self.db,
            "SELECT p.state,"
            " (SELECT COUNT(*) FROM supports s WHERE s.proposal_id = p.id AND s.state = 'final'),"
            " (SELECT COUNT(*) FROM supports s WHERE s.actor = ?1 AND s.process_id = ?3"
            " AND s.state != 'withdrawn'),"
            " EXISTS (SELECT 1 FROM supports s WHERE s.actor = ?1 AND s.proposal_id = p.id"
            " AND s.state != 'withdrawn'), p.updated"
            " FROM proposals p WHERE p.id = ?2",
            (actor, proposal_id, process_id),
        )
        if row is None:
            return None
        since = datetime.fromisoformat(row[4]) if row[4] else None
        return SupportFacts(ProposalState(row[0]), int(row[1]), int(row[2]), bool(row[3]), since)

    async def count_active(self, actor: str, process_id: str) -> int:
        """How many active supports the actor has in a process."""
        return await fetch_int(
            self.db,
            "SELECT COUNT(*) FROM supports WHERE actor = ? AND process_id = ?"
            " AND state != 'withdrawn'",
            (actor, process_id),
        )

    async def settle_states(self, actor: str, process_id: str, state: str) -> list[str]:
        """Put every active support of the actor in the process in ``state``, in one statement;
        returns the proposal ids whose rows moved."""
        rows = await self.db.execute_fetchall(
            "UPDATE supports SET state = ?1 WHERE actor = ?2 AND process_id = ?3"
            " AND state != 'withdrawn' AND state != ?1 RETURNING proposal_id",
            (state, actor, process_id),
        )
        return [str(row[0]) for row in rows]

    async def active_support_ids(self, actor: str, process_id: str) -> list[str]:
        """The actor's active supports in a process, oldest first (Like ids)."""
        rows = await self.db.execute_fetchall(
            "SELECT id FROM supports WHERE actor = ? AND process_id = ?"
            " AND state != 'withdrawn' ORDER BY seq",
            (actor, process_id),
        )
        return [str(row[0]) for row in rows]

    async def add_support(
        self,
        support: Support,
        document: Mapping[str, Any],
        *,
        process_id: str,
        local: bool,
        state: str,
        undo_id: str | None = None,
    ) -> None:
        """Insert a support in ``state`` (``withdrawn`` with ``undo_id`` for an early Undo)."""
        await self.db.execute(
            "INSERT INTO supports (id, actor, proposal_id, process_id, local, published, state,"
            " undo_id, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                support.id,
                support.actor,
                support.proposal,
                process_id,
                int(local),
                format_datetime(support.published),
                state,
                undo_id,
                dump(document),
            ),
        )
        await self.log_support_item(process_id, support.id, "like", document)

    async def withdraw_support(
        self, support_id: str, undo_id: str, undo: Mapping[str, Any] | None = None
    ) -> bool:
        """Mark an active support withdrawn by ``undo_id`` (logging the signed ``undo``);
        False when it was not active."""
        rows = await self.db.execute_fetchall(
            "UPDATE supports SET state = 'withdrawn', undo_id = ?"
            " WHERE id = ? AND state != 'withdrawn' RETURNING process_id",
            (undo_id, support_id),
        )
        found = list(rows)
        if found and undo is not None:
            await self.log_support_item(str(found[0][0]), undo_id, "undo", undo)
        return bool(found)

    async def log_support_item(
        self, process_id: str, item_id: str, kind: str, document: Mapping[str, Any]
    ) -> None:
        """Append a signed Like or Undo to the support log (once per id)."""
        await supportlog.log_item(self.db, process_id, item_id, kind, document)

    async def set_support_states(self, states: Mapping[str, str]) -> list[str]:
        """Apply ``{like id: temporary|final}``; returns the proposal ids whose rows moved."""
        moved: list[str] = []
        for support_id, state in states.items():
            rows = await self.db.execute_fetchall(
                "UPDATE supports SET state = ? WHERE id = ? AND state != ?"
                " AND state != 'withdrawn' RETURNING proposal_id",
                (state, support_id, state),
            )
            moved.extend(str(row[0]) for row in rows)
        return moved

    async def refresh_counts(self, proposal_ids: Iterable[str]) -> None:
        """Recompute ``final_supports`` of these proposals from their final support rows."""
        ids = sorted(set(proposal_ids))
        if not ids:
            return
        await self.db.execute(
            "UPDATE proposals SET final_supports = (SELECT COUNT(*) FROM supports s"  # noqa: S608
            " WHERE s.proposal_id = proposals.id AND s.state = 'final')"
            f" WHERE id IN ({_marks(len(ids))})",
            ids,
        )

    async def final_supports(self, proposal_id: str) -> int:
        """The final supports of a proposal known here."""
        return await fetch_int(
            self.db,
            "SELECT COUNT(*) FROM supports WHERE proposal_id = ? AND state = 'final'",
            (proposal_id,),
        )

    async def page_support_ids(self, proposal_id: str, page: PageRequest) -> PageResult:
        """Like ids of a proposal's active supports, newest first (the private collection)."""
        rows, after, before = await page_rows(
            self.db, table="supports", columns="seq, id",
            where="proposal_id = ? AND state != 'withdrawn'", params=(proposal_id,), page=page,
        )  # fmt: skip
        return PageResult([str(row[1]) for row in rows], after, before)

    async def page_process_support_ids(self, process_id: str, page: PageRequest) -> PageResult:
        """Like ids of every final support in a process, local and received, newest first."""
        rows, after, before = await page_rows(
            self.db, table="supports", columns="seq, id",
            where="process_id = ? AND state = 'final'", params=(process_id,), page=page,
        )  # fmt: skip
        return PageResult([str(row[1]) for row in rows], after, before)

    async def count_process_supports(self, process_id: str) -> int:
        """How many final supports a process has here (what its owner counts)."""
        return await fetch_int(
            self.db,
            "SELECT COUNT(*) FROM supports WHERE process_id = ? AND state = 'final'",
            (process_id,),
        )

    # --- Undo before Like ---------------------------------------------------------------------

    async def remember_undone(
        self,
        like_id: str,
        undo_id: str,
        actor: str,
        now: float,
        document: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep an Undo whose Like has not arrived: that Like is withdrawn on arrival (§7.4)."""
        await self.db.execute(
            "INSERT INTO undone (like_id, undo_id, actor, received_at, document)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (like_id) DO NOTHING",
            (like_id, undo_id, actor, now, None if document is None else dump(document)),
        )

    async def undone_by(self, like_id: str) -> tuple[str, str] | None:
        """``(undo id, actor)`` of an Undo that arrived before the Like, or None."""
        row = await fetch_one(
            self.db, "SELECT undo_id, actor FROM undone WHERE like_id = ?", (like_id,)
        )
        return None if row is None else (str(row[0]), str(row[1]))

    async def undone_document(self, like_id: str) -> dict[str, Any] | None:
        """The signed Undo that arrived before ``like_id``, when it was kept."""
        row = await fetch_one(self.db, "SELECT document FROM undone WHERE like_id = ?", (like_id,))
        return None if row is None or row[0] is None else load(row[0])


__all__ = ["ACTIVE", "ProposalRecord", "ProposalStore", "SupportFacts", "SupportRecord"]
