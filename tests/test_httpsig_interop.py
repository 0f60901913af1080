"""Cross-checks with independent implementations (test-only dependencies).

* ``http_message_signatures`` 3.0 (RFC 9421): it verifies requests we sign (ed25519 and
  rsa-v1_5-sha256, with its Content-Digest body check) and we verify requests it signs.
* ``apsig`` 0.6 (draft-cavage): it verifies our rsa-sha256 signature and we verify its.

Known apsig incompatibilities, tested precisely below rather than worked around:

1. apsig builds ``(request-target)`` from the URL path only, dropping the query, both when
   signing and when verifying (``apsig/draft/sign.py`` and ``verify.py``: ``f"{method.lower()}
   {parsed_url.path}"``). cavage-12 §2.3 and Mastodon sign path *and* query, as we do. So apsig
   rejects our signatures on URLs that carry a query string; we accept apsig's, because our
   verifier falls back to the path alone, as Mastodon does. Inbox URLs have no query, so the
   compatible subset is what federation uses.
2. apsig supports ``algorithm="rsa-sha256"`` with RSA keys only; it refuses ``hs2019`` and so
   cannot verify our Ed25519 (hs2019) cavage signatures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from apsig.draft.sign import Signer as ApsigSigner
from apsig.draft.verify import Verifier as ApsigVerifier
from apsig.exceptions import UnknownSignatureError, VerificationFailedError
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)

from activitypub.httpsig import (
    KeyResolver,
    Scheme,
    SignatureError,
    SignatureFailure,
    SigningKey,
    sign_request,
    verify_request,
)
from activitypub.keys import ActorKey, generate_ed25519, generate_rsa

KEY_ID = "https://a.example/users/alice#main-key"
OWNER = "https://a.example/users/alice"
INBOX = "https://b.example/users/bob/inbox"
BODY = b'{"type":"Like","actor":"https://a.example/users/alice","object":"https://b.example/n/1"}'
AS2 = {"Content-Type": "application/activity+json"}
RSA_KEY = generate_rsa()
ED_KEY = generate_ed25519()
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass
class Request:
    """The request shape http_message_signatures reads: method, url, headers."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


def hms_algorithm(key: PrivateKey) -> Any:
    return (
        algorithms.ED25519
        if isinstance(key, ed25519.Ed25519PrivateKey)
        else algorithms.RSA_V1_5_SHA256
    )


def resolver(key: PrivateKey) -> KeyResolver:
    async def resolve(key_id: str, refresh: bool) -> ActorKey:
        assert key_id == KEY_ID
        return ActorKey(KEY_ID, OWNER, key.public_key())

    return resolve


KEYS = pytest.mark.parametrize("key", [RSA_KEY, ED_KEY], ids=["rsa-v1_5-sha256", "ed25519"])


# --- http_message_signatures (RFC 9421) -----------------------------------------------


@KEYS
def test_hms_verifies_our_rfc9421_post(key: PrivateKey) -> None:
    headers = sign_request("POST", INBOX, AS2, BODY, SigningKey(KEY_ID, key), Scheme.RFC9421)
    verifier = HTTPMessageVerifier(
        signature_algorithm=hms_algorithm(key),
        key_resolver=MappingKeyResolver(public_keys={KEY_ID: key.public_key()}, private_keys={}),
    )
    results = verifier.verify(
        Request("POST", INBOX, headers),
        body=BODY,
        require_components=("@method", "@target-uri", "@authority", "content-digest"),
    )
    assert len(results) == 1
    assert results[0].label == "sig1"
    assert results[0].parameters["keyid"] == KEY_ID
    assert results[0].body == BODY
    # It really checks: a changed body or a changed target is refused.
    with pytest.raises(InvalidSignature):
        verifier.verify(Request("POST", INBOX, headers), body=BODY + b" ")
    with pytest.raises(InvalidSignature):
        verifier.verify(Request("POST", INBOX + "x", headers), body=BODY)


@KEYS
def test_hms_verifies_our_rfc9421_get(key: PrivateKey) -> None:
    url = "https://b.example/users/bob/outbox?page=true"
    headers = sign_request("GET", url, {}, None, SigningKey(KEY_ID, key), Scheme.RFC9421)
    verifier = HTTPMessageVerifier(
        signature_algorithm=hms_algorithm(key),
        key_resolver=MappingKeyResolver(public_keys={KEY_ID: key.public_key()}, private_keys={}),
    )
    results = verifier.verify(Request("GET", url, headers), require_components=("@target-uri",))
    assert results[0].covered_components['"@target-uri"'] == url


def _hms_sign(key: PrivateKey, method: str, url: str, body: bytes | None) -> dict[str, str]:
    request = Request(method, url, dict(AS2) if body is not None else {})
    signer = HTTPMessageSigner(
        signature_algorithm=hms_algorithm(key),
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={KEY_ID: key}),
    )
    signer.sign(
        request,
        key_id=KEY_ID,
        label="hms",
        covered_component_ids=("@method", "@authority", "@target-uri"),
        body=body,
    )
    return request.headers


@KEYS
async def test_we_verify_an_hms_signed_post(key: PrivateKey) -> None:
    headers = _hms_sign(key, "POST", INBOX, BODY)
    assert "content-digest" in headers["Signature-Input"]
    result = await verify_request("POST", INBOX, headers, BODY, resolver(key))
    assert (result.scheme, result.key_id, result.owner) == (Scheme.RFC9421, KEY_ID, OWNER)
    with pytest.raises(SignatureError) as info:
        await verify_request("POST", INBOX, headers, BODY.replace(b"Like", b"Lika"), resolver(key))
    assert info.value.reason is SignatureFailure.DIGEST_MISMATCH


@KEYS
async def test_we_verify_an_hms_signed_get(key: PrivateKey) -> None:
    url = "https://b.example/users/bob?x=1"
    headers = _hms_sign(key, "GET", url, None)
    result = await verify_request("GET", url, headers, None, resolver(key))
    assert result.scheme is Scheme.RFC9421
    with pytest.raises(SignatureError) as info:
        await verify_request("GET", url + "2", headers, None, resolver(key))
    assert info.value.reason is SignatureFailure.SIGNATURE


# --- apsig (draft-cavage) --------------------------------------------------------------


def _apsig_verify(headers: Mapping[str, str], url: str, body: bytes) -> Any:
    verifier = ApsigVerifier(
        public_pem=RSA_KEY.public_key(), method="POST", url=url, headers=dict(headers), body=body
    )
    return verifier.verify(raise_on_fail=True)


def test_apsig_verifies_our_cavage_post() -> None:
    headers = sign_request("POST", INBOX, AS2, BODY, SigningKey(KEY_ID, RSA_KEY), Scheme.CAVAGE)
    assert _apsig_verify(headers, INBOX, BODY) == KEY_ID
    with pytest.raises(VerificationFailedError):
        _apsig_verify(headers, INBOX, BODY + b" ")
    with pytest.raises(VerificationFailedError):
        _apsig_verify(headers, INBOX.replace("bob", "bib"), BODY)


async def test_we_verify_an_apsig_signed_post() -> None:
    headers = ApsigSigner(
        headers=dict(AS2), private_key=RSA_KEY, method="POST", url=INBOX, key_id=KEY_ID, body=BODY
    ).sign()
    assert 'headers="(request-target) date host digest"' in headers["Signature"]
    result = await verify_request("POST", INBOX, headers, BODY, resolver(RSA_KEY))
    assert (result.scheme, result.key_id, result.owner) == (Scheme.CAVAGE, KEY_ID, OWNER)
    with pytest.raises(SignatureError) as info:
        await verify_request("POST", INBOX, headers, BODY + b" ", resolver(RSA_KEY))
    assert info.value.reason is SignatureFailure.DIGEST_MISMATCH


async def test_query_string_incompatibility_is_one_sided() -> None:
    """Incompatibility 1: apsig drops the query from (request-target); we accept that form."""
    url = INBOX + "?via=relay"
    ours = sign_request("POST", url, AS2, BODY, SigningKey(KEY_ID, RSA_KEY), Scheme.CAVAGE)
    with pytest.raises(VerificationFailedError):
        _apsig_verify(ours, url, BODY)
    theirs = ApsigSigner(
        headers=dict(AS2), private_key=RSA_KEY, method="POST", url=url, key_id=KEY_ID, body=BODY
    ).sign()
    result = await verify_request("POST", url, theirs, BODY, resolver(RSA_KEY))
    assert result.owner == OWNER


def test_apsig_refuses_hs2019() -> None:
    """Incompatibility 2: apsig knows rsa-sha256 only, so our Ed25519 (hs2019) is refused."""
    headers = sign_request("POST", INBOX, AS2, BODY, SigningKey(KEY_ID, ED_KEY), Scheme.CAVAGE)
    assert 'algorithm="hs2019"' in headers["Signature"]
    with pytest.raises(UnknownSignatureError):
        _apsig_verify(headers, INBOX, BODY)
