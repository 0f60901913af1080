"""``barri client``: log in to an instance with OAuth, post a proposal, support, list the outbox.

A small C2S client and the reference for client developers (see :mod:`.oauth` for the login
flow and :mod:`.api` for the calls). Hooked into ``barri`` by :func:`add_client_commands`.
Every failure is one ``barri: error: <rule>: <detail>`` line and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import webbrowser
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from federation.client import credentials as store
from federation.client.credentials import ClientError, Credentials

if TYPE_CHECKING:
    import aiohttp
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from federation.client.api import C2SClient

Command = Callable[[argparse.Namespace], int]
Action = Callable[[argparse.Namespace, "aiohttp.ClientSession"], Awaitable[int]]


def _common(parser: argparse.ArgumentParser, *, server_required: bool = False) -> None:
    parser.add_argument(
        "--server",
        required=server_required,
        metavar="URL",
        help="the instance (default: the only one logged in)",
    )
    parser.add_argument(
        "--credentials",
        type=Path,
        default=None,
        metavar="FILE",
        help="the tokens file (default: ~/.config/barri/client.json)",
    )


def add_client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``barri client login|logout|post-proposal|support|outbox|key`` to ``barri``."""
    client = sub.add_parser("client", help="a C2S client: log in with OAuth, post, support")
    cmds = client.add_subparsers(dest="client_command", metavar="ACTION", required=True)
    p = cmds.add_parser("login", help="log in with OAuth 2.0 (PKCE, loopback redirect)")
    _common(p, server_required=True)
    who = p.add_mutually_exclusive_group()
    who.add_argument(
        "--client-id", metavar="URL", help="a client_id URL whose metadata lists the redirect"
    )
    who.add_argument(
        "--self-hosted-metadata",
        action="store_true",
        help="serve the client's metadata from the loopback listener (dev servers)",
    )
    p.add_argument("--port", type=int, metavar="N", help="the loopback port to listen on")
    p.add_argument("--scope", default="read write", help='scopes (default: "read write")')
    p.add_argument("--no-browser", action="store_true", help="only print the address to open")
    p.set_defaults(run=_command(_login))
    p = cmds.add_parser("logout", help="revoke the tokens and forget them")
    _common(p)
    p.set_defaults(run=_command(_logout))
    p = cmds.add_parser("post-proposal", help="propose in a process (prints the proposal's IRI)")
    _common(p)
    p.add_argument("--process", required=True, metavar="IRI", help="the process's IRI")
    p.add_argument("--title", required=True)
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", help="the proposal's text (markdown)")
    body.add_argument("--body-file", type=Path, metavar="FILE", help="read the text from FILE")
    p.set_defaults(run=_command(_post_proposal))
    p = cmds.add_parser("support", help="support a proposal (prints the support's IRI)")
    _common(p)
    p.add_argument("proposal", metavar="PROPOSAL_IRI")
    p.add_argument("--undo", action="store_true", help="withdraw your support instead")
    p.add_argument("--sign", action="store_true", help="sign it with your client key (key create)")
    p.set_defaults(run=_command(_support))
    p = cmds.add_parser("outbox", help="list your outbox, private items included")
    _common(p)
    p.add_argument("--limit", type=int, default=20, metavar="N")
    p.add_argument("--json", action="store_true", help="one JSON activity per line")
    p.set_defaults(run=_command(_outbox))
    key = cmds.add_parser("key", help="a signing key only this client holds")
    key_cmds = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    p = key_cmds.add_parser("create", help="generate an Ed25519 key and register its public half")
    _common(p)
    p.add_argument("--name", default="cli", help="the key's name (default: cli)")
    p.set_defaults(run=_command(_key_create))


def _command(action: Action) -> Command:
    """Run an async action with one HTTP session; errors become one line and status 1."""

    def run(args: argparse.Namespace) -> int:
        # Imported here, not at the top: every `barri` command would pay its memory and time.
        import aiohttp

        async def go() -> int:
            async with aiohttp.ClientSession() as session:
                return await action(args, session)

        try:
            return asyncio.run(go())
        except ClientError as exc:
            print(f"barri: error: {exc.reason}: {' '.join(exc.detail.split())}", file=sys.stderr)
        except (aiohttp.ClientError, TimeoutError) as exc:
            print(f"barri: error: network: {type(exc).__name__}: {exc}", file=sys.stderr)
        except OSError as exc:
            print(f"barri: error: {exc}", file=sys.stderr)
        return 1

    return run


def _path(args: argparse.Namespace) -> Path:
    return args.credentials or store.default_path()


def _client(args: argparse.Namespace, session: aiohttp.ClientSession) -> C2SClient:
    from federation.client.api import C2SClient

    path = _path(args)
    credentials = store.select(path, args.server)
    return C2SClient(session, credentials, functools.partial(store.save, path))


async def _open_in_browser(url: str, *, launch: bool) -> None:
    print(f"Open this address in your browser to log in:\n  {url}", file=sys.stderr, flush=True)
    if launch:
        await asyncio.to_thread(webbrowser.open, url)


async def _login(args: argparse.Namespace, session: aiohttp.ClientSession) -> int:
    from federation.client.oauth import LoginOptions, login

    options = LoginOptions(
        client_id=args.client_id,
        self_hosted=args.self_hosted_metadata,
        port=args.port,
        scope=args.scope,
    )
    opener = functools.partial(_open_in_browser, launch=not args.no_browser)
    credentials = await login(session, args.server, opener, options)
    store.save(_path(args), credentials)
    print(f"logged in as {credentials.actor} ({credentials.scope})")
    return 0


async def _logout(args: argparse.Namespace, session: aiohttp.ClientSession) -> int:
    from federation.client.oauth import revoke

    client = _client(args, session)
    await revoke(session, client.credentials)
    store.forget(_path(args), client.credentials.server)
    print(f"logged out of {client.credentials.server}")
    return 0


async def _post_proposal(args: argparse.Namespace, session: aiohttp.ClientSession) -> int:
    text = args.body if args.body is not None else args.body_file.read_text("utf-8")
    proposal = {
        "type": ["Page", "Proposal"],
        "process": args.process,
        "name": args.title,
        "source": {"content": text, "mediaType": "text/markdown"},
    }
    stored = await _client(args, session).post({"type": "Create", "object": proposal})
    print(stored["object"]["id"])
    return 0


def _load_key(args: argparse.Namespace, credentials: Credentials) -> tuple[Ed25519PrivateKey, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from activitypub.keys import private_key_from_pem

    if credentials.key_name is None:
        raise ClientError("no_client_key", "create one first: barri client key create")
    path = store.key_path(_path(args), credentials.server, credentials.key_name)
    key = private_key_from_pem(path.read_text("ascii"))
    if not isinstance(key, Ed25519PrivateKey):
        raise ClientError("bad_client_key", f"{path} is not an Ed25519 private key")
    return key, f"{credentials.actor}#client-{credentials.key_name}"


async def _active_like(client: C2SClient, proposal: str) -> str:
    """The id of one's active support of ``proposal``, read from one's own outbox."""
    items = await client.outbox(500)
    undone = {_object_id(item) for item in items if item.get("type") == "Undo"}
    for item in items:
        if (
            item.get("type") == "Like"
            and item.get("object") == proposal
            and item["id"] not in undone
        ):
            return str(item["id"])
    raise ClientError("no_support_to_withdraw", f"your outbox has no support of {proposal}")


def _object_id(activity: dict[str, Any]) -> str | None:
    target = activity.get("object")
    return target.get("id") if isinstance(target, dict) else target


async def _support(args: argparse.Namespace, session: aiohttp.ClientSession) -> int:
    from federation.client.api import signed_support, signed_undo

    client = _client(args, session)
    if not args.sign:
        target = await _active_like(client, args.proposal) if args.undo else args.proposal
        stored = await client.post({"type": "Undo" if args.undo else "Like", "object": target})
        print(stored["id"])
        return 0
    key, key_id = _load_key(args, client.credentials)
    audience = await client.support_target(args.proposal)
    if args.undo:
        like_id = await _active_like(client, args.proposal)
        activity = signed_undo(client.credentials, like_id, audience, key, key_id)
    else:
        activity = signed_support(client.credentials, args.proposal, audience, key, key_id)
    stored = await client.post(activity)
    print(stored["id"])
    return 0


async def _outbox(args: argparse.Namespace, session: aiohttp.ClientSession) -> int:
    for item in await _client(args, session).outbox(args.limit):
        if args.json:
            print(json.dumps(item, ensure_ascii=False))
        else:
            print(f"{item.get('published', '')}  {item.get('type')}  {_object_id(item)}")
    return 0


async def _key_create(args: argparse.Namespace, session: aiohttp.ClientSession) -> int:
    from activitypub.keys import generate_ed25519, multikey_encode, private_key_to_pem

    client = _client(args, session)
    key = generate_ed25519()
    path = store.key_path(_path(args), client.credentials.server, args.name)
    if path.exists():
        raise ClientError("key_exists", f"{path} exists already; choose another --name")
    registered = await client.register_key(args.name, multikey_encode(key.public_key()))
    store.write_private(path, private_key_to_pem(key).encode("ascii"))
    client.credentials.key_name = args.name
    store.save(_path(args), client.credentials)
    print(registered["id"])
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``barri client …`` on its own (``python -m federation.client login …``)."""
    parser = argparse.ArgumentParser(prog="barri", description="Barri's C2S client.")
    add_client_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(["client", *(sys.argv[1:] if argv is None else argv)])
    run: Command = args.run
    return run(args)
