"""Remote actor documents as last fetched: the actor cache's second level (DESIGN.md §5).

The in-memory :class:`~activitypub.actorcache.ActorCache` holds 10,000 actors; an instance
owning a city-wide process hears from every resident of the city. Each actor document the
cache fetches is kept here (:meth:`RemoteActors.keep`, an ``ActorCache`` observer) and read
back on a miss while younger than the cache's TTL (:meth:`RemoteActors.stored`), so judging a
resident's next support needs no signed GET of its actor. One row per actor, overwritten by
every fetch; nothing here is trusted beyond what a cached copy would be. Rows older than the
TTL are never served, so they are deleted as writes go (anyone can make a server fetch actors
it mints, so the table must not grow with them). A row leaves out the document's ``@context``:
every actor of a server repeats the same one (3.5 KB of a Barri actor's 4.8), and what reads
the copy (keys, residency, inbox) reads plain JSON members.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiosqlite

from activitypub import jsontext
from federation.store.sqlite import write_lock

#: Every this many writes, rows past the TTL are deleted.
PURGE_EVERY = 256


class RemoteActors:
    """The ``remote_actors`` table: ``keep`` observes fetches, ``stored`` serves copies."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db, self._ttl, self._clock = db, ttl, clock
        self._writes = 0

    async def keep(self, actor_id: str, document: dict[str, Any]) -> None:
        """Store the document just fetched for ``actor_id`` (ActorCache observer)."""
        text = jsontext.dumps({key: value for key, value in document.items() if key != "@context"})
        async with write_lock(self._db):
            await self._db.execute(
                "INSERT INTO remote_actors (id, document, fetched_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET document = excluded.document,"
                " fetched_at = excluded.fetched_at",
                (actor_id, text, self._clock()),
            )
            self._writes += 1
            if self._writes % PURGE_EVERY == 0:
                await self._db.execute(
                    "DELETE FROM remote_actors WHERE fetched_at < ?", (self._clock() - self._ttl,)
                )

    async def stored(self, actor_id: str) -> tuple[dict[str, Any], float] | None:
        """The stored document and its age in seconds (ActorCache.stored), if any."""
        rows = list(
            await self._db.execute_fetchall(
                "SELECT document, fetched_at FROM remote_actors WHERE id = ?", (actor_id,)
            )
        )
        if not rows:
            return None
        text, fetched_at = rows[0]
        age = max(0.0, self._clock() - float(fetched_at))
        if age >= self._ttl:
            return None
        try:
            document = jsontext.loads_stored(text)
        except ValueError:
            return None
        if not isinstance(document, dict):
            return None
        return document, age


__all__ = ["RemoteActors"]
