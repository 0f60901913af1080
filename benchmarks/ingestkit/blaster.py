"""Replay pre-built HTTP/1.1 requests over K keep-alive connections, in its own process.

``python -m benchmarks.ingestkit.blaster FILE HOST PORT K [RATE]`` prints one JSON object:
wall-clock start and end (``time.time()``), the count of each response status, and a few
failure bodies. Without RATE each connection sends its next request as soon as the last one is
answered (throughput). With RATE the load is open-loop: request i is due ``i / RATE`` seconds
after the start whether or not the server keeps up, and ``timeline`` gives, per request in
order, its due, sent and answered wall-clock times and status, so a latency measured from the
due time includes any wait a slow server caused (no coordinated omission).
The client is a bare asyncio stream per connection (write a request, read its response), so
that the load generator costs far less CPU than the server it measures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
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


@dataclass
class _Paced:
    """The shared state of an open-loop run: the next request and what each one met."""

    requests: list[bytes]
    rate: float
    start: float  # time.time() at the start
    began: float  # the loop's clock at the start
    timeline: list[list[float]]
    next: int = 0

    def due(self, index: int) -> float:
        """The loop-clock time request ``index`` is due."""
        return self.began + index / self.rate

    def wall(self, loop_time: float) -> float:
        return round(self.start + (loop_time - self.began), 6)


async def _paced_connection(host: str, port: int, run: _Paced, failures: list[str]) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while run.next < len(run.requests):
            index, run.next = run.next, run.next + 1
            await asyncio.sleep(max(0.0, run.due(index) - loop.time()))
            sent = loop.time()
            writer.write(run.requests[index])
            status, body = await _response(reader)
            run.timeline[index] = [run.wall(run.due(index)), run.wall(sent),
                                   run.wall(loop.time()), status]  # fmt: skip
            if status != 202 and len(failures) < 5:
                failures.append(f"{status}: {body[:300].decode(errors='replace')}")
    finally:
        writer.close()


async def paced(
    requests: list[bytes], host: str, port: int, concurrency: int, rate: float
) -> dict[str, object]:
    """Send request i at ``i / rate`` s (open loop) over up to ``concurrency`` connections."""
    run = _Paced(requests, rate, time.time(), asyncio.get_running_loop().time(),
                 [[0.0, 0.0, 0.0, 0] for _ in requests])  # fmt: skip
    failures: list[str] = []
    await asyncio.gather(*(_paced_connection(host, port, run, failures)
                           for _ in range(concurrency)))  # fmt: skip
    statuses = Counter(int(row[3]) for row in run.timeline)
    return {
        "start": run.start,
        "end": time.time(),
        "sent": len(requests),
        "rate": rate,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "failures": failures,
        "timeline": run.timeline,
    }


def main(argv: list[str]) -> int:
    """FILE HOST PORT K [RATE]: replay FILE's requests, print the JSON summary."""
    path, host, port, concurrency = Path(argv[0]), argv[1], int(argv[2]), int(argv[3])
    requests = list(read(path))
    if len(argv) > 4:
        result = asyncio.run(paced(requests, host, port, concurrency, float(argv[4])))
    else:
        result = asyncio.run(blast(requests, host, port, concurrency))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
