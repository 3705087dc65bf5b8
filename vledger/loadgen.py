"""The HTTP load generator of ``vledger bench-http``: raw asyncio HTTP/1.1 keep-alive clients,
run in a process of their own, never in the server's."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
TIME_LIMIT_S = 300.0  # per workload, warm-up included: a stuck server fails the run instead of hanging it


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


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, requests: list[bytes], expected: int
) -> tuple[list[int], str | None]:
    """Send each request and read its answer: latencies of the good ones, or the first bad answer."""
    latencies: list[int] = []
    clock = time.perf_counter_ns
    for request in requests:
        t0 = clock()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"\r\ncontent-length:")
        if at < 0:
            return latencies, f"应答没有 Content-Length：{head[:200]!r}"
        body = await reader.readexactly(int(head[at + 17 : head.index(b"\r\n", at + 2)]))
        if (status := int(head[9:12])) != expected:
            return latencies, f"期望 {expected}，得到 {status}：{body[:300].decode(errors='replace')}"
        latencies.append(clock() - t0)
    return latencies, None


async def _load(spec: LoadSpec) -> LoadResult:
    expected, n = (200 if spec.issuance is None else 201), spec.connections
    warm = [_requests(spec, f"warm{k}", spec.warm // n + 1) for k in range(n)]
    timed = [_requests(spec, f"run{k}", spec.count // n + (k < spec.count % n)) for k in range(n)]
    streams = [await asyncio.open_connection(HOST, spec.port) for _ in range(n)]
    done: list[tuple[list[int], str | None]] = []
    try:
        async with asyncio.timeout(TIME_LIMIT_S):
            done = await asyncio.gather(
                *(_exchange(*rw, q, expected) for rw, q in zip(streams, warm, strict=True))
            )
            ok, errors = sum(len(lat) for lat, _ in done), [e for _, e in done if e]
            if errors:
                return LoadResult(ok, 0, [], errors[:3])
            started = time.perf_counter_ns()
            done = await asyncio.gather(
                *(_exchange(*rw, q, expected) for rw, q in zip(streams, timed, strict=True))
            )
            elapsed = time.perf_counter_ns() - started
    except TimeoutError:
        return LoadResult(0, 0, [], [f"超过 {TIME_LIMIT_S:.0f} 秒时限仍未完成"])
    finally:
        for _, writer in streams:
            writer.close()
    latencies = [ns for lat, _ in done for ns in lat]
    return LoadResult(ok + len(latencies), elapsed, latencies, [e for _, e in done if e][:3])


def load(spec: LoadSpec) -> LoadResult:
    """The load generator's entry point (runs in its own process)."""
    return asyncio.run(_load(spec))


# ---------------------------------------------------------------------------------------- a run
