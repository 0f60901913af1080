"""Other servers' documents go through the same converters: a Mastodon reply Note is a comment
(neutral, no depth), Lemmy votes are comment votes, a Lemmy community's Announce is an
announcement. Fixtures are URL-keyed under tests/fixtures/<host>/<path>.json."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from activitypub.as2 import PUBLIC
from activitypub.jsonld import check_document
from federation.model import Alignment, CommentVote
from federation.vocab import VocabError
from federation.vocab.announce import announce_from_ap, announce_to_ap
from federation.vocab.comment import comment_from_ap, comment_to_ap
from federation.vocab.comment_vote import comment_vote_from_ap, undo_comment_vote_from_ap
from federation.vocab.deletion import deletion_from_ap
from federation.vocab.support import support_from_ap
from tests.vocab_samples import COMMENT, GROUP

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MASTODON_REPLY = "https://mastodon.example/users/ana/statuses/113987654321098765"
LEMMY_LIKE = "https://lemmy.example/activities/like/5b1d0f3e-8a0c-4f4e-9d62-2c7f1e0b9a11"
LEMMY_DISLIKE = "https://lemmy.example/activities/dislike/9e8f7a6b-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
LEMMY_UNDO = "https://lemmy.example/activities/undo/3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d"
LEMMY_ANNOUNCE = (
    "https://lemmy.example/activities/announce/like/0f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"
)
ALL = [MASTODON_REPLY, LEMMY_LIKE, LEMMY_DISLIKE, LEMMY_UNDO, LEMMY_ANNOUNCE]


def fixture(url: str) -> dict[str, Any]:
    """The document served at ``url``, from tests/fixtures/<host>/<path>.json."""
    parts = urlsplit(url)
    path = FIXTURES / parts.netloc / (parts.path.lstrip("/") + ".json")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("url", ALL)
def test_fixtures_are_keyed_by_their_id_and_pass_the_json_ld_rules(url: str) -> None:
    doc = fixture(url)
    assert doc["id"] == url
    check_document(doc)


def test_every_fixture_file_is_served_at_its_own_id() -> None:
    files = sorted(FIXTURES.rglob("*.json"))
    assert len(files) >= len(ALL)
    for path in files:
        url = "https://" + path.relative_to(FIXTURES).as_posix().removesuffix(".json")
        assert fixture(url)["id"] == url, path


# --- Mastodon -----------------------------------------------------------------------------------


def test_mastodon_reply_is_a_neutral_comment_without_depth() -> None:
    doc = fixture(MASTODON_REPLY)
    before = copy.deepcopy(doc)
    comment = comment_from_ap(doc)
    assert doc == before
    assert comment.id == MASTODON_REPLY
    assert comment.author == "https://mastodon.example/users/ana"
    assert comment.in_reply_to == doc["inReplyTo"]
    assert comment.alignment is Alignment.NEUTRAL
    assert comment.depth is None
    assert comment.context is None  # an ostatus "conversation" is not a FEP-7888 context
    assert comment.source_markdown is None
    assert comment.content_html == doc["content"]
    assert comment.published == datetime(2026, 3, 2, 9, 15, 22, tzinfo=UTC)
    assert comment.to == (PUBLIC,)
    assert comment.cc == tuple(doc["cc"])
    assert comment.audience is None


def test_a_parsed_mastodon_reply_republishes_in_our_shape() -> None:
    comment = comment_from_ap(fixture(MASTODON_REPLY))
    ours = comment_to_ap(comment)
    check_document(ours)
    assert ours["alignment"] == "neutral"
    assert "depth" not in ours and "context" not in ours and "source" not in ours
    assert comment_from_ap(ours) == comment


def test_mastodon_reply_with_only_a_content_map_still_has_content() -> None:
    doc = fixture(MASTODON_REPLY)
    del doc["content"]
    doc["type"] = ["Note"]
    assert comment_from_ap(doc).content_html == doc["contentMap"]["ca"]


def test_mastodon_top_level_post_is_not_a_comment() -> None:
    doc = fixture(MASTODON_REPLY)
    doc["inReplyTo"] = None
    with pytest.raises(VocabError, match=r"^inReplyTo: is required"):
        comment_from_ap(doc)


def test_mastodon_reply_from_a_spoofed_origin_is_refused() -> None:
    doc = fixture(MASTODON_REPLY)
    doc["attributedTo"] = "https://evil.example/users/ana"
    with pytest.raises(VocabError, match=r"^id: must be on the same origin as attributedTo"):
        comment_from_ap(doc)


def test_mastodon_delete_with_a_bare_tombstone() -> None:
    # What Mastodon's DeleteSerializer sends: a Tombstone with only id, type and atomUri.
    doc = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": MASTODON_REPLY + "#delete",
        "type": "Delete",
        "actor": "https://mastodon.example/users/ana",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {"id": MASTODON_REPLY, "type": "Tombstone", "atomUri": MASTODON_REPLY},
    }
    check_document(doc)
    deletion = deletion_from_ap(doc)
    assert (deletion.object_id, deletion.former_type, deletion.deleted) == (
        MASTODON_REPLY,
        None,
        None,
    )
    assert deletion.published is None


def test_mastodon_favourite_is_not_a_support() -> None:
    # A Mastodon favourite of a proposal: no published, no addressing. Not a valid support.
    doc = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "https://mastodon.example/users/ana#likes/4711",
        "type": "Like",
        "actor": "https://mastodon.example/users/ana",
        "object": "https://gracia.barri.example/proposals/0190d5a1-0001-7000-8000-000000000001",
    }
    with pytest.raises(VocabError, match=r"^published: is required"):
        support_from_ap(doc)


# --- Lemmy --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "up"), [(LEMMY_LIKE, True), (LEMMY_DISLIKE, False)])
def test_lemmy_votes_are_comment_votes(url: str, up: bool) -> None:
    doc = fixture(url)
    before = copy.deepcopy(doc)
    vote = comment_vote_from_ap(doc)
    assert doc == before
    assert vote == CommentVote(
        id=url,
        actor="https://lemmy.example/u/pere",
        comment=COMMENT,
        up=up,
        published=None,
        audience=GROUP,
        to=(PUBLIC,),
        cc=(GROUP,),
    )


def test_lemmy_undo_embeds_the_same_vote() -> None:
    undo = undo_comment_vote_from_ap(fixture(LEMMY_UNDO))
    assert undo.actor == "https://lemmy.example/u/pere"
    assert undo.vote == comment_vote_from_ap(fixture(LEMMY_LIKE))
    assert undo.audience == GROUP


def test_lemmy_undo_of_someone_elses_vote_is_refused() -> None:
    doc = fixture(LEMMY_UNDO)
    doc["object"]["actor"] = "https://lemmy.example/u/other"
    with pytest.raises(VocabError, match=r"^object\.actor: must be the Undo's actor"):
        undo_comment_vote_from_ap(doc)


def test_lemmy_community_announce_keeps_the_vote_verbatim() -> None:
    doc = fixture(LEMMY_ANNOUNCE)
    announcement = announce_from_ap(doc)
    assert announcement.group == "https://lemmy.example/c/gracia"
    assert announcement.activity == doc["object"]
    # Lemmy's microsecond "+00:00" timestamp, at the vocabulary's seconds precision.
    assert announcement.published == datetime(2026, 3, 2, 9, 20, 5, tzinfo=UTC)
    inner = comment_vote_from_ap(announcement.activity)
    assert (inner.up, inner.comment) == (True, "https://lemmy.example/comment/1234")
    assert announce_to_ap(announcement)["object"] == doc["object"]
