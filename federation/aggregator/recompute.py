"""``barri tally --recompute``: count again from the stored signed JSON and compare (§7).

The running tally is incremental and fed from the columns ingest copied out of each activity.
This recount takes the other road: it re-reads every stored document through the converters
(supports, undos and deletions of supports, proposals, processes, actor documents), builds
the inputs afresh and runs the pure :func:`federation.tally.compute`. The two must agree
exactly, anomalies included; any difference is listed, so a bug in either road (or a tampered
row) cannot go unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from activitypub import as2, jsontext
from federation.aggregator.documents import read_process, read_proposal
from federation.aggregator.merge import deletion_time
from federation.aggregator.state import genuine, roster_of, timestamp
from federation.aggregator.wiring import Aggregator
from federation.model import Territory
from federation.store.aggregator_log import ActivityRow
from federation.tally import (
    ProcessRecord,
    ProposalRecord,
    ResidentRecord,
    SupportEvent,
    TallyInputs,
    TallyResult,
    UndoEvent,
    compute,
)
from federation.tally.records import normal_origin
from federation.vocab import VocabError
from federation.vocab.actors import resident_territory_from_ap
from federation.vocab.deletion import deletion_from_ap
from federation.vocab.support import support_from_ap, undo_support_from_ap


@dataclass(frozen=True)
class Comparison:
    """The incremental result beside the recount, and what differs."""

    incremental: TallyResult
    recomputed: TallyResult
    supports: int
    undos: int
    unreadable: int

    @property
    def agree(self) -> bool:
        """True when both roads give the same totals and the same anomalies."""
        return self.incremental == self.recomputed

    def differences(self, limit: int = 20) -> list[str]:
        """Human-readable differences (at most ``limit``)."""
        found: list[str] = []
        left = {p.process: p for p in self.incremental.processes}
        right = {p.process: p for p in self.recomputed.processes}
        for pid in sorted(left.keys() | right.keys()):
            a, b = left.get(pid), right.get(pid)
            if a != b:
                found.append(f"process {pid}: incremental {_brief(a)} != recomputed {_brief(b)}")
        extra = set(self.incremental.anomalies) ^ set(self.recomputed.anomalies)
        for anomaly in sorted(extra):
            side = "incremental" if anomaly in self.incremental.anomalies else "recomputed"
            found.append(f"anomaly only in {side}: {anomaly}")
        return found[:limit]


def _brief(tally: Any) -> str:
    if tally is None:
        return "(absent)"
    return f"{tally.supports} supports, {tally.participants} participants"


def _resident(document: str) -> Territory | None:
    try:
        found = resident_territory_from_ap(jsontext.loads_stored(document))
    except (VocabError, ValueError):
        return None
    # The tally compares codes only; the name is not part of residency.
    return None if found is None else Territory(found.kind, found.code, None, found.district_code)


async def _records(
    aggregator: Aggregator,
) -> tuple[list[ResidentRecord], list[ProcessRecord], list[ProposalRecord]]:
    log, grace = aggregator.log, aggregator.state.grace
    residents = [
        ResidentRecord(r.actor, _resident(r.document)) for r in await log.residents_after(0)
    ]
    processes = []
    for process_row in await log.processes_after(0):
        process = read_process(jsontext.loads_stored(process_row.document))
        if process is not None:
            closed = None if process_row.closed_at is None else timestamp(process_row.closed_at)
            processes.append(ProcessRecord(process, grace=grace, closed_at=closed))
    proposals = []
    for row in await log.proposals_after(0):
        proposal = read_proposal(jsontext.loads_stored(row.document))
        origin = normal_origin(row.id)
        if proposal is not None and origin is not None:
            proposals.append(ProposalRecord(proposal.id, proposal.process, origin))
    return residents, processes, proposals


def _event(row: ActivityRow, process_of: dict[str, str]) -> SupportEvent | UndoEvent | None:
    """The event a stored document says, read through the converters (None: unreadable)."""
    document = jsontext.loads_stored(row.document or "{}")
    received = timestamp(row.received_at)
    try:
        if row.kind == "undo" and as2.has_type(document, "Delete"):
            # A resident's proved Delete of its support is a withdrawal (ingest's rule).
            deletion = deletion_from_ap(document)
            return UndoEvent(
                deletion.id, deletion.actor, deletion.object_id,
                deletion_time(document, row.received_at), received, row.proof_ok,
                row.signer_origin,
            )  # fmt: skip
        if row.kind == "undo":
            undo = undo_support_from_ap(document)
            like = undo.support if isinstance(undo.support, str) else undo.support.id
            return UndoEvent(
                undo.id, undo.actor, like, undo.published, received, row.proof_ok,
                row.signer_origin,
            )  # fmt: skip
        support = support_from_ap(document)
    except VocabError:
        return None
    process = process_of.get(support.proposal) if genuine(row) else ""
    if process is None:
        return None  # its proposal is unknown: waiting, on both roads
    return SupportEvent(
        support.id, support.actor, support.proposal, process, support.published, received,
        row.proof_ok, row.signer_origin,
    )  # fmt: skip


async def recompute(aggregator: Aggregator) -> Comparison:
    """Recount from the stored documents; compare with the aggregator's incremental tally.

    In a server that is the live tally; in the CLI, the one ``open_aggregator`` rebuilt.
    """
    incremental = await aggregator.state.result()
    residents, processes, proposals = await _records(aggregator)
    process_of = {p.proposal: p.process for p in proposals}
    supports: list[SupportEvent] = []
    undos: list[UndoEvent] = []
    unreadable = 0
    async for row in aggregator.log.documents():
        event = _event(row, process_of)
        if isinstance(event, SupportEvent):
            supports.append(event)
        elif isinstance(event, UndoEvent):
            undos.append(event)
        elif event is None and (row.kind == "undo" or not _waiting(row, process_of)):
            unreadable += 1
    inputs = TallyInputs(
        roster=roster_of(await aggregator.store.roster(), aggregator.config.city),
        residents=tuple(residents),
        processes=tuple(processes),
        proposals=tuple(proposals),
        supports=tuple(supports),
        undos=tuple(undos),
    )
    return Comparison(incremental, compute(inputs), len(supports), len(undos), unreadable)


def _waiting(row: ActivityRow, process_of: dict[str, str]) -> bool:
    return row.kind == "support" and genuine(row) and row.object not in process_of


__all__ = ["Comparison", "recompute"]
