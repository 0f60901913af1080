"""Named workload profiles: how big the simulated city is and what its residents do."""

from __future__ import annotations

from dataclasses import dataclass, replace

CITY_CODE = "08019"


@dataclass(frozen=True)
class Profile:
    """The shape of one simulated city (counts are targets; the generator is seeded)."""

    name: str
    districts: int  # neighbourhood instances are spread over this many districts
    hoods: int  # neighbourhood instances (one per neighbourhood)
    residents: int  # per neighbourhood instance
    city_residents: int  # on the city's own instance (they propose and comment only)
    hood_proposals: int  # per neighbourhood process
    city_proposals: int  # in the city-wide process
    supports: int  # Likes sent in all (withdrawals undo some of them)
    withdrawals: int  # Undos of an earlier Like
    comments: int
    answers: int  # official answers (admin pages)
    limit: int = 12  # supportsPerParticipant of every process
    burst: int = 0  # participatory-budget supports sent at once after the stream
    concurrency: int = 12  # acts in flight at once


PROFILES = {
    "ci": Profile("ci", districts=2, hoods=5, residents=60, city_residents=6,
                  hood_proposals=20, city_proposals=50, supports=3600, withdrawals=300,
                  comments=350, answers=12, limit=20, burst=600),
    "district": Profile("district", districts=3, hoods=10, residents=100, city_residents=10,
                        hood_proposals=60, city_proposals=80, supports=12000,
                        withdrawals=1000, comments=1200, answers=30, limit=20,
                        burst=15000),
    "barcelona": Profile("barcelona", districts=10, hoods=73, residents=310,
                         city_residents=40, hood_proposals=135, city_proposals=450,
                         supports=156000, withdrawals=8000, comments=11600, answers=200,
                         limit=20, concurrency=32, burst=200000),
}  # fmt: skip


def scaled(profile: Profile, factor: float) -> Profile:
    """The same city with every activity count (not the servers) multiplied by ``factor``."""
    return replace(
        profile,
        residents=max(4, round(profile.residents * factor)),
        hood_proposals=max(2, round(profile.hood_proposals * factor)),
        city_proposals=max(2, round(profile.city_proposals * factor)),
        supports=round(profile.supports * factor),
        withdrawals=round(profile.withdrawals * factor),
        comments=round(profile.comments * factor),
        answers=max(1, round(profile.answers * factor)),
        burst=round(profile.burst * factor),
    )
