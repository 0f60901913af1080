"""A resident's browser for the demo seeder: the instance's own HTML forms, or its C2S outbox.

Each :class:`Browser` is one person on one instance: its own cookie jar (the session cookie),
the CSRF token read from the forms its session is shown, and POSTs answered by 303 like a
browser's (Post/Redirect/Get). Given a personal access token (``barri admin token create``),
it proposes, supports and withdraws supports as a third-party app would instead: ``POST`` to
the resident's outbox with the token (ActivityPub §6), ``201`` and the stored activity back.
A refusal raises :class:`FormRefused` with the server's own message, so a demo that cannot
seed says which rule refused what.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ALERT = re.compile(r'role="alert"[^>]*>(.*?)</div>', re.S)
_TAG = re.compile(r"<[^>]+>")
#: A comment's anchor on a thread page (``id="c-<last segment of its id>"``).
_ANCHOR = re.compile(r'<article[^>]*\bid="c-([^"]+)"')
REMOTE = "/remote"
AS2 = "application/activity+json"
POLL = 0.1


class FormRefused(Exception):
    """A page refused what the seeder asked; the message names the form and the reason."""


class Browser:
    """One resident (or admin) using one instance's pages."""

    def __init__(self, base_url: str, username: str, *, timeout: float = 30.0) -> None:
        self.base_url, self.username = base_url, username
        # unsafe=True: the jar keeps cookies of an IP-address host (127.0.0.1).
        self._session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        self._token: str | None = None
        #: A personal access token: when set, proposals and supports go through C2S.
        self.token: str | None = None
        self._likes: dict[str, str] = {}  # proposal id -> the id of our Like (C2S)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._session.close()

    @property
    def actor(self) -> str:
        """This resident's actor id."""
        return f"{self.base_url}/users/{self.username}"

    # -- pages and forms ----------------------------------------------------------------------

    async def get(self, path: str) -> tuple[int, str]:
        """GET a page as a browser (HTML); returns status and text."""
        async with self._session.get(
            self.base_url + path, headers={"Accept": "text/html"}, allow_redirects=False
        ) as response:
            text = await response.text()
            if (found := _CSRF.search(text)) is not None:
                self._token = html.unescape(found.group(1))
            return response.status, text

    async def post(self, path: str, fields: Mapping[str, str], what: str) -> str:
        """Submit a form; return the 303's Location, else raise FormRefused with the reason."""
        if self._token is None:
            await self.get("/")
        data = {"csrf": self._token or "", **fields}
        async with self._session.post(
            self.base_url + path, data=data, allow_redirects=False
        ) as response:
            text = await response.text()
            if response.status == 303:
                return response.headers["Location"]
        raise FormRefused(
            f"{self.username}@{self.base_url}: {what}: {_reason(response.status, text)}"
        )

    async def outbox(self, activity: Mapping[str, Any], what: str) -> dict[str, Any]:
        """POST an activity to the resident's outbox (C2S); the stored activity."""
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": AS2,
            "Accept": AS2,
        }
        body = json.dumps(activity, ensure_ascii=False).encode("utf-8")
        async with self._session.post(
            self.actor + "/outbox", data=body, headers=headers
        ) as response:
            answer = await response.json(content_type=None)
            if response.status == 201 and isinstance(answer, dict):
                return answer
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        raise FormRefused(
            f"{self.username}@{self.base_url}: {what} (C2S): HTTP {response.status}: {detail}"
        )

    # -- accounts -----------------------------------------------------------------------------

    async def register(self, password: str) -> None:
        """Register through /register (the new account is logged in)."""
        await self.get("/register")
        fields = {"username": self.username, "password": password, "confirm": password}
        await self.post("/register", fields, "register")
        self._token = None  # a new session has a new token

    async def login(self, password: str) -> None:
        """Log in through /login."""
        await self.get("/login")
        fields = {"username": self.username, "password": password, "next": "/"}
        await self.post("/login", fields, "log in")
        self._token = None

    # -- a resident's acts --------------------------------------------------------------------

    async def propose(self, process_id: str, name: str, body: str) -> str:
        """Write a proposal into a process (local or another instance's); returns its id."""
        if self.token is not None:
            proposal = {"type": ["Page", "Proposal"], "process": process_id, "name": name,
                        "source": {"content": body, "mediaType": "text/markdown"}}  # fmt: skip
            created = await self.outbox({"type": "Create", "object": proposal}, f"propose {name!r}")
            return str(created["object"]["id"])
        path = self.action_path(process_id, "processes", "proposals/new")
        await self.get(path)
        location = await self.post(path, {"name": name, "body": body}, f"propose {name!r}")
        return self.base_url + urlsplit(location).path  # the author's instance hosts it

    async def support(self, proposal_id: str) -> None:
        """Support a proposal (a Like to its process's Group and the aggregators)."""
        if self.token is not None:
            like = await self.outbox({"type": "Like", "object": proposal_id}, "support")
            self._likes[proposal_id] = str(like["id"])
            return
        await self.post(self.action_path(proposal_id, "proposals", "support"), {}, "support")

    async def unsupport(self, proposal_id: str) -> None:
        """Withdraw one's support (an Undo of the Like)."""
        if self.token is not None:
            await self.outbox({"type": "Undo", "object": self._likes[proposal_id]}, "unsupport")
            return
        await self.post(self.action_path(proposal_id, "proposals", "unsupport"), {}, "unsupport")

    async def withdraw(self, proposal_id: str) -> None:
        """Withdraw one's own proposal."""
        await self.post(self.action_path(proposal_id, "proposals", "withdraw"), {}, "withdraw")

    async def comment(
        self, root_id: str, body: str, alignment: str, parent: str | None = None
    ) -> str:
        """Comment on a proposal (or reply to ``parent``); returns the new comment's id."""
        _status, before = await self.get(self.page_path(root_id))
        fields = {"body": body, "alignment": alignment}
        if parent is not None:
            fields["parent"] = parent
        path = self.action_path(root_id, "proposals", "comment")
        await self.post(path, fields, "comment")
        _status, after = await self.get(self.page_path(root_id))
        new = set(_ANCHOR.findall(after)) - set(_ANCHOR.findall(before))
        # Ids are {author's base}/comments/{anchor}; others' comments may have arrived too.
        mine = [f"{self.base_url}/comments/{anchor}" for anchor in sorted(new)]
        found = [cid for cid in mine if await self._exists(cid)]
        if len(found) != 1:
            raise FormRefused(f"{self.username}: cannot tell which comment is the new one")
        return found[0]

    # -- an association's staff --------------------------------------------------------------

    async def verify(self, username: str, territory: str) -> None:
        """Verify a resident on /admin/verify (staff only)."""
        await self.get("/admin/verify")
        fields = {"username": username, "territory": territory}
        await self.post("/admin/verify", fields, f"verify {username}")

    async def answer(self, proposal_id: str, state: str, text: str) -> None:
        """Answer a proposal of one of the Group's processes on /admin/answers (staff only)."""
        await self.get("/admin/answers?proposal=" + quote(proposal_id, safe=""))
        fields = {"proposal": proposal_id, "state": state, "answer": text}
        await self.post("/admin/answers", fields, "answer")

    # -- reading ------------------------------------------------------------------------------

    async def wait_for(self, object_id: str, within: float, anchor: str | None = None) -> None:
        """Wait until this instance shows ``object_id`` (and the comment ``anchor`` on it)."""
        deadline = time.monotonic() + within
        while True:
            status, text = await self.get(self.page_path(object_id))
            if status == 200 and (anchor is None or f'id="c-{anchor}"' in text):
                return
            if time.monotonic() > deadline:
                what = f"comment {anchor} on {object_id}" if anchor else object_id
                raise FormRefused(f"{self.base_url} did not receive {what} in {within:.0f} s")
            await asyncio.sleep(POLL)

    async def _exists(self, object_id: str) -> bool:
        async with self._session.get(
            object_id, headers={"Accept": "application/activity+json"}
        ) as response:
            return response.status == 200

    def page_path(self, object_id: str) -> str:
        """Where this instance shows an object: its own path, or /remote?id= for others'."""
        if object_id.startswith(self.base_url + "/"):
            return urlsplit(object_id).path
        return f"{REMOTE}?id={quote(object_id, safe='')}"

    def action_path(self, object_id: str, collection: str, action: str) -> str:
        """Where a form about an object posts (``/remote/...?id=`` for other instances')."""
        prefix = f"{self.base_url}/{collection}/"
        if object_id.startswith(prefix) and "/" not in object_id[len(prefix) :]:
            return f"/{collection}/{object_id[len(prefix) :]}/{action}"
        return f"{REMOTE}/{collection}/{action}?id={quote(object_id, safe='')}"


def anchor_of(object_id: str) -> str:
    """The anchor a thread page gives a comment: the last segment of its id."""
    return unquote(object_id.rstrip("/").rsplit("/", 1)[-1])


def _reason(status: int, text: str) -> str:
    found = _ALERT.search(text)
    if found is None:
        title = re.search(r"<h1>(.*?)</h1>", text, re.S)
        found_text = title.group(1) if title else text[:200]
    else:
        found_text = found.group(1)
    return f"HTTP {status}: " + " ".join(html.unescape(_TAG.sub(" ", found_text)).split())
