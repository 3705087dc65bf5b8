"""uvicorn's HTTP protocol with a response's writes coalesced into one.

uvicorn writes a response's status line and headers when the application sends
``http.response.start``, and the body when it sends ``http.response.body``: two ``write`` calls,
and with TCP_NODELAY two segments, two system calls in the server and two wake-ups in the client,
for a response of a few hundred bytes (`strace -c` on a server worker: two writes per balance read).
Here the protocol's transport is wrapped so that what is written during one turn of the event loop
goes out as one write at the end of that turn; the head and body of an answer sent without waiting
in between become one segment. Anything large (a streamed export) is written at once, so uvicorn's
flow control still sees the transport's real buffer.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

try:  # what uvicorn's http="auto" picks
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # httptools is not installed
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

__all__ = ["COALESCE_LIMIT", "PROTOCOL", "CoalescingProtocol", "CoalescingTransport"]

#: Writes are held until they add up to this many bytes, at most; more goes out at once.
COALESCE_LIMIT = 64 * 1024


class CoalescingTransport:
    """A transport whose writes within one turn of the event loop are sent as one write.

    Everything but ``write``, ``writelines``, ``write_eof`` and ``close`` is the wrapped
    transport's own (flow control, extra info, reading).
    """

    __slots__ = ("_held", "_loop", "_scheduled", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._held.append(bytes(data))
        self._size += len(data)
        if self._size >= COALESCE_LIMIT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Write what is held (called at the end of the loop's turn, before closing, or when large)."""
        self._scheduled = False
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        self._size = 0
        if not self._transport.is_closing():  # the client has gone: nothing to deliver
            self._transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingProtocol(_Base):
    """uvicorn's own HTTP protocol (httptools when installed, as ``http="auto"`` picks, else h11)
    with its transport wrapped; ``Config(http=PROTOCOL)``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(cast(asyncio.Transport, wrapped))


#: For ``uvicorn.Config(http=…)``: an import string, so that a config sent to a worker process
#: names the class rather than carrying it.
PROTOCOL = "vledger.http_protocol:CoalescingProtocol"
