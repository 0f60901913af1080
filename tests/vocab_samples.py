"""Representative domain objects for the vocabulary tests: every optional field set, or none.

Ids follow the vocab-spec origins: instance ``https://gracia.barri.example``, aggregator
``https://city.barri.example``; a second instance ``https://sants.barri.example`` hosts a
resident whose proposal belongs to a Gràcia process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from activitypub.as2 import PUBLIC
from federation.model import (
    Alignment,
    Announcement,
    Comment,
    CommentVote,
    Debate,
    Deletion,
    LangText,
    Location,
    OfficialAnswer,
    Phase,
    Process,
    Proposal,
    ProposalResult,
    ProposalState,
    Support,
    SupportRules,
    Tally,
    Territory,
    TerritoryCount,
    TerritoryKind,
    Tombstone,
    UndoCommentVote,
    UndoSupport,
)
from federation.vocab.announce import announce_from_ap, announce_to_ap
from federation.vocab.answer import official_answer_from_ap, official_answer_to_ap
from federation.vocab.comment import comment_from_ap, comment_to_ap
from federation.vocab.comment_vote import (
    comment_vote_from_ap,
    comment_vote_to_ap,
    undo_comment_vote_from_ap,
    undo_comment_vote_to_ap,
)
from federation.vocab.debate import debate_from_ap, debate_to_ap
from federation.vocab.deletion import (
    deletion_from_ap,
    deletion_to_ap,
    tombstone_from_ap,
    tombstone_to_ap,
)
from federation.vocab.process import process_from_ap, process_to_ap
from federation.vocab.proposal import proposal_from_ap, proposal_to_ap
from federation.vocab.support import (
    support_from_ap,
    support_to_ap,
    undo_support_from_ap,
    undo_support_to_ap,
)
from federation.vocab.tally import inputs_digest, tally_from_ap, tally_to_ap

GRACIA = "https://gracia.barri.example"
SANTS = "https://sants.barri.example"
CITY = "https://city.barri.example"
GROUP = f"{GRACIA}/groups/association"
ANA = f"{GRACIA}/users/ana"
JOAN = f"{SANTS}/users/joan"
AGGREGATOR = f"{CITY}/actor"
PROCESS = f"{GRACIA}/processes/0190d5a0-7c1e-7a4b-9c3e-2f1a6b0c9d01"
PROPOSAL = f"{SANTS}/proposals/0190d5a1-0001-7000-8000-000000000001"
DEBATE = f"{GRACIA}/debates/0190d5a1-0002-7000-8000-000000000002"
COMMENT = f"{GRACIA}/comments/0190d5a1-0003-7000-8000-000000000003"

T = [datetime(2026, month, 1, 10, 0, tzinfo=UTC) for month in range(1, 13)]

GRACIA_NEIGHBOURHOOD = Territory(TerritoryKind.NEIGHBOURHOOD, "31", "la Vila de Gràcia", "06")
GRACIA_DISTRICT = Territory(TerritoryKind.DISTRICT, "06", "Gràcia")
BARCELONA = Territory(TerritoryKind.CITY, "08019", "Barcelona")


def _phase(index: int, **allows: bool) -> Phase:
    names = ["Propostes", "Suports", "Resultats"]
    return Phase(
        name=LangText.of(names[index], {"ca": names[index], "es": names[index] + " (es)"}),
        start=T[index * 2],
        end=T[index * 2 + 1],
        allows_proposals=allows.get("proposals", False),
        allows_supports=allows.get("supports", False),
        allows_comments=allows.get("comments", False),
        allows_debates=allows.get("debates", False),
    )


def process_full() -> Process:
    return Process(
        id=PROCESS,
        owner=GROUP,
        name=LangText.of("Pressupostos participatius 2027", {"es": "Presupuestos 2027"}),
        summary=LangText.of("Decidim el barri", {"ca": "Decidim el barri", "en": "We decide"}),
        phases=(
            _phase(0, proposals=True, comments=True, debates=True),
            _phase(1, supports=True, comments=True),
            _phase(2),
        ),
        rules=SupportRules(10, 500, True, 3),
        eligible=(GRACIA_NEIGHBOURHOOD, GRACIA_DISTRICT),
        published=T[0],
        updated=T[1],
        url=f"{GRACIA}/p/pressupostos-2027",
        to=(PUBLIC,),
        cc=(f"{GROUP}/followers",),
    )


def process_minimal() -> Process:
    return Process(
        id=PROCESS,
        owner=GROUP,
        name=LangText("PP 2027"),
        summary=None,
        phases=(_phase(0, proposals=True),),
        rules=SupportRules(),
        eligible=(BARCELONA,),
        published=T[0],
    )


def proposal_full() -> Proposal:
    return Proposal(
        id=PROPOSAL,
        author=JOAN,
        audience=GROUP,
        process=PROCESS,
        name=LangText.of(
            "Més ombra a la plaça", {"ca": "Més ombra a la plaça", "es": "Más sombra"}
        ),
        content_html="<p>Arbres a la <strong>plaça</strong>.</p>",
        source_markdown="Arbres a la **plaça**.",
        published=T[2],
        updated=T[3],
        url=f"{SANTS}/p/mes-ombra",
        state=ProposalState.ACCEPTED,
        answer=LangText.of("<p>Acceptada.</p>", {"es": "<p>Aceptada.</p>"}),
        answered_at=T[4],
        support_count=12,
        location=Location("Plaça del Sol", 41.4, 2.157),
        replies=f"{PROPOSAL}/replies",
        context=f"{PROPOSAL}/context",
        to=(PUBLIC,),
        cc=(f"{JOAN}/followers", GROUP),
    )


def proposal_minimal() -> Proposal:
    return Proposal(
        id=PROPOSAL,
        author=JOAN,
        audience=GROUP,
        process=PROCESS,
        name=LangText("Més ombra"),
        content_html="<p>Arbres.</p>",
        source_markdown=None,
        published=T[2],
    )


def debate_full() -> Debate:
    return Debate(
        id=DEBATE,
        author=ANA,
        audience=GROUP,
        process=PROCESS,
        name=LangText.of("Superilla?", {"es": "¿Supermanzana?"}),
        content_html="<p>Parlem-ne.</p>",
        source_markdown="Parlem-ne.",
        published=T[2],
        updated=T[3],
        url=f"{GRACIA}/d/superilla",
        closed_at=T[5],
        conclusions=LangText.of("<p>Sí, amb matisos.</p>", {"es": "<p>Sí, con matices.</p>"}),
        start=T[2],
        end=T[4],
        replies=f"{DEBATE}/replies",
        context=f"{DEBATE}/context",
        to=(PUBLIC,),
        cc=(f"{ANA}/followers", GROUP),
    )


def debate_minimal() -> Debate:
    return Debate(
        id=DEBATE,
        author=ANA,
        audience=GROUP,
        process=None,
        name=LangText("Superilla?"),
        content_html="<p>Parlem-ne.</p>",
        source_markdown=None,
        published=T[2],
    )


def comment_full() -> Comment:
    return Comment(
        id=COMMENT,
        author=ANA,
        in_reply_to=PROPOSAL,
        context=f"{PROPOSAL}/context",
        content_html="<p>A favor!</p>",
        source_markdown="A favor!",
        alignment=Alignment.IN_FAVOR,
        depth=1,
        published=T[3],
        updated=T[4],
        audience=GROUP,
        to=(PUBLIC,),
        cc=(f"{ANA}/followers", JOAN),
    )


def comment_minimal() -> Comment:
    return Comment(
        id=COMMENT,
        author=ANA,
        in_reply_to=PROPOSAL,
        context=None,
        content_html="<p>Hm.</p>",
        source_markdown=None,
        published=T[3],
    )


def support_full() -> Support:
    return Support(
        id=f"{GRACIA}/supports/0190d5a1-0004-7000-8000-000000000004",
        actor=ANA,
        proposal=PROPOSAL,
        published=T[3],
        to=(GROUP, AGGREGATOR),
    )


def undo_support_full() -> UndoSupport:
    return UndoSupport(
        id=f"{GRACIA}/undos/0190d5a1-0005-7000-8000-000000000005",
        actor=ANA,
        support=support_full(),
        published=T[4],
        to=(GROUP, AGGREGATOR),
    )


def undo_support_minimal() -> UndoSupport:
    return UndoSupport(
        id=f"{GRACIA}/undos/0190d5a1-0005-7000-8000-000000000005",
        actor=ANA,
        support=support_full().id,
        published=T[4],
        to=(GROUP,),
    )


def comment_vote_full() -> CommentVote:
    return CommentVote(
        id=f"{GRACIA}/votes/0190d5a1-0006-7000-8000-000000000006",
        actor=ANA,
        comment=COMMENT,
        up=False,
        published=T[4],
        audience=GROUP,
        to=(PUBLIC,),
        cc=(GROUP,),
    )


def comment_vote_minimal() -> CommentVote:
    return CommentVote(
        id=f"{GRACIA}/votes/0190d5a1-0006-7000-8000-000000000006",
        actor=ANA,
        comment=COMMENT,
        up=True,
    )


def undo_comment_vote_full() -> UndoCommentVote:
    return UndoCommentVote(
        id=f"{GRACIA}/undos/0190d5a1-0007-7000-8000-000000000007",
        actor=ANA,
        vote=comment_vote_full(),
        published=T[5],
        audience=GROUP,
        to=(PUBLIC,),
        cc=(GROUP,),
    )


def undo_comment_vote_minimal() -> UndoCommentVote:
    return UndoCommentVote(
        id=f"{GRACIA}/undos/0190d5a1-0007-7000-8000-000000000007",
        actor=ANA,
        vote=comment_vote_full().id,
    )


def official_answer_full() -> OfficialAnswer:
    return OfficialAnswer(
        id=f"{GRACIA}/answers/0190d5a1-0008-7000-8000-000000000008",
        group=GROUP,
        proposal=proposal_full(),
        published=T[4],
        to=(PUBLIC,),
        cc=(f"{GROUP}/followers", JOAN),
    )


def official_answer_minimal() -> OfficialAnswer:
    answered = Proposal(
        id=PROPOSAL,
        author=JOAN,
        audience=GROUP,
        process=PROCESS,
        name=LangText("Més ombra"),
        content_html="<p>Arbres.</p>",
        source_markdown=None,
        published=T[2],
        state=ProposalState.EVALUATING,
        answer=LangText("<p>En estudi.</p>"),
        answered_at=T[4],
    )
    return OfficialAnswer(
        id=f"{GRACIA}/answers/0190d5a1-0008-7000-8000-000000000008",
        group=GROUP,
        proposal=answered,
        published=T[4],
    )


def announcement_full() -> Announcement:
    return Announcement(
        id=f"{GRACIA}/announces/0190d5a1-0009-7000-8000-000000000009",
        group=GROUP,
        activity=comment_vote_to_ap(comment_vote_full()),
        published=T[4],
        audience=GROUP,
        to=(PUBLIC,),
        cc=(f"{GROUP}/followers",),
    )


def announcement_minimal() -> Announcement:
    return Announcement(
        id=f"{GRACIA}/announces/0190d5a1-0009-7000-8000-000000000009",
        group=GROUP,
        activity={"id": f"{SANTS}/creates/1", "type": "Create", "actor": JOAN, "object": PROPOSAL},
    )


def deletion_full() -> Deletion:
    return Deletion(
        id=f"{GRACIA}/deletes/0190d5a1-0010-7000-8000-000000000010",
        actor=ANA,
        object_id=COMMENT,
        former_type="Note",
        deleted=T[6],
        published=T[6],
        to=(PUBLIC,),
        cc=(f"{ANA}/followers",),
    )


def deletion_minimal() -> Deletion:
    return Deletion(id=f"{GRACIA}/deletes/1", actor=ANA, object_id=COMMENT)


def tally_full() -> Tally:
    ids = [f"{GRACIA}/supports/{n}" for n in range(42)]
    by_territory = (
        TerritoryCount(TerritoryKind.NEIGHBOURHOOD, "31", 30),
        TerritoryCount(TerritoryKind.NEIGHBOURHOOD, "32", 12),
        TerritoryCount(TerritoryKind.DISTRICT, "06", 42),
    )
    return Tally(
        id=f"{CITY}/tallies/0190d5a1-0011-7000-8000-000000000011",
        aggregator=AGGREGATOR,
        process=PROCESS,
        as_of=T[7],
        final=True,
        inputs_count=42,
        inputs_digest=inputs_digest(ids),
        participants=20,
        results=(
            ProposalResult(PROPOSAL, 42, by_territory),
            ProposalResult(f"{GRACIA}/proposals/0190d5a1-0012-7000-8000-000000000012", 0),
        ),
        totals=(TerritoryCount(TerritoryKind.CITY, "08019", 42), *by_territory),
        published=T[7],
        summary_html="<p>42 suports de 20 participants.</p>",
        to=(PUBLIC,),
    )


def tally_minimal() -> Tally:
    return Tally(
        id=f"{CITY}/tallies/1",
        aggregator=AGGREGATOR,
        process=PROCESS,
        as_of=T[7],
        final=False,
        inputs_count=0,
        inputs_digest=inputs_digest([]),
        participants=0,
        results=(),
        totals=(),
        published=T[7],
        summary_html="<p>Encara cap suport.</p>",
    )


@dataclass(frozen=True)
class Shape:
    """One wire shape: its converters and a full and a minimal sample."""

    name: str
    from_ap: Callable[[Mapping[str, Any]], Any]
    to_ap: Callable[[Any], dict[str, Any]]
    full: Callable[[], Any]
    minimal: Callable[[], Any]


SHAPES = {
    shape.name: shape
    for shape in [
        Shape("process", process_from_ap, process_to_ap, process_full, process_minimal),
        Shape("proposal", proposal_from_ap, proposal_to_ap, proposal_full, proposal_minimal),
        Shape("debate", debate_from_ap, debate_to_ap, debate_full, debate_minimal),
        Shape("comment", comment_from_ap, comment_to_ap, comment_full, comment_minimal),
        Shape("support", support_from_ap, support_to_ap, support_full, support_full),
        Shape(
            "undo-support",
            undo_support_from_ap,
            undo_support_to_ap,
            undo_support_full,
            undo_support_minimal,
        ),
        Shape(
            "comment-vote",
            comment_vote_from_ap,
            comment_vote_to_ap,
            comment_vote_full,
            comment_vote_minimal,
        ),
        Shape(
            "undo-comment-vote",
            undo_comment_vote_from_ap,
            undo_comment_vote_to_ap,
            undo_comment_vote_full,
            undo_comment_vote_minimal,
        ),
        Shape(
            "official-answer",
            official_answer_from_ap,
            official_answer_to_ap,
            official_answer_full,
            official_answer_minimal,
        ),
        Shape(
            "announce", announce_from_ap, announce_to_ap, announcement_full, announcement_minimal
        ),
        Shape("delete", deletion_from_ap, deletion_to_ap, deletion_full, deletion_minimal),
        Shape(
            "tombstone",
            tombstone_from_ap,
            tombstone_to_ap,
            lambda: Tombstone(PROPOSAL, "Proposal", T[6]),
            lambda: Tombstone(COMMENT, "Note", T[7]),
        ),
        Shape("tally", tally_from_ap, tally_to_ap, tally_full, tally_minimal),
    ]
}
