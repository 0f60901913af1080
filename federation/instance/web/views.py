"""Pure helpers that turn domain objects into what templates show: rules in words, threads.

Nothing here does I/O; everything a sentence needs comes through the page's translator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from federation.instance.rules import MAX_DEPTH
from federation.instance.web.i18n import Translator
from federation.model import Comment, Phase, Process, Territory
from federation.store.comments import ThreadEntry

#: ``?done=`` values that show a confirmation after a redirect (Post/Redirect/Get).
DONE = frozenset(
    {"proposal_created", "supported", "unsupported", "commented", "withdrawn", "closed",
     "answered", "debate_created", "voted", "unvoted", "deleted"}
)  # fmt: skip


def words_list(t: Translator, items: Sequence[str]) -> str:
    """``a, b and c`` in the page language."""
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return t("list.and", first=", ".join(items[:-1]), last=items[-1])


def allows_in_words(t: Translator, phase: Phase) -> str:
    """What a phase takes, as one sentence."""
    flags = (
        ("proposals", phase.allows_proposals),
        ("supports", phase.allows_supports),
        ("comments", phase.allows_comments),
        ("debates", phase.allows_debates),
    )
    what = [t(f"allows.{name}") for name, allowed in flags if allowed]
    return t("process.allows", what=words_list(t, what)) if what else t("process.allows_nothing")


def territory_in_words(t: Translator, territory: Territory) -> str:
    """``neighbourhood 08019-01`` (its name when the process gives one)."""
    return t(f"territory.{territory.kind.value}", code=territory.name or territory.code)


def rules_in_words(t: Translator, process: Process) -> list[str]:
    """Decidim's support settings of a process as sentences a resident can read."""
    rules = process.rules
    sentences = [
        t.plural("rules.per_participant", rules.supports_per_participant)
        if rules.supports_per_participant > 0
        else t("rules.unlimited")
    ]
    if rules.threshold_per_proposal > 0:
        key = "rules.threshold_goal" if rules.accumulate_beyond_threshold else "rules.threshold_cap"
        sentences.append(t(key, n=rules.threshold_per_proposal))
    if rules.minimum_supports_per_participant > 0:
        sentences.append(t.plural("rules.minimum", rules.minimum_supports_per_participant))
    if process.eligible:
        places = [territory_in_words(t, territory) for territory in process.eligible]
        sentences.append(t("rules.eligible", places=words_list(t, places)))
    else:
        sentences.append(t("rules.no_territories"))
    return sentences


def anchor_of(object_id: str) -> str:
    """A fragment id for an object on a page: the last segment of its id."""
    return object_id.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Node:
    """One comment in the rendered thread, with its replies."""

    comment: Comment
    external: bool
    up: int
    down: int
    depth: int
    anchor: str
    children: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class Thread:
    """A thread as nested nodes, with every node by comment id (to find a reply target)."""

    roots: list[Node]
    by_id: dict[str, Node]

    @property
    def count(self) -> int:
        """How many comments the thread shows."""
        return len(self.by_id)


def build_thread(entries: Sequence[ThreadEntry]) -> Thread:
    """Nest the service's thread (depth-first order: parents come before their replies)."""
    by_id: dict[str, Node] = {}
    roots: list[Node] = []
    for entry in entries:
        comment = entry.comment
        parent = by_id.get(comment.in_reply_to)
        # Remote replies carry no depth: count it from where they hang.
        depth = comment.depth or (parent.depth + 1 if parent else 1)
        node = Node(comment, entry.external, entry.up, entry.down, depth, anchor_of(comment.id))
        by_id[comment.id] = node
        (parent.children if parent else roots).append(node)
    return Thread(roots, by_id)


def can_reply(node: Node) -> bool:
    """Replies nest to depth 3 (Decidim ``MAX_DEPTH``)."""
    return node.depth < MAX_DEPTH
