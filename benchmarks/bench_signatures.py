"""Operations per second on the signature hot paths: HTTP signatures and FEP-8b32 proofs.

Run: ``.venv/bin/python benchmarks/bench_signatures.py [--seconds 1.0]``. Prints one line per
operation and a JSON summary (also written to ``benchmarks/results/signatures.json``); the
``ratio`` column compares each operation with the raw primitive underneath it, which is the
ceiling on this machine. Nothing here is a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from activitypub.httpsig import Scheme, SigningKey, sign_request, verify_request
from activitypub.integrity import create_proof, verify_proof_with_key
from activitypub.keys import ActorKey, generate_ed25519, generate_rsa

RESULTS = Path(__file__).resolve().parent / "results"
URL = "https://city.barri.example/inbox"
ACTOR = "https://gracia.barri.example/users/ana"
SUPPORT = {
    "@context": ["https://www.w3.org/ns/activitystreams"],
    "id": "https://gracia.barri.example/supports/1",
    "type": "Like",
    "actor": ACTOR,
    "object": "https://gracia.barri.example/proposals/1",
    "published": "2026-03-01T10:00:00Z",
    "to": ["https://gracia.barri.example/groups/association", "https://city.barri.example/actor"],
}


def rate(operation: Callable[[], Any], seconds: float) -> float:
    """Calls per second of ``operation`` over about ``seconds``."""
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            operation()
        count += 20
    return count / elapsed


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    seconds = parser.parse_args().seconds
    rsa_key, ed_key = generate_rsa(), generate_ed25519()
    body = json.dumps(SUPPORT).encode()
    keys = {
        Scheme.CAVAGE: SigningKey(ACTOR + "#main-key", rsa_key),
        Scheme.RFC9421: SigningKey(ACTOR + "#main-key", rsa_key),
    }
    actor_key = ActorKey(ACTOR + "#main-key", ACTOR, rsa_key.public_key())

    async def resolve(key_id: str, refresh: bool) -> ActorKey:
        return actor_key

    loop = asyncio.new_event_loop()
    rows: dict[str, dict[str, float]] = {}
    raw_sign = rate(lambda: rsa_key.sign(body, padding.PKCS1v15(), hashes.SHA256()), seconds)
    sig = rsa_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    raw_verify = rate(
        lambda: rsa_key.public_key().verify(sig, body, padding.PKCS1v15(), hashes.SHA256()),
        seconds,
    )
    rows["rsa-2048 sign (primitive)"] = {"ops": raw_sign, "ratio": 1.0}
    rows["rsa-2048 verify (primitive)"] = {"ops": raw_verify, "ratio": 1.0}
    for scheme, key in keys.items():
        headers = sign_request(
            "POST", URL, {"Content-Type": "application/activity+json"}, body, key, scheme
        )
        signed = rate(lambda s=scheme, k=key: sign_request("POST", URL, {}, body, k, s), seconds)
        verified = rate(
            lambda h=headers: loop.run_until_complete(
                verify_request("POST", URL, h, body, resolve)
            ),
            seconds,
        )
        rows[f"{scheme} sign POST"] = {"ops": signed, "ratio": signed / raw_sign}
        rows[f"{scheme} verify POST"] = {"ops": verified, "ratio": verified / raw_verify}
    ed_sig = ed_key.sign(body)
    ed_raw_sign = rate(lambda: ed_key.sign(body), seconds)
    ed_raw_verify = rate(lambda: ed_key.public_key().verify(ed_sig, body), seconds)
    proved = create_proof(SUPPORT, ed_key, ACTOR + "#ed25519-key")
    proof_create = rate(lambda: create_proof(SUPPORT, ed_key, ACTOR + "#ed25519-key"), seconds)
    proof_verify = rate(lambda: verify_proof_with_key(proved, ed_key.public_key()), seconds)
    rows["ed25519 sign (primitive)"] = {"ops": ed_raw_sign, "ratio": 1.0}
    rows["ed25519 verify (primitive)"] = {"ops": ed_raw_verify, "ratio": 1.0}
    rows["eddsa-jcs-2022 create proof"] = {"ops": proof_create, "ratio": proof_create / ed_raw_sign}
    rows["eddsa-jcs-2022 verify proof"] = {
        "ops": proof_verify,
        "ratio": proof_verify / ed_raw_verify,
    }
    loop.close()
    for name, row in rows.items():
        print(f"{name:34} {row['ops']:>10,.0f} ops/s   {row['ratio']:.2f} of primitive")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "signatures.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
