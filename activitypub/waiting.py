"""Waiting for an ``asyncio.Event`` with a timeout, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for`` can swallow the cancellation of the waiting task when the
inner wait finishes at the same moment (CPython gh-86296, fixed in 3.12): a background loop
cancelled at shutdown then waits again and ``stop()`` hangs. ``asyncio.timeout`` does not.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True when it was set."""
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await event.wait()
    except TimeoutError:
        return False
    return True
