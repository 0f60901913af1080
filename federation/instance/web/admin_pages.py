"""The association's admin pages: verify residents, answer proposals (admins and moderators).

Anyone else gets a 403 page. Verification goes through ``Accounts.verify`` (the same rule as
``barri admin verify``); answers through ``Deliberation.answer_proposal``, which publishes the
Group's ``Update``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

import federation.instance.app as instance_app
from activitypub.collections import PageRequest
from federation.instance.accounts import AccountError, UnknownUser, check_territory
from federation.instance.content import ANSWER_MAX
from federation.instance.rules import ANSWER_STATES
from federation.instance.web.pages import deliberation, done_notice
from federation.instance.web.visit import (
    SERVICE_ERRORS,
    PageError,
    Visit,
    explain,
    form,
    page,
    status_of,
)
from federation.model import LangText, ProposalState

#: The answer states in the order the select offers them.
STATES = tuple(s.value for s in ProposalState if s in ANSWER_STATES)
ADMIN_LIST_LIMIT = 100


# -- verification ----------------------------------------------------------------------------


async def _verify_view(
    visit: Visit, *, error: str | None = None, status: int = 200, done: str | None = None
) -> web.Response:
    users = await visit.request.app[instance_app.ACCOUNTS].list_users()
    residents = [
        {"username": u.username, "registered": datetime.fromtimestamp(u.created_at, UTC)}
        for u in users
        if not u.verified
    ]
    return visit.render(
        "admin_verify.html",
        status=status,
        residents=residents,
        default_territory=visit.kit.config.territory or "",
        error=error,
        done=done,
    )


async def verify_page(visit: Visit) -> web.StreamResponse:
    """GET /admin/verify: residents waiting for verification."""
    visit.require_staff()
    done = None
    verified = visit.request.query.get("verified")
    if verified:
        user = await visit.request.app[instance_app.ACCOUNTS].users.get_user(verified)
        if user is not None and user.verification is not None:
            territory = user.verification.territory
            done = visit.t("done.verified", user=user.username, territory=territory)
    return await _verify_view(visit, done=done)


async def verify_submit(visit: Visit) -> web.StreamResponse:
    """POST /admin/verify: verify one resident with a territory code."""
    staff = visit.require_staff()
    username, territory = visit.field("username"), visit.field("territory")
    try:
        code = check_territory(territory)
    except AccountError:
        return await _verify_view(visit, error=visit.t("admin.verify.bad_territory"), status=422)
    try:
        user = await visit.request.app[instance_app.ACCOUNTS].verify(
            username, code, by=staff.username
        )
    except UnknownUser:
        raise PageError(404, "error.not_found") from None
    return visit.redirect(f"/admin/verify?verified={user.username}")


# -- official answers ------------------------------------------------------------------------


async def _answer_groups(visit: Visit) -> list[dict[str, Any]]:
    """Proposals of the processes the local Group owns, newest first, per process."""
    service = deliberation(visit)
    group = visit.request.app[instance_app.ACTORS].group_id
    first = PageRequest(before=None, after=None, limit=ADMIN_LIST_LIMIT)
    groups = []
    for process in await service.list_processes():
        if process.owner == group:
            result = await service.list_proposals(process.id, page=first)
            groups.append({"process": process, "proposals": result.items})
    return groups


async def _answers_view(
    visit: Visit, proposal_id: str | None, *, status: int = 200, **form: Any
) -> web.Response:
    chosen = None
    if proposal_id:
        chosen = await deliberation(visit).get_proposal(proposal_id)
        if chosen is None:
            raise PageError(404, "error.not_found")
    return visit.render(
        "admin_answers.html",
        status=status,
        chosen=chosen,
        open_url=visit.kit.page_path(chosen.id) if chosen else "",
        groups=[] if chosen else await _answer_groups(visit),
        answer_states=STATES,
        state=form.get("state") or (chosen.state.value if chosen else ""),
        answer=form.get("answer", ""),
        answer_max=ANSWER_MAX,
        error=form.get("error"),
        done=done_notice(visit),
    )


async def answers_page(visit: Visit) -> web.StreamResponse:
    """GET /admin/answers: the proposals to answer, or one proposal's answer form."""
    visit.require_staff()
    return await _answers_view(visit, visit.request.query.get("proposal"))


async def answer_submit(visit: Visit) -> web.StreamResponse:
    """POST /admin/answers → Deliberation.answer_proposal (state + text)."""
    staff = visit.require_staff()
    proposal_id, answer = visit.field("proposal"), visit.field("answer").strip()
    kept = {"state": visit.field("state"), "answer": answer}
    if not proposal_id:
        raise PageError(400, "rule.invalid_input")
    if visit.field("state") not in STATES:
        error = visit.t("rule.invalid_answer_state")
        return await _answers_view(visit, proposal_id, status=400, error=error, **kept)
    if not answer or len(answer) > ANSWER_MAX:
        error = (
            visit.t("error.required") if not answer else visit.t("rule.too_long", limit=ANSWER_MAX)
        )
        return await _answers_view(visit, proposal_id, status=422, error=error, **kept)
    try:
        await deliberation(visit).answer_proposal(
            staff, proposal_id, state=ProposalState(visit.field("state")), answer=LangText(answer)
        )
    except SERVICE_ERRORS as exc:
        error = explain(visit, exc)
        return await _answers_view(visit, proposal_id, status=status_of(exc), error=error, **kept)
    return visit.redirect("/admin/answers?done=answered")


def add_admin_routes(app: web.Application) -> None:
    """Routes: GET/POST /admin/verify, GET/POST /admin/answers."""
    app.router.add_get("/admin/verify", page(verify_page))
    app.router.add_post("/admin/verify", form(verify_submit))
    app.router.add_get("/admin/answers", page(answers_page))
    app.router.add_post("/admin/answers", form(answer_submit))
