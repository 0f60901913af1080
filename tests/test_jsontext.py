"""activitypub.jsontext: orjson on the hot paths, reading and writing what json did.

Round trips; the refusals of :func:`loads` (ValueError, so the inbox answers 400); integers
beyond 64 bits read exactly; :func:`dumps` byte for byte equal to the compact ``json.dumps``
the call sites used, on real activities with non-ASCII and control characters; the values
orjson cannot write handed to json; and the refused bodies answered 400 problem+json by a real
inbox on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from activitypub import jsontext
from activitypub.errors import Problem, problem_middleware
from activitypub.inbox import InboxPipeline, _parse_activity, _utf8_text
from activitypub.keys import ActorKey
from activitypub.memstore import MemoryInboxStore
from federation.model import Support
from federation.vocab.support import support_to_ap

ORIGIN = "https://raval.barri.example"
ACTOR = f"{ORIGIN}/users/ana"
NASTY = 'x\u2028\u2029\x7f\x00\x1f"\\/é€😀\ud7ff\ue000\uffff'


def _old_compact(value: Any) -> str:
    """What the call sites wrote before (``json.dumps``, compact, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _support() -> dict[str, Any]:
    like = Support(
        id=f"{ACTOR}/supports/1", actor=ACTOR, proposal=f"{ORIGIN}/proposals/7",
        published=datetime(2026, 3, 1, 10, 0, tzinfo=UTC), to=(f"{ORIGIN}/groups/av",),
    )  # fmt: skip
    return support_to_ap(like)


def _activities() -> list[dict[str, Any]]:
    note = {
        "@context": ["https://www.w3.org/ns/activitystreams", {"barri": "https://w3id.org/barri#"}],
        "id": f"{ORIGIN}/notes/1",
        "type": "Note",
        "attributedTo": ACTOR,
        "name": "Plaça del Sol: més arbres 🌳",
        "content": '<p class="x">Línia 1\nLínia 2\t«cometes» \\ </p>',
        "contentMap": {"ca": "Més", "es": "Más", "ar": "مزيد", "zh": "更多"},
        NASTY: [NASTY, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, 0.1, -0.0, 1e16, 1e300],
        "flags": [True, False, None, [], {}, [[]], {"": ""}],
    }
    create = {"id": f"{ORIGIN}/acts/1", "type": "Create", "actor": ACTOR, "object": note}
    return [_support(), note, create, {"proof": {"proofValue": "z" + "1" * 86}}]


@pytest.mark.parametrize("index", range(4))
def test_dumps_is_the_compact_json_dumps_byte_for_byte(index: int) -> None:
    activity = _activities()[index]
    assert jsontext.dumps(activity) == _old_compact(activity)
    assert jsontext.dumpb(activity) == _old_compact(activity).encode("utf-8")
    assert jsontext.dumps(activity, sort_keys=True) == json.dumps(
        activity, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    )


@pytest.mark.parametrize("index", range(4))
def test_round_trip_from_bytes_and_from_text(index: int) -> None:
    activity = _activities()[index]
    assert jsontext.loads(jsontext.dumpb(activity)) == activity
    assert jsontext.loads(jsontext.dumps(activity)) == activity
    assert jsontext.loads_stored(jsontext.dumps(activity)) == activity
    assert jsontext.loads(json.dumps(activity, indent=2)) == activity  # any spacing


@pytest.mark.parametrize("index", range(4))
def test_a_stored_fragment_is_spliced_as_the_parsed_document_would_be_written(index: int) -> None:
    """A page of stored documents written with them spliced in is byte for byte the page
    written from the documents parsed again."""
    stored = jsontext.dumps(_activities()[index])
    parsed = {"orderedItems": [jsontext.loads_stored(stored)], "n": 1}
    spliced = {"orderedItems": [jsontext.stored_fragment(stored)], "n": 1}
    assert jsontext.dumpb(spliced) == jsontext.dumpb(parsed)


def test_a_stored_text_only_json_reads_is_written_as_json() -> None:
    """An older row holding ``Infinity`` (json wrote it; it is not JSON) is read and written
    again, so the page stays JSON (null, as orjson writes a non-finite float)."""
    stored = '{"a":Infinity,"b":"NaN here","c":[1]}'
    page = jsontext.dumpb({"orderedItems": [jsontext.stored_fragment(stored)]})
    assert jsontext.loads(page) == {"orderedItems": [{"a": None, "b": "NaN here", "c": [1]}]}


def test_small_floats_are_spelt_differently_but_read_back_the_same() -> None:
    # The one difference in output: worth knowing before comparing stored bytes.
    value = {"a": 1e-7, "b": 1e-05}
    assert jsontext.dumps(value) == '{"a":1e-7,"b":0.00001}' != _old_compact(value)
    assert json.loads(jsontext.dumps(value)) == value


REFUSED = {
    "utf-8 byte order mark": b"\xef\xbb\xbf{}",
    "utf-16": json.dumps({"a": "b"}).encode("utf-16"),
    "utf-16-be": json.dumps({"a": "b"}).encode("utf-16-be"),
    "utf-32": json.dumps({"a": "b"}).encode("utf-32"),
    "invalid utf-8": b'{"a":"\xff"}',
    "lone high surrogate": b'{"a":"\\ud800"}',
    "lone low surrogate": b'{"a":"\\udc00x"}',
    "NaN": b'{"a":NaN}',
    "Infinity": b'{"a":-Infinity}',
    "overflow to infinity": b'{"a":1e400}',
    "control character": b'{"a":"\x01"}',
    "trailing comma": b'{"a":1,}',
    "two documents": b"{}{}",
    "too deep": b"[" * 1025 + b"]" * 1025,
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_loads_refuses_with_value_error(name: str) -> None:
    body = REFUSED[name]
    with pytest.raises(ValueError):
        jsontext.loads(body)
    with pytest.raises(Problem) as refused:
        _parse_activity(body)  # the inbox door: anything but a Problem would be a 500
    assert refused.value.status == 400 and refused.value.extensions["reason"] == "invalid_json"


def test_text_input_is_held_to_the_same_rules() -> None:
    with pytest.raises(ValueError):
        jsontext.loads('{"a":"\ud800"}')  # a str with a lone surrogate cannot be UTF-8
    with pytest.raises(ValueError):
        jsontext.loads('{"a":NaN}')
    assert jsontext.loads('{"a":"é\\u00e9"}') == {"a": "éé"}


@pytest.mark.parametrize(
    "literal",
    ["18446744073709551616", "-9223372036854775809", "123456789012345678901234567890"],
)
def test_integers_beyond_64_bits_are_read_exactly(literal: str) -> None:
    body = f'{{"id":"https://a.example/1","n":[{literal}],"s":"{literal}"}}'
    # orjson alone reads them as floats, which no other reader of the stored text would.
    assert isinstance(json.loads(body)["n"][0], int)
    for data in (body, body.encode()):
        value = jsontext.loads(data)
        assert value == json.loads(body) and type(value["n"][0]) is int
    assert jsontext.dumps(jsontext.loads(body)) == _old_compact(json.loads(body))


def test_64_bit_edges_and_long_digit_strings_stay_on_the_fast_reader() -> None:
    body = b'{"n":[18446744073709551615,-9223372036854775808],"s":"12345678901234567890123"}'
    assert jsontext.loads(body) == {
        "n": [2**64 - 1, -(2**63)],
        "s": "12345678901234567890123",
    }


def test_loads_stored_reads_what_json_wrote_before() -> None:
    # A row written from a document json parsed elsewhere (1e400 -> inf) reads back as then.
    text = json.dumps({"a": float("inf"), "b": [float("-inf")]})
    with pytest.raises(ValueError):
        jsontext.loads(text)
    back = jsontext.loads_stored(text)
    assert back["a"] == float("inf") and back["b"] == [float("-inf")]
    with pytest.raises(ValueError):
        jsontext.loads_stored("{not json")


@pytest.mark.parametrize(
    "value",
    [
        {"n": 2**64},  # beyond orjson's 64 bits
        {"n": -(2**63) - 1},
        {1: "int key", "k": {2: None}},  # non-str keys: json writes them as strings
        {"deep": json.loads("[" * 300 + "]" * 300)},  # beyond orjson's 254 levels
    ],
)
def test_what_orjson_cannot_write_is_written_by_json_as_before(value: dict[Any, Any]) -> None:
    assert jsontext.dumps(value) == _old_compact(value)
    assert jsontext.dumpb(value) == _old_compact(value).encode("utf-8")
    if 1 not in value:  # json cannot sort int keys among str ones either
        assert jsontext.dumps(value, sort_keys=True) == json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), sort_keys=True
        )


def test_a_lone_surrogate_fails_as_json_failed() -> None:
    value = {"a": "\ud800"}
    assert jsontext.dumps(value) == _old_compact(value)  # as before: text SQLite refuses
    with pytest.raises(UnicodeEncodeError):
        jsontext.dumpb(value)


@pytest.mark.parametrize("value", [{"when": datetime(2026, 1, 1, tzinfo=UTC)}, {"s": {1}}])
def test_non_json_values_raise_type_error_as_json_did(value: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        jsontext.dumps(value)
    with pytest.raises(TypeError):
        jsontext.dumpb(value)


def test_json_response_carries_the_compact_body() -> None:
    activity = _activities()[2]
    response = jsontext.json_response(
        activity, status=201, content_type="application/activity+json", headers={"Vary": "Accept"}
    )
    assert response.status == 201 and response.body == _old_compact(activity).encode("utf-8")
    assert response.headers["Content-Type"] == "application/activity+json"
    assert response.headers["Vary"] == "Accept"
    assert jsontext.json_response({}).headers["Content-Type"] == jsontext.JSON_TYPE


def test_the_door_keeps_text_that_reads_back_as_the_activity() -> None:
    activity = {**_support(), "name": NASTY, "n": 2**70 + 1}  # no float reads it exactly
    body = json.dumps(activity, ensure_ascii=False).encode("utf-8")
    parsed = _parse_activity(body)
    text = _utf8_text(body)
    assert text is not None and parsed == activity
    assert jsontext.loads_stored(text) == json.loads(text) == parsed


async def _never(url: str, refresh: bool) -> Any:
    raise AssertionError("a refused body is never authenticated")


def _door() -> web.Application:
    pipeline = InboxPipeline(
        store=MemoryInboxStore(), resolve_key=_key_never, fetch_actor=_never, origin=ORIGIN
    )
    app = web.Application(middlewares=[problem_middleware])
    app.router.add_post("/inbox", pipeline.handle)
    return app


async def _key_never(key_id: str, refresh: bool) -> ActorKey:
    raise AssertionError("a refused body is never authenticated")


ClientMaker = Callable[[web.Application], Any]


@pytest.mark.parametrize("name", sorted(REFUSED))
async def test_the_inbox_answers_each_refused_body_400_problem_json(
    aiohttp_client: ClientMaker, name: str
) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(_door())
    response = await client.post(
        "/inbox", data=REFUSED[name], headers={"Content-Type": "application/activity+json"}
    )
    assert response.status == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = await response.json(content_type=None)
    assert problem["reason"] == "invalid_json" and problem["status"] == 400
