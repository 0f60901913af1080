"""Server configuration: one TOML file per server, overridden by ``BARRI_*`` variables (§8).

:func:`load_config` reads ``barri.toml`` into an :class:`InstanceConfig`; anything wrong raises
:class:`ConfigError`, whose message is one line naming the file, the key and the problem.
:func:`render_instance_config` writes the commented template that ``barri init instance`` saves.

Every key of the file can be overridden by an environment variable ``BARRI_<KEY>`` (the key in
upper case): ``BARRI_BASE_URL``, ``BARRI_NAME``, ``BARRI_GROUP``, ``BARRI_TERRITORY``,
``BARRI_TERRITORY_KIND``, ``BARRI_DISTRICT``, ``BARRI_DATA_DIR``, ``BARRI_DATABASE``,
``BARRI_LISTEN``, ``BARRI_ALLOW_LOOPBACK`` (true/false, yes/no, 1/0), ``BARRI_REPORT_TO`` and
``BARRI_LANGUAGES`` (lists separated by commas or spaces), ``BARRI_EDIT_WINDOW_MINUTES`` and
``BARRI_SECRET``. ``kind`` cannot be overridden. An empty variable counts as unset.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from activitypub.origin import OriginError, origin_of

CONFIG_FILE = "barri.toml"
DEFAULT_DATABASE = "barri.sqlite3"
DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_LANGUAGES = ("ca", "es", "en")
DEFAULT_EDIT_WINDOW_MINUTES = 5  # Decidim's default proposal edit window
TERRITORY_KINDS = ("neighbourhood", "district", "city")
MIN_SECRET_LENGTH = 32

SLUG = re.compile(r"^[a-z0-9_]{1,30}$")
TERRITORY_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")

KEYS = (
    "kind",
    "base_url",
    "name",
    "group",
    "territory",
    "territory_kind",
    "district",
    "data_dir",
    "database",
    "listen",
    "allow_loopback",
    "report_to",
    "edit_window_minutes",
    "languages",
    "secret",
)
_LIST_KEYS = ("report_to", "languages")


class ConfigError(Exception):
    """A configuration problem, as one line: ``FILE: KEY: problem``."""

    def __init__(
        self, path: str | Path, key: str | None, problem: str, *, env: str | None = None
    ) -> None:
        where = key if env is None or key is None else f"{key} (set by {env})"
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")
        self.path, self.key, self.problem, self.env = Path(path), key, problem, env


@dataclass(frozen=True)
class InstanceConfig:
    """A neighbourhood instance's settings, validated (DESIGN.md §3, §6, §8)."""

    base_url: str
    name: str
    group: str
    territory: str | None
    territory_kind: str
    district: str | None
    data_dir: Path
    database: Path
    listen_host: str
    listen_port: int
    allow_loopback: bool
    report_to: tuple[str, ...]
    edit_window_minutes: int
    languages: tuple[str, ...]
    secret: str = field(repr=False)
    kind: str = "instance"

    @property
    def host(self) -> str:
        """The authority of ``base_url`` (host, and port when not the default)."""
        return self.base_url.split("://", 1)[1]

    @property
    def hostname(self) -> str:
        """The host name of ``base_url`` without the port."""
        return origin_of(self.base_url).host


def slugify(name: str) -> str:
    """A Group slug (``[a-z0-9_]{1,30}``) from a display name, ``association`` if none is left."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:30].rstrip("_")
    return slug or "association"


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> InstanceConfig:
    """Read and validate a server's TOML file, then apply ``BARRI_*`` overrides (DESIGN.md §8)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path, None, "no such file (write one with `barri init instance`)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, None, "is not UTF-8 text") from None
    return parse_config(text, path, environ=os.environ if environ is None else environ)


def parse_config(
    text: str, path: str | Path, *, environ: Mapping[str, str] | None = None
) -> InstanceConfig:
    """Validate TOML text as an instance config; relative paths are taken from ``path``'s folder."""
    path = Path(path)
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML ({exc})") from None
    for key in raw:
        if key not in KEYS:
            raise ConfigError(path, key, f"unknown key (known keys: {', '.join(KEYS)})")
    sources = _apply_environment(raw, environ or {})
    return _Builder(raw, path, sources).build()


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Replace keys set by non-empty ``BARRI_<KEY>`` variables; returns key -> variable name."""
    sources: dict[str, str] = {}
    for key in KEYS[1:]:
        variable = f"BARRI_{key.upper()}"
        value = environ.get(variable, "").strip()
        if not value:
            continue
        raw[key] = re.split(r"[\s,]+", value) if key in _LIST_KEYS else value
        sources[key] = variable
    return sources


class _Builder:
    """Reads each key with its check, turning a ValueError into a ConfigError naming the key."""

    def __init__(self, raw: Mapping[str, Any], path: Path, sources: Mapping[str, str]) -> None:
        self.raw, self.path, self.sources = raw, path, sources

    def get(self, key: str, check: Callable[[Any], Any], default: Any = ...) -> Any:
        if key not in self.raw:
            if default is ...:
                raise ConfigError(self.path, key, "is required")
            return default
        try:
            return check(self.raw[key])
        except ValueError as exc:
            raise ConfigError(self.path, key, str(exc), env=self.sources.get(key)) from None

    def build(self) -> InstanceConfig:
        self.get("kind", _check_kind)
        loopback = self.get("allow_loopback", _boolean, False)
        name = self.get("name", _name)
        data_dir = self.get("data_dir", self._directory, self.path.parent)
        host, port = self.get("listen", _listen, _listen(DEFAULT_LISTEN))
        territory_kind = self.get("territory_kind", _territory_kind, "neighbourhood")
        if territory_kind != "neighbourhood" and self.raw.get("district"):
            # The vocabulary's rule: only a neighbourhood lies in a district.
            self.get("district", lambda _: _fail("is only for a neighbourhood's district"))
        return InstanceConfig(
            base_url=self.get("base_url", lambda v: check_base_url(v, allow_loopback=loopback)),
            name=name,
            group=self.get("group", _slug, slugify(name)),
            territory=self.get("territory", _territory_code, None),
            territory_kind=territory_kind,
            district=self.get("district", _territory_code, None),
            data_dir=data_dir,
            database=data_dir / self.get("database", _relative_file, Path(DEFAULT_DATABASE)),
            listen_host=host,
            listen_port=port,
            allow_loopback=loopback,
            report_to=self.get("report_to", lambda v: _actor_ids(v, loopback), ()),
            edit_window_minutes=self.get(
                "edit_window_minutes", _minutes, DEFAULT_EDIT_WINDOW_MINUTES
            ),
            languages=self.get("languages", _languages, DEFAULT_LANGUAGES),
            secret=self.get("secret", _secret),
        )

    def _directory(self, value: Any) -> Path:
        directory = Path(_text(value))
        return directory if directory.is_absolute() else self.path.parent / directory


def check_base_url(value: Any, *, allow_loopback: bool) -> str:
    """The normalised origin every id starts with: https, or http only with ``allow_loopback``."""
    text = _text(value)
    try:
        origin = origin_of(text)
    except OriginError:
        raise ValueError(f"{text!r} is not an absolute http(s) URL") from None
    parts = urlsplit(text)
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r} must be an origin only (scheme://host[:port]), no path")
    if origin.scheme != "https" and not allow_loopback:
        raise ValueError(f"{text!r} is not https; plain http needs allow_loopback = true")
    return str(origin)


def _fail(problem: str) -> Any:
    raise ValueError(problem)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _check_kind(value: Any) -> str:
    if value != "instance":
        raise ValueError(f'this server reads kind = "instance" files, not {value!r}')
    return "instance"


def _name(value: Any) -> str:
    text = _text(value)
    if len(text) > 100 or any(unicodedata.category(c) == "Cc" for c in text):
        raise ValueError("must be at most 100 characters, without control characters")
    return text


def _slug(value: Any) -> str:
    text = _text(value)
    if not SLUG.match(text):
        raise ValueError(f"{text!r} must be 1-30 of a-z, 0-9 and _")
    return text


def _territory_code(value: Any) -> str:
    text = _text(value)
    if not TERRITORY_CODE.match(text):
        raise ValueError(f"{text!r} is not a territory code (letters, digits, _ . : -; <= 64)")
    return text


def _territory_kind(value: Any) -> str:
    if value not in TERRITORY_KINDS:
        raise ValueError(f"must be one of {', '.join(TERRITORY_KINDS)}, not {value!r}")
    return str(value)


def _relative_file(value: Any) -> Path:
    return Path(_text(value))


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"must be true or false, not {value!r}")


def _listen(value: Any) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) into host and port."""
    text = _text(value)
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} must be HOST:PORT with a port from 1 to 65535")
    return host, int(port)


def _actor_ids(value: Any, allow_loopback: bool) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of aggregator actor ids")
    ids = []
    for item in value:
        text = _text(item)
        try:
            origin = origin_of(text)
        except OriginError:
            raise ValueError(f"{text!r} is not an absolute http(s) actor id") from None
        # The same rule as base_url: plain http only where loopback is allowed (tests, demos).
        if "#" in text or (origin.scheme != "https" and not allow_loopback):
            raise ValueError(f"{text!r} must be an https actor id without a fragment")
        ids.append(text)
    return tuple(dict.fromkeys(ids))


def _minutes(value: Any) -> int:
    number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 10080:
        raise ValueError(f"must be a whole number of minutes from 0 to 10080, not {value!r}")
    return number


def _languages(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError('must be a non-empty list of language tags such as "ca"')
    tags = [_text(tag) for tag in value]
    bad = [tag for tag in tags if not _LANGUAGE.match(tag)]
    if bad:
        raise ValueError(f'{bad[0]!r} is not a language tag such as "ca" or "pt-BR"')
    return tuple(dict.fromkeys(tags))


def _secret(value: Any) -> str:
    text = _text(value)
    if len(text) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"must be at least {MIN_SECRET_LENGTH} characters (keep the generated one)"
        )
    return text


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


def _toml(value: str) -> str:
    # A JSON string with raw non-ASCII is a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=False)


def _optional(key: str, value: str | None, example: str) -> str:
    return f"{key} = {_toml(value)}" if value else f"# {key} = {_toml(example)}"


def render_instance_config(options: InitOptions) -> str:
    """The commented ``barri.toml`` of a new instance (every key explained)."""
    o = options
    report_to = ", ".join(_toml(actor) for actor in o.report_to)
    languages = ", ".join(_toml(tag) for tag in DEFAULT_LANGUAGES)
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
base_url = {_toml(o.base_url)}

# The association's display name, shown on pages and as the name of its Group actor.
name = {_toml(o.name)}

# The Group actor's handle: {{base_url}}/groups/<group> and @<group>@host (a-z, 0-9, _).
# Like base_url it is part of published ids: do not change it after federating.
group = {_toml(o.group or slugify(o.name))}

# The territory this instance serves, with the city's official codes. territory_kind is
# neighbourhood, district or city; district is the code of the district a neighbourhood is in.
{_optional("territory", o.territory, "08019-73")}
territory_kind = {_toml(o.territory_kind)}
{_optional("district", o.district, "08019-10")}

# Where the data lives: data_dir (relative to this file) holds the SQLite database, whose file
# name is `database`. Back it up while the server runs:
# `barri backup --config <this file> --to DIR`.
data_dir = "."
database = {_toml(DEFAULT_DATABASE)}

# Address and port the HTTP server listens on (put a TLS reverse proxy in front of it).
listen = {_toml(o.listen)}

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

# The key of the census hashes (HMAC-SHA256 of identity numbers). Keep it secret and never
# change it: the census stored so far would no longer match. Generated randomly.
secret = {_toml(o.secret)}
"""


def write_instance_config(
    directory: str | Path, options: InitOptions, *, force: bool = False
) -> Path:
    """Create ``directory`` and write its ``barri.toml`` (mode 0600); checked before writing."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    text = render_instance_config(options)
    config = parse_config(text, path, environ={})  # a bad option fails here, naming its key
    if config.base_url != options.base_url:
        # Write the normalised origin (no trailing slash, lowercase host), as ids will use it.
        text = render_instance_config(replace(options, base_url=config.base_url))
    if path.exists() and not force:
        raise ConfigError(path, None, "already exists (use --force to overwrite it)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
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
