"""The benchmark behind ``vledger bench``: build a data set, run each workload, print one table.

Every run works in a fresh community of the database it is given (already migrated; the URL is the
owner's), so runs never disturb each other or existing data. The workloads call the service layer in
this process (``Ledger``), not the HTTP API, so they leave out what HTTP adds; they are compared with
the targets of the design's performance note all the same. Counts are bounded; a warm-up outside
the timings opens the pool's connections and prepares their statements. docs/performance.md says
which target each row is compared with and holds the latest table.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import os
import shutil
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from psycopg_pool import ConnectionPool
from rich.console import Console, JustifyMethod
from rich.table import Table

from ledger.config import get_settings
from ledger.domain.accounts import AccountSpec, OwnerKind, SystemAccount, member_account_flags
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import Communities
from ledger.services.ledger import Ledger
from ledger.store.db import Conn, open_pool

log = logging.getLogger("vledger.bench")

T = TypeVar("T")

MEMBERS = 1000
BATCH_CHUNK = 10_000  # transfers per Ledger.post_batch call
PREFUND_POINTS = 1_000_000  # each member's opening balance, so that member-to-member payments never run dry
_YEAR_US = 365 * 86_400 * 1_000_000

# Names of the workloads, in the order they run (the smoke test and docs/performance.md use them).
SINGLE = "single posting (service layer)"
MEMBER = "member to member (service layer)"
BATCH = "batch postings (Ledger.post_batch)"
READ = "balance read (service layer)"

ROW_KEYS = (
    "workload",
    "scale",
    "count",
    "unit",
    "seconds",
    "throughput",
    "p50_ms",
    "p99_ms",
    "target",
    "target_p99_ms",
    "target_source",
    "ratio",
    "latency_per",
)


@dataclass(frozen=True, slots=True)
class _Target:
    per_second: int
    p99_ms: float | None
    source: str  # which line of docs/performance.md (or the benchmark brief) the target comes from


TARGETS: dict[str, _Target] = {
    SINGLE: _Target(2500, 10.0, "HTTP single posting, c<=16 (the hot-account 2,000/s, 15 ms applies too)"),
    MEMBER: _Target(2000, 15.0, "no design target for this shape; compared with the hot-account figure"),
    BATCH: _Target(50_000, None, "bulk import, postings/s"),
    READ: _Target(5000, 5.0, "HTTP balance read, c<=8"),
}


@dataclass(frozen=True, slots=True)
class _Timing:
    count: int  # operations timed
    elapsed_ns: int  # wall time from the start signal until the last operation returned
    latencies_ns: list[int]  # one per call


@dataclass(frozen=True, slots=True)
class _DataSet:
    community_id: int
    issuance: uuid.UUID
    members: list[uuid.UUID]
    expires_at_us: int


def run(
    db_url: str,
    *,
    transfers: int = 20000,
    singles: int = 2000,
    reads: int = 5000,
    threads: int = 8,
    out: Callable[..., object] = print,
) -> list[dict[str, object]]:
    """Run every workload once against ``db_url`` and print (through ``out``) and return the table rows."""
    if min(transfers, singles, reads, threads) < 1:
        raise ValueError("transfers, singles, reads and threads must all be at least 1")
    pool = open_pool(
        db_url,
        app_url=get_settings().app_database_url,
        min_size=threads + 1,
        max_size=threads + 2,
        name="bench",
    )
    try:
        ledger = Ledger(pool)
        server = _server_settings(pool)
        data = _build(pool, ledger, threads)
        warm = threads * 4
        rows = [
            _single(ledger, data, singles, threads, warm),
            _member(ledger, data, singles, threads, warm),
            _batch(ledger, data, transfers),
            _read(ledger, data, reads, threads, warm),
        ]
        _check(ledger, data, issued=len(data.members) * PREFUND_POINTS + warm + singles + 100 + transfers)
    finally:
        pool.close()
    out(_render(rows, server))
    return rows


# ------------------------------------------------------------------------------------------ set-up


def _server_settings(pool: ConnectionPool[Conn]) -> str:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('fsync'),"
            " current_setting('synchronous_commit')"
        ).fetchone()
        conn.rollback()
    version, fsync, sync_commit = row if row is not None else ("?", "?", "?")
    return (
        f"PostgreSQL {str(version).split()[0]}, fsync={fsync}, synchronous_commit={sync_commit}, "
        f"{os.cpu_count()} CPUs; service layer in this process, no HTTP"
    )


def _build(pool: ConnectionPool[Conn], ledger: Ledger, threads: int) -> _DataSet:
    """A fresh region and community, ``MEMBERS`` points accounts, each funded by one batch."""
    started = time.perf_counter()
    tag = uuid.uuid4().hex[:12]
    communities = Communities(pool, origin_prefix="bench.vledger", hot_buckets=8)
    region_id = communities.create_region(f"bench-{tag}", "基准测试街道")
    info = communities.create_community(region_id, f"bench-{tag}", "基准测试社区")
    community_id = info.community_id
    issuance = info.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    flags = member_account_flags(Unit.POINTS)

    def open_one(_: int) -> uuid.UUID:
        spec = AccountSpec(OwnerKind.PERSON, Unit.POINTS, flags, owner_id=uuid.uuid4())
        return communities.open_account(community_id, spec)

    with ThreadPoolExecutor(max_workers=threads) as executor:
        members = list(executor.map(open_one, range(MEMBERS)))
    expires_at_us = time.time_ns() // 1000 + _YEAR_US
    data = _DataSet(community_id, issuance, members, expires_at_us)
    ledger.post_batch([_award(data, f"fund:{i}", member, PREFUND_POINTS) for i, member in enumerate(members)])
    log.info(
        "bench: community %s with %s funded accounts ready in %.1f s",
        community_id,
        len(members),
        time.perf_counter() - started,
    )
    return data


def _award(data: _DataSet, key: str, member: uuid.UUID, amount: int = 1) -> TransferRequest:
    """``amount`` points from the community's hot issuance account to ``member``."""
    return TransferRequest(
        data.community_id,
        "bench_award",
        (
            Posting(data.issuance, Unit.POINTS, -amount),
            Posting(member, Unit.POINTS, amount, expires_at_us=data.expires_at_us),
        ),
        key,
    )


def _payment(data: _DataSet, key: str, i: int) -> TransferRequest:
    """Member a pays member b one point; (a, b) runs over many distinct pairs, never a == b."""
    n = len(data.members)
    a = (i * 37) % n
    b = (a + 1 + (i * 7919) % (n - 1)) % n
    return TransferRequest(
        data.community_id,
        "bench_payment",
        (
            Posting(data.members[a], Unit.POINTS, -1),
            Posting(data.members[b], Unit.POINTS, 1, expires_at_us=data.expires_at_us),
        ),
        key,
    )


def _check(ledger: Ledger, data: _DataSet, *, issued: int) -> None:
    """The issuance account must show exactly what the benchmark credited, or the numbers mean nothing."""
    posted = ledger.balance(data.community_id, data.issuance).posted
    if posted != -issued:
        raise RuntimeError(f"issuance account shows {posted}, expected {-issued}: transfers went missing")


# --------------------------------------------------------------------------------------- workloads


def _single(ledger: Ledger, data: _DataSet, singles: int, threads: int, warm: int) -> dict[str, object]:
    n = len(data.members)
    warm_up = [_award(data, f"warm1:{i}", data.members[i % n]) for i in range(warm)]
    _threaded(ledger.transfer, warm_up, threads)
    requests = [_award(data, f"w1:{i}", data.members[i % n]) for i in range(singles)]
    timing = _threaded(ledger.transfer, requests, threads)
    scale = f"{singles:,} transfers, {threads} threads, {n:,} accounts, all from hot issuance"
    return _row(SINGLE, scale, "transfers", timing)


def _member(ledger: Ledger, data: _DataSet, singles: int, threads: int, warm: int) -> dict[str, object]:
    _threaded(ledger.transfer, [_payment(data, f"warm2:{i}", i + singles) for i in range(warm)], threads)
    requests = [_payment(data, f"w2:{i}", i) for i in range(singles)]
    timing = _threaded(ledger.transfer, requests, threads)
    scale = f"{singles:,} transfers, {threads} threads, {len(data.members):,} accounts, both sides locked"
    return _row(MEMBER, scale, "transfers", timing)


def _batch(ledger: Ledger, data: _DataSet, transfers: int) -> dict[str, object]:
    n = len(data.members)
    ledger.post_batch([_award(data, f"warm3:{i}", data.members[i % n]) for i in range(100)])
    requests = [_award(data, f"w3:{i}", data.members[i % n]) for i in range(transfers)]
    chunks = [requests[i : i + BATCH_CHUNK] for i in range(0, transfers, BATCH_CHUNK)]
    latencies: list[int] = []
    started = time.perf_counter_ns()
    for chunk in chunks:
        t0 = time.perf_counter_ns()
        result = ledger.post_batch(chunk)
        latencies.append(time.perf_counter_ns() - t0)
        if result.posted != len(chunk):
            raise RuntimeError(f"post_batch posted {result.posted} of {len(chunk)} transfers")
    timing = _Timing(2 * transfers, time.perf_counter_ns() - started, latencies)
    scale = f"{transfers:,} transfers x 2 postings, {min(BATCH_CHUNK, transfers):,} per call, 1 connection"
    row = _row(BATCH, scale, "postings", timing)
    row["latency_per"] = "call"
    return row


def _read(ledger: Ledger, data: _DataSet, reads: int, threads: int, warm: int) -> dict[str, object]:
    n = len(data.members)

    def read(account_id: uuid.UUID) -> object:
        return ledger.balance(data.community_id, account_id)

    _threaded(read, [data.members[i % n] for i in range(warm)], threads)
    timing = _threaded(read, [data.members[(i * 7) % n] for i in range(reads)], threads)
    return _row(READ, f"{reads:,} reads, {threads} threads, {n:,} accounts", "reads", timing)


def _threaded(call: Callable[[T], object], items: Sequence[T], threads: int) -> _Timing:
    """Split ``items`` over ``threads`` workers that call ``call`` one item at a time, timing each call.

    The clock starts when every worker is ready (a barrier), so thread start-up is not counted.
    """
    workers = max(1, min(threads, len(items)))
    barrier = threading.Barrier(workers + 1)

    def work(chunk: Sequence[T]) -> list[int]:
        latencies = []
        barrier.wait()
        for item in chunk:
            t0 = time.perf_counter_ns()
            call(item)
            latencies.append(time.perf_counter_ns() - t0)
        return latencies

    with ThreadPoolExecutor(max_workers=workers) as executor:
        futures = [executor.submit(work, items[k::workers]) for k in range(workers)]
        barrier.wait()
        started = time.perf_counter_ns()
        latencies = [ns for future in futures for ns in future.result()]
        elapsed = time.perf_counter_ns() - started
    return _Timing(len(items), elapsed, latencies)


# ---------------------------------------------------------------------------------------- results


def _percentile(sorted_ns: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in milliseconds."""
    rank = max(1, min(len(sorted_ns), math.ceil(q / 100 * len(sorted_ns))))
    return sorted_ns[rank - 1] / 1e6


def _row(name: str, scale: str, unit: str, timing: _Timing) -> dict[str, object]:
    target = TARGETS[name]
    seconds = timing.elapsed_ns / 1e9
    throughput = timing.count / seconds
    ordered = sorted(timing.latencies_ns)
    return {
        "workload": name,
        "scale": scale,
        "count": timing.count,
        "unit": unit,
        "seconds": seconds,
        "throughput": throughput,
        "p50_ms": _percentile(ordered, 50),
        "p99_ms": _percentile(ordered, 99),
        "target": target.per_second,
        "target_p99_ms": target.p99_ms,
        "target_source": target.source,
        "ratio": throughput / target.per_second,
        "latency_per": unit[:-1],
    }


def _render(rows: Sequence[dict[str, object]], caption: str) -> str:
    table = Table(title="vledger bench", caption=caption)
    for header in ("workload", "scale", "throughput", "p50 ms", "p99 ms", "target", "ratio to target"):
        justify: JustifyMethod = "left" if header in ("workload", "scale", "target") else "right"
        table.add_column(header, justify=justify)
    for row in rows:
        target = f"{row['target']:,}/s"
        if row["target_p99_ms"] is not None:
            target += f", p99 <= {row['target_p99_ms']:g} ms"
        table.add_row(
            str(row["workload"]),
            str(row["scale"]),
            f"{row['throughput']:,.0f} {row['unit']}/s",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            target,
            f"{row['ratio']:.2f}",
        )
    buffer = io.StringIO()
    width = max(100, shutil.get_terminal_size((200, 24)).columns)
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(table)
    return buffer.getvalue().rstrip("\n")


def median_rows(runs: Sequence[Sequence[dict[str, object]]]) -> list[dict[str, object]]:
    """Per workload, the median throughput, p50 and p99 over several runs (latencies each on their own)."""
    merged: list[dict[str, object]] = []
    for same in zip(*runs, strict=True):
        row = dict(same[0])
        for key in ("throughput", "p50_ms", "p99_ms", "seconds", "ratio"):
            row[key] = statistics.median(float(r[key]) for r in same)
        merged.append(row)
    return merged


def main() -> None:
    """``python -m vledger.bench [URL]``: the same run without the CLI (``vledger bench`` calls ``run``)."""
    parser = argparse.ArgumentParser(prog="python -m vledger.bench", description=__doc__)
    parser.add_argument(
        "db_url",
        nargs="?",
        default=os.environ.get("DATABASE_URL"),
        help="owner URL of a migrated database (default: $DATABASE_URL)",
    )
    parser.add_argument("--transfers", type=int, default=20000)
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1, help="repeat, then print the median table")
    args = parser.parse_args()
    if not args.db_url:
        parser.error("give a database URL or set DATABASE_URL")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    runs = [
        run(
            args.db_url,
            transfers=args.transfers,
            singles=args.singles,
            reads=args.reads,
            threads=args.threads,
        )
        for _ in range(args.runs)
    ]
    if args.runs > 1:
        print(_render(median_rows(runs), f"median of {args.runs} runs"))


if __name__ == "__main__":
    main()
