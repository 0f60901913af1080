"""FEP-fe34 authorisation rules of the inbox pipeline, as pure functions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from activitypub import jsontext
from activitypub.errors import Problem
from activitypub.inbox import _parse_activity, _utf8_text, authorise

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


def test_a_domain_owner_exception_admits_only_what_it_names() -> None:
    answer = {
        "id": "https://a.example/act/7",
        "type": "Update",
        "object": {"id": "https://b.example/p/1", "attributedTo": "https://b.example/users/bob"},
    }

    def group_answers(activity: Mapping[str, Any], actor: str) -> bool:
        return actor == A and activity["type"] == "Update"

    authorise(answer, A, group_answers)  # admitted by the domain rule
    with pytest.raises(Problem):
        authorise({**answer, "type": "Delete"}, A, group_answers)  # still refused
    with pytest.raises(Problem):
        authorise({**answer, "id": "https://b.example/act/7"}, A, group_answers)  # origins first


def test_the_body_is_kept_as_text_only_when_it_reads_the_same() -> None:
    activity = {"id": "https://a.example/1", "name": "Plaça del Sol"}
    utf8 = json.dumps(activity, ensure_ascii=False).encode("utf-8")
    assert json.loads(_utf8_text(utf8) or "") == json.loads(utf8) == activity
    assert jsontext.loads(_utf8_text(utf8) or "") == jsontext.loads(utf8) == activity
    # Not UTF-8 (RFC 8259 §8.1): the door refuses these (a 400), and were one ever parsed, its
    # text would still not be kept.
    for other in (b"\xef\xbb\xbf" + utf8, json.dumps(activity).encode("utf-16")):
        assert _utf8_text(other) is None
        with pytest.raises(Problem) as refused:
            _parse_activity(other)
        assert refused.value.status == 400
        assert refused.value.extensions["reason"] == "invalid_json"
