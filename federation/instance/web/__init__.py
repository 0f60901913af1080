"""The instance's server-rendered HTML pages (issue 4 "Pages"): no JavaScript, ca/es/en.

``setup_pages(app)`` adds the page routes to an app made by ``create_app``. Pages are plain
aiohttp handlers over the same services the API uses; sessions are signed cookies, every form
carries a CSRF token, and every text goes through the message catalogue.
"""

from __future__ import annotations

from aiohttp import web

import federation.instance.app as instance_app
from federation.instance.web.account_pages import add_account_routes
from federation.instance.web.render import PAGES, make_kit

__all__ = ["PAGES", "setup_pages"]


def setup_pages(app: web.Application) -> None:
    """Add the HTML pages to the instance app (idempotent: a second call changes nothing)."""
    if PAGES in app:
        return
    app[PAGES] = make_kit(app[instance_app.CONFIG])
    add_account_routes(app)
