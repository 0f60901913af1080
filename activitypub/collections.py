"""OrderedCollection and OrderedCollectionPage with cursor paging (ActivityPub §5, AS2 Core §2.3).

How paging works, so that stores can mirror it in SQL:

* Every item has a **sort key** the store assigns once and never reuses or changes: a tuple such
  as ``(sequence,)`` or ``(published, id)``, unique per item. Keys only grow as items arrive.
* The collection is shown in **display order**: newest first (descending keys) for outboxes and
  inboxes (ActivityPub §5.1 says OrderedCollections are reverse chronological), or oldest first
  (ascending keys) for conversation ``context``/history collections (FEP-7888, FEP-f228).
  ``page_sequence(..., newest_first=...)`` handles both.
* A cursor is an opaque token for one sort key. ``after=X`` (``next``) gives the ``limit`` items
  strictly after X in display order; ``before=X`` (``prev``) gives the ``limit`` items strictly
  before X that are *closest* to X, still in display order. No parameter gives the first page.
* Because a cursor names a key and not an offset, items inserted at the head while a reader pages
  never shift, repeat or hide what comes after its cursor. A reader that keeps the key of the
  newest item it saw catches up later with ``before=`` (newest first) or ``after=``
  (oldest first).
* ``next`` is present when items exist after the page's last item, ``prev`` when items exist
  before its first item. An empty page carries neither.

The SQL a store mirrors, for newest first with an integer ``seq``::

    first page:  WHERE TRUE     ORDER BY seq DESC LIMIT :n
    after=X:     WHERE seq < :x ORDER BY seq DESC LIMIT :n
    before=X:    WHERE seq > :x ORDER BY seq ASC  LIMIT :n   -- then reverse the rows
    (fetch :n + 1 rows to learn whether more exist on that side)
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"

SortKey = tuple[str | int, ...]
Direction = Literal["before", "after"]
T = TypeVar("T")

_MAX_TOKEN = 512  # bytes of token; bounds the work a hostile query can cause
_PAGE_PARAMS = ("page", "before", "after", "limit")


@dataclass(frozen=True)
class Cursor:
    """An opaque, URL-safe position in a collection: one encoded sort key."""

    position: str

    @classmethod
    def of(cls, key: SortKey) -> Cursor:
        """The cursor for ``key``."""
        return cls(encode_cursor(key))

    def key(self) -> SortKey:
        """The sort key this cursor names; ValueError if the token is not one of ours."""
        return decode_cursor(self.position)


#: The most items a page holds unless its server allows more (and the most a reader asks).
MAX_LIMIT = 100


def encode_cursor(key: SortKey) -> str:
    """Encode a sort key (strings and integers) as a URL-safe token without padding."""
    _check_key(key)
    # json, not orjson: tokens already handed out must keep their one canonical spelling
    # (ensure_ascii), which decode_cursor compares.
    raw = json.dumps(list(key), separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(token: str, *, shape: Sequence[type] | None = None) -> SortKey:
    """Decode a token made by :func:`encode_cursor`; ValueError on anything else.

    ``shape`` (e.g. ``(int,)`` or ``(str, str)``) also requires that arity and those part types,
    so a well-formed token from another collection cannot reach a store's query.
    """
    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN:
        raise ValueError("cursor must be a non-empty token of at most 512 characters")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw.decode("ascii"))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("cursor is not a token this server issued") from exc
    if not isinstance(value, list):
        raise ValueError("cursor is not a token this server issued")
    key = tuple(value)
    _check_key(key)
    # Only the canonical spelling is accepted, so each position has exactly one token.
    if encode_cursor(key) != token:
        raise ValueError("cursor is not in canonical form")
    if shape is not None and not _fits(key, shape):
        raise ValueError("cursor does not belong to this collection")
    return key


def _fits(key: SortKey, shape: Sequence[type]) -> bool:
    return len(key) == len(shape) and all(type(p) is t for p, t in zip(key, shape, strict=True))


def _check_key(key: Sequence[Any]) -> None:
    if not key:
        raise ValueError("a sort key needs at least one part")
    for part in key:
        # bool is an int subclass, and floats do not round-trip exactly: refuse both.
        if isinstance(part, bool) or not isinstance(part, str | int):
            raise ValueError("sort key parts must be strings or integers")


@dataclass(frozen=True)
class PageRequest:
    """One page of a collection: at most one of ``before``/``after`` (tokens) and a limit."""

    before: str | None
    after: str | None
    limit: int

    def before_key(self) -> SortKey | None:
        """The decoded ``before`` cursor, if any."""
        return None if self.before is None else decode_cursor(self.before)

    def after_key(self) -> SortKey | None:
        """The decoded ``after`` cursor, if any."""
        return None if self.after is None else decode_cursor(self.after)


def parse_page_request(
    query: Mapping[str, str],
    *,
    default_limit: int = 20,
    max_limit: int = MAX_LIMIT,
    key_shape: Sequence[type] | None = None,
) -> PageRequest | None:
    """Read ``page``/``before``/``after``/``limit`` from a query; None asks for the collection.

    A bad cursor (or one not of ``key_shape``), both cursors at once or a non-positive limit
    raise ValueError (answer 400); a limit above ``max_limit`` is lowered to it.
    """
    if not 1 <= default_limit <= max_limit:
        raise ValueError("need 1 <= default_limit <= max_limit")
    if not any(name in query for name in _PAGE_PARAMS):
        return None
    before, after = query.get("before"), query.get("after")
    if before is not None and after is not None:
        raise ValueError("use either 'before' or 'after', not both")
    for token in (before, after):
        if token is not None:
            decode_cursor(token, shape=key_shape)
    limit = _parse_limit(query.get("limit"), default_limit)
    return PageRequest(before=before, after=after, limit=min(limit, max_limit))


def _parse_limit(text: str | None, default: int) -> int:
    if text is None:
        return default
    if not text.isascii() or not text.isdigit():
        raise ValueError("limit must be a positive integer")
    limit = int(text)
    if limit < 1:
        raise ValueError("limit must be a positive integer")
    return limit


@dataclass(frozen=True)
class PageResult:
    """The items of one page, in display order, and the cursors for its neighbours."""

    items: list[Any]
    next_cursor: str | None
    prev_cursor: str | None


def page_sequence(
    items: Sequence[tuple[SortKey, T]], req: PageRequest, *, newest_first: bool = True
) -> PageResult:
    """Cut one page out of ``(sort key, item)`` pairs, as the module docstring describes."""
    ordered = sorted(items, key=lambda pair: pair[0])
    keys = [key for key, _ in ordered]
    n = len(ordered)
    try:
        lo, hi = _window(keys, req, newest_first)
    except TypeError as exc:
        # A well-formed cursor whose parts do not compare with this collection's keys.
        raise ValueError("cursor does not belong to this collection") from exc

    def asc_index(position: int) -> int:
        return n - 1 - position if newest_first else position

    page = [ordered[asc_index(p)] for p in range(lo, hi)]
    if not page:
        return PageResult(items=[], next_cursor=None, prev_cursor=None)
    return PageResult(
        items=[item for _, item in page],
        next_cursor=encode_cursor(page[-1][0]) if hi < n else None,
        prev_cursor=encode_cursor(page[0][0]) if lo > 0 else None,
    )


def _window(keys: list[SortKey], req: PageRequest, newest_first: bool) -> tuple[int, int]:
    """The page as ``[lo, hi)`` positions in display order, given keys sorted ascending."""
    n = len(keys)
    after, before = req.after_key(), req.before_key()
    if after is not None:
        # Display positions up to and including ``after`` are the ones a reader has seen.
        if newest_first:
            lo = n - bisect.bisect_left(keys, after)
        else:
            lo = bisect.bisect_right(keys, after)
        return lo, min(lo + req.limit, n)
    if before is not None:
        if newest_first:
            hi = n - bisect.bisect_right(keys, before)
        else:
            hi = bisect.bisect_left(keys, before)
        return max(hi - req.limit, 0), hi
    return 0, min(req.limit, n)


def ordered_collection(
    collection_id: str,
    total_items: int | None,
    *,
    first: str,
    last: str | None = None,
    context: Any = AS_CONTEXT,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The collection itself: id, totalItems when known, and links to its pages (AS2 §5.3)."""
    doc: dict[str, Any] = {} if context is None else {"@context": context}
    doc.update(id=collection_id, type="OrderedCollection")
    if total_items is not None:
        doc["totalItems"] = total_items
    doc["first"] = first
    if last is not None:
        doc["last"] = last
    if extra:
        clash = set(doc).intersection(extra)
        if clash:
            raise ValueError(f"extra may not replace {sorted(clash)}")
        doc.update(extra)
    return doc


def ordered_collection_page(
    collection_id: str,
    page_id: str,
    result: PageResult,
    *,
    page_url: Callable[[str, str], str],
    total_items: int | None = None,
    context: Any = AS_CONTEXT,
) -> dict[str, Any]:
    """One OrderedCollectionPage with ``partOf``, ``orderedItems``, ``next``/``prev`` (AS2 §5.4)."""
    doc: dict[str, Any] = {} if context is None else {"@context": context}
    doc.update(id=page_id, type="OrderedCollectionPage", partOf=collection_id)
    if total_items is not None:
        doc["totalItems"] = total_items
    if result.next_cursor is not None:
        doc["next"] = page_url("after", result.next_cursor)
    if result.prev_cursor is not None:
        doc["prev"] = page_url("before", result.prev_cursor)
    doc["orderedItems"] = list(result.items)
    return doc


def first_page_url(collection_id: str) -> str:
    """The ``first`` link of a collection served with this module: ``?page=true``."""
    return _with_query(collection_id, {"page": "true"})


def page_url_for(collection_id: str, *, limit: int | None = None) -> Callable[[str, str], str]:
    """A ``page_url`` for :func:`ordered_collection_page` that adds ``before=``/``after=``."""

    def page_url(direction: str, cursor: str) -> str:
        if direction not in ("before", "after"):
            raise ValueError(f"direction must be 'before' or 'after', not {direction!r}")
        params = {direction: cursor}
        if limit is not None:
            params["limit"] = str(limit)
        return _with_query(collection_id, params)

    return page_url


def _with_query(url: str, params: Mapping[str, str]) -> str:
    # Keep any query the collection id already has, replacing only the paging parameters.
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k not in _PAGE_PARAMS]
    query = urlencode([*kept, *params.items()])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
