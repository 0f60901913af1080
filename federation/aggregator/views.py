"""One process's result as every reader shows it: the JSON API, the exports, the results page.

An open process shows the live tally (after a sync, so changes made by the CLI show); a closed
one shows the final Tally it was closed with, never anything later (DESIGN.md §7: "later
deletions do not change a closed result"). Names, states and threads come from the caches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from activitypub import jsontext
from activitypub.errors import Problem
from federation.aggregator.documents import read_process
from federation.aggregator.publish import closed_result
from federation.aggregator.wiring import Aggregator
from federation.model import Process
from federation.store.aggregator_log import ProcessRow, ProposalRow
from federation.tally import ProcessTally, ProposalTotals


@dataclass(frozen=True)
class ProcessView:
    """A process's totals (live or final), its cached documents and when they were true."""

    row: ProcessRow
    process: Process | None
    tally: ProcessTally
    proposals: dict[str, ProposalRow]
    as_of: datetime | None
    final: bool

    @property
    def id(self) -> str:
        """The process IRI."""
        return self.row.id

    @property
    def name(self) -> str:
        """The process's name in its default language (its IRI if the document is unreadable)."""
        return self.process.name.default if self.process is not None else self.row.id

    def ranked(self) -> list[ProposalTotals]:
        """Proposals by supports, most first; ties by IRI (the published Tally's order)."""
        return sorted(self.tally.results, key=lambda r: (-r.supports, r.proposal))


async def process_row(aggregator: Aggregator, process_id: str) -> ProcessRow:
    """The cached process; a 404 problem when the aggregator does not know it."""
    row = await aggregator.log.process(process_id)
    if row is None:
        raise Problem(404, "Not Found", f"The aggregator counts no process {process_id}.")
    return row


async def process_view(
    aggregator: Aggregator, process_id: str, *, documents: bool = True, proposals: bool = True
) -> ProcessView:
    """The view of one process (404 problem when unknown); ``documents`` False: its proposal
    rows without their documents (a city process's are tens of megabytes); ``proposals``
    False: no proposal rows at all (a listing of processes shows their totals only)."""
    row = await process_row(aggregator, process_id)
    process = read_process(jsontext.loads_stored(row.document))
    closed = await closed_result(aggregator.published, process_id)
    as_of: datetime | None
    if closed is not None:
        tally, as_of = closed
    else:
        try:
            tally = await aggregator.state.process(process_id)
        except KeyError:
            raise Problem(404, "Not Found", f"No totals for {process_id} yet.") from None
        as_of = aggregator.state.synced_at
    cached = await aggregator.log.proposals_of(process_id, documents=documents) if proposals else []
    return ProcessView(row, process, tally, {p.id: p for p in cached}, as_of, closed is not None)


async def process_views(aggregator: Aggregator) -> list[ProcessView]:
    """Every counted process's view, by IRI, without proposal rows: a listing shows totals, and
    reading a city's 10,305 proposal rows was 58 of its ~165 ms (Barcelona x1, under load)."""
    return [
        await process_view(aggregator, tally.process, proposals=False)
        for tally in await aggregator.state.processes()
    ]


__all__ = ["ProcessView", "process_row", "process_view", "process_views"]
