"""Which HTTP signature each peer accepts, and the signed POST that finds out (Fedify's
double-knock, DESIGN.md §5): RFC 9421 with the actor's Ed25519 key, then with its RSA key,
then draft-cavage-12, remembered per host.
"""

from __future__ import annotations

from enum import StrEnum

import aiohttp

from activitypub.httpsig import Scheme, SigningKey, authority, sign_request


class Knock(StrEnum):
    """A way to sign a delivery: the scheme and which of the actor's keys signs it."""

    RFC9421_ED25519 = "rfc9421-ed25519"  # alg ed25519, the actor's #ed25519-key (DESIGN.md §5)
    RFC9421 = "rfc9421"  # rsa-v1_5-sha256 with #main-key
    CAVAGE = "cavage-12"  # rsa-sha256 with #main-key, what every fediverse server verifies

    @property
    def scheme(self) -> Scheme:
        """The HTTP signature specification this knock signs with."""
        return Scheme.CAVAGE if self is Knock.CAVAGE else Scheme.RFC9421


class KnockMemory:
    """How each peer last accepted a delivery, so the next one knocks once (Fedify's
    double-knock, with a first rung for Ed25519: an RSA-2048 signature costs ~10 times more)."""

    def __init__(self) -> None:
        self._knocks: dict[str, Knock] = {}

    def knock_for(self, host: str, default: Knock = Knock.RFC9421) -> Knock:
        """The knock to try first for ``host`` (the URL authority): ``default`` unless learned."""
        return self._knocks.get(host.lower(), default)

    def scheme_for(self, host: str) -> Scheme:
        """The scheme to try first for ``host``: RFC 9421 unless it learned cavage-12."""
        return self.knock_for(host).scheme

    def remember(self, host: str, how: Knock | Scheme) -> None:
        """Record that ``host`` accepted ``how`` (a Scheme means it with the RSA key)."""
        self._knocks[host.lower()] = how if isinstance(how, Knock) else Knock(how.value)


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    key: SigningKey,
    memory: KnockMemory,
    *,
    ed25519_key: SigningKey | None = None,
    content_type: str = "application/activity+json",
    timeout: float = 30.0,  # noqa: ASYNC109 - the contract's per-request aiohttp timeout
) -> int:
    """POST a signed body; on 400/401 retry with the other knocks (RFC 9421 with
    ``ed25519_key``, then with the RSA ``key``, then cavage-12) and remember the winner."""
    host = authority(url)
    ladder = [Knock.RFC9421, Knock.CAVAGE]
    if ed25519_key is not None:
        ladder.insert(0, Knock.RFC9421_ED25519)
    first = memory.knock_for(host, ladder[0])
    first = first if first in ladder else Knock.RFC9421
    status = 0
    for knock in [first, *(rung for rung in ladder if rung is not first)]:
        signer = ed25519_key if knock is Knock.RFC9421_ED25519 and ed25519_key else key
        headers = sign_request(
            "POST", url, {"Content-Type": content_type}, body, signer, knock.scheme
        )
        async with session.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            status = response.status
        if status not in (400, 401):
            memory.remember(host, knock)
            break
    return status
