"""A loopback aggregator stand-in that accepts every signed delivery at once (202).

``python -m benchmarks.c2skit.sink PORT`` serves, on 127.0.0.1:PORT,

- ``GET /actor``: a ``Service`` with an inbox, a shared inbox and an RSA ``#main-key``;
- ``POST /inbox``: 202 for a request carrying an HTTP signature (401 without one); its
  activity's type, id and arrival time are kept (signatures are not verified: the instance's
  sending side is what is measured, not an aggregator's ingest);
- ``POST /follow?object=ACTOR&inbox=INBOX``: sends a cavage-signed ``Follow`` of ``ACTOR``;
- ``GET /stats``: deliveries by activity type, distinct ids, first and last arrival
  (``time.time()``), and the Accepts received.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from activitypub.httpsig import Scheme, SigningKey, sign_request

AS2 = "application/activity+json"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"


@dataclass
class Tally:
    """What arrived."""

    by_type: Counter[str] = field(default_factory=Counter)
    ids: set[str] = field(default_factory=set)
    unsigned: int = 0
    first: float | None = None
    last: float | None = None

    def stats(self) -> dict[str, Any]:
        """The tally as JSON."""
        return {
            "deliveries": sum(self.by_type.values()),
            "distinct": len(self.ids),
            "by_type": dict(self.by_type),
            "unsigned": self.unsigned,
            "first": self.first,
            "last": self.last,
        }


def make_app(port: int) -> web.Application:
    """The sink's routes on ``http://127.0.0.1:PORT``."""
    base = f"http://127.0.0.1:{port}"
    actor_id = base + "/actor"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    document = {
        "@context": [AS_CONTEXT, "https://w3id.org/security/v1"],
        "id": actor_id,
        "type": "Service",
        "preferredUsername": "sink",
        "inbox": base + "/inbox",
        "outbox": base + "/outbox",
        "endpoints": {"sharedInbox": base + "/inbox"},
        "publicKey": {
            "id": actor_id + "#main-key",
            "owner": actor_id,
            "publicKeyPem": pem.decode(),
        },
    }
    tally = Tally()
    signing = SigningKey(actor_id + "#main-key", key)

    async def actor(_request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(document).encode(), content_type=AS2)

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        if "Signature" not in request.headers and "Signature-Input" not in request.headers:
            tally.unsigned += 1
            return web.Response(status=401)
        activity = json.loads(body)
        now = time.time()
        tally.first = now if tally.first is None else tally.first
        tally.last = now
        tally.by_type[str(activity.get("type"))] += 1
        tally.ids.add(str(activity.get("id")))
        return web.Response(status=202)

    async def follow(request: web.Request) -> web.Response:
        target, inbox_url = request.query["object"], request.query["inbox"]
        activity = {
            "@context": AS_CONTEXT,
            "id": f"{base}/follows/{uuid.uuid4().hex}",
            "type": "Follow",
            "actor": actor_id,
            "object": target,
        }
        body = json.dumps(activity).encode()
        headers = sign_request(
            "POST", inbox_url, {"Content-Type": AS2}, body, signing, Scheme.CAVAGE
        )
        async with (
            aiohttp.ClientSession() as session,
            session.post(inbox_url, data=body, headers=headers) as response,
        ):
            return web.json_response({"status": response.status, "text": await response.text()})

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(tally.stats())

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/actor", actor)
    app.router.add_post("/inbox", inbox)
    app.router.add_post("/follow", follow)
    app.router.add_get("/stats", stats)
    return app


if __name__ == "__main__":
    web.run_app(make_app(int(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[1]), print=None)
