"""Support deliveries built ahead of time, exactly as an instance's delivery worker sends them.

Each is the resident's ``Like`` of a proposal (vocab-spec "support", addressed to the process's
owning Group and the aggregator), proved with the resident's Ed25519 key (FEP-8b32,
``#ed25519-key``), serialised as :meth:`activitypub.runtime.Federation.deliver` does, and
HTTP-signed with the resident's RSA ``#main-key`` (RFC 9421 first, as ``post_signed`` knocks,
or draft-cavage-12). Signing is CPU-bound, so chunks are built in worker processes; the raw
HTTP/1.1 requests go to a file that :mod:`.blaster` replays.
"""

from __future__ import annotations

import json
import multiprocessing
import struct
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from activitypub.actors import ed25519_key_id, main_key_id
from activitypub.httpsig import Scheme, SigningKey, sign_request
from activitypub.integrity import create_proof
from federation.instance.outbox import uuid7_hex
from federation.model import Support
from federation.vocab.support import support_to_ap


@dataclass(frozen=True)
class Planned:
    """One support to deliver: who, of what, to whom."""

    actor: str
    rsa_pem: str
    ed25519_pem: str
    proposal: str
    owner: str  # the owning Group of the proposal's process


def _request(url: str, headers: dict[str, str], body: bytes) -> bytes:
    path = urlsplit(url).path
    lines = [
        f"POST {path} HTTP/1.1",
        *(f"{k}: {v}" for k, v in headers.items()),
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


def build_chunk(items: list[Planned], inbox: str, aggregator: str, scheme: str) -> list[bytes]:
    """Raw HTTP requests POSTing each planned support to ``inbox``, proved and signed."""
    keys: dict[str, tuple[object, object]] = {}
    out = []
    for item in items:
        if item.actor not in keys:
            # Our own keys: skip RSA's slow consistency check (it is per key, per worker).
            keys[item.actor] = tuple(
                load_pem_private_key(pem.encode(), None, unsafe_skip_rsa_key_validation=True)
                for pem in (item.rsa_pem, item.ed25519_pem)
            )
        rsa_key, ed_key = keys[item.actor]
        base = item.actor.split("/users/", 1)[0]
        support = Support(
            id=f"{base}/supports/{uuid7_hex()}",
            actor=item.actor,
            proposal=item.proposal,
            published=datetime.now(UTC).replace(microsecond=0),
            to=(item.owner, aggregator),
        )
        proved = create_proof(support_to_ap(support), ed_key, ed25519_key_id(item.actor))  # type: ignore[arg-type]
        body = json.dumps(proved, ensure_ascii=False, separators=(",", ":")).encode()
        key = SigningKey(main_key_id(item.actor), rsa_key)  # type: ignore[arg-type]
        headers = sign_request(
            "POST", inbox, {"Content-Type": "application/activity+json"}, body, key, Scheme(scheme)
        )
        out.append(_request(inbox, headers, body))
    return out


def build(
    items: list[Planned],
    inbox: str,
    aggregator: str,
    path: Path,
    *,
    scheme: Scheme = Scheme.RFC9421,
    workers: int = 2,
) -> int:
    """Build every delivery in ``workers`` processes and write them to ``path``; the count."""
    size = max(1, len(items) // (workers * 4))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    written = 0
    spawn = multiprocessing.get_context("spawn")  # the caller runs an event loop: no fork
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool, path.open("wb") as out:
        futures = [pool.submit(build_chunk, c, inbox, aggregator, str(scheme)) for c in chunks]
        for future in futures:
            for request in future.result():
                out.write(struct.pack("!I", len(request)) + request)
                written += 1
    return written


def read(path: Path) -> Iterator[bytes]:
    """The requests a :func:`build` file holds, in order."""
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        (size,) = struct.unpack_from("!I", data, offset)
        yield data[offset + 4 : offset + 4 + size]
        offset += 4 + size


def bodies(requests: Iterable[bytes]) -> Iterator[dict[str, object]]:
    """The JSON bodies of raw requests (to check what a file holds)."""
    for request in requests:
        yield json.loads(request.split(b"\r\n\r\n", 1)[1])
