"""The reading pages: start page, process, proposal, debate, comment and deleted objects.

Object pages are drawn at the objects' own ids: the read side (``readside.register_html``)
calls these renderers when a browser asks for HTML, and answers AS2 to servers. The same
view functions re-render a page with a form error when an action on it is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

import federation.instance.app as instance_app
from activitypub.collections import PageRequest, PageResult, parse_page_request
from federation.instance.content import COMMENT_SOURCE_MAX, CONCLUSIONS_MAX
from federation.instance.deliberation import Deliberation
from federation.instance.rules import MAX_DEPTH, active_phase
from federation.instance.web.views import (
    DONE,
    allows_in_words,
    anchor_of,
    build_thread,
    rules_in_words,
)
from federation.instance.web.visit import PageError, Visit, run_page, start_visit, with_query
from federation.model import Alignment, Debate, Process, Proposal
from federation.store.paging import SEQ_SHAPE

ObjectPage = Callable[[Visit, str], Awaitable[web.StreamResponse]]
HtmlRenderer = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
ALIGNMENTS = tuple(alignment.value for alignment in Alignment)


def deliberation(visit: Visit) -> Deliberation:
    """The instance's Deliberation service."""
    return visit.request.app[instance_app.DELIBERATION]


def object_renderer(render: ObjectPage) -> HtmlRenderer:
    """A read-side HTML renderer ``(request, object_id)`` running ``render`` as a page."""

    async def renderer(request: web.Request, object_id: str) -> web.StreamResponse:
        visit = await start_visit(request)

        async def handler(current: Visit) -> web.StreamResponse:
            return await render(current, object_id)

        return visit.finish(await run_page(visit, handler))

    return renderer


def done_notice(visit: Visit) -> str | None:
    """The confirmation a redirect asked for with ``?done=``."""
    done = visit.request.query.get("done", "")
    return visit.t(f"done.{done}") if done in DONE else None


def propose_url(visit: Visit, process: Process) -> str | None:
    """Where to write a proposal for ``process``, when its current phase takes them."""
    phase = active_phase(process, deliberation(visit).now())
    if phase is None or not phase.allows_proposals:
        return None
    return visit.kit.action_url(process.id, "processes", "proposals/new")


def new_debate_url(visit: Visit, process: Process) -> str | None:
    """Where to open a debate in ``process``, when its current phase takes them."""
    phase = active_phase(process, deliberation(visit).now())
    if phase is None or not phase.allows_debates:
        return None
    return visit.kit.action_url(process.id, "processes", "debates/new")


def object_links(visit: Visit, object_id: str, collection: str) -> dict[str, Any]:
    """What a page needs to link to itself and post its forms (local or remote object)."""
    here = visit.kit.page_path(object_id)
    return {
        "here": here,
        "reply_base": here + ("&" if "?" in here else "?") + "reply_to=",
        "act": lambda action: visit.kit.action_url(object_id, collection, action),
    }


# -- start page ------------------------------------------------------------------------------


async def index_page(visit: Visit) -> web.StreamResponse:
    """GET /: the instance's name and its processes (local first, then remote ones)."""
    service = deliberation(visit)
    now = service.now()
    items = []
    for process in await service.list_processes():
        items.append(
            {
                "process": process,
                "url": visit.kit.page_path(process.id),
                "local": visit.kit.is_local(process.id),
                "host": urlsplit(process.id).netloc,
                "active": active_phase(process, now),
                "propose_url": propose_url(visit, process),
            }
        )
    return visit.render("index.html", processes=items, done=done_notice(visit))


# -- process ---------------------------------------------------------------------------------


def _page_request(visit: Visit, prefix: str = "") -> PageRequest | None:
    """The page a process page asks for: ``after``/``before`` (proposals) or, with ``prefix``,
    ``debates_after``/``debates_before``; a bad cursor is a 400 page."""
    query = visit.request.query
    wanted = {key: query[prefix + key] for key in ("after", "before", "limit")
              if prefix + key in query}  # fmt: skip
    try:
        return parse_page_request(wanted, key_shape=SEQ_SHAPE)
    except ValueError as exc:
        raise PageError(400, "error.http") from exc


def _page_link(visit: Visit, process_id: str, direction: str, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    return with_query(visit.kit.page_path(process_id), **{direction: cursor})


def _paging(visit: Visit, process_id: str, result: PageResult, prefix: str = "") -> dict[str, Any]:
    return {
        f"{prefix}older_url": _page_link(visit, process_id, prefix + "after", result.next_cursor),
        f"{prefix}newer_url": _page_link(visit, process_id, prefix + "before", result.prev_cursor),
    }


async def process_page(visit: Visit, process_id: str) -> web.StreamResponse:
    """GET a process id from a browser."""
    return await process_view(visit, process_id)


async def process_view(visit: Visit, process_id: str) -> web.StreamResponse:
    """A process: phases (the active one marked), rules in words, proposals with counts."""
    service = deliberation(visit)
    process = await service.get_process(process_id)
    if process is None:
        raise PageError(404, "error.not_found")
    page = await service.list_proposals(process_id, page=_page_request(visit))
    proposals = [
        {"proposal": p, "url": visit.kit.page_path(p.id), "supports": await _count(service, p)}
        for p in page.items
    ]
    debates = await service.list_debates(process_id, page=_page_request(visit, "debates_"))
    return visit.render(
        "process.html",
        process=process,
        local=visit.kit.is_local(process.id),
        host=urlsplit(process.id).netloc,
        active=active_phase(process, service.now()),
        allows=lambda phase: allows_in_words(visit.t, phase),
        rules_in_words=rules_in_words(visit.t, process),
        proposals=proposals,
        propose_url=propose_url(visit, process),
        debates=[{"debate": d, "url": visit.kit.page_path(d.id)} for d in debates.items],
        new_debate_url=new_debate_url(visit, process),
        done=done_notice(visit),
        here=visit.kit.page_path(process.id),
        **_paging(visit, process.id, page),
        **_paging(visit, process.id, debates, "debates_"),
    )


async def _count(service: Deliberation, proposal: Proposal) -> int:
    if proposal.support_count is not None:
        return proposal.support_count
    return await service.support_count(proposal.id)


# -- proposal --------------------------------------------------------------------------------


async def _thread_context(visit: Visit, root_id: str, **form: Any) -> dict[str, Any]:
    service = deliberation(visit)
    thread = build_thread(await service.thread(root_id))
    user = visit.user
    reply_to = form.pop("reply_to", None) or visit.request.query.get("reply_to")
    target = thread.by_id.get(reply_to or "")
    return {
        "nodes": thread.roots,
        "comment_count": thread.count,
        "max_depth": MAX_DEPTH,
        "reply_to": target.comment.id if target else None,
        "reply_label": visit.kit.actor_label(target.comment.author) if target else "",
        "comment_error": form.pop("comment_error", None),
        "comment_body": form.pop("comment_body", ""),
        "comment_alignment": form.pop("comment_alignment", Alignment.NEUTRAL.value),
        "comment_max": COMMENT_SOURCE_MAX,
        "alignments": ALIGNMENTS,
        # The resident's own votes (comment id -> up?); where a comment's forms post.
        "my_votes": await service.my_comment_votes(user, root_id) if user else {},
        # Comments written here by the resident: each gets a link to delete it.
        "own_comments": {
            node.comment.id
            for node in thread.by_id.values()
            if user is not None
            and node.comment.author == service.actor_id(user)
            and visit.kit.is_local(node.comment.id)
        },
        "comment_action": lambda comment_id, action: visit.kit.action_url(
            comment_id, "comments", action
        ),
    }


async def proposal_view(
    visit: Visit, proposal_id: str, *, status: int = 200, **form: Any
) -> web.Response:
    """A proposal's page; ``form`` carries a refused form's error and input back."""
    service = deliberation(visit)
    proposal = await service.get_proposal(proposal_id)
    if proposal is None:
        raise PageError(404, "error.not_found")
    process = await service.get_process(proposal.process)
    phase = active_phase(process, service.now()) if process else None
    user = visit.user
    author = user is not None and service.actor_id(user) == proposal.author
    thread = await _thread_context(visit, proposal.id, **form)
    support_count = await _count(service, proposal)
    is_author = author and visit.kit.is_local(proposal.id)
    return visit.render(
        "proposal.html",
        status=status,
        proposal=proposal,
        process=process,
        process_url=visit.kit.page_path(process.id) if process else "",
        support_count=support_count,
        # The same conditions as rules.check_can_delete_proposal (the service re-checks).
        can_delete=is_author and support_count == 0 and not proposal.state.answered,
        supported=user is not None and await service.has_supported(user, proposal.id),
        supports_open=phase is not None and phase.allows_supports,
        remaining=(
            await service.remaining_supports(user, proposal.process)
            if user is not None and process is not None
            else None
        ),
        is_author=is_author,
        done=done_notice(visit),
        error=form.pop("error", None),
        **thread,
        **object_links(visit, proposal.id, "proposals"),
    )


async def proposal_page(visit: Visit, proposal_id: str) -> web.StreamResponse:
    """GET a proposal id from a browser."""
    return await proposal_view(visit, proposal_id)


# -- debate ----------------------------------------------------------------------------------


async def debate_view(
    visit: Visit, debate_id: str, *, status: int = 200, **form: Any
) -> web.Response:
    """A debate's page; its author can close it with conclusions."""
    service = deliberation(visit)
    debate: Debate | None = await service.get_debate(debate_id)
    if debate is None:
        raise PageError(404, "error.not_found")
    process = await service.get_process(debate.process) if debate.process else None
    user = visit.user
    author = user is not None and service.actor_id(user) == debate.author
    thread = await _thread_context(visit, debate.id, **form)
    return visit.render(
        "debate.html",
        status=status,
        debate=debate,
        process=process,
        process_url=visit.kit.page_path(process.id) if process else "",
        is_author=author and visit.kit.is_local(debate.id),
        conclusions=form.pop("conclusions", ""),
        conclusions_max=CONCLUSIONS_MAX,
        done=done_notice(visit),
        error=form.pop("error", None),
        **thread,
        **object_links(visit, debate.id, "debates"),
    )


async def debate_page(visit: Visit, debate_id: str) -> web.StreamResponse:
    """GET a debate id from a browser."""
    return await debate_view(visit, debate_id)


async def root_view(visit: Visit, root_id: str, *, status: int = 200, **form: Any) -> web.Response:
    """The page of a thread's root (a proposal or a debate), e.g. after a refused vote."""
    service = deliberation(visit)
    if await service.get_proposal(root_id) is not None:
        return await proposal_view(visit, root_id, status=status, **form)
    if await service.get_debate(root_id) is not None:
        return await debate_view(visit, root_id, status=status, **form)
    raise PageError(404, "error.not_found")


# -- comments and deleted objects ------------------------------------------------------------


async def comment_page(visit: Visit, comment_id: str) -> web.StreamResponse:
    """GET a comment id from a browser: 303 to its place in the thread it belongs to."""
    parent = await deliberation(visit).parent_of(comment_id)
    return visit.redirect(f"{visit.kit.page_path(parent.root_id)}#c-{anchor_of(comment_id)}")


async def tombstone_page(visit: Visit, object_id: str) -> web.StreamResponse:
    """GET a deleted id from a browser: 410 Gone."""
    return visit.render("gone.html", status=410)


async def not_found_page(visit: Visit, object_id: str) -> web.StreamResponse:
    """GET an id this instance does not know, from a browser: the 404 page."""
    raise PageError(404, "error.not_found")


# -- objects of other instances --------------------------------------------------------------


async def remote_page(visit: Visit) -> web.StreamResponse:
    """GET /remote?id=: a process, proposal or debate of another instance known here.

    A neighbourhood's residents take part in the city's processes from their own instance:
    these pages show what this instance has cached (never fetched on request) with the same
    forms, posting to ``/remote/...`` routes. A local id redirects to its own page.
    """
    object_id = visit.request.query.get("id", "")
    if visit.kit.is_local(object_id):
        return visit.redirect(visit.kit.page_path(object_id))
    service = deliberation(visit)
    if await service.get_process(object_id) is not None:
        return await process_view(visit, object_id)
    if await service.get_proposal(object_id) is not None:
        return await proposal_view(visit, object_id)
    if await service.get_debate(object_id) is not None:
        return await debate_view(visit, object_id)
    raise PageError(404, "error.not_found")
