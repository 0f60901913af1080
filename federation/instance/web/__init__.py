"""The instance's server-rendered HTML pages (issue 4 "Pages"): no JavaScript, ca/es/en.

``setup_pages(app)`` adds the page routes to an app made by ``create_app`` and registers the
HTML renderers the read side calls when a browser asks for a process, proposal, debate or
comment id (the same URL answers AS2 to servers). Sessions are signed cookies, every form
carries a CSRF token, and every text goes through the message catalogue.
"""

from __future__ import annotations

from aiohttp import web

import federation.instance.app as instance_app
from federation.instance.readside import register_html
from federation.instance.web.account_pages import add_account_routes
from federation.instance.web.actions import add_action_routes
from federation.instance.web.admin_pages import add_admin_routes
from federation.instance.web.deletion_pages import add_deletion_routes
from federation.instance.web.pages import (
    comment_page,
    debate_page,
    index_page,
    not_found_page,
    object_renderer,
    process_page,
    proposal_page,
    tombstone_page,
)
from federation.instance.web.render import PAGES, make_kit
from federation.instance.web.visit import page
from federation.instance.web.votes import add_vote_routes

__all__ = ["PAGES", "setup_pages"]


def setup_pages(app: web.Application) -> None:
    """Add the HTML pages to the instance app (idempotent: a second call changes nothing)."""
    if PAGES in app:
        return
    app[PAGES] = make_kit(app[instance_app.CONFIG])
    app.router.add_get("/", page(index_page))
    add_account_routes(app)
    add_action_routes(app)
    add_admin_routes(app)
    add_vote_routes(app)
    add_deletion_routes(app)
    register_html(app, "process", object_renderer(process_page))
    register_html(app, "proposal", object_renderer(proposal_page))
    register_html(app, "debate", object_renderer(debate_page))
    register_html(app, "comment", object_renderer(comment_page))
    register_html(app, "tombstone", object_renderer(tombstone_page))
    register_html(app, "not_found", object_renderer(not_found_page))
