"""WebFinger (RFC 7033) and host-meta (RFC 6415), served and looked up over loopback."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from aiohttp import ClientSession, web
from pytest_aiohttp.plugin import AiohttpServer

from activitypub.actors import ActorProfile, actor_document
from activitypub.fetch import Fetcher, FetchError, FetchFailure
from activitypub.hostmeta import XRD_NS, host_meta_routes, lrdd_template
from activitypub.keys import generate_ed25519, generate_rsa
from activitypub.ssrf import make_client_session
from activitypub.webfinger import (
    JRD,
    PROFILE_PAGE_REL,
    WebFingerAccount,
    WebFingerError,
    parse_acct,
    self_link,
    webfinger_handler,
    webfinger_lookup,
)

USERS = ("alice", "instance")
RSA_KEY = generate_rsa()
ED_KEY = generate_ed25519()


class Instance:
    """One server on 127.0.0.1: WebFinger, host-meta and actor documents for USERS."""

    def __init__(self, port: int) -> None:
        self.origin = f"http://127.0.0.1:{port}"
        self.host = f"127.0.0.1:{port}"
        self.seen: list[tuple[str, str]] = []  # (path and query, Accept) of WebFinger GETs

    def actor_id(self, user: str) -> str:
        return f"{self.origin}/users/{user}"

    async def webfinger(self, request: web.Request) -> web.Response:
        self.seen.append((request.path_qs, request.headers.get("Accept", "")))
        return await webfinger_handler(self.lookup)(request)

    async def lookup(self, resource: str) -> WebFingerAccount | None:
        """acct:user@host, an actor URL, or the origin itself for the instance actor."""
        if resource.startswith("acct:"):
            user, host = parse_acct(resource)
            if host != self.host:
                return None
        elif resource.rstrip("/") == self.origin:
            user = "instance"  # FEP-d556
        elif resource.startswith(self.origin + "/users/"):
            user = resource.rsplit("/", 1)[1]
        else:
            return None
        if user not in USERS:
            return None
        return WebFingerAccount(
            subject=f"acct:{user}@{self.host}",
            actor_id=self.actor_id(user),
            aliases=(f"{self.origin}/@{user}", self.actor_id(user)),
            profile_url=f"{self.origin}/@{user}",
        )

    async def actor(self, request: web.Request) -> web.Response:
        user = request.match_info["user"]
        if user not in USERS:
            raise web.HTTPNotFound()
        actor = self.actor_id(user)
        profile = ActorProfile(
            id=actor,
            type="Application" if user == "instance" else "Person",
            preferred_username=user,
            name=None,
            summary=None,
            inbox=actor + "/inbox",
            outbox=actor + "/outbox",
            followers=actor + "/followers",
            following=actor + "/following",
            shared_inbox=self.origin + "/inbox",
            url=f"{self.origin}/@{user}",
            rsa_public_key=RSA_KEY.public_key(),
            ed25519_public_key=ED_KEY.public_key(),
        )
        return web.json_response(actor_document(profile), content_type="application/activity+json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/webfinger", self.webfinger)
        app.router.add_get("/users/{user}", self.actor)
        app.add_routes(host_meta_routes(self.origin))
        return app


@pytest.fixture
async def instance(aiohttp_server: AiohttpServer, unused_tcp_port: int) -> Instance:
    inst = Instance(unused_tcp_port)
    await aiohttp_server(inst.app(), port=unused_tcp_port)
    return inst


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    """The guarded client session a server uses, with loopback allowed for tests only."""
    async with make_client_session(allow_loopback=True) as s:
        yield s


def _fetcher(session: ClientSession) -> Fetcher:
    return Fetcher(session, allow_http=True)


async def _get(
    session: ClientSession, url: str, **params: str | list[str]
) -> tuple[int, dict[str, str], Any]:
    query = [(k, v) for k, vs in params.items() for v in ([vs] if isinstance(vs, str) else vs)]
    async with session.get(url, params=query) as resp:
        body = await resp.read()
        return resp.status, dict(resp.headers), json.loads(body) if body else None


def _wf(instance: Instance) -> str:
    return instance.origin + "/.well-known/webfinger"


# --- the endpoint ------------------------------------------------------------------------


async def test_acct_lookup_returns_the_jrd(instance: Instance, session: ClientSession) -> None:
    status, headers, jrd = await _get(
        session, _wf(instance), resource=f"acct:alice@{instance.host}"
    )
    assert status == 200
    assert headers["Content-Type"] == JRD
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert jrd == {
        "subject": f"acct:alice@{instance.host}",
        "aliases": [f"{instance.origin}/@alice", instance.actor_id("alice")],
        "links": [
            {
                "rel": "self",
                "type": "application/activity+json",
                "href": instance.actor_id("alice"),
            },
            {"rel": PROFILE_PAGE_REL, "type": "text/html", "href": f"{instance.origin}/@alice"},
        ],
    }


@pytest.mark.parametrize("form", ["alice@{host}", "@alice@{host}", "ACCT:alice@{host}"])
async def test_other_account_spellings_resolve_to_the_same_account(
    instance: Instance, session: ClientSession, form: str
) -> None:
    resource = form.format(host=instance.host)
    status, _, jrd = await _get(session, _wf(instance), resource=resource)
    assert status == 200
    assert jrd["subject"] == f"acct:alice@{instance.host}"


async def test_rel_filters_links_but_keeps_subject_and_aliases(
    instance: Instance, session: ClientSession
) -> None:
    acct = f"acct:alice@{instance.host}"
    _, _, only_self = await _get(session, _wf(instance), resource=acct, rel="self")
    assert [link["rel"] for link in only_self["links"]] == ["self"]
    assert only_self["subject"] == acct and len(only_self["aliases"]) == 2
    _, _, both = await _get(session, _wf(instance), resource=acct, rel=["self", PROFILE_PAGE_REL])
    assert [link["rel"] for link in both["links"]] == ["self", PROFILE_PAGE_REL]
    _, _, page = await _get(session, _wf(instance), resource=acct, rel=PROFILE_PAGE_REL)
    assert [link["rel"] for link in page["links"]] == [PROFILE_PAGE_REL]
    _, _, none = await _get(session, _wf(instance), resource=acct, rel="http://unknown.example/r")
    assert none["links"] == [] and none["subject"] == acct


@pytest.mark.parametrize("params", [{}, {"resource": ""}, {"resource": "  "}, {"rel": "self"}])
async def test_missing_resource_is_400_problem(
    instance: Instance, session: ClientSession, params: dict[str, str]
) -> None:
    status, headers, problem = await _get(session, _wf(instance), **params)
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert problem["status"] == 400
    assert "resource" in problem["detail"]


@pytest.mark.parametrize(
    "resource",
    [
        "alice",
        "acct:alice",
        "acct:@127.0.0.1",
        "acct:alice@",
        "acct:al ice@127.0.0.1",
        "acct:alice@127.0.0.1/x",
        "acct:a%zzb@127.0.0.1",
        "mailto:alice@127.0.0.1",
        "https://",
        "ftp://127.0.0.1/users/alice",
    ],
)
async def test_malformed_resource_is_400_problem(
    instance: Instance, session: ClientSession, resource: str
) -> None:
    status, headers, problem = await _get(session, _wf(instance), resource=resource)
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    assert problem["title"] == "Bad Request"


@pytest.mark.parametrize(
    "resource", ["acct:bob@{host}", "acct:alice@other.example", "{origin}/users/bob"]
)
async def test_unknown_account_is_404_problem(
    instance: Instance, session: ClientSession, resource: str
) -> None:
    query = resource.format(host=instance.host, origin=instance.origin)
    status, headers, problem = await _get(session, _wf(instance), resource=query)
    assert status == 404
    assert headers["Content-Type"] == "application/problem+json"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert problem["status"] == 404


async def test_actor_url_resource_resolves(instance: Instance, session: ClientSession) -> None:
    status, _, jrd = await _get(session, _wf(instance), resource=instance.actor_id("alice"))
    assert status == 200
    assert jrd["subject"] == f"acct:alice@{instance.host}"
    assert self_link(jrd) == instance.actor_id("alice")


async def test_origin_resource_finds_the_instance_actor_fep_d556(
    instance: Instance, session: ClientSession
) -> None:
    status, _, jrd = await _get(session, _wf(instance), resource=instance.origin + "/")
    assert status == 200
    assert self_link(jrd) == instance.actor_id("instance")


# --- the client and the Mastodon round trip -----------------------------------------------


async def test_mastodon_round_trip_on_loopback(instance: Instance, session: ClientSession) -> None:
    """preferredUsername + the actor's host → WebFinger → self href must equal the actor id."""
    fetcher = _fetcher(session)
    for user in USERS:
        fetched = await fetcher.get_activity(instance.actor_id(user), signed=False)
        actor = fetched.document
        handle = f"{actor['preferredUsername']}@{urlsplit(actor['id']).netloc}"
        href = await webfinger_lookup(fetcher, handle, scheme="http")
        assert href == actor["id"] == fetched.url
    path_qs, accept = instance.seen[0]
    assert path_qs == f"/.well-known/webfinger?resource=acct:alice@{instance.host}"
    assert accept == "application/jrd+json, application/json"


async def test_lookup_of_an_unknown_account_surfaces_the_fetch_error(
    instance: Instance, session: ClientSession
) -> None:
    with pytest.raises(FetchError) as caught:
        await webfinger_lookup(_fetcher(session), f"bob@{instance.host}", scheme="http")
    assert caught.value.status == 404


@pytest.mark.parametrize("resource", ["alice", "acct:alice@", "https://127.0.0.1/users/alice"])
async def test_lookup_refuses_a_bad_handle_before_fetching(
    session: ClientSession, resource: str
) -> None:
    # WebFingerError, not FetchError: nothing was requested.
    with pytest.raises(WebFingerError):
        await webfinger_lookup(_fetcher(session), resource)


CANNED: dict[str, Any] = {
    "noself": {"subject": "acct:noself@h", "links": [{"rel": "profile-page", "href": "x"}]},
    "html": {
        "subject": "acct:html@h",
        "links": [{"rel": "self", "type": "text/html", "href": "https://h/u"}],
    },
    "nolinks": {"subject": "acct:nolinks@h"},
    "array": ["not", "an", "object"],
    "badhref": {
        "links": [{"rel": "self", "type": "application/activity+json", "href": "/users/x"}]
    },
    "ldjson": {
        "links": [
            {
                "rel": "self",
                "type": 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
                "href": "https://h.example/users/ld",
            }
        ]
    },
    "both": {
        "links": [
            {
                "rel": "self",
                "type": 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
                "href": "https://h.example/users/ld-spelling",
            },
            {
                "rel": "self",
                "type": "application/activity+json",
                "href": "https://h.example/users/as",
            },
        ]
    },
}


@pytest.fixture
async def canned_origin(aiohttp_server: AiohttpServer) -> str:
    """A loopback server answering WebFinger with the CANNED documents, right or wrong."""

    async def handler(request: web.Request) -> web.Response:
        user, _ = parse_acct(request.query["resource"])
        return web.json_response(CANNED[user], content_type=JRD)

    app = web.Application()
    app.router.add_get("/.well-known/webfinger", handler)
    server = await aiohttp_server(app)
    return f"127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    ("user", "expected"),
    [("ldjson", "https://h.example/users/ld"), ("both", "https://h.example/users/as")],
)
async def test_lookup_accepts_both_activitypub_media_types(
    canned_origin: str, session: ClientSession, user: str, expected: str
) -> None:
    fetcher = _fetcher(session)
    assert await webfinger_lookup(fetcher, f"{user}@{canned_origin}", scheme="http") == expected


@pytest.mark.parametrize("user", ["noself", "html", "nolinks", "badhref"])
async def test_lookup_without_a_usable_self_link_is_a_readable_error(
    canned_origin: str, session: ClientSession, user: str
) -> None:
    fetcher = _fetcher(session)
    with pytest.raises(WebFingerError, match=f"acct:{user}@"):
        await webfinger_lookup(fetcher, f"{user}@{canned_origin}", scheme="http")


async def test_lookup_of_a_non_object_answer_fails_in_the_fetcher(
    canned_origin: str, session: ClientSession
) -> None:
    with pytest.raises(FetchError) as caught:
        await webfinger_lookup(_fetcher(session), f"array@{canned_origin}", scheme="http")
    assert caught.value.reason == FetchFailure.INVALID


def test_mastodon_webfinger_examples_give_the_actor_id(vectors: Path) -> None:
    examples = json.loads((vectors / "mastodon" / "mastodon-spec-examples.json").read_text())
    gargron, _, username = examples["webfinger_examples"]
    assert self_link(gargron) == "https://mastodon.social/users/Gargron"
    assert self_link(username) == "https://host.example/accounts/username"
    # Flip the self link's type: it no longer names an ActivityPub actor.
    gargron["links"][1]["type"] = "application/activity+jsom"
    with pytest.raises(WebFingerError):
        self_link(gargron)


# --- parse_acct -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("acct:alice@barri.example", ("alice", "barri.example")),
        ("alice@Barri.Example", ("alice", "barri.example")),
        ("@alice@barri.example", ("alice", "barri.example")),
        ("acct:alice@127.0.0.1:8080", ("alice", "127.0.0.1:8080")),
        ("acct:alice@[::1]:8080", ("alice", "[::1]:8080")),
        (
            "acct:juliet%40capulet.example@shoppingsite.example",
            ("juliet@capulet.example", "shoppingsite.example"),
        ),
        ("acct:anna@sant-andreu.barcelona", ("anna", "sant-andreu.barcelona")),
        ("acct:anna@gràcia.example", ("anna", "xn--grcia-sqa.example")),
    ],
)
def test_parse_acct(resource: str, expected: tuple[str, str]) -> None:
    assert parse_acct(resource) == expected


@pytest.mark.parametrize(
    "resource",
    [
        "",
        "alice",
        "acct:",
        "@alice",
        "alice@",
        "@@host",
        "a@b@c",
        "acct:a b@host",
        "a@host.",
        "a@-x",
    ],
)
def test_parse_acct_refuses_what_is_not_an_account(resource: str) -> None:
    with pytest.raises(ValueError):
        parse_acct(resource)


# --- host-meta --------------------------------------------------------------------------


async def test_host_meta_xrd_has_the_lrdd_template_that_works(
    instance: Instance, session: ClientSession
) -> None:
    async with session.get(instance.origin + "/.well-known/host-meta") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/xrd+xml; charset=utf-8"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        root = ET.fromstring(await resp.read())
    assert root.tag == f"{{{XRD_NS}}}XRD"
    [link] = root.findall(f"{{{XRD_NS}}}Link")
    assert link.get("rel") == "lrdd"
    template = link.get("template")
    assert template == f"{instance.origin}/.well-known/webfinger?resource={{uri}}"
    # Expand the template as a legacy client does, and it leads to the account.
    url = template.replace("{uri}", quote(f"acct:alice@{instance.host}", safe=""))
    async with session.get(url) as resp:
        assert resp.status == 200
        assert self_link(await resp.json(content_type=None)) == instance.actor_id("alice")


async def test_host_meta_json(instance: Instance, session: ClientSession) -> None:
    async with session.get(instance.origin + "/.well-known/host-meta.json") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == JRD
        doc = await resp.json(content_type=None)
    assert doc == {
        "links": [{"rel": "lrdd", "type": JRD, "template": lrdd_template(instance.origin)}]
    }


def test_host_meta_escapes_and_normalises_the_origin() -> None:
    assert lrdd_template("HTTPS://Barri.Example:443") == (
        "https://barri.example/.well-known/webfinger?resource={uri}"
    )
    with pytest.raises(ValueError):
        lrdd_template("barri.example")
