"""Client-signed supports: a ``Like`` or its ``Undo`` proved by a key only the resident's client
holds, stored and delivered exactly as signed (DESIGN.md §6 "C2S", FEP-8b32).

The server adds no proof and changes nothing the proof covers, so the client chooses what the
server would otherwise choose, under these rules (each refusal names its rule):

- the activity is a support ``Like`` or its ``Undo`` (vocab-spec "support", "undo-support"),
  valid against its schema (``invalid_support``/``invalid_undo-support``); any other signed
  activity is refused (``signed_activity_unsupported``: POST those unsigned);
- ``actor`` is the outbox's owner (``actor_mismatch``);
- ``id`` is ``{base}/supports/{uuid}`` for a Like and ``{base}/activities/{uuid}`` for an Undo,
  ``{uuid}`` a fresh version 4 or 7 UUID as 32 lowercase hex digits (``client_id_invalid``),
  never used before here (``id_in_use``): the server's own ids have the same form, so the
  activity is served at its id like any other;
- ``published`` is within five minutes of the server's clock (``published_out_of_range``):
  receivers judge a support at its ``published`` time, so it may not be backdated;
- ``to`` names the proposal's owning Group (its ``audience``) and otherwise only aggregators
  this instance reports to; no ``cc``, ``bto``, ``bcc`` or ``audience`` (``wrong_addressing``);
  the server still delivers it to the owning Group and to every aggregator it reports to;
- the one FEP-8b32 ``eddsa-jcs-2022`` proof verifies (its failure reason, e.g.
  ``proof_signature_invalid``) with one of the resident's registered client keys
  ``{actor}#client-{name}`` (``proof_not_by_client_key``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import timedelta
from typing import Any

from activitypub import as2
from activitypub.integrity import ActorFetcher, ProofError, verify_document
from federation.instance.c2s_acts import refusal
from federation.instance.deliberation import Deliberation
from federation.instance.ports import User
from federation.validation import ValidationError, shape_of, validate

SKEW = timedelta(minutes=5)
#: Where a client-chosen id lives, by shape (the paths the read side serves activities at).
ID_PATHS = {"support": "supports", "undo-support": "activities"}
_UUID_HEX = re.compile(r"^[0-9a-f]{12}[47][0-9a-f]{3}[89ab][0-9a-f]{15}$")
_FORBIDDEN_ADDRESSING = ("cc", "bto", "bcc", "audience")

#: The key ids of a resident's registered client keys.
ClientKeyIds = Callable[[User], Awaitable[Collection[str]]]


def check_client_chosen_id(activity_id: str, base_url: str, shape: str) -> None:
    """Refuse an id that is not ``{base}/{path}/{uuid v4|v7 as 32 lowercase hex}``."""
    prefix = f"{base_url}/{ID_PATHS[shape]}/"
    if not activity_id.startswith(prefix) or not _UUID_HEX.match(activity_id[len(prefix) :]):
        raise refusal(
            422, "client_id_invalid",
            f"a client-signed {shape} has the id {prefix}<uuid>: a fresh version 4 or 7 UUID "
            "as 32 lowercase hex digits",
        )  # fmt: skip


class SignedActs:
    """Checks and applies client-signed supports and withdrawals."""

    def __init__(
        self,
        deliberation: Deliberation,
        *,
        client_key_ids: ClientKeyIds,
        fetch_actor: ActorFetcher,
    ) -> None:
        self.service = deliberation
        self._key_ids = client_key_ids
        self._fetch_actor = fetch_actor

    async def submit(self, user: User, actor: str, activity: Mapping[str, Any]) -> dict[str, Any]:
        """Check every rule above, then apply it through the support service, unchanged."""
        shape = _signed_shape(activity)
        if as2.first_id(activity, "actor") != actor:
            raise refusal(403, "actor_mismatch", f"actor must be {actor}, the outbox's owner")
        activity_id = str(activity["id"])
        check_client_chosen_id(activity_id, self.service.config.base_url, shape)
        await self._check_unused(activity_id)
        self._check_published(activity)
        await self._check_proof(user, actor, activity)
        await self._check_addressing(activity, shape)
        if shape == "support":
            await self.service.support_signed(user, activity)
        else:
            await self.service.withdraw_signed(user, activity)
        stored = await self.service.outbox.get_activity(activity_id)
        if stored is None:
            raise refusal(409, "not_published", f"{activity_id} was not stored")
        return stored.document

    async def _check_unused(self, activity_id: str) -> None:
        service = self.service
        used = (
            await service.outbox.get_activity(activity_id) is not None
            or await service.proposals.get_support(activity_id) is not None
            or await service.domain.get_tombstone(activity_id) is not None
        )
        if used:
            raise refusal(409, "id_in_use", f"{activity_id} is already used; choose a fresh UUID")

    def _check_published(self, activity: Mapping[str, Any]) -> None:
        published = as2.optional_datetime(activity, "published")
        now = self.service.now()
        if published is None or not now - SKEW <= published <= now + SKEW:
            raise refusal(
                422, "published_out_of_range",
                f"published must be within 5 minutes of the server's clock ({now.isoformat()})",
            )  # fmt: skip

    async def _check_proof(self, user: User, actor: str, activity: Mapping[str, Any]) -> None:
        try:
            verified = await verify_document(activity, self._fetch_actor, owner=actor)
        except ProofError as exc:
            raise refusal(
                403, exc.reason.value, f"the proof does not verify: {exc.detail}"
            ) from exc
        if verified.verification_method not in await self._key_ids(user):
            raise refusal(
                403, "proof_not_by_client_key",
                f"{verified.verification_method} is not one of your registered client keys",
            )  # fmt: skip

    async def _check_addressing(self, activity: Mapping[str, Any], shape: str) -> None:
        audience = await self._proposal_audience(activity, shape)
        allowed = {audience, *self.service.config.report_to}
        to = set(as2.ids(activity, "to"))
        extra = [key for key in _FORBIDDEN_ADDRESSING if key in activity]
        if audience not in to or not to <= allowed or extra:
            raise refusal(
                422, "wrong_addressing",
                f"to must name {audience} (the proposal's owning Group) and may name only "
                f"the aggregators this instance reports to; no {', '.join(_FORBIDDEN_ADDRESSING)}",
                expected=sorted(allowed),
            )  # fmt: skip

    async def _proposal_audience(self, activity: Mapping[str, Any], shape: str) -> str:
        service = self.service
        target = as2.id_of(as2.first(activity, "object")) or ""
        if shape == "undo-support":
            support = await service.proposals.get_support(target)
            if support is None:
                raise refusal(404, "not_found", f"there is no support {target} here")
            target = support.proposal_id
        record = await service.proposals.get_proposal(target)
        if record is None:
            raise refusal(404, "not_found", f"there is no proposal {target} here")
        return record.proposal.audience


def _signed_shape(activity: Mapping[str, Any]) -> str:
    shape = shape_of(activity)
    if shape not in ID_PATHS:
        raise refusal(
            422, "signed_activity_unsupported",
            "only a support (Like) or its withdrawal (Undo) may carry the client's proof",
        )  # fmt: skip
    try:
        validate(shape, activity)
    except ValidationError as exc:
        raise refusal(
            422, f"invalid_{shape}", f"{exc.field}: {exc.detail}", field=exc.field
        ) from exc
    return shape
