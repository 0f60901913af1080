"""The message catalogue and language choice: complete in ca/es/en, and switchable per visitor."""

from __future__ import annotations

import re
import string
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from federation.config import InstanceConfig
from federation.instance.rules import RULES
from federation.instance.web import i18n
from federation.instance.web.i18n import (
    LANG_COOKIE,
    LanguageChoice,
    Translator,
    choose_language,
    offered_languages,
    parse_accept_language,
)
from federation.instance.web.messages import CATALOGUE
from federation.model import Alignment, ProposalState
from tests.html_browser import Browser, make_config, running

WEB = Path(i18n.__file__).resolve().parent
LANGUAGES = ("ca", "es", "en")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_catalogue_has_three_languages_with_the_same_keys() -> None:
    assert tuple(CATALOGUE) == LANGUAGES
    keys = set(CATALOGUE["en"])
    for lang in LANGUAGES:
        messages = CATALOGUE[lang]
        assert set(messages) == keys, (lang, set(messages) ^ keys)
        assert all(text.strip() for text in messages.values()), lang


def test_every_message_has_the_same_placeholders_in_every_language() -> None:
    for key, english in CATALOGUE["en"].items():
        for lang in LANGUAGES:
            assert placeholders(CATALOGUE[lang][key]) == placeholders(english), (lang, key)


def test_catalogue_texts_are_translated_not_copied() -> None:
    # Names of languages are endonyms, the same everywhere; a few cognates ("Text") may match.
    for lang in LANGUAGES:
        assert CATALOGUE[lang]["language.ca"] == "Català"
        assert CATALOGUE[lang]["language.es"] == "Español"
    for one, other in (("ca", "es"), ("ca", "en"), ("es", "en")):
        same = [k for k in CATALOGUE["en"] if CATALOGUE[one][k] == CATALOGUE[other][k]]
        assert len(same) < len(CATALOGUE["en"]) // 10, (one, other, same)


def _used_keys() -> set[str]:
    """Every catalogue-shaped string literal in the web package's code and templates."""
    areas = {key.split(".")[0] for key in CATALOGUE["en"]}
    alternatives = "|".join(sorted(areas))
    pattern = re.compile(r"""["']((?:""" + alternatives + r""")\.[a-z0-9_.]+)["']""")
    used: set[str] = set()
    for path in [*WEB.glob("*.py"), *WEB.glob("templates/*.html")]:
        if path.name == "messages.py":
            continue
        found = pattern.findall(path.read_text("utf-8"))
        used |= {key for key in found if not key.endswith(".html")}  # template names
    return used


def test_every_key_the_pages_use_exists() -> None:
    used = _used_keys()
    assert len(used) > 30  # the scan really finds the templates' keys
    keys = set(CATALOGUE["en"])
    # t.plural("x", n) uses x.one and x.other.
    missing = sorted(k for k in used if k not in keys and not {f"{k}.one", f"{k}.other"} <= keys)
    assert not missing, missing


def test_every_key_built_at_run_time_exists() -> None:
    needed = {f"language.{lang}" for lang in LANGUAGES}
    needed |= {f"month.{n}" for n in range(1, 13)}
    needed |= {f"rule.{rule}" for rule in RULES} | {"rule.too_long", "rule.invalid_input"}
    needed |= {f"state.{state.value}" for state in ProposalState}
    needed |= {f"alignment.{alignment.value}" for alignment in Alignment}
    needed |= {f"error.{status}" for status in (400, 403, 404, 409, 422, 500)}
    for lang in LANGUAGES:
        missing = sorted(needed - set(CATALOGUE[lang]))
        assert not missing, (lang, missing)


def test_translator_fills_placeholders_without_reinterpreting_values() -> None:
    t = Translator("es")
    assert t("nav.signed_in", user="{user.__class__}") == "Sesión iniciada como {user.__class__}"
    assert t("register.short_password", n=10).endswith("10 caracteres.")
    assert Translator("en")("no.such.key") == "no.such.key"
    partial = {"en": {"a.b": "English"}, "ca": {}}
    assert Translator("ca", partial)("a.b") == "English"  # falls back to English
    assert not Translator("ca", partial).has("a.b")


def test_dates_in_words() -> None:
    day = datetime(2026, 4, 3, tzinfo=UTC)
    assert Translator("ca").date(day) == "3 d'abril de 2026"
    assert Translator("es").date(day) == "3 de abril de 2026"
    assert Translator("en").date(day) == "3 April 2026"
    assert Translator("en").date(None) == ""


def test_accept_language_with_q_values() -> None:
    assert parse_accept_language("es-ES,es;q=0.9,ca;q=0.8,en;q=0.7") == ["es", "es", "ca", "en"]
    assert parse_accept_language("en;q=0.2, ca") == ["ca", "en"]
    assert parse_accept_language("fr;q=0, en;q=bad, es") == ["es"]
    assert parse_accept_language("") == []


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "chosen"),
    [
        ("es", "en", "ca", LanguageChoice("es", True)),
        ("EN-gb", None, None, LanguageChoice("en", True)),
        ("fr", "en", "es", LanguageChoice("en", False)),  # unknown ?lang= is ignored
        (None, "es", "en", LanguageChoice("es", False)),
        (None, "xx", "en-US,es;q=0.5", LanguageChoice("en", False)),
        (None, None, "fr, de;q=0.9", LanguageChoice("ca", False)),
        (None, None, None, LanguageChoice("ca", False)),
    ],
)
def test_language_order_query_cookie_accept_default(
    query: str | None, cookie: str | None, accept: str | None, chosen: LanguageChoice
) -> None:
    assert choose_language(LANGUAGES, query=query, cookie=cookie, accept=accept) == chosen


def test_only_configured_languages_are_offered() -> None:
    assert offered_languages(("es", "ca")) == ("es", "ca")
    assert offered_languages(("en-GB", "pt", "en")) == ("en",)
    assert offered_languages(("pt",)) == LANGUAGES  # nothing we can show: offer everything
    offered = offered_languages(("es", "en"))
    assert choose_language(offered, query="ca", accept="ca").lang == "es"


# -- over HTTP --------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, unused_tcp_port_factory: Callable[[], int]) -> InstanceConfig:
    return make_config(tmp_path, unused_tcp_port_factory())


@pytest.fixture
async def browser(config: InstanceConfig) -> AsyncIterator[Browser]:
    async with running(config):
        visitor = Browser(config.base_url)
        yield visitor
        await visitor.close()


def html_lang(page: object) -> str:
    return page.find("html")[0].attrs["lang"]  # type: ignore[attr-defined, no-any-return]


async def test_switching_language_sticks_through_the_cookie(browser: Browser) -> None:
    page = await browser.get("/login")
    assert html_lang(page) == "ca" and "Inicia la sessió" in page.text
    page = await browser.get("/login?lang=es")
    assert html_lang(page) == "es" and "Iniciar sesión" in page.text
    assert browser.cookie(LANG_COOKIE) == "es"
    page = await browser.get("/register", headers={"Accept-Language": "en"})
    assert html_lang(page) == "es" and "Crear una cuenta" in page.text  # the cookie wins
    page = await browser.get("/register?lang=en")
    assert html_lang(page) == "en" and "Create an account" in page.text


async def test_accept_language_chooses_without_a_cookie(browser: Browser) -> None:
    page = await browser.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9,ca;q=0.3"})
    assert html_lang(page) == "en" and "Log in" in page.text
    assert browser.cookie(LANG_COOKIE) is None  # only ?lang= is remembered


async def test_the_language_menu_links_each_language_in_its_own_language(
    browser: Browser,
) -> None:
    page = await browser.get("/register?lang=en")
    links = {tag.attrs["lang"]: tag.attrs for tag in page.find("a") if "hreflang" in tag.attrs}
    assert set(links) == set(LANGUAGES)
    assert links["ca"]["href"] == "/register?lang=ca"
    assert links["en"].get("aria-current") == "true" and "aria-current" not in links["es"]


async def test_configured_languages_limit_the_menu(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    config = make_config(tmp_path, unused_tcp_port_factory(), languages="es,en")
    async with running(config):
        visitor = Browser(config.base_url)
        try:
            page = await visitor.get("/login", headers={"Accept-Language": "ca"})
            assert html_lang(page) == "es"
            assert {t.attrs["lang"] for t in page.find("a") if "hreflang" in t.attrs} == {
                "es",
                "en",
            }
        finally:
            await visitor.close()
