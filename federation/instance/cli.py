"""``barri admin``: an instance's accounts, verification, census, tokens and processes.

Hooked into ``barri`` by :func:`add_admin_commands`. Every action opens the instance its config
file describes (running its migrations), does one thing and closes it; processes created here
are delivered by ``barri serve``, which sends what waits in the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from federation.cli_support import CliError, Command, add_config_option, one_line
from federation.config import load_config
from federation.instance.ports import Role, TokenScope, User

if TYPE_CHECKING:
    from federation.instance.deliberation import Deliberation
    from federation.instance.wiring import Instance

AdminAction = Callable[["Instance", argparse.Namespace], Awaitable[int]]


def add_admin_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``barri admin create-user|verify|census|token|list-users|process …``."""
    admin = sub.add_parser("admin", help="manage accounts, verification, census and tokens")
    add_config_option(admin)
    cmds = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    create = cmds.add_parser("create-user", help="create an account")
    create.add_argument("username", help="lowercase letters, digits and _ (up to 30)")
    role = create.add_mutually_exclusive_group()
    role.add_argument(
        "--admin", action="store_true", help="an administrator (verifies, answers, runs processes)"
    )
    role.add_argument("--moderator", action="store_true", help="a moderator (verifies residents)")
    secret = create.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of asking twice",
    )
    secret.add_argument(
        "--no-password",
        action="store_true",
        help="no password: the account cannot sign in on the pages and acts only through"
        " personal tokens (token create), e.g. members imported for an app",
    )
    create.set_defaults(run=_admin(_create_user))
    verify = cmds.add_parser("verify", help="confirm a resident's residency by hand")
    verify.add_argument("username", help="the resident's account")
    verify.add_argument(
        "--territory", required=True, metavar="CODE", help="official code of where they live"
    )
    verify.set_defaults(run=_admin(_verify))
    census = cmds.add_parser("census", help="the census of identity numbers (stored hashed)")
    census_cmds = census.add_subparsers(dest="census_command", metavar="ACTION", required=True)
    imp = census_cmds.add_parser("import", help="import a CSV with id_number,territory")
    imp.add_argument("csv", type=Path, metavar="CSV", help="file with id_number,territory rows")
    imp.set_defaults(run=_admin(_census_import))
    claim = census_cmds.add_parser("claim", help="verify an account by its identity number")
    claim.add_argument("username", help="the account to verify")
    claim.add_argument("id_number", metavar="ID_NUMBER", help="their identity document number")
    claim.set_defaults(run=_admin(_census_claim))
    token = cmds.add_parser("token", help="personal access tokens")
    token_cmds = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create_token = token_cmds.add_parser("create", help="print a new token (last line)")
    create_token.add_argument("username", help="whose token it is")
    create_token.add_argument(
        "--scope",
        choices=[s.value for s in TokenScope],
        default="write",
        help="read: look only; write: also act (default)",
    )
    create_token.set_defaults(run=_admin(_token_create))
    cmds.add_parser("list-users", help="list accounts").set_defaults(run=_admin(_list_users))
    _add_process(cmds)


def _add_process(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    process = cmds.add_parser("process", help="participatory processes owned by the Group")
    actions = process.add_subparsers(dest="process_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create a process from its JSON form without ids (prints its IRI last)"
    )
    create.add_argument(
        "--file",
        type=Path,
        required=True,
        metavar="PROCESS.json",
        help="the process (see schemas/examples/process.json)",
    )
    create.set_defaults(run=_admin(_process_create))
    actions.add_parser("list", help="list known processes").set_defaults(run=_admin(_process_list))
    follow = actions.add_parser(
        "follow",
        help="join a process of another instance (the city's): cache it for residents and"
        " follow the Group that owns it (run it while `barri serve` runs)",
        description="Join a participatory process owned by another instance, such as the"
        " city's budget: this instance fetches and keeps it, so residents can propose, support"
        " and comment from here, and the association's Group follows the Group that owns it,"
        " whose news then arrives. Run it while `barri serve` runs: the server records the"
        " owner's acceptance.",
    )
    follow.add_argument("process", metavar="PROCESS_IRI", help="the process's id (its URL)")
    follow.set_defaults(run=_admin(_process_follow))


# --- accounts --------------------------------------------------------------------------------


def _admin(action: AdminAction) -> Command:
    """Wrap an admin action: load the config, open the instance (migrations), run it, close."""

    def run(args: argparse.Namespace) -> int:
        # Imported here, not at the top: every `barri` command would pay its memory and time.
        from federation.instance.wiring import open_instance

        config = load_config(args.config)

        async def go() -> int:
            async with open_instance(config) as instance:
                return await action(instance, args)

        return asyncio.run(go())

    return run


def _read_password(args: argparse.Namespace) -> str:
    from federation.instance.accounts import check_password

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    check_password(password)  # say so before asking a second time
    if getpass.getpass("Password (again): ") != password:
        raise CliError("the two passwords differ")
    return password


async def _create_user(instance: Instance, args: argparse.Namespace) -> int:
    role = Role.ADMIN if args.admin else Role.MODERATOR if args.moderator else Role.RESIDENT
    password = None if args.no_password else _read_password(args)
    user = await instance.accounts.create_user(args.username, password, role)
    actor_id = instance.actors.person_id(user.username)
    await instance.actors.keys_for(actor_id)  # keys at creation (DESIGN.md §5)
    print(f"created {user.role} {user.username}: {actor_id}")
    return 0


async def _verify(instance: Instance, args: argparse.Namespace) -> int:
    user = await instance.accounts.verify(args.username, args.territory, by="barri admin")
    print(f"verified {user.username} as a resident of {_territory(user)} (manual)")
    return 0


async def _census_import(instance: Instance, args: argparse.Namespace) -> int:
    from federation.instance.accounts import parse_census_csv

    try:
        with args.csv.open(encoding="utf-8-sig", newline="") as handle:
            parsed = parse_census_csv(handle)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise CliError(f"cannot read the census CSV {args.csv}: {reason}") from exc
    result = await instance.accounts.import_census(parsed.rows)
    skipped = len(parsed.skipped)
    lines = f" (lines {', '.join(map(str, parsed.skipped[:10]))})" if skipped else ""
    print(
        f"census: {len(parsed.rows)} rows read, {result.added} new, {result.updated} moved,"
        f" {result.unchanged} unchanged, {skipped} skipped{lines}; id numbers stored hashed only"
    )
    return 0


async def _census_claim(instance: Instance, args: argparse.Namespace) -> int:
    user = await instance.accounts.claim_census(args.username, args.id_number)
    print(f"verified {user.username} as a resident of {_territory(user)} (census)")
    return 0


async def _token_create(instance: Instance, args: argparse.Namespace) -> int:
    scope = TokenScope(args.scope)
    token = await instance.accounts.create_token(args.username, scope)
    print(f"personal access token for {args.username} ({scope}); it is shown only once:")
    print(token)
    return 0


async def _list_users(instance: Instance, args: argparse.Namespace) -> int:
    rows = [("USERNAME", "ROLE", "VERIFIED TERRITORY")]
    rows += [(u.username, str(u.role), _territory(u)) for u in await instance.accounts.list_users()]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, role, territory in rows:
        print(f"{name:<{widths[0]}}  {role:<{widths[1]}}  {territory}")
    return 0


def _territory(user: User) -> str:
    return user.verification.territory if user.verification else "-"


# --- processes -------------------------------------------------------------------------------

#: Who acts for `barri admin process`: the operator, with the config file's authority.
_OPERATOR = User(0, "barri-admin", None, "", Role.ADMIN, 0.0)


def _deliberation(instance: Instance) -> Deliberation:
    """The service without the network: deliveries wait in the queue for `barri serve`."""
    from federation.instance.deliberation import Deliberation
    from federation.instance.outbox import Publisher

    publisher = Publisher(instance.db, instance.actors, instance.config)
    return Deliberation(instance.db, instance.actors, instance.config, publisher)


def _read_process_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise CliError(f"cannot read the process file {path}: {reason}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise CliError(f"{path}: not valid JSON ({exc.msg} at {where})") from exc


async def _process_create(instance: Instance, args: argparse.Namespace) -> int:
    from activitypub.errors import Problem
    from federation.instance.rules import RuleViolation

    draft = _read_process_file(args.file)
    try:
        process = await _deliberation(instance).create_process(draft, by=_OPERATOR)
    except Problem as exc:
        raise CliError(f"{args.file}: {exc.detail or exc.title}") from exc
    except RuleViolation as exc:
        raise CliError(f"{args.file}: {exc.detail}") from exc
    phases = ", ".join(phase.name.default for phase in process.phases)
    print(f"created process {process.name.default!r} owned by {process.owner} (phases: {phases})")
    print(process.id)
    return 0


async def _process_list(instance: Instance, args: argparse.Namespace) -> int:
    service = _deliberation(instance)
    rows = [("IRI", "OWNER", "PROPOSALS", "NAME")]
    for process in await service.list_processes():
        owner = "local" if process.owner == instance.actors.group_id else process.owner
        proposals = await service.proposals.count_proposals(process.id)
        rows.append((process.id, owner, str(proposals), process.name.default))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for iri, owner, shown, name in rows:
        print(f"{iri:<{widths[0]}}  {owner:<{widths[1]}}  {shown:>{widths[2]}}  {name}")
    return 0


async def _process_follow(instance: Instance, args: argparse.Namespace) -> int:
    from activitypub.errors import Problem
    from federation.instance.rules import RuleViolation
    from federation.joining import follow_process

    try:
        joined = await follow_process(instance, args.process)
    except (Problem, RuleViolation) as exc:
        raise CliError(f"cannot follow {args.process}: {one_line(str(exc.detail))}") from exc
    name, owner = joined.process.name.default, joined.process.owner
    if joined.state == "local":
        print(f"{name!r} is this instance's own process; nothing to follow")
    elif joined.state == "accepted":
        print(f"joined {name!r}: residents can take part; following {owner} (accepted)")
    else:
        print(f"joined {name!r}; the Follow of {owner} awaits its Accept (the server records it)")
    return 0
