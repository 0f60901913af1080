"""How an activity reached the aggregator, and what ingest did with it (DESIGN.md §5, §7).

The route decides what else authenticates an activity besides its own proof: the inbox
pipeline authenticated the sender (by an HTTP signature, or by the activity's own proof),
a backfilled collection speaks for its owner's origin, an announcing Group for nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from activitypub import as2
from federation.tally.records import normal_origin

#: The activity types the ingest metrics name; any other is counted as "other".
COUNTED_TYPES = frozenset("Like Undo Announce Create Update Delete Accept Reject Follow".split())


class Route(StrEnum):
    """How an activity reached the aggregator."""

    INBOX = "inbox"
    ANNOUNCE = "announce"
    BACKFILL = "backfill"
    FETCH = "fetch"


class Outcome(StrEnum):
    """What :meth:`Ingest.accept` did with an activity."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    INVALID = "invalid"


@dataclass(frozen=True)
class Provenance:
    """Who handed an activity over, and which origin the route itself authenticated.

    ``via``: the inbox sender (authenticated by the pipeline), the announcing Group, or the
    owner of the backfilled collection. ``trusted_origin``: activities of actors on this origin
    are authentic by route (None: only their own proof will do).
    """

    route: Route
    via: str | None
    trusted_origin: str | None
    #: The inbox pipeline verified this very document's own FEP-8b32 proof by its actor
    #: (``via``); checking it again would find the same.
    proved: bool = False

    @classmethod
    def inbox(cls, sender: str, *, proved: bool = False) -> Provenance:
        """Delivered to our inbox and authenticated as ``sender`` by the protocol pipeline
        (``proved``: by the activity's own proof, rather than an HTTP signature)."""
        return cls(Route.INBOX, sender, normal_origin(sender), proved)


def metric_label(activity: Mapping[str, Any]) -> str:
    """The activity's metric label: only known types, so a sender cannot grow the metrics."""
    return next((k for k in as2.types(activity) if k in COUNTED_TYPES), "other")


__all__ = ["COUNTED_TYPES", "Outcome", "Provenance", "Route", "metric_label"]
