"""NodeInfo 2.1: ``/.well-known/nodeinfo`` and the document, with FEP-2677 and FEP-0151 rules."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .origin import OriginError, origin_of
from .webfinger import CORS

SCHEMA_2_1 = "http://nodeinfo.diaspora.software/ns/schema/2.1"
NODEINFO_2_1_TYPE = f'application/json; profile="{SCHEMA_2_1}#"'
INSTANCE_ACTOR_REL = "https://www.w3.org/ns/activitystreams#Application"  # FEP-2677
WELL_KNOWN_PATH = "/.well-known/nodeinfo"
DOCUMENT_PATH = "/nodeinfo/2.1"

_SOFTWARE_NAME = re.compile(r"^[a-z0-9-]+$")


@dataclass(frozen=True)
class NodeInfoData:
    """What a server says about itself. ``None`` counts are left out, never guessed (FEP-0151)."""

    software_name: str
    software_version: str
    open_registrations: bool
    users_total: int | None
    users_active_month: int | None
    users_active_halfyear: int | None
    local_posts: int | None
    metadata: Mapping[str, Any]
    software_repository: str | None = None
    software_homepage: str | None = None

    def __post_init__(self) -> None:
        """Refuse values the NodeInfo 2.1 schema would reject."""
        if not _SOFTWARE_NAME.match(self.software_name):
            raise ValueError("software_name must match ^[a-z0-9-]+$ (NodeInfo 2.1 schema)")
        if not isinstance(self.software_version, str) or not self.software_version:
            raise ValueError("software_version must be a non-empty string")
        if not isinstance(self.open_registrations, bool):
            raise ValueError("open_registrations must be a bool")
        for label, count in self._counts():
            # bool is an int subclass; True is not a count.
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, int) or count < 0
            ):
                raise ValueError(f"{label} must be a non-negative integer or None")
        try:
            json.dumps(dict(self.metadata))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata must be plain JSON: {exc}") from exc

    def _counts(self) -> list[tuple[str, int | None]]:
        return [
            ("users_total", self.users_total),
            ("users_active_month", self.users_active_month),
            ("users_active_halfyear", self.users_active_halfyear),
            ("local_posts", self.local_posts),
        ]


NodeInfoSource = Callable[[], Awaitable[NodeInfoData]]


def nodeinfo_document(data: NodeInfoData) -> dict[str, Any]:
    """The NodeInfo 2.1 document (schema 2.1; usage per FEP-0151)."""
    software: dict[str, str] = {"name": data.software_name, "version": data.software_version}
    if data.software_repository is not None:
        software["repository"] = data.software_repository
    if data.software_homepage is not None:
        software["homepage"] = data.software_homepage
    users: dict[str, int] = {}
    _put_count(users, "total", data.users_total)
    _put_count(users, "activeMonth", data.users_active_month)
    _put_count(users, "activeHalfyear", data.users_active_halfyear)
    usage: dict[str, Any] = {"users": users}
    _put_count(usage, "localPosts", data.local_posts)
    return {
        "version": "2.1",
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": data.open_registrations,
        "usage": usage,
        "metadata": dict(data.metadata),
    }


def _put_count(target: dict[str, Any], key: str, value: int | None) -> None:
    if value is not None:
        target[key] = value


def nodeinfo_links(origin: str, *, instance_actor: str | None = None) -> dict[str, Any]:
    """The ``/.well-known/nodeinfo`` JRD: the 2.1 schema link, and FEP-2677's instance actor."""
    try:
        base = str(origin_of(origin))
    except OriginError as exc:
        raise ValueError(f"NodeInfo needs an http(s) origin: {exc}") from exc
    links = [{"rel": SCHEMA_2_1, "href": base + DOCUMENT_PATH}]
    if instance_actor is not None:
        links.append({"rel": INSTANCE_ACTOR_REL, "href": instance_actor})
    return {"links": links}


def nodeinfo_routes(
    origin: str, source: NodeInfoSource, *, instance_actor: str | None = None
) -> list[web.RouteDef]:
    """Routes for ``/.well-known/nodeinfo`` and ``/nodeinfo/2.1`` (NodeInfo protocol)."""
    links = json.dumps(nodeinfo_links(origin, instance_actor=instance_actor)).encode("utf-8")

    async def well_known(request: web.Request) -> web.Response:
        # Served as application/json, as Mastodon and Misskey do; clients parse it as JRD.
        return web.Response(body=links, headers={"Content-Type": "application/json", **CORS})

    async def document(request: web.Request) -> web.Response:
        body = json.dumps(nodeinfo_document(await source()), ensure_ascii=False)
        return web.Response(
            body=body.encode("utf-8"), headers={"Content-Type": NODEINFO_2_1_TYPE, **CORS}
        )

    return [web.get(WELL_KNOWN_PATH, well_known), web.get(DOCUMENT_PATH, document)]
