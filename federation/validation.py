"""Inbound validation of Barri documents: one compiled JSON Schema per shape, then the rules a
schema cannot say (origins, ownership, phase order, tally sums), with errors that name the field.

Federation and C2S input pass through here before any converter sees them (DESIGN.md §6: client
input is validated exactly as strictly as federated input). Schemas live in schemas/json and are
compiled by fastjsonschema once per process; their ``$ref``s resolve only to those local files.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from activitypub import as2
from activitypub.origin import same_origin
from schemas import SCHEMAS_DIR

if TYPE_CHECKING:
    import fastjsonschema

# fmt: off
SHAPES: tuple[str, ...] = (
    "actor-person", "actor-group", "actor-application", "actor-service",
    "process", "proposal", "debate", "comment", "tally", "tombstone",
    "support", "undo-support", "comment-vote", "undo-comment-vote",
    "official-answer", "announce", "delete",
)
# fmt: on

SCHEMA_BASE_URI = "https://w3id.org/barri/schemas/json/"
JSON_SCHEMAS_DIR = SCHEMAS_DIR / "json"

_ACTOR_TYPES = (
    ("Person", "actor-person"),
    ("Group", "actor-group"),
    ("Application", "actor-application"),
    ("Service", "actor-service"),
)
# Checked in this order: a Tally is also a Note, a Proposal also a Page.
_OBJECT_TYPES = (
    ("Tally", "tally"),
    ("ParticipatoryProcess", "process"),
    ("Proposal", "proposal"),
    ("Debate", "debate"),
    ("Tombstone", "tombstone"),
    *_ACTOR_TYPES,
)
_OBJECT_SHAPES = frozenset(shape for _, shape in _OBJECT_TYPES) | {"comment"}
_AUTHORED_SHAPES = frozenset({"process", "proposal", "debate", "comment", "tally"})
_ACTOR_SHAPES = frozenset(shape for _, shape in _ACTOR_TYPES)
_ACTIVITY_SHAPES = frozenset(SHAPES) - _OBJECT_SHAPES
_ACTOR_COLLECTIONS = ("inbox", "outbox", "followers", "following")


class ValidationError(ValueError):
    """A document broke one rule of its shape; ``field`` is a JSON path like ``phases[0].name``."""

    def __init__(self, shape: str, field: str, rule: str, detail: str) -> None:
        super().__init__(f"{shape}: {field}: {detail}")
        self.shape = shape
        self.field = field
        self.rule = rule
        self.detail = detail


# --- schemas: loaded from schemas/json, compiled once ------------------------------------------


def load_schema(name: str) -> dict[str, Any]:
    """A fresh copy of ``schemas/json/<name>.schema.json`` (a shape or ``defs``)."""
    if name not in SHAPES and name != "defs":
        raise ValueError(f"unknown schema {name!r}; shapes are {', '.join(SHAPES)}")
    with (JSON_SCHEMAS_DIR / f"{name}.schema.json").open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def _resolve_ref(uri: str) -> dict[str, Any]:
    # Why a handler for every scheme: without one, fastjsonschema fetches $refs with urllib.
    if uri.startswith(SCHEMA_BASE_URI) and uri.endswith(".schema.json"):
        return load_schema(uri[len(SCHEMA_BASE_URI) : -len(".schema.json")])
    raise ValueError(f"refusing to resolve {uri!r}: Barri schemas refer only to each other")


@functools.cache
def validator(shape: str) -> Callable[[Any], None]:
    """The compiled schema check for a shape, built once per process (JSON Schema draft-07)."""
    # Imported with the first schema compiled: a server that has validated nothing yet
    # does not hold fastjsonschema (its compiled checks were already built on first use).
    import fastjsonschema

    compiled = fastjsonschema.compile(
        load_schema(shape),
        handlers={scheme: _resolve_ref for scheme in ("http", "https", "file", "ftp", "data")},
        # No "default" filling: validation must never change the document it reads.
        use_default=False,
        # Timestamps are checked by pattern, so every draft-07 validator agrees with this one.
        use_formats=False,
    )

    invalid = fastjsonschema.JsonSchemaValueException

    def check(document: Any) -> None:
        try:
            compiled(document)
        except invalid as exc:
            raise _from_schema_error(shape, exc) from None

    return check


# --- turning fastjsonschema's errors into plain words -------------------------------------------

_TYPE_WORDS = {"object": "an object", "array": "an array", "integer": "an integer"}
_BOUND = {"maximum": "at most", "maxLength": "at most", "maxItems": "at most"}


def _from_schema_error(shape: str, exc: fastjsonschema.JsonSchemaValueException) -> ValidationError:
    rule = exc.rule or "schema"
    definition = exc.definition if isinstance(exc.definition, Mapping) else {}
    field = _field(exc.name or "data")
    if rule in ("required", "dependencies"):
        missing, detail = _missing(rule, definition, exc.value)
        return ValidationError(shape, f"{field}.{missing}" if field else missing, rule, detail)
    custom = definition.get("errorMessage")
    if isinstance(custom, Mapping) and isinstance(custom.get(rule), str):
        detail = custom[rule] + _got(exc.value)
    else:
        detail = _describe(rule, definition.get(rule), exc.value)
    return ValidationError(shape, field or "(document)", rule, detail)


def _field(name: str) -> str:
    # fastjsonschema names the root "data": "data.phases[0].endTime" -> "phases[0].endTime".
    return name.removeprefix("data").removeprefix(".")


def _missing(rule: str, definition: Mapping[str, Any], value: Any) -> tuple[str, str]:
    present = value if isinstance(value, Mapping) else {}
    if rule == "required":
        wanted = [key for key in definition.get("required", []) if key not in present]
        return (wanted[0] if wanted else "?"), "is required"
    for trigger, needs in definition.get("dependencies", {}).items():
        lacking = [key for key in needs if trigger in present and key not in present]
        if lacking:
            return lacking[0], f"is required when {trigger} is present"
    return "?", "is required"


def _describe(rule: str, expected: Any, value: Any) -> str:
    """Plain words for one JSON Schema keyword."""
    bound = _BOUND.get(rule, "at least")
    if rule == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        words = (_TYPE_WORDS.get(kind, f"a {kind}") for kind in kinds)
        return "must be " + " or ".join(words).replace("a boolean", "true or false") + _got(value)
    if rule == "enum":
        return "must be one of " + ", ".join(map(str, expected)) + _got(value)
    if rule == "minLength" and expected == 1:
        return "must not be empty"
    if rule in ("minLength", "maxLength"):
        return f"must be {bound} {expected} characters (got {len(value)})"
    if rule in ("minItems", "maxItems"):
        return f"must have {bound} {expected} item{'' if expected == 1 else 's'}"
    if rule in ("minimum", "maximum"):
        return f"must be {bound} {expected}" + _got(value)
    if rule in ("const", "pattern"):
        return f"must match {expected!r}" + _got(value)
    return f"breaks the {rule} rule" + _got(value)


def _got(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    if isinstance(value, Mapping | list) and len(text) > 60:
        return ""  # a whole object or list says less than the field name does
    return f" (got {text if len(text) <= 60 else text[:57] + '...'})"


# --- what a schema cannot say --------------------------------------------------------------------


def validate(shape: str, document: Any) -> None:
    """Check a document against its shape's schema, then its origin and consistency rules."""
    validator(shape)(document)
    validate_cross_origin(shape, document)
    validate_rules(shape, document)
    inner = as2.embedded(document, "object") if shape == "announce" else None
    # FEP-1b12: the relayed activity is checked as what it is, in the Announce's context.
    if inner is not None and (inner_shape := shape_of(inner)) is not None:
        _validate_wrapped(inner_shape, document, inner, "announce")


def validate_cross_origin(shape: str, document: Mapping[str, Any]) -> None:
    """FEP-fe34 origin rules and ownership: who may publish what under which id (DESIGN.md §5)."""
    if shape in _ACTOR_SHAPES:
        _check_actor(shape, document)
        return
    own_id = _required_id(shape, document, "id")
    if shape in _AUTHORED_SHAPES:
        for owner in as2.ids(document, "attributedTo"):
            _same_origin(shape, "id", own_id, owner, "attributedTo")
        return
    if shape not in _ACTIVITY_SHAPES:
        return  # a tombstone has no author left to compare with
    actor = _required_id(shape, document, "actor")
    _same_origin(shape, "id", own_id, actor, "actor")
    if shape in ("undo-support", "undo-comment-vote", "delete"):
        _check_own_object(shape, document, actor)
    elif shape == "official-answer":
        if actor not in as2.ids(as2.embedded(document, "object") or {}, "audience"):
            detail = "must be the Group that owns the proposal's process (object.audience)"
            raise ValidationError(shape, "actor", "owner", detail)


def _required_id(shape: str, document: Mapping[str, Any], key: str) -> str:
    found = as2.first_id(document, key) if isinstance(document, Mapping) else None
    if found is None:
        raise ValidationError(shape, key, "required", "is required")
    return found


def _same_origin(shape: str, field: str, url: str, other: str, label: str) -> None:
    if not same_origin(url, other):
        raise ValidationError(
            shape, field, "same-origin", f"must be on the same origin as {label} ({other})"
        )


def _check_own_object(shape: str, document: Mapping[str, Any], actor: str) -> None:
    """Undo and Delete touch only the actor's own activity or object (FEP-fe34)."""
    inner = as2.embedded(document, "object")
    if inner is None:
        _same_origin(shape, "object", _required_id(shape, document, "object"), actor, "actor")
        return
    _same_origin(shape, "object.id", _required_id(shape, inner, "id"), actor, "actor")
    if shape != "delete" and as2.first_id(inner, "actor") != actor:
        raise ValidationError(shape, "object.actor", "same-actor", f"must be the actor ({actor})")


def _check_actor(shape: str, document: Mapping[str, Any]) -> None:
    """An actor's inboxes and collections are on its origin; its keys name it (FEP-521a)."""
    actor = _required_id(shape, document, "id")
    for key in _ACTOR_COLLECTIONS:
        if isinstance(document.get(key), str):
            _same_origin(shape, key, document[key], actor, "id")
    endpoints = document.get("endpoints")
    if isinstance(endpoints, Mapping) and isinstance(endpoints.get("sharedInbox"), str):
        _same_origin(shape, "endpoints.sharedInbox", endpoints["sharedInbox"], actor, "id")
    _check_keys(shape, document, actor, "publicKey", "owner")
    _check_keys(shape, document, actor, "assertionMethod", "controller")


def _check_keys(
    shape: str, document: Mapping[str, Any], actor: str, key: str, owner_field: str
) -> None:
    listed = isinstance(document.get(key), list)
    for index, entry in enumerate(as2.values(document, key)):
        where = f"{key}[{index}]" if listed else key
        key_id = as2.id_of(entry)
        field = f"{where}.id" if isinstance(entry, Mapping) else where
        if key_id is not None:
            _same_origin(shape, field, key_id, actor, "id")
        if isinstance(entry, Mapping) and entry.get(owner_field) != actor:
            detail = f"must be the actor's id ({actor})"
            raise ValidationError(shape, f"{where}.{owner_field}", "same-actor", detail)


def validate_rules(shape: str, document: Mapping[str, Any]) -> None:
    """Consistency rules of the vocabulary contract: phase order, support limits, tally sums."""
    if shape == "process":
        _check_phases(document)
        _check_support_rules(document)
    elif shape == "tally":
        _check_tally(document)


def _when(where: str, key: str, phase: Mapping[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(phase.get(key)).upper())
    except ValueError:
        detail = "must be a valid RFC 3339 date-time"
        raise ValidationError("process", f"{where}.{key}", "pattern", detail) from None


def _check_phases(document: Mapping[str, Any]) -> None:
    previous_end: datetime | None = None
    for index, phase in enumerate(document.get("phases") or []):
        where = f"phases[{index}]"
        start, end = _when(where, "startTime", phase), _when(where, "endTime", phase)
        if end <= start:
            raise ValidationError("process", f"{where}.endTime", "order", "must be after startTime")
        if previous_end is not None and start < previous_end:
            detail = f"must not be before phases[{index - 1}].endTime (phases are in order)"
            raise ValidationError("process", f"{where}.startTime", "order", detail)
        previous_end = end


def _check_support_rules(document: Mapping[str, Any]) -> None:
    rules = document.get("supportRules") or {}
    limit = rules.get("supportsPerParticipant", 0)
    # 0 supports per participant means "unlimited", so any minimum fits.
    if 0 < limit < rules.get("minimumSupportsPerParticipant", 0):
        field = "supportRules.minimumSupportsPerParticipant"
        detail = f"must not exceed supportsPerParticipant ({limit})"
        raise ValidationError("process", field, "maximum", detail)


def _check_tally(document: Mapping[str, Any]) -> None:
    for index, result in enumerate(document.get("results") or []):
        breakdown = result.get("byTerritory") or []
        counted = sum(t["supports"] for t in breakdown if t["territoryKind"] == "neighbourhood")
        if counted != result["supports"]:
            detail = f"neighbourhood supports must add up to supports ({result['supports']})"
            raise ValidationError(
                "tally", f"results[{index}].byTerritory", "sum", f"{detail}, not {counted}"
            )


# --- picking a shape -------------------------------------------------------------------------


def shape_of(document: Mapping[str, Any]) -> str | None:
    """The shape whose schema a document should meet, from its type(s); None when not ours."""
    if not isinstance(document, Mapping):
        return None
    kinds = set(as2.types(document))
    for name, shape in _OBJECT_TYPES:
        if name in kinds:
            return shape
    if "Note" in kinds:
        # A comment always replies to something; a top-level Note is not part of a debate.
        return "comment" if as2.first_id(document, "inReplyTo") else None
    if kinds & {"Like", "Dislike"}:
        return _vote_shape(document, like="Like" in kinds)
    if "Undo" in kinds:
        return _undo_shape(document)
    if "Update" in kinds:
        return _update_shape(document)
    if "Delete" in kinds:
        return "delete"
    if "Announce" in kinds:
        return "announce"
    return None


def _vote_shape(addressed: Mapping[str, Any], *, like: bool) -> str:
    # A support is a Like addressed only to chosen actors; a public or unaddressed Like or any
    # Dislike is a comment vote (Lemmy and Mastodon send their Likes that way).
    found = as2.addressees(addressed)  # once: is_addressed_publicly would gather them again
    private = bool(found) and not any(as2.is_public(address) for address in found)
    return "support" if like and private else "comment-vote"


def _undo_shape(document: Mapping[str, Any]) -> str | None:
    inner = as2.embedded(document, "object")
    if inner is None:
        # A bare id: the Undo is addressed like the vote it withdraws.
        voted = _vote_shape(document, like=True)
    elif {"Like", "Dislike"} & set(as2.types(inner)):
        voted = _vote_shape(inner, like="Like" in as2.types(inner))
    else:
        return None
    return "undo-support" if voted == "support" else "undo-comment-vote"


def _update_shape(document: Mapping[str, Any]) -> str | None:
    # Only the owning Group's Update of someone else's proposal is an official answer; an
    # author's edit is checked as the proposal itself (validate_inbound).
    inner = as2.embedded(document, "object")
    if inner is None or "Proposal" not in as2.types(inner):
        return None
    actor = as2.first_id(document, "actor")
    return None if actor in as2.ids(inner, "attributedTo") else "official-answer"


def validate_inbound(document: Mapping[str, Any]) -> str | None:
    """Validate whatever arrived (an activity, or a Create/Update of one of our objects).

    Returns the shape that was checked, or None when the document is not one of ours.
    """
    shape = shape_of(document)
    if shape is not None:
        validate(shape, document)
        return shape
    if not as2.has_type(document, "Create", "Update"):
        return None
    inner = as2.embedded(document, "object")
    inner_shape = shape_of(inner) if inner is not None else None
    if inner is None or inner_shape not in _OBJECT_SHAPES:
        return None
    _validate_wrapped(inner_shape, document, inner, inner_shape)
    return inner_shape


def _validate_wrapped(
    shape: str, outer: Mapping[str, Any], inner: Mapping[str, Any], reported_as: str
) -> None:
    # An embedded object without its own @context is read in its container's (JSON-LD 1.1 §4.1).
    framed = inner if "@context" in inner else {"@context": outer.get("@context"), **inner}
    try:
        validate(shape, framed)
    except ValidationError as exc:
        raise ValidationError(reported_as, f"object.{exc.field}", exc.rule, exc.detail) from None
