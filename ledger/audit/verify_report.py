"""The offline verifier's report: the checks it names, their exit codes, and the JSON it prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CHECKS",
    "EXIT_MALFORMED",
    "EXIT_OK",
    "EXIT_POLICY",
    "EXIT_TAMPERED",
    "Failure",
    "Report",
]

#: Exit codes, as audit.md fixes them.
EXIT_OK = 0
EXIT_TAMPERED = 1
EXIT_MALFORMED = 2
EXIT_POLICY = 3

# Every check the verifier can report: its exit code and what a failure means (docs/audit.md has
# the same table for auditors; a unit test keeps the two in step).
CHECKS: dict[str, tuple[int, str]] = {
    # The file itself: it cannot be checked as it is.
    "export_read": (EXIT_MALFORMED, "the file cannot be read or decompressed"),
    "line_syntax": (EXIT_MALFORMED, "a line is not strict canonical JSON of the shape its section needs"),
    "header": (EXIT_MALFORMED, "the header line is missing or invalid"),
    "leaf_count": (EXIT_MALFORMED, "the number of leaf lines differs from the header's size"),
    "end_line": (EXIT_MALFORMED, "the end line is missing or its counts differ from the lines read"),
    "checkpoint_syntax": (EXIT_MALFORMED, "a checkpoint is not a well-formed signed note"),
    "balance_duplicate": (EXIT_MALFORMED, "an account's balance is listed twice"),
    "pin_file": (EXIT_MALFORMED, "the pinned state cannot be read, or is for another log"),
    # Evidence that the log or its checkpoints were altered.
    "origin": (EXIT_TAMPERED, "the export is for another log than the trusted key's"),
    "leaf_canonical": (EXIT_TAMPERED, "a leaf's bytes are not the canonical encoding of their value"),
    "leaf_type": (EXIT_TAMPERED, "a leaf has an unknown type or format version"),
    "leaf_fields": (EXIT_TAMPERED, "a leaf lacks a key, has an extra one, or a value of the wrong kind"),
    "leaf_origin": (EXIT_TAMPERED, "a leaf names another log's origin"),
    "leaf_position": (EXIT_TAMPERED, "a leaf is out of place: duplicated, swapped, inserted or renumbered"),
    "index_gap": (EXIT_TAMPERED, "leaves are missing: the index jumps forward"),
    "prev_link": (EXIT_TAMPERED, 'a leaf\'s "prev" is not the hash of the leaf before it'),
    "zero_sum": (EXIT_TAMPERED, "a transfer's postings do not sum to zero in some unit"),
    "duplicate_id": (EXIT_TAMPERED, "two transfers have the same id"),
    "reversal_target": (EXIT_TAMPERED, "a reversal's target is missing, later, or cannot be reversed"),
    "double_reversal": (EXIT_TAMPERED, "a transfer is reversed more than once"),
    "pending_target": (EXIT_TAMPERED, "a post or void names no earlier pending transfer"),
    "double_resolution": (EXIT_TAMPERED, "a pending transfer is posted or voided more than once"),
    "root_mismatch": (EXIT_TAMPERED, "the leaves do not hash to a signed checkpoint's root"),
    "checkpoint_origin": (EXIT_TAMPERED, "a checkpoint is for another log's origin"),
    "checkpoint_signature": (EXIT_TAMPERED, "a checkpoint has no valid signature by a trusted log key"),
    "retired_key": (EXIT_TAMPERED, "a checkpoint is signed by a retired key beyond its retirement size"),
    "cosignature_invalid": (EXIT_TAMPERED, "a trusted witness's cosignature does not verify"),
    "equivocation": (EXIT_TAMPERED, "two validly signed checkpoints give one size different roots"),
    "checkpoint_beyond_export": (EXIT_TAMPERED, "a signed checkpoint covers leaves the export lacks"),
    "rollback": (EXIT_TAMPERED, "the log is shorter than the pinned state: leaves were removed"),
    "pin_mismatch": (EXIT_TAMPERED, "the leaves do not hash to the pinned root: history was rewritten"),
    "balance_mismatch": (EXIT_TAMPERED, "a reported balance differs from the sum of the account's postings"),
    # The log may be intact, but the auditor's policy is not met.
    "unsigned_leaves": (EXIT_POLICY, "leaves after the newest verified checkpoint are not signed"),
    "witness_quorum": (EXIT_POLICY, "the newest verified checkpoint has too few trusted cosignatures"),
    "stale": (EXIT_POLICY, "the newest verified checkpoint is older than the maximum age"),
}


def _exit_rank(code: int) -> int:
    # Tampering outranks malformed input, which outranks an unmet policy: the most serious finding
    # decides the exit code.
    return {EXIT_TAMPERED: 3, EXIT_MALFORMED: 2, EXIT_POLICY: 1}.get(code, 0)


@dataclass(slots=True)
class Failure:
    """The first failure of one check (``index``: a leaf position, or a tree size for checkpoint
    checks, or None), and how many times the check failed in all."""

    check: str
    index: int | None
    expected: Any
    found: Any
    detail: str
    count: int = 1

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "index": self.index,
            "expected": self.expected,
            "found": self.found,
            "detail": self.detail,
            "count": self.count,
        }


@dataclass(slots=True)
class Report:
    """Failures (first per check, in the order found) and counts, turned into the JSON report."""

    origin: str | None = None
    size: int | None = None
    checked: dict[str, int] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    leaves: int = 0

    def fail(
        self,
        check: str,
        index: int | None,
        expected: Any = None,
        found: Any = None,
        detail: str = "",
        count: int = 1,
    ) -> None:
        """Record a failure (``count`` times); later failures of the same check only add to its count."""
        if check not in CHECKS:
            raise KeyError(f"unknown check {check!r}")
        first = self.failures.get(check)
        if first is None:
            self.failures[check] = Failure(check, index, expected, found, detail or CHECKS[check][1], count)
        else:
            first.count += count

    def count(self, name: str, n: int = 1) -> None:
        self.checked[name] = self.checked.get(name, 0) + n

    def has(self, check: str) -> bool:
        return check in self.failures

    @property
    def exit_code(self) -> int:
        codes = [CHECKS[name][0] for name in self.failures]
        return max(codes, key=_exit_rank, default=EXIT_OK)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        rate = self.leaves / self.duration_s if self.duration_s > 0 else 0.0
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "origin": self.origin,
            "size": self.size,
            "checked": dict(sorted(self.checked.items())),
            "failures": [f.as_json() for f in self.failures.values()],
            "checkpoints": self.checkpoints,
            "duration_s": round(self.duration_s, 3),
            "leaves_per_s": round(rate),
        }
