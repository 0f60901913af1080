"""Running a Barri server (instance or aggregator) until SIGINT/SIGTERM, for ``barri serve``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web


class StartupError(RuntimeError):
    """The server cannot start (database, port); one line says why."""


def configure_logging(verbose: bool) -> None:
    """Warnings and errors only by default, so that a failed start stays one line."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def serve_until_signalled(app: web.Application, host: str, port: int, label: str) -> int:
    """Serve ``app`` until SIGINT or SIGTERM, then shut down gracefully (work stays queued)."""
    runner = web.AppRunner(app, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            # aiohttp wraps the errno in a long message; the errno's own text is the clear one.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartupError(f"cannot listen on {host}:{port}: {reason}") from exc
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        shown = f"[{host}]" if ":" in host else host
        print(f"barri: serving {label} on http://{shown}:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
