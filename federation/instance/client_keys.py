"""Client-held keys: Ed25519 keys a resident registers so that only their own client can sign.

A resident's client generates an Ed25519 key pair, keeps the private key and registers the
public key (a FEP-521a Multikey, ``z6Mk…``) with a write token: ``POST {actor}/client-keys``
``{"name": "phone", "publicKeyMultibase": "z6Mk…"}``. It is listed in the actor's
``assertionMethod`` as ``{actor}#client-{name}``, so anyone can verify a FEP-8b32 proof it made
(see :mod:`federation.instance.c2s_signed`). ``GET {actor}/client-keys`` lists the live keys
(read scope), ``DELETE {actor}/client-keys/{name}`` takes one out of the actor (write scope);
activities it signed can no longer be verified by others afterwards, and its name is not
reused. A resident may hold :data:`MAX_KEYS` keys.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import federation.instance.app as instance_app
from activitypub.fetch import FetchError, parse_json_object
from activitypub.keys import KeyFormatError, multikey_decode
from federation.instance.actors import USERS_PATH
from federation.instance.c2s_acts import refusal
from federation.instance.oauth.bearer import authenticate
from federation.instance.ports import User
from federation.store.oauth import ClientKeyRecord, ClientKeyStore

KEYS_SUFFIX = "/client-keys"
KEY_FRAGMENT = "#client-"
MAX_KEYS = 10
MAX_BODY = 4096
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def client_key_id(actor_id: str, name: str) -> str:
    """The id of a client key in the actor's ``assertionMethod``."""
    return actor_id + KEY_FRAGMENT + name


def multikey(actor_id: str, record: ClientKeyRecord) -> dict[str, Any]:
    """A registered key as a FEP-521a Multikey controlled by the actor."""
    return {
        "id": record.key_id,
        "type": "Multikey",
        "controller": actor_id,
        "publicKeyMultibase": record.public_key_multibase,
    }


def _check_key(multibase: Any) -> str:
    if not isinstance(multibase, str):
        raise refusal(
            422, "invalid_input", "publicKeyMultibase: is required", field="publicKeyMultibase"
        )
    try:
        key = multikey_decode(multibase)
    except (KeyFormatError, ValueError) as exc:
        raise refusal(422, "invalid_key", f"publicKeyMultibase: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise refusal(
            422, "invalid_key", "publicKeyMultibase: only Ed25519 keys (z6Mk…) sign proofs"
        )
    return multibase


class ClientKeys:
    """The rules of client-key registration over :class:`ClientKeyStore`."""

    def __init__(self, store: ClientKeyStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def register(
        self, user: User, actor_id: str, name: Any, multibase: Any
    ) -> ClientKeyRecord:
        """Register a public key under ``name``; refusals name their rule (problem+json)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise refusal(
                422,
                "invalid_input",
                "name: 1-32 of a-z 0-9 and -, starting with a letter or digit",
                field="name",
            )
        multibase = _check_key(multibase)
        known = await self.store.keys_of(user.id)
        if len(known) >= MAX_KEYS:
            raise refusal(409, "too_many_keys", f"at most {MAX_KEYS} client keys; delete one first")
        if any(record.public_key_multibase == multibase for record in known):
            raise refusal(409, "key_already_registered", "this public key is registered already")
        record = ClientKeyRecord(
            client_key_id(actor_id, name), user.id, name, multibase, self.clock()
        )
        if not await self.store.add_key(record):
            raise refusal(
                409, "key_name_taken", f"the key name {name!r} is taken (names are never reused)"
            )
        return record

    async def key_ids(self, user: User) -> set[str]:
        """The ids of a resident's live client keys."""
        return {record.key_id for record in await self.store.keys_of(user.id)}

    async def entries(self, user: User, actor_id: str) -> list[dict[str, Any]]:
        """The resident's live keys as ``assertionMethod`` entries."""
        return [multikey(actor_id, record) for record in await self.store.keys_of(user.id)]


def _keys(app: web.Application) -> ClientKeys:
    return ClientKeys(ClientKeyStore(app[instance_app.DB]))


async def _owner(request: web.Request, need: str) -> tuple[User, str]:
    """The resident whose keys a route names, who must also be the token's bearer."""
    bearer = await authenticate(request, need)
    actor_id = request.app[instance_app.CONFIG].base_url + USERS_PATH + request.match_info["name"]
    if bearer.actor_id != actor_id:
        raise refusal(403, "not_your_keys", "a resident manages only their own client keys")
    return bearer.user, actor_id


async def list_keys(request: web.Request) -> web.Response:
    """GET {actor}/client-keys: the resident's live client keys."""
    user, actor_id = await _owner(request, "read")
    items = await _keys(request.app).entries(user, actor_id)
    return web.json_response({"id": actor_id + KEYS_SUFFIX, "items": items},
                             headers={"Cache-Control": "no-store"})  # fmt: skip


async def add_key(request: web.Request) -> web.Response:
    """POST {actor}/client-keys: register a public key; 201 with the Multikey."""
    user, actor_id = await _owner(request, "write")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise refusal(413, "too_large", f"the body exceeds {MAX_BODY} bytes")
    body = parse_json_or_refuse(await request.content.read(MAX_BODY + 1))
    record = await _keys(request.app).register(
        user, actor_id, body.get("name"), body.get("publicKeyMultibase")
    )
    return web.json_response(
        multikey(actor_id, record), status=201, headers={"Location": record.key_id}
    )


async def delete_key(request: web.Request) -> web.Response:
    """DELETE {actor}/client-keys/{key}: the key leaves the actor's assertionMethod."""
    user, actor_id = await _owner(request, "write")
    key_id = client_key_id(actor_id, request.match_info["key"])
    store = ClientKeyStore(request.app[instance_app.DB])
    if not await store.revoke_key(key_id, user.id, now=time.time()):
        raise refusal(404, "not_found", f"there is no live client key {key_id}")
    return web.Response(status=204)


def parse_json_or_refuse(body: bytes) -> dict[str, Any]:
    """A strict JSON object (no duplicate keys), or 400 ``invalid_json``."""
    if len(body) > MAX_BODY:
        raise refusal(413, "too_large", f"the body exceeds {MAX_BODY} bytes")
    try:
        return parse_json_object("body", body)
    except FetchError as exc:
        raise refusal(400, "invalid_json", exc.detail) from exc


def add_client_key_routes(app: web.Application) -> None:
    """GET/POST {actor}/client-keys and DELETE {actor}/client-keys/{key}."""
    base = USERS_PATH + "{name}" + KEYS_SUFFIX
    app.router.add_get(base, list_keys)
    app.router.add_post(base, add_key)
    app.router.add_delete(base + "/{key}", delete_key)
