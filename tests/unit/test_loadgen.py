"""The benchmark's load generator (vledger.loadgen) against a scripted HTTP server on loopback: it
reads answers however they are split across packets, times one latency per good answer, sends the
requests it was given in order on keep-alive connections, and reports an unexpected status, a
missing Content-Length or a closed connection as an error instead of hanging or counting it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from vledger import loadgen
from vledger.loadgen import HOST, LoadSpec, load

# How the scripted server answers the n-th request it reads on a connection: a list of chunks it
# writes one by one, with a pause between them (so the client sees them as separate packets).
Script = Callable[[int, bytes], list[bytes]]


def _ok(status: int, body: bytes) -> bytes:
    reason = b"OK" if status == 200 else b"Created" if status == 201 else b"Bad"
    return b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n%s" % (status, reason, len(body), body)


class ScriptedServer:
    """Reads one request at a time (head, then Content-Length bytes) and answers per ``script``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                chunks = self.script(n, request)
                if not chunks:  # the script hangs up
                    break
                for chunk in chunks:
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(0.002)
                n += 1
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


def _spec(port: int, *, posts: bool, count: int = 6, connections: int = 2) -> LoadSpec:
    return LoadSpec(
        port=port,
        token="tok",
        community_id=7,
        members=("m1", "m2", "m3"),
        issuance="iss" if posts else None,
        count=count,
        warm=2,
        connections=connections,
        key_prefix="k",
        expires_at="2030-01-01T00:00:00Z",
        seed=1,
    )


@pytest.fixture
def split_server() -> Iterator[ScriptedServer]:
    """Answers 201 with a JSON body, each answer in four writes: split inside the status line,
    inside the headers and inside the body."""

    def script(n: int, request: bytes) -> list[bytes]:
        answer = _ok(201, b'{"transfer_id":"x","n":%d}' % n)
        return [answer[:7], answer[7:30], answer[30:-3], answer[-3:]]

    with ScriptedServer(script) as server:
        yield server


def test_posts_answered_in_pieces_are_each_timed_once(split_server: ScriptedServer) -> None:
    spec = _spec(split_server.port, posts=True)
    result = load(spec)
    assert result.errors == []
    assert len(result.latencies_ns) == spec.count
    assert all(ns > 0 for ns in result.latencies_ns)
    # warm-up: warm // connections + 1 per connection
    assert result.ok == spec.count + spec.connections * (spec.warm // spec.connections + 1)
    assert result.elapsed_ns >= max(result.latencies_ns)
    assert len(split_server.requests) == result.ok
    keys = [r.split(b"Idempotency-Key: ")[1].split(b"\r\n")[0] for r in split_server.requests]
    assert len(set(keys)) == len(keys)  # every post has its own key
    assert all(
        r.startswith(b"POST /api/v1/communities/7/transfers HTTP/1.1\r\n") for r in split_server.requests
    )
    assert all(b"Authorization: Bearer tok\r\n" in r for r in split_server.requests)


def test_reads_expect_200_and_ask_for_members_balances() -> None:
    with ScriptedServer(lambda n, _: [_ok(200, b'{"posted":%d}' % n)]) as server:
        result = load(_spec(server.port, posts=False, count=5, connections=3))
        requests = list(server.requests)
    assert result.errors == []
    assert len(result.latencies_ns) == 5
    paths = {r.split(b" ")[1] for r in requests}
    assert paths <= {f"/api/v1/communities/7/accounts/{m}/balance".encode() for m in ("m1", "m2", "m3")}


def test_an_unexpected_status_is_an_error_with_the_body() -> None:
    with ScriptedServer(lambda n, _: [_ok(201 if n < 2 else 409, b"conflict body")]) as server:
        result = load(_spec(server.port, posts=True, count=8, connections=1))
    assert result.latencies_ns == []  # the warm-up failed: nothing was timed
    assert len(result.errors) == 1
    assert "期望 201，得到 409" in result.errors[0] and "conflict body" in result.errors[0]


def test_an_answer_without_content_length_is_an_error() -> None:
    with ScriptedServer(lambda n, _: [b"HTTP/1.1 201 Created\r\nConnection: keep-alive\r\n\r\n"]) as server:
        result = load(_spec(server.port, posts=True, connections=1))
    assert len(result.errors) == 1 and "Content-Length" in result.errors[0]


def test_a_connection_closed_midway_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loadgen, "TIME_LIMIT_S", 10.0)

    def script(n: int, request: bytes) -> list[bytes]:
        return [_ok(201, b"{}")] if n < 4 else []

    with ScriptedServer(script) as server:
        result = load(_spec(server.port, posts=True, count=10, connections=1))
    assert len(result.errors) == 1 and "连接被服务端关闭" in result.errors[0]
    # The latencies of a failed phase are not reported as a timed run's: the warm-up (3 requests)
    # passed, the timed phase got one answer, then the hang-up.
    assert result.ok == 3 + 1 and len(result.latencies_ns) == 1
