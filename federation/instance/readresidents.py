"""``/residents``: the verified residents' actor documents, for the aggregators only.

An aggregator rebuilding its view of a neighbourhood needs every voter's actor document: its
keys to check the proofs, its ``verifiedResidentOf`` to count the votes (DESIGN.md §7 rule 2).
Fetched one by one that is a signed GET per resident, 22,600 for Barcelona; this collection
embeds them, newest account first, a page of up to 100 at a time. The documents are the ones
each actor id serves. A list of who lives in a neighbourhood is personal data, so only the
aggregators the instance reports to may read it (signed GET), as for the support log
(DESIGN.md §6); anyone else gets 403 ``residents_private``.
"""

from __future__ import annotations

from aiohttp import web

from activitypub.collections import PageRequest, PageResult
from federation.instance import app as instance_app
from federation.instance.readaccess import require_reader
from federation.instance.readpaging import BULK_LIMIT, serve_collection
from federation.vocab.context import actor_context

RESIDENTS_PATH = "/residents"


async def instance_residents(request: web.Request) -> web.Response:
    """GET ``/residents`` (an OrderedCollection of Person documents, newest first)."""
    config = request.app[instance_app.CONFIG]
    await require_reader(request, config.report_to, "residents_private")
    actors = request.app[instance_app.ACTORS]

    async def load_page(page: PageRequest) -> PageResult:
        return await actors.resident_page(page)

    return await serve_collection(
        request, config.base_url + RESIDENTS_PATH, actors.count_residents, load_page,
        context=actor_context(), max_limit=BULK_LIMIT,
    )  # fmt: skip
