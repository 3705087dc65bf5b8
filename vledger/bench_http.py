"""The HTTP benchmark behind ``vledger bench-http``: the real service in one process, the load in another.

Each run builds its own data in a fresh community (``vledger.bench`` helpers: 1,000 funded member
points accounts, the hot issuance account) and a community admin with an API token; starts uvicorn
with N worker processes (``vledger.prefork``) on a free loopback port; and drives it from a
separate load-generator process (asyncio HTTP/1.1 keep-alive, fixed connections, untimed warm-up,
bounded count). Posts award 1 point from issuance to a random member with a unique
Idempotency-Key; reads fetch a random member's balance. Every status is checked; the issuance
balance must move by exactly the posts made.
"""

from __future__ import annotations

import base64
import contextlib
import cProfile
import importlib.util
import multiprocessing
import os
import pstats
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg_pool import ConnectionPool

from ledger.config import get_settings
from ledger.domain.roles import Grant, Role
from ledger.services.identity import Identity
from ledger.services.ledger import Ledger
from ledger.store.db import Conn, open_pool
from vledger import bench
from vledger.loadgen import HOST, LoadResult, LoadSpec, load

if TYPE_CHECKING:
    from litestar import Litestar

POST = "single posting over HTTP"
READ = "balance read over HTTP"
TARGETS = {
    POST: bench._Target(2500, 10.0, "HTTP single posting, authenticated, idempotency key, c<=16"),
    READ: bench._Target(5000, 5.0, "HTTP balance read, c<=8"),
}
READY_TIMEOUT_S = 60.0
READY_DIR_ENV = "VLEDGER_BENCH_READY_DIR"  # each server worker drops a file here once it serves
PROFILE_ENV = "VLEDGER_BENCH_PROFILE"  # a directory: each server worker writes <pid>.pstats on shutdown


# ------------------------------------------------------------------------------------ the server


def app_factory() -> Litestar:
    """``uvicorn --factory vledger.bench_http:app_factory``: the service app from the environment's settings.

    One pool per worker process (DATABASE_URL and the ``VLEDGER_`` settings); the pool closes on shutdown.
    """
    from api.app import create_app  # noqa: PLC0415 - only server processes need the web stack
    from vledger.wiring import build_services  # noqa: PLC0415

    settings = get_settings()
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set for the benchmark server")
    profile_dump = start_profiling()  # None unless VLEDGER_BENCH_PROFILE names a directory
    pool = open_pool(
        settings.database_url,
        app_url=settings.app_database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        name=f"bench-http-{os.getpid()}",
    )
    app = create_app(build_services(pool, settings), access_logging=False)
    if ready_dir := os.environ.get(READY_DIR_ENV):
        app.on_startup.append(lambda: Path(ready_dir, str(os.getpid())).touch())

    def close_pool() -> None:  # Litestar passes the app to a hook that takes an argument (close's timeout)
        pool.close()

    app.on_shutdown.append(close_pool)
    if profile_dump is not None:
        app.on_shutdown.append(profile_dump)
    return app


def start_profiling() -> Callable[[], None] | None:
    """cProfile every thread of this server process (the handlers run in worker threads) when
    ``VLEDGER_BENCH_PROFILE`` names a directory; returns the hook that writes ``<dir>/<pid>.pstats``."""
    directory = os.environ.get(PROFILE_ENV)
    if not directory:
        return None
    # Per-thread CPU time rather than wall time, so that threads waiting on the database or the GIL
    # mostly do not count (idle executor threads still show their wait in SimpleQueue.get: skip it).
    profiles = [cProfile.Profile(time.thread_time_ns, 1e-9)]

    def start_in_thread(_frame: object, _event: str, _arg: object) -> None:
        profile = cProfile.Profile(time.thread_time_ns, 1e-9)
        profiles.append(profile)  # list.append is atomic
        profile.enable()  # replaces this hook for the thread

    threading.setprofile(start_in_thread)
    profiles[0].enable()

    def dump() -> None:
        threading.setprofile(None)
        pstats.Stats(*profiles).dump_stats(Path(directory, f"{os.getpid()}.pstats"))

    return dump


def serve(port: int, workers: int) -> None:
    """The server process: the service app in ``workers`` uvicorn workers (``vledger.prefork``: the
    parent accepts and deals the connections out in turn), or in this process when ``workers`` is 1."""
    import uvicorn  # noqa: PLC0415 - only server processes need the web stack

    from vledger.http_protocol import PROTOCOL  # noqa: PLC0415
    from vledger.prefork import listen, serve_balanced  # noqa: PLC0415

    config = uvicorn.Config(
        "vledger.bench_http:app_factory",
        factory=True,
        http=PROTOCOL,  # as the service serves: a response's head and body in one write
        workers=workers,
        log_level="warning",  # no access log either
        timeout_graceful_shutdown=5,
    )
    sock = listen(HOST, port)
    if workers == 1:
        uvicorn.Server(config).run(sockets=[sock])
    else:
        serve_balanced(config, sock, workers)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(db_url: str, workers: int) -> Iterator[int]:
    """uvicorn with ``workers`` processes on a free port, ready on every worker; SIGTERM on the way out."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="vledger-bench-http-") as tmp:
        env = dict(os.environ, DATABASE_URL=db_url, **{READY_DIR_ENV: tmp})
        env.setdefault("VLEDGER_POOL_MIN_SIZE", "4")
        if not env.get("VLEDGER_MASTER_KEYS"):  # throwaway keys: the benchmark stores no personal data
            env["VLEDGER_MASTER_KEYS"] = "bench:" + base64.b64encode(secrets.token_bytes(32)).decode()
            env["VLEDGER_BLIND_INDEX_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()
        code = "import sys; from vledger.bench_http import serve; serve(int(sys.argv[1]), int(sys.argv[2]))"
        command = [sys.executable, "-c", code, str(port), str(workers)]
        server_log = Path(tmp, "server.log")
        with server_log.open("wb") as sink:
            proc = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
            try:
                _wait_ready(proc, port, workers, Path(tmp))
                yield port
            except Exception as exc:
                _stop(proc)
                exc.add_note("服务日志末尾：\n" + server_log.read_text(errors="replace")[-3000:])
                raise
            finally:
                _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, workers: int, ready: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        # uvicorn's supervisor restarts a worker that dies at start-up, so the log tells first.
        if proc.poll() is not None or b"Traceback" in (ready / "server.log").read_bytes():
            raise RuntimeError("基准服务启动失败（服务日志见下）")
        if sum(1 for p in ready.iterdir() if p.name.isdigit()) >= workers:
            with contextlib.suppress(OSError):
                url = f"http://{HOST}:{port}/ready"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
        time.sleep(0.1)
    raise RuntimeError(f"基准服务在 {READY_TIMEOUT_S:.0f} 秒内未就绪")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _admin_token(identity: Identity, community_id: int) -> str:
    user_id = identity.create_user(f"bench-http-{uuid.uuid4().hex[:12]}", None)
    identity.grant(user_id, Grant(Role.COMMUNITY_ADMIN, community_id=community_id))
    return identity.issue_api_token(user_id, "bench-http").secret


def _row(name: str, scale: str, result: LoadResult) -> dict[str, object]:
    target = TARGETS[name]
    seconds = result.elapsed_ns / 1e9
    throughput = len(result.latencies_ns) / seconds
    ordered = sorted(result.latencies_ns)
    return {
        "workload": name,
        "scale": scale,
        "count": len(ordered),
        "unit": "req",
        "seconds": seconds,
        "throughput": throughput,
        "p50_ms": bench._percentile(ordered, 50),
        "p99_ms": bench._percentile(ordered, 99),
        "target": target.per_second,
        "target_p99_ms": target.p99_ms,
        "target_source": target.source,
        "ratio": throughput / target.per_second,
        "latency_per": "request",
    }


def _one_run(
    pool: ConnectionPool[Conn], db_url: str, transfers: int, reads: int, conns: tuple[int, int], workers: int
) -> list[dict[str, object]]:
    ledger = Ledger(pool)
    data = bench._build(pool, ledger, 8)
    before = ledger.balance(data.community_id, data.issuance).posted
    reading = LoadSpec(
        port=0,
        token=_admin_token(Identity(pool), data.community_id),
        community_id=data.community_id,
        members=tuple(str(m) for m in data.members),
        issuance=None,
        count=reads,
        warm=conns[1] * 40,
        connections=conns[1],
        key_prefix=uuid.uuid4().hex,
        expires_at=(datetime.now(UTC) + timedelta(days=365)).isoformat().replace("+00:00", "Z"),
        seed=random.randrange(1 << 30),
    )
    posting = replace(
        reading, issuance=str(data.issuance), count=transfers, warm=conns[0] * 20, connections=conns[0]
    )
    context = multiprocessing.get_context("spawn")
    with _server(db_url, workers) as port, ProcessPoolExecutor(1, mp_context=context) as loader:
        posts = _checked(POST, loader.submit(load, replace(posting, port=port)).result())
        got = _checked(READ, loader.submit(load, replace(reading, port=port)).result())
    moved = before - ledger.balance(data.community_id, data.issuance).posted
    if moved != posts.ok:
        raise RuntimeError(f"发放账户变动 {moved} 分，但成功的 POST 有 {posts.ok} 个：有转账丢失或重复")
    who = f"{workers} server worker{'s' if workers > 1 else ''}, {len(data.members):,} accounts"
    scale = f"{transfers:,} POSTs, {conns[0]} conns, {who}, all from hot issuance"
    post_row = _row(POST, scale, posts) | {"posts_ok": posts.ok, "issuance_moved": moved}
    return [post_row, _row(READ, f"{reads:,} GETs, {conns[1]} conns, {who}", got)]


def _stack() -> str:
    """What uvicorn picks by default: httptools and uvloop when installed, else h11 and asyncio."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"({http}, {'uvloop' if importlib.util.find_spec('uvloop') else 'asyncio'})"


def _checked(name: str, result: LoadResult) -> LoadResult:
    if result.errors:
        raise RuntimeError(f"{name}：出现非预期应答，本次结果无效。" + "；".join(result.errors))
    return result


def run(
    db_url: str,
    *,
    transfers: int = 5000,
    reads: int = 10000,
    concurrency_post: int = 16,
    concurrency_read: int = 8,
    workers: int = 2,
    runs: int = 1,
    out: Callable[..., object] = print,
) -> list[dict[str, object]]:
    """Run both workloads ``runs`` times against ``db_url`` (owner URL, migrated); print and return
    the rows (the per-workload median when ``runs`` > 1)."""
    if min(transfers, reads, concurrency_post, concurrency_read, workers, runs) < 1:
        raise ValueError("transfers, reads, concurrencies, workers and runs must all be at least 1")
    pool = open_pool(
        db_url, app_url=get_settings().app_database_url, min_size=2, max_size=10, name="bench-http"
    )
    try:
        server = bench._server_settings(pool).split(";")[0]  # without its "service layer in this process"
        dealt = ", connections dealt in turn" if workers > 1 else ""
        caption = f"{server}; uvicorn {_stack()} x{workers}{dealt}; load from a second process over loopback"
        tables: list[list[dict[str, object]]] = []
        for i in range(runs):
            conns = (concurrency_post, concurrency_read)
            tables.append(_one_run(pool, db_url, transfers, reads, conns, workers))
            out(bench._render(tables[-1], f"run {i + 1} of {runs}; {caption}"))
    finally:
        pool.close()
    if runs == 1:
        return tables[0]
    merged = bench.median_rows(tables)
    out(bench._render(merged, f"median of {runs} runs; {caption}"))
    return merged
