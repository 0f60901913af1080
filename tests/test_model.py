"""federation.model: enum wire values, LangText, frozen and hashable dataclasses."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from federation import model
from federation.model import (
    Alignment,
    Announcement,
    LangText,
    Phase,
    Process,
    ProposalState,
    SupportRules,
    Territory,
    TerritoryKind,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
T1 = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)


def test_enum_wire_values_are_the_spec_literals() -> None:
    assert [k.value for k in TerritoryKind] == ["city", "district", "neighbourhood"]
    assert [s.value for s in ProposalState] == [
        "notAnswered",
        "evaluating",
        "accepted",
        "rejected",
        "withdrawn",
    ]
    assert [a.value for a in Alignment] == ["inFavor", "against", "neutral"]
    # StrEnum: the member is the wire string itself.
    assert ProposalState("notAnswered") == "notAnswered"
    assert f"{Alignment.IN_FAVOR}" == "inFavor"


def test_answered_states() -> None:
    answered = {s for s in ProposalState if s.answered}
    assert answered == {ProposalState.EVALUATING, ProposalState.ACCEPTED, ProposalState.REJECTED}


def test_langtext_sorts_translations_so_equal_texts_are_equal() -> None:
    a = LangText.of("Pressupostos", {"es": "Presupuestos", "ca": "Pressupostos"})
    b = LangText("Pressupostos", (("ca", "Pressupostos"), ("es", "Presupuestos")))
    assert a == b
    assert hash(a) == hash(b)
    assert a.languages == ("ca", "es")
    assert a.as_map() == {"ca": "Pressupostos", "es": "Presupuestos"}
    assert str(a) == "Pressupostos"


def test_langtext_get_falls_back_by_primary_language_then_default() -> None:
    text = LangText.of("Hello", {"ca-ES": "Hola (ca)", "es": "Hola"})
    assert text.get() == "Hello"
    assert text.get("ES") == "Hola"
    assert text.get("ca") == "Hola (ca)"
    assert text.get("es-MX") == "Hola"
    assert text.get("fr") == "Hello"


def test_langtext_as_map_is_a_copy() -> None:
    text = LangText.of("x", {"ca": "x"})
    text.as_map()["ca"] = "changed"
    assert text.get("ca") == "x"


@pytest.mark.parametrize(
    "by_lang",
    [(("ca", "a"), ("ca", "b")), (("ca", "a"), ("CA", "b")), (("", "a"),)],
)
def test_langtext_refuses_duplicate_or_empty_tags(by_lang: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(ValueError, match="tag"):
        LangText("a", by_lang)


def _process() -> Process:
    phase = Phase(
        name=LangText.of("Propostes", {"es": "Propuestas"}),
        start=T0,
        end=T1,
        allows_proposals=True,
        allows_supports=False,
        allows_comments=True,
        allows_debates=True,
    )
    return Process(
        id="https://gracia.barri.example/processes/1",
        owner="https://gracia.barri.example/groups/association",
        name=LangText.of("PP 2027"),
        summary=None,
        phases=(phase,),
        rules=SupportRules(10),
        eligible=(Territory(TerritoryKind.DISTRICT, "06"),),
        published=T0,
    )


def test_dataclasses_are_frozen() -> None:
    process = _process()
    with pytest.raises(dataclasses.FrozenInstanceError):
        process.name = LangText("other")  # type: ignore[misc]
    territory = Territory(TerritoryKind.CITY, "08019")
    with pytest.raises(dataclasses.FrozenInstanceError):
        territory.code = "x"  # type: ignore[misc]


def test_dataclasses_are_hashable_and_compare_by_value() -> None:
    assert hash(_process()) == hash(_process())
    assert _process() == _process()
    assert len({_process(), _process()}) == 1
    assert _process() != dataclasses.replace(_process(), url="https://gracia.barri.example/p/1")


def test_every_model_class_is_frozen_and_slotted() -> None:
    classes = [
        obj
        for obj in vars(model).values()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == model.__name__
    ]
    assert len(classes) >= 20
    for cls in classes:
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen, cls
        assert "__slots__" in vars(cls), cls


def test_announcement_hashes_without_its_activity_but_compares_it() -> None:
    base = {"id": "https://a.example/likes/1", "type": "Like"}
    one = Announcement(
        id="https://g.example/announce/1",
        group="https://g.example/groups/g",
        activity=MappingProxyType(dict(base)),
    )
    same = dataclasses.replace(one, activity=dict(base))
    other = dataclasses.replace(one, activity={**base, "type": "Dislike"})
    assert hash(one) == hash(same) == hash(other)
    assert one == same
    assert one != other
