"""activitypub.memo: values found again by equality, and only where ``==`` is JSON equality."""

from __future__ import annotations

from typing import Any

import pytest

from activitypub.memo import EqualMemo, comparable

CONTEXT: list[Any] = [
    "https://www.w3.org/ns/activitystreams",
    {
        "barri": "https://w3id.org/barri/ns#",
        "phases": {"@id": "barri:phases", "@container": "@list"},
    },
]


def test_an_equal_value_finds_what_was_remembered() -> None:
    memo: EqualMemo[str] = EqualMemo(size=2)
    assert memo.get(CONTEXT) is None
    assert memo.put(CONTEXT, "scope") == "scope"
    copy_of = [CONTEXT[0], dict(CONTEXT[1])]
    assert memo.get(copy_of) == "scope"
    assert memo.get([CONTEXT[0]]) is None
    memo.put(["a"], "a")
    memo.get(CONTEXT)  # the most recent now
    memo.put(["b"], "b")  # forgets ["a"], the least recent
    assert (memo.get(["a"]), memo.get(["b"]), memo.get(CONTEXT)) == (None, "b", "scope")
    assert len(memo) == 2
    with pytest.raises(ValueError):
        EqualMemo(size=0)


def test_numbers_and_booleans_are_never_remembered() -> None:
    # True == 1 == 1.0 in Python, not in JSON: a memo must not answer for the other.
    memo: EqualMemo[str] = EqualMemo()
    for value in ({"@protected": True}, [1], {"n": 1.0}, {"x": [None, {"y": False}]}, 5):
        assert not comparable(value)
        memo.put(value, "no")
    assert len(memo) == 0
    assert memo.get({"@protected": 1}) is None
    assert comparable({"a": [None, "b", ("c",)]}) and not comparable({1: "a"})


def test_what_is_remembered_is_a_copy() -> None:
    memo: EqualMemo[str] = EqualMemo()
    key: dict[str, Any] = {"a": ["b"]}
    memo.put(key, "value")
    key["a"].append("changed")  # the caller's document changes afterwards
    assert memo.get(key) is None
    assert memo.get({"a": ["b"]}) == "value"
