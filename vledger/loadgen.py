"""The HTTP load generator of ``vledger bench-http``: HTTP/1.1 keep-alive clients on one event loop,
run in a process of their own, never in the server's.

It shares the machine's cores with the server it measures, so it is written to cost little: each
connection is an ``asyncio.Protocol`` that parses its answers as they arrive and sends the next
request from the same callback (no stream reader, no coroutine step per request), on uvloop where
it is installed. Requests are built before timing starts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

HOST = "127.0.0.1"
TIME_LIMIT_S = 300.0  # per workload, warm-up included: a stuck server fails the run instead of hanging it
_MAX_HEAD = 16 * 1024  # an answer's head larger than this is an error, not something to wait for


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What one workload sends; the load process builds the request bytes from it before timing."""

    port: int
    token: str
    community_id: int
    members: tuple[str, ...]
    issuance: str | None  # posts: award from this account; None: balance reads
    count: int
    warm: int
    connections: int
    key_prefix: str
    expires_at: str
    seed: int


@dataclass(frozen=True, slots=True)
class LoadResult:
    ok: int  # responses with the expected status, warm-up included
    elapsed_ns: int  # timed phase: from the common start until the last connection finished
    latencies_ns: list[int]  # timed phase, one per request
    errors: list[str]  # the first few unexpected answers


def _requests(spec: LoadSpec, phase: str, n: int) -> list[bytes]:
    rng = random.Random(f"{spec.seed}:{phase}")
    head = f"Host: {HOST}:{spec.port}\r\nAuthorization: Bearer {spec.token}\r\n"
    base = f"/api/v1/communities/{spec.community_id}"
    out: list[bytes] = []
    for i in range(n):
        member = rng.choice(spec.members)
        if spec.issuance is None:
            out.append(f"GET {base}/accounts/{member}/balance HTTP/1.1\r\n{head}\r\n".encode())
            continue
        body = (
            '{"kind":"bench_award","postings":['
            f'{{"account_id":"{spec.issuance}","unit":"points","amount":-1}},'
            f'{{"account_id":"{member}","unit":"points","amount":1,"expires_at":"{spec.expires_at}"}}]}}'
        ).encode()
        out.append(
            f"POST {base}/transfers HTTP/1.1\r\n{head}Idempotency-Key: {spec.key_prefix}-{phase}-{i}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    return out


def _body_length(head: bytes) -> int | None:
    """The Content-Length of an answer's head (None: there is none)."""
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        return None
    return int(head[at + 17 : head.index(b"\r\n", at + 2)])


class _Client(asyncio.Protocol):
    """One keep-alive connection. ``exchange`` sends its requests one after another, each as soon as
    the previous answer is complete, and resolves with the latencies of the good answers and the
    first bad one (or None)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.body_length: int | None = None  # of the answer being read, once its head is in
        self.head = b""
        self.requests: list[bytes] = []
        self.next = 0
        self.sent_ns = 0
        self.latencies: list[int] = []
        self.done: asyncio.Future[tuple[list[int], str | None]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass asyncio's

    def exchange(self, requests: list[bytes]) -> asyncio.Future[tuple[list[int], str | None]]:
        self.done = asyncio.get_running_loop().create_future()
        self.requests, self.next, self.latencies = requests, 0, []
        self._send_next()
        return self.done

    def _send_next(self) -> None:
        assert self.transport is not None and self.done is not None
        if self.next == len(self.requests):
            self.done.set_result((self.latencies, None))
            return
        request = self.requests[self.next]
        self.next += 1
        self.sent_ns = time.perf_counter_ns()
        self.transport.write(request)

    def _fail(self, error: str) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result((self.latencies, error))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.body_length is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > _MAX_HEAD:
                        self._fail(f"应答头过长：{bytes(self.buffer[:200])!r}")
                    return
                self.head = bytes(self.buffer[: end + 4])
                del self.buffer[: end + 4]
                length = _body_length(self.head)
                if length is None:
                    self._fail(f"应答没有 Content-Length：{self.head[:200]!r}")
                    return
                self.body_length = length
            if len(self.buffer) < self.body_length:
                return
            body = bytes(self.buffer[: self.body_length])
            del self.buffer[: self.body_length]
            self.body_length = None
            if (status := int(self.head[9:12])) != self.expected:
                self._fail(f"期望 {self.expected}，得到 {status}：{body[:300].decode(errors='replace')}")
                return
            self.latencies.append(time.perf_counter_ns() - self.sent_ns)
            self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"连接被服务端关闭：{type(exc).__name__ if exc else '对端关闭'}")


async def _load(spec: LoadSpec) -> LoadResult:
    expected, n = (200 if spec.issuance is None else 201), spec.connections
    warm = [_requests(spec, f"warm{k}", spec.warm // n + 1) for k in range(n)]
    timed = [_requests(spec, f"run{k}", spec.count // n + (k < spec.count % n)) for k in range(n)]
    loop = asyncio.get_running_loop()
    clients: list[_Client] = []
    for _ in range(n):
        _, client = await loop.create_connection(lambda: _Client(expected), HOST, spec.port)
        clients.append(client)
    done: list[tuple[list[int], str | None]] = []
    try:
        async with asyncio.timeout(TIME_LIMIT_S):
            done = await asyncio.gather(*(c.exchange(q) for c, q in zip(clients, warm, strict=True)))
            ok, errors = sum(len(lat) for lat, _ in done), [e for _, e in done if e]
            if errors:
                return LoadResult(ok, 0, [], errors[:3])
            started = time.perf_counter_ns()
            done = await asyncio.gather(*(c.exchange(q) for c, q in zip(clients, timed, strict=True)))
            elapsed = time.perf_counter_ns() - started
    except TimeoutError:
        return LoadResult(0, 0, [], [f"超过 {TIME_LIMIT_S:.0f} 秒时限仍未完成"])
    finally:
        for client in clients:
            if client.transport is not None:
                client.transport.close()
    latencies = [ns for lat, _ in done for ns in lat]
    return LoadResult(ok + len(latencies), elapsed, latencies, [e for _, e in done if e][:3])


def _runner() -> Callable[[Coroutine[Any, Any, LoadResult]], LoadResult]:
    """uvloop's runner where it is installed (the server side uses it too), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415 - optional: not built for every platform
    except ImportError:
        return asyncio.run
    return uvloop.run


def load(spec: LoadSpec) -> LoadResult:
    """The load generator's entry point (runs in its own process)."""
    return _runner()(_load(spec))
