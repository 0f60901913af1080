"""Barri's additions to actor documents (vocab-spec "actor-person/-group/-service").

A verified resident's Person carries ``verifiedResidentOf``; a Group (association) and the
aggregator's Service carry ``territory``. Pass the ``*_extras`` as ``ActorProfile.extra`` and
publish with ``barri_actor_document`` so that the ``@context`` defines our terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activitypub import as2
from activitypub.actors import ActorProfile, actor_document
from federation.model import Territory, TerritoryKind

from . import converter, reading
from .context import actor_context, territory_from_ap, territory_to_ap
from .wire import require_embedded

RESIDENT_KEY = "verifiedResidentOf"
TERRITORY_KEY = "territory"


def person_extras(territory: Territory | None) -> dict[str, Any]:
    """``verifiedResidentOf`` for a Person, present only once residency is verified."""
    return {} if territory is None else {RESIDENT_KEY: territory_to_ap(territory)}


def group_extras(territory: Territory) -> dict[str, Any]:
    """``territory`` for an association's Group."""
    return {TERRITORY_KEY: territory_to_ap(territory)}


def service_extras(territory: Territory) -> dict[str, Any]:
    """``territory`` for the aggregator's Service: always the city."""
    if territory.kind is not TerritoryKind.CITY:
        raise ValueError(f"the aggregator's territory must be a city, not a {territory.kind}")
    return {TERRITORY_KEY: territory_to_ap(territory)}


def barri_actor_document(profile: ActorProfile) -> dict[str, Any]:
    """``activitypub.actors.actor_document`` with our terms added to its ``@context``."""
    doc = actor_document(profile)
    doc["@context"] = actor_context()
    return doc


def _territory(actor_doc: Mapping[str, Any], key: str) -> Territory | None:
    value = as2.first(actor_doc, key)
    if value is None:
        return None
    embedded = require_embedded(value, key, "Territory")
    with reading(key):
        return territory_from_ap(embedded)


@converter
def resident_territory_from_ap(actor_doc: Mapping[str, Any]) -> Territory | None:
    """The territory a Person is a verified resident of, or None when unverified."""
    return _territory(actor_doc, RESIDENT_KEY)


@converter
def actor_territory_from_ap(actor_doc: Mapping[str, Any]) -> Territory | None:
    """The territory of a Group or Service actor, or None when it names none."""
    return _territory(actor_doc, TERRITORY_KEY)
