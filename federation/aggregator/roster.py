"""The city's roster of instances: add (discover, follow), remove (unfollow), list (§6, §7).

Adding an instance discovers it: its NodeInfo (``/.well-known/nodeinfo``) names the instance
actor (FEP-2677; else WebFinger of the origin, FEP-d556) and, in ``metadata.barri``, its Group
and territory. The Service then follows the instance actor and the Group with signed, proved
``Follow`` activities and records each answer (``Accept``/``Reject``, see ingest). Removing an
instance sends ``Undo{Follow}`` and marks it inactive: the tally stops counting it at once,
and adding it back restores it from what is stored, refetching nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from activitypub import as2
from activitypub.actors import AS_CONTEXT, DATA_INTEGRITY_V2
from activitypub.fetch import FetchError
from activitypub.integrity import ProofError
from activitypub.nodeinfo import INSTANCE_ACTOR_REL, SCHEMA_2_1, WELL_KNOWN_PATH
from activitypub.origin import same_origin
from activitypub.runtime import Federation
from activitypub.webfinger import WebFingerError, self_link
from federation.config_values import TERRITORY_CODE
from federation.store.aggregator import FollowRow, RosterRow
from federation.tally.records import normal_origin
from federation.vocab.context import format_datetime

if TYPE_CHECKING:
    from federation.aggregator.wiring import Aggregator

FOLLOW_CONTEXT = [AS_CONTEXT, DATA_INTEGRITY_V2]
_LIVE = ("pending", "accepted")


class RosterError(Exception):
    """A roster change cannot be made; the message is one line an operator can act on."""


@dataclass(frozen=True)
class Discovery:
    """What an instance says about itself (NodeInfo metadata, FEP-2677 instance actor)."""

    origin: str
    instance_actor: str
    group_actor: str | None
    territory: str | None
    district: str | None
    name: str | None


@dataclass(frozen=True)
class RosterStatus:
    """One roster row with its follows and backlog, for ``roster list`` and the API."""

    row: RosterRow
    follows: tuple[FollowRow, ...]
    backlog: int


def _code(value: Any) -> str | None:
    return value if isinstance(value, str) and TERRITORY_CODE.match(value) else None


def _metadata(nodeinfo: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = nodeinfo.get("metadata")
    barri = metadata.get("barri") if isinstance(metadata, Mapping) else None
    return barri if isinstance(barri, Mapping) else {}


class RosterService:
    """Roster changes for the app and the CLI, through the Service's runtime."""

    def __init__(
        self,
        aggregator: Aggregator,
        federation: Federation,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.aggregator, self.federation, self._clock = aggregator, federation, clock
        self.store = aggregator.store

    # --- discovery --------------------------------------------------------------------------

    async def discover(self, url: str) -> Discovery:
        """NodeInfo 2.1 + FEP-2677 (else WebFinger, FEP-d556): the instance's actors."""
        origin = normal_origin(url)
        if origin is None:
            raise RosterError(f"{url!r} is not an http(s) URL of an instance")
        fetcher = self.federation.fetcher
        if fetcher is None:
            raise RuntimeError("Federation.start() has not run")
        try:
            links = (await fetcher.get_json(origin + WELL_KNOWN_PATH)).document
            nodeinfo_url, instance_actor = _links(links)
            nodeinfo = (await fetcher.get_json(nodeinfo_url)).document if nodeinfo_url else {}
            if instance_actor is None:
                instance_actor = await self._webfinger_actor(origin)
        except (FetchError, WebFingerError) as exc:
            raise RosterError(f"cannot discover {origin}: {exc}") from exc
        barri = _metadata(nodeinfo)
        territory = barri.get("territory")
        territory = territory if isinstance(territory, Mapping) else {}
        group = barri.get("group")
        name = as2.optional_str(nodeinfo.get("metadata") or {}, "nodeName")
        return Discovery(
            origin=origin,
            instance_actor=instance_actor,
            group_actor=group if isinstance(group, str) else None,
            territory=_code(territory.get("code")),
            district=_code(territory.get("districtCode")),
            name=name,
        )

    async def _webfinger_actor(self, origin: str) -> str:
        fetcher = self.federation.fetcher
        assert fetcher is not None
        resource = quote(origin, safe=":/")
        jrd = await fetcher.get_json(f"{origin}/.well-known/webfinger?resource={resource}")
        return self_link(jrd.document)

    async def _check_actor(self, origin: str, actor_id: str, kinds: tuple[str, ...]) -> None:
        """The actor exists, lives on the instance's origin and is of the expected type."""
        if not same_origin(actor_id, origin):
            raise RosterError(f"{actor_id} is not on the instance's origin {origin}")
        try:
            document = await self.federation.fetch_actor(actor_id, True)
        except ProofError as exc:  # the runtime's fetch wrapper reports fetch failures so
            raise RosterError(f"cannot fetch {actor_id}: {exc}") from exc
        if not as2.has_type(document, *kinds):
            raise RosterError(f"{actor_id} is not a {' or '.join(kinds)} actor")

    # --- changes ----------------------------------------------------------------------------

    async def add(
        self,
        url: str,
        territory: str,
        district: str | None = None,
        *,
        group: str | None = None,
    ) -> tuple[RosterRow, list[str]]:
        """Discover, put on the roster (or restore) and follow; returns the row and warnings."""
        if _code(territory) is None:
            raise RosterError(f"--territory {territory!r} is not a territory code")
        found = await self.discover(url)
        group = group or found.group_actor
        if group is None:
            raise RosterError(
                f"{found.origin} names no Group (NodeInfo metadata.barri.group); pass --group"
            )
        await self._check_actor(found.origin, found.instance_actor, ("Application", "Service"))
        await self._check_actor(found.origin, group, ("Group",))
        district = district or found.district
        if district is None or _code(district) is None:
            raise RosterError(f"{found.origin} states no district: pass --district CODE")
        warnings = _mismatches(found, territory, district)
        previous = await self.store.roster_entry(found.origin)
        row = RosterRow(
            origin=found.origin,
            url=url,
            territory=territory,
            district=district,
            instance_actor=found.instance_actor,
            group_actor=group,
            active=True,
            added_at=previous.added_at if previous else self._clock(),
            removed_at=None,
            last_activity_at=previous.last_activity_at if previous else None,
        )
        await self.store.put_roster(row)
        for target in (found.instance_actor, group):
            await self._ensure_follow(found.origin, target)
        await self.aggregator.state.sync()
        return row, warnings

    async def remove(self, url: str) -> RosterRow:
        """Undo our Follows and take the instance out of the totals (its data is kept)."""
        origin = normal_origin(url)
        row = None if origin is None else await self.store.roster_entry(origin)
        if row is None or origin is None:
            raise RosterError(f"{url} is not on the roster (see `barri roster list`)")
        await self.store.set_active(origin, False, now=self._clock())
        for follow in await self.store.follows(origin):
            if follow.state in _LIVE:
                await self._unfollow(follow)
        await self.aggregator.state.sync()
        return replace(row, active=False)

    async def status(self) -> list[RosterStatus]:
        """Every roster row with its follows and backlog (unprocessed inbox rows + backfill)."""
        found = []
        for row in await self.store.roster():
            follows = tuple(await self.store.follows(row.origin))
            backlog = await self.store.pending_inbox(row.origin)
            for cursor in await self.store.cursors(row.origin):
                if cursor.total is not None:
                    backlog += max(cursor.total - cursor.items, 0)
            found.append(RosterStatus(row, follows, backlog))
        return found

    # --- follows ----------------------------------------------------------------------------

    async def _ensure_follow(self, origin: str, target: str) -> None:
        follows = [f for f in await self.store.follows(origin) if f.target == target]
        if any(f.state in _LIVE for f in follows):
            return
        service = self.aggregator.service
        follow_id = service.new_id("follows")
        follow: dict[str, Any] = {
            "@context": list(FOLLOW_CONTEXT),
            "id": follow_id,
            "type": "Follow",
            "actor": service.id,
            "object": target,
            "to": [target],
            "published": format_datetime_now(self._clock()),
        }
        document = json.dumps(follow, ensure_ascii=False)
        await self.store.add_follow(follow_id, origin, target, document, now=self._clock())
        await self._send(follow, target)

    async def _unfollow(self, follow: FollowRow) -> None:
        service = self.aggregator.service
        stored = json.loads(await self.store.follow_document(follow.follow_id) or "{}")
        undo = {
            "@context": list(FOLLOW_CONTEXT),
            "id": service.new_id("undos"),
            "type": "Undo",
            "actor": service.id,
            "object": {k: v for k, v in stored.items() if k not in ("@context", "proof")},
            "to": [follow.target],
            "published": format_datetime_now(self._clock()),
        }
        await self.store.set_follow_state(follow.follow_id, "undone", now=self._clock())
        await self._send(undo, follow.target)

    async def _send(self, activity: dict[str, Any], target: str) -> None:
        """Prove with the Service's Ed25519 key (FEP-8b32), queue for the target's inbox."""
        proved = (await self.aggregator.service.keys()).prove(activity)
        inboxes = await self.federation.inboxes_of([target])
        await self.federation.deliver(proved, inboxes)


def format_datetime_now(now: float) -> str:
    """``now`` (POSIX seconds) as an RFC 3339 UTC timestamp."""
    return format_datetime(datetime.fromtimestamp(now, UTC))


def _links(links: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(NodeInfo 2.1 document URL, FEP-2677 instance actor) from the well-known JRD."""
    nodeinfo = actor = None
    for link in links.get("links") or []:
        if not isinstance(link, Mapping) or not isinstance(link.get("href"), str):
            continue
        if link.get("rel") == SCHEMA_2_1:
            nodeinfo = link["href"]
        elif link.get("rel") == INSTANCE_ACTOR_REL:
            actor = link["href"]
    return nodeinfo, actor


def _mismatches(found: Discovery, territory: str, district: str) -> list[str]:
    """Where the city's roster and the instance's own NodeInfo disagree (the roster wins)."""
    warnings = []
    if found.territory is not None and found.territory != territory:
        warnings.append(f"{found.origin} says its territory is {found.territory}, not {territory}")
    if found.district is not None and found.district != district:
        warnings.append(f"{found.origin} says its district is {found.district}, not {district}")
    return warnings
