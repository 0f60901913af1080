"""FEP-fe34 origins: normalisation, refusals, and the remembered-prefix path agreeing with a
full RFC 3986 parse of every URL."""

from __future__ import annotations

import pytest

from activitypub.origin import (
    Origin,
    OriginError,
    _parsed_origin,
    origin_of,
    same_origin,
    strip_fragment,
)

ORIGINS = [
    ("http://127.0.0.1:8000/users/anna", Origin("http", "127.0.0.1", 8000)),
    ("HTTPS://Example.COM./a?b#c", Origin("https", "example.com", 443)),
    ("https://[::1]:99/p", Origin("https", "::1", 99)),
    ("https://bücher.example/x", Origin("https", "xn--bcher-kva.example", 443)),
    ("https://host:443", Origin("https", "host", 443)),
    ("http://user:pw@h:81/x", Origin("http", "h", 81)),
    ("https://a#frag", Origin("https", "a", 443)),
    ("http://a?q", Origin("http", "a", 80)),
    # urlsplit drops tabs and newlines anywhere, and leading spaces: the same authority.
    ("http://a\t/b", Origin("http", "a", 80)),
    ("http://a\n.b/", Origin("http", "a.b", 80)),
    ("  http://a/", Origin("http", "a", 80)),
    # Only the first authority counts, whatever the path holds.
    ("https://a/b/c://d/e", Origin("https", "a", 443)),
]

REFUSED = [
    "http://:80/", "http://a:bad/", "https://[::1", "http://", "https:///x", "ftp://a/",
    "mailto:someone@a", "/relative/path", "", "https://\u2100.example/",
]  # fmt: skip


@pytest.mark.parametrize(("url", "origin"), ORIGINS)
def test_an_origin_is_normalised(url: str, origin: Origin) -> None:
    assert origin_of(url) == origin
    assert origin_of(url) == origin  # read again, now from the remembered prefix


@pytest.mark.parametrize("url", REFUSED)
def test_a_url_without_usable_origin_is_refused(url: str) -> None:
    with pytest.raises(OriginError):
        origin_of(url)
    with pytest.raises(OriginError):
        origin_of(url)  # a refusal is not remembered as an answer


@pytest.mark.parametrize("url", [url for url, _ in ORIGINS] + REFUSED)
def test_the_prefix_path_answers_as_a_full_parse(url: str) -> None:
    def answer(read: object) -> Origin | str:
        try:
            return read(url)  # type: ignore[operator, no-any-return]
        except OriginError:
            return "refused"

    assert answer(origin_of) == answer(_parsed_origin)


def test_same_origin_compares_normalised_origins() -> None:
    assert same_origin("https://Example.com:443/a", "https://example.com./b")
    assert not same_origin("https://example.com/a", "http://example.com/a")
    assert not same_origin("https://example.com/a", "https://example.com:8443/a")
    assert not same_origin("not a url", "not a url")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/users/ana#main-key", "https://a.example/users/ana"),
        ("https://a.example/users/ana#k#2", "https://a.example/users/ana"),  # the first '#'
        ("https://a.example/users/ana", "https://a.example/users/ana"),
        # Byte for byte otherwise: no re-serialisation that would make these equal the actor.
        ("https://a.example/users/ana?#k", "https://a.example/users/ana?"),
        ("HTTPS://A.example//users/ana#k", "HTTPS://A.example//users/ana"),
    ],
)
def test_strip_fragment_drops_only_the_fragment(url: str, expected: str) -> None:
    assert strip_fragment(url) == expected
