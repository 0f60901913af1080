"""The forms that act: new proposal or debate, support and its withdrawal, comments, closing.

Each POST is CSRF-checked by :func:`~.visit.form`, calls exactly one Deliberation method, and
answers 303 to the object's page (Post/Redirect/Get). A refusal re-renders the page with the
rule's message in the visitor's language and the refusal's own status (403, 409, 400 ...).
"""

from __future__ import annotations

from aiohttp import web

from federation.instance.content import COMMENT_SOURCE_MAX, CONCLUSIONS_MAX, NAME_MAX, SOURCE_MAX
from federation.instance.web.pages import (
    debate_view,
    deliberation,
    proposal_view,
    remote_page,
)
from federation.instance.web.render import REMOTE_PATH
from federation.instance.web.visit import (
    SERVICE_ERRORS,
    PageError,
    ServiceError,
    Visit,
    explain,
    form,
    page,
    status_of,
)
from federation.model import Alignment


def form_object_id(visit: Visit, collection: str) -> str:
    """The id a form route names: ``{base}/{collection}/{id}``, or ``?id=`` on /remote routes."""
    local = visit.request.match_info.get("id")
    if local is not None:
        return f"{visit.kit.config.base_url}/{collection}/{local}"
    remote = visit.request.query.get("id", "")
    if not remote or visit.kit.is_local(remote):
        raise PageError(404, "error.not_found")
    return remote


def _done(visit: Visit, object_id: str, done: str, fragment: str = "") -> web.Response:
    """303 back to the object's page with its confirmation."""
    return visit.redirect_done(visit.kit.page_path(object_id), done, fragment)


def _too_long(visit: Visit, value: str, limit: int) -> str | None:
    return visit.t("rule.too_long", limit=limit) if len(value) > limit else None


# -- new proposal and new debate (one form: a title and a markdown body) ---------------------


async def _new_form(
    visit: Visit, template: str, step: str, *, error: str | None = None, status: int = 200
) -> web.Response:
    """The new-proposal or new-debate form of a process, with the fields as typed."""
    process = await deliberation(visit).get_process(form_object_id(visit, "processes"))
    if process is None:
        raise PageError(404, "error.not_found")
    return visit.render(
        template,
        status=status,
        process=process,
        process_url=visit.kit.page_path(process.id),
        action=visit.kit.action_url(process.id, "processes", step),
        error=error,
        name=visit.field("name"),
        body=visit.field("body"),
        name_max=NAME_MAX,
        body_max=SOURCE_MAX,
    )


def _title_and_body(visit: Visit) -> tuple[str, str, str | None]:
    """The submitted title and body, and what is wrong with them (None when nothing)."""
    name, body = visit.field("name").strip(), visit.field("body").strip()
    problem = (
        (visit.t("error.required") if not name or not body else None)
        or _too_long(visit, name, NAME_MAX)
        or _too_long(visit, body, SOURCE_MAX)
    )
    return name, body, problem


async def new_proposal_page(visit: Visit) -> web.StreamResponse:
    """GET /processes/{id}/proposals/new: the form (log in first)."""
    if visit.user is None:
        return visit.login_redirect()
    return await _new_form(visit, "proposal_new.html", "proposals/new")


async def new_proposal_submit(visit: Visit) -> web.StreamResponse:
    """POST /processes/{id}/proposals/new → Deliberation.create_proposal → the proposal."""
    user = visit.require_user()
    name, body, problem = _title_and_body(visit)
    form = ("proposal_new.html", "proposals/new")
    if problem:
        return await _new_form(visit, *form, error=problem, status=422)
    try:
        proposal = await deliberation(visit).create_proposal(
            user, form_object_id(visit, "processes"), name=name, body_markdown=body
        )
    except SERVICE_ERRORS as exc:
        return await _new_form(visit, *form, error=explain(visit, exc), status=status_of(exc))
    return _done(visit, proposal.id, "proposal_created")


async def new_debate_page(visit: Visit) -> web.StreamResponse:
    """GET /processes/{id}/debates/new: the form (log in first)."""
    if visit.user is None:
        return visit.login_redirect()
    return await _new_form(visit, "debate_new.html", "debates/new")


async def new_debate_submit(visit: Visit) -> web.StreamResponse:
    """POST /processes/{id}/debates/new → Deliberation.create_debate → the debate."""
    user = visit.require_user()
    name, body, problem = _title_and_body(visit)
    form = ("debate_new.html", "debates/new")
    if problem:
        return await _new_form(visit, *form, error=problem, status=422)
    try:
        debate = await deliberation(visit).create_debate(
            user, form_object_id(visit, "processes"), name=name, body_markdown=body
        )
    except SERVICE_ERRORS as exc:
        return await _new_form(visit, *form, error=explain(visit, exc), status=status_of(exc))
    return _done(visit, debate.id, "debate_created")


# -- supports and withdrawal -----------------------------------------------------------------


async def support_submit(visit: Visit) -> web.StreamResponse:
    """POST /proposals/{id}/support → Deliberation.support."""
    user, proposal_id = visit.require_user(), form_object_id(visit, "proposals")
    try:
        await deliberation(visit).support(user, proposal_id)
    except SERVICE_ERRORS as exc:
        return await _refused_on_proposal(visit, proposal_id, exc)
    return _done(visit, proposal_id, "supported")


async def unsupport_submit(visit: Visit) -> web.StreamResponse:
    """POST /proposals/{id}/unsupport → Deliberation.withdraw_support."""
    user, proposal_id = visit.require_user(), form_object_id(visit, "proposals")
    try:
        await deliberation(visit).withdraw_support(user, proposal_id)
    except SERVICE_ERRORS as exc:
        return await _refused_on_proposal(visit, proposal_id, exc)
    return _done(visit, proposal_id, "unsupported")


async def withdraw_submit(visit: Visit) -> web.StreamResponse:
    """POST /proposals/{id}/withdraw → Deliberation.withdraw_proposal (its author only)."""
    user, proposal_id = visit.require_user(), form_object_id(visit, "proposals")
    try:
        await deliberation(visit).withdraw_proposal(user, proposal_id)
    except SERVICE_ERRORS as exc:
        return await _refused_on_proposal(visit, proposal_id, exc)
    return _done(visit, proposal_id, "withdrawn")


async def _refused_on_proposal(
    visit: Visit, proposal_id: str, exc: ServiceError
) -> web.StreamResponse:
    if status_of(exc) == 404:
        raise PageError(404, "error.not_found")
    return await proposal_view(visit, proposal_id, status=status_of(exc), error=explain(visit, exc))


# -- comments --------------------------------------------------------------------------------


def _alignment(visit: Visit) -> Alignment:
    try:
        return Alignment(visit.field("alignment") or Alignment.NEUTRAL.value)
    except ValueError:
        raise PageError(400, "rule.invalid_input") from None


async def _comment(visit: Visit, root_id: str) -> tuple[int, str] | None:
    """Post the comment; None when published, else the refusal's (status, message)."""
    user = visit.require_user()
    body, alignment = visit.field("body").strip(), _alignment(visit)
    parent = visit.field("parent") or root_id
    problem = (visit.t("error.required") if not body else None) or _too_long(
        visit, body, COMMENT_SOURCE_MAX
    )
    if problem:
        return 422, problem
    service = deliberation(visit)
    if parent != root_id and parent not in {e.comment.id for e in await service.thread(root_id)}:
        raise PageError(400, "rule.invalid_input")  # a reply must stay in this thread
    try:
        await service.comment(user, parent, body_markdown=body, alignment=alignment)
    except SERVICE_ERRORS as exc:
        return status_of(exc), explain(visit, exc)
    return None


def _comment_form_back(visit: Visit, error: str) -> dict[str, str | None]:
    return {
        "comment_error": error,
        "comment_body": visit.field("body"),
        "comment_alignment": visit.field("alignment") or Alignment.NEUTRAL.value,
        "reply_to": visit.field("parent") or None,
    }


async def proposal_comment_submit(visit: Visit) -> web.StreamResponse:
    """POST /proposals/{id}/comment → Deliberation.comment (a reply when ``parent`` is set)."""
    proposal_id = form_object_id(visit, "proposals")
    refused = await _comment(visit, proposal_id)
    if refused is not None:
        status, error = refused
        return await proposal_view(
            visit, proposal_id, status=status, **_comment_form_back(visit, error)
        )
    return _done(visit, proposal_id, "commented", "#comments")


async def debate_comment_submit(visit: Visit) -> web.StreamResponse:
    """POST /debates/{id}/comment → Deliberation.comment."""
    debate_id = form_object_id(visit, "debates")
    refused = await _comment(visit, debate_id)
    if refused is not None:
        status, error = refused
        return await debate_view(
            visit, debate_id, status=status, **_comment_form_back(visit, error)
        )
    return _done(visit, debate_id, "commented", "#comments")


async def close_debate_submit(visit: Visit) -> web.StreamResponse:
    """POST /debates/{id}/close → Deliberation.close_debate (its author, with conclusions)."""
    user, debate_id = visit.require_user(), form_object_id(visit, "debates")
    conclusions = visit.field("conclusions").strip()
    error = (visit.t("error.required") if not conclusions else None) or _too_long(
        visit, conclusions, CONCLUSIONS_MAX
    )
    status = 422
    if error is None:
        try:
            await deliberation(visit).close_debate(user, debate_id, conclusions=conclusions)
        except SERVICE_ERRORS as exc:
            error, status = explain(visit, exc), status_of(exc)
    if error is not None:
        return await debate_view(
            visit, debate_id, status=status, error=error, conclusions=conclusions
        )
    return _done(visit, debate_id, "closed")


def add_action_routes(app: web.Application) -> None:
    """Routes of the acting forms (sub-paths of the objects, never their ids)."""
    app.router.add_get("/processes/{id}/proposals/new", page(new_proposal_page))
    app.router.add_post("/processes/{id}/proposals/new", form(new_proposal_submit))
    app.router.add_get("/processes/{id}/debates/new", page(new_debate_page))
    app.router.add_post("/processes/{id}/debates/new", form(new_debate_submit))
    app.router.add_post("/proposals/{id}/support", form(support_submit))
    app.router.add_post("/proposals/{id}/unsupport", form(unsupport_submit))
    app.router.add_post("/proposals/{id}/withdraw", form(withdraw_submit))
    app.router.add_post("/proposals/{id}/comment", form(proposal_comment_submit))
    app.router.add_post("/debates/{id}/comment", form(debate_comment_submit))
    app.router.add_post("/debates/{id}/close", form(close_debate_submit))
    # The same forms for objects of other instances shown here (``?id=`` names them).
    app.router.add_get(REMOTE_PATH, page(remote_page))
    app.router.add_get(REMOTE_PATH + "/processes/proposals/new", page(new_proposal_page))
    app.router.add_post(REMOTE_PATH + "/processes/proposals/new", form(new_proposal_submit))
    app.router.add_get(REMOTE_PATH + "/processes/debates/new", page(new_debate_page))
    app.router.add_post(REMOTE_PATH + "/processes/debates/new", form(new_debate_submit))
    app.router.add_post(REMOTE_PATH + "/proposals/support", form(support_submit))
    app.router.add_post(REMOTE_PATH + "/proposals/unsupport", form(unsupport_submit))
    app.router.add_post(REMOTE_PATH + "/proposals/comment", form(proposal_comment_submit))
    app.router.add_post(REMOTE_PATH + "/debates/comment", form(debate_comment_submit))
