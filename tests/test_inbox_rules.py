"""FEP-fe34 authorisation rules of the inbox pipeline, as pure functions."""

from __future__ import annotations

import pytest

from activitypub.errors import Problem
from activitypub.inbox import authorise

A = "https://a.example/users/alice"


def _reason(activity: dict[str, object], actor: str = A) -> str | None:
    try:
        authorise(activity, actor)
    except Problem as problem:
        return str(problem.extensions["reason"])
    return None


def test_same_origin_create_is_allowed() -> None:
    assert _reason({"id": "https://a.example/act/1", "type": "Create", "actor": A}) is None


def test_activity_id_on_another_origin_is_refused() -> None:
    assert _reason({"id": "https://b.example/act/1", "type": "Create"}) == "origin_mismatch"


def test_origin_compares_case_and_default_port_insensitively() -> None:
    activity = {"id": "HTTPS://A.EXAMPLE:443/act/1", "type": "Like"}
    assert _reason(activity) is None


@pytest.mark.parametrize("kind", ["Update", "Delete", "Undo"])
def test_owner_only_activities_on_foreign_objects_are_refused(kind: str) -> None:
    foreign = {"id": "https://b.example/notes/1", "attributedTo": "https://b.example/users/bob"}
    activity = {"id": "https://a.example/act/2", "type": kind, "object": foreign}
    assert _reason(activity) == "not_owner"


def test_undo_of_someone_elses_like_on_same_origin_is_refused() -> None:
    like = {
        "id": "https://a.example/likes/1",
        "type": "Like",
        "actor": "https://a.example/users/eve",
    }
    activity = {"id": "https://a.example/act/3", "type": "Undo", "object": like}
    assert _reason(activity) == "not_owner"


def test_undo_of_own_like_is_allowed_embedded_or_by_id() -> None:
    like = {"id": "https://a.example/likes/1", "type": "Like", "actor": A}
    assert _reason({"id": "https://a.example/act/4", "type": "Undo", "object": like}) is None
    by_id = {"id": "https://a.example/act/5", "type": "Undo", "object": "https://a.example/likes/1"}
    assert _reason(by_id) is None


def test_delete_without_object_is_a_bad_request() -> None:
    assert _reason({"id": "https://a.example/act/6", "type": "Delete"}) == "object_missing"
