"""activitypub.keys against FEP-521a, the W3C vc-di-eddsa key pair, base58btc and PEM vectors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519

from activitypub.keys import (
    KeyFormatError,
    base58btc_decode,
    base58btc_encode,
    ed25519_seed_from_multibase,
    generate_ed25519,
    generate_rsa,
    multikey_decode,
    multikey_encode,
    private_key_from_pem,
    private_key_to_pem,
    public_key_from_pem,
    public_key_to_pem,
)

# draft-msporny-base58-03 §5 test vectors (also cross-checked against `multiformats`).
BASE58_VECTORS = [
    (b"Hello World!", "2NEpo7TZRRrLZSi2U"),
    (
        b"The quick brown fox jumps over the lazy dog.",
        "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z",
    ),
    (bytes.fromhex("0000287fb4cd"), "11233QC4"),
]


def _fep521a_scenarios(vectors: Path) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Parse the two FEP-521a scenarios: key type -> (key bytes from hex, Multikey object)."""
    text = (vectors / "fep" / "fep-521a.feature").read_text()
    found = re.findall(
        r'Given the (Ed25519|RSA) public key[^"]*"([0-9a-f]+)".*?"""(.*?)"""', text, re.S
    )
    assert len(found) == 2
    return {kind: (bytes.fromhex(hexkey), json.loads(obj)) for kind, hexkey, obj in found}


def _raw(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _flip_char(text: str, index: int) -> str:
    """Replace one base58 character by its neighbour in the alphabet."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    new = alphabet[(alphabet.index(text[index]) + 1) % len(alphabet)]
    return text[:index] + new + text[index + 1 :]


# --- FEP-521a Multikey -----------------------------------------------------------------------


def test_fep521a_ed25519_hex_encodes_to_the_published_multikey(vectors: Path) -> None:
    raw, multikey = _fep521a_scenarios(vectors)["Ed25519"]
    key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    assert multikey_encode(key) == multikey["publicKeyMultibase"]
    assert multikey["publicKeyMultibase"].startswith("z6Mk")


def test_fep521a_ed25519_multikey_decodes_to_the_published_hex(vectors: Path) -> None:
    raw, multikey = _fep521a_scenarios(vectors)["Ed25519"]
    key = multikey_decode(multikey["publicKeyMultibase"])
    assert isinstance(key, ed25519.Ed25519PublicKey)
    assert _raw(key) == raw


def test_fep521a_rsa_pkcs1_der_encodes_to_the_published_multikey(vectors: Path) -> None:
    der, multikey = _fep521a_scenarios(vectors)["RSA"]
    key = serialization.load_der_public_key(der)
    assert isinstance(key, rsa.RSAPublicKey)
    assert multikey_encode(key) == multikey["publicKeyMultibase"]
    assert multikey["publicKeyMultibase"].startswith("z4MX")


def test_fep521a_rsa_multikey_decodes_to_the_published_pkcs1_der(vectors: Path) -> None:
    der, multikey = _fep521a_scenarios(vectors)["RSA"]
    key = multikey_decode(multikey["publicKeyMultibase"])
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1) == der


def test_fep521a_flipped_multikey_character_gives_another_key(vectors: Path) -> None:
    raw, multikey = _fep521a_scenarios(vectors)["Ed25519"]
    key = multikey_decode(_flip_char(multikey["publicKeyMultibase"], 20))
    assert isinstance(key, ed25519.Ed25519PublicKey)
    assert _raw(key) != raw


def test_fep521a_flipped_multicodec_prefix_is_rejected(vectors: Path) -> None:
    _, multikey = _fep521a_scenarios(vectors)["Ed25519"]
    data = bytearray(base58btc_decode(multikey["publicKeyMultibase"][1:]))
    data[0] ^= 0x01
    with pytest.raises(KeyFormatError):
        multikey_decode("z" + base58btc_encode(bytes(data)))


# --- W3C vc-di-eddsa key pair ----------------------------------------------------------------


def test_w3c_private_multibase_derives_the_published_public_multibase(vectors: Path) -> None:
    pair = json.loads((vectors / "vc-di-eddsa" / "keyPair.json").read_text())
    private = ed25519_seed_from_multibase(pair["privateKeyMultibase"])
    assert multikey_encode(private.public_key()) == pair["publicKeyMultibase"]


def test_w3c_public_multibase_round_trips(vectors: Path) -> None:
    pair = json.loads((vectors / "vc-di-eddsa" / "keyPair.json").read_text())
    key = multikey_decode(pair["publicKeyMultibase"])
    assert isinstance(key, ed25519.Ed25519PublicKey)
    assert multikey_encode(key) == pair["publicKeyMultibase"]


def test_w3c_flipped_private_multibase_derives_another_public_key(vectors: Path) -> None:
    pair = json.loads((vectors / "vc-di-eddsa" / "keyPair.json").read_text())
    private = ed25519_seed_from_multibase(_flip_char(pair["privateKeyMultibase"], 30))
    assert multikey_encode(private.public_key()) != pair["publicKeyMultibase"]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq",  # no 'z' multibase prefix
        "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",  # a public key, not a private one
        "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjx",  # one character short
        "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjx0",  # '0' is not base58btc
    ],
)
def test_bad_private_multibase_raises(value: str) -> None:
    with pytest.raises(KeyFormatError):
        ed25519_seed_from_multibase(value)


# --- base58btc -------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "text"), BASE58_VECTORS)
def test_base58btc_draft_vectors(data: bytes, text: str) -> None:
    assert base58btc_encode(data) == text
    assert base58btc_decode(text) == data


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"", ""), (b"\0", "1"), (b"\0\0\0", "111"), (b"\0\0\x01", "112"), (b"\x00\xff", "15Q")],
)
def test_base58btc_empty_and_leading_zero_bytes(data: bytes, text: str) -> None:
    assert base58btc_encode(data) == text
    assert base58btc_decode(text) == data


def test_base58btc_round_trips_every_leading_zero_count() -> None:
    for zeros in range(5):
        for body in (b"", b"\x01", b"\xff\x00\x10", bytes(range(1, 40))):
            data = b"\0" * zeros + body
            assert base58btc_decode(base58btc_encode(data)) == data


def test_base58btc_round_trips_every_length() -> None:
    """Every remainder of the four-digit steps the decoder takes, up to a signature's size."""
    for size in range(70):
        data = bytes((7 * n + size) % 256 for n in range(size))
        assert base58btc_decode(base58btc_encode(data)) == data


@pytest.mark.parametrize("char", ["0", "O", "I", "l", "+", "/", " ", "é", "?", "\0", "\U0001f600"])
def test_base58btc_rejects_characters_outside_the_alphabet(char: str) -> None:
    with pytest.raises(KeyFormatError, match=re.escape(f"character {char!r}")):
        base58btc_decode("2NEpo7" + char + "TZRRrLZSi2U")


@pytest.mark.parametrize("value", [["z6Mk"], {"z": 1}, 42, None, "f00", ""])
def test_multikey_decode_refuses_what_is_not_a_base58btc_string(value: Any) -> None:
    """Decoded keys are remembered; an unhashable or foreign value is still a format error."""
    with pytest.raises(KeyFormatError):
        multikey_decode(value)


def test_a_remembered_multikey_is_the_same_key_and_a_bad_one_keeps_failing() -> None:
    value = multikey_encode(ed25519.Ed25519PrivateKey.generate().public_key())
    assert multikey_decode(value) is multikey_decode(value)
    flipped = value[:-1] + ("2" if value[-1] != "2" else "3")
    assert multikey_decode(flipped) != multikey_decode(value)
    for _ in range(2):
        with pytest.raises(KeyFormatError):
            multikey_decode(value + "0")


# --- PEM -------------------------------------------------------------------------------------


def test_rsa_pkcs1_public_pem_loads_and_round_trips_through_spki(vectors: Path) -> None:
    pem = (vectors / "rfc9421" / "test-key-rsa.pub.pem").read_text()
    assert "BEGIN RSA PUBLIC KEY" in pem
    key = public_key_from_pem(pem)
    assert isinstance(key, rsa.RSAPublicKey)
    spki = public_key_to_pem(key)
    assert spki.startswith("-----BEGIN PUBLIC KEY-----")
    again = public_key_from_pem(spki)
    assert isinstance(again, rsa.RSAPublicKey)
    assert again.public_numbers() == key.public_numbers()
    jwk = json.loads((vectors / "rfc9421" / "test-key-rsa.jwk.json").read_text())
    assert key.public_numbers().n == int.from_bytes(_b64url(jwk["n"]), "big")


def test_rsa_spki_public_pem_loads(vectors: Path) -> None:
    key = public_key_from_pem((vectors / "cavage-12" / "test-key.pub.pem").read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    private = private_key_from_pem((vectors / "cavage-12" / "test-key.priv.pem").read_text())
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.public_key().public_numbers() == key.public_numbers()


def test_rsa_pkcs1_private_pem_round_trips_through_pkcs8(vectors: Path) -> None:
    key = private_key_from_pem((vectors / "rfc9421" / "test-key-rsa.priv.pem").read_text())
    assert isinstance(key, rsa.RSAPrivateKey)
    pkcs8 = private_key_to_pem(key)
    assert pkcs8.startswith("-----BEGIN PRIVATE KEY-----")
    again = private_key_from_pem(pkcs8)
    assert isinstance(again, rsa.RSAPrivateKey)
    assert again.private_numbers() == key.private_numbers()
    public = public_key_from_pem((vectors / "rfc9421" / "test-key-rsa.pub.pem").read_text())
    assert isinstance(public, rsa.RSAPublicKey)
    assert key.public_key().public_numbers() == public.public_numbers()


def test_ed25519_pems_round_trip_and_match_the_jwk(vectors: Path) -> None:
    jwk = json.loads((vectors / "rfc9421" / "test-key-ed25519.jwk.json").read_text())
    private = private_key_from_pem((vectors / "rfc9421" / "test-key-ed25519.priv.pem").read_text())
    public = public_key_from_pem((vectors / "rfc9421" / "test-key-ed25519.pub.pem").read_text())
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    assert _raw(public) == _b64url(jwk["x"])
    assert _raw(private.public_key()) == _raw(public)
    again = private_key_from_pem(private_key_to_pem(private))
    assert isinstance(again, ed25519.Ed25519PrivateKey)
    assert again.private_bytes_raw() == _b64url(jwk["d"])
    reloaded = public_key_from_pem(public_key_to_pem(public))
    assert isinstance(reloaded, ed25519.Ed25519PublicKey)
    assert _raw(reloaded) == _raw(public)


def test_ec_p256_pems_load(vectors: Path) -> None:
    private = private_key_from_pem((vectors / "rfc9421" / "test-key-ecc-p256.priv.pem").read_text())
    public = public_key_from_pem((vectors / "rfc9421" / "test-key-ecc-p256.pub.pem").read_text())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert private.public_key().public_numbers() == public.public_numbers()


def test_public_pem_tolerates_surrounding_whitespace(vectors: Path) -> None:
    pem = (vectors / "rfc9421" / "test-key-ed25519.pub.pem").read_text()
    key = public_key_from_pem("\n  " + pem.strip() + "  \n\n")
    assert isinstance(key, ed25519.Ed25519PublicKey)


# --- generation ------------------------------------------------------------------------------


def test_generate_rsa_is_2048_bits_with_f4() -> None:
    key = generate_rsa()
    assert key.key_size == 2048
    assert key.public_key().public_numbers().e == 65537


def test_generate_ed25519_gives_distinct_keys_that_sign() -> None:
    a, b = generate_ed25519(), generate_ed25519()
    assert _raw(a.public_key()) != _raw(b.public_key())
    a.public_key().verify(a.sign(b"barri"), b"barri")


def test_generated_keys_round_trip_through_pem_and_multikey() -> None:
    ed = generate_ed25519()
    ed_back = private_key_from_pem(private_key_to_pem(ed))
    assert isinstance(ed_back, ed25519.Ed25519PrivateKey)
    assert ed_back.private_bytes_raw() == ed.private_bytes_raw()
    decoded = multikey_decode(multikey_encode(ed.public_key()))
    assert isinstance(decoded, ed25519.Ed25519PublicKey)
    assert _raw(decoded) == _raw(ed.public_key())


def test_own_key_loads_without_the_rsa_check_and_still_signs() -> None:
    key = generate_rsa()
    loaded = private_key_from_pem(private_key_to_pem(key), own=True)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == key.private_numbers()
    signature = loaded.sign(b"barri", padding.PKCS1v15(), hashes.SHA256())
    key.public_key().verify(signature, b"barri", padding.PKCS1v15(), hashes.SHA256())


def test_the_rsa_check_stays_on_for_keys_from_elsewhere() -> None:
    numbers = generate_rsa().private_numbers()
    broken = rsa.RSAPrivateNumbers(
        numbers.p, numbers.q, numbers.d, numbers.dmp1 + 2, numbers.dmq1, numbers.iqmp,
        numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)  # fmt: skip
    pem = private_key_to_pem(broken)
    with pytest.raises(KeyFormatError):
        private_key_from_pem(pem)
    assert isinstance(private_key_from_pem(pem, own=True), rsa.RSAPrivateKey)


# --- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "not a pem at all",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"\xff\xfe",
    ],
)
def test_garbage_pem_raises_key_format_error(pem: str | bytes) -> None:
    with pytest.raises(KeyFormatError):
        public_key_from_pem(pem)
    with pytest.raises(KeyFormatError):
        private_key_from_pem(pem)


def test_public_pem_given_to_the_private_loader_raises(vectors: Path) -> None:
    with pytest.raises(KeyFormatError):
        private_key_from_pem((vectors / "rfc9421" / "test-key-rsa.pub.pem").read_text())


def test_unsupported_key_types_raise() -> None:
    x = x25519.X25519PrivateKey.generate()
    with pytest.raises(KeyFormatError):
        public_key_from_pem(
            x.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    with pytest.raises(KeyFormatError):
        private_key_from_pem(
            x.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with pytest.raises(KeyFormatError):
        multikey_encode(ec.generate_private_key(ec.SECP256R1()).public_key())


@pytest.mark.parametrize(
    "value",
    [
        "",
        "6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",  # base58btc without the 'z'
        "uAO0B",  # base64url multibase, not supported
        "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2do",  # Ed25519 prefix, 31-byte key
        "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2do0",  # invalid character
        "z" + base58btc_encode(b"\xe7\x01" + b"\x02" * 33),  # secp256k1-pub multicodec
        "z" + base58btc_encode(b"\x85\x24" + b"\x30\x03\x02\x01\x00"),  # RSA prefix, bad DER
    ],
)
def test_bad_multikey_raises(value: str) -> None:
    with pytest.raises(KeyFormatError):
        multikey_decode(value)


def test_non_string_multikey_raises() -> None:
    with pytest.raises(KeyFormatError):
        multikey_decode(b"z6Mk")  # type: ignore[arg-type]
