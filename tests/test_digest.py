"""RFC 3230 Digest and RFC 9530 Content-Digest against the published samples (RFC 9530 App. D)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from activitypub.digest import (
    DigestFormatError,
    DigestMismatchError,
    DigestUnsupportedError,
    check_content_digest,
    check_digest,
    make_content_digest,
    make_digest,
    parse_content_digest,
    parse_digest,
)


@pytest.fixture
def samples(vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((vectors / "rfc9530/rfc9530-digest-samples.json").read_text())
    return data


def _body(samples: dict[str, Any]) -> bytes:
    return str(samples["input_json_no_newline"]).encode()


def test_content_digest_sha256_matches_appendix_d(samples: dict[str, Any]) -> None:
    expected = samples["sample_digest_values_byte_sequence"]["sha-256"]
    assert make_content_digest(_body(samples)) == "sha-256=" + expected
    header = samples["content_digest_header_example_for_above"]
    assert "Content-Digest: " + make_content_digest(_body(samples)) == header


def test_content_digest_sha512_matches_appendix_d(samples: dict[str, Any]) -> None:
    expected = samples["sample_digest_values_byte_sequence"]["sha-512"]
    assert make_content_digest(_body(samples), ["sha-512"]) == "sha-512=" + expected


def test_content_digest_both_algorithms_in_order(samples: dict[str, Any]) -> None:
    value = make_content_digest(_body(samples), ["sha-512", "sha-256"])
    assert value.startswith("sha-512=:WZDPaVn/") and ", sha-256=:X48E9q" in value
    assert list(parse_content_digest(value)) == ["sha-512", "sha-256"]
    check_content_digest(value, _body(samples))


def test_content_digest_with_trailing_lf(samples: dict[str, Any]) -> None:
    body = str(samples["appendix_b_input_with_trailing_LF"]).encode()
    assert make_content_digest(body) == samples["appendix_b_sha256_with_trailing_LF"]


def test_legacy_digest_matches_mastodon_form(samples: dict[str, Any]) -> None:
    line = samples["legacy_digest_header_rfc3230_as_used_by_mastodon"]
    assert "Digest: " + make_digest(_body(samples)) == line


def test_parse_legacy_digest_is_case_insensitive_and_skips_unknown(samples: dict[str, Any]) -> None:
    value = "UNIXsum=30637, sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
    parsed = parse_digest(value)
    assert list(parsed) == ["sha-256"]
    assert parsed["sha-256"] == base64.b64decode("X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=")
    check_digest(value, _body(samples))


def test_check_passes_for_the_sample_values(samples: dict[str, Any]) -> None:
    body = _body(samples)
    for algorithm, value in samples["sample_digest_values_byte_sequence"].items():
        if algorithm in ("sha-256", "sha-512"):
            check_content_digest(f"{algorithm}={value}", body)
    check_digest(make_digest(body, "sha-512"), body)


def test_flipped_body_byte_fails(samples: dict[str, Any]) -> None:
    body = bytearray(_body(samples))
    body[3] ^= 0x01
    with pytest.raises(DigestMismatchError):
        check_content_digest(make_content_digest(_body(samples)), bytes(body))
    with pytest.raises(DigestMismatchError):
        check_digest(make_digest(_body(samples)), bytes(body))


def test_flipped_digest_byte_fails(samples: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode("X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="))
    raw[0] ^= 0x80
    encoded = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(DigestMismatchError):
        check_content_digest(f"sha-256=:{encoded}:", _body(samples))
    with pytest.raises(DigestMismatchError):
        check_digest(f"SHA-256={encoded}", _body(samples))


def test_one_wrong_algorithm_among_right_ones_fails(samples: dict[str, Any]) -> None:
    good = make_content_digest(_body(samples))
    bad = make_content_digest(b"other", ["sha-512"])
    with pytest.raises(DigestMismatchError):
        check_content_digest(f"{good}, {bad}", _body(samples))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("md5=:Sd/dVLAcvNLSq16eXua5uQ==:", DigestUnsupportedError),
        ("sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", DigestFormatError),
        ("sha-256=:AAAA:", DigestFormatError),
        ("sha-256=:X48E9qOokq", DigestFormatError),
        ("", DigestUnsupportedError),
    ],
)
def test_content_digest_refusals(
    samples: dict[str, Any], value: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check_content_digest(value, _body(samples))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("MD5=Sd/dVLAcvNLSq16eXua5uQ==", DigestUnsupportedError),
        ("SHA-256", DigestFormatError),
        ("SHA-256=not*base64", DigestFormatError),
        ("SHA-256=AAAA", DigestFormatError),
    ],
)
def test_legacy_digest_refusals(
    samples: dict[str, Any], value: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check_digest(value, _body(samples))


def test_unknown_algorithm_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        make_digest(b"x", "md5")
    with pytest.raises(ValueError, match="unsupported"):
        make_content_digest(b"x", ["md5"])
