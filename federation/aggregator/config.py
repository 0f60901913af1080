"""The aggregator's ``barri.toml`` (DESIGN.md §7, §8): ``kind = "aggregator"``, validated.

Same conventions as the instance's :mod:`federation.config`, through the reading and checks of
:mod:`federation.config_values` they share: one-line
:class:`~federation.config_values.ConfigError` naming the file and key, ``BARRI_<KEY>``
variables overriding the file (``kind`` excepted). ``barri init aggregator`` writes a commented
template, saved 0600 by :func:`federation.config_writer.save_config`. This module keeps the
aggregator's keys, its minute and second bounds, and its template.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activitypub.origin import origin_of
from federation.config_values import (
    DEFAULT_DATABASE,
    DEFAULT_DELIVERY_CONCURRENCY,
    DEFAULT_LISTEN,
    Builder,
    apply_environment,
    check_base_url,
    check_boolean,
    check_count,
    check_delivery_concurrency,
    check_kind,
    check_listen,
    check_minutes,
    check_name,
    check_relative_file,
    check_territory_code,
    parse_toml,
    read_config_text,
)
from federation.config_writer import toml_string, write_checked

KIND = "aggregator"
DEFAULT_CITY = "08019"  # Barcelona's INE code (vocab-spec)
DEFAULT_GRACE_MINUTES = 60
DEFAULT_REFRESH_MINUTES = 60
DEFAULT_BACKFILL_MINUTES = 60
DEFAULT_DEBOUNCE_SECONDS = 30.0
DEFAULT_BACKFILL_WORKERS = 0  # one per core (federation.aggregator.backfill_pool)
DEFAULT_OFFROSTER_PER_MINUTE = 120  # a server off the roster (federation.aggregator.quota)
MAX_BACKFILL_WORKERS = 64

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
    "backfill_workers",
    "tally_debounce_seconds",
    "delivery_concurrency",
    "offroster_deliveries_per_minute",
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
    backfill_workers: int = DEFAULT_BACKFILL_WORKERS
    delivery_concurrency: int = DEFAULT_DELIVERY_CONCURRENCY
    offroster_deliveries_per_minute: int = DEFAULT_OFFROSTER_PER_MINUTE
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
    text = read_config_text(path, KIND)
    return parse_aggregator_config(text, path, environ=os.environ if environ is None else environ)


def parse_aggregator_config(
    text: str, path: str | Path, *, environ: Mapping[str, str] | None = None
) -> AggregatorConfig:
    """Validate TOML text as an aggregator config; relative paths start at ``path``'s folder."""
    path = Path(path)
    raw = parse_toml(text, path, KEYS)
    sources = apply_environment(raw, environ or {}, KEYS)
    return _AggregatorBuilder(raw, path, sources).build()


class _AggregatorBuilder(Builder):
    """The key-by-key reader of an aggregator's file."""

    def build(self) -> AggregatorConfig:
        """Every key checked, in the order whose first wrong key is the one reported."""
        self.get("kind", lambda v: check_kind(v, KIND))
        loopback = self.get("allow_loopback", check_boolean, False)
        data_dir = self.get("data_dir", self.directory, self.path.parent)
        host, port = self.get("listen", check_listen, check_listen(DEFAULT_LISTEN))
        return AggregatorConfig(
            base_url=self.get("base_url", lambda v: check_base_url(v, allow_loopback=loopback)),
            name=self.get("name", check_name),
            city=self.get("city", check_territory_code, DEFAULT_CITY),
            city_name=self.get("city_name", check_name, None),
            data_dir=data_dir,
            database=data_dir / self.get("database", check_relative_file, Path(DEFAULT_DATABASE)),
            listen_host=host,
            listen_port=port,
            allow_loopback=loopback,
            grace_minutes=self.get("grace_minutes", _minutes, DEFAULT_GRACE_MINUTES),
            refresh_minutes=self.get("refresh_minutes", _minutes, DEFAULT_REFRESH_MINUTES),
            backfill_minutes=self.get("backfill_minutes", _minutes, DEFAULT_BACKFILL_MINUTES),
            tally_debounce_seconds=self.get(
                "tally_debounce_seconds", _seconds, DEFAULT_DEBOUNCE_SECONDS
            ),
            backfill_workers=self.get("backfill_workers", _workers, DEFAULT_BACKFILL_WORKERS),
            delivery_concurrency=self.get(
                "delivery_concurrency", check_delivery_concurrency, DEFAULT_DELIVERY_CONCURRENCY
            ),
            offroster_deliveries_per_minute=self.get(
                "offroster_deliveries_per_minute", _per_minute, DEFAULT_OFFROSTER_PER_MINUTE
            ),
        )


def _minutes(value: Any) -> int:
    return check_minutes(value, maximum=43200)  # up to 30 days


def _per_minute(value: Any) -> int:
    return check_count(value, low=0, high=100_000, unit="deliveries a minute")


def _workers(value: Any) -> int:
    return check_count(value, low=0, high=MAX_BACKFILL_WORKERS, unit="processes")


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
base_url = {toml_string(o.base_url)}

# The name shown on the Service actor and on the results pages.
name = {toml_string(o.name)}

# The city's official code (INE code, e.g. "08019" for Barcelona) and, optionally, its name.
city = {toml_string(o.city)}
# city_name = "Barcelona"

# Where the data lives: data_dir (relative to this file) holds the SQLite database.
data_dir = "."
database = {toml_string(DEFAULT_DATABASE)}

# Address and port the HTTP server listens on (put a TLS reverse proxy in front of it).
listen = {toml_string(o.listen)}

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

# Processes that share the backfill of an aggregator that has nothing stored yet (its first
# start, or a rebuild from an empty database): each walks whole instances, verifying on a core
# of its own. 0: one per core, at most 4. 1: the server's own process does it all.
backfill_workers = {DEFAULT_BACKFILL_WORKERS}

# Seconds the Service waits after a change before publishing a process's new signed Tally
# (changes meanwhile go into the same one). The final Tally goes out when the supports phase
# closes (plus grace_minutes), whatever this says.
tally_debounce_seconds = {DEFAULT_DEBOUNCE_SECONDS:g}

# Deliveries sent at once (1-1024; Tallies to the Service's followers), at most 2 per host.
delivery_concurrency = {DEFAULT_DELIVERY_CONCURRENCY}

# Deliveries a minute a server off the roster may make to the inbox (all of them together:
# ten times that); past it they are answered 429 and sent again later. 0: no limit. Roster
# instances are never limited.
offroster_deliveries_per_minute = {DEFAULT_OFFROSTER_PER_MINUTE}
"""


def write_aggregator_config(
    directory: str | Path, options: AggregatorInit, *, force: bool = False
) -> Path:
    """Create ``directory`` and write its ``barri.toml`` (mode 0600); checked before writing."""

    def check(text: str, path: Path) -> AggregatorConfig:
        return parse_aggregator_config(text, path, environ={})

    return write_checked(directory, options, render_aggregator_config, check, force=force)


__all__ = [
    "AggregatorConfig",
    "AggregatorInit",
    "config_kind",
    "load_aggregator_config",
    "parse_aggregator_config",
    "write_aggregator_config",
]
