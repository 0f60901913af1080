"""The Service publishes a signed ``Tally`` per process: on change, debounced, and a final one.

DESIGN.md §7, vocab-spec "tally". After a change the publisher waits ``tally_debounce_seconds``
(changes meanwhile join the same Tally), then, for each process whose counts differ from its
last Tally, builds one with :func:`federation.tally.to_tally`, proves it with the Service's
Ed25519 key (FEP-8b32), wraps it in a proved ``Create`` and delivers that to the Service's
followers. Tallies are kept (``tallies``), served at their ids and listed in the outbox.

When a process's last supports phase has ended and its grace has passed, the publisher freezes
it (``processes.closed_at``: nothing received later can count) and publishes the FINAL Tally,
which keeps the ids it counted. From then on the process's result *is* that Tally
(:meth:`TallyPublisher.frozen`): later deletions, undos, roster or residency changes move the
live tally, never the closed result.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from activitypub import as2
from activitypub.runtime import Federation
from activitypub.waiting import wait_event
from federation.aggregator.documents import read_process
from federation.aggregator.followers import Followers
from federation.store.aggregator_publish import PublishStore, TallyRow
from federation.tally import ProcessRecord, ProcessTally, ProposalTotals, to_tally
from federation.tally.records import normal_origin
from federation.validation import validate
from federation.vocab.context import document_context, format_datetime
from federation.vocab.tally import tally_from_ap, tally_to_ap
from federation.vocab.wire import embed

if TYPE_CHECKING:
    from federation.aggregator.wiring import Aggregator

log = logging.getLogger(__name__)

POLL_SECONDS = 60.0  # look for changes made by other processes (the CLI) this often
SUMMARY_LINES = 10


def close_time(record: ProcessRecord) -> datetime | None:
    """When a process's result closes: its last supports phase's end plus the grace."""
    ends = [window.end for window in record.windows]
    return max(ends) + record.grace if ends else None


def fingerprint(tally: ProcessTally, final: bool) -> str:
    """What a Tally says, hashed: two Tallies with the same fingerprint say the same thing."""
    body = {
        "final": final,
        "digest": tally.inputs_digest,
        "participants": tally.participants,
        "results": [
            [r.proposal, r.supports, [[c.kind.value, c.code, c.supports] for c in r.by_territory]]
            for r in tally.results
        ],
        "totals": [[c.kind.value, c.code, c.supports] for c in tally.totals],
    }
    # json, not orjson: these bytes are hashed into published results, so they must not move.
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def summary_html(
    name: str, tally: ProcessTally, names: Mapping[str, str], *, final: bool, as_of: datetime
) -> str:
    """The human summary a Tally carries in ``content`` (what Mastodon shows)."""
    kind = "Final count" if final else "Provisional count"
    lines = [
        f"<p>{kind} of «{html.escape(name)}» as of {format_datetime(as_of)}: "
        f"{tally.supports} supports from {tally.participants} participants.</p>"
    ]
    ranked = sorted(tally.results, key=lambda r: (-r.supports, r.proposal))[:SUMMARY_LINES]
    if ranked:
        items = "".join(
            f"<li>{html.escape(names.get(r.proposal, r.proposal))}: {r.supports}</li>"
            for r in ranked
        )
        lines.append(f"<ul>{items}</ul>")
    return "".join(lines)


def frozen_tally(row: TallyRow, counted: tuple[str, ...]) -> tuple[ProcessTally, datetime]:
    """A stored Tally read back as the totals it states, with its ``asOf``."""
    tally = tally_from_ap(row.tally())
    results = tuple(
        ProposalTotals(r.proposal, normal_origin(r.proposal) or r.proposal, r.supports,
                       r.by_territory)
        for r in sorted(tally.results, key=lambda r: r.proposal)
    )  # fmt: skip
    return ProcessTally(tally.process, results, tally.totals, tally.participants, counted), (
        tally.as_of
    )


class TallyPublisher:
    """Publishes the Service's Tallies; ``run`` is its background loop."""

    def __init__(
        self,
        aggregator: Aggregator,
        federation: Federation,
        followers: Followers,
        *,
        debounce: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.aggregator, self.federation, self.followers = aggregator, federation, followers
        self.state, self.log = aggregator.state, aggregator.log
        self.store = PublishStore(aggregator.db)
        config = aggregator.config.tally_debounce_seconds
        self.debounce = config if debounce is None else debounce
        self._clock = clock
        self._dirty_since: float | None = None
        self._wake = asyncio.Event()
        self._open = asyncio.Event()  # cleared while :meth:`held`
        self._open.set()
        # A process's provisional fingerprint, kept while its totals are the same object (the
        # tally rebuilds only the processes that changed): a city's has thousands of rows.
        self._fingerprints: dict[str, tuple[ProcessTally, str]] = {}

    def _fingerprint(self, tally: ProcessTally) -> str:
        kept = self._fingerprints.get(tally.process)
        if kept is not None and kept[0] is tally:
            return kept[1]
        found = fingerprint(tally, False)
        self._fingerprints[tally.process] = (tally, found)
        return found

    def changed(self) -> None:
        """Something was counted: publish within ``debounce`` seconds (TallyState listener).

        Only the first change wakes the loop: it then waits out the debounce, and later
        changes join that Tally (a backfill reports one per page)."""
        if self._dirty_since is None:
            self._dirty_since = self._clock()
            self._wake.set()

    async def run(self) -> None:
        """Publish on change (debounced) and close processes on time, until cancelled."""
        self.changed()  # at start: whatever changed while we were down
        while True:
            timeout = await self._timeout()
            await wait_event(self._wake, timeout)
            self._wake.clear()
            await self._open.wait()
            try:
                await self.tick()
            except Exception:
                # A background loop has nobody to raise to: say it and try again next time.
                log.exception("tally publication failed")

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Publish and close nothing meanwhile; what changed is published after.

        For a rebuild from an empty database: until its backfill ends its counts are partial,
        so a Tally would announce a wrong total, and closing a process whose time has passed
        would freeze one. A Tally of a city process also costs seconds of the event loop and
        holds the database's write lock that the backfill workers wait for."""
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()
            self.changed()
            self._wake.set()

    async def _timeout(self) -> float:
        now, waits = self._clock(), [POLL_SECONDS]
        if self._dirty_since is not None:
            waits.append(self._dirty_since + self.debounce - now)
        closing = await self._next_close()
        if closing is not None:
            waits.append(closing - now)
        return max(0.0, min(waits))

    async def tick(self) -> list[TallyRow]:
        """One round: close what is due, then publish what changed if the wait is over."""
        await self.state.sync()
        now = self._clock()
        published = await self.close_due(now)
        if self._dirty_since is not None and now - self._dirty_since >= self.debounce:
            self._dirty_since = None
            published += await self.publish_changed()
        return published

    async def _known_finals(self) -> set[str]:
        # Read each time: another process (or publisher) may have closed a process since.
        return await self.store.final_processes()

    async def _next_close(self) -> float | None:
        finals = await self._known_finals()
        times = [
            when.timestamp()
            for record in self.state.tally.process_records()
            if record.id not in finals and (when := close_time(record)) is not None
        ]
        return min(times, default=None)

    async def close_due(self, now: float) -> list[TallyRow]:
        """Freeze and publish the final Tally of every process whose time has come."""
        published = []
        finals = await self._known_finals()
        for record in self.state.tally.process_records():
            when = close_time(record)
            if record.id in finals or when is None or now < when.timestamp():
                continue
            await self.log.close_process(record.id, now)
            await self.state.sync()  # the record now carries closed_at: nothing later counts
            row = await self.publish(record.id, final=True)
            finals.add(record.id)
            if row is not None:
                published.append(row)
        return published

    async def publish_changed(self) -> list[TallyRow]:
        """A provisional Tally for every open process whose counts moved since its last one."""
        finals = await self._known_finals()
        published = []
        for tally in self.state.tally.processes():
            if tally.process in finals or not tally.results:
                continue
            if await self.store.latest_fingerprint(tally.process) == self._fingerprint(tally):
                continue
            row = await self.publish(tally.process, final=False)
            if row is not None:
                published.append(row)
        return published

    async def publish(self, process_id: str, *, final: bool) -> TallyRow | None:
        """Build, prove, store and deliver one Tally of a process (None: a final exists)."""
        service = self.aggregator.service
        tally = self.state.tally.process(process_id)
        now = datetime.fromtimestamp(self._clock(), UTC)
        as_of = self.state.synced_at or now
        names = {p.id: p.name for p in await self.log.proposals_of(process_id, documents=False)}
        name = await self._process_name(process_id)
        followers = service.id + "/followers"
        model = to_tally(
            tally, tally_id=service.new_id("tallies"),
            aggregator=service.id, as_of=as_of, published=now, final=final,
            summary_html=summary_html(name, tally, names, final=final, as_of=as_of),
            to=(as2.PUBLIC, followers),
        )  # fmt: skip
        keys = await service.keys()
        document = tally_to_ap(model)
        validate("tally", document)
        proved = keys.prove(document)
        create = keys.prove(
            {
                "@context": document_context(),
                "id": service.new_id("activities"),
                "type": "Create",
                "actor": service.id,
                "object": embed(proved),
                "published": format_datetime(now),
                "to": [as2.PUBLIC],
                "cc": [followers],
            }
        )
        if not final and await self.store.final(process_id) is not None:
            return None  # closed meanwhile: its result is the final Tally, for good
        row = TallyRow(
            0, proved["id"], create["id"], process_id, final, fingerprint(tally, final),
            now.timestamp(), json.dumps(create, ensure_ascii=False),
        )  # fmt: skip
        if not await self.store.add_tally(row, tally.counted if final else None):
            return None
        inboxes = await self.followers.inboxes()
        if inboxes:
            await self.federation.deliver(create, inboxes)
        log.info("published %s Tally %s of %s", "final" if final else "a", row.id, process_id)
        return row

    async def _process_name(self, process_id: str) -> str:
        row = await self.log.process(process_id)
        process = None if row is None else read_process(json.loads(row.document))
        return process_id if process is None else process.name.default

    async def frozen(self, process_id: str) -> tuple[ProcessTally, datetime] | None:
        """The closed result of a process (its final Tally), or None while it is open."""
        return await closed_result(self.store, process_id)


async def closed_result(
    store: PublishStore, process_id: str
) -> tuple[ProcessTally, datetime] | None:
    """The result a process closed with (its final Tally), or None while it is open."""
    row = await store.final(process_id)
    if row is None:
        return None
    return frozen_tally(row, await store.counted(process_id))


__all__ = [
    "TallyPublisher",
    "close_time",
    "closed_result",
    "fingerprint",
    "frozen_tally",
    "summary_html",
]
