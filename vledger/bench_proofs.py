"""Proof latency at scale: inclusion and consistency proofs from the stored tree of a big log.

Builds a log of ``--leaves`` synthetic leaves in its own community (COPY, not the ledger: only the
tree matters here), folds them into perfect-subtree nodes with ``AuditLog.ingest``, then times
random inclusion and consistency proofs through ``AuditLog``, verifying every one. The design's
target is p99 <= 10 ms at 10M leaves.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Callable

from ledger.audit.leaf import leaf_hash
from ledger.audit.merkle import verify_consistency, verify_inclusion
from ledger.services.audit_log import AuditLog
from ledger.services.communities import Communities
from ledger.store.db import Conn, open_pool

TARGET_P99_MS = 10.0
_COPY = "COPY log_leaf (community_id, idx, leaf, leaf_hash, transfer_id) FROM STDIN (FORMAT BINARY)"


def _fill(conn: Conn, community_id: int, leaves: int, progress: Callable[[int], object]) -> None:
    """Synthetic leaves (their bytes do not matter to the tree), then the head that covers them."""
    prev = bytes(32)
    with conn.cursor().copy(_COPY) as cp:
        cp.set_types(["int8", "int8", "bytea", "bytea", "uuid"])
        for i in range(leaves):
            leaf = b'{"bench":%d}' % i
            prev = leaf_hash(leaf)
            cp.write_row((community_id, i, leaf, prev, None))
            if i % 100_000 == 0:
                progress(i)
    conn.execute(
        "UPDATE log_head SET size = %s, last_hash = %s WHERE community_id = %s", (leaves, prev, community_id)
    )
    conn.commit()


def run(
    db_url: str, *, leaves: int = 1_000_000, proofs: int = 1000, out: Callable[..., object] = print
) -> dict[str, object]:
    """Build the log (owner connection for the COPY), ingest it, and time proofs; returns the row."""
    import psycopg  # noqa: PLC0415

    pool = open_pool(db_url, min_size=1, max_size=2, name="bench-proofs")
    try:
        communities = Communities(pool, origin_prefix="bench.vledger", hot_buckets=1)
        tag = uuid.uuid4().hex[:10]
        region = communities.create_region(f"proofs-{tag}", "基准测试街道")
        community_id = communities.create_community(region, f"proofs-{tag}", "证明基准社区").community_id
        started = time.perf_counter()
        with psycopg.connect(db_url) as owner:
            _fill(owner, community_id, leaves, lambda i: out(f"  已写入 {i:,} 条叶子"))
        filled = time.perf_counter() - started
        audit = AuditLog(pool)
        started = time.perf_counter()
        size, root = audit.ingest(community_id)
        ingested = time.perf_counter() - started
        rng = random.Random(1)
        inclusion_ms, consistency_ms = [], []
        for _ in range(proofs):
            index = rng.randrange(size)
            t0 = time.perf_counter()
            digest, path = audit.inclusion(community_id, index, size)
            inclusion_ms.append((time.perf_counter() - t0) * 1000)
            verify_inclusion(index, size, digest, path, root)
            old = rng.randrange(1, size)
            t0 = time.perf_counter()
            proof = audit.consistency(community_id, old, size)
            consistency_ms.append((time.perf_counter() - t0) * 1000)
            verify_consistency(old, size, audit.root(community_id, old), root, proof)
    finally:
        pool.close()
    row: dict[str, object] = {
        "leaves": size,
        "fill_s": round(filled, 1),
        "ingest_s": round(ingested, 1),
        "ingest_leaves_per_s": round(size / ingested),
        "inclusion_p50_ms": round(statistics.median(inclusion_ms), 2),
        "inclusion_p99_ms": round(_p99(inclusion_ms), 2),
        "consistency_p50_ms": round(statistics.median(consistency_ms), 2),
        "consistency_p99_ms": round(_p99(consistency_ms), 2),
        "target_p99_ms": TARGET_P99_MS,
    }
    out(row)
    return row


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description="证明延迟基准：在大规模日志上生成并验证包含性与一致性证明")
    parser.add_argument("db_url", help="所有者连接串（需可写入 log_leaf）")
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=1000)
    args = parser.parse_args()
    run(args.db_url, leaves=args.leaves, proofs=args.proofs)


if __name__ == "__main__":
    main()
