"""RFC 9421 against Appendix B: signature bases byte for byte, signatures verify, flips fail."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from activitypub.digest import DigestMismatchError, check_content_digest, make_content_digest
from activitypub.keys import PublicKey, private_key_from_pem, public_key_from_pem
from activitypub.rfc9421 import (
    AlgorithmError,
    ComponentError,
    Message,
    Rfc9421FormatError,
    SignatureInput,
    algorithms_for_key,
    combine_fields,
    parse_signature,
    parse_signature_input,
    sign,
    sign_message,
    signature_base,
    verify,
    verify_with_key,
)

VECTORS = Path(__file__).resolve().parent / "vectors"
APPENDIX_B: dict[str, Any] = json.loads((VECTORS / "rfc9421/rfc9421-appendix-b.json").read_text())
CASES = {case["id"]: case for case in APPENDIX_B["cases"]}
SECRET = base64.b64decode(APPENDIX_B["keys"]["test-shared-secret"]["base64"])


def parse_http(text: str) -> tuple[Message, bytes]:
    """Turn an Appendix B message (request or response) into a Message and its body."""
    head, _, body = text.partition("\n\n")
    first, *lines = head.split("\n")
    fields = tuple((n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines))
    if first.startswith("HTTP/"):
        return Message(status=int(first.split()[1]), fields=fields), body.encode()
    method, target, _ = first.split()
    host = combine_fields(fields)["host"]
    return Message(method=method, url=f"https://{host}{target}", fields=fields), body.encode()


def public_key(keyid: str) -> PublicKey | bytes:
    if keyid == "test-shared-secret":
        return SECRET
    return public_key_from_pem(APPENDIX_B["keys"][keyid]["public_pem"])


def case_message(case: dict[str, Any]) -> tuple[Message, bytes]:
    message, body = parse_http(case["http_message"])
    if case["id"] == "B.2.4":
        # Erratum (vectors README): the printed test-response carries a wrong sha-512
        # Content-Digest; the signed base uses the true digest of the body. Recompute it.
        fields = combine_fields(message.fields)
        with pytest.raises(DigestMismatchError):
            check_content_digest(fields["content-digest"], body)
        fixed = make_content_digest(body, ["sha-512"])
        message = Message(
            status=message.status,
            fields=tuple(
                (n, fixed if n.lower() == "content-digest" else v) for n, v in message.fields
            ),
        )
    return message, body


def case_input(case: dict[str, Any]) -> SignatureInput:
    inputs = parse_signature_input(case["signature_input_header"])
    assert list(inputs) == [case["label"]]
    return inputs[case["label"]]


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("case_id", list(CASES))
def test_signature_base_byte_for_byte(case_id: str) -> None:
    case = CASES[case_id]
    message, _ = case_message(case)
    base = signature_base(message, case_input(case))
    expected = (VECTORS / f"rfc9421/{case_id}.signature-base.txt").read_bytes()
    assert base.encode("ascii") == expected
    assert base == case["signature_base"]


@pytest.mark.parametrize("case_id", list(CASES))
def test_signature_input_reserialises_exactly(case_id: str) -> None:
    case = CASES[case_id]
    signature_input = case_input(case)
    assert f"{case['label']}={signature_input.serialise()}" == case["signature_input_header"]
    assert signature_input.keyid == case["keyid"]


@pytest.mark.parametrize("case_id", list(CASES))
def test_appendix_b_signature_verifies(case_id: str) -> None:
    case = CASES[case_id]
    signatures = parse_signature(case["signature_header"])
    assert signatures[case["label"]] == base64.b64decode(case["signature_b64"])
    message, _ = case_message(case)
    base = signature_base(message, case_input(case))
    assert verify(base, signatures[case["label"]], public_key(case["keyid"]), case["alg"])


@pytest.mark.parametrize("case_id", list(CASES))
def test_flipped_byte_in_base_or_signature_fails(case_id: str) -> None:
    case = CASES[case_id]
    signature = base64.b64decode(case["signature_b64"])
    key = public_key(case["keyid"])
    base = case["signature_base"].encode()
    for index in (0, len(base) // 2, len(base) - 2):
        assert not verify(flip(base, index).decode(), signature, key, case["alg"])
    for index in (0, len(signature) // 2, len(signature) - 1):
        assert not verify(case["signature_base"], flip(signature, index), key, case["alg"])


@pytest.mark.parametrize("case_id", ["B.2.2", "B.2.3", "B.2.4"])
def test_flipped_body_byte_fails(case_id: str) -> None:
    """The signature covers content-digest: a changed body breaks the digest or the signature."""
    case = CASES[case_id]
    message, body = case_message(case)
    tampered = flip(body, 2)
    digest = combine_fields(message.fields)["content-digest"]
    with pytest.raises(DigestMismatchError):
        check_content_digest(digest, tampered)
    # Re-deriving the digest from the tampered body changes the base, so the signature fails.
    redigested = Message(
        method=message.method,
        url=message.url,
        status=message.status,
        fields=tuple(
            (n, make_content_digest(tampered, ["sha-512"]) if n.lower() == "content-digest" else v)
            for n, v in message.fields
        ),
    )
    base = signature_base(redigested, case_input(case))
    signature = base64.b64decode(case["signature_b64"])
    assert not verify(base, signature, public_key(case["keyid"]), case["alg"])


@pytest.mark.parametrize(
    ("case_id", "private"),
    [("B.2.6", "test-key-ed25519"), ("B.4", "test-key-ed25519"), ("B.2.5", None)],
)
def test_deterministic_signatures_reproduced(case_id: str, private: str | None) -> None:
    case = CASES[case_id]
    key = (
        SECRET
        if private is None
        else private_key_from_pem(APPENDIX_B["keys"][private]["private_pem"])
    )
    assert (
        base64.b64encode(sign(case["signature_base"], key, case["alg"])).decode()
        == case["signature_b64"]
    )
    message, _ = case_message(case)
    signature_input = case_input(case)
    headers = sign_message(
        message,
        signature_input.components,
        key,
        signature_input.params,
        alg=case["alg"],
        label=case["label"],
    )
    assert headers == (case["signature_input_header"], case["signature_header"])


@pytest.mark.parametrize(
    ("case_id", "private"),
    [("B.2.1", "test-key-rsa-pss"), ("B.2.3", "test-key-rsa-pss"), ("B.2.4", "test-key-ecc-p256")],
)
def test_randomised_algorithms_round_trip(case_id: str, private: str) -> None:
    """RSA-PSS and ECDSA are randomised: our signatures verify, and fail once flipped."""
    case = CASES[case_id]
    key = private_key_from_pem(APPENDIX_B["keys"][private]["private_pem"])
    signature = sign(case["signature_base"], key, case["alg"])
    assert signature != base64.b64decode(case["signature_b64"])
    assert verify(case["signature_base"], signature, public_key(case["keyid"]), case["alg"])
    assert not verify(
        case["signature_base"], flip(signature, 5), public_key(case["keyid"]), case["alg"]
    )


@pytest.mark.parametrize("index", range(5))
def test_b4_transformations(index: int) -> None:
    case = CASES["B.4"]
    variant = case["transformed_variants"][index]
    message, _ = parse_http(variant["http_message"])
    fields = combine_fields(message.fields)
    inputs = parse_signature_input(fields["signature-input"])
    signature = parse_signature(fields["signature"])["transform"]
    base = signature_base(message, inputs["transform"])
    ok = verify(base, signature, public_key("test-key-ed25519"), "ed25519")
    assert ok is variant["signature_still_valid"]


def test_derived_components() -> None:
    message = Message.request(
        "GET",
        "https://WWW.Example.com:443/a%20b?x=1&y=%7E+z&x=two&empty=",
        [("Host", "www.example.com")],
    )
    components = (
        "@method",
        "@target-uri",
        "@authority",
        "@scheme",
        "@request-target",
        "@path",
        "@query",
    )
    params = [("@query-param", {"name": "x"}), ("@query-param", {"name": "y"})]
    si = SignatureInput("s", (*((c, {}) for c in components), *params))
    lines = signature_base(message, si).split("\n")
    assert lines[:-1] == [
        '"@method": GET',
        '"@target-uri": https://WWW.Example.com:443/a%20b?x=1&y=%7E+z&x=two&empty=',
        '"@authority": www.example.com',
        '"@scheme": https',
        '"@request-target": /a%20b?x=1&y=%7E+z&x=two&empty=',
        '"@path": /a%20b',
        '"@query": ?x=1&y=%7E+z&x=two&empty=',
        '"@query-param";name="x": 1',
        '"@query-param";name="x": two',
        '"@query-param";name="y": %7E%20z',
    ]


def test_authority_keeps_non_default_port_and_empty_query() -> None:
    message = Message.request("POST", "http://127.0.0.1:8080", {})
    si = SignatureInput("s", (("@authority", {}), ("@path", {}), ("@query", {})))
    assert signature_base(message, si).split("\n")[:3] == [
        '"@authority": 127.0.0.1:8080',
        '"@path": /',
        '"@query": ?',
    ]


def test_field_parameters_key_sf_bs() -> None:
    digest = "sha-512=:AAAA:,   sha-256=:BBBB:"
    message = Message.request(
        "POST", "https://e.example/", [("Content-Digest", digest), ("X-Two", "a "), ("x-two", " b")]
    )
    si = SignatureInput(
        "s",
        (
            ("content-digest", {"key": "sha-256"}),
            ("content-digest", {"sf": True}),
            ("x-two", {}),
            ("x-two", {"bs": True}),
        ),
    )
    assert signature_base(message, si).split("\n")[:4] == [
        '"content-digest";key="sha-256": :BBBB:',
        '"content-digest";sf: sha-512=:AAAA:, sha-256=:BBBB:',
        '"x-two": a, b',
        '"x-two";bs: :YQ==:, :Yg==:',
    ]


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ((("date", {}),), Message.request("GET", "https://e.example/", {})),
        ((("@nope", {}),), Message.request("GET", "https://e.example/", {})),
        ((("@status", {}),), Message.request("GET", "https://e.example/", {})),
        ((("@method", {}),), Message(status=200)),
        ((("@query-param", {"name": "q"}),), Message.request("GET", "https://e.example/?a=1", {})),
        ((("@query-param", {}),), Message.request("GET", "https://e.example/?a=1", {})),
        ((("@method", {}), ("@method", {})), Message.request("GET", "https://e.example/", {})),
        ((("Date", {}),), Message.request("GET", "https://e.example/", {"Date": "x"})),
        ((("date", {"tr": True}),), Message.request("GET", "https://e.example/", {"Date": "x"})),
        ((("date", {"key": "a"}),), Message.request("GET", "https://e.example/", {"Date": "x y"})),
        ((("date", {"sf": True}),), Message.request("GET", "https://e.example/", {"Date": "x"})),
        ((("x-a", {}),), Message.request("GET", "https://e.example/", {"X-A": "caf\u00e9"})),
        ((("@method", {"x": 1}),), Message.request("GET", "https://e.example/", {})),
    ],
)
def test_component_errors(components: tuple[Any, ...], message: Message) -> None:
    with pytest.raises(ComponentError):
        signature_base(message, SignatureInput("s", components))


@pytest.mark.parametrize(
    "value",
    ['sig1=("@method"', "sig1=:abc:", "sig1=(@method);created=1", "sig1=(1 2)", "é=()"],
)
def test_malformed_signature_input(value: str) -> None:
    with pytest.raises(Rfc9421FormatError):
        parse_signature_input(value)


@pytest.mark.parametrize("value", ['sig1=("@method")', "sig1=abc", "sig1=:ab", 'sig1="x"'])
def test_malformed_signature(value: str) -> None:
    with pytest.raises(Rfc9421FormatError):
        parse_signature(value)


def test_algorithm_must_fit_the_key() -> None:
    ed_key = public_key("test-key-ed25519")
    rsa_key = public_key("test-key-rsa-pss")
    ec_key = public_key("test-key-ecc-p256")
    base = CASES["B.2.6"]["signature_base"]
    sig = base64.b64decode(CASES["B.2.6"]["signature_b64"])
    with pytest.raises(AlgorithmError):
        verify(base, sig, ed_key, "rsa-v1_5-sha256")
    with pytest.raises(AlgorithmError):
        verify(base, sig, rsa_key, "ed25519")
    with pytest.raises(AlgorithmError):
        verify(base, sig, SECRET, "ed25519")
    with pytest.raises(AlgorithmError):
        verify(base, sig, ed_key, "rsa-sha256")
    with pytest.raises(AlgorithmError):
        sign(base, SECRET, "ed25519")
    assert algorithms_for_key(rsa_key) == ("rsa-v1_5-sha256", "rsa-pss-sha512")
    assert algorithms_for_key(ec_key) == ("ecdsa-p256-sha256",)
    assert not verify(base, sig[:40], ec_key, "ecdsa-p256-sha256")


def test_rsa_v1_5_is_deterministic_with_the_appendix_key() -> None:
    key = private_key_from_pem(APPENDIX_B["keys"]["test-key-rsa"]["private_pem"])
    base = CASES["B.2.6"]["signature_base"]
    first = sign(base, key, "rsa-v1_5-sha256")
    assert first == sign(base, key, "rsa-v1_5-sha256")
    assert verify(base, first, public_key("test-key-rsa"), "rsa-v1_5-sha256")
    # The same key must not verify a PKCS#1 v1.5 signature as PSS.
    assert not verify(base, first, public_key("test-key-rsa"), "rsa-pss-sha512")


def test_verify_with_key_chooses_by_key_or_alg() -> None:
    case = CASES["B.2.1"]  # no alg parameter: RSA tries v1_5, then PSS
    signature = base64.b64decode(case["signature_b64"])
    key = public_key("test-key-rsa-pss")
    assert isinstance(key, rsa.RSAPublicKey)
    allowed = ("rsa-v1_5-sha256", "rsa-pss-sha512")
    assert verify_with_key(case["signature_base"], signature, key, None, allowed)
    assert verify_with_key(case["signature_base"], signature, key, "rsa-pss-sha512", allowed)
    assert not verify_with_key(case["signature_base"], signature, key, "rsa-v1_5-sha256", allowed)
    with pytest.raises(AlgorithmError):
        verify_with_key(case["signature_base"], signature, key, None, ("ed25519",))
    with pytest.raises(AlgorithmError):
        verify_with_key(case["signature_base"], signature, key, "hmac-sha256", allowed)
