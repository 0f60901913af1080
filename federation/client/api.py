"""The C2S calls ``barri client`` makes with a bearer token (ActivityPub §6, DESIGN.md §6).

Every call sends ``Authorization: Bearer`` and refreshes the access token first when it is
about to expire (the new tokens are handed to ``on_refresh`` to be saved). A POST to the outbox
answers ``201`` with ``Location`` and the stored activity; a refusal is problem+json whose
``reason`` names the rule, raised here as :class:`ClientError`.

Client-held keys: :func:`signed_support` builds a support ``Like`` the way the server expects
from a client that signs (its own fresh id under ``{server}/supports/``, ``published`` now,
``to`` the proposal's owning Group) and proves it with the client's Ed25519 key (FEP-8b32),
so the server stores and delivers it exactly as signed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from activitypub.integrity import create_proof
from federation.client.credentials import ClientError, Credentials
from federation.client.oauth import AS2_ACCEPT, json_of, refresh, refusal

LD_JSON = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
REFRESH_MARGIN = 60.0  # seconds before expiry when the access token is renewed
SIGNED_CONTEXT = [
    "https://www.w3.org/ns/activitystreams",
    "https://w3id.org/security/data-integrity/v2",
]


class C2SClient:
    """One resident's client session against their instance."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: Credentials,
        on_refresh: Callable[[Credentials], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.credentials = credentials
        self._on_refresh = on_refresh
        self._clock = clock

    async def token(self) -> str:
        """A live access token, refreshed (and saved) when it is about to expire."""
        if self._clock() >= self.credentials.expires_at - REFRESH_MARGIN:
            self.credentials = await refresh(self.session, self.credentials)
            self._on_refresh(self.credentials)
        return self.credentials.access_token

    async def _headers(self, accept: str = AS2_ACCEPT) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}", "Accept": accept}

    async def get(self, url: str) -> dict[str, Any]:
        """GET an AS2 document with the token (private items of one's own collections too)."""
        async with self.session.get(url, headers=await self._headers()) as response:
            body = await json_of(response)
            if response.status != 200:
                raise refusal(response.status, body)
        return body

    async def post(self, activity: dict[str, Any]) -> dict[str, Any]:
        """POST an activity (or bare object) to the outbox; the stored activity back."""
        headers = {**await self._headers(), "Content-Type": LD_JSON}
        body = json.dumps(activity, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        async with self.session.post(
            self.credentials.outbox, data=body, headers=headers
        ) as response:
            stored = await json_of(response)
            if response.status != 201:
                raise refusal(response.status, stored)
            if response.headers.get("Location") != stored.get("id"):
                raise ClientError("bad_response", "Location is not the stored activity's id")
        return stored

    async def outbox(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` activities of one's outbox, following ``next`` pages."""
        collection = await self.get(self.credentials.outbox)
        items: list[dict[str, Any]] = []
        page_url = collection.get("first")
        while isinstance(page_url, str) and len(items) < limit:
            page = await self.get(page_url)
            items.extend(item for item in page.get("orderedItems", []) if isinstance(item, dict))
            page_url = page.get("next")
        return items[:limit]

    async def register_key(self, name: str, multibase: str) -> dict[str, Any]:
        """Register a client-held public key; it joins the actor's assertionMethod."""
        headers = {**await self._headers("application/json"), "Content-Type": "application/json"}
        url = self.credentials.actor + "/client-keys"
        payload = {"name": name, "publicKeyMultibase": multibase}
        async with self.session.post(url, json=payload, headers=headers) as response:
            body = await json_of(response)
            if response.status != 201:
                raise refusal(response.status, body)
        return body

    async def support_target(self, proposal_id: str) -> str:
        """The Group a support of ``proposal_id`` is addressed to (its ``audience``)."""
        proposal = await self.get(proposal_id)
        audience = proposal.get("audience")
        if not isinstance(audience, str):
            raise ClientError("not_a_proposal", f"{proposal_id} names no audience")
        return audience


def signed_support(
    credentials: Credentials, proposal_id: str, audience: str, key: Ed25519PrivateKey, key_id: str
) -> dict[str, Any]:
    """A support ``Like`` proved by the client's own key (FEP-8b32 eddsa-jcs-2022)."""
    like = {
        "@context": list(SIGNED_CONTEXT),
        "id": f"{credentials.server}/supports/{uuid.uuid4().hex}",
        "type": "Like",
        "actor": credentials.actor,
        "object": proposal_id,
        "published": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "to": [audience],
    }
    return create_proof(like, key, key_id)


def signed_undo(
    credentials: Credentials, like_id: str, audience: str, key: Ed25519PrivateKey, key_id: str
) -> dict[str, Any]:
    """The withdrawal of a support, proved by the client's own key."""
    undo = {
        "@context": list(SIGNED_CONTEXT),
        "id": f"{credentials.server}/activities/{uuid.uuid4().hex}",
        "type": "Undo",
        "actor": credentials.actor,
        "object": like_id,
        "published": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "to": [audience],
    }
    return create_proof(undo, key, key_id)
