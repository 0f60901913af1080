"""Writing a new ``barri.toml`` (DESIGN.md §8): ``barri init instance``, and what others share.

:func:`write_instance_config` saves the commented template :func:`render_instance_config` fills
in, after reading it back with :func:`federation.config.parse_config`, so a bad option fails
naming its key and nothing is written. :func:`toml_string` and :func:`save_config` (mode 0600,
never over an existing file unless forced) also write the aggregator's template.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from federation.config import (
    DEFAULT_EDIT_WINDOW_MINUTES,
    DEFAULT_LANGUAGES,
    InstanceConfig,
    parse_config,
    slugify,
)
from federation.config_values import (
    CONFIG_FILE,
    DEFAULT_DATABASE,
    DEFAULT_DELIVERY_CONCURRENCY,
    DEFAULT_LISTEN,
    ConfigError,
)


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    # A JSON string with raw non-ASCII is a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=False)


def save_config(path: Path, text: str, *, force: bool) -> Path:
    """Write ``text`` to ``path`` (mode 0600), making its folder; replaces a file only if forced."""
    if path.exists() and not force:
        raise ConfigError(path, None, "already exists (use --force to overwrite it)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)  # also when --force rewrote an older, wider file
            out.write(text)
    except FileExistsError:
        raise ConfigError(path, None, "already exists (use --force to overwrite it)") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot write it: {exc.strerror}") from None
    return path


class _Options(Protocol):
    """What a config's init options are: a dataclass with the base URL its config normalises."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def base_url(self) -> str: ...


_O = TypeVar("_O", bound=_Options)


def write_checked(
    directory: str | Path,
    options: _O,
    render: Callable[[_O], str],
    check: Callable[[str, Path], _Options],
    *,
    force: bool,
) -> Path:
    """Render ``options`` into ``directory``'s ``barri.toml`` (mode 0600), checked by parsing
    the text first: a bad option fails there, naming its key."""
    path = Path(directory) / CONFIG_FILE
    text = render(options)
    config = check(text, path)
    if config.base_url != options.base_url:
        # Write the normalised origin (no trailing slash, lowercase host), as ids will use it.
        text = render(replace(options, base_url=config.base_url))
    return save_config(path, text, force=force)


@dataclass(frozen=True)
class InitOptions:
    """What ``barri init instance`` puts into a new ``barri.toml``."""

    base_url: str
    name: str
    secret: str = field(repr=False)
    group: str | None = None
    territory: str | None = None
    territory_kind: str = "neighbourhood"
    district: str | None = None
    report_to: tuple[str, ...] = ()
    allow_loopback: bool = False
    listen: str = DEFAULT_LISTEN


def _optional(key: str, value: str | None, example: str) -> str:
    return f"{key} = {toml_string(value)}" if value else f"# {key} = {toml_string(example)}"


def render_instance_config(options: InitOptions) -> str:
    """The commented ``barri.toml`` of a new instance (every key explained)."""
    o = options
    report_to = ", ".join(toml_string(actor) for actor in o.report_to)
    languages = ", ".join(toml_string(tag) for tag in DEFAULT_LANGUAGES)
    return f"""\
# Barri neighbourhood instance: configuration.
# Written by `barri init instance`; edit freely, then restart `barri serve --config <this file>`.
# Any key can also be set by an environment variable BARRI_<KEY> (for example BARRI_LISTEN),
# which wins over this file.

# What this file configures. Must stay "instance".
kind = "instance"

# The public origin of this instance: scheme://host[:port], no path. Every id published here
# (actors, proposals, votes) starts with it, so NEVER change it once the instance federates.
# Must be https; plain http is accepted only when allow_loopback = true (tests and demos).
base_url = {toml_string(o.base_url)}

# The association's display name, shown on pages and as the name of its Group actor.
name = {toml_string(o.name)}

# The Group actor's handle: {{base_url}}/groups/<group> and @<group>@host (a-z, 0-9, _).
# Like base_url it is part of published ids: do not change it after federating.
group = {toml_string(o.group or slugify(o.name))}

# The territory this instance serves, with the city's official codes. territory_kind is
# neighbourhood, district or city; district is the code of the district a neighbourhood is in.
{_optional("territory", o.territory, "08019-73")}
territory_kind = {toml_string(o.territory_kind)}
{_optional("district", o.district, "08019-10")}

# Where the data lives: data_dir (relative to this file) holds the SQLite database, whose file
# name is `database`. Back it up while the server runs:
# `barri backup --config <this file> --to DIR`.
data_dir = "."
database = {toml_string(DEFAULT_DATABASE)}

# Address and port the HTTP server listens on (put a TLS reverse proxy in front of it).
listen = {toml_string(o.listen)}

# Allow plain http, and outgoing requests to loopback addresses (127.0.0.0/8, ::1; private
# ranges stay refused). Only for tests, demos and benchmarks on one machine: never on a
# public server.
allow_loopback = {"true" if o.allow_loopback else "false"}

# The actor ids of the aggregator(s) this instance reports to (the city). They may follow the
# instance and receive residents' supports, which are never public. Example:
# report_to = ["https://participa.example.city/actor"]
report_to = [{report_to}]

# Minutes during which an author may still edit a new proposal (Decidim's default is 5).
edit_window_minutes = {DEFAULT_EDIT_WINDOW_MINUTES}

# Languages offered to residents, first one the default.
languages = [{languages}]

# Deliveries sent at once (1-1024), each host getting at most 2 of them, so a slow or
# unreachable follower never holds up the others. Raise it when the Group has many follower
# servers: one with 70 of them wants about 150.
delivery_concurrency = {DEFAULT_DELIVERY_CONCURRENCY}

# The key of the census hashes (HMAC-SHA256 of identity numbers). Keep it secret and never
# change it: the census stored so far would no longer match. Generated randomly.
secret = {toml_string(o.secret)}
"""


def write_instance_config(
    directory: str | Path, options: InitOptions, *, force: bool = False
) -> Path:
    """Create ``directory`` and write its ``barri.toml`` (mode 0600); checked before writing."""

    def check(text: str, path: Path) -> InstanceConfig:
        return parse_config(text, path, environ={})

    return write_checked(directory, options, render_instance_config, check, force=force)
