"""The offline verifier's benchmark: synthesise a large export without the database, verify it, time it."""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ledger.audit.checkpoint import Checkpoint, format_checkpoint_body, sign_checkpoint
from ledger.audit.cosignature import WitnessVerifier, cosign
from ledger.audit.export_format import ExportHeader, ExportWriter, write_lines
from ledger.audit.leaf import ZERO_HASH, leaf_hash, leaf_template, transfer_leaf_template
from ledger.audit.merkle import TreeBuilder
from ledger.audit.note import Signer
from ledger.audit.verifier import VerifyOptions, verify_export
from ledger.audit.verify_notes import TrustedKeys
from ledger.audit.verify_report import Report

__all__ = ["TARGET_LEAVES_PER_S", "Synthetic", "build_export", "main", "run"]

#: The verifier's speed target on a one-million-leaf export (docs/audit.md).
TARGET_LEAVES_PER_S = 250_000
ORIGIN = "bench.vledger.local/community/1"
CHECKPOINT_EVERY = 100_000
MEMBERS = 10_000
_T0_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
Posting = tuple[uuid.UUID, str, int]


@dataclass(frozen=True, slots=True)
class Synthetic:
    """A synthesised export and the throwaway keys that verify it."""

    path: Path
    leaves: int
    log_key: Signer
    witness: Signer


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


class _Books:
    """Realistic transfers: awards, member payments, reversals, two-phase holds; balances as they go.

    Every account holds one unit, as in the service: each member has a minutes and a points account.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.issue_minutes, self.issue_points, self.sink = _uuid(rng), _uuid(rng), _uuid(rng)
        self.minutes = [_uuid(rng) for _ in range(MEMBERS)]
        self.points = [_uuid(rng) for _ in range(MEMBERS)]
        self.posted: dict[tuple[uuid.UUID, str], int] = {}
        self.reversible: list[tuple[uuid.UUID, list[Posting]]] = []
        self.pending: list[tuple[uuid.UUID, list[Posting]]] = []

    def _award(self) -> list[Posting]:
        m, minutes = self.rng.randrange(MEMBERS), self.rng.randrange(30, 240)
        return [
            (self.issue_minutes, "service_minutes", -minutes),
            (self.minutes[m], "service_minutes", minutes),
            (self.issue_points, "points", -(minutes // 3 + 1)),
            (self.points[m], "points", minutes // 3 + 1),
        ]

    def _payment(self) -> list[Posting]:
        payer, payee = self.rng.choice(self.points), self.rng.choice(self.points)
        amount = self.rng.randrange(1, 50)
        return [(payer, "points", -amount), (payee, "points", amount)]

    def next(self, i: int) -> dict[str, object]:
        """Keyword arguments of transfer_leaf_template for the i-th transfer."""
        rng, tid = self.rng, _uuid(self.rng)
        roll = rng.random()
        phase, reverses, pending_id, timeout = "single", None, None, None
        if roll < 0.05 and self.reversible:
            reverses, original = self.reversible.pop(rng.randrange(len(self.reversible)))
            kind, postings = "reversal", [(a, u, -n) for a, u, n in original]
        elif roll < 0.08:
            kind, phase, timeout = "hold", "pending", _T0_US + i * 1_000_000 + 86_400_000_000
            postings = [(rng.choice(self.points), "points", -5), (self.sink, "points", 5)]
            self.pending.append((tid, postings))
        elif roll < 0.11 and self.pending:
            pending_id, postings = self.pending.pop(0)
            kind, phase = "redeem", rng.choice(("post", "void"))
        elif roll < 0.6:
            kind, postings = "award", self._award()
        else:
            kind, postings = "payment", self._payment()
        if phase == "single" and reverses is None:
            self.reversible.append((tid, postings))
            if len(self.reversible) > 1000:
                self.reversible.pop(0)
        if phase in ("single", "post"):
            for account, unit, amount in postings:
                self.posted[(account, unit)] = self.posted.get((account, unit), 0) + amount
        return {
            "transfer_id": tid, "kind": kind, "phase": phase, "effective_us": _T0_US + i * 1_000_000,
            "recorded_us": _T0_US + i * 1_000_000 + 1234, "actor": _uuid(rng),
            "idempotency_key": f"{kind}-{i}", "postings": postings, "reverses": reverses,
            "pending_id": pending_id, "timeout_us": timeout,
        }  # fmt: skip


def _leaves(count: int, books: _Books) -> Iterator[bytes]:
    prev = ZERO_HASH
    for i in range(count):
        if i % 50_000 == 49_999:  # now and then an adopted rule set, on the same chain
            template = leaf_template({"v": 1, "origin": ORIGIN, "type": "rule_set", "version": i})
        else:
            template = transfer_leaf_template(origin=ORIGIN, **books.next(i))  # type: ignore[arg-type]
        leaf = template.render(i, prev)
        prev = leaf_hash(leaf)
        yield leaf


def build_export(path: Path, leaves: int, *, seed: int = 1, every: int = CHECKPOINT_EVERY) -> Synthetic:
    """Write an export of ``leaves`` synthetic leaves, signed every ``every`` leaves and at the end.

    Each checkpoint carries a cosignature by a throwaway witness, timestamped now.
    """
    rng = random.Random(seed)
    log_key = Signer.from_seed(ORIGIN, rng.randbytes(32))
    witness = Signer.from_seed("witness.bench.local", rng.randbytes(32))
    sizes = sorted({*range(every, leaves + 1, every), leaves})
    books = _Books(rng)
    tree, roots = TreeBuilder(), {0: TreeBuilder().root()}
    # Checkpoints come before the leaves in the file, so the leaves are kept until their roots are known.
    kept: list[bytes] = []
    for leaf in _leaves(leaves, books):
        tree.append(leaf_hash(leaf))
        kept.append(leaf)
        roots[tree.size] = tree.root() if tree.size in sizes else b""
    now = datetime.now(UTC)

    def emit(w: ExportWriter) -> None:
        for size in sizes:
            cp = Checkpoint(ORIGIN, size, roots[size])
            cosignature = cosign(format_checkpoint_body(cp), witness, int(now.timestamp()))
            w.checkpoint(sign_checkpoint(cp, log_key) + cosignature.encode())
        for index, leaf in enumerate(kept):
            w.leaf(index, leaf)
        kept.clear()
        for (account, unit), posted in sorted(books.posted.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            w.balance(str(account), unit, posted)

    write_lines(path, emit, ExportHeader(ORIGIN, 1, leaves, now))
    return Synthetic(path, leaves, log_key, witness)


def verify(synthetic: Synthetic, *, jobs: int | None = None) -> Report:
    """Verify the synthetic export with its keys, a witness quorum of one and a one-hour maximum age."""
    keys = TrustedKeys((synthetic.log_key.verifier(),), (), (WitnessVerifier.of(synthetic.witness),))
    options = VerifyOptions(keys, quorum=1, max_age=timedelta(hours=1), jobs=jobs)
    return verify_export(synthetic.path, options)


def run(leaves: int = 1_000_000, *, jobs: int | None = None, console: Console | None = None) -> Report:
    """Build, verify and print one table: leaves/s against the target."""
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="vledger-bench-verify-") as tmp:
        path = Path(tmp) / "export.jsonl"
        started = time.perf_counter()
        synthetic = build_export(path, leaves)
        built_s = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6
        report = verify(synthetic, jobs=jobs)
    rate = report.leaves / report.duration_s if report.duration_s else 0.0
    table = Table(title="离线校验基准（vledger audit verify）")
    for column in ("项目", "数值"):
        table.add_column(column)
    table.add_row("叶子数", f"{report.leaves:,}")
    table.add_row("导出文件", f"{size_mb:,.0f} MB（生成用时 {built_s:.1f} 秒）")
    table.add_row("校验结果", "通过" if report.ok else f"未通过（退出码 {report.exit_code}）")
    table.add_row("校验用时", f"{report.duration_s:.2f} 秒")
    verdict = "达标" if rate >= TARGET_LEAVES_PER_S else "未达标"
    table.add_row("速度", f"{rate:,.0f} 叶子/秒（目标 {TARGET_LEAVES_PER_S:,}，{verdict}）")
    console.print(table)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="离线校验基准：生成合成导出文件并校验，输出每秒叶子数。")
    parser.add_argument("--leaves", type=int, default=1_000_000, help="合成叶子数（默认 1000000）")
    parser.add_argument("--jobs", type=int, default=None, help="校验进程数（默认按 CPU 数）")
    args = parser.parse_args(argv)
    report = run(args.leaves, jobs=args.jobs)
    return 0 if report.ok else report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
