"""The private supports collections (DESIGN.md §6 "Supports are not public").

Who supported what is readable only with a signed GET (authorised fetch) by the owning Group,
its server's instance actor, or an aggregator the instance reports to; anyone else gets 403
``supports_private``. Counts stay public (``supportCount`` on each proposal).

- ``{proposal}/supports`` on the proposal's author's instance: the Like ids known there.
- ``{process}/supports`` on the process's owner: every support Like it counts in the process,
  given here or received from residents of other instances (a proposal by a remote author has
  no ``{proposal}/supports`` here: that collection lives on the author's instance).
- ``{process}/support-log`` on the process's owner: every signed ``Like`` and withdrawal
  ``Undo`` of the process, local and received, in the order the owner learnt of them (newest
  first), embedded with their FEP-8b32 proofs. A backfill reads withdrawals from it and
  verifies each item from the page, with no request per item (DESIGN.md §6 "Backfill").
- ``/support-log`` at the instance's origin, for its aggregators only: the same log for the
  whole instance, its own processes' items and also every Like and Undo its residents gave in
  other instances' processes. The aggregator backfills from the author's word as well as the
  owner's, so a support the owner refused (or never received) but that counts under the
  aggregator's own rules still reaches it when its direct delivery was lost. Two filters choose
  a part of it, each part a collection of its own: ``authors=local``, only this instance's
  residents' items (wherever they gave them); ``exclude_origins=o1,o2``, none by actors of
  those origins. An aggregator reads every instance's own residents' part, then asks each for
  the rest without the instances it read: each support once, from its author's instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from aiohttp import web

from activitypub.collections import PageRequest, PageResult
from activitypub.errors import Problem
from activitypub.origin import OriginError, origin_of
from federation.instance import app as instance_app
from federation.instance.readaccess import require_reader, supports_readers
from federation.instance.readpaging import (
    BULK_LIMIT,
    not_found_problem,
    own_url,
    serve_collection,
)
from federation.store import supportlog
from federation.store.domain import DomainStore
from federation.store.proposals import ProposalStore


async def proposal_supports(request: web.Request) -> web.Response:
    """``{proposal}/supports``: Like ids, for a signed GET by the owning Group or an aggregator."""
    proposal_id = own_url(request, "/supports")
    store = ProposalStore(request.app[instance_app.DB])
    record = await store.get_proposal(proposal_id)
    if record is None:
        raise not_found_problem(proposal_id)
    readers = supports_readers(request.app, record.proposal.audience)
    await require_reader(request, readers, "supports_private")

    async def count() -> int:
        return await store.final_supports(proposal_id)

    async def load_page(page: PageRequest) -> PageResult:
        return await store.page_support_ids(proposal_id, page)

    return await serve_collection(request, proposal_id + "/supports", count, load_page)


async def _owned_process(request: web.Request, suffix: str) -> str:
    """The local process a private collection belongs to, once its reader is authorised."""
    process_id = own_url(request, suffix)
    record = await DomainStore(request.app[instance_app.DB]).get_process(process_id)
    if record is None:
        raise not_found_problem(process_id)
    if not record.local:
        # Only the owning instance counts a process's supports (DESIGN.md §6).
        raise Problem(
            404, "Not Found",
            f"{process_id} belongs to {record.process.owner}; its supports are counted there.",
        )  # fmt: skip
    readers = supports_readers(request.app, record.process.owner)
    await require_reader(request, readers, "supports_private")
    return process_id


async def process_support_log(request: web.Request) -> web.Response:
    """``{process}/support-log``: the signed Likes and Undos of a process, newest first."""
    process_id = await _owned_process(request, "/support-log")
    db = request.app[instance_app.DB]

    async def count() -> int:
        return await supportlog.count_process(db, process_id)

    async def load_page(page: PageRequest) -> PageResult:
        return await supportlog.page_process(db, process_id, page)

    return await serve_collection(
        request, process_id + "/support-log", count, load_page, max_limit=BULK_LIMIT
    )


async def instance_support_log(request: web.Request) -> web.Response:
    """``/support-log``: the instance's whole support log, newest first, for its aggregators;
    ``authors=local`` and ``exclude_origins`` choose a part of it (a collection of its own)."""
    await require_reader(request, request.app[instance_app.CONFIG].report_to, "supports_private")
    db = request.app[instance_app.DB]
    origin = request.app[instance_app.CONFIG].base_url
    chosen = log_filter(request.query, origin)

    async def count() -> int:
        return await supportlog.count_instance(db, chosen)

    async def load_page(page: PageRequest) -> PageResult:
        return await supportlog.page_instance(db, page, chosen)

    return await serve_collection(
        request, log_collection_id(origin, chosen), count, load_page, max_limit=BULK_LIMIT
    )


def log_filter(query: Mapping[str, str], origin: str) -> supportlog.LogFilter:
    """The part of the instance's log a query asks for: ``authors=local`` (only this
    instance's residents' items) and ``exclude_origins`` (comma-separated origins whose actors'
    items are left out); 400 problem for anything else."""
    authors = query.get("authors")
    if authors not in (None, "local"):
        raise Problem(400, "Bad Request", "authors must be 'local' (or absent, for everyone).")
    excluded = set()
    for part in filter(None, query.get("exclude_origins", "").split(",")):
        try:
            normal = origin_of(part)
        except OriginError as exc:
            raise Problem(400, "Bad Request", f"exclude_origins: {exc}.") from exc
        if str(normal) != part.removesuffix("/"):  # an origin, normalised, and nothing more
            detail = f"exclude_origins: {part!r} is not a normalised origin (scheme://host[:port])."
            raise Problem(400, "Bad Request", detail)
        excluded.add(str(normal))
    if len(excluded) > supportlog.MAX_EXCLUDED:
        raise Problem(
            400, "Bad Request",
            f"exclude_origins names {len(excluded)} origins; at most {supportlog.MAX_EXCLUDED}.",
        )  # fmt: skip
    local = str(origin_of(origin)) if authors == "local" else None
    return supportlog.LogFilter(local, tuple(sorted(excluded)))


def log_collection_id(origin: str, chosen: supportlog.LogFilter) -> str:
    """The id of the part of ``/support-log`` that ``chosen`` lets through (its pages' links
    keep the query)."""
    params = [("authors", "local")] if chosen.local is not None else []
    if chosen.excluded:
        params.append(("exclude_origins", ",".join(chosen.excluded)))
    return origin + "/support-log" + ("?" + urlencode(params) if params else "")


async def process_supports(request: web.Request) -> web.Response:
    """``{process}/supports``: every support Like the owner counts in its process (the final
    ones, local and received, newest first), for an aggregator or the owner's server actor."""
    process_id = await _owned_process(request, "/supports")
    store = ProposalStore(request.app[instance_app.DB])

    async def count() -> int:
        return await store.count_process_supports(process_id)

    async def load_page(page: PageRequest) -> PageResult:
        return await store.page_process_support_ids(process_id, page)

    return await serve_collection(request, process_id + "/supports", count, load_page)
