"""The aggregator's counting core (DESIGN.md §7): pure, deterministic, no I/O.

``compute(inputs)`` recounts everything from the set of verified events; ``IncrementalTally``
keeps the same result up to date event by event; ``to_tally`` turns one process's totals into
the ``Tally`` the aggregator signs and publishes.
"""

from .engine import (
    ProcessTally,
    ProposalTotals,
    TallyResult,
    compute,
    to_tally,
)
from .incremental import IncrementalTally
from .records import (
    Anomaly,
    ProcessRecord,
    ProposalRecord,
    ResidentRecord,
    Roster,
    RosterEntry,
    Rule,
    SupportEvent,
    TallyInputs,
    UndoEvent,
    Window,
)

__all__ = [
    "Anomaly",
    "IncrementalTally",
    "ProcessRecord",
    "ProcessTally",
    "ProposalRecord",
    "ProposalTotals",
    "ResidentRecord",
    "Roster",
    "RosterEntry",
    "Rule",
    "SupportEvent",
    "TallyInputs",
    "TallyResult",
    "UndoEvent",
    "Window",
    "compute",
    "to_tally",
]
