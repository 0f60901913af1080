"""What both ``barri.toml`` loaders share (DESIGN.md §8): errors, file reading, value checks.

The instance (:mod:`federation.config`) and the aggregator (:mod:`federation.aggregator.config`)
read their files the same way: UTF-8 TOML, only known keys, ``BARRI_<KEY>`` variables overriding
the file (``kind`` excepted), then a :class:`Builder` reading key by key. Each check takes a raw
TOML (or environment) value and returns it validated or raises ``ValueError``. The builder turns
that into a one-line :class:`ConfigError` naming the file, the key and the variable that set it.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from activitypub.origin import OriginError, origin_of

CONFIG_FILE = "barri.toml"
DEFAULT_DATABASE = "barri.sqlite3"
DEFAULT_LISTEN = "127.0.0.1:8080"

TERRITORY_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class ConfigError(Exception):
    """A configuration problem, as one line: ``FILE: KEY: problem``."""

    def __init__(
        self, path: str | Path, key: str | None, problem: str, *, env: str | None = None
    ) -> None:
        where = key if env is None or key is None else f"{key} (set by {env})"
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")
        self.path, self.key, self.problem, self.env = Path(path), key, problem, env


def read_config_text(path: Path, kind: str) -> str:
    """The text of a ``kind`` server's config file, or a ConfigError saying why it is unreadable."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path, None, f"no such file (write one with `barri init {kind}`)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, None, "is not UTF-8 text") from None


def parse_toml(text: str, path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """TOML text as a table whose keys are all among ``keys`` (a ConfigError names any other)."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML ({exc})") from None
    for key in raw:
        if key not in keys:
            raise ConfigError(path, key, f"unknown key (known keys: {', '.join(keys)})")
    return raw


def apply_environment(
    raw: dict[str, Any],
    environ: Mapping[str, str],
    keys: tuple[str, ...],
    list_keys: tuple[str, ...] = (),
) -> dict[str, str]:
    """Apply non-empty ``BARRI_<KEY>`` variables (``kind``, the first key, excepted): key -> var."""
    sources: dict[str, str] = {}
    for key in keys[1:]:
        variable = f"BARRI_{key.upper()}"
        value = environ.get(variable, "").strip()
        if not value:
            continue
        # A list key's variable holds its items separated by commas or spaces.
        raw[key] = re.split(r"[\s,]+", value) if key in list_keys else value
        sources[key] = variable
    return sources


class Builder:
    """Reads each key with its check, turning a ValueError into a ConfigError naming the key."""

    def __init__(self, raw: Mapping[str, Any], path: Path, sources: Mapping[str, str]) -> None:
        self.raw, self.path, self.sources = raw, path, sources

    def get(self, key: str, check: Callable[[Any], Any], default: Any = ...) -> Any:
        """``check(raw[key])``; ``default`` when the key is absent (required without one)."""
        if key not in self.raw:
            if default is ...:
                raise ConfigError(self.path, key, "is required")
            return default
        try:
            return check(self.raw[key])
        except ValueError as exc:
            raise ConfigError(self.path, key, str(exc), env=self.sources.get(key)) from None

    def directory(self, value: Any) -> Path:
        """A directory, relative ones taken from the config file's folder."""
        directory = Path(check_text(value))
        return directory if directory.is_absolute() else self.path.parent / directory


def check_base_url(value: Any, *, allow_loopback: bool) -> str:
    """The normalised origin every id starts with: https, or http only with ``allow_loopback``."""
    text = check_text(value)
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


def fail(problem: str) -> Any:
    """Refuse a value, whatever it is (for a key that other keys' values rule out)."""
    raise ValueError(problem)


def check_text(value: Any) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def check_kind(value: Any, kind: str) -> str:
    """The file's ``kind``, which must be the one this server reads."""
    if value != kind:
        raise ValueError(f'this server reads kind = "{kind}" files, not {value!r}')
    return kind


def check_name(value: Any) -> str:
    """A display name: at most 100 characters, no control characters."""
    text = check_text(value)
    if len(text) > 100 or any(unicodedata.category(c) == "Cc" for c in text):
        raise ValueError("must be at most 100 characters, without control characters")
    return text


def check_territory_code(value: Any) -> str:
    """An official territory code (letters, digits, ``_ . : -``; at most 64)."""
    text = check_text(value)
    if not TERRITORY_CODE.match(text):
        raise ValueError(f"{text!r} is not a territory code (letters, digits, _ . : -; <= 64)")
    return text


def check_relative_file(value: Any) -> Path:
    """A file name, later joined to the data directory."""
    return Path(check_text(value))


def check_boolean(value: Any) -> bool:
    """A TOML boolean, or true/false, yes/no, on/off, 1/0 as a string (environment variables)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"must be true or false, not {value!r}")


def check_listen(value: Any) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) into host and port."""
    text = check_text(value)
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} must be HOST:PORT with a port from 1 to 65535")
    return host, int(port)


DEFAULT_DELIVERY_CONCURRENCY = 16  # sends at once; each host gets at most 2 of them
MAX_DELIVERY_CONCURRENCY = 1024


def check_count(value: Any, *, low: int, high: int, unit: str) -> int:
    """A whole number of ``unit`` from ``low`` to ``high``: a TOML integer, or ASCII digits (a
    ``BARRI_*`` variable)."""
    text = value.strip() if isinstance(value, str) else None
    digits = text is not None and re.fullmatch(r"[0-9]{1,6}", text) is not None
    number = int(value) if digits else value
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ValueError(f"must be a whole number of {unit} from {low} to {high}, not {value!r}")
    return number


def check_delivery_concurrency(value: Any) -> int:
    """Deliveries sent at once, 1 to 1024."""
    return check_count(value, low=1, high=MAX_DELIVERY_CONCURRENCY, unit="sends")


def check_minutes(value: Any, *, maximum: int) -> int:
    """Whole minutes from 0 to ``maximum``: a TOML integer, or up to 6 ASCII digits (a
    ``BARRI_*`` variable)."""
    text = value.strip() if isinstance(value, str) else None
    digits = text is not None and re.fullmatch(r"[0-9]{1,6}", text) is not None
    number = int(value) if digits else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= maximum:
        raise ValueError(f"must be a whole number of minutes from 0 to {maximum}, not {value!r}")
    return number
