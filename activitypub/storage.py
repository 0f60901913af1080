"""The durable delivery queue and the inbox record store, as Protocols with their state graphs.

Two implementations exist: :mod:`activitypub.memstore` (in memory, for tests and tools) and
``federation.store`` (aiosqlite). One conformance suite runs over both (style.md §7).
Times are plain float seconds from whatever clock the caller uses (normally ``time.time()``);
stores never read a clock themselves, so tests control time completely.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from activitypub.origin import origin_of

DeliveryId = int | str
RecordId = int | str


class InvalidTransition(ValueError):
    """A state change the declared graph does not allow (e.g. retrying a delivery already sent)."""


class DeliveryState(StrEnum):
    """Where a delivery stands (DESIGN.md §6). Retries stay in NEW with a later next_attempt_at."""

    NEW = "new"
    SENT = "sent"
    GONE = "gone"
    FAILED = "failed"


#: The delivery state machine: NEW → NEW (retry) | SENT | GONE | FAILED; the others are terminal.
DELIVERY_TRANSITIONS: Mapping[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.NEW: frozenset(DeliveryState),
    DeliveryState.SENT: frozenset(),
    DeliveryState.GONE: frozenset(),
    DeliveryState.FAILED: frozenset(),
}


class InboxState(StrEnum):
    """Where a recorded inbox activity stands; retries stay in NEW with a later attempt time."""

    NEW = "new"
    DONE = "done"
    FAILED = "failed"


INBOX_TRANSITIONS: Mapping[InboxState, frozenset[InboxState]] = {
    InboxState.NEW: frozenset(InboxState),
    InboxState.DONE: frozenset(),
    InboxState.FAILED: frozenset(),
}


S = TypeVar("S", bound=StrEnum)


def check_transition(graph: Mapping[S, frozenset[S]], current: S, target: S) -> None:
    """Raise :class:`InvalidTransition` unless ``graph`` allows ``current → target``."""
    if target not in graph.get(current, frozenset()):
        raise InvalidTransition(f"{current} → {target} is not allowed")


def inbox_host(url: str) -> str:
    """The host key that per-host limits and ``exclude_hosts`` use: host, plus port if not default.

    Hosts are normalised as origins are (FEP-fe34): lowercase, IDNA, no trailing dot.
    """
    origin = origin_of(url)
    default = 443 if origin.scheme == "https" else 80
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    return host if origin.port == default else f"{host}:{origin.port}"


@dataclass(frozen=True)
class Delivery:
    """One (activity, inbox) delivery row; ``body`` is the unsigned JSON, signed at send time.

    Stores keep one body per activity, shared by all its rows (DESIGN.md §6).
    """

    id: DeliveryId
    activity_id: str
    inbox: str
    sender: str  # the actor id whose key signs the request
    body: bytes
    state: DeliveryState
    attempts: int  # send attempts made so far (every mark_* records one)
    next_attempt_at: float
    locked_until: float | None
    last_error: str | None
    last_status: int | None
    created_at: float


class DeliveryStore(Protocol):
    """The durable outgoing queue: one row per (activity, inbox), claimed under a lease."""

    async def enqueue(
        self, activity_id: str, sender: str, body: bytes, inboxes: Iterable[str], *, now: float
    ) -> int:
        """Add one NEW row per inbox, due at ``now``; return how many rows were new.

        Idempotent on (activity_id, inbox). The body is stored once per activity: rows a later
        call adds for the same activity id send the body stored first (an id is one activity).
        Raises ``ValueError`` for a non-http(s) inbox URL.
        """
        ...

    async def claim(
        self,
        *,
        now: float,
        limit: int,
        lease: float,
        exclude_hosts: Collection[str] = (),
        per_host: int | None = None,
    ) -> list[Delivery]:
        """Atomically lease up to ``limit`` due, unleased NEW rows until ``now + lease``.

        Due means ``next_attempt_at <= now``; unleased means ``locked_until`` is null or
        ``< now``. Rows whose :func:`inbox_host` is in ``exclude_hosts`` are skipped. Each host
        gives at most ``per_host`` rows (``None``: no cap), its oldest: the rows taken are the
        oldest among each host's first ``per_host``, so a host with a long backlog does not
        keep a claim from another host's rows. Two concurrent claims never return the same
        row. Ordered by next_attempt_at, then id.
        """
        ...

    async def release(self, delivery_id: DeliveryId) -> None:
        """Give back a leased NEW row without counting an attempt (a worker shutting down)."""
        ...

    async def mark_sent(self, delivery_id: DeliveryId, *, status: int, now: float) -> None:
        """NEW → SENT: the inbox accepted it (2xx). Counts the attempt and unlocks."""
        ...

    async def mark_sent_many(
        self, delivery_ids: Sequence[DeliveryId], *, status: int, now: float
    ) -> int:
        """NEW → SENT for every row of ``delivery_ids`` in one write; how many moved.

        The batched :meth:`mark_sent` of a worker recording many answers at once (DESIGN.md §8,
        writes batched on hot paths). Rows no longer NEW, or unknown, are left as they are.
        """
        ...

    async def mark_retry(
        self,
        delivery_id: DeliveryId,
        *,
        next_attempt_at: float,
        error: str,
        status: int | None,
        now: float,
    ) -> None:
        """NEW → NEW: a transient failure; attempts + 1, due again at ``next_attempt_at``."""
        ...

    async def mark_gone(
        self, delivery_id: DeliveryId, *, error: str, status: int | None, now: float
    ) -> None:
        """NEW → GONE: a permanent failure (404, 410, 501, other 4xx). Counts the attempt."""
        ...

    async def mark_failed(
        self, delivery_id: DeliveryId, *, error: str, status: int | None, now: float
    ) -> None:
        """NEW → FAILED: retries exhausted. Counts the attempt.

        Every ``mark_*`` raises ``KeyError`` for an unknown id and :class:`InvalidTransition`
        when the row is no longer NEW.
        """
        ...

    async def get(self, delivery_id: DeliveryId) -> Delivery | None:
        """One row by id, or None."""
        ...

    async def list(
        self, *, activity_id: str | None = None, state: DeliveryState | None = None
    ) -> list[Delivery]:
        """Rows matching the filters, in id order."""
        ...

    async def next_due(self) -> float | None:
        """When the earliest NEW row becomes claimable (its next attempt, or its lease expiry).

        None when no row is NEW: the worker then sleeps until woken.
        """
        ...

    async def release_expired(self, *, now: float) -> int:
        """Clear leases that expired before ``now``; claim already treats them as free."""
        ...


@dataclass(frozen=True)
class InboxRecord:
    """An authenticated incoming activity, recorded before it is processed (style.md §4)."""

    id: RecordId
    inbox: str  # the receiving inbox (an actor's inbox or the shared inbox)
    activity_id: str
    actor: str
    activity: dict[str, Any]
    auth: str  # how it was authenticated: "httpsig" or "proof"
    state: InboxState
    attempts: int  # processing attempts so far
    error: str | None
    received_at: float
    next_attempt_at: float
    locked_until: float | None


INBOX_AUTH = frozenset({"httpsig", "proof"})


class InboxStore(Protocol):
    """Recorded incoming activities, deduplicated on the (receiving inbox, activity id) pair."""

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
        """Record a NEW activity due at ``now``; False when this (inbox, activity_id) exists.

        The key is the pair, not the activity id alone (Fedify #441: one activity addressed to
        two inboxes on one server is two deliveries). Raises ``ValueError`` for an unknown auth.
        """
        ...

    async def claim(self, *, now: float, limit: int, lease: float) -> list[InboxRecord]:
        """Atomically lease up to ``limit`` due, unleased NEW records, oldest due first."""
        ...

    async def mark_done(self, record_id: RecordId) -> None:
        """NEW → DONE: handled. Counts the attempt and unlocks."""
        ...

    async def mark_failed(
        self, record_id: RecordId, error: str, *, retry_at: float | None, now: float
    ) -> None:
        """Handling failed: NEW again, due at ``retry_at``, or FAILED for good when it is None.

        Both mark methods raise ``KeyError`` for an unknown id and :class:`InvalidTransition`
        when the record is no longer NEW.
        """
        ...

    async def get(self, record_id: RecordId) -> InboxRecord | None:
        """One record by id, or None."""
        ...
