"""Deleting one's own proposal, debate or comment: a confirmation page, then the ``Delete``.

``GET /{proposals|debates|comments}/{id}/delete`` asks for confirmation and changes nothing;
its form POSTs to the same address (Origin and CSRF checked by :func:`~.visit.form`) and calls
the Deliberation service. Afterwards the object's address answers 410 (ActivityPub §6.4).
Only the author is shown the page (403 otherwise); a refusal (a supported or answered
proposal) re-renders it with the rule's message and status.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from federation.instance.content import plain_text
from federation.instance.web.pages import deliberation
from federation.instance.web.visit import (
    SERVICE_ERRORS,
    PageError,
    PageHandler,
    Visit,
    explain,
    form,
    page,
    status_of,
)
from federation.model import Deletion

#: How much of a comment the confirmation page quotes.
PREVIEW = 200
_TITLES = {
    "proposals": "delete.proposal_title",
    "debates": "delete.debate_title",
    "comments": "delete.comment_title",
}


@dataclass(frozen=True)
class Target:
    """What is about to be deleted, and where the visitor goes back to or ends up."""

    collection: str
    object_id: str
    author: str
    label: str
    back: str
    after: str
    fragment: str = ""


async def _target(visit: Visit, collection: str) -> Target:
    """The object a delete route names (local ids only), or a 404 page."""
    object_id = f"{visit.kit.config.base_url}/{collection}/{visit.request.match_info['id']}"
    service, kit = deliberation(visit), visit.kit
    if collection == "proposals":
        proposal = await service.get_proposal(object_id)
        if proposal is not None:
            label = proposal.name.get(visit.lang)
            back = kit.page_path(object_id)
            return Target(collection, object_id, proposal.author, label, back,
                          kit.page_path(proposal.process))  # fmt: skip
    elif collection == "debates":
        debate = await service.get_debate(object_id)
        if debate is not None:
            after = kit.page_path(debate.process) if debate.process else "/"
            label = debate.name.get(visit.lang)
            return Target(collection, object_id, debate.author, label,
                          kit.page_path(object_id), after)  # fmt: skip
    else:
        comment = await service.get_comment(object_id)
        if comment is not None:
            root = kit.page_path((await service.parent_of(object_id)).root_id)
            label = plain_text(comment.content_html, PREVIEW)
            return Target(collection, object_id, comment.author, label, root, root, "#comments")
    raise PageError(404, "error.not_found")


async def _own_target(visit: Visit, collection: str) -> Target:
    """The target, when the visitor wrote it; else a 403 page naming the rule."""
    user = visit.require_user()
    target = await _target(visit, collection)
    if deliberation(visit).actor_id(user) != target.author:
        raise PageError(403, "rule.not_author")
    return target


def _confirmation(
    visit: Visit, target: Target, *, error: str | None = None, status: int = 200
) -> web.Response:
    return visit.render(
        "delete_confirm.html",
        status=status,
        title_key=_TITLES[target.collection],
        label=target.label,
        action=visit.request.path,
        back=target.back + target.fragment,
        error=error,
    )


async def _ask(visit: Visit, collection: str) -> web.StreamResponse:
    """GET: the confirmation form (log in first)."""
    if visit.user is None:
        return visit.login_redirect()
    return _confirmation(visit, await _own_target(visit, collection))


async def _delete(visit: Visit, collection: str) -> web.StreamResponse:
    """POST: delete through the service, then 303 to where the object was listed."""
    target = await _own_target(visit, collection)
    user, service = visit.require_user(), deliberation(visit)
    acts = {
        "proposals": service.delete_proposal,
        "debates": service.delete_debate,
        "comments": service.delete_comment,
    }
    try:
        deletion: Deletion = await acts[collection](user, target.object_id)
    except SERVICE_ERRORS as exc:
        return _confirmation(visit, target, error=explain(visit, exc), status=status_of(exc))
    assert deletion.object_id == target.object_id
    return visit.redirect_done(target.after, "deleted", target.fragment)


def _handlers(collection: str) -> tuple[PageHandler, PageHandler]:
    async def ask(visit: Visit) -> web.StreamResponse:
        return await _ask(visit, collection)

    async def delete(visit: Visit) -> web.StreamResponse:
        return await _delete(visit, collection)

    return ask, delete


def add_deletion_routes(app: web.Application) -> None:
    """``/{proposals|debates|comments}/{id}/delete``: GET asks, POST deletes."""
    for collection in _TITLES:
        ask, delete = _handlers(collection)
        app.router.add_get(f"/{collection}/{{id}}/delete", page(ask))
        app.router.add_post(f"/{collection}/{{id}}/delete", form(delete))
