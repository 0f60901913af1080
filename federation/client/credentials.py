"""Where ``barri client`` keeps its tokens: one JSON file, readable by its owner only.

The file maps each server (its issuer URL) to a :class:`Credentials` record. It is written
atomically (a temporary file renamed over it) with mode 0600, since it holds bearer tokens.
Its default place is ``$BARRI_CLIENT_CREDENTIALS``, else ``$XDG_CONFIG_HOME/barri/client.json``
(``~/.config/barri/client.json``). Client-held private keys live beside it, one PEM per key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


class ClientError(Exception):
    """A client command failed; ``reason`` names the rule (the server's, when it refused)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Credentials:
    """A login at one server: its endpoints, the resident's actor and the current tokens."""

    server: str
    client_id: str
    token_endpoint: str
    revocation_endpoint: str | None
    actor: str
    outbox: str
    access_token: str
    refresh_token: str
    expires_at: float
    scope: str
    key_name: str | None = None


def default_path(environ: Mapping[str, str] | None = None) -> Path:
    """The credentials file: $BARRI_CLIENT_CREDENTIALS or the XDG config folder's barri/."""
    env = os.environ if environ is None else environ
    if env.get("BARRI_CLIENT_CREDENTIALS"):
        return Path(env["BARRI_CLIENT_CREDENTIALS"])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "barri" / "client.json"


def _record(value: Any) -> Credentials:
    names = {f.name for f in fields(Credentials)}
    if not isinstance(value, dict) or not {"server", "access_token"} <= set(value):
        raise ClientError("credentials_invalid", "the credentials file is not barri client's")
    return Credentials(**{k: v for k, v in value.items() if k in names})


def load_all(path: Path) -> dict[str, Credentials]:
    """Every saved login, by server; an absent file is no login."""
    try:
        raw = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ClientError("credentials_invalid", f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ClientError("credentials_invalid", f"{path} is not a JSON object")
    return {server: _record(value) for server, value in raw.items()}


def select(path: Path, server: str | None) -> Credentials:
    """The login for ``server``, or the only one saved when ``server`` is None."""
    saved = load_all(path)
    if server is not None:
        found = saved.get(server.rstrip("/"))
        if found is None:
            raise ClientError("not_logged_in", f"run: barri client login --server {server}")
        return found
    if len(saved) != 1:
        raise ClientError(
            "not_logged_in", "log in first (barri client login --server URL), or name --server"
        )
    return next(iter(saved.values()))


def save(path: Path, credentials: Credentials) -> None:
    """Add or replace one login; the file is rewritten atomically with mode 0600."""
    saved = {server: asdict(c) for server, c in load_all(path).items()}
    saved[credentials.server] = asdict(credentials)
    write_private(path, json.dumps(saved, indent=2, sort_keys=True).encode("utf-8"))


def forget(path: Path, server: str) -> None:
    """Remove one login from the file."""
    saved = {s: asdict(c) for s, c in load_all(path).items() if s != server}
    write_private(path, json.dumps(saved, indent=2, sort_keys=True).encode("utf-8"))


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def key_path(credentials_path: Path, server: str, name: str) -> Path:
    """Where a client-held private key is kept (PKCS#8 PEM, mode 0600)."""
    host = server.split("://", 1)[-1].replace(":", "_").replace("/", "_")
    return credentials_path.parent / "keys" / f"{host}-{name}.pem"
