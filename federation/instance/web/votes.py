"""Up and down votes on comments, from the thread on a proposal's or a debate's page.

Decidim's comment votes: one per resident per comment (``already_voted``), withdrawn with
an unvote (``no_vote_to_withdraw`` when there is none). Each POST is CSRF-checked by
:func:`~.visit.form`, calls one Deliberation method and answers 303 to the comment's place
in its thread; a refusal re-renders the thread's page with the rule's message and status.
"""

from __future__ import annotations

from aiohttp import web

from activitypub.errors import Problem
from federation.instance.web.actions import form_object_id
from federation.instance.web.pages import deliberation, root_view
from federation.instance.web.render import REMOTE_PATH
from federation.instance.web.views import anchor_of
from federation.instance.web.visit import (
    SERVICE_ERRORS,
    PageError,
    Visit,
    explain,
    form,
    status_of,
)


async def comment_root(visit: Visit, comment_id: str) -> str:
    """The proposal or debate a live comment hangs from; a 404 page otherwise."""
    service = deliberation(visit)
    if await service.get_comment(comment_id) is None:
        raise PageError(404, "error.not_found")
    try:
        return (await service.parent_of(comment_id)).root_id
    except Problem as exc:  # the thread's root is not known here
        raise PageError(404, "error.not_found") from exc


async def _vote(visit: Visit, up: bool | None) -> web.StreamResponse:
    """Vote up (True), down (False) or withdraw the vote (None), then back to the comment."""
    user = visit.require_user()
    comment_id = form_object_id(visit, "comments")
    root_id = await comment_root(visit, comment_id)
    service = deliberation(visit)
    try:
        if up is None:
            await service.unvote_comment(user, comment_id)
        else:
            await service.vote_comment(user, comment_id, up=up)
    except SERVICE_ERRORS as exc:
        return await root_view(visit, root_id, status=status_of(exc), error=explain(visit, exc))
    done = "unvoted" if up is None else "voted"
    fragment = f"#c-{anchor_of(comment_id)}"
    return visit.redirect_done(visit.kit.page_path(root_id), done, fragment)


async def upvote_submit(visit: Visit) -> web.StreamResponse:
    """POST /comments/{id}/upvote → Deliberation.vote_comment(up=True)."""
    return await _vote(visit, True)


async def downvote_submit(visit: Visit) -> web.StreamResponse:
    """POST /comments/{id}/downvote → Deliberation.vote_comment(up=False)."""
    return await _vote(visit, False)


async def unvote_submit(visit: Visit) -> web.StreamResponse:
    """POST /comments/{id}/unvote → Deliberation.unvote_comment."""
    return await _vote(visit, None)


def add_vote_routes(app: web.Application) -> None:
    """The vote forms of local comments and (``/remote/...?id=``) of other instances' ones."""
    for action, handler in (
        ("upvote", upvote_submit), ("downvote", downvote_submit), ("unvote", unvote_submit),
    ):  # fmt: skip
        app.router.add_post(f"/comments/{{id}}/{action}", form(handler))
        app.router.add_post(f"{REMOTE_PATH}/comments/{action}", form(handler))
