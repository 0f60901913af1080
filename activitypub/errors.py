"""RFC 9457 problem details: one exception type and one aiohttp middleware that renders it."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

PROBLEM_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


class Problem(Exception):
    """An error a client can act on, rendered as ``application/problem+json`` (RFC 9457)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(f"{status} {title}: {detail or ''}".rstrip(": "))
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extensions = extensions

    def to_json(self) -> dict[str, Any]:
        """The problem document (RFC 9457 §3)."""
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            doc["detail"] = self.detail
        doc.update(self.extensions)
        return doc

    def response(self) -> web.Response:
        """Render as an aiohttp response."""
        return problem_response(self)


def problem_response(problem: Problem) -> web.Response:
    """An aiohttp response carrying ``problem`` as ``application/problem+json``."""
    return web.Response(
        status=problem.status,
        body=json.dumps(problem.to_json(), ensure_ascii=False).encode(),
        content_type=PROBLEM_TYPE,
        headers=problem.headers,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into problem+json; never leak a traceback to the client."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(_from_http_exception(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            Problem(
                500, "Internal Server Error", "The server hit an unexpected error; it was logged."
            )
        )


_KEPT_HEADERS = ("allow", "retry-after", "www-authenticate")


def _from_http_exception(exc: web.HTTPException) -> Problem:
    """Map aiohttp's own 4xx/5xx (404 route, 405 method, 413 body) to a problem."""
    default_text = f"{exc.status}: {exc.reason}"
    detail = exc.text if exc.text and exc.text != default_text else None
    headers = {k: v for k, v in exc.headers.items() if k.lower() in _KEPT_HEADERS}
    return Problem(exc.status, exc.reason, detail, headers=headers)
