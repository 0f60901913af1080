"""What a resident's client POSTs to their outbox, mapped onto the Deliberation service (C2S).

ActivityPub §6 with DESIGN.md §6: the server assigns every id, addresses every act itself (a
client's ``to``/``cc``/``bto``/``bcc`` are not used: supports stay private, public acts reach
the Group) and applies every rule of the instance through the same service the pages use.

=============================================  =============================================
POSTed                                          Deliberation call
=============================================  =============================================
``Create{Proposal}`` (``process``, ``name``)    ``create_proposal``
``Create{Debate}`` (``process`` optional)       ``create_debate``
``Create{Note}`` (``inReplyTo``, alignment)     ``comment``
``Like`` of a proposal / of a comment           ``support`` / ``vote_comment(up=True)``
``Dislike`` of a comment                        ``vote_comment(up=False)``
``Undo`` of one's support / comment vote        ``withdraw_support`` / ``unvote_comment``
``Update{Proposal}`` (name, text; or state      ``edit_proposal`` / ``withdraw_proposal``
``withdrawn``)
``Update{Debate}`` (name, text; conclusions)   ``edit_debate`` / ``close_debate``
``Update{Note}`` (text)                         ``edit_comment``
``Delete`` of one's proposal, debate, comment   ``delete_proposal|debate|comment``
a bare ``Proposal``, ``Debate`` or ``Note``     wrapped in ``Create`` (ActivityPub §6.2.1)
=============================================  =============================================

Text is read from ``source`` (``mediaType`` ``text/markdown``), else from ``content`` as plain
text. An activity that carries a ``proof`` goes to :mod:`federation.instance.c2s_signed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from activitypub import as2
from activitypub.errors import Problem
from federation.instance.content import plain_text
from federation.instance.deliberation import PROBLEM_BASE, Deliberation
from federation.instance.ports import User
from federation.model import Alignment, ProposalState
from federation.vocab.proposal import location_from_ap

ACTIVITY_TYPES = frozenset({"Create", "Update", "Delete", "Like", "Dislike", "Undo"})
OBJECT_TYPES = frozenset({"Proposal", "Debate", "Note"})
_TITLES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
}


def refusal(status: int, reason: str, detail: str, **extensions: Any) -> Problem:
    """A C2S refusal: problem+json whose ``type`` and ``reason`` name the rule (RFC 9457)."""
    title = _TITLES.get(status, "Refused")
    return Problem(status, title, detail, type_=PROBLEM_BASE + reason, reason=reason, **extensions)


def bad_input(field: str, detail: str) -> NoReturn:
    """Refuse malformed client input, naming the field (reason ``invalid_input``)."""
    raise refusal(422, "invalid_input", f"{field}: {detail}", field=field)


def wrap_bare_object(doc: Mapping[str, Any], actor: str) -> dict[str, Any]:
    """A bare object as the ``object`` of a ``Create`` by ``actor`` (ActivityPub §6.2.1)."""
    kinds = set(as2.types(doc))
    if kinds & ACTIVITY_TYPES or not kinds & OBJECT_TYPES:
        return dict(doc)
    wrapped: dict[str, Any] = {"type": "Create", "actor": actor, "object": dict(doc)}
    if "@context" in doc:
        wrapped = {"@context": doc["@context"], **wrapped}
    return wrapped


def markdown_of(obj: Mapping[str, Any], field: str = "content") -> str:
    """The text of an object: its markdown ``source``, else its ``content`` as plain text."""
    source = as2.first(obj, "source")
    if isinstance(source, Mapping) and source.get("mediaType") == "text/markdown":
        if isinstance(source.get("content"), str):
            return str(source["content"])
    content = as2.first(obj, field)
    if not isinstance(content, str) or not content.strip():
        bad_input(field, "is required: markdown in source (text/markdown) or text in content")
    return plain_text(content)


def _name(obj: Mapping[str, Any]) -> str:
    name = as2.text(obj, "name")
    if not name:
        bad_input("name", "is required")
    return name


def _object_id(activity: Mapping[str, Any]) -> str:
    found = as2.id_of(as2.first(activity, "object"))
    if found is None:
        bad_input("object", "is required: the id of what the activity is about")
    return found


class ClientActs:
    """Runs one client activity through the service; returns the activity as stored."""

    def __init__(self, deliberation: Deliberation) -> None:
        self.service = deliberation

    async def submit(self, user: User, actor: str, activity: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a (server-addressed) client activity; the stored, proved activity back."""
        if as2.first_id(activity, "actor") not in (None, actor):
            raise refusal(403, "actor_mismatch", f"actor must be {actor}, the outbox's owner")
        kinds = [kind for kind in as2.types(activity) if kind in ACTIVITY_TYPES]
        if not kinds:
            raise refusal(
                422, "unsupported_activity",
                f"POST one of {', '.join(sorted(ACTIVITY_TYPES))} or a bare "
                f"{', '.join(sorted(OBJECT_TYPES))}",
            )  # fmt: skip
        kind = kinds[0]
        if kind == "Create":
            return await self._create(user, actor, activity)
        if kind == "Update":
            return await self._update(user, actor, activity)
        object_id = _object_id(activity)
        if kind in ("Like", "Dislike"):
            return await self._like(user, actor, object_id, up=kind == "Like")
        if kind == "Undo":
            return await self._undo(user, actor, object_id)
        return await self._delete(user, object_id)

    async def _stored(self, object_id: str, actor: str, kind: str) -> dict[str, Any]:
        """The newest activity of ``kind`` by ``actor`` about ``object_id`` in the outbox."""
        for stored in reversed(await self.service.outbox.activities_about(object_id)):
            if stored.actor == actor and stored.type == kind:
                return stored.document
        raise refusal(409, "not_published", f"no {kind} of {object_id} was stored")

    async def _activity(self, activity_id: str) -> dict[str, Any]:
        stored = await self.service.outbox.get_activity(activity_id)
        if stored is None:
            raise refusal(409, "not_published", f"{activity_id} was not stored")
        return stored.document

    # --- Create -------------------------------------------------------------------------------

    async def _create(self, user: User, actor: str, activity: Mapping[str, Any]) -> dict[str, Any]:
        obj = as2.embedded(activity, "object")
        if obj is None:
            bad_input("object", "a Create embeds the new object (its id is assigned here)")
        _check_author(obj, actor)
        service = self.service
        if as2.has_type(obj, "Proposal"):
            proposal = await service.create_proposal(
                user, _required_id(obj, "process"), name=_name(obj),
                body_markdown=markdown_of(obj), location=_location(obj),
            )  # fmt: skip
            return await self._stored(proposal.id, actor, "Create")
        if as2.has_type(obj, "Debate"):
            debate = await service.create_debate(
                user, as2.optional_id(obj, "process"), name=_name(obj),
                body_markdown=markdown_of(obj),
            )  # fmt: skip
            return await self._stored(debate.id, actor, "Create")
        if as2.has_type(obj, "Note"):
            comment = await service.comment(
                user, _required_id(obj, "inReplyTo"), body_markdown=markdown_of(obj),
                alignment=_alignment(obj),
            )  # fmt: skip
            return await self._stored(comment.id, actor, "Create")
        raise refusal(422, "unsupported_object", "a Create makes a Proposal, a Debate or a Note")

    # --- Like, Dislike, Undo --------------------------------------------------------------------

    async def _like(self, user: User, actor: str, object_id: str, *, up: bool) -> dict[str, Any]:
        service = self.service
        if await service.proposals.process_of(object_id) is not None:
            if not up:
                raise refusal(
                    422, "unsupported_activity", "a support is a Like; withdraw it by Undo"
                )
            # The Like as proved, stored and queued: what a read of it back would give.
            return (await service.support_published(user, object_id))[1]
        if await service.comments.get_comment(object_id) is not None:
            vote = await service.vote_comment(user, object_id, up=up)
            return await self._activity(vote.id)
        raise refusal(404, "not_found", f"there is no proposal or comment {object_id} here")

    async def _undo(self, user: User, actor: str, object_id: str) -> dict[str, Any]:
        service = self.service
        support = await service.proposals.get_support(object_id)
        if support is not None:
            if support.actor != actor:
                raise refusal(403, "not_author", "only the supporter may withdraw a support")
            return (await service.withdraw_published(user, support.proposal_id))[1]
        vote = await service.comments.get_vote(object_id)
        if vote is not None:
            if vote.actor != actor:
                raise refusal(403, "not_author", "only the voter may retract a vote")
            await service.unvote_comment(user, vote.comment_id)
            return await self._stored(object_id, actor, "Undo")
        raise refusal(404, "not_found", f"there is no support or vote {object_id} here")

    # --- Update, Delete -------------------------------------------------------------------------

    async def _update(self, user: User, actor: str, activity: Mapping[str, Any]) -> dict[str, Any]:
        obj = as2.embedded(activity, "object")
        if obj is None:
            bad_input("object", "an Update embeds the object with the changed fields")
        object_id = _required_id(obj, "id")
        service = self.service
        if as2.has_type(obj, "Proposal"):
            if as2.optional_str(obj, "proposalState") == ProposalState.WITHDRAWN.value:
                await service.withdraw_proposal(user, object_id)
                return await self._stored(object_id, actor, "Update")
            record = await service.proposal_record(object_id)
            await service.edit_proposal(
                user, object_id, name=as2.text(obj, "name") or record.proposal.name.default,
                body_markdown=_changed_text(obj, record.proposal.source_markdown),
            )  # fmt: skip
            return await self._stored(object_id, actor, "Update")
        if as2.has_type(obj, "Debate"):
            return await self._update_debate(user, actor, object_id, obj)
        # A Note must name a comment: a Note-typed Update of a proposal changes nothing.
        if as2.has_type(obj, "Note") and await service.comments.get_comment(object_id):
            await service.edit_comment(user, object_id, body_markdown=markdown_of(obj))
            return await self._stored(object_id, actor, "Update")
        raise refusal(
            422, "update_not_supported",
            "an Update edits or withdraws a proposal, edits or closes a debate, or edits a comment",
        )  # fmt: skip

    async def _update_debate(
        self, user: User, actor: str, debate_id: str, obj: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``conclusions`` close the debate; otherwise its title and text are edited."""
        service = self.service
        if "conclusions" in obj:
            conclusions = as2.text(obj, "conclusions") or ""
            await service.close_debate(user, debate_id, conclusions=conclusions)
            return await self._stored(debate_id, actor, "Update")
        record = await service.debate_record(debate_id)
        await service.edit_debate(
            user, debate_id, name=as2.text(obj, "name") or record.debate.name.default,
            body_markdown=_changed_text(obj, record.debate.source_markdown),
        )  # fmt: skip
        return await self._stored(debate_id, actor, "Update")

    async def _delete(self, user: User, object_id: str) -> dict[str, Any]:
        service = self.service
        if await service.proposals.get_proposal(object_id) is not None:
            deletion = await service.delete_proposal(user, object_id)
        elif await service.domain.get_debate(object_id) is not None:
            deletion = await service.delete_debate(user, object_id)
        elif await service.comments.get_comment(object_id) is not None:
            deletion = await service.delete_comment(user, object_id)
        else:
            raise refusal(404, "not_found", f"there is no proposal, debate or comment {object_id}")
        return await self._activity(deletion.id)


def _check_author(obj: Mapping[str, Any], actor: str) -> None:
    author = as2.first_id(obj, "attributedTo")
    if author is not None and author != actor:
        raise refusal(403, "actor_mismatch", f"attributedTo must be {actor}, the outbox's owner")


def _required_id(obj: Mapping[str, Any], key: str) -> str:
    found = as2.first_id(obj, key)
    if found is None:
        bad_input(key, "is required (an id)")
    return found


def _location(obj: Mapping[str, Any]) -> Any:
    return location_from_ap(obj)


def _alignment(obj: Mapping[str, Any]) -> Alignment:
    value = as2.optional_str(obj, "alignment") or Alignment.NEUTRAL.value
    try:
        return Alignment(value)
    except ValueError:
        bad_input("alignment", "must be inFavor, against or neutral")


def _changed_text(obj: Mapping[str, Any], current: str | None) -> str:
    """The edited text, or the current one when the Update leaves it out."""
    if "source" in obj or "content" in obj:
        return markdown_of(obj)
    if current is None:
        bad_input("content", "is required: there is no markdown source to keep")
    return current
