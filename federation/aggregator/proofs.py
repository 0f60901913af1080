"""Who really signed a support or undo (DESIGN.md §5, §7 rule 1), whatever route it came by.

The aggregator verifies every vote's own FEP-8b32 proof, never the word of whoever relayed it.
The outcome is what the tally needs: whether a proof verified, and the origin of the key that
made it. A proof by the actor's own key is genuine; a proof that verifies with another origin's
key is a forgery *by that origin* (instance B signing for a resident of A), filed under B; a
missing, altered or unverifiable proof is filed under the actor's origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activitypub.fetch import FetchError, FetchFailure
from activitypub.integrity import (
    ActorFetcher,
    ContextMemo,
    ProofError,
    ProofFailure,
    assertion_keys,
    verify_document,
    verify_proof_with_key,
    verify_with_actor,
)
from activitypub.origin import strip_fragment
from federation.aggregator.documents import ActorFetch
from federation.tally.records import normal_origin

_GONE_STATUSES = (404, 410)


@dataclass(frozen=True)
class ProofCheck:
    """``ok``: a proof verified with a key ``signer_origin`` lists for the signing actor."""

    ok: bool
    signer_origin: str


def _proof_list(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    proof = document.get("proof")
    proofs = proof if isinstance(proof, list) else [proof]
    return [p for p in proofs if isinstance(p, Mapping)]


def proof_fetcher(
    actor: ActorFetch, loaded: tuple[str, Mapping[str, Any]] | None = None
) -> ActorFetcher:
    """integrity.ActorFetcher over the actor cache; a failed fetch means no usable key.
    ``loaded``: an (actor id, document) just read, handed back for that id unless refreshed."""

    async def fetch(url: str, refresh: bool) -> Mapping[str, Any]:
        if loaded is not None and not refresh and url == loaded[0]:
            return loaded[1]
        try:
            return await actor(url, refresh)
        except FetchError as exc:
            raise ProofError(ProofFailure.KEY_UNKNOWN, f"cannot fetch {url}: {exc}") from exc

    return fetch


async def _reachable(actor: ActorFetch, actor_id: str) -> Mapping[str, Any] | None:
    """The actor's document (from the cache, or fetched); None when it is gone for good.

    Any other fetch failure propagates: a vote must not be filed as forged because its
    actor's server was briefly down; the caller retries later.
    """
    try:
        return await actor(actor_id, False)
    except FetchError as exc:
        if exc.status in _GONE_STATUSES or exc.reason in (
            FetchFailure.GONE,
            FetchFailure.ID_MISMATCH,
        ):
            return None
        raise


async def _true_signer(document: Mapping[str, Any], fetch: ActorFetcher) -> str | None:
    """The origin of whoever made a proof that verifies with a key they list, if anyone."""
    for proof in _proof_list(document):
        method = proof.get("verificationMethod")
        if not isinstance(method, str):
            continue
        controller = strip_fragment(method)
        try:
            actor = await fetch(controller, False)
        except ProofError:
            continue
        key = assertion_keys(actor).get(method) if actor.get("id") == controller else None
        if key is None:
            continue
        try:
            verify_proof_with_key(document, key)
        except ProofError:
            continue
        return normal_origin(controller)
    return None


async def check_proof(
    document: Mapping[str, Any],
    actor_id: str,
    actor: ActorFetch,
    memo: ContextMemo | None = None,
) -> ProofCheck:
    """Verify the actor's proof on ``document`` (FEP-8b32, FEP-fe34) and name the signer
    (``memo``: the caller's canonical forms of the @contexts it met)."""
    home = normal_origin(actor_id) or actor_id
    if "proof" not in document:
        return ProofCheck(False, home)
    loaded = await _reachable(actor, actor_id)
    if loaded is None:
        return ProofCheck(False, home)
    # Verification reads the document just loaded, not the cache a second time.
    fetch = proof_fetcher(actor, (actor_id, loaded))
    try:
        await verify_document(document, fetch, owner=actor_id, memo=memo)
        return ProofCheck(True, home)
    except ProofError as exc:
        if exc.reason is not ProofFailure.NOT_OWNER:
            return ProofCheck(False, home)
    signer = await _true_signer(document, fetch)
    # Another actor of the same instance is not the actor either: filed under the instance.
    if signer is None or signer == home:
        return ProofCheck(False, home)
    return ProofCheck(True, signer)


def proof_at_once(
    document: Mapping[str, Any],
    actor_id: str,
    actor: Mapping[str, Any],
    memo: ContextMemo | None = None,
) -> ProofCheck | None:
    """:func:`check_proof` with the actor's document at hand, when that settles it: a proof
    by the actor's own key that verifies. None otherwise: :func:`check_proof` decides, which
    may refetch the actor (a rotated key) or find whose key made the proof."""
    try:
        verify_with_actor(document, actor, owner=actor_id, memo=memo)
    except ProofError:
        return None
    return ProofCheck(True, normal_origin(actor_id) or actor_id)
