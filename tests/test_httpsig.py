"""The httpsig facade: signing profiles, verification policy with exact failure reasons,
key rotation, and double-knock delivery against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from activitypub import cavage, rfc9421
from activitypub.httpsig import (
    KeyResolver,
    Scheme,
    SignatureError,
    SignatureFailure,
    SigningKey,
    VerifiedSignature,
    http_status,
    sign_request,
    verify_request,
)
from activitypub.keys import (
    ActorKey,
    generate_ed25519,
    generate_rsa,
    private_key_from_pem,
    public_key_from_pem,
)
from activitypub.knock import Knock, KnockMemory, post_signed

VECTORS = Path(__file__).resolve().parent / "vectors"
DERIVED: dict[str, Any] = json.loads(
    (VECTORS / "derived/mastodon-profile-signatures.json").read_text()
)
KEY_ID = DERIVED["keyId"]
OWNER = "https://a.example/users/alice"
RSA = private_key_from_pem((VECTORS / "rfc9421/test-key-rsa.priv.pem").read_bytes())
ALICE = SigningKey(KEY_ID, RSA)
ALICE_PUBLIC = ActorKey(KEY_ID, OWNER, public_key_from_pem(DERIVED["public_key_spki_pem"]))
VECTOR_DATE = datetime(2021, 4, 20, 2, 7, 55, tzinfo=UTC)
VECTOR_CREATED = datetime.fromtimestamp(1618884473, UTC)
INBOX = "https://b.example/users/bob/inbox"
BODY = DERIVED["cavage_mastodon"]["body"].encode()
AS2 = {"Content-Type": "application/activity+json"}
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
ServerFactory = Callable[..., Awaitable[TestServer]]


def resolver(*keys: ActorKey, calls: list[tuple[str, bool]] | None = None) -> KeyResolver:
    """Answers keys[0] first, keys[1] on refresh (a rotated key), as an actor fetch would."""
    seen = calls if calls is not None else []

    async def resolve(key_id: str, refresh: bool) -> ActorKey:
        seen.append((key_id, refresh))
        return keys[min(int(refresh), len(keys) - 1)]

    return resolve


async def refused(
    headers: dict[str, str],
    *,
    method: str = "POST",
    url: str = INBOX,
    body: bytes | None = BODY,
    now: datetime = NOW,
    resolve: KeyResolver | None = None,
) -> SignatureFailure:
    with pytest.raises(SignatureError) as info:
        await verify_request(method, url, headers, body, resolve or resolver(ALICE_PUBLIC), now=now)
    return info.value.reason


def test_http_status_is_the_one_mapping() -> None:
    bad_request = {
        SignatureFailure.MALFORMED,
        SignatureFailure.COMPONENTS,
        SignatureFailure.DIGEST_MISSING,
        SignatureFailure.DIGEST_MISMATCH,
    }
    for reason in SignatureFailure:
        assert http_status(reason) == (400 if reason in bad_request else 401)
        assert SignatureError(reason, "x").status == http_status(reason)
    assert str(SignatureError(SignatureFailure.CLOCK, "late")) == "date_outside_window: late"
    assert SignatureFailure.KEY_UNAVAILABLE.value == "key_unavailable"


# --- signing profiles -------------------------------------------------------------------


def test_cavage_post_reproduces_the_mastodon_vector() -> None:
    vector = DERIVED["cavage_mastodon"]
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, Scheme.CAVAGE, now=VECTOR_DATE)
    assert headers == {**vector["headers"], "Signature": vector["signature_header"]}


def test_rfc9421_post_reproduces_the_mastodon_vector_at_the_byte_level() -> None:
    """Same inputs as the vector (its component list has no @authority) → same bytes."""
    vector = DERIVED["rfc9421_mastodon"]
    message = rfc9421.Message.request("POST", vector["url"], vector["headers"])
    inputs = rfc9421.parse_signature_input(vector["signature_input_header"])["sig1"]
    base = rfc9421.signature_base(message, inputs)
    assert base == vector["signature_base"]
    headers = rfc9421.sign_message(
        message, inputs.components, RSA, inputs.params, alg="rsa-v1_5-sha256"
    )
    assert headers == (vector["signature_input_header"], vector["signature_header"])


def test_rfc9421_post_profile() -> None:
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, Scheme.RFC9421, now=VECTOR_CREATED)
    assert headers["Signature-Input"] == (
        'sig1=("@method" "@target-uri" "@authority" "content-digest");'
        f'created=1618884473;keyid="{KEY_ID}";alg="rsa-v1_5-sha256"'
    )
    assert headers["Content-Digest"] == DERIVED["rfc9421_mastodon"]["headers"]["Content-Digest"]
    assert headers["Host"] == "b.example"
    assert headers["Date"] == "Tue, 20 Apr 2021 02:07:53 GMT"
    assert headers["Signature"].startswith("sig1=:") and headers["Signature"].endswith(":")
    assert "Digest" not in headers


def test_get_profiles_sign_no_digest() -> None:
    url = "https://b.example/users/bob?page=1"
    cav = sign_request("GET", url, {}, None, ALICE, Scheme.CAVAGE, now=NOW)
    assert 'headers="(request-target) host date"' in cav["Signature"]
    assert "Digest" not in cav
    new = sign_request("GET", url, {}, None, ALICE, Scheme.RFC9421, now=NOW)
    assert new["Signature-Input"].startswith('sig1=("@method" "@target-uri" "@authority");')
    assert "Content-Digest" not in new


def test_sign_request_replaces_stale_generated_headers() -> None:
    stale = {"date": "yesterday", "HOST": "evil.example", "Accept": "x", **AS2}
    headers = sign_request("POST", INBOX, stale, BODY, ALICE, Scheme.CAVAGE, now=NOW)
    assert sorted(headers) == ["Accept", "Content-Type", "Date", "Digest", "Host", "Signature"]
    assert headers["Host"] == "b.example"


def test_ed25519_profiles() -> None:
    key = SigningKey("https://a.example/users/eve#ed25519-key", generate_ed25519())
    cav = sign_request("POST", INBOX, AS2, BODY, key, Scheme.CAVAGE, now=NOW)
    assert 'algorithm="hs2019"' in cav["Signature"]
    new = sign_request("POST", INBOX, AS2, BODY, key, Scheme.RFC9421, now=NOW)
    assert new["Signature-Input"].endswith(';alg="ed25519"')


# --- verification: accepted ---------------------------------------------------------------


async def test_verifier_accepts_the_mastodon_cavage_vector() -> None:
    vector = DERIVED["cavage_mastodon"]
    for header in ("signature_header", "signature_header_hs2019_variant"):
        headers = {**vector["headers"], "Signature": vector[header]}
        result = await verify_request(
            "POST", INBOX, headers, BODY, resolver(ALICE_PUBLIC), now=VECTOR_DATE
        )
        assert result == VerifiedSignature(KEY_ID, OWNER, Scheme.CAVAGE, VECTOR_DATE)


async def test_verifier_accepts_the_mastodon_rfc9421_vector() -> None:
    vector = DERIVED["rfc9421_mastodon"]
    headers = {
        **vector["headers"],
        "Signature-Input": vector["signature_input_header"],
        "Signature": vector["signature_header"],
    }
    result = await verify_request(
        "POST", INBOX, headers, BODY, resolver(ALICE_PUBLIC), now=VECTOR_CREATED
    )
    assert result == VerifiedSignature(KEY_ID, OWNER, Scheme.RFC9421, VECTOR_CREATED)


@pytest.mark.parametrize("scheme", list(Scheme))
@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
async def test_round_trip(scheme: Scheme, method: str, kind: str) -> None:
    private = RSA if kind == "rsa" else generate_ed25519()
    key = SigningKey(KEY_ID, private)
    body = BODY if method == "POST" else None
    url = INBOX + "?x=1&y=2"
    headers = sign_request(method, url, AS2 if body else {}, body, key, scheme, now=NOW)
    public = ActorKey(KEY_ID, OWNER, private.public_key())
    result = await verify_request(method, url, headers, body, resolver(public), now=NOW)
    assert (result.scheme, result.owner, result.created) == (scheme, OWNER, NOW)


@pytest.mark.parametrize("scheme", list(Scheme))
async def test_headers_are_case_insensitive_and_multidicts_work(scheme: Scheme) -> None:
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, scheme, now=NOW)
    lower = {k.lower(): v for k, v in headers.items()}
    proxy = CIMultiDictProxy(CIMultiDict(headers))
    for given in (lower, proxy):
        result = await verify_request("POST", INBOX, given, BODY, resolver(ALICE_PUBLIC), now=NOW)
        assert result.key_id == KEY_ID


async def test_authorization_signature_is_accepted() -> None:
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, Scheme.CAVAGE, now=NOW)
    headers["Authorization"] = "Signature " + headers.pop("Signature")
    result = await verify_request("POST", INBOX, headers, BODY, resolver(ALICE_PUBLIC), now=NOW)
    assert result.scheme is Scheme.CAVAGE


async def test_query_less_cavage_request_target_is_accepted() -> None:
    """Older Mastodon signed (request-target) without the query; we accept both forms."""
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, Scheme.CAVAGE, now=NOW)
    result = await verify_request(
        "POST", INBOX + "?page=2", headers, BODY, resolver(ALICE_PUBLIC), now=NOW
    )
    assert result.owner == OWNER
    # ...but the path itself is still bound.
    assert await refused(headers, url=INBOX.replace("bob", "bib")) is SignatureFailure.SIGNATURE


@pytest.mark.parametrize("scheme", list(Scheme))
async def test_fifty_minutes_old_is_accepted(scheme: Scheme) -> None:
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, scheme, now=NOW - timedelta(minutes=50))
    result = await verify_request("POST", INBOX, headers, BODY, resolver(ALICE_PUBLIC), now=NOW)
    assert result.created == NOW - timedelta(minutes=50)


@pytest.mark.parametrize("scheme", list(Scheme))
async def test_key_rotation_refetches_once(scheme: Scheme) -> None:
    stale = ActorKey(KEY_ID, OWNER, generate_rsa().public_key())
    calls: list[tuple[str, bool]] = []
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, scheme, now=NOW)
    result = await verify_request(
        "POST", INBOX, headers, BODY, resolver(stale, ALICE_PUBLIC, calls=calls), now=NOW
    )
    assert result.owner == OWNER
    assert calls == [(KEY_ID, False), (KEY_ID, True)]


async def test_a_good_key_is_not_refetched() -> None:
    calls: list[tuple[str, bool]] = []
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, Scheme.RFC9421, now=NOW)
    await verify_request("POST", INBOX, headers, BODY, resolver(ALICE_PUBLIC, calls=calls), now=NOW)
    assert calls == [(KEY_ID, False)]


# --- verification: refused, each with its exact reason ----------------------------------


@pytest.mark.parametrize("scheme", list(Scheme))
async def test_wrong_key(scheme: Scheme) -> None:
    wrong = ActorKey(KEY_ID, OWNER, generate_rsa().public_key())
    calls: list[tuple[str, bool]] = []
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, scheme, now=NOW)
    reason = await refused(headers, resolve=resolver(wrong, calls=calls))
    assert reason is SignatureFailure.SIGNATURE
    assert calls == [(KEY_ID, False), (KEY_ID, True)]


async def test_no_signature() -> None:
    assert await refused(dict(AS2)) is SignatureFailure.MISSING
    assert await refused({"Authorization": "Bearer x"}) is SignatureFailure.MISSING


@pytest.mark.parametrize(
    "headers",
    [
        {"Signature": "garbage"},
        {"Signature": 'keyId="k",signature="%%%"'},
        {"Signature-Input": "sig1=(", "Signature": "sig1=:AAAA:"},
        {"Signature-Input": 'sig1=("@method");created=1', "Signature": "sig1=AAAA"},
        {"Signature-Input": 'sig1=("@method");created=1'},
        {"Signature-Input": 'sig1=("@method");created=1', "Signature": "sig2=:AAAA:"},
    ],
)
async def test_malformed_headers(headers: dict[str, str]) -> None:
    assert await refused(headers) is SignatureFailure.MALFORMED


async def test_unsupported_algorithms() -> None:
    cav = sign_request("POST", INBOX, AS2, BODY, ALICE, Scheme.CAVAGE, now=NOW)
    cav["Signature"] = cav["Signature"].replace("rsa-sha256", "rsa-sha512")
    assert await refused(cav) is SignatureFailure.ALGORITHM
    new = sign_request("POST", INBOX, AS2, BODY, ALICE, Scheme.RFC9421, now=NOW)
    for alg in ("hmac-sha256", "rsa-sha256", "ecdsa-p384-sha384"):
        changed = dict(
            new, **{"Signature-Input": new["Signature-Input"].replace("rsa-v1_5-sha256", alg)}
        )
        assert await refused(changed) is SignatureFailure.ALGORITHM


async def test_rfc9421_alg_must_match_the_key_type() -> None:
    ed = SigningKey(KEY_ID, generate_ed25519())
    headers = sign_request("POST", INBOX, AS2, BODY, ed, Scheme.RFC9421, now=NOW)
    # A valid ed25519 signature, but the actor's key is RSA: refused, after one refetch.
    assert await refused(headers) is SignatureFailure.ALGORITHM
    cav = sign_request("POST", INBOX, AS2, BODY, ed, Scheme.CAVAGE, now=NOW)
    cav["Signature"] = cav["Signature"].replace("hs2019", "rsa-sha256")
    ed_public = ActorKey(KEY_ID, OWNER, ed.private_key.public_key())
    assert await refused(cav, resolve=resolver(ed_public)) is SignatureFailure.ALGORITHM


@pytest.mark.parametrize("scheme", list(Scheme))
async def test_missing_digest_on_post(scheme: Scheme) -> None:
    # Signed as if bodiless, then sent as a POST with a body: no digest at all.
    headers = sign_request("POST", INBOX, AS2, None, ALICE, scheme, now=NOW)
    assert await refused(headers) is SignatureFailure.DIGEST_MISSING


async def test_digest_present_but_not_signed() -> None:
    cav = sign_request("POST", INBOX, AS2, None, ALICE, Scheme.CAVAGE, now=NOW)
    cav["Digest"] = sign_request("POST", INBOX, {}, BODY, ALICE, now=NOW)["Digest"]
    assert await refused(cav) is SignatureFailure.COMPONENTS
    new = sign_request("POST", INBOX, AS2, None, ALICE, Scheme.RFC9421, now=NOW)
    new["Content-Digest"] = sign_request("POST", INBOX, {}, BODY, ALICE, Scheme.RFC9421)[
        "Content-Digest"
    ]
    assert await refused(new) is SignatureFailure.COMPONENTS


@pytest.mark.parametrize("scheme", list(Scheme))
async def test_tampered_body(scheme: Scheme) -> None:
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, scheme, now=NOW)
    tampered = BODY.replace(b"Like", b"Lika")
    assert await refused(headers, body=tampered) is SignatureFailure.DIGEST_MISMATCH


@pytest.mark.parametrize("scheme", list(Scheme))
async def test_unusable_digest(scheme: Scheme) -> None:
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, scheme, now=NOW)
    name = "Digest" if scheme is Scheme.CAVAGE else "Content-Digest"
    md5 = (
        "MD5=Sd/dVLAcvNLSq16eXua5uQ=="
        if scheme is Scheme.CAVAGE
        else "md5=:Sd/dVLAcvNLSq16eXua5uQ==:"
    )
    assert await refused({**headers, name: md5}) is SignatureFailure.DIGEST_MISSING
    broken = "SHA-256=@@" if scheme is Scheme.CAVAGE else "sha-256=:AAAA:"
    assert await refused({**headers, name: broken}) is SignatureFailure.MALFORMED


@pytest.mark.parametrize("scheme", list(Scheme))
@pytest.mark.parametrize("offset", [timedelta(hours=-2), timedelta(hours=2)])
async def test_clock_window(scheme: Scheme, offset: timedelta) -> None:
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, scheme, now=NOW + offset)
    assert await refused(headers) is SignatureFailure.CLOCK


@pytest.mark.parametrize("scheme", list(Scheme))
async def test_custom_window(scheme: Scheme) -> None:
    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, scheme, now=NOW - timedelta(minutes=6))
    with pytest.raises(SignatureError) as info:
        await verify_request(
            "POST",
            INBOX,
            headers,
            BODY,
            resolver(ALICE_PUBLIC),
            now=NOW,
            window=timedelta(minutes=5),
        )
    assert info.value.reason is SignatureFailure.CLOCK
    wide = await verify_request(
        "POST",
        INBOX,
        headers,
        BODY,
        resolver(ALICE_PUBLIC),
        now=NOW + timedelta(hours=3),
        window=timedelta(hours=4),
    )
    assert wide.owner == OWNER


def _resign_9421(
    components: str, params: str, *, key: Any = RSA, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """A hand-built RFC 9421 POST (components and params as they appear in Signature-Input)."""
    headers = sign_request(
        "POST", INBOX, {**AS2, **(extra or {})}, BODY, ALICE, Scheme.RFC9421, now=NOW
    )
    value = f"sig1=({components}){params}"
    signature_input = rfc9421.parse_signature_input(value)["sig1"]
    message = rfc9421.Message.request("POST", INBOX, headers)
    alg = rfc9421.algorithms_for_key(key)[0]
    si, sig = rfc9421.sign_message(
        message, signature_input.components, key, signature_input.params, alg=alg
    )
    assert si == value
    return {**headers, "Signature-Input": si, "Signature": sig}


async def test_rfc9421_empty_component_list() -> None:
    created = int(NOW.timestamp())
    headers = _resign_9421("", f';created={created};keyid="{KEY_ID}"')
    assert await refused(headers) is SignatureFailure.COMPONENTS


async def test_rfc9421_without_method() -> None:
    created = int(NOW.timestamp())
    headers = _resign_9421('"@target-uri" "content-digest"', f';created={created};keyid="{KEY_ID}"')
    assert await refused(headers) is SignatureFailure.COMPONENTS


async def test_rfc9421_without_created() -> None:
    headers = _resign_9421('"@method" "@target-uri" "content-digest"', f';keyid="{KEY_ID}"')
    assert await refused(headers) is SignatureFailure.COMPONENTS


async def test_rfc9421_authority_and_path_instead_of_target_uri() -> None:
    created = int(NOW.timestamp())
    headers = _resign_9421(
        '"@method" "@authority" "@path" "content-digest"', f';created={created};keyid="{KEY_ID}"'
    )
    result = await verify_request("POST", INBOX, headers, BODY, resolver(ALICE_PUBLIC), now=NOW)
    assert result.scheme is Scheme.RFC9421
    # No alg parameter: the RSA key tries rsa-v1_5-sha256 and rsa-pss-sha512.
    assert ";alg=" not in headers["Signature-Input"]


async def test_rfc9421_expired_and_bad_params() -> None:
    created = int(NOW.timestamp())
    comps = '"@method" "@target-uri" "content-digest"'
    expired = _resign_9421(comps, f';created={created};expires={created - 1};keyid="{KEY_ID}"')
    assert await refused(expired) is SignatureFailure.CLOCK
    no_keyid = _resign_9421(comps, f";created={created}")
    assert await refused(no_keyid) is SignatureFailure.MALFORMED
    text_created = _resign_9421(comps, f';created="{created}";keyid="{KEY_ID}"')
    assert await refused(text_created) is SignatureFailure.MALFORMED
    absent = _resign_9421(
        comps + ' "x-gone"', f';created={created};keyid="{KEY_ID}"', extra={"X-Gone": "1"}
    )
    del absent["X-Gone"]
    assert await refused(absent) is SignatureFailure.MALFORMED


async def test_rfc9421_second_label_can_verify() -> None:
    good = sign_request("POST", INBOX, AS2, BODY, ALICE, Scheme.RFC9421, now=NOW)
    other = _resign_9421('"@method"', f';created={int(NOW.timestamp())};keyid="{KEY_ID}"')
    headers = {
        **good,
        "Signature-Input": other["Signature-Input"].replace("sig1", "sig0")
        + ", "
        + good["Signature-Input"],
        "Signature": other["Signature"].replace("sig1", "sig0") + ", " + good["Signature"],
    }
    result = await verify_request("POST", INBOX, headers, BODY, resolver(ALICE_PUBLIC), now=NOW)
    assert result.scheme is Scheme.RFC9421
    only_bad = {
        **headers,
        "Signature-Input": other["Signature-Input"],
        "Signature": other["Signature"],
    }
    assert await refused(only_bad) is SignatureFailure.COMPONENTS


async def test_cavage_strength_rules() -> None:
    def resign(names: str, method: str = "POST") -> dict[str, str]:
        headers = sign_request(
            method, INBOX, AS2, BODY if method == "POST" else None, ALICE, now=NOW
        )
        fields = rfc9421.combine_fields(headers.items())
        listed = names.split()
        text = cavage.signing_string(listed, cavage.request_target(method, INBOX), fields)
        sig = cavage.sign(text, RSA, "rsa-sha256")
        return {**headers, "Signature": cavage.signature_header(KEY_ID, "rsa-sha256", listed, sig)}

    no_target = resign("host date", "GET")
    assert await refused(no_target, method="GET", body=None) is SignatureFailure.COMPONENTS
    assert await refused(resign("(request-target) host digest")) is SignatureFailure.COMPONENTS
    get = resign("(request-target) date", "GET")
    assert await refused(get, method="GET", body=None) is SignatureFailure.COMPONENTS
    ok = await verify_request(
        "POST", INBOX, resign("date digest"), BODY, resolver(ALICE_PUBLIC), now=NOW
    )
    assert ok.owner == OWNER  # Mastodon accepts digest in place of (request-target)
    created = resign("(request-target) date digest")
    created["Signature"] = created["Signature"].replace(
        'headers="(request-target) date digest"',
        f'created={int(NOW.timestamp())},headers="(request-target) (created) digest"',
    )
    assert await refused(created) is SignatureFailure.MALFORMED  # (created) needs hs2019
    absent = resign("(request-target) date digest content-type")
    del absent["Content-Type"]
    assert await refused(absent) is SignatureFailure.MALFORMED
    bad_date = resign("(request-target) date digest")
    bad_date["Date"] = "yesterday"
    assert await refused(bad_date) is SignatureFailure.MALFORMED


async def test_key_unavailable_propagates() -> None:
    async def unavailable(key_id: str, refresh: bool) -> ActorKey:
        raise SignatureError(SignatureFailure.KEY_UNAVAILABLE, f"cannot fetch {key_id}")

    headers = sign_request("POST", INBOX, AS2, BODY, ALICE, Scheme.RFC9421, now=NOW)
    assert await refused(headers, resolve=unavailable) is SignatureFailure.KEY_UNAVAILABLE


# --- double-knock against real servers on 127.0.0.1 -------------------------------------


def verifying_peer(admits: Callable[[web.Request], bool], resolve: KeyResolver) -> web.Application:
    """A peer inbox that answers 401 to what it does not admit and verifies the rest with our
    verifier: 202, or the status of the SignatureError."""

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        if not admits(request):
            return web.Response(status=401)  # e.g. Mastodon: RSA keys from publicKey only
        try:
            await verify_request(request.method, str(request.url), request.headers, body, resolve)
        except SignatureError as exc:
            return web.Response(status=exc.status, text=str(exc))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/inbox", inbox)
    return app


def peer_app(accepts: set[Scheme], seen: list[Scheme]) -> web.Application:
    """A peer that records each request's scheme and admits those in ``accepts``."""

    def admits(request: web.Request) -> bool:
        seen.append(Scheme.RFC9421 if "Signature-Input" in request.headers else Scheme.CAVAGE)
        return seen[-1] in accepts

    return verifying_peer(admits, resolver(ALICE_PUBLIC))


async def test_double_knock_falls_back_to_cavage_and_remembers(
    aiohttp_server: ServerFactory,
) -> None:
    seen: list[Scheme] = []
    server = await aiohttp_server(peer_app({Scheme.CAVAGE}, seen))
    url = str(server.make_url("/inbox"))
    memory = KnockMemory()
    async with aiohttp.ClientSession() as session:
        assert await post_signed(session, url, BODY, ALICE, memory) == 202
        assert seen == [Scheme.RFC9421, Scheme.CAVAGE]
        assert memory.scheme_for(f"127.0.0.1:{server.port}") is Scheme.CAVAGE
        seen.clear()
        assert await post_signed(session, url, BODY, ALICE, memory) == 202
        assert seen == [Scheme.CAVAGE]


async def test_a_peer_accepting_rfc9421_gets_one_request(aiohttp_server: ServerFactory) -> None:
    seen: list[Scheme] = []
    server = await aiohttp_server(peer_app({Scheme.RFC9421, Scheme.CAVAGE}, seen))
    memory = KnockMemory()
    async with aiohttp.ClientSession() as session:
        assert (
            await post_signed(session, str(server.make_url("/inbox")), BODY, ALICE, memory) == 202
        )
    assert seen == [Scheme.RFC9421]
    assert memory.scheme_for(f"127.0.0.1:{server.port}") is Scheme.RFC9421


async def test_a_peer_refusing_both_is_not_remembered(aiohttp_server: ServerFactory) -> None:
    seen: list[Scheme] = []
    server = await aiohttp_server(peer_app(set(), seen))
    memory = KnockMemory()
    memory.remember(f"127.0.0.1:{server.port}", Scheme.CAVAGE)
    async with aiohttp.ClientSession() as session:
        assert (
            await post_signed(session, str(server.make_url("/inbox")), BODY, ALICE, memory) == 401
        )
    assert seen == [Scheme.CAVAGE, Scheme.RFC9421]
    assert memory.scheme_for(f"127.0.0.1:{server.port}") is Scheme.CAVAGE


ALICE_ED = generate_ed25519()
ALICE_ED_KEY = SigningKey(f"{OWNER}#ed25519-key", ALICE_ED)
ALICE_ED_PUBLIC = ActorKey(ALICE_ED_KEY.key_id, OWNER, ALICE_ED.public_key())


def knocked(request: web.Request) -> Knock:
    """Which knock a request came with: its scheme, and for RFC 9421 the key's algorithm."""
    if "Signature-Input" not in request.headers:
        return Knock.CAVAGE
    ed25519 = 'alg="ed25519"' in request.headers["Signature-Input"]
    return Knock.RFC9421_ED25519 if ed25519 else Knock.RFC9421


def laddered_peer(accepts: set[Knock], seen: list[Knock]) -> web.Application:
    """A peer that records each request's knock and admits those in ``accepts``, resolving
    Alice's two keys by keyId as an actor document lists them (publicKey, assertionMethod)."""
    keys = {ALICE_PUBLIC.key_id: ALICE_PUBLIC, ALICE_ED_PUBLIC.key_id: ALICE_ED_PUBLIC}

    async def resolve(key_id: str, refresh: bool) -> ActorKey:
        return keys[key_id]

    def admits(request: web.Request) -> bool:
        seen.append(knocked(request))
        return seen[-1] in accepts

    return verifying_peer(admits, resolve)


async def deliver_twice(
    server: TestServer, memory: KnockMemory, ed25519_key: SigningKey | None = ALICE_ED_KEY
) -> list[int]:
    url = str(server.make_url("/inbox"))
    async with aiohttp.ClientSession() as session:
        return [
            await post_signed(session, url, BODY, ALICE, memory, ed25519_key=ed25519_key)
            for _ in range(2)
        ]


ED, RSA9421, CAV = Knock.RFC9421_ED25519, Knock.RFC9421, Knock.CAVAGE


@pytest.mark.parametrize(
    ("accepts", "knocks"),
    [
        (set(Knock), [ED, ED]),  # a Barri peer: one cheap knock, every time
        ({RSA9421, CAV}, [ED, RSA9421, RSA9421]),  # refuses ed25519: RSA next, then from then on
        ({CAV}, [ED, RSA9421, CAV, CAV]),  # cavage-12 only: the third knock, then only it
    ],
    ids=["ed25519", "rsa-rfc9421", "cavage"],
)
async def test_deliveries_climb_down_the_ladder_once_per_peer(
    aiohttp_server: ServerFactory, accepts: set[Knock], knocks: list[Knock]
) -> None:
    seen: list[Knock] = []
    server = await aiohttp_server(laddered_peer(accepts, seen))
    memory = KnockMemory()
    assert await deliver_twice(server, memory) == [202, 202]
    assert seen == knocks
    assert memory.knock_for(f"127.0.0.1:{server.port}") is knocks[-1]


async def test_a_remembered_ed25519_knock_needs_the_key_to_be_used(
    aiohttp_server: ServerFactory,
) -> None:
    seen: list[Knock] = []
    server = await aiohttp_server(laddered_peer(set(Knock), seen))
    memory = KnockMemory()
    memory.remember(f"127.0.0.1:{server.port}", Knock.RFC9421_ED25519)
    assert await deliver_twice(server, memory, ed25519_key=None) == [202, 202]
    assert seen == [Knock.RFC9421, Knock.RFC9421]


async def test_a_peer_refusing_every_knock_gets_each_once(aiohttp_server: ServerFactory) -> None:
    seen: list[Knock] = []
    server = await aiohttp_server(laddered_peer(set(), seen))
    memory = KnockMemory()
    url = str(server.make_url("/inbox"))
    async with aiohttp.ClientSession() as session:
        status = await post_signed(session, url, BODY, ALICE, memory, ed25519_key=ALICE_ED_KEY)
    assert status == 401
    assert seen == [Knock.RFC9421_ED25519, Knock.RFC9421, Knock.CAVAGE]
    host = f"127.0.0.1:{server.port}"
    assert memory.knock_for(host, Knock.RFC9421_ED25519) is Knock.RFC9421_ED25519  # none kept


async def test_network_errors_propagate() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await post_signed(session, f"http://127.0.0.1:{port}/inbox", BODY, ALICE, KnockMemory())


def test_knock_memory_defaults_and_is_case_insensitive() -> None:
    memory = KnockMemory()
    assert memory.knock_for("b.example") is Knock.RFC9421
    assert memory.knock_for("b.example", Knock.RFC9421_ED25519) is Knock.RFC9421_ED25519
    assert memory.scheme_for("b.example") is Scheme.RFC9421
    memory.remember("B.Example", Scheme.CAVAGE)
    assert memory.scheme_for("b.example") is Scheme.CAVAGE
    assert KnockMemory().scheme_for("b.example") is Scheme.RFC9421  # no shared state


@pytest.mark.parametrize("expires_in", [timedelta(minutes=10), timedelta(minutes=-1)])
async def test_hs2019_created_and_expires(expires_in: timedelta) -> None:
    """hs2019 may sign (created)/(expires) instead of Date (cavage-12 §2.3)."""
    key = generate_ed25519()
    created = int((NOW - timedelta(minutes=5)).timestamp())
    expires = int((NOW + expires_in).timestamp())
    headers = sign_request("POST", INBOX, AS2, BODY, SigningKey(KEY_ID, key), now=NOW)
    names = ["(request-target)", "(created)", "(expires)", "digest"]
    fields = rfc9421.combine_fields(headers.items())
    target = cavage.request_target("POST", INBOX)
    text = cavage.signing_string(names, target, fields, created=created, expires=str(expires))
    signature = cavage.signature_header(KEY_ID, "hs2019", names, cavage.sign(text, key, "hs2019"))
    insert = f"created={created},expires={expires},"
    headers["Signature"] = signature.replace("headers=", insert + "headers=")
    del headers["Date"]
    public = resolver(ActorKey(KEY_ID, OWNER, key.public_key()))
    if expires_in < timedelta(0):
        assert await refused(headers, resolve=public) is SignatureFailure.CLOCK
        return
    result = await verify_request("POST", INBOX, headers, BODY, public, now=NOW)
    assert result.created == NOW - timedelta(minutes=5)


async def test_rfc9421_too_many_labels() -> None:
    good = sign_request("POST", INBOX, AS2, BODY, ALICE, Scheme.RFC9421, now=NOW)
    labels = [f"s{i}" for i in range(4)]
    headers = {
        **good,
        "Signature-Input": ", ".join(good["Signature-Input"].replace("sig1", s) for s in labels),
        "Signature": ", ".join(good["Signature"].replace("sig1", s) for s in labels),
    }
    assert await refused(headers) is SignatureFailure.MALFORMED
    three = {
        k: ", ".join(v.split(", ")[:3]) if k.startswith("Signature") else v
        for k, v in headers.items()
    }
    assert (
        await verify_request("POST", INBOX, three, BODY, resolver(ALICE_PUBLIC), now=NOW)
    ).owner == OWNER
