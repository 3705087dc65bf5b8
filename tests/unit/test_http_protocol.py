"""The coalescing HTTP protocol (vledger.http_protocol): what is written in one turn of the event
loop goes out as one write, in order; large writes go at once; closing flushes first; and a real
uvicorn server using it answers small, streamed and keep-alive responses byte for byte."""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from litestar.types import Receive, Scope, Send

from vledger.http_protocol import COALESCE_LIMIT, PROTOCOL, CoalescingProtocol, CoalescingTransport
from vledger.prefork import listen


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.eof = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        self.eof = True

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name)


def _run(body: Any) -> FakeTransport:
    """Run ``body(wrapped, fake)`` in a turn of a fresh event loop, then one more turn."""
    fake = FakeTransport()

    async def main() -> None:
        wrapped = CoalescingTransport(fake, asyncio.get_running_loop())  # type: ignore[arg-type]
        body(wrapped, fake)
        await asyncio.sleep(0)  # the end of the turn: held writes go out
        await asyncio.sleep(0)

    asyncio.run(main())
    return fake


def test_writes_in_one_turn_go_out_as_one_at_its_end() -> None:
    seen: list[list[bytes]] = []

    def body(wrapped: CoalescingTransport, fake: FakeTransport) -> None:
        wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        wrapped.write(b"")
        wrapped.writelines([b"o", bytearray(b"k")])
        seen.append(list(fake.writes))  # nothing yet, within the turn

    fake = _run(body)
    assert seen == [[]]
    assert fake.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]


def test_large_writes_go_at_once_in_order() -> None:
    big = b"x" * COALESCE_LIMIT
    seen: list[list[bytes]] = []

    def body(wrapped: CoalescingTransport, fake: FakeTransport) -> None:
        wrapped.write(b"head")
        wrapped.write(big)
        seen.append(list(fake.writes))
        wrapped.write(b"tail")

    fake = _run(body)
    assert seen == [[b"head" + big]]
    assert fake.writes == [b"head" + big, b"tail"]


def test_close_and_eof_flush_first_and_a_closed_transport_gets_nothing() -> None:
    def closing(wrapped: CoalescingTransport, fake: FakeTransport) -> None:
        wrapped.write(b"last words")
        wrapped.close()
        wrapped.write(b"after close")  # dropped at the end of the turn: the transport is closing

    fake = _run(closing)
    assert (fake.writes, fake.closed) == ([b"last words"], True)

    def eof(wrapped: CoalescingTransport, fake: FakeTransport) -> None:
        wrapped.write(b"body")
        wrapped.write_eof()
        assert wrapped.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's

    fake = _run(eof)
    assert (fake.writes, fake.eof) == ([b"body"], True)


STREAMED = [bytes([65 + i]) * 50_000 for i in range(4)]  # 200 kB in four chunks, more than the limit


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for chunk in STREAMED:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = scope["path"].encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def port() -> Iterator[int]:
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, http=PROTOCOL, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.02)
        assert server.config.http_protocol_class is CoalescingProtocol
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_server_with_it_answers_byte_for_byte(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for path in ("/a", "/stream", "/longer/path", "/stream"):  # one keep-alive connection
            conn.request("GET", path)
            answer = conn.getresponse()
            assert answer.status == 200
            assert answer.read() == (b"".join(STREAMED) if path == "/stream" else path.encode())
    finally:
        conn.close()
