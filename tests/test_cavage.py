"""draft-cavage-12 against Appendix C and our Mastodon-profile vector: byte for byte, flips fail."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from activitypub.cavage import (
    CavageAlgorithmError,
    CavageFormatError,
    MissingHeaderError,
    algorithm_for_key,
    find_signature,
    mastodon_signature,
    parse_signature_header,
    request_target,
    sign,
    signature_header,
    signed_times,
    signing_string,
    signing_strings,
    strength_problem,
    verify,
)
from activitypub.digest import check_digest
from activitypub.keys import generate_ed25519, private_key_from_pem, public_key_from_pem
from activitypub.rfc9421 import combine_fields

VECTORS = Path(__file__).resolve().parent / "vectors"
APPENDIX_C: dict[str, Any] = json.loads(
    (VECTORS / "cavage-12/cavage-12-appendix-c.json").read_text()
)
CASES = {case["id"]: case for case in APPENDIX_C["cases"]}
PRIVATE = private_key_from_pem((VECTORS / "cavage-12/test-key.priv.pem").read_bytes())
PUBLIC = public_key_from_pem((VECTORS / "cavage-12/test-key.pub.pem").read_bytes())
MASTODON: dict[str, Any] = json.loads(
    (VECTORS / "derived/mastodon-profile-signatures.json").read_text()
)
RSA_PRIVATE = private_key_from_pem((VECTORS / "rfc9421/test-key-rsa.priv.pem").read_bytes())
RSA_PUBLIC = public_key_from_pem(MASTODON["public_key_spki_pem"])
URL = "https://example.com/foo?param=value&pet=dog"


def appendix_headers() -> dict[str, str]:
    head = APPENDIX_C["request"].split("\n\n")[0].split("\n")[1:]
    return combine_fields((n, v) for n, _, v in (line.partition(":") for line in head))


def names_for(case: dict[str, Any]) -> list[str]:
    if case["id"] == "C.1-default":
        return ["date"]
    if case["id"] == "C.3-all-headers":
        # Erratum E(C.3): the printed list adds (created) (expires), which the signature omits.
        return str(case["headers_param_that_actually_verifies"]).split()
    return str(case["headers_param"]).split()


def unwrap(printed: str) -> str:
    """The draft wraps long header lines for print: rejoin them, base64 without the breaks."""
    joined = re.sub(r"\n\s*", " ", printed.split(": ", 1)[1]).strip()
    return re.sub(r'signature="[^"]*"', lambda m: m.group(0).replace(" ", ""), joined)


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("case_id", list(CASES))
def test_signing_string_byte_for_byte(case_id: str) -> None:
    case = CASES[case_id]
    text = signing_string(names_for(case), request_target("POST", URL), appendix_headers())
    assert text.encode() == (VECTORS / f"cavage-12/{case_id}.signing-string.txt").read_bytes()
    assert text == case["signing_string"]


@pytest.mark.parametrize("case_id", list(CASES))
def test_signature_reproduced_exactly(case_id: str) -> None:
    case = CASES[case_id]
    signature = sign(case["signing_string"], PRIVATE, "rsa-sha256")
    assert base64.b64encode(signature).decode() == case["signature"]
    assert verify(case["signing_string"], signature, PUBLIC, "rsa-sha256")
    assert verify(case["signing_string"], signature, PUBLIC, "hs2019")


@pytest.mark.parametrize("case_id", list(CASES))
def test_flipped_byte_fails(case_id: str) -> None:
    case = CASES[case_id]
    signature = base64.b64decode(case["signature"])
    text = case["signing_string"].encode()
    for index in (0, len(text) // 2, len(text) - 1):
        assert not verify(flip(text, index).decode(), signature, PUBLIC, "rsa-sha256")
    for index in (0, len(signature) // 2, len(signature) - 1):
        assert not verify(case["signing_string"], flip(signature, index), PUBLIC, "rsa-sha256")


def test_appendix_request_digest_matches_body() -> None:
    check_digest(appendix_headers()["digest"], APPENDIX_C["request_body"].encode())


def test_printed_default_header_parses_to_date() -> None:
    case = CASES["C.1-default"]
    parsed = parse_signature_header(unwrap(case["signature_header_as_printed"]))
    assert parsed.key_id == "Test"
    assert parsed.algorithm == "rsa-sha256"
    assert parsed.headers == ("date",)
    assert base64.b64encode(parsed.signature).decode() == case["signature"]


def test_printed_basic_authorization_parses() -> None:
    case = CASES["C.2-basic"]
    printed = unwrap(case["authorization_header_as_printed"])
    assert printed.startswith("Signature ")
    parsed = parse_signature_header(printed.removeprefix("Signature "))
    assert parsed.headers == ("(request-target)", "host", "date")
    text = signing_string(parsed.headers, request_target("POST", URL), appendix_headers())
    assert verify(text, parsed.signature, PUBLIC, parsed.algorithm)


def test_c3_erratum_printed_list_does_not_verify() -> None:
    case = CASES["C.3-all-headers"]
    parsed = parse_signature_header(unwrap(case["signature_header_as_printed"]))
    assert parsed.created == 1402170695 and parsed.expires == "1402170699"
    assert parsed.headers[:3] == ("(request-target)", "(created)", "(expires)")
    as_printed = signing_string(
        parsed.headers,
        request_target("POST", URL),
        appendix_headers(),
        created=parsed.created,
        expires=parsed.expires,
    )
    assert "(created): 1402170695\n(expires): 1402170699" in as_printed
    assert not verify(as_printed, parsed.signature, PUBLIC, "rsa-sha256")
    corrected = signing_string(names_for(case), request_target("POST", URL), appendix_headers())
    assert verify(corrected, parsed.signature, PUBLIC, "rsa-sha256")


def test_mastodon_profile_vector_reproduced() -> None:
    vector = MASTODON["cavage_mastodon"]
    headers = combine_fields(vector["headers"].items())
    check_digest(headers["digest"], vector["body"].encode())
    names = ["(request-target)", "host", "date", "digest", "content-type"]
    text = signing_string(names, request_target(vector["method"], vector["url"]), headers)
    assert text == vector["signing_string"]
    signature = sign(text, RSA_PRIVATE, algorithm_for_key(RSA_PRIVATE))
    assert base64.b64encode(signature).decode() == vector["signature"]
    header = signature_header(MASTODON["keyId"], "rsa-sha256", names, signature)
    assert header == vector["signature_header"]
    assert (
        signature_header(MASTODON["keyId"], "hs2019", names, signature)
        == (vector["signature_header_hs2019_variant"])
    )


@pytest.mark.parametrize("key", ["signature_header", "signature_header_hs2019_variant"])
def test_mastodon_profile_vector_verifies(key: str) -> None:
    vector = MASTODON["cavage_mastodon"]
    parsed = parse_signature_header(vector[key])
    headers = combine_fields(vector["headers"].items())
    text = signing_string(parsed.headers, request_target("POST", vector["url"]), headers)
    assert verify(text, parsed.signature, RSA_PUBLIC, parsed.algorithm)
    assert not verify(text.replace("bob", "bib"), parsed.signature, RSA_PUBLIC, parsed.algorithm)


def test_request_target_forms() -> None:
    assert request_target("POST", URL) == "post /foo?param=value&pet=dog"
    assert request_target("POST", URL, with_query=False) == "post /foo"
    assert request_target("GET", "https://example.com") == "get /"


def test_hs2019_with_ed25519() -> None:
    key = generate_ed25519()
    assert algorithm_for_key(key) == "hs2019"
    signature = sign("date: x", key, "hs2019")
    assert verify("date: x", signature, key.public_key(), "hs2019")
    assert not verify("date: y", signature, key.public_key(), "hs2019")
    with pytest.raises(CavageAlgorithmError):
        verify("date: x", signature, key.public_key(), "rsa-sha256")
    with pytest.raises(CavageAlgorithmError):
        sign("date: x", key, "rsa-sha256")


@pytest.mark.parametrize("algorithm", ["rsa-sha512", "hmac-sha256", "ed25519", ""])
def test_unsupported_algorithms(algorithm: str) -> None:
    with pytest.raises(CavageAlgorithmError):
        verify("date: x", b"sig", PUBLIC, algorithm)


def test_missing_algorithm_and_headers_default_like_mastodon() -> None:
    parsed = parse_signature_header('keyId="k",signature="AAAA"')
    assert parsed.algorithm == "hs2019"
    assert parsed.headers == ("(created)",)
    parsed = parse_signature_header('keyId="k", algorithm="RSA-SHA256" , signature="AAAA"')
    assert parsed.algorithm == "rsa-sha256"
    assert parsed.headers == ("date",)


@pytest.mark.parametrize(
    "value",
    [
        'algorithm="rsa-sha256",signature="AAAA"',
        'keyId="k",algorithm="rsa-sha256"',
        'keyId="k",signature="not base64!"',
        'keyId="k",keyId="j",signature="AAAA"',
        'keyId="k" signature="AAAA"',
        'keyId=k,signature="AAAA"',
        'keyId="k",signature="AAAA",created=1.5',
        'keyId="k",signature="AAAA",headers=""',
    ],
)
def test_malformed_headers(value: str) -> None:
    with pytest.raises(CavageFormatError):
        parse_signature_header(value)


def test_missing_header_and_pseudo_header_values() -> None:
    with pytest.raises(MissingHeaderError) as info:
        signing_string(["(request-target)", "digest"], "post /", {"host": "h"})
    assert info.value.name == "digest"
    with pytest.raises(MissingHeaderError):
        signing_string(["(created)"], "post /", {"(created)": "1"})
    text = signing_string(["(created)", "(expires)"], "get /", {}, created=5, expires="6.5")
    assert text == "(created): 5\n(expires): 6.5"


def test_signature_header_refuses_quotes() -> None:
    with pytest.raises(CavageFormatError):
        signature_header('a"b', "rsa-sha256", ["date"], b"x")


def test_mastodon_signature_profile_reproduces_the_vector() -> None:
    vector = MASTODON["cavage_mastodon"]
    headers = combine_fields(vector["headers"].items())
    value = mastodon_signature("POST", vector["url"], headers, MASTODON["keyId"], RSA_PRIVATE)
    assert value == vector["signature_header"]
    bodiless = {k: v for k, v in headers.items() if k in ("host", "date")}
    get = mastodon_signature("GET", vector["url"], bodiless, MASTODON["keyId"], RSA_PRIVATE)
    assert 'headers="(request-target) host date"' in get


def test_signed_times() -> None:
    parsed = parse_signature_header(
        'keyId="k",algorithm="hs2019",created=1402170695,headers="(created) date",signature="AA=="'
    )
    moments = signed_times(parsed, {"date": "Sun, 05 Jan 2014 21:31:40 GMT"})
    assert [m.isoformat() for m in moments] == [
        "2014-06-07T19:51:35+00:00",
        "2014-01-05T21:31:40+00:00",
    ]
    for bad in ({"date": "yesterday"}, {}):
        with pytest.raises(CavageFormatError):
            signed_times(parsed, bad)


def test_strength_problem_and_find_signature() -> None:
    assert strength_problem(["(request-target)", "host", "date", "digest"], "POST") is None
    assert strength_problem(["date", "digest"], "POST") is None
    assert strength_problem(["host", "date"], "GET") == "sign (request-target) or digest"
    assert strength_problem(["(request-target)", "host"], "POST") == "sign date or (created)"
    assert strength_problem(["(request-target)", "date"], "get") == "sign host on GET"
    assert find_signature({"signature": "a"}) == "a"
    assert find_signature({"authorization": "Signature keyId=1"}) == "keyId=1"
    assert find_signature({"authorization": "Bearer x"}) is None


def test_signing_strings_with_and_without_query() -> None:
    parsed = parse_signature_header(
        'keyId="Test",algorithm="rsa-sha256",headers="(request-target) host date",signature="AA=="'
    )
    texts = signing_strings(parsed, "POST", URL, appendix_headers())
    assert texts[0] == CASES["C.2-basic"]["signing_string"]
    assert texts[1] == texts[0].replace("/foo?param=value&pet=dog", "/foo")
    assert len(signing_strings(parsed, "POST", "https://example.com/foo", appendix_headers())) == 1
