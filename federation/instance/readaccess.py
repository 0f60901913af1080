"""Authorised fetch on the read side: who may read a private activity or collection.

DESIGN.md §6: supports are not public; the collections that list them are readable only by the
owning Group and the aggregators the instance reports to, and a non-public activity only by
its addressees. A reader proves who it is with a signed GET (``Federation.authenticate_get``);
Barri's instance actor signs every fetch its server makes, so the server actor (Application
or Service) of a reader's origin counts as that reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from activitypub import as2
from activitypub.fetch import FetchError
from activitypub.inbox import refused
from activitypub.origin import OriginError, same_origin
from activitypub.runtime import FEDERATION
from federation.instance import app as instance_app
from federation.validation import shape_of

_SERVER_ACTOR_TYPES = frozenset({"Application", "Service"})


def supports_readers(app: web.Application, proposal_audience: str) -> set[str]:
    """Who may list a proposal's supports: the owning Group and the aggregators (DESIGN.md §6)."""
    return {proposal_audience, *app[instance_app.CONFIG].report_to}


def private_reason(document: Mapping[str, Any]) -> str:
    """The problem ``reason`` for refusing a private activity."""
    # A support and its withdrawal are the private acts DESIGN.md §6 names.
    support = shape_of(document) in ("support", "undo-support")
    return "supports_private" if support else "not_addressed"


def activity_readers(document: Mapping[str, Any]) -> set[str]:
    """Who may read a non-public activity: its actor and everyone it is addressed to."""
    readers = set(as2.addressees(document))
    actor = as2.first_id(document, "actor")
    if actor:
        readers.add(actor)
    return readers


async def require_reader(request: web.Request, readers: Iterable[str], reason: str) -> str:
    """The signer of an authorised fetch that may read; else 403 with ``reason``."""
    federation = request.app[FEDERATION]
    signed = await federation.authenticate_get(request)
    allowed = set(readers)
    if signed is not None and await may_read(request.app, signed.owner, allowed):
        return signed.owner
    who = "an unsigned request" if signed is None else signed.owner
    raise refused(403, reason, f"{who} may not read this; it is private to {sorted(allowed)}")


async def may_read(app: web.Application, signer: str, readers: set[str]) -> bool:
    """A reader itself, or the server actor (Application/Service) of a reader's server."""
    if signer in readers:
        return True
    if not any(_same_origin(signer, reader) for reader in readers):
        return False
    # Barri's instance actor signs every fetch its server makes: it stands for its Group.
    cache = app[FEDERATION].actors
    if cache is None:
        return False
    try:
        actor = await cache.actor(signer)
    except FetchError:
        return False
    return bool(set(as2.types(actor)) & _SERVER_ACTOR_TYPES)


def _same_origin(a: str, b: str) -> bool:
    try:
        return same_origin(a, b)
    except OriginError:
        return False  # an addressee that is no URL (a malformed address) shares no origin
