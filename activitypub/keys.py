"""Actor keys: RSA-2048 and Ed25519 generation, PEM, and FEP-521a Multikey encoding."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

# Multicodec varint prefixes (https://github.com/multiformats/multicodec, FEP-521a).
_ED25519_PUB = b"\xed\x01"
_RSA_PUB = b"\x85\x24"
_ED25519_PRIV = b"\x80\x26"
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
#: Each byte to its base58 digit value, 255 for a byte outside the alphabet (bytes.translate).
_B58_DIGITS = bytes(_B58.find(chr(byte)) % 256 for byte in range(256))
_B58_FOUR = 58**4


class KeyFormatError(ValueError):
    """A key in PEM or Multikey form could not be decoded."""


@dataclass(frozen=True)
class ActorKey:
    """A public key as an actor document lists it: its id, its owner actor and the key."""

    key_id: str
    owner: str
    public_key: PublicKey


def generate_rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA key (2048 bits, as Mastodon expects for ``publicKey``)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def generate_ed25519() -> ed25519.Ed25519PrivateKey:
    """A fresh Ed25519 key for FEP-8b32 proofs and RFC 9421 ``ed25519`` signatures."""
    return ed25519.Ed25519PrivateKey.generate()


def private_key_to_pem(key: PrivateKey) -> str:
    """PKCS#8 PEM, unencrypted (the store protects it)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def private_key_from_pem(pem: str | bytes, *, own: bool = False) -> PrivateKey:
    """Load an RSA, Ed25519 or EC private key from PKCS#8 or PKCS#1 PEM.

    ``own``: the key is one this server generated and kept in its own store (DESIGN.md §5,
    "private keys never leave the store"), so OpenSSL's RSA consistency check, which defends
    against malformed keys from elsewhere and takes about 40 ms per key, is skipped.
    """
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=own
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"not a usable private key PEM: {exc}") from exc
    if not isinstance(
        key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    ):
        raise KeyFormatError(f"unsupported private key type {type(key).__name__}")
    return key


def public_key_to_pem(key: PublicKey) -> str:
    """SPKI PEM, the form ``publicKeyPem`` carries."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def public_key_from_pem(pem: str | bytes) -> PublicKey:
    """Load a public key from SPKI or PKCS#1 (``BEGIN RSA PUBLIC KEY``) PEM."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data.strip() + b"\n")
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"not a usable public key PEM: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise KeyFormatError(f"unsupported public key type {type(key).__name__}")
    return key


def base58btc_encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 (draft-msporny-base58), leading zero bytes as '1'."""
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58[rem])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def base58btc_decode(text: str) -> bytes:
    """Inverse of :func:`base58btc_encode`; raises KeyFormatError on a foreign character."""
    # Digits by one C-level translate; the big integer grows by four digits a step (small-int
    # arithmetic within each), 1.4x faster than a lookup and a step per digit (every proof
    # verified decodes one 88-digit signature).
    digits = text.encode("ascii", "replace").translate(_B58_DIGITS)  # non-ASCII: "?", foreign
    if (bad := digits.find(255)) >= 0:
        raise KeyFormatError(f"invalid base58btc character {text[bad]!r}")
    head, number = len(digits) % 4, 0
    for digit in digits[:head]:
        number = number * 58 + digit
    quads = iter(digits[head:])
    for a, b, c, d in zip(quads, quads, quads, quads, strict=True):  # len % 4 == 0
        number = number * _B58_FOUR + ((a * 58 + b) * 58 + c) * 58 + d
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def multikey_encode(key: PublicKey) -> str:
    """``publicKeyMultibase`` for an Ed25519 or RSA public key (FEP-521a)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "z" + base58btc_encode(_ED25519_PUB + raw)
    if isinstance(key, rsa.RSAPublicKey):
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        return "z" + base58btc_encode(_RSA_PUB + der)
    raise KeyFormatError(f"no Multikey encoding for {type(key).__name__}")


def multikey_decode(value: str) -> ed25519.Ed25519PublicKey | rsa.RSAPublicKey:
    """Decode a ``publicKeyMultibase`` value (base58btc, Ed25519 or RSA) (FEP-521a)."""
    if not isinstance(value, str) or not value.startswith("z"):
        raise KeyFormatError("publicKeyMultibase must be base58btc ('z' prefix)")
    return _multikey(value)


@functools.lru_cache(maxsize=4096)
def _multikey(value: str) -> ed25519.Ed25519PublicKey | rsa.RSAPublicKey:
    """``multikey_decode`` remembered: a verifier decodes the same actors' keys for every
    activity it checks, and a public key is immutable (a failure raises again every time)."""
    data = base58btc_decode(value[1:])
    if data.startswith(_ED25519_PUB) and len(data) == 34:
        return ed25519.Ed25519PublicKey.from_public_bytes(data[2:])
    if data.startswith(_RSA_PUB):
        try:
            key = serialization.load_der_public_key(data[2:])
        except ValueError as exc:
            raise KeyFormatError(f"bad RSA Multikey: {exc}") from exc
        if isinstance(key, rsa.RSAPublicKey):
            return key
    raise KeyFormatError("unsupported multicodec key type (Ed25519 and RSA only)")


def ed25519_seed_from_multibase(value: str) -> ed25519.Ed25519PrivateKey:
    """Load an Ed25519 private key from ``privateKeyMultibase`` (multicodec 0x1300)."""
    data = base58btc_decode(value[1:]) if value.startswith("z") else b""
    if not data.startswith(_ED25519_PRIV) or len(data) != 34:
        raise KeyFormatError("not an Ed25519 privateKeyMultibase")
    return ed25519.Ed25519PrivateKey.from_private_bytes(data[2:])
