"""OrderedCollection cursor paging (ActivityPub §5, AS2 Core §2.3) and its stability."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from activitypub.collections import (
    Cursor,
    PageRequest,
    PageResult,
    SortKey,
    decode_cursor,
    encode_cursor,
    first_page_url,
    ordered_collection,
    ordered_collection_page,
    page_sequence,
    page_url_for,
    parse_page_request,
)

OUTBOX = "https://barri.example/actors/alice/outbox"


def _items(first: int, last: int) -> list[tuple[SortKey, str]]:
    """Items with sequence numbers ``first..last``; the item names its own number."""
    return [((seq,), f"item-{seq}") for seq in range(first, last + 1)]


def _read_all(
    store: list[tuple[SortKey, str]],
    *,
    newest_first: bool,
    limit: int = 20,
    between_pages: Any = None,
) -> list[list[str]]:
    """Follow ``next`` from the first page to the end, as a remote reader does."""
    pages: list[list[str]] = []
    req = PageRequest(before=None, after=None, limit=limit)
    while True:
        result = page_sequence(store, req, newest_first=newest_first)
        pages.append(result.items)
        if result.next_cursor is None:
            return pages
        if between_pages is not None:
            between_pages(store)
        req = PageRequest(before=None, after=result.next_cursor, limit=limit)


# --- cursors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [(1,), (0,), (2**62,), (-5,), ("2026-01-05T10:00:00Z", "01JGZ5"), ("", 3), ("àç€ \u2603",)],
)
def test_cursor_round_trip(key: SortKey) -> None:
    token = encode_cursor(key)
    assert decode_cursor(token) == key
    assert Cursor.of(key) == Cursor(token)
    assert Cursor(token).key() == key
    # URL-safe: nothing a query string would need to escape.
    assert token.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        "not base64 at all?",
        encode_cursor((1,)) + "=",  # padding: a second spelling of the same key
        encode_cursor((1,))[:-1] + "e",  # last character flipped
        "e30",  # base64 of "{}": JSON, but not a key
        "W10",  # base64 of "[]": an empty key
        "W3RydWVd",  # [true]
        "WzEuNV0",  # [1.5]
        "W1sxXV0",  # [[1]]
        "x" * 600,
    ],
)
def test_garbage_cursors_raise_value_error(token: str) -> None:
    with pytest.raises(ValueError):
        decode_cursor(token)


def test_every_single_character_flip_of_a_token_is_refused_or_names_another_key() -> None:
    key: SortKey = ("2026-01-05T10:00:00Z", 41)
    token = encode_cursor(key)
    for i, char in enumerate(token):
        flipped = token[:i] + ("A" if char != "A" else "B") + token[i + 1 :]
        try:
            assert decode_cursor(flipped) != key
        except ValueError:
            pass


def test_cursor_shape_check_refuses_a_token_from_another_collection() -> None:
    token = encode_cursor(("2026-01-05", "abc"))
    with pytest.raises(ValueError, match="collection"):
        decode_cursor(token, shape=(int,))
    assert decode_cursor(token, shape=(str, str)) == ("2026-01-05", "abc")


def test_encode_refuses_keys_that_would_not_round_trip() -> None:
    for bad in [(), (True,), (1.5,), (None,)]:
        with pytest.raises(ValueError):
            encode_cursor(bad)  # type: ignore[arg-type]


# --- page requests ----------------------------------------------------------------------


def test_no_paging_parameter_asks_for_the_collection_itself() -> None:
    assert parse_page_request({}) is None
    assert parse_page_request({"other": "x"}) is None


def test_page_requests_parse() -> None:
    token = encode_cursor((7,))
    assert parse_page_request({"page": "true"}) == PageRequest(None, None, 20)
    assert parse_page_request({"after": token}) == PageRequest(None, token, 20)
    assert parse_page_request({"before": token, "limit": "5"}) == PageRequest(token, None, 5)
    assert parse_page_request({"page": "1", "limit": "1000"}) == PageRequest(None, None, 100)
    assert parse_page_request({"page": "1", "limit": "1000"}, max_limit=500).limit == 500
    assert parse_page_request({"page": "true"}, default_limit=30, max_limit=40) == PageRequest(
        None, None, 30
    )


@pytest.mark.parametrize(
    "query",
    [
        {"after": "garbage!"},
        {"before": ""},
        {"after": encode_cursor((1,)), "before": encode_cursor((2,))},
        {"page": "true", "limit": "0"},
        {"page": "true", "limit": "-3"},
        {"page": "true", "limit": "ten"},
        {"page": "true", "limit": "٣"},  # a digit, but not an ASCII one
    ],
)
def test_bad_page_requests_raise_value_error(query: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        parse_page_request(query)


def test_key_shape_is_checked_when_parsing() -> None:
    with pytest.raises(ValueError):
        parse_page_request({"after": encode_cursor(("x",))}, key_shape=(int,))
    assert parse_page_request({"after": encode_cursor((3,))}, key_shape=(int,)) is not None


def test_a_cursor_that_does_not_compare_with_the_keys_is_a_value_error() -> None:
    req = PageRequest(before=None, after=encode_cursor(("x",)), limit=5)
    with pytest.raises(ValueError, match="collection"):
        page_sequence(_items(1, 10), req)


# --- paging -------------------------------------------------------------------------------


def test_45_items_newest_first_in_pages_of_20() -> None:
    store = _items(1, 45)
    first = page_sequence(store, PageRequest(None, None, 20))
    assert first.items == [f"item-{s}" for s in range(45, 25, -1)]
    assert first.prev_cursor is None
    assert first.next_cursor == encode_cursor((26,))

    second = page_sequence(store, PageRequest(None, first.next_cursor, 20))
    assert second.items == [f"item-{s}" for s in range(25, 5, -1)]
    assert second.prev_cursor == encode_cursor((25,))
    assert second.next_cursor == encode_cursor((6,))

    third = page_sequence(store, PageRequest(None, second.next_cursor, 20))
    assert third.items == [f"item-{s}" for s in range(5, 0, -1)]
    assert third.prev_cursor == encode_cursor((5,))
    assert third.next_cursor is None

    # prev from the third page is exactly the second page, and from the second the first.
    assert page_sequence(store, PageRequest(third.prev_cursor, None, 20)) == second
    assert page_sequence(store, PageRequest(second.prev_cursor, None, 20)) == first


def test_45_items_oldest_first_in_pages_of_20() -> None:
    store = _items(1, 45)
    pages = _read_all(store, newest_first=False)
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [item for page in pages for item in page] == [f"item-{s}" for s in range(1, 46)]
    second = page_sequence(store, PageRequest(None, encode_cursor((20,)), 20), newest_first=False)
    assert second.prev_cursor == encode_cursor((21,))
    assert second.next_cursor == encode_cursor((40,))
    back = page_sequence(store, PageRequest(second.prev_cursor, None, 20), newest_first=False)
    assert back.items == [f"item-{s}" for s in range(1, 21)]
    assert back.prev_cursor is None


def test_input_order_does_not_matter() -> None:
    store = _items(1, 45)
    shuffled = store[7:] + store[:7]
    shuffled.reverse()
    req = PageRequest(None, encode_cursor((26,)), 20)
    assert page_sequence(shuffled, req) == page_sequence(store, req)


@pytest.mark.parametrize("limit", [1, 3, 20, 44, 45, 46, 100])
def test_reading_newest_first_sees_every_item_exactly_once(limit: int) -> None:
    pages = _read_all(_items(1, 45), newest_first=True, limit=limit)
    seen = [item for page in pages for item in page]
    assert seen == [f"item-{s}" for s in range(45, 0, -1)]
    assert all(len(page) == limit for page in pages[:-1])


def test_inserts_at_the_head_while_reading_newest_first_neither_repeat_nor_skip() -> None:
    counter = [45]

    def three_more(store: list[tuple[SortKey, str]]) -> None:
        for _ in range(3):
            counter[0] += 1
            store.append(((counter[0],), f"item-{counter[0]}"))

    store = _items(1, 45)
    pages = _read_all(store, newest_first=True, between_pages=three_more)
    seen = [item for page in pages for item in page]
    # The reader saw the 45 items that existed when it started, each once, in order.
    assert seen == [f"item-{s}" for s in range(45, 0, -1)]
    assert [len(p) for p in pages] == [20, 20, 5]
    assert len(store) == 51  # the inserts did happen

    # It catches up on what arrived, from the newest key it saw, walking toward the head.
    req = PageRequest(before=encode_cursor((45,)), after=None, limit=4)
    caught: list[str] = []
    while True:
        result = page_sequence(store, req)
        caught = result.items + caught
        if result.prev_cursor is None:
            break
        req = PageRequest(before=result.prev_cursor, after=None, limit=4)
    assert caught == [f"item-{s}" for s in range(51, 45, -1)]


def test_inserts_at_the_tail_while_reading_oldest_first_are_reached() -> None:
    counter = [45]

    def two_more(store: list[tuple[SortKey, str]]) -> None:
        if counter[0] < 49:
            for _ in range(2):
                counter[0] += 1
                store.append(((counter[0],), f"item-{counter[0]}"))

    pages = _read_all(_items(1, 45), newest_first=False, between_pages=two_more)
    seen = [item for page in pages for item in page]
    # A chronological reader gets old and new items alike, each exactly once.
    assert seen == [f"item-{s}" for s in range(1, 50)]


def test_deleting_the_cursor_item_does_not_break_paging() -> None:
    store = _items(1, 45)
    first = page_sequence(store, PageRequest(None, None, 20))
    store = [pair for pair in store if pair[0] != (26,)]  # the item the cursor names
    second = page_sequence(store, PageRequest(None, first.next_cursor, 20))
    assert second.items == [f"item-{s}" for s in range(25, 5, -1)]


def test_empty_collection_and_empty_pages_carry_no_links() -> None:
    assert page_sequence([], PageRequest(None, None, 20)) == PageResult([], None, None)
    beyond = page_sequence(_items(1, 5), PageRequest(None, encode_cursor((1,)), 20))
    assert beyond == PageResult([], None, None)
    newer = page_sequence(_items(1, 5), PageRequest(encode_cursor((5,)), None, 20))
    assert newer == PageResult([], None, None)


def test_composite_keys_order_by_time_then_id() -> None:
    store: list[tuple[SortKey, str]] = [
        (("2026-01-05T10:00:00Z", "b"), "b"),
        (("2026-01-05T10:00:00Z", "a"), "a"),
        (("2026-01-04T09:00:00Z", "z"), "z"),
    ]
    first = page_sequence(store, PageRequest(None, None, 2))
    assert first.items == ["b", "a"]
    rest = page_sequence(store, PageRequest(None, first.next_cursor, 2))
    assert rest.items == ["z"]


# --- documents ------------------------------------------------------------------------------


def test_ordered_collection_document() -> None:
    doc = ordered_collection(OUTBOX, 45, first=first_page_url(OUTBOX))
    assert doc == {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": OUTBOX,
        "type": "OrderedCollection",
        "totalItems": 45,
        "first": OUTBOX + "?page=true",
    }
    unknown = ordered_collection(
        OUTBOX, None, first=OUTBOX + "?page=true", last="L", context=None, extra={"x": 1}
    )
    assert "totalItems" not in unknown and "@context" not in unknown
    assert unknown["last"] == "L" and unknown["x"] == 1
    with pytest.raises(ValueError):
        ordered_collection(OUTBOX, 1, first="F", extra={"type": "Collection"})


def test_ordered_collection_page_document_links_with_cursors() -> None:
    store = _items(1, 45)
    result = page_sequence(store, PageRequest(None, encode_cursor((26,)), 20))
    page_url = page_url_for(OUTBOX)
    doc = ordered_collection_page(
        OUTBOX, OUTBOX + "?after=x", result, page_url=page_url, total_items=45
    )
    assert doc["type"] == "OrderedCollectionPage"
    assert doc["partOf"] == OUTBOX
    assert doc["totalItems"] == 45
    assert doc["orderedItems"] == [f"item-{s}" for s in range(25, 5, -1)]
    assert doc["next"] == f"{OUTBOX}?after={encode_cursor((6,))}"
    assert doc["prev"] == f"{OUTBOX}?before={encode_cursor((25,))}"

    # The links parse back to the neighbouring pages.
    next_req = parse_page_request(dict(parse_qsl(urlsplit(doc["next"]).query)))
    assert next_req is not None
    assert page_sequence(store, next_req).items == [f"item-{s}" for s in range(5, 0, -1)]

    last = ordered_collection_page(
        OUTBOX, "p", page_sequence(store, next_req), page_url=page_url, context=None
    )
    assert "next" not in last and "totalItems" not in last and "@context" not in last


def test_page_url_for_keeps_other_query_parameters_and_limit() -> None:
    url = page_url_for("https://barri.example/c?process=9&after=old", limit=5)("before", "Wzld")
    assert url == "https://barri.example/c?process=9&before=Wzld&limit=5"
    with pytest.raises(ValueError):
        page_url_for(OUTBOX)("sideways", "Wzld")
