"""An instance's configuration: its ``barri.toml``, overridden by ``BARRI_*`` variables (§8).

:func:`load_config` reads ``barri.toml`` into an :class:`InstanceConfig`; anything wrong raises
:class:`~federation.config_values.ConfigError`, whose message is one line naming the file, the key
and the problem. The checks both servers' files share live in :mod:`federation.config_values`;
this module keeps the instance's keys and their own checks. ``barri init instance`` writes the
file with :mod:`federation.config_writer`.

Every key of the file can be overridden by an environment variable ``BARRI_<KEY>`` (the key in
upper case): ``BARRI_BASE_URL``, ``BARRI_NAME``, ``BARRI_GROUP``, ``BARRI_TERRITORY``,
``BARRI_TERRITORY_KIND``, ``BARRI_DISTRICT``, ``BARRI_DATA_DIR``, ``BARRI_DATABASE``,
``BARRI_LISTEN``, ``BARRI_ALLOW_LOOPBACK`` (true/false, yes/no, 1/0), ``BARRI_REPORT_TO`` and
``BARRI_LANGUAGES`` (lists separated by commas or spaces), ``BARRI_EDIT_WINDOW_MINUTES``,
``BARRI_SECRET`` and ``BARRI_DELIVERY_CONCURRENCY``. ``kind`` cannot be overridden. An empty
variable counts as unset.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activitypub.origin import OriginError, origin_of
from federation.config_values import (
    DEFAULT_DATABASE,
    DEFAULT_DELIVERY_CONCURRENCY,
    DEFAULT_LISTEN,
    Builder,
    apply_environment,
    check_base_url,
    check_boolean,
    check_delivery_concurrency,
    check_kind,
    check_listen,
    check_minutes,
    check_name,
    check_relative_file,
    check_territory_code,
    check_text,
    fail,
    parse_toml,
    read_config_text,
)

DEFAULT_LANGUAGES = ("ca", "es", "en")
DEFAULT_EDIT_WINDOW_MINUTES = 5  # Decidim's default proposal edit window
TERRITORY_KINDS = ("neighbourhood", "district", "city")
MIN_SECRET_LENGTH = 32

SLUG = re.compile(r"^[a-z0-9_]{1,30}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")

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
    "delivery_concurrency",
)
_LIST_KEYS = ("report_to", "languages")


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
    delivery_concurrency: int = DEFAULT_DELIVERY_CONCURRENCY
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
    text = read_config_text(path, "instance")
    return parse_config(text, path, environ=os.environ if environ is None else environ)


def parse_config(
    text: str, path: str | Path, *, environ: Mapping[str, str] | None = None
) -> InstanceConfig:
    """Validate TOML text as an instance config; relative paths are taken from ``path``'s folder."""
    path = Path(path)
    raw = parse_toml(text, path, KEYS)
    sources = apply_environment(raw, environ or {}, KEYS, _LIST_KEYS)
    return _InstanceBuilder(raw, path, sources).build()


class _InstanceBuilder(Builder):
    """The key-by-key reader of an instance's file."""

    def build(self) -> InstanceConfig:
        """Every key checked, in an order where one key's value can rule on another's."""
        self.get("kind", lambda v: check_kind(v, "instance"))
        loopback = self.get("allow_loopback", check_boolean, False)
        name = self.get("name", check_name)
        data_dir = self.get("data_dir", self.directory, self.path.parent)
        host, port = self.get("listen", check_listen, check_listen(DEFAULT_LISTEN))
        territory_kind = self.get("territory_kind", _territory_kind, "neighbourhood")
        if territory_kind != "neighbourhood" and self.raw.get("district"):
            # The vocabulary's rule: only a neighbourhood lies in a district.
            self.get("district", lambda _: fail("is only for a neighbourhood's district"))
        return InstanceConfig(
            base_url=self.get("base_url", lambda v: check_base_url(v, allow_loopback=loopback)),
            name=name,
            group=self.get("group", _slug, slugify(name)),
            territory=self.get("territory", check_territory_code, None),
            territory_kind=territory_kind,
            district=self.get("district", check_territory_code, None),
            data_dir=data_dir,
            database=data_dir / self.get("database", check_relative_file, Path(DEFAULT_DATABASE)),
            listen_host=host,
            listen_port=port,
            allow_loopback=loopback,
            report_to=self.get("report_to", lambda v: _actor_ids(v, loopback), ()),
            edit_window_minutes=self.get(
                "edit_window_minutes", _edit_window_minutes, DEFAULT_EDIT_WINDOW_MINUTES
            ),
            languages=self.get("languages", _languages, DEFAULT_LANGUAGES),
            secret=self.get("secret", _secret),
            delivery_concurrency=self.get(
                "delivery_concurrency", check_delivery_concurrency, DEFAULT_DELIVERY_CONCURRENCY
            ),
        )


def _slug(value: Any) -> str:
    text = check_text(value)
    if not SLUG.match(text):
        raise ValueError(f"{text!r} must be 1-30 of a-z, 0-9 and _")
    return text


def _territory_kind(value: Any) -> str:
    if value not in TERRITORY_KINDS:
        raise ValueError(f"must be one of {', '.join(TERRITORY_KINDS)}, not {value!r}")
    return str(value)


def _actor_ids(value: Any, allow_loopback: bool) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of aggregator actor ids")
    ids = []
    for item in value:
        text = check_text(item)
        try:
            origin = origin_of(text)
        except OriginError:
            raise ValueError(f"{text!r} is not an absolute http(s) actor id") from None
        # The same rule as base_url: plain http only where loopback is allowed (tests, demos).
        if "#" in text or (origin.scheme != "https" and not allow_loopback):
            raise ValueError(f"{text!r} must be an https actor id without a fragment")
        ids.append(text)
    return tuple(dict.fromkeys(ids))


def _edit_window_minutes(value: Any) -> int:
    return check_minutes(value, maximum=10080)  # up to a week


def _languages(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError('must be a non-empty list of language tags such as "ca"')
    tags = [check_text(tag) for tag in value]
    bad = [tag for tag in tags if not _LANGUAGE.match(tag)]
    if bad:
        raise ValueError(f'{bad[0]!r} is not a language tag such as "ca" or "pt-BR"')
    return tuple(dict.fromkeys(tags))


def _secret(value: Any) -> str:
    text = check_text(value)
    if len(text) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"must be at least {MIN_SECRET_LENGTH} characters (keep the generated one)"
        )
    return text
