"""Participatory processes: created and updated by the Group's admins, or cached from elsewhere.

A local process is owned by the local Group (issue 4 "Domain"); its rules (support rules,
eligible territories, supports phases) are frozen once supports open (409 ``rules_frozen``).
A process owned by another instance (the city's) is fetched, validated the same way, cached,
and its Group followed, so residents can propose into it (DESIGN.md §6).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

from activitypub import as2
from activitypub.errors import Problem
from activitypub.fetch import FetchError
from federation.instance.acts import FOLLOWERS, ActsBase, invalid, not_found, refuse
from federation.instance.ports import User
from federation.instance.rules import check_rules_change, supports_open_from
from federation.model import Process
from federation.store.sqlite import transaction
from federation.validation import ValidationError, validate
from federation.vocab import VocabError
from federation.vocab.context import document_context, format_datetime
from federation.vocab.process import TYPE as PROCESS_TYPE
from federation.vocab.process import process_from_ap, process_to_ap

#: Keys of a process draft the server assigns; a draft that sets them is refused.
ASSIGNED = ("id", "attributedTo", "audience", "published", "updated", "url", "to", "cc", "proof")


def _checked(document: Mapping[str, Any]) -> Process:
    """Validate a complete process document (JSON Schema, then the converter's rules)."""
    try:
        validate("process", document)
        return process_from_ap(document)
    except ValidationError as exc:
        invalid(exc.field, exc.detail)
    except VocabError as exc:
        invalid(exc.field, f"{exc.rule}{exc.shown}")


def _supports_from(process: Process) -> float | None:
    opens = supports_open_from(process)
    return None if opens is None else opens.timestamp()


class ProcessActs(ActsBase):
    """Processes: create, update, read, and cache remote ones."""

    def _document(
        self, draft: Mapping[str, Any], process_id: str, published: str, updated: str | None
    ) -> dict[str, Any]:
        if not isinstance(draft, Mapping):
            invalid("document", "must be a JSON object", status=400)
        for key in ASSIGNED:
            if key in draft:
                invalid(key, "is assigned by the server; leave it out of the draft")
        body = {k: copy.deepcopy(v) for k, v in draft.items() if k != "@context"}
        doc: dict[str, Any] = {"@context": document_context(), "type": list(PROCESS_TYPE)}
        doc.update(body)
        doc |= {
            "id": process_id,
            "attributedTo": self.group_id,
            "audience": self.group_id,
            "url": process_id,
            "published": published,
            "to": [as2.PUBLIC],
            "cc": [self.group_id + FOLLOWERS],
        }
        if updated is not None:
            doc["updated"] = updated
        return doc

    async def create_process(self, draft: Mapping[str, Any], *, by: User) -> Process:
        """A new process owned by the local Group, published as the Group's ``Create``."""
        self.require_staff(by, "create processes")
        process_id = self.new_id("processes")
        process = _checked(self._document(draft, process_id, format_datetime(self.now()), None))
        await self._publish_process("Create", process)
        return process

    async def update_process(
        self, process_id: str, draft: Mapping[str, Any], *, by: User
    ) -> Process:
        """Replace a local process from a draft; its rules are frozen once supports opened."""
        self.require_staff(by, "change processes")
        record = await self.process_record(process_id)
        if not record.local:
            refuse("not_owner", f"{process_id} belongs to {record.process.owner}")
        published = format_datetime(record.process.published)
        doc = self._document(draft, process_id, published, format_datetime(self.now()))
        process = _checked(doc)
        check_rules_change(record.process, process, self.now())
        await self._publish_process("Update", process)
        return process

    async def _publish_process(self, kind: str, process: Process) -> None:
        doc = process_to_ap(process)
        activity = self.activity(kind, self.group_id, doc, process.to, process.cc)

        async def write(_db: Any) -> None:
            await self.domain.put_process(
                process, doc, local=True, supports_from=_supports_from(process)
            )

        await self.publisher.publish(
            activity,
            actor=self.group_id,
            public=True,
            recipients=[self.group_id + FOLLOWERS],
            write=write,
        )

    async def get_process(self, process_id: str) -> Process | None:
        """A local or cached remote process."""
        record = await self.domain.get_process(process_id)
        return None if record is None else record.process

    async def list_processes(self) -> list[Process]:
        """Local processes first, then known remote ones (e.g. the city's)."""
        return [record.process for record in await self.domain.list_processes()]

    async def count_local_processes(self) -> int:
        """How many processes this instance's Group owns (NodeInfo ``metadata.barri``)."""
        return await self.domain.count_processes()

    async def follow_remote_process(self, process_id: str) -> Process:
        """Fetch, validate and cache a process owned elsewhere, and follow its Group."""
        if self.is_local(process_id):
            record = await self.domain.get_process(process_id)
            if record is None:
                not_found("process", process_id)
            return record.process
        document = await self._fetch(process_id)
        process = _checked(document)
        await self.cache_remote_process(process)
        await self._follow_group(process.owner)
        return process

    async def cache_remote_process(self, process: Process) -> None:
        """Store (or refresh) a validated remote process (also on its owner's ``Update``)."""
        doc = process_to_ap(process)
        async with transaction(self.db):
            await self.domain.put_process(
                process, doc, local=False, supports_from=_supports_from(process),
                fetched_at=time.time(),
            )  # fmt: skip

    async def _fetch(self, url: str) -> dict[str, Any]:
        federation = self._federation()
        if federation is None or federation.fetcher is None:
            raise Problem(503, "Unavailable", "the server is not running", reason="no_network")
        try:
            fetched = await federation.fetcher.get_activity(url)
        except FetchError as exc:
            raise Problem(
                502, "Bad Gateway", f"cannot fetch {url}: {exc}", reason="fetch_failed"
            ) from exc
        return fetched.document

    async def _follow_group(self, group: str) -> None:
        """Our Group follows the remote owner Group, once (its Accept arrives in HC's handlers)."""
        if await self.outbox.find_follow(self.group_id, group) is not None:
            return
        follow_id = self.new_id("activities")
        follow: dict[str, Any] = {
            "@context": document_context(),
            "id": follow_id,
            "type": "Follow",
            "actor": self.group_id,
            "object": group,
            "published": format_datetime(self.now()),
            "to": [group],
        }

        async def write(_db: Any) -> None:
            await self.outbox.put_follow(
                follow_id, self.group_id, group, inbox=None, shared_inbox=None,
                state="pending", now=time.time(),
            )  # fmt: skip

        await self.publisher.publish(
            follow, actor=self.group_id, public=False, recipients=[group], write=write
        )
