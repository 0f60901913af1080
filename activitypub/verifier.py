"""Ed25519 signature checks on a thread of their own, handed over in batches.

An inbox verifies one proof per delivery, and on a busy server the event loop's thread is what
bounds the throughput. libsodium (PyNaCl) releases the GIL while it verifies, so a check run on
another thread costs the loop only the hand-over: the loop parses the next request meanwhile,
and the check runs on another core. Hand-overs are batched: the thread takes every check queued
since its last round and settles them with one wake-up of each loop, so a burst costs one
thread switch, not one per delivery. The result is exactly ``VerifyKey(key).verify``'s.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

#: (raw public key, signed bytes, signature) -> True when the signature verifies.
Verifier = Callable[[bytes, bytes, bytes], Awaitable[bool]]

_Check = tuple[bytes, bytes, bytes, "asyncio.Future[bool]"]


def verify_now(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519 verification (RFC 8032 §5.1.7) by libsodium; False for any malformed input."""
    # Imported by the first check, not at startup: PyNaCl is ~0.8 MB of an idle server.
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


class ThreadedVerifier:
    """A :data:`Verifier` whose checks run on one daemon thread, started at the first check."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._pending: list[_Check] = []
        self._thread: threading.Thread | None = None
        #: Checks done and rounds taken (a round settles every check queued before it).
        self.checks = self.rounds = 0

    async def __call__(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` verifies, checked on the verifier's thread."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        with self._ready:
            self._pending.append((public_key, message, signature, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ed25519", daemon=True)
                self._thread.start()
            self._ready.notify()
        return await future

    def _run(self) -> None:
        """Take every queued check, verify them, settle them on their loops; forever."""
        while True:
            with self._ready:
                while not self._pending:
                    self._ready.wait()
                batch, self._pending = self._pending, []
            settled = [
                (future, verify_now(key, message, sig)) for key, message, sig, future in batch
            ]
            self.checks += len(batch)
            self.rounds += 1
            for loop, results in _by_loop(settled).items():
                try:
                    loop.call_soon_threadsafe(_settle, results)
                except RuntimeError:
                    pass  # that loop closed meanwhile: nobody waits for these any more


_SHARED: ThreadedVerifier | None = None


def shared_verifier() -> ThreadedVerifier:
    """The process's one :class:`ThreadedVerifier` (one thread, whatever the loops using it)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = ThreadedVerifier()
    return _SHARED


def _by_loop(
    settled: list[tuple[asyncio.Future[bool], bool]],
) -> dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool]]]:
    found: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool]]] = {}
    for future, ok in settled:
        found.setdefault(future.get_loop(), []).append((future, ok))
    return found


def _settle(results: list[tuple[asyncio.Future[bool], bool]]) -> None:
    """On the future's loop: hand each waiting check its answer."""
    for future, ok in results:
        if not future.done():  # a waiter cancelled meanwhile (its request went away)
            future.set_result(ok)


__all__ = ["ThreadedVerifier", "Verifier", "shared_verifier", "verify_now"]
