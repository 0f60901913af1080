"""What the demo city holds: its servers, residents, processes, proposals, supports, comments.

Plain data, read by :mod:`federation.demo_seed`. The neighbourhood and district codes are
Barcelona's official ones (Ajuntament de Barcelona, "Divisions administratives"): la Vila de
Gràcia is neighbourhood 31 in district 06 (Gràcia), Sants is 18 in 03 (Sants-Montjuïc), el
Poblenou is 68 in 10 (Sant Martí); the city is INE 08019.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

CITY_CODE = "08019"
#: Every demo account's password (shown in the URL table: it is a demo on loopback).
PASSWORD = "barri-demo-2027"  # noqa: S105 (a loopback demo)
ADMIN = "admin"


@dataclass(frozen=True)
class Place:
    """One instance of the demo city: who runs it and which territory it serves."""

    key: str
    label: str
    name: str
    group: str
    territory: str
    kind: str  # "city" or "neighbourhood"
    district: str | None
    residents: tuple[str, ...]
    #: How its residents propose and support: "forms" (the pages) or "c2s" (their outbox).
    client: str = "forms"

    @property
    def is_city(self) -> bool:
        """True for the city's own instance (it owns the city-wide process)."""
        return self.kind == "city"


PLACES = (
    Place("city", "Barcelona", "Ajuntament de Barcelona", "ajuntament", CITY_CODE, "city", None,
          ("marta", "jordi")),
    Place("gracia", "Gràcia", "Associació de Veïns de la Vila de Gràcia", "avgracia", "31",
          "neighbourhood", "06", ("ana", "pau", "laia", "marc", "nuria")),
    Place("sants", "Sants", "Associació de Veïns de Sants", "avsants", "18", "neighbourhood",
          "03", ("joan", "maria", "pere", "carla"), client="c2s"),
    Place("poblenou", "Poblenou", "Associació de Veïns del Poblenou", "avpoblenou", "68",
          "neighbourhood", "10", ("david", "julia", "oriol", "sara"), client="c2s"),
)  # fmt: skip

#: Residents verified from the census (``barri admin census claim``); the others by the
#: association's admin on its verification page. Identity numbers are invented.
CENSUS = {"gracia": ("ana", "11111111H"), "sants": ("joan", "22222222J"),
          "poblenou": ("david", "33333333P")}  # fmt: skip


@dataclass(frozen=True)
class Proposal:
    """A proposal: its key, the process it goes into ("city" or a place key), author, text."""

    key: str
    process: str
    place: str
    author: str
    name: str
    body: str


PROPOSALS = (
    Proposal("c1", "city", "gracia", "ana", "Més arbres a la Travessera de Gràcia",
             "Plantar arbres d'ombra a tota la Travessera: a l'estiu és un forn."),
    Proposal("c2", "city", "sants", "joan", "Carril bici a la carretera de Sants",
             "Un carril segregat de la plaça de Sants a la plaça d'Espanya."),
    Proposal("c3", "city", "poblenou", "david", "Nova biblioteca al Poblenou",
             "Una biblioteca de barri amb sala d'estudi oberta fins tard."),
    Proposal("c4", "city", "city", "marta", "Fonts d'aigua potable als parcs",
             "Una font cada 300 metres a tots els parcs de la ciutat."),
    Proposal("c5", "city", "city", "jordi", "Patis escolars oberts els caps de setmana",
             "Obrir els patis de les escoles públiques com a places de joc."),
    Proposal("g1", "gracia", "gracia", "pau", "Pacificar el carrer de Verdi",
             "Prioritat per a vianants i càrrega i descàrrega només al matí."),
    Proposal("g2", "gracia", "gracia", "laia", "Bancs a la plaça de la Virreina",
             "Més bancs i a l'ombra, per a la gent gran del barri."),
    Proposal("g3", "gracia", "gracia", "marc", "Ombra a la plaça del Sol",
             "Veles o pèrgoles amb plantes a la plaça del Sol."),
    Proposal("s1", "sants", "sants", "maria", "Mercat d'Hostafrancs obert a la tarda",
             "Obrir el mercat també de dimarts a divendres a la tarda."),
    Proposal("s2", "sants", "sants", "pere", "Zona de jocs a l'Espanya Industrial",
             "Renovar la zona de jocs del parc, amb jocs inclusius."),
    Proposal("s3", "sants", "sants", "carla", "Horts urbans a la Bordeta",
             "Horts comunitaris al solar del carrer de la Constitució."),
    Proposal("p1", "poblenou", "poblenou", "julia", "Superilla del Poblenou: més verd",
             "Més arbres i parterres a les cruïlles de la superilla."),
    Proposal("p2", "poblenou", "poblenou", "oriol", "Rambla del Poblenou sense cotxes",
             "Tancar la Rambla al trànsit els diumenges al matí."),
    Proposal("p3", "poblenou", "poblenou", "sara", "Espai per a joves a Can Felipa",
             "Una sala de música i assaig per a joves al centre cívic."),
)  # fmt: skip

#: (place, resident) -> the proposals they support, in order.
SUPPORTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("gracia", "ana"): ("c1", "c3", "g1", "g2"),
    ("gracia", "pau"): ("c1", "c2", "c4", "g2"),
    ("gracia", "laia"): ("c1", "g1"),
    ("gracia", "marc"): ("c4", "c5", "g1"),
    ("gracia", "nuria"): ("c1", "c3", "g1", "g3"),
    ("sants", "joan"): ("c2", "c1", "s1"),
    ("sants", "maria"): ("c2", "s2"),
    ("sants", "pere"): ("c2", "c3", "c5", "s1"),
    ("sants", "carla"): ("c4", "s1", "s2"),
    ("poblenou", "david"): ("c3", "p1", "p2"),
    ("poblenou", "julia"): ("c3", "c1", "p2"),
    ("poblenou", "oriol"): ("c3", "c2", "p1"),
    ("poblenou", "sara"): ("c5", "p1", "p3"),
}

#: Supports withdrawn afterwards (an Undo of the Like), and a proposal its author withdraws.
WITHDRAWN_SUPPORTS = (("gracia", "pau", "c4"), ("sants", "pere", "c5"),
                      ("gracia", "nuria", "g3"), ("poblenou", "sara", "p3"))  # fmt: skip
WITHDRAWN_PROPOSAL = "s3"


@dataclass(frozen=True)
class Comment:
    """A comment on a proposal, or a reply to an earlier comment (``parent``)."""

    key: str
    place: str
    author: str
    on: str  # the proposal's key
    parent: str | None
    alignment: str
    body: str


#: Threads, in order: each reply comes from another instance than its parent where it can.
COMMENTS = (
    Comment("k1", "sants", "joan", "c1", None, "inFavor",
            "A la carretera de Sants també en falten, i molts."),
    Comment("k2", "poblenou", "david", "c1", "k1", "neutral",
            "I al Poblenou! Però que siguin espècies autòctones, que gasten menys aigua."),
    Comment("k3", "city", "marta", "c1", "k2", "neutral",
            "Parcs i Jardins té un catàleg d'espècies adaptades: l'enllaçarem aquí."),
    Comment("k4", "gracia", "laia", "c1", None, "inFavor",
            "Sí, si us plau. A l'agost no s'hi pot ni passar."),
    Comment("k5", "gracia", "pau", "c3", None, "against",
            "Més aviat ampliaria la biblioteca del Poblenou–Manuel Arranz."),
    Comment("k6", "poblenou", "julia", "c3", "k5", "inFavor",
            "La Manuel Arranz ja no dona l'abast: a l'hora d'estudi no hi ha lloc."),
    Comment("k7", "gracia", "marc", "g1", None, "inFavor",
            "I que els camions no hi passin a la tarda."),
    Comment("k8", "gracia", "ana", "g1", "k7", "neutral",
            "Les botigues necessiten una franja, però."),
)  # fmt: skip

#: The city's official answer to one proposal (its Group's Update reaches the author's instance).
ANSWER = ("c2", "evaluating", "Els serveis tècnics de Mobilitat n'estudien el traçat.")


def process_draft(owner: Place, now: datetime) -> dict[str, Any]:
    """The process a place's Group owns: one open phase for proposals, supports and comments."""
    territory: dict[str, str]
    if owner.is_city:
        name, limit = "Pressupostos participatius de Barcelona 2027", 3
        territory = {"type": "Territory", "territoryKind": "city", "territoryCode": CITY_CODE}
    else:
        name = f"Pressupost del barri: {owner.label} 2027"
        territory = {
            "type": "Territory",
            "territoryKind": "neighbourhood",
            "territoryCode": owner.territory,
            "districtCode": owner.district or "",
        }
        limit = 2
    return {
        "type": ["Page", "ParticipatoryProcess"],
        "name": name,
        "summary": f"Proposa i dona suport a projectes per a {owner.label}.",
        "phases": [
            {
                "type": "Phase",
                "name": "Propostes i suports",
                "startTime": _iso(now - timedelta(days=1)),
                "endTime": _iso(now + timedelta(days=90)),
                "allowsProposals": True,
                "allowsSupports": True,
                "allowsComments": True,
                "allowsDebates": True,
            }
        ],
        "supportRules": {
            "type": "SupportRules",
            "supportsPerParticipant": limit,
            "thresholdPerProposal": 0,
            "accumulateBeyondThreshold": False,
            "minimumSupportsPerParticipant": 0,
        },
        "eligibleTerritories": [territory],
    }


def census_csv(place: Place) -> str:
    """The census a neighbourhood imports: ``id_number,territory`` rows (invented numbers)."""
    rows = [
        f"{number},{place.territory}" for key, (_u, number) in CENSUS.items() if key == place.key
    ]
    return "id_number,territory\n" + "".join(row + "\n" for row in rows)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
