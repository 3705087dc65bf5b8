"""The verifier's last steps: reported balances, the end line, and the auditor's policy (signed
coverage, witness quorum, freshness, the pinned state)."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ledger.audit.export_format import BALANCE_PREFIX, ExportHeader, LineError, parse_line
from ledger.audit.jcs import MAX_SAFE_INTEGER
from ledger.audit.verify_fields import pair_key, split_pair
from ledger.audit.verify_io import LineReader, Pin
from ledger.audit.verify_notes import NoteCheck
from ledger.audit.verify_report import Report
from ledger.audit.verify_state import LogState

if TYPE_CHECKING:
    from ledger.audit.verifier import VerifyOptions

__all__ = ["check_balance_lines", "check_end", "check_policy"]

# A balance line whose strings need no escaping, exactly as the export writes it (keys sorted).
_BALANCE = re.compile(
    rb'\{"balance":\{"account":"([ !#-\[\]-~]*)","posted":(0|-?[1-9][0-9]{0,15}),"unit":"([ !#-\[\]-~]*)"\}\}'
).fullmatch
_BALANCE_KEYS = frozenset({"account", "unit", "posted"})
_END_KEYS = frozenset({"checkpoints", "leaves", "balances"})


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _balance(line: bytes) -> tuple[bytes, int] | str:
    """(pair_key(account, unit), posted) of a balance line, or why it is malformed."""
    m = _BALANCE(line)
    if m is not None and abs(int(m.group(2))) <= MAX_SAFE_INTEGER:
        return b'"%s","%s"' % (m.group(1), m.group(3)), int(m.group(2))
    try:
        value = parse_line(line)
    except LineError as exc:
        return str(exc)
    inner = value.get("balance")
    if set(value) != {"balance"} or not isinstance(inner, dict) or set(inner) != _BALANCE_KEYS:
        return 'a balance line must be {"balance":{"account":...,"posted":...,"unit":...}}'
    account, unit, posted = inner["account"], inner["unit"], inner["posted"]
    if type(account) is not str or type(unit) is not str or type(posted) is not int:
        return "a balance needs a string account and unit and an integer posted amount"
    return pair_key(account, unit), posted


def _name(key: bytes) -> str:
    account, unit = split_pair(key)
    return f"account {account} ({unit})"


def check_balance_lines(lines: LineReader, state: LogState, report: Report) -> int:
    """Compare each reported balance with the sum of the account's posted amounts; returns the count."""
    sums = dict(state.sums)
    seen: set[bytes] = set()
    count = 0
    while (line := lines.peek()) is not None and line.startswith(BALANCE_PREFIX):
        lines.next()
        count += 1
        parsed = _balance(line)
        if isinstance(parsed, str):
            report.fail("line_syntax", None, None, None, f"balance line {count}: {parsed}")
            continue
        key, posted = parsed
        if key in seen:
            report.fail("balance_duplicate", None, None, posted, f"{_name(key)} is listed twice")
            continue
        seen.add(key)
        expected = sums.pop(key, 0)
        if expected != posted:
            report.fail(
                "balance_mismatch", None, expected, posted, f"{_name(key)}: reported != sum of postings"
            )
    for key, expected in sorted(sums.items()):
        if expected != 0:
            report.fail("balance_mismatch", None, expected, None, f"{_name(key)} has postings but no balance")
    report.count("balances", count)
    return count


def check_end(lines: LineReader, report: Report, checkpoints: int, leaves: int, balances: int) -> None:
    """The end line must follow, with the counts of the lines read, and nothing after it."""
    line = lines.next()
    expected = {"balances": balances, "checkpoints": checkpoints, "leaves": leaves}
    if line is None:
        report.fail("end_line", None, expected, None, "the end line is missing: the export is truncated")
        return
    try:
        value = parse_line(line)
    except LineError as exc:
        report.fail(
            "end_line", None, expected, None, f"the line after the balances is not the end line: {exc}"
        )
        return
    counts = value.get("end")
    if set(value) != {"end"} or not isinstance(counts, dict) or set(counts) != _END_KEYS:
        report.fail("end_line", None, expected, None, "the line after the balances is not the end line")
        return
    if counts != expected:
        report.fail("end_line", None, expected, counts, "the end line's counts differ from the lines read")
    if lines.next() is not None:
        report.fail("line_syntax", None, None, None, "a line comes after the end line")
    if lines.missing_final_newline:
        report.fail("line_syntax", None, None, None, "the last line does not end with a newline")


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _freshness(
    report: Report, options: VerifyOptions, header: ExportHeader, latest: NoteCheck, max_age: timedelta
) -> None:
    if latest.cosigned_at is not None:
        when, basis = datetime.fromtimestamp(latest.cosigned_at, UTC), "its newest trusted cosignature"
    else:
        when, basis = header.exported_at, "the export time (no trusted cosignature)"
    age = (options.now or datetime.now(UTC)) - when
    if age > max_age:
        report.fail(
            "stale", latest.size, _hours(max_age), _hours(age),
            f"the newest verified checkpoint is {_hours(age)} h old by {basis}",
        )  # fmt: skip


def _pinned(report: Report, state: LogState, signed: int, pin: Pin) -> None:
    if state.size < pin.size:
        report.fail("rollback", state.size, pin.size, state.size, "the export has fewer leaves than the pin")
        return
    root = state.root_at(pin.size)
    if root is not None and root != pin.root:
        report.fail("pin_mismatch", pin.size, _b64(pin.root), _b64(root), "the pinned prefix was rewritten")
    if signed < pin.size:
        report.fail(
            "rollback", signed, pin.size, signed, "the newest verified checkpoint is older than the pin"
        )


def check_policy(
    report: Report,
    options: VerifyOptions,
    header: ExportHeader,
    state: LogState,
    notes: Sequence[NoteCheck],
    pin: Pin | None,
) -> NoteCheck | None:
    """Signed coverage, quorum, freshness and the pin; returns the newest verified checkpoint."""
    verified = [n for n in notes if n.valid and n.root_matches]
    report.count("checkpoints_verified", len(verified))
    latest = max(verified, key=lambda n: (n.size or 0, len(n.cosigners)), default=None)
    signed = 0 if latest is None or latest.size is None else latest.size
    if state.size > signed:
        report.fail(
            "unsigned_leaves", signed, state.size, signed,
            f"leaves {signed} to {state.size - 1} come after the newest verified checkpoint",
        )  # fmt: skip
    if options.quorum:
        have = 0 if latest is None else len(latest.cosigners)
        if have < options.quorum:
            report.fail(
                "witness_quorum", signed, options.quorum, have,
                f"the newest verified checkpoint has {have} trusted cosignature(s)",
            )  # fmt: skip
    if options.max_age is not None and latest is not None:
        _freshness(report, options, header, latest, options.max_age)
    if pin is not None:
        _pinned(report, state, signed, pin)
    return latest
