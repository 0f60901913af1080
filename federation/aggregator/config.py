"""The aggregator's ``barri.toml`` (DESIGN.md §7, §8): ``kind = "aggregator"``, validated.

Same conventions as :mod:`federation.config` (whose checks it reuses): one-line
:class:`~federation.config.ConfigError` naming the file and key, ``BARRI_<KEY>`` variables
overriding the file (``kind`` excepted), a commented template written 0600 by
``barri init aggregator``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from activitypub.origin import origin_of
from federation.config import (
    CONFIG_FILE,
    DEFAULT_DATABASE,
    DEFAULT_LISTEN,
    ConfigError,
    _boolean,
    _Builder,
    _listen,
    _name,
    _relative_file,
    _territory_code,
    check_base_url,
)

KIND = "aggregator"
DEFAULT_CITY = "08019"  # Barcelona's INE code (vocab-spec)
DEFAULT_GRACE_MINUTES = 60
DEFAULT_REFRESH_MINUTES = 60
DEFAULT_BACKFILL_MINUTES = 60
DEFAULT_DEBOUNCE_SECONDS = 30.0

KEYS = (
    "kind",
    "base_url",
    "name",
    "city",
    "city_name",
    "data_dir",
    "database",
    "listen",
    "allow_loopback",
    "grace_minutes",
    "refresh_minutes",
    "backfill_minutes",
    "tally_debounce_seconds",
)


@dataclass(frozen=True)
class AggregatorConfig:
    """The city aggregator's settings, validated (DESIGN.md §3, §7, §8)."""

    base_url: str
    name: str
    city: str
    city_name: str | None
    data_dir: Path
    database: Path
    listen_host: str
    listen_port: int
    allow_loopback: bool
    grace_minutes: int
    refresh_minutes: int
    backfill_minutes: int = DEFAULT_BACKFILL_MINUTES
    tally_debounce_seconds: float = DEFAULT_DEBOUNCE_SECONDS
    kind: str = KIND

    @property
    def host(self) -> str:
        """The authority of ``base_url`` (host, and port when not the default)."""
        return self.base_url.split("://", 1)[1]

    @property
    def hostname(self) -> str:
        """The host name of ``base_url`` without the port."""
        return origin_of(self.base_url).host


def config_kind(path: str | Path) -> str | None:
    """The ``kind`` a config file declares (``instance``/``aggregator``), None if unreadable."""
    try:
        raw = tomllib.loads(Path(path).read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # the real loader says what is wrong, naming the file
    kind = raw.get("kind")
    return kind if isinstance(kind, str) else None


def load_aggregator_config(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> AggregatorConfig:
    """Read and validate an aggregator's TOML file, then apply ``BARRI_*`` overrides (§8)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path, None, "no such file (write one with `barri init aggregator`)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, None, "is not UTF-8 text") from None
    return parse_aggregator_config(text, path, environ=os.environ if environ is None else environ)


def parse_aggregator_config(
    text: str, path: str | Path, *, environ: Mapping[str, str] | None = None
) -> AggregatorConfig:
    """Validate TOML text as an aggregator config; relative paths start at ``path``'s folder."""
    path = Path(path)
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML ({exc})") from None
    for key in raw:
        if key not in KEYS:
            raise ConfigError(path, key, f"unknown key (known keys: {', '.join(KEYS)})")
    sources: dict[str, str] = {}
    for key in KEYS[1:]:
        variable = f"BARRI_{key.upper()}"
        value = (environ or {}).get(variable, "").strip()
        if value:
            raw[key], sources[key] = value, variable
    return _AggregatorBuilder(raw, path, sources).build_aggregator()


class _AggregatorBuilder(_Builder):
    """The instance config's key-by-key reader, with the aggregator's keys."""

    def build_aggregator(self) -> AggregatorConfig:
        self.get("kind", _check_kind)
        loopback = self.get("allow_loopback", _boolean, False)
        data_dir = self.get("data_dir", self._directory, self.path.parent)
        host, port = self.get("listen", _listen, _listen(DEFAULT_LISTEN))
        return AggregatorConfig(
            base_url=self.get("base_url", lambda v: check_base_url(v, allow_loopback=loopback)),
            name=self.get("name", _name),
            city=self.get("city", _territory_code, DEFAULT_CITY),
            city_name=self.get("city_name", _name, None),
            data_dir=data_dir,
            database=data_dir / self.get("database", _relative_file, Path(DEFAULT_DATABASE)),
            listen_host=host,
            listen_port=port,
            allow_loopback=loopback,
            grace_minutes=self.get("grace_minutes", _minutes, DEFAULT_GRACE_MINUTES),
            refresh_minutes=self.get("refresh_minutes", _minutes, DEFAULT_REFRESH_MINUTES),
            backfill_minutes=self.get("backfill_minutes", _minutes, DEFAULT_BACKFILL_MINUTES),
            tally_debounce_seconds=self.get(
                "tally_debounce_seconds", _seconds, DEFAULT_DEBOUNCE_SECONDS
            ),
        )


def _check_kind(value: Any) -> str:
    if value != KIND:
        raise ValueError(f'this server reads kind = "aggregator" files, not {value!r}')
    return KIND


def _minutes(value: Any) -> int:
    text = value.strip() if isinstance(value, str) else None
    number = int(text) if text is not None and re.fullmatch(r"\d{1,6}", text) else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 43200:
        raise ValueError(f"must be a whole number of minutes from 0 to 43200, not {value!r}")
    return number


def _seconds(value: Any) -> float:
    text = value.strip() if isinstance(value, str) else None
    number: Any = value
    if text is not None and re.fullmatch(r"\d{1,5}(\.\d{1,6})?", text):
        number = float(text)
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 86400:
        raise ValueError(f"must be a number of seconds from 0 to 86400, not {value!r}")
    return float(number)


@dataclass(frozen=True)
class AggregatorInit:
    """What ``barri init aggregator`` puts into a new ``barri.toml``."""

    base_url: str
    name: str = "Barri city aggregator"
    city: str = DEFAULT_CITY
    allow_loopback: bool = False
    listen: str = DEFAULT_LISTEN


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def render_aggregator_config(options: AggregatorInit) -> str:
    """The commented ``barri.toml`` of a new aggregator (every key explained)."""
    o = options
    return f"""\
# Barri city aggregator: configuration.
# Written by `barri init aggregator`; edit, then restart `barri serve --config <this file>`.
# Any key can also be set by an environment variable BARRI_<KEY>, which wins over this file.

# What this file configures. Must stay "aggregator".
kind = "aggregator"

# The public origin of the aggregator: scheme://host[:port], no path. Its Service actor is
# {{base_url}}/actor; instances name that id in their report_to. NEVER change it once in use.
base_url = {_toml(o.base_url)}

# The name shown on the Service actor and on the results pages.
name = {_toml(o.name)}

# The city's official code (INE code, e.g. "08019" for Barcelona) and, optionally, its name.
city = {_toml(o.city)}
# city_name = "Barcelona"

# Where the data lives: data_dir (relative to this file) holds the SQLite database.
data_dir = "."
database = {_toml(DEFAULT_DATABASE)}

# Address and port the HTTP server listens on (put a TLS reverse proxy in front of it).
listen = {_toml(o.listen)}

# Allow plain http and loopback addresses. Only for tests and demos on one machine.
allow_loopback = {"true" if o.allow_loopback else "false"}

# Minutes after a supports phase ends during which supports published inside it may still
# arrive (delivery retries, backfill). Stated in every published Tally.
grace_minutes = {DEFAULT_GRACE_MINUTES}

# Minutes a fetched resident's verification is trusted before it is fetched again.
refresh_minutes = {DEFAULT_REFRESH_MINUTES}

# Minutes between two backfill passes over every roster instance while the server runs
# (outboxes, process collections, supports and conversation collections). 0: only at start
# and on `barri roster add`.
backfill_minutes = {DEFAULT_BACKFILL_MINUTES}

# Seconds the Service waits after a change before publishing a process's new signed Tally
# (changes meanwhile go into the same one). The final Tally goes out when the supports phase
# closes (plus grace_minutes), whatever this says.
tally_debounce_seconds = {DEFAULT_DEBOUNCE_SECONDS:g}
"""


def write_aggregator_config(
    directory: str | Path, options: AggregatorInit, *, force: bool = False
) -> Path:
    """Create ``directory`` and write its ``barri.toml`` (mode 0600); checked before writing."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    text = render_aggregator_config(options)
    config = parse_aggregator_config(text, path, environ={})
    if config.base_url != options.base_url:
        text = render_aggregator_config(replace(options, base_url=config.base_url))
    if path.exists() and not force:
        raise ConfigError(path, None, "already exists (use --force to overwrite it)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(text)
    except FileExistsError:
        raise ConfigError(path, None, "already exists (use --force to overwrite it)") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot write it: {exc.strerror}") from None
    return path


__all__ = [
    "AggregatorConfig",
    "AggregatorInit",
    "config_kind",
    "load_aggregator_config",
    "parse_aggregator_config",
    "write_aggregator_config",
]
