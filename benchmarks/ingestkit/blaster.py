"""Replay pre-built HTTP/1.1 requests over K keep-alive connections, in its own process.

``python -m benchmarks.ingestkit.blaster FILE HOST PORT K`` prints one JSON object: wall-clock
start and end (``time.time()``), the count of each response status, and a few failure bodies.
The client is a bare asyncio stream per connection (write a request, read its response), so
that the load generator costs far less CPU than the server it measures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks.ingestkit.deliveries import read


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _connection(
    host: str, port: int, queue: list[bytes], statuses: Counter[int], failures: list[str]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while queue:
            writer.write(queue.pop())
            status, body = await _response(reader)
            statuses[status] += 1
            if status != 202 and len(failures) < 5:
                failures.append(f"{status}: {body[:300].decode(errors='replace')}")
    finally:
        writer.close()


async def blast(requests: list[bytes], host: str, port: int, concurrency: int) -> dict[str, object]:
    """Send every request (each connection takes the next one when answered)."""
    queue = list(reversed(requests))
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    start = time.time()
    await asyncio.gather(
        *(_connection(host, port, queue, statuses, failures) for _ in range(concurrency))
    )
    return {
        "start": start,
        "end": time.time(),
        "sent": len(requests),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "failures": failures,
    }


def main(argv: list[str]) -> int:
    """FILE HOST PORT K: replay FILE's requests, print the JSON summary."""
    path, host, port, concurrency = Path(argv[0]), argv[1], int(argv[2]), int(argv[3])
    requests = list(read(path))
    print(json.dumps(asyncio.run(blast(requests, host, port, concurrency))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
