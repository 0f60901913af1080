"""``barri client`` against real instances over loopback (issue 5).

The command runs in a thread (as a person would run it) while the instances serve in the test's
loop; a browser session plays the resident on the consent page and follows the redirect to
the command's loopback listener. Then the command posts a proposal, supports it (plainly and
with a key only the client holds), lists the outbox, refreshes an expired token, logs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from federation.client import credentials as store
from federation.client import oauth as client_oauth
from federation.client.cli import main
from federation.instance.app import DB
from federation.instance.oauth import clients as server_clients
from tests.html_browser import Browser, log_in
from tests.instance_fixtures import count_rows
from tests.test_c2s import Net, net
from tests.test_instance_federation import of_type
from tests.test_oauth import start_client_app

__all__ = ["net"]  # the fixture, imported from test_c2s


class Watched(io.StringIO):
    """A text buffer the command's thread writes to; the test's loop is told of each write."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self.changed = asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self.loop.call_soon_threadsafe(self.changed.set)
        return written

    async def wait_for(self, pattern: str) -> re.Match[str]:
        """The first match of ``pattern`` in what was written, waiting for it if needed."""
        async with asyncio.timeout(30):
            while True:
                self.changed.clear()
                found = re.search(pattern, self.getvalue())
                if found is not None:
                    return found
                await self.changed.wait()


class Run:
    """One ``barri client`` run in a thread; its stdout and stderr as they are written."""

    def __init__(self, *argv: str) -> None:
        self.out, self.err = io.StringIO(), Watched()

        def go() -> int:
            with contextlib.redirect_stdout(self.out), contextlib.redirect_stderr(self.err):
                return main(list(argv))

        self.task = asyncio.ensure_future(asyncio.to_thread(go))

    async def done(self) -> tuple[int, str, str]:
        async with asyncio.timeout(60):
            code = await self.task
        return code, self.out.getvalue(), self.err.getvalue()


async def cli(*argv: str) -> tuple[int, str, str]:
    return await Run(*argv).done()


async def consent_in_browser(run: Run, base: str, username: str) -> None:
    """Read the address the command printed, consent as ``username``, follow the redirect."""
    found = await run.err.wait_for(r"(http://\S+/oauth/authorize\?\S+)")
    browser = Browser(base)
    try:
        await log_in(browser, username)
        page = await browser.get(found.group(1).removeprefix(base))
        response, _ = await browser.submit(page, "/oauth/authorize", {"decision": "allow"})
        async with browser.http.get(response.headers["Location"]) as redirected:
            assert redirected.status == 200  # the command's loopback listener answered
    finally:
        await browser.close()


def test_the_client_knows_the_servers_static_client() -> None:
    assert client_oauth.BARRI_CLI_PATH == server_clients.BARRI_CLI_PATH
    assert client_oauth.BARRI_CLI_PORTS == server_clients.BARRI_CLI_PORTS


async def test_login_post_support_sign_outbox_refresh_logout(net: Net, tmp_path: Path) -> None:
    a, c = net.gracia, net.city
    base = a.config.base_url
    creds = tmp_path / "barri" / "client.json"
    common = ("--credentials", str(creds))
    run = Run("login", "--server", base, "--self-hosted-metadata", "--no-browser", *common)
    await consent_in_browser(run, base, "ana")
    code, out, err = await run.done()
    assert code == 0, err
    assert out.strip() == f"logged in as {a.actor('ana')} (read write)"
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600
    saved = store.select(creds, None)
    assert saved.actor == a.actor("ana") and saved.outbox == a.actor("ana") + "/outbox"

    code, out, err = await cli(
        "post-proposal",
        "--process",
        net.process.id,
        "--title",
        "Fonts a la plaça",
        "--body",
        "Dues **fonts**.",
        *common,
    )
    assert code == 0, err
    proposal_id = out.strip().splitlines()[-1]
    await c.observer.wait(of_type("Create", object=proposal_id))
    assert (await c.deliberation.get_proposal(proposal_id)) is not None

    code, out, err = await cli("support", proposal_id, *common)
    assert code == 0, err
    like_id = out.strip()
    await c.observer.wait(of_type("Like", object=proposal_id))
    assert await c.deliberation.support_count(proposal_id) == 1
    code, out, err = await cli("outbox", "--json", *common)
    listed = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [item["id"] for item in listed][:1] == [like_id]  # private, still listed
    code, out, err = await cli("support", proposal_id, "--undo", *common)
    assert code == 0, err
    await c.observer.wait(of_type("Undo", actor=a.actor("ana")))
    assert await c.deliberation.support_count(proposal_id) == 0

    # An expired access token is refreshed (and the new tokens saved) before the call.
    old = store.select(creds, None)
    old.expires_at = 0
    store.save(creds, old)
    code, out, err = await cli("key", "create", "--name", "laptop", *common)
    assert code == 0, err
    assert out.strip() == a.actor("ana") + "#client-laptop"
    refreshed = store.select(creds, None)
    assert refreshed.refresh_token != old.refresh_token and refreshed.key_name == "laptop"
    key_file = store.key_path(creds, base, "laptop")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600

    code, out, err = await cli("support", proposal_id, "--sign", *common)
    assert code == 0, err
    signed_id = out.strip()
    record = await c.observer.wait(lambda activity: activity.get("id") == signed_id)
    assert record.auth == "proof"  # the city verified the client's own proof
    assert record.activity["proof"]["verificationMethod"] == a.actor("ana") + "#client-laptop"
    assert await c.deliberation.support_count(proposal_id) == 1
    code, out, err = await cli("support", proposal_id, "--undo", "--sign", *common)
    assert code == 0, err
    await c.observer.wait(of_type("Undo", object=record.activity["id"]))
    assert await c.deliberation.support_count(proposal_id) == 0

    token = store.select(creds, None).access_token
    code, out, err = await cli("logout", *common)
    assert code == 0 and store.load_all(creds) == {}
    async with net.http.get(
        a.actor("ana") + "/inbox", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 401


async def test_login_with_a_given_client_id_and_one_line_errors(
    net: Net, tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    a = net.gracia
    base = a.config.base_url
    creds = tmp_path / "client.json"
    port = unused_tcp_port_factory()  # where the command listens: the document names it
    client = await start_client_app(
        unused_tcp_port_factory(), redirect_uris=[f"http://127.0.0.1:{port}/callback"]
    )
    try:
        run = Run(
            "login",
            "--server",
            base,
            "--client-id",
            client.client_id,
            "--port",
            str(port),
            "--no-browser",
            "--scope",
            "read",
            "--credentials",
            str(creds),
        )
        await consent_in_browser(run, base, "pau")
        code, _, err = await run.done()
    finally:
        await client.server.close()
    assert code == 0, err
    assert store.select(creds, base).scope == "read"
    before = await count_rows(a.app[DB])
    # A read token may not support: the server's rule comes back as one line.
    code, _, err = await cli(
        "support", a.config.base_url + "/proposals/x", "--credentials", str(creds)
    )
    assert code == 1 and err.strip().startswith("barri: error: insufficient_scope:")
    assert "\n" not in err.strip() and await count_rows(a.app[DB]) == before
    code, _, err = await cli("outbox", "--credentials", str(tmp_path / "none.json"))
    assert code == 1 and err.startswith("barri: error: not_logged_in:")
    code, _, err = await cli("login", "--server", "http://127.0.0.1:1", "--credentials", str(creds))
    assert code == 1 and err.startswith("barri: error: network:")
