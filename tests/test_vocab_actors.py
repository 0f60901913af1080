"""federation.vocab.actors: Barri's territory terms on actor documents, reproduced against the
published actor examples byte for byte and read back through the same converters."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rdflib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from activitypub.actors import ActorProfile
from activitypub.jsonld import check_document, to_graph
from activitypub.keys import private_key_from_pem
from federation.model import Territory, TerritoryKind
from federation.vocab.actors import (
    actor_territory_from_ap,
    barri_actor_document,
    group_extras,
    person_extras,
    resident_territory_from_ap,
    service_extras,
)
from federation.vocab.context import actor_context
from schemas import SCHEMAS_DIR
from tests.vocab_samples import BARCELONA, GRACIA_NEIGHBOURHOOD

EXAMPLES = SCHEMAS_DIR / "examples"
# Which example key files sign for which actor example.
KEY_NAMES = {
    "actor-person": "ana",
    "actor-group": "association",
    "actor-service": "aggregator",
    "actor-application": "instance",
}
BARRI = rdflib.Namespace("https://w3id.org/barri/ns#")


def example(shape: str) -> dict[str, Any]:
    path = EXAMPLES / f"{shape}.json"
    assert path.is_file(), f"schemas/examples/{shape}.json is missing"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _keys(name: str) -> tuple[RSAPrivateKey, Ed25519PrivateKey]:
    rsa_key = private_key_from_pem((EXAMPLES / "keys" / f"{name}.rsa.pem").read_bytes())
    ed_key = private_key_from_pem((EXAMPLES / "keys" / f"{name}.ed25519.pem").read_bytes())
    assert isinstance(rsa_key, RSAPrivateKey) and isinstance(ed_key, Ed25519PrivateKey)
    return rsa_key, ed_key


def _profile(doc: dict[str, Any], name: str, extra: dict[str, Any]) -> ActorProfile:
    """The profile the example actor document was made from, with our ``extra``."""
    rsa_key, ed_key = _keys(name)
    return ActorProfile(
        id=doc["id"],
        type=doc["type"],
        preferred_username=doc["preferredUsername"],
        name=doc.get("name"),
        summary=doc.get("summary"),
        inbox=doc["inbox"],
        outbox=doc["outbox"],
        followers=doc["followers"],
        following=doc["following"],
        shared_inbox=doc.get("endpoints", {}).get("sharedInbox"),
        url=doc.get("url"),
        rsa_public_key=rsa_key.public_key(),
        ed25519_public_key=ed_key.public_key(),
        manually_approves_followers=doc["manuallyApprovesFollowers"],
        discoverable=doc["discoverable"],
        published=doc.get("published"),
        extra=extra,
    )


def _extras(shape: str, doc: dict[str, Any]) -> dict[str, Any]:
    if shape == "actor-person":
        return person_extras(resident_territory_from_ap(doc))
    territory = actor_territory_from_ap(doc)
    if shape == "actor-group":
        assert territory is not None
        return group_extras(territory)
    if shape == "actor-service":
        assert territory is not None
        return service_extras(territory)
    assert territory is None and resident_territory_from_ap(doc) is None
    return {}


@pytest.mark.parametrize("shape", list(KEY_NAMES))
def test_barri_actor_document_reproduces_the_example(shape: str) -> None:
    doc = example(shape)
    ours = barri_actor_document(_profile(doc, KEY_NAMES[shape], _extras(shape, doc)))
    assert ours == doc
    assert list(ours) == list(doc)  # the same key order, so the same bytes


def test_the_examples_carry_the_expected_territories() -> None:
    assert resident_territory_from_ap(example("actor-person")) == GRACIA_NEIGHBOURHOOD
    assert actor_territory_from_ap(example("actor-group")) == GRACIA_NEIGHBOURHOOD
    assert actor_territory_from_ap(example("actor-service")) == BARCELONA
    # A Person names where it lives with verifiedResidentOf, never with territory.
    assert actor_territory_from_ap(example("actor-person")) is None


def test_actor_context_is_the_actor_context_plus_our_terms_and_is_fresh() -> None:
    one = actor_context()
    assert one == example("actor-person")["@context"]
    one[-1]["territory"] = "https://evil.example/territory"
    assert actor_context()[-1]["territory"] == {"@id": "barri:territory"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_verified_residency_is_in_the_rdf_graph() -> None:
    doc = barri_actor_document(
        _profile(example("actor-person"), "ana", person_extras(GRACIA_NEIGHBOURHOOD))
    )
    check_document(doc)
    graph = to_graph(doc)
    places = list(graph.objects(rdflib.URIRef(doc["id"]), BARRI.verifiedResidentOf))
    assert len(places) == 1
    assert (places[0], BARRI.territoryCode, rdflib.Literal("31")) in graph


def test_an_unverified_person_has_no_residency() -> None:
    assert person_extras(None) == {}
    doc = barri_actor_document(_profile(example("actor-person"), "ana", person_extras(None)))
    assert "verifiedResidentOf" not in doc
    assert resident_territory_from_ap(doc) is None


def test_extras_cannot_replace_core_actor_properties() -> None:
    for extras in (person_extras(BARCELONA), group_extras(BARCELONA), service_extras(BARCELONA)):
        assert not {"@context", "id", "type", "name"} & set(extras)
    assert service_extras(BARCELONA) == {
        "territory": {
            "type": "Territory",
            "territoryKind": "city",
            "territoryCode": "08019",
            "name": "Barcelona",
        }
    }
    district = Territory(TerritoryKind.DISTRICT, "06", "Gràcia")
    assert group_extras(district)["territory"]["territoryKind"] == "district"
