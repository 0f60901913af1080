"""RFC 9421 HTTP Message Signatures: components, signature base, algorithms, sign and verify.

This module is the byte-level layer: it builds the signature base for any covered components
and signs or verifies it. Policy (which components are required, time windows, which
algorithms a server accepts, key lookup) lives in :mod:`activitypub.httpsig`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from activitypub.keys import PrivateKey, PublicKey
from activitypub.sfields import parse_dictionary, serialise_inner_list

Params = dict[str, Any]
Component = tuple[str, Params]  # a component identifier: name and its parameters (§2)

ALGORITHMS = ("rsa-pss-sha512", "rsa-v1_5-sha256", "hmac-sha256", "ecdsa-p256-sha256", "ed25519")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FIELD_PARAMS = {"sf", "key", "bs"}
_PLAIN_STRING = re.compile(r"[ !#-\[\]-~]*")  # an sf-string with nothing to escape
# http_sf (with decimal, ~0.7 MB) is imported by the functions that need the full structured
# field parser or serialiser, not at the top: fields in the strict serialisation every sender
# writes are read by :mod:`.sfields`, so an idle server need not hold it.
# Structured fields that http_sf's retrofit table does not know (RFC 9530, RFC 9421 §4, §5).
_SF_TYPES = dict.fromkeys(
    ("content-digest", "repr-digest", "signature", "signature-input", "accept-signature"),
    "dictionary",
)


class Rfc9421FormatError(ValueError):
    """A Signature-Input or Signature field that cannot be parsed (RFC 9421 §4)."""


class ComponentError(Rfc9421FormatError):
    """A covered component that the message cannot supply (RFC 9421 §2.5, step 2)."""


class AlgorithmError(ValueError):
    """An unknown algorithm, or one that does not fit the key's type (RFC 9421 §3.3)."""


@dataclass(frozen=True)
class Message:
    """The parts of an HTTP request or response that components are derived from."""

    method: str | None = None
    url: str | None = None
    status: int | None = None
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def request(
        cls, method: str, url: str, headers: Mapping[str, str] | Iterable[tuple[str, str]]
    ) -> Message:
        """A request message; ``headers`` may be a mapping or a list of field lines."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        return cls(method=method, url=url, fields=tuple((k, v) for k, v in items))


@dataclass(frozen=True)
class SignatureInput:
    """One member of ``Signature-Input``: its label, covered components and parameters."""

    label: str
    components: tuple[Component, ...]
    params: Params = field(default_factory=dict)
    #: The member's text when it was read in the strict serialisation (:mod:`.sfields`):
    #: then it *is* :meth:`serialise`'s result, and need not be built again.
    text: str | None = field(default=None, compare=False, repr=False)

    @property
    def keyid(self) -> str | None:
        """The ``keyid`` parameter, when it is a string."""
        value = self.params.get("keyid")
        return value if isinstance(value, str) else None

    def names(self) -> list[str]:
        """The covered component names, without their parameters."""
        return [name for name, _ in self.components]

    def serialise(self) -> str:
        """The ``@signature-params`` value: the inner list with its parameters (§2.3)."""
        if self.text is not None:
            return self.text
        # What a signer builds (plain names; created, keyid, alg) is in the strict subset.
        fast = serialise_inner_list(self.components, self.params)
        if fast is not None:
            return fast
        from http_sf.innerlist import ser_innerlist

        return ser_innerlist(([(n, dict(p)) for n, p in self.components], dict(self.params)))


def combine_fields(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Field values by lowercased name, each line trimmed and repeats joined by ", " (§2.1)."""
    combined: dict[str, list[str]] = {}
    for name, value in fields:
        combined.setdefault(name.lower(), []).append(" ".join(value.split("\r\n")).strip(" \t"))
    return {name: ", ".join(values) for name, values in combined.items()}


def parse_signature_input(value: str) -> dict[str, SignatureInput]:
    """Parse a ``Signature-Input`` Dictionary (RFC 9421 §4.1)."""
    out: dict[str, SignatureInput] = {}
    fast = parse_dictionary(value)
    members, texts = fast if fast is not None else (_parse_dictionary(value, "Signature-Input"), {})
    for label, (member, params) in members.items():
        if not isinstance(member, list):
            raise Rfc9421FormatError(f"Signature-Input {label!r} is not an inner list")
        components: list[Component] = []
        for name, item_params in member:
            if not isinstance(name, str):
                raise Rfc9421FormatError(f"component {name!r} is not a string")
            components.append((name, dict(item_params)))
        out[label] = SignatureInput(label, tuple(components), dict(params), texts.get(label))
    return out


def parse_signature(value: str) -> dict[str, bytes]:
    """Parse a ``Signature`` Dictionary into {label: signature bytes} (RFC 9421 §4.2)."""
    out: dict[str, bytes] = {}
    fast = parse_dictionary(value)
    members = fast[0] if fast is not None else _parse_dictionary(value, "Signature")
    for label, (member, _) in members.items():
        if not isinstance(member, bytes):
            raise Rfc9421FormatError(f"Signature {label!r} is not a byte sequence")
        out[label] = member
    return out


def _parse_dictionary(value: str, name: str) -> dict[str, Any]:
    import http_sf

    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (ValueError, UnicodeEncodeError) as exc:
        raise Rfc9421FormatError(f"{name} is not a structured dictionary: {exc}") from exc
    if not isinstance(parsed, dict):  # pragma: no cover - tltype="dictionary" guarantees it
        raise Rfc9421FormatError(f"{name} is not a dictionary")
    return parsed


def signature_base(
    message: Message, signature_input: SignatureInput, fields: Mapping[str, str] | None = None
) -> str:
    """The signature base: one line per component, then ``@signature-params`` (§2.5).
    ``fields``: the message's :func:`combine_fields`, when the caller has them already."""
    fields = combine_fields(message.fields) if fields is None else fields
    lines: list[str] = []
    seen: set[str] = set()
    for name, params in signature_input.components:
        identifier = _identifier(name, params)
        if identifier in seen or name != name.lower():
            raise ComponentError(f"component {identifier} is repeated or not lowercase")
        seen.add(identifier)
        for value in _component_values(message, fields, name, params):
            if "\n" in value or "\r" in value or not value.isascii():
                raise ComponentError(f"component {identifier} has a non-ASCII or multi-line value")
            lines.append(f"{identifier}: {value}")
    lines.append(f'"@signature-params": {signature_input.serialise()}')
    return "\n".join(lines)


def _identifier(name: str, params: Params) -> str:
    """A component identifier, serialised (§2): a plain name needs no structured-field work."""
    if not params and _PLAIN_STRING.fullmatch(name):
        return f'"{name}"'
    from http_sf.item import ser_item

    return ser_item((name, dict(params)))


def _component_values(
    message: Message, fields: Mapping[str, str], name: str, params: Params
) -> list[str]:
    if name.startswith("@"):
        return _derived_values(message, name, params)
    unknown = set(params) - _FIELD_PARAMS
    if unknown:
        raise ComponentError(f"unsupported parameters {sorted(unknown)} on {name!r}")
    if name not in fields:
        raise ComponentError(f"covered field {name!r} is not in the message")
    if params.get("bs"):
        import http_sf

        lines = [v.strip(" \t") for k, v in message.fields if k.lower() == name]
        try:
            return [", ".join(http_sf.ser((v.encode("latin-1"), {})) for v in lines)]
        except UnicodeEncodeError as exc:
            raise ComponentError(f"field {name!r} is not Latin-1") from exc
    if "key" in params:
        return [_dictionary_member(name, fields[name], str(params["key"]))]
    if params.get("sf"):
        return [_reserialise(name, fields[name])]
    return [fields[name]]


def _dictionary_member(name: str, value: str, key: str) -> str:
    """A Dictionary member, re-serialised (§2.1.2)."""
    import http_sf

    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (ValueError, UnicodeEncodeError) as exc:
        raise ComponentError(f"field {name!r} is not a dictionary") from exc
    if not isinstance(parsed, dict) or key not in parsed:
        raise ComponentError(f"field {name!r} has no member {key!r}")
    return http_sf.ser({"k": parsed[key]})[2:]


def _reserialise(name: str, value: str) -> str:
    """A structured field in its strict serialisation (§2.1.1), for known field types."""
    import http_sf

    try:
        parsed = http_sf.parse(value.encode("ascii"), name=name, tltype=_SF_TYPES.get(name))
        return http_sf.ser(parsed)
    except (KeyError, ValueError, UnicodeEncodeError) as exc:
        raise ComponentError(f"field {name!r} is not a known structured field") from exc


def _derived_values(message: Message, name: str, params: Params) -> list[str]:
    """Derived components of a request or response (§2.2)."""
    if name == "@status":
        if message.status is None or params:
            raise ComponentError("@status needs a response and takes no parameters")
        return [f"{message.status:03d}"]
    if message.method is None or message.url is None:
        raise ComponentError(f"{name} needs a request")
    if name == "@query-param":
        return _query_param(message.url, params)
    if params:
        raise ComponentError(f"unsupported parameters on {name}")
    parts = urlsplit(message.url)
    path = parts.path or "/"
    query = "?" + parts.query
    derived = {
        "@method": message.method,
        "@target-uri": message.url,
        "@authority": _authority(message.url),
        "@scheme": parts.scheme.lower(),
        "@request-target": path + (query if parts.query else ""),
        "@path": path,
        "@query": query,
    }
    if name not in derived:
        raise ComponentError(f"unknown derived component {name}")
    return [derived[name]]


def _authority(url: str) -> str:
    """Host lowercased, with the port only when it is not the scheme's default (§2.2.3)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or _DEFAULT_PORTS.get(parts.scheme.lower()) == port:
        return host
    return f"{host}:{port}"


def _query_param(url: str, params: Params) -> list[str]:
    """Every value of the named query parameter, form-decoded then re-encoded (§2.2.8)."""
    wanted = params.get("name")
    if not isinstance(wanted, str) or set(params) != {"name"}:
        raise ComponentError('@query-param needs exactly a "name" parameter')
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    values = [_form_encode(v) for k, v in pairs if _form_encode(k) == wanted]
    if not values:
        raise ComponentError(f"query parameter {wanted!r} is not in the target URI")
    return values


def _form_encode(text: str) -> str:
    # The application/x-www-form-urlencoded percent-encode set keeps only *-._ and alphanumerics.
    return quote(text, safe="*").replace("~", "%7E")


def sign(base: str, key: PrivateKey | bytes, alg: str) -> bytes:
    """Sign a signature base with one of the RFC 9421 §3.3 algorithms."""
    data = base.encode("ascii")
    if alg == "hmac-sha256" and isinstance(key, bytes):
        return hmac.new(key, data, hashlib.sha256).digest()
    if alg == "ed25519" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if alg == "rsa-v1_5-sha256" and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "rsa-pss-sha512" and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _pss(), hashes.SHA512())
    if alg == "ecdsa-p256-sha256" and isinstance(key, ec.EllipticCurvePrivateKey) and _is_p256(key):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    raise AlgorithmError(f"cannot sign {alg!r} with a {type(key).__name__}")


def verify(base: str, signature: bytes, key: PublicKey | bytes, alg: str) -> bool:
    """Whether ``signature`` is valid for ``base`` under ``alg`` and ``key`` (§3.3)."""
    if alg not in ALGORITHMS:
        raise AlgorithmError(f"unsupported algorithm {alg!r}")
    if alg not in algorithms_for_key(key):
        raise AlgorithmError(f"algorithm {alg!r} does not fit a {type(key).__name__}")
    data = base.encode("ascii")
    try:
        if isinstance(key, bytes):
            return hmac.compare_digest(signature, hmac.new(key, data, hashlib.sha256).digest())
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif isinstance(key, rsa.RSAPublicKey) and alg == "rsa-v1_5-sha256":
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, _pss(), hashes.SHA512())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:  # §3.3.4: r and s as two 32-byte big-endian integers
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def verify_with_key(
    base: str, signature: bytes, key: PublicKey, alg: str | None, allowed: Collection[str]
) -> bool:
    """Verify with ``alg`` if given, else with each ``allowed`` algorithm the key fits (§3.2)."""
    if alg is not None:
        if alg not in allowed:
            raise AlgorithmError(f"algorithm {alg!r} is not accepted")
        return verify(base, signature, key, alg)
    # Without alg the key decides (§3.2 step 5); an RSA key may be either of its algorithms.
    candidates = [a for a in algorithms_for_key(key) if a in allowed]
    if not candidates:
        raise AlgorithmError(f"no accepted algorithm for a {type(key).__name__}")
    return any(verify(base, signature, key, a) for a in candidates)


def algorithms_for_key(key: PublicKey | PrivateKey | bytes) -> tuple[str, ...]:
    """The §3.3 algorithms a key can be used with, preferred first."""
    if isinstance(key, bytes):
        return ("hmac-sha256",)
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return ("ed25519",)
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return ("rsa-v1_5-sha256", "rsa-pss-sha512")
    if _is_p256(key):
        return ("ecdsa-p256-sha256",)
    return ()


def _is_p256(key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and isinstance(
        key.curve, ec.SECP256R1
    )


def _pss() -> padding.PSS:
    # §3.3.1: MGF1 with SHA-512 and a 64-byte salt.
    return padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)


def sign_message(
    message: Message,
    components: Sequence[str | Component],
    key: PrivateKey | bytes,
    params: Mapping[str, Any],
    *,
    alg: str,
    label: str = "sig1",
) -> tuple[str, str]:
    """Sign a message; returns the ``Signature-Input`` and ``Signature`` values (§3.1)."""
    normalised = tuple((c, {}) if isinstance(c, str) else (c[0], dict(c[1])) for c in components)
    signature_input = SignatureInput(label, normalised, dict(params))
    signature = sign(signature_base(message, signature_input), key, alg)
    input_value = f"{label}={signature_input.serialise()}"
    return input_value, f"{label}=:{base64.b64encode(signature).decode('ascii')}:"
