"""WebFinger (RFC 7033): the ``/.well-known/webfinger`` endpoint and the client lookup."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from .errors import Problem
from .fetch import is_as2_media_type, parse_media_type
from .origin import OriginError, origin_of

JRD = "application/jrd+json"
AS_MEDIA_TYPE = "application/activity+json"
PROFILE_PAGE_REL = "http://webfinger.net/rel/profile-page"
WELL_KNOWN_PATH = "/.well-known/webfinger"
CORS = {"Access-Control-Allow-Origin": "*"}

# RFC 7565 userpart (unreserved / sub-delims / pct-encoded; '@' must be encoded) and a host
# that is a DNS name, an IPv4 address or a bracketed IPv6 literal, with an optional port.
_USER = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=%]+$")
_BAD_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$"
)


class WebFingerError(ValueError):
    """A WebFinger lookup gave no usable ActivityPub actor; the message says why."""


@dataclass(frozen=True)
class WebFingerAccount:
    """What the endpoint answers for one account (RFC 7033 §4.4)."""

    subject: str
    actor_id: str
    aliases: tuple[str, ...] = ()
    profile_url: str | None = None


AccountLookup = Callable[[str], Awaitable[WebFingerAccount | None]]


def parse_acct(resource: str) -> tuple[str, str]:
    """Split ``acct:user@host``, ``user@host`` or ``@user@host`` into (user, host) (RFC 7565)."""
    text = resource.strip() if isinstance(resource, str) else ""
    if text[:5].lower() == "acct:":
        text = text[5:]
    elif text.startswith("@"):
        text = text[1:]
    user, at, host = text.partition("@")
    try:
        # An internationalised host is compared in its ASCII (IDNA) form.
        host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"invalid host in {resource!r}") from exc
    if not at or not _USER.match(user) or not _HOST.match(host) or _BAD_PCT.search(user):
        raise ValueError(f"not an account address (user@host): {resource!r}")
    return unquote(user), host.lower()


def acct_uri(user: str, host: str) -> str:
    """The ``acct:`` URI for a user and host, percent-encoding what RFC 7565 requires."""
    return f"acct:{quote(user, safe=_SAFE_USER)}@{host.lower()}"


_SAFE_USER = "-._~!$&'()*+,;="


def _normalise_resource(resource: str) -> str:
    """``acct:user@host`` for account forms, the URL itself for http(s); ValueError otherwise."""
    if resource.partition(":")[0].lower() in ("http", "https"):
        try:
            origin_of(resource)
        except OriginError as exc:
            raise ValueError(str(exc)) from exc
        return resource
    user, host = parse_acct(resource)
    return acct_uri(user, host)


def _jrd(account: WebFingerAccount, rels: list[str]) -> dict[str, Any]:
    links: list[dict[str, str]] = [{"rel": "self", "type": AS_MEDIA_TYPE, "href": account.actor_id}]
    if account.profile_url is not None:
        links.append({"rel": PROFILE_PAGE_REL, "type": "text/html", "href": account.profile_url})
    if rels:
        # RFC 7033 §4.3: rel only filters links; subject and aliases are always returned.
        links = [link for link in links if link["rel"] in rels]
    doc: dict[str, Any] = {"subject": account.subject}
    if account.aliases:
        doc["aliases"] = list(account.aliases)
    doc["links"] = links
    return doc


def _problem(status: int, title: str, detail: str) -> web.Response:
    response = Problem(status, title, detail).response()
    response.headers.update(CORS)
    return response


def webfinger_handler(lookup: AccountLookup) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The GET ``/.well-known/webfinger`` handler (RFC 7033 §4): JRD, 400, 404, ``rel`` filter.

    ``lookup`` receives ``acct:user@host`` (normalised from any account form) or the http(s)
    URL as given (an actor id, or the instance origin for FEP-d556) and decides whether the
    account is one of ours.
    """

    async def handler(request: web.Request) -> web.Response:
        resource = request.query.get("resource", "")
        if not resource.strip():
            return _problem(400, "Bad Request", "The 'resource' query parameter is required.")
        try:
            normalised = _normalise_resource(resource)
        except ValueError:
            return _problem(
                400,
                "Bad Request",
                "'resource' must be acct:user@host or an http(s) URL of an actor.",
            )
        account = await lookup(normalised)
        if account is None:
            return _problem(404, "Not Found", f"No account is known here for {normalised}.")
        body = json.dumps(_jrd(account, request.query.getall("rel", [])), ensure_ascii=False)
        return web.Response(body=body.encode("utf-8"), headers={"Content-Type": JRD, **CORS})

    return handler


def self_link(jrd: Mapping[str, Any]) -> str:
    """The ActivityPub actor id a JRD points to (its ``self`` link); WebFingerError if none."""
    links = jrd.get("links")
    if not isinstance(links, list):
        raise WebFingerError("the WebFinger answer has no 'links' list")
    candidates = [
        link
        for link in links
        if isinstance(link, Mapping)
        and link.get("rel") == "self"
        and isinstance(link.get("type"), str)
        and is_as2_media_type(link["type"])
    ]
    # Prefer the activity+json link when a server lists both spellings.
    candidates.sort(key=lambda link: parse_media_type(link["type"])[0] != AS_MEDIA_TYPE)
    for link in candidates:
        href = link.get("href")
        if isinstance(href, str):
            try:
                origin_of(href)
            except OriginError:
                continue
            return href
    raise WebFingerError("the WebFinger answer has no 'self' link to an ActivityPub actor")


async def webfinger_lookup(fetcher: Any, resource: str, *, scheme: str = "https") -> str:
    """Resolve ``user@host`` to its actor id with a WebFinger GET (RFC 7033 §4, Mastodon).

    ``fetcher`` is an :class:`activitypub.fetch.Fetcher` (or anything with the same
    ``get_json``); its errors (FetchError: network, status such as 404, size) propagate
    unchanged. The href is not fetched here: the caller fetches the actor and, as Mastodon
    does, may check that the actor's preferredUsername and host lead back to it.
    """
    try:
        user, host = parse_acct(resource)
    except ValueError as exc:
        raise WebFingerError(str(exc)) from exc
    if scheme not in ("https", "http"):
        raise WebFingerError(f"WebFinger runs over https (or http in tests), not {scheme!r}")
    acct = acct_uri(user, host)
    url = f"{scheme}://{host}{WELL_KNOWN_PATH}?resource={quote(acct, safe=':@')}"
    result = await fetcher.get_json(url, accept=f"{JRD}, application/json")
    document = getattr(result, "document", None)
    if not isinstance(document, Mapping):
        raise WebFingerError(f"the WebFinger answer for {acct} is not a JSON object")
    try:
        return self_link(document)
    except WebFingerError as exc:
        raise WebFingerError(f"{exc} (looking up {acct})") from exc
