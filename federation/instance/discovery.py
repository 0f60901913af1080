"""How others find the instance: WebFinger accounts and the NodeInfo 2.1 data (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from activitypub.nodeinfo import NodeInfoData
from activitypub.webfinger import WebFingerAccount, acct_uri, parse_acct
from federation.config import InstanceConfig
from federation.instance.actors import GROUPS_PATH, LocalActor, LocalActors

SOFTWARE_NAME = "barri"

#: An async count, for a NodeInfo usage number or a ``metadata.barri`` counter.
Count = Callable[[], Awaitable[int]]


def software_version() -> str:
    """The installed ``barri`` distribution's version (``0+unknown`` when run from a bare tree)."""
    # Imported by the first NodeInfo request: importlib.metadata (zipfile, email parsing, csv)
    # is ~1.2 MB that a server nobody has asked for its NodeInfo yet does not need.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(SOFTWARE_NAME)
    except PackageNotFoundError:
        return "0+unknown"


async def _zero() -> int:
    return 0


class InstanceNodeInfo:
    """The ``NodeInfoSource`` of an instance; later domain code registers its counts here.

    ``users`` counts resident accounts; ``counts`` feeds ``metadata.barri`` (``processes`` is 0
    until the process domain registers its own count with :meth:`register_count`);
    ``local_posts`` stays unset (left out, FEP-0151) until something counts posts.
    """

    def __init__(self, config: InstanceConfig) -> None:
        self.config = config
        self.users: Count | None = None
        self.local_posts: Count | None = None
        self.counts: dict[str, Count] = {"processes": _zero}

    def register_count(self, name: str, count: Count) -> None:
        """Publish ``metadata.barri[name]`` from ``count`` (replacing any earlier one)."""
        self.counts[name] = count

    async def __call__(self) -> NodeInfoData:
        """The current NodeInfo 2.1 data (schema 2.1; FEP-0151 usage)."""
        barri: dict[str, Any] = {
            # The association's Group, so an aggregator's `roster add` can follow it.
            "group": self.config.base_url + GROUPS_PATH + self.config.group,
            "territory": {
                "kind": self.config.territory_kind,
                "code": self.config.territory,
                "districtCode": self.config.district,
            },
        }
        for name, count in self.counts.items():
            barri[name] = await count()
        return NodeInfoData(
            software_name=SOFTWARE_NAME,
            software_version=software_version(),
            open_registrations=True,
            users_total=await self.users() if self.users else None,
            users_active_month=None,
            users_active_halfyear=None,
            local_posts=await self.local_posts() if self.local_posts else None,
            metadata={
                "nodeName": self.config.name,
                "languages": list(self.config.languages),
                "barri": barri,
            },
        )


class WebFingerDirectory:
    """The WebFinger ``AccountLookup`` over local actors (RFC 7033, FEP-d556)."""

    def __init__(self, actors: LocalActors) -> None:
        self.actors = actors
        self.host = actors.config.host

    async def __call__(self, resource: str) -> WebFingerAccount | None:
        """``acct:handle@host``, an actor id, or the instance URL (FEP-d556) to an account."""
        if resource.startswith("acct:"):
            return await self._by_acct(resource)
        actors = self.actors
        if resource.rstrip("/") == actors.base:
            # FEP-d556: the server's own URL names the server-level actor; subject echoes it.
            app = await actors.find(actors.application_id)
            return self._account(app, subject=resource) if app else None
        actor = await actors.find(resource)
        return self._account(actor) if actor else None

    async def _by_acct(self, resource: str) -> WebFingerAccount | None:
        user, host = parse_acct(resource)
        if host != self.host.lower():
            return None
        actors = self.actors
        if user == actors.application_handle:
            actor = await actors.find(actors.application_id)
        elif user == actors.config.group:
            actor = await actors.find(actors.group_id)
        else:
            actor = await actors.find(actors.person_id(user))
        return self._account(actor) if actor else None

    def _account(self, actor: LocalActor, *, subject: str | None = None) -> WebFingerAccount:
        acct = acct_uri(actor.handle, self.host)
        aliases = (actor.id,) if subject is None else (acct, actor.id)
        return WebFingerAccount(subject=subject or acct, actor_id=actor.id, aliases=aliases)
