"""The page kit: the jinja2 environment (autoescape always on) and what every page needs.

One :class:`PageKit` is built by ``setup_pages`` and kept under :data:`PAGES`. Templates live
in ``templates/`` beside this module. HTML written by people is shown through the
``sanitised`` filter only, which runs the content allow-list again before marking it safe,
so a template can never pass untrusted markup through by mistake (defence in depth: the
service already stored it sanitised).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from aiohttp import web
from markupsafe import Markup

from federation.config import InstanceConfig
from federation.instance.actors import USERS_PATH
from federation.instance.content import sanitise_html
from federation.instance.web.i18n import offered_languages
from federation.instance.web.sessions import SessionCodec

if TYPE_CHECKING:
    import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
#: Pages for objects of other instances known here (a city-wide process, its proposals).
REMOTE_PATH = "/remote"

# Pages carry per-session CSRF tokens and may be personal: never cache them. Styles are inline
# in the base template; nothing else may load, and no script at all (the pages need none).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def sanitised(html_text: str | None) -> Markup:
    """Stored HTML re-sanitised with the content allow-list, then marked safe for jinja2."""
    return Markup(sanitise_html(html_text or ""))  # noqa: S704 (sanitised on the line itself)


def make_environment() -> jinja2.Environment:
    """The templates' environment: autoescape on for every template, undefined names fail."""
    # Imported here: jinja2 is ~2 MB an instance that serves no page yet does not need.
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sanitised"] = sanitised
    return env


@dataclass(frozen=True)
class PageKit:
    """What the page handlers share: config, templates, the session codec and languages."""

    config: InstanceConfig
    sessions: SessionCodec
    offered: tuple[str, ...]

    @functools.cached_property
    def env(self) -> jinja2.Environment:
        """The templates' environment, built by the first page rendered (not at startup)."""
        return make_environment()

    @property
    def secure(self) -> bool:
        """True when the instance is served over https (cookies get the Secure flag)."""
        return self.config.base_url.startswith("https://")

    def actor_label(self, actor_id: str) -> str:
        """How a page names an actor: ``alice`` here, ``alice@host`` elsewhere."""
        local_prefix = self.config.base_url + USERS_PATH
        if actor_id.startswith(local_prefix):
            return actor_id.removeprefix(local_prefix)
        parts = urlsplit(actor_id)
        name = parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.netloc
        return f"{name}@{parts.netloc}" if parts.netloc else actor_id

    def is_local(self, object_id: str) -> bool:
        """True for ids minted by this instance."""
        return object_id.startswith(self.config.base_url + "/")

    def page_path(self, object_id: str) -> str:
        """Where a resident sees an object here: its own path, or ``/remote?id=`` for others'."""
        if self.is_local(object_id):
            return urlsplit(object_id).path
        return f"{REMOTE_PATH}?id={quote(object_id, safe='')}"

    def action_url(self, object_id: str, collection: str, action: str) -> str:
        """Where a form about an object posts: ``/proposals/{id}/support`` or, for an object
        of another instance shown here, ``/remote/proposals/support?id=...``."""
        local = self.local_id(object_id, collection)
        if local is not None:
            return f"/{collection}/{local}/{action}"
        return f"{REMOTE_PATH}/{collection}/{action}?id={quote(object_id, safe='')}"

    def local_id(self, object_id: str, collection: str) -> str | None:
        """The opaque id in ``{base}/{collection}/{id}``, or None for any other id."""
        prefix = f"{self.config.base_url}/{collection}/"
        rest = object_id.removeprefix(prefix)
        if rest == object_id or not rest or "/" in rest:
            return None
        return rest


def make_kit(config: InstanceConfig) -> PageKit:
    """The page kit for an instance (no I/O: templates load on first use)."""
    return PageKit(
        config=config,
        sessions=SessionCodec(config.secret),
        offered=offered_languages(config.languages),
    )


PAGES = web.AppKey("barri.pages", PageKit)
