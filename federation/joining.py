"""Joining a process owned by another instance (the city's), for ``barri admin process follow``.

A neighbourhood's residents take part in the city's participatory processes from their own
instance (DESIGN.md §6): the instance caches the process and its Group follows the Group that
owns it, whose Announces then bring the city's proposals and comments. Nothing else on an
instance starts that follow, so this module runs it from the command line beside the server:
it fetches the process signed as the instance actor, caches it, queues the Group's ``Follow``
through the instance's own Deliberation service, delivers it at once and waits for the running
server to record the owner's ``Accept``.

The command's protocol runtime never handles inbox rows: the server's handlers do. A CLI that
claimed them without those handlers would mark them done unhandled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from activitypub.runtime import Federation, FederationConfig
from activitypub.storage import InboxRecord
from federation.instance.deliberation import Deliberation
from federation.instance.outbox import Publisher
from federation.instance.wiring import Instance
from federation.model import Process
from federation.store.delivery import SqliteDeliveryStore
from federation.store.inbox import SqliteInboxStore
from federation.store.outbox import OutboxStore

ACCEPT_WAIT = 30.0  # seconds to wait for the owner's Accept before leaving it to the server
_POLL = 0.1


class _UnclaimedInbox(SqliteInboxStore):
    """The instance's inbox store, read by nobody here: the running server handles its rows."""

    async def claim(self, *, now: float, limit: int, lease: float) -> list[InboxRecord]:
        """Never claim: this runtime has none of the instance's inbox handlers."""
        return []


@dataclass(frozen=True)
class Joined:
    """What ``follow_process`` did: the cached process, and the follow's state."""

    process: Process
    state: str  # "accepted", "pending" (the Accept has not been recorded yet) or "local"


async def follow_process(
    instance: Instance, process_id: str, *, wait: float = ACCEPT_WAIT
) -> Joined:
    """Cache a remote process and have our Group follow its owner (DESIGN.md §6, AP §7.5)."""
    actors, config = instance.actors, instance.config
    await actors.ensure_server_actors()
    federation = Federation(
        FederationConfig(
            origin=config.base_url,
            allow_loopback=config.allow_loopback,
            allow_http=config.allow_loopback,
        ),
        delivery_store=SqliteDeliveryStore(instance.db),
        inbox_store=_UnclaimedInbox(instance.db),
        instance_keys=await actors.keys_for(actors.application_id),
        local_keys=actors.keys_for,
    )

    def source() -> Federation:
        return federation

    await federation.start()
    try:
        publisher = Publisher(instance.db, actors, config, federation=source)
        service = Deliberation(instance.db, actors, config, publisher, federation=source)
        process = await service.follow_remote_process(process_id)
        if process.owner == actors.group_id:
            return Joined(process, "local")
        return Joined(process, await _accepted(instance, process.owner, wait))
    finally:
        await federation.stop()


async def _accepted(instance: Instance, owner: str, wait: float) -> str:
    """Wait (delivering meanwhile) until the server has recorded the owner's Accept."""
    outbox = OutboxStore(instance.db)
    deadline = time.monotonic() + wait
    while True:
        follow = await outbox.find_follow(instance.actors.group_id, owner)
        state = follow.state if follow is not None else "pending"
        if state == "accepted" or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(_POLL)
