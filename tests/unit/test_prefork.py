"""The pre-fork server (vledger.prefork): connections dealt to the workers in turn, keep-alive on
the worker that took the connection, dead workers replaced, and everything stopped by SIGTERM or
by the parent's death."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = """
import sys, uvicorn
from vledger.prefork import listen, serve_balanced
sock = listen("127.0.0.1", 0)
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config("tests.unit.prefork_app:app", log_level="warning", timeout_graceful_shutdown=2)
serve_balanced(config, sock, int(sys.argv[1]))
"""


class Running:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port = proc, port

    def connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.connect()
        return conn

    def serving(self) -> set[int]:
        """The workers, once one of them has answered a request (so both have started)."""
        conn = self.connect()
        try:
            _ask(conn)
        finally:
            conn.close()
        workers = self.children()
        assert len(workers) == 2
        return workers

    def children(self) -> set[int]:
        """The worker processes (multiprocessing's resource tracker is a child too)."""
        found = set()
        for proc in Path("/proc").iterdir():
            try:
                parent = int((proc / "stat").read_text().rsplit(") ", 1)[1].split()[1])
                if parent == self.proc.pid and b"spawn_main" in (proc / "cmdline").read_bytes():
                    found.add(int(proc.name))
            except (OSError, ValueError, IndexError):  # not a process, or gone meanwhile
                continue
        return found


def _ask(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/")
    answer = conn.getresponse()
    assert answer.status == 200
    return int(answer.read())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def _wait(condition: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.fixture
def server() -> Iterator[Running]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", SERVER, "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    running = Running(proc, int(proc.stdout.readline()))
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pid in running.children():
            os.kill(pid, signal.SIGKILL)


def test_connections_are_dealt_to_the_workers_in_turn(server: Running) -> None:
    conns = [server.connect() for _ in range(6)]
    try:
        first = [_ask(conn) for conn in conns]
        again = [_ask(conn) for conn in conns]  # keep-alive: the same worker answers again
    finally:
        for conn in conns:
            conn.close()
    assert len(set(first)) == 2
    assert set(first) <= server.children()
    assert first == [first[i % 2] for i in range(6)]
    assert again == first


def test_sigterm_stops_the_parent_and_its_workers(server: Running) -> None:
    workers = server.serving()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    assert all(_gone(pid) for pid in workers)


def test_a_dead_worker_is_replaced(server: Running) -> None:
    victim = min(server.serving())
    os.kill(victim, signal.SIGKILL)
    _wait(lambda: len(server.children() - {victim}) == 2)
    conns = [server.connect() for _ in range(4)]
    try:
        answered = {_ask(conn) for conn in conns}
    finally:
        for conn in conns:
            conn.close()
    assert victim not in answered
    assert len(answered) == 2  # the survivor and its replacement, each dealt connections


def test_workers_stop_when_the_parent_dies(server: Running) -> None:
    workers = server.serving()
    server.proc.kill()  # no chance to stop them: they see their channel close
    server.proc.wait()
    _wait(lambda: all(_gone(pid) for pid in workers))
