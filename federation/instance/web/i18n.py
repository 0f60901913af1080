"""Which language a page is shown in, and the translator its templates call (ca/es/en).

The language comes from ``?lang=``, then the ``lang`` cookie, then ``Accept-Language``
(RFC 9110 §12.5.4, with q-values), then the instance's first configured language. Only
languages that both the catalogue (:mod:`federation.instance.web.messages`) and the config
offer are chosen. Every string a template shows goes through :class:`Translator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from federation.instance.web.messages import CATALOGUE

LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
FALLBACK_LANGUAGE = "en"


def _primary(tag: str) -> str:
    return tag.strip().lower().split("-")[0]


def offered_languages(configured: Sequence[str]) -> tuple[str, ...]:
    """The configured languages the catalogue has, in config order (all of them if none)."""
    offered = [_primary(tag) for tag in configured if _primary(tag) in CATALOGUE]
    return tuple(dict.fromkeys(offered)) or tuple(CATALOGUE)


def parse_accept_language(header: str) -> list[str]:
    """Primary language subtags from ``Accept-Language``, best first; ``q=0`` dropped."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if tag.strip() and quality > 0:
            # Stable order among equal q-values: the client's order wins.
            weighted.append((-quality, position, _primary(tag)))
    return [tag for _, _, tag in sorted(weighted)]


@dataclass(frozen=True)
class LanguageChoice:
    """The page language and whether ``?lang=`` picked it (then it is remembered in a cookie)."""

    lang: str
    from_query: bool


def choose_language(
    offered: Sequence[str],
    *,
    query: str | None = None,
    cookie: str | None = None,
    accept: str | None = None,
) -> LanguageChoice:
    """The language for a page: ?lang=, cookie, Accept-Language, then ``offered[0]``."""
    if query and _primary(query) in offered:
        return LanguageChoice(_primary(query), True)
    if cookie and _primary(cookie) in offered:
        return LanguageChoice(_primary(cookie), False)
    for tag in parse_accept_language(accept or ""):
        if tag in offered:
            return LanguageChoice(tag, False)
    return LanguageChoice(offered[0] if offered else FALLBACK_LANGUAGE, False)


class Translator:
    """Looks messages up in one language's catalogue and fills in ``{placeholders}``."""

    def __init__(self, lang: str, catalogue: Mapping[str, Mapping[str, str]] = CATALOGUE):
        self.lang = lang
        self._messages = catalogue[lang]
        self._fallback = catalogue[FALLBACK_LANGUAGE]

    def __call__(self, key: str, /, **params: object) -> str:
        """The message for ``key``; a missing key shows the English text, then the key itself."""
        text = self._messages.get(key) or self._fallback.get(key) or key
        # str.format only reads the catalogue's own placeholders; values are never re-parsed.
        return text.format(**params) if params else text

    def plural(self, key: str, n: int, /, **params: object) -> str:
        """``key.one`` for 1, else ``key.other`` (the CLDR plural rule of ca, es and en)."""
        return self(f"{key}.one" if n == 1 else f"{key}.other", n=n, **params)

    def has(self, key: str) -> bool:
        """True when the catalogue has ``key`` in this language."""
        return key in self._messages

    def date(self, moment: datetime | None) -> str:
        """A date in words in this language (``27 de novembre de 2026``)."""
        if moment is None:
            return ""
        month = self(f"month.{moment.month}")
        return self("date.format", day=moment.day, month=month, year=moment.year)
