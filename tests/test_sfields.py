"""activitypub.sfields: the fast path reads exactly what http_sf reads, or steps aside.

Dictionaries generated in the strict serialisation (by http_sf itself) parse to the same
members, and each member's text is its serialisation; any other text is either parsed the
same or refused with None (never parsed differently).
"""

from __future__ import annotations

from typing import Any

import http_sf
from http_sf.innerlist import ser_innerlist
from hypothesis import given, settings
from hypothesis import strategies as st

from activitypub.sfields import parse_dictionary

KEYS = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,6}", fullmatch=True)
STRINGS = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
BARE = STRINGS | st.integers(-(10**15) + 1, 10**15 - 1) | st.booleans()
PARAMS = st.dictionaries(KEYS, BARE, max_size=3)
INNER = st.tuples(st.lists(st.tuples(STRINGS, PARAMS), max_size=4), PARAMS)
BYTES = st.tuples(st.binary(max_size=40), PARAMS)
DICTIONARY = st.dictionaries(KEYS, INNER | BYTES, min_size=1, max_size=3)


def _reference(text: str) -> Any:
    try:
        return http_sf.parse(text.encode("ascii"), tltype="dictionary")
    except (ValueError, UnicodeEncodeError):
        return None


@settings(max_examples=500, deadline=None)
@given(DICTIONARY)
def test_serialised_dictionaries_parse_as_http_sf_parses_them(value: dict[str, Any]) -> None:
    text = http_sf.ser(value)
    fast = parse_dictionary(text)
    reference = _reference(text)
    if fast is None:
        return  # outside the subset (a decimal, a token, an escape): http_sf reads it
    members, texts = fast
    assert members == reference
    for key, member in members.items():
        if isinstance(member[0], list):
            assert texts[key] == ser_innerlist(member)


@settings(max_examples=1000, deadline=None)
@given(st.text(st.sampled_from(list('sig1=(")@a b;ke y:=AB+/0?-,\\\t')), max_size=40))
def test_any_other_text_is_parsed_the_same_or_left_to_http_sf(text: str) -> None:
    fast = parse_dictionary(text)
    if fast is not None:
        assert fast[0] == _reference(text)


def test_the_fields_a_signed_delivery_carries() -> None:
    signature_input = (
        'sig1=("@method" "@target-uri" "@authority" "content-digest");created=1764240000;'
        'keyid="https://a.example/users/anna#main-key";alg="rsa-v1_5-sha256"'
    )
    members, texts = parse_dictionary(signature_input) or ({}, {})
    assert members == _reference(signature_input)
    assert texts["sig1"] == signature_input[len("sig1=") :]
    digest = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:YQ==:"
    assert parse_dictionary(digest) == (
        _reference(digest),
        {"sha-256": ":X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", "sha-512": ":YQ==:"},
    )
    for other in ("sig1=:YQ:", 'a=("x";k=?1)', "a=(), a=()", "a=(),", "a=tok", 'a=("\\"")', ""):
        assert parse_dictionary(other) is None
