"""activitypub.verifier: Ed25519 checks on a thread of their own give libsodium's answers."""

from __future__ import annotations

import asyncio
import random

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from activitypub.verifier import ThreadedVerifier, shared_verifier, verify_now

Case = tuple[bytes, bytes, bytes, bool]


def signed(n: int) -> list[Case]:
    """``n`` (key, message, signature, expected) cases, every third one tampered with."""
    rng = random.Random(26)
    cases = []
    for i in range(n):
        key = Ed25519PrivateKey.generate()
        message = rng.randbytes(64)
        signature = key.sign(message)
        public = key.public_key().public_bytes_raw()
        if i % 3 == 1:
            message = message[:-1] + bytes([message[-1] ^ 1])
        elif i % 3 == 2:
            signature = signature[:10] + bytes([signature[10] ^ 0x40]) + signature[11:]
        cases.append((public, message, signature, i % 3 == 0))
    return cases


def test_verify_now_is_libsodiums_answer_and_false_for_malformed_input() -> None:
    for public, message, signature, expected in signed(9):
        assert verify_now(public, message, signature) is expected
    public, message, signature, _ = signed(1)[0]
    assert verify_now(public[:31], message, signature) is False
    assert verify_now(public, message, signature[:63]) is False


async def test_concurrent_checks_are_batched_and_each_gets_its_own_answer() -> None:
    verifier = ThreadedVerifier()
    cases = signed(60)
    answers = await asyncio.gather(*(verifier(p, m, s) for p, m, s, _ in cases))
    assert answers == [expected for *_, expected in cases]
    assert verifier.checks == 60
    assert 1 <= verifier.rounds < 60  # handed over in batches, not one wake-up per check


def test_one_verifier_serves_one_loop_after_another() -> None:
    """The shared thread settles each check on the loop that asked (tests start a new loop
    per test; a server has one)."""
    verifier = shared_verifier()
    assert shared_verifier() is verifier
    cases = signed(6)
    for _ in range(3):
        answers = asyncio.run(_all(verifier, cases))
        assert answers == [expected for *_, expected in cases]


async def _all(
    verifier: ThreadedVerifier, cases: list[tuple[bytes, bytes, bytes, bool]]
) -> list[bool]:
    return list(await asyncio.gather(*(verifier(p, m, s) for p, m, s, _ in cases)))
