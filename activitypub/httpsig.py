"""HTTP signatures for ActivityPub: sign, and verify with typed failures (delivery that knocks
until a peer accepts one is in :mod:`.knock`).

RFC 9421 (+ RFC 9530 ``Content-Digest``) and draft-cavage-12 (+ RFC 3230 ``Digest``, as Mastodon).
This module is the *policy*: required coverage, clock window, accepted algorithms, key rotation,
the 400/401 mapping. Byte-level work is in :mod:`.cavage`, :mod:`.rfc9421` and :mod:`.digest`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from enum import StrEnum
from urllib.parse import urlsplit

from activitypub import cavage, digest, rfc9421
from activitypub.keys import ActorKey, PrivateKey, PublicKey


class Scheme(StrEnum):
    """Which HTTP signature specification a request is signed with."""

    RFC9421 = "rfc9421"
    CAVAGE = "cavage-12"


class SignatureFailure(StrEnum):
    """Why a request's signature was refused (cf. Fedify ``VerifyRequestFailureReason``)."""

    MISSING = "signature_missing"
    MALFORMED = "signature_malformed"
    ALGORITHM = "unsupported_algorithm"
    COMPONENTS = "required_components_missing"
    DIGEST_MISSING = "digest_missing"
    DIGEST_MISMATCH = "digest_mismatch"
    CLOCK = "date_outside_window"
    KEY_UNAVAILABLE = "key_unavailable"
    SIGNATURE = "signature_invalid"


_F = SignatureFailure  # short alias for the table below
_BAD_REQUEST = frozenset({_F.MALFORMED, _F.COMPONENTS, _F.DIGEST_MISSING, _F.DIGEST_MISMATCH})


def http_status(reason: SignatureFailure) -> int:
    """The one mapping of failure reasons to HTTP status: 400 for a bad request, else 401."""
    return 400 if reason in _BAD_REQUEST else 401


class SignatureError(Exception):
    """A refused signature, with its typed reason and a human-readable detail."""

    def __init__(self, reason: SignatureFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail

    @property
    def status(self) -> int:
        """The HTTP status to answer with (see :func:`http_status`)."""
        return http_status(self.reason)


@dataclass(frozen=True)
class SigningKey:
    """A local actor's private key and the ``keyId`` it is published under."""

    key_id: str
    private_key: PrivateKey


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature that verified: who signed, with what scheme, and when."""

    key_id: str
    owner: str
    scheme: Scheme
    created: datetime


KeyResolver = Callable[[str, bool], Awaitable[ActorKey]]

# Algorithms the facade accepts for RFC 9421; hmac-sha256 needs a shared secret, so never here.
_RFC9421_ALGORITHMS = ("ed25519", "rsa-v1_5-sha256", "rsa-pss-sha512", "ecdsa-p256-sha256")
_GENERATED = frozenset({"host", "date", "digest", "content-digest", "signature", "signature-input"})
_BODY_METHODS = frozenset({"POST", "PUT"})
_LABEL = "sig1"
_MAX_LABELS = 3  # the sender's own signature plus a proxy's or two (RFC 9421 §4.3)


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def authority(url: str) -> str:
    """The URL's host[:port] as given, lowercased: the Host header and the knock-memory key."""
    return urlsplit(url).netloc.rpartition("@")[2].lower()


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    key: SigningKey,
    scheme: Scheme = Scheme.CAVAGE,
    *,
    now: datetime | None = None,
) -> dict[str, str]:
    """Sign a request; returns every header to send (cavage-12 §2, RFC 9421 §3.1)."""
    moment = _utc(now)
    out = {k: v for k, v in headers.items() if k.lower() not in _GENERATED}
    out["Host"] = authority(url)
    out["Date"] = format_datetime(moment, usegmt=True)
    if scheme is Scheme.CAVAGE:
        if body is not None:
            out["Digest"] = digest.make_digest(body)
        fields = rfc9421.combine_fields(out.items())
        out["Signature"] = cavage.mastodon_signature(
            method, url, fields, key.key_id, key.private_key
        )
    else:
        _sign_rfc9421(method, url, out, body, key, moment)
    return out


def _sign_rfc9421(
    method: str,
    url: str,
    out: dict[str, str],
    body: bytes | None,
    key: SigningKey,
    moment: datetime,
) -> None:
    components = ["@method", "@target-uri", "@authority"]
    if body is not None:
        out["Content-Digest"] = digest.make_content_digest(body)
        components.append("content-digest")
    algorithms = rfc9421.algorithms_for_key(key.private_key)
    if not algorithms:
        raise ValueError(f"no RFC 9421 algorithm for a {type(key.private_key).__name__}")
    params = {"created": int(moment.timestamp()), "keyid": key.key_id, "alg": algorithms[0]}
    message = rfc9421.Message.request(method.upper(), url, out)
    signature_input, signature = rfc9421.sign_message(
        message, components, key.private_key, params, alg=algorithms[0], label=_LABEL
    )
    out["Signature-Input"] = signature_input
    out["Signature"] = signature


@dataclass(frozen=True)
class _Request:
    """An incoming request, headers normalised once."""

    method: str
    url: str
    fields: tuple[tuple[str, str], ...]
    combined: Mapping[str, str]
    body: bytes | None
    now: datetime
    window: timedelta


async def verify_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    resolve: KeyResolver,
    *,
    now: datetime | None = None,
    window: timedelta = timedelta(hours=1),
) -> VerifiedSignature:
    """Verify an incoming request's signature, RFC 9421 if ``Signature-Input`` else cavage-12."""
    fields = tuple((str(k), str(v)) for k, v in headers.items())  # keeps a multidict's repeats
    combined = rfc9421.combine_fields(fields)
    request = _Request(method.upper(), url, fields, combined, body, _utc(now), window)
    if "signature-input" in combined:
        return await _verify_rfc9421(request, resolve)
    return await _verify_cavage(request, resolve)


def _check_body_digest(request: _Request, field: str, covered: bool) -> None:
    """Require a signed digest on POST/PUT with a body, and recompute it from the raw body."""
    required = request.method in _BODY_METHODS and request.body is not None
    value = request.combined.get(field)
    if value is None:
        if required:
            raise SignatureError(SignatureFailure.DIGEST_MISSING, f"no {field} header")
        return
    if not covered:
        if required:
            raise SignatureError(SignatureFailure.COMPONENTS, f"{field} is not signed")
        return  # an unsigned digest proves nothing, so it is not worth checking
    if request.body is None:
        return
    check = digest.check_digest if field == "digest" else digest.check_content_digest
    try:
        check(value, request.body)
    except digest.DigestMismatchError as exc:
        raise SignatureError(SignatureFailure.DIGEST_MISMATCH, str(exc)) from exc
    except digest.DigestUnsupportedError as exc:
        raise SignatureError(SignatureFailure.DIGEST_MISSING, str(exc)) from exc
    except digest.DigestFormatError as exc:
        raise SignatureError(SignatureFailure.MALFORMED, str(exc)) from exc


def _check_clock(request: _Request, moment: datetime) -> None:
    if abs(request.now - moment) > request.window:
        detail = f"signed at {moment.isoformat()}, more than {request.window} from now"
        raise SignatureError(SignatureFailure.CLOCK, detail)


def _check_expires(request: _Request, expires: float | None) -> None:
    if expires is not None and expires < request.now.timestamp():
        raise SignatureError(SignatureFailure.CLOCK, "the signature has expired")


async def _with_rotation(
    key_id: str, resolve: KeyResolver, check: Callable[[PublicKey], bool]
) -> ActorKey:
    """Verify with the known key; on failure re-fetch it once, since keys rotate (DESIGN §5)."""
    failure = SignatureError(SignatureFailure.SIGNATURE, "the signature does not verify")
    for refresh in (False, True):
        actor_key = await resolve(key_id, refresh)
        try:
            if check(actor_key.public_key):
                return actor_key
            failure = SignatureError(SignatureFailure.SIGNATURE, "the signature does not verify")
        except (cavage.CavageAlgorithmError, rfc9421.AlgorithmError) as exc:
            failure = SignatureError(SignatureFailure.ALGORITHM, str(exc))
    raise failure


async def _verify_cavage(request: _Request, resolve: KeyResolver) -> VerifiedSignature:
    """draft-cavage-12 with Mastodon's ``verify_signature_strength!`` rules."""
    parsed = _parse_cavage(request)
    problem = cavage.strength_problem(parsed.headers, request.method)
    if problem:
        raise SignatureError(SignatureFailure.COMPONENTS, problem)
    _check_body_digest(request, "digest", "digest" in parsed.headers)
    created = _cavage_created(request, parsed)
    try:
        texts = cavage.signing_strings(parsed, request.method, request.url, request.combined)
    except cavage.MissingHeaderError as exc:
        raise SignatureError(SignatureFailure.MALFORMED, str(exc)) from exc

    def check(key: PublicKey) -> bool:
        return any(cavage.verify(t, parsed.signature, key, parsed.algorithm) for t in texts)

    actor_key = await _with_rotation(parsed.key_id, resolve, check)
    return VerifiedSignature(parsed.key_id, actor_key.owner, Scheme.CAVAGE, created)


def _parse_cavage(request: _Request) -> cavage.CavageSignature:
    raw = cavage.find_signature(request.combined)
    if not raw:
        raise SignatureError(SignatureFailure.MISSING, "no Signature header")
    try:
        parsed = cavage.parse_signature_header(raw)
    except cavage.CavageFormatError as exc:
        raise SignatureError(SignatureFailure.MALFORMED, str(exc)) from exc
    if parsed.algorithm not in cavage.ALGORITHMS:
        raise SignatureError(SignatureFailure.ALGORITHM, f"algorithm {parsed.algorithm!r}")
    pseudo = {"(created)", "(expires)"} & set(parsed.headers)
    if pseudo and parsed.algorithm != "hs2019":  # cavage-12 §2.3: only for hs2019
        raise SignatureError(SignatureFailure.MALFORMED, f"{sorted(pseudo)} need hs2019")
    return parsed


def _cavage_created(request: _Request, parsed: cavage.CavageSignature) -> datetime:
    """Check the signed Date and (created)/(expires) against the window; return the time."""
    try:
        moments = cavage.signed_times(parsed, request.combined)
    except cavage.CavageFormatError as exc:
        raise SignatureError(SignatureFailure.MALFORMED, str(exc)) from exc
    if not moments:
        raise SignatureError(SignatureFailure.MALFORMED, "(created) is signed but not given")
    for moment in moments:
        _check_clock(request, moment)
    if parsed.expires is not None:
        _check_expires(request, float(parsed.expires))
    return moments[0]


async def _verify_rfc9421(request: _Request, resolve: KeyResolver) -> VerifiedSignature:
    """RFC 9421: the first label that verifies wins; otherwise the first label's failure."""
    try:
        inputs = rfc9421.parse_signature_input(request.combined["signature-input"])
        signatures = rfc9421.parse_signature(request.combined.get("signature", ""))
    except rfc9421.Rfc9421FormatError as exc:
        raise SignatureError(SignatureFailure.MALFORMED, str(exc)) from exc
    labels = [label for label in inputs if label in signatures]
    if not labels:
        raise SignatureError(SignatureFailure.MALFORMED, "no label has both input and signature")
    if len(labels) > _MAX_LABELS:  # each label may cost two key fetches: bound the work
        raise SignatureError(SignatureFailure.MALFORMED, f"more than {_MAX_LABELS} signatures")
    failures: list[SignatureError] = []
    for label in labels:
        try:
            return await _verify_label(request, inputs[label], signatures[label], resolve)
        except SignatureError as exc:
            failures.append(exc)
    raise failures[0]


async def _verify_label(
    request: _Request,
    signature_input: rfc9421.SignatureInput,
    signature: bytes,
    resolve: KeyResolver,
) -> VerifiedSignature:
    keyid, alg, created = _rfc9421_params(signature_input)
    covered = {name for name, params in signature_input.components if not params}
    # An empty or thin component list can be replayed anywhere (RFC 9421 B.2.1, §7.2.1).
    if "@method" not in covered or not (
        "@target-uri" in covered or {"@authority", "@path"} <= covered
    ):
        raise SignatureError(SignatureFailure.COMPONENTS, "sign @method and @target-uri")
    _check_body_digest(request, "content-digest", "content-digest" in covered)
    _check_clock(request, created)
    expires = signature_input.params.get("expires")
    _check_expires(request, expires if isinstance(expires, int | float) else None)
    message = rfc9421.Message(method=request.method, url=request.url, fields=request.fields)
    try:
        base = rfc9421.signature_base(message, signature_input, request.combined)
    except rfc9421.ComponentError as exc:
        raise SignatureError(SignatureFailure.MALFORMED, str(exc)) from exc

    def check(key: PublicKey) -> bool:
        return rfc9421.verify_with_key(base, signature, key, alg, _RFC9421_ALGORITHMS)

    actor_key = await _with_rotation(keyid, resolve, check)
    return VerifiedSignature(keyid, actor_key.owner, Scheme.RFC9421, created)


def _rfc9421_params(signature_input: rfc9421.SignatureInput) -> tuple[str, str | None, datetime]:
    params = signature_input.params
    keyid, alg, created = params.get("keyid"), params.get("alg"), params.get("created")
    if not isinstance(keyid, str):
        raise SignatureError(SignatureFailure.MALFORMED, "keyid is missing")
    if alg is not None and alg not in _RFC9421_ALGORITHMS:
        raise SignatureError(SignatureFailure.ALGORITHM, f"algorithm {alg!r}")
    if created is None:
        raise SignatureError(SignatureFailure.COMPONENTS, "created is required")
    if not isinstance(created, int) or isinstance(created, bool):
        raise SignatureError(SignatureFailure.MALFORMED, "created is not an integer")
    try:
        moment = datetime.fromtimestamp(created, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise SignatureError(SignatureFailure.MALFORMED, "created is out of range") from exc
    return keyid, alg, moment
