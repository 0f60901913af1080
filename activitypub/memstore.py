"""In-memory DeliveryStore and InboxStore (the Protocols of :mod:`activitypub.storage`).

For tests and tools. Nothing here survives the process; the SQLite stores in ``federation.store``
are the durable ones. Each method runs without awaiting, so under asyncio every call is atomic,
which is what makes ``claim`` safe here.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from activitypub.storage import (
    DELIVERY_TRANSITIONS,
    INBOX_AUTH,
    INBOX_TRANSITIONS,
    Delivery,
    DeliveryId,
    DeliveryState,
    InboxRecord,
    InboxState,
    RecordId,
    check_transition,
    inbox_host,
)


def _free(locked_until: float | None, now: float) -> bool:
    return locked_until is None or locked_until < now


class MemoryDeliveryStore:
    """The delivery queue as a dict of frozen rows, with the same semantics as the SQL store."""

    def __init__(self) -> None:
        self._rows: dict[DeliveryId, Delivery] = {}  # insertion order is id order
        self._keys: dict[tuple[str, str], int] = {}
        # One body per activity, shared by its rows; the first enqueue's body wins, as in SQL.
        self._bodies: dict[str, bytes] = {}
        self._next_id = 1

    async def enqueue(
        self, activity_id: str, sender: str, body: bytes, inboxes: Iterable[str], *, now: float
    ) -> int:
        """Add one NEW row per new (activity_id, inbox) pair (DESIGN.md §6)."""
        targets = list(dict.fromkeys(inboxes))
        for inbox in targets:
            inbox_host(inbox)  # validate them all before changing anything
        if not targets:
            return 0
        shared = self._bodies.setdefault(activity_id, bytes(body))
        created = 0
        for inbox in targets:
            if (activity_id, inbox) in self._keys:
                continue
            row = Delivery(
                id=self._next_id,
                activity_id=activity_id,
                inbox=inbox,
                sender=sender,
                body=shared,
                state=DeliveryState.NEW,
                attempts=0,
                next_attempt_at=now,
                locked_until=None,
                last_error=None,
                last_status=None,
                created_at=now,
            )
            self._rows[row.id] = row
            self._keys[(activity_id, inbox)] = self._next_id
            self._next_id += 1
            created += 1
        return created

    async def claim(
        self,
        *,
        now: float,
        limit: int,
        lease: float,
        exclude_hosts: Collection[str] = (),
        per_host: int | None = None,
    ) -> builtins.list[Delivery]:
        """Lease up to ``limit`` due rows, at most ``per_host`` per host, host by host."""
        excluded = set(exclude_hosts)
        by_host: dict[str, builtins.list[Delivery]] = {}
        for row in sorted(self._rows.values(), key=lambda r: (r.next_attempt_at, r.id)):
            host = inbox_host(row.inbox)
            if (
                row.state is DeliveryState.NEW
                and row.next_attempt_at <= now
                and _free(row.locked_until, now)
                and host not in excluded
            ):
                by_host.setdefault(host, []).append(row)  # hosts in order of their head
        cap = limit if per_host is None else per_host
        candidates = [r for rows in by_host.values() for r in rows[: max(cap, 0)]]
        due = sorted(candidates, key=lambda r: (r.next_attempt_at, r.id))[: max(limit, 0)]
        claimed = [replace(r, locked_until=now + lease) for r in due]
        for row in claimed:
            self._rows[row.id] = row
        return claimed

    async def release(self, delivery_id: DeliveryId) -> None:
        """Unlock a NEW row without counting an attempt."""
        row = self._get(delivery_id)
        if row.state is DeliveryState.NEW:
            self._put(replace(row, locked_until=None))

    async def mark_sent(self, delivery_id: DeliveryId, *, status: int, now: float) -> None:
        """NEW → SENT."""
        self._finish(delivery_id, DeliveryState.SENT, None, status)

    async def mark_sent_many(
        self, delivery_ids: Sequence[DeliveryId], *, status: int, now: float
    ) -> int:
        """NEW → SENT for each row still NEW; how many moved."""
        moved = 0
        for delivery_id in dict.fromkeys(delivery_ids):
            row = self._rows.get(delivery_id)
            if row is not None and row.state is DeliveryState.NEW:
                self._finish(delivery_id, DeliveryState.SENT, None, status)
                moved += 1
        return moved

    async def mark_retry(
        self,
        delivery_id: DeliveryId,
        *,
        next_attempt_at: float,
        error: str,
        status: int | None,
        now: float,
    ) -> None:
        """NEW → NEW, due again at ``next_attempt_at``."""
        self._finish(delivery_id, DeliveryState.NEW, error, status, next_attempt_at)

    async def mark_gone(
        self, delivery_id: DeliveryId, *, error: str, status: int | None, now: float
    ) -> None:
        """NEW → GONE."""
        self._finish(delivery_id, DeliveryState.GONE, error, status)

    async def mark_failed(
        self, delivery_id: DeliveryId, *, error: str, status: int | None, now: float
    ) -> None:
        """NEW → FAILED."""
        self._finish(delivery_id, DeliveryState.FAILED, error, status)

    async def get(self, delivery_id: DeliveryId) -> Delivery | None:
        """One row by id, or None."""
        return self._rows.get(delivery_id)

    async def list(
        self, *, activity_id: str | None = None, state: DeliveryState | None = None
    ) -> builtins.list[Delivery]:
        """Rows matching the filters, in id order."""
        return [
            r
            for r in self._rows.values()
            if (activity_id is None or r.activity_id == activity_id)
            and (state is None or r.state is state)
        ]

    async def next_due(self) -> float | None:
        """When the earliest NEW row becomes claimable, or None."""
        times = [
            max(r.next_attempt_at, r.locked_until or r.next_attempt_at)
            for r in self._rows.values()
            if r.state is DeliveryState.NEW
        ]
        return min(times, default=None)

    async def release_expired(self, *, now: float) -> int:
        """Clear leases that expired before ``now``."""
        expired = [
            r
            for r in self._rows.values()
            if r.state is DeliveryState.NEW and r.locked_until is not None and r.locked_until < now
        ]
        for row in expired:
            self._put(replace(row, locked_until=None))
        return len(expired)

    def _get(self, delivery_id: DeliveryId) -> Delivery:
        row = self._rows.get(delivery_id)
        if row is None:
            raise KeyError(delivery_id)
        return row

    def _put(self, row: Delivery) -> None:
        self._rows[row.id] = row

    def _finish(
        self,
        delivery_id: DeliveryId,
        state: DeliveryState,
        error: str | None,
        status: int | None,
        next_attempt_at: float | None = None,
    ) -> None:
        row = self._get(delivery_id)
        check_transition(DELIVERY_TRANSITIONS, row.state, state)
        self._put(
            replace(
                row,
                state=state,
                attempts=row.attempts + 1,
                locked_until=None,
                last_error=error,
                last_status=status,
                next_attempt_at=row.next_attempt_at if next_attempt_at is None else next_attempt_at,
            )
        )


class MemoryInboxStore:
    """Recorded inbox activities keyed by (inbox, activity id), as the SQL store keys them."""

    def __init__(self) -> None:
        self._rows: dict[RecordId, InboxRecord] = {}
        self._keys: set[tuple[str, str]] = set()
        self._next_id = 1

    async def record(
        self,
        inbox: str,
        activity_id: str,
        actor: str,
        activity: Mapping[str, Any],
        *,
        auth: str,
        now: float,
    ) -> bool:
        """Record once per (inbox, activity_id); False for a repeat (Fedify #441)."""
        if auth not in INBOX_AUTH:
            raise ValueError(f"unknown auth {auth!r}")
        if (inbox, activity_id) in self._keys:
            return False
        # A JSON round trip gives the same copy semantics (and errors) as the SQL store.
        doc: dict[str, Any] = json.loads(json.dumps(activity))
        self._rows[self._next_id] = InboxRecord(
            id=self._next_id,
            inbox=inbox,
            activity_id=activity_id,
            actor=actor,
            activity=doc,
            auth=auth,
            state=InboxState.NEW,
            attempts=0,
            error=None,
            received_at=now,
            next_attempt_at=now,
            locked_until=None,
        )
        self._keys.add((inbox, activity_id))
        self._next_id += 1
        return True

    async def claim(self, *, now: float, limit: int, lease: float) -> list[InboxRecord]:
        """Lease up to ``limit`` due, unleased NEW records, earliest due first."""
        due = sorted(
            (
                r
                for r in self._rows.values()
                if r.state is InboxState.NEW
                and r.next_attempt_at <= now
                and _free(r.locked_until, now)
            ),
            key=lambda r: (r.next_attempt_at, r.id),
        )[: max(limit, 0)]
        claimed = [replace(r, locked_until=now + lease) for r in due]
        for rec in claimed:
            self._rows[rec.id] = rec
        return claimed

    async def mark_done(self, record_id: RecordId) -> None:
        """NEW → DONE."""
        rec = self._get(record_id)
        check_transition(INBOX_TRANSITIONS, rec.state, InboxState.DONE)
        self._put(replace(rec, state=InboxState.DONE, attempts=rec.attempts + 1, locked_until=None))

    async def mark_failed(
        self, record_id: RecordId, error: str, *, retry_at: float | None, now: float
    ) -> None:
        """NEW → NEW due at ``retry_at``, or NEW → FAILED when ``retry_at`` is None."""
        rec = self._get(record_id)
        state = InboxState.FAILED if retry_at is None else InboxState.NEW
        check_transition(INBOX_TRANSITIONS, rec.state, state)
        self._put(
            replace(
                rec,
                state=state,
                attempts=rec.attempts + 1,
                error=error,
                locked_until=None,
                next_attempt_at=rec.next_attempt_at if retry_at is None else retry_at,
            )
        )

    async def get(self, record_id: RecordId) -> InboxRecord | None:
        """One record by id, or None."""
        return self._rows.get(record_id)

    def _get(self, record_id: RecordId) -> InboxRecord:
        rec = self._rows.get(record_id)
        if rec is None:
            raise KeyError(record_id)
        return rec

    def _put(self, rec: InboxRecord) -> None:
        self._rows[rec.id] = rec
