"""The Deliberation service: the ONE API that pages, C2S, the CLI, handlers and tests call.

Every act checks the rules (a :class:`~federation.instance.rules.RuleViolation` writes nothing),
renders and sanitises content, builds the dataclass, converts it with ``federation.vocab``,
wraps it in its activity with DESIGN.md §6 addressing and hands it to the
:class:`~federation.instance.outbox.Publisher`, which proves, stores and queues it in one
transaction. The parts live in ``processes``, ``proposals``, ``supports``, ``debates``,
``comments``, ``deletions`` and ``inbound``; this module puts them together.

Errors: ``RuleViolation`` (render with ``violation.problem()`` or :func:`problem_of`) for a
rule that refused; :class:`~activitypub.errors.Problem` with ``reason`` ``invalid_input``
(naming the field), ``not_found`` or ``recipient_unreachable`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import aiosqlite

from activitypub.errors import Problem
from federation.config import InstanceConfig
from federation.instance.actors import LocalActors
from federation.instance.acts import _system_clock
from federation.instance.debates import DebateActs
from federation.instance.deletions import DeletionActs
from federation.instance.inbound import InboundActs
from federation.instance.outbox import FederationSource, Publisher, mint_id
from federation.instance.proposals import ProposalActs
from federation.instance.rules import RuleViolation
from federation.store.comments import ThreadEntry

PROBLEM_BASE = "https://w3id.org/barri/problems#"


def problem_of(violation: RuleViolation) -> Problem:
    """A refusal as problem+json: status kept, ``type`` and ``reason`` name the rule."""
    problem = violation.problem()
    problem.type = PROBLEM_BASE + violation.rule
    problem.extensions.setdefault("reason", violation.rule)
    return problem


class Deliberation(InboundActs, ProposalActs, DebateActs, DeletionActs):
    """Processes, proposals, supports, debates and comments of one instance (issue 4)."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        actors: LocalActors,
        config: InstanceConfig,
        publisher: Publisher,
        *,
        federation: FederationSource | None = None,
        clock: Callable[[], datetime] = _system_clock,
    ) -> None:
        super().__init__(db, actors, config, publisher, federation=federation, clock=clock)


__all__ = ["Deliberation", "ThreadEntry", "mint_id", "problem_of"]
