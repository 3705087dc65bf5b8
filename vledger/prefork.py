"""A pre-fork HTTP server whose parent accepts every connection and hands it to the next worker.

uvicorn's ``--workers N`` lets N processes accept from one shared listener. On Linux every idle
worker is woken by a new connection and the first to run accepts all that are queued, so a client
that opens its 16 keep-alive connections at once often lands them all on one worker while the
other idles (measured: one worker at ~92 % of a CPU, the other at 0 %). Node's ``cluster`` module
makes the same observation and distributes round-robin from its primary by default.

Here the parent binds the listener and accepts; each accepted socket goes to the workers in turn,
over a Unix socket pair per worker (``SCM_RIGHTS``). A worker is a plain uvicorn ``Server`` that
listens on nothing and serves the sockets it is handed, so keep-alive, graceful shutdown and the
application's lifespan are uvicorn's own. A worker that dies is replaced; SIGTERM or SIGINT stops
the parent, which stops the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import selectors
import signal
import socket
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import cast

import uvicorn

__all__ = ["HandedServer", "listen", "serve_balanced"]

log = logging.getLogger("vledger.prefork")
_TICK_S = 0.5  # how often the parent looks for dead workers and stop requests
_HANDOFF = b"c"  # one byte carries the descriptor
_BACKLOG = 2048  # uvicorn's default


def listen(host: str, port: int) -> socket.socket:
    """A TCP listener on ``host:port``, bound with ``IPPROTO_TCP``.

    With ``proto`` 0 (how uvicorn 0.54 binds for ``--workers N``), asyncio never sets TCP_NODELAY
    on the connections it accepts from the socket, and each keep-alive answer then waits ~40 ms for
    a delayed ACK (uvicorn #3149). The parent here sets TCP_NODELAY on what it accepts anyway.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class HandedServer(uvicorn.Server):
    """A uvicorn server with no listener: it serves the connections that arrive on ``channel``
    (one byte and one descriptor each), and stops when the channel closes."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self._channel = channel
        self._starting: set[asyncio.Task[object]] = set()  # connections being set up (held, not lost)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan, and no listener of its own
        make = functools.partial(
            cast(Callable[..., asyncio.Protocol], self.config.http_protocol_class),
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        loop = asyncio.get_running_loop()
        self._channel.setblocking(False)
        loop.add_reader(self._channel.fileno(), self._take, loop, make)

    def _take(self, loop: asyncio.AbstractEventLoop, make: Callable[[], asyncio.Protocol]) -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self._channel, 64, 64)
        except BlockingIOError:
            return
        if not data:  # the parent has gone: finish what is open, then stop
            loop.remove_reader(self._channel.fileno())
            self.should_exit = True
            return
        for fd in fds:
            conn = socket.socket(fileno=fd)
            conn.setblocking(False)
            task: asyncio.Task[object] = loop.create_task(loop.connect_accepted_socket(make, conn))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(ValueError, OSError):  # already removed, or closed
            asyncio.get_running_loop().remove_reader(self._channel.fileno())
        self._channel.close()
        await super().shutdown(sockets=None)


def _work(config: uvicorn.Config, channel: socket.socket) -> None:
    """A worker process's body (spawned)."""
    HandedServer(config, channel).run()


class _Worker:
    def __init__(self, config: uvicorn.Config) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        context = multiprocessing.get_context("spawn")
        self.channel = parent_end
        self.process: BaseProcess = context.Process(target=_work, args=(config, child_end), daemon=False)
        self.process.start()
        child_end.close()

    def hand(self, conn: socket.socket) -> bool:
        try:
            socket.send_fds(self.channel, [_HANDOFF], [conn.fileno()])
        except OSError:
            return False
        return True

    def stop(self, timeout_s: float) -> None:
        self.channel.close()  # the worker sees the end of its channel
        self.process.terminate()  # SIGTERM: uvicorn's graceful shutdown (nothing if it has exited)
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def serve_balanced(config: uvicorn.Config, listener: socket.socket, workers: int) -> None:
    """Serve ``config``'s app from ``workers`` processes, connections dealt round-robin; returns
    once SIGTERM or SIGINT has stopped the workers."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    pool = [_Worker(config) for _ in range(workers)]
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    turn = 0
    try:
        while not stopping:
            if selector.select(_TICK_S):
                turn = _accept_all(listener, pool, turn)
            for i, worker in enumerate(pool):
                if not worker.process.is_alive() and not stopping:
                    code = worker.process.exitcode
                    log.warning("worker %s exited (%s); starting another", worker.process.pid, code)
                    worker.channel.close()
                    pool[i] = _Worker(config)
    finally:
        selector.close()
        listener.close()
        for worker in pool:
            worker.stop(float(config.timeout_graceful_shutdown or 30) + 5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _accept_all(listener: socket.socket, pool: list[_Worker], turn: int) -> int:
    """Accept what is queued and deal it out; the next worker's turn."""
    while True:
        try:
            conn, _addr = listener.accept()
        except (BlockingIOError, InterruptedError):
            return turn
        with conn:
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(len(pool)):  # a worker that cannot take it passes it on
                worker, turn = pool[turn], (turn + 1) % len(pool)
                if worker.hand(conn):
                    break
