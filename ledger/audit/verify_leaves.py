"""Checking a run of an export's leaf lines: framing, canonical bytes, fields, links, hashes, subtrees.

``check_chunk`` depends only on its job (and adds posted amounts to the dict it is given), so worker
processes can check chunks in parallel; whatever needs the whole log (links across chunks, transfer
ids, the tree) is merged in order by the caller (ledger.audit.verify_state). A chunk's leaves are
returned as the perfect subtrees that tile its range, which the caller pushes onto the tree.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ledger.audit.export_format import LEAF_PREFIX
from ledger.audit.jcs import CanonicalError, parse_canonical
from ledger.audit.merkle import perfect_subtrees
from ledger.audit.verify_fields import EVENT, UNITS, UNKNOWN, TransferFields, check_leaf_value, phase_code
from ledger.audit.verify_framing import canonical_b64, decimal, index_checked, malformed
from ledger.audit.verify_patterns import FAST_TRANSFER, MAX_TIME, POSTINGS, pair_pattern

__all__ = ["REF_RESOLVE", "REF_REVERSE", "ChunkJob", "ChunkResult", "Sums", "check_chunk"]

#: A reference from a leaf to an earlier transfer: the one it reverses, or the pending one it resolves.
REF_REVERSE = 0
REF_RESOLVE = 1
_ZERO_HEX = b"0" * 64


@dataclass(frozen=True, slots=True)
class ChunkJob:
    """Leaf lines (joined with newlines), given as bytes or as a span of a file the worker reads.

    ``start`` is the position of the first leaf. None lets the worker take the first line's index
    (so that the reader need not count lines); the caller re-runs the chunk with the right start
    in the rare case that the index was not the leaf's position (tampering).
    """

    data: bytes
    start: int | None
    origin: str
    cuts: tuple[int, ...] = ()  # tree sizes whose roots are wanted (those inside the chunk are used)
    sequence: int = 0  # the chunk's place in the file, for putting results back in order
    path: str | None = None  # if set, the lines are the file's bytes [offset, offset + length)
    offset: int = 0
    length: int = 0
    force_slow: bool = False  # tests: check every leaf on the general path
    verbatim: bool = True  # leaf lines of /2 (leaf bytes verbatim); False: /1 (base64)

    def lines(self) -> bytes:
        if self.path is None:
            return self.data
        with open(self.path, "rb") as file:
            return os.pread(file.fileno(), self.length, self.offset)

    def first_index(self, data: bytes) -> int:
        """The index the first line claims (0 if it has none): the chunk's start when ``start`` is None."""
        if self.start is not None:
            return self.start
        text = data[len(LEAF_PREFIX) : data.find(b",", 0, 40)]
        return int(text) if data.startswith(LEAF_PREFIX) and decimal(text) else 0


@dataclass(slots=True)
class ChunkResult:
    """What a chunk contributes to the whole-log checks, and the failures found inside it."""

    start: int
    sequence: int = 0
    count: int = 0
    fatal: bool = False
    first_prev: bytes | None = None  # hex "prev" of the first leaf, checked against the chunk before
    last_hash: bytes = b""
    tiles: list[bytes] = field(default_factory=list)  # perfect subtrees of [start, start+count)
    cut_tiles: dict[int, list[bytes]] = field(default_factory=dict)
    # check -> [index, expected, found, detail, count]: the first failure of each check.
    failures: dict[str, list[Any]] = field(default_factory=dict)
    ids: list[bytes] = field(default_factory=list)
    id_positions: list[int] = field(default_factory=list)
    phases: bytearray = field(default_factory=bytearray)  # one phase code per leaf
    refs: list[tuple[int, int, bytes]] = field(default_factory=list)  # (position, REF_*, target id)
    # Of each ref, its target's first position in this chunk, or -1 (found in C, by the worker).
    ref_targets: list[int] = field(default_factory=list)
    transfers: int = 0
    events: int = 0
    postings: int = 0

    def fail(self, check: str, index: int, expected: Any = None, found: Any = None, detail: str = "") -> None:
        first = self.failures.get(check)
        if first is None:
            self.failures[check] = [index, expected, found, detail, 1]
        else:
            first[4] += 1

    def transfer(self, pos: int, f: TransferFields, sums: Sums) -> None:
        """Register a transfer's id, references and posted amounts; check its phase and sums.

        The general path's twin of _fast_leaf (tests/unit/test_verifier.py compares the two).
        """
        self.transfers += 1
        self.postings += len(f.postings)
        problem = f.phase_problem()
        if problem:
            self.fail("leaf_fields", pos, None, None, problem)
        totals: dict[bytes, int] = {}
        posted = f.phase in _POSTED
        for pair, unit, amount in f.postings:
            if unit not in UNITS:
                self.fail("leaf_fields", pos, None, None, "a posting names an unknown unit")
            totals[unit] = totals.get(unit, 0) + amount
            if posted:
                sums[pair] = sums.get(pair, 0) + amount
        if any(totals.values()):
            self._unbalanced(pos, totals)
        self.ids.append(f.id)
        self.id_positions.append(pos)
        if f.reverses is not None:
            self.refs.append((pos, REF_REVERSE, f.reverses))
        if f.pending_id is not None and f.phase in _RESOLVING:
            self.refs.append((pos, REF_RESOLVE, f.pending_id))
        self.phases.append(f.code)

    def _unbalanced(self, pos: int, totals: dict[bytes, int]) -> None:
        found = {u.decode(errors="replace"): t for u, t in totals.items() if t}
        self.fail("zero_sum", pos, dict.fromkeys(found, 0), found, "postings do not sum to zero per unit")


_POSTED = frozenset({b"single", b"post"})
#: Posted amounts per pair_key(account, unit).
Sums = dict[bytes, int]
_RESOLVING = frozenset({b"post", b"void"})


def _general(
    leaf: bytes, pos: int, line_index: int, origin: str, res: ChunkResult, sums: Sums
) -> bytes | None:
    """Check a leaf the fast pattern did not match; returns its "prev" (hex bytes) if readable."""
    try:
        value: object = parse_canonical(leaf)
    except CanonicalError as exc:
        res.fail("leaf_canonical", pos, None, None, f"leaf is not canonical: {exc}")
        try:  # still read what it says, so that the checks below report on its content
            value = json.loads(leaf)
        except (ValueError, RecursionError):
            res.phases.append(UNKNOWN)
            return None
    outcome = check_leaf_value(value, line_index, origin)
    for check, expected, found, detail in outcome.problems:
        res.fail(check, pos, expected, found, detail)
    if outcome.transfer is not None:
        res.transfer(pos, outcome.transfer, sums)
    else:
        if outcome.code == EVENT:
            res.events += 1
        res.phases.append(outcome.code)
    return outcome.prev


def _phase_problem(phase: bytes, reverses: bytes | None, pending: bytes | None, timeout: bytes | None) -> str:
    return TransferFields(b"", phase, [], reverses, pending, timeout is None).phase_problem()


def _fast_leaf(  # noqa: PLR0912 - flat checks of one leaf, kept together for speed
    m: re.Match[bytes], pos: int, index_text: bytes, origin: bytes, res: ChunkResult, sums: Sums
) -> bytes | None:
    """Check a transfer leaf the fast pattern matched; returns its "prev", or None if a time is out
    of range (the general path then decides). The general path's twin is ChunkResult.transfer."""
    effective, tid, leaf_index, leaf_origin, pending, phase, postings, prev, recorded, reverses, timeout = (
        m.groups()
    )
    # The pattern bounds times to 16 digits; those of exactly 16 may still exceed 2**53-1.
    if (
        (len(effective) == 16 and effective > MAX_TIME)
        or (len(recorded) == 16 and recorded > MAX_TIME)
        or (timeout is not None and len(timeout) == 16 and timeout > MAX_TIME)
    ):
        return None
    if leaf_index != index_text:
        res.fail("leaf_position", pos, int(index_text), int(leaf_index), "the leaf's index is not its line's")
    if leaf_origin != origin:
        res.fail("leaf_origin", pos, origin.decode(), leaf_origin.decode(), "the leaf names another origin")
    if phase == b"single":
        bad = pending is not None or timeout is not None
    elif phase == b"pending":
        bad = reverses is not None or pending is not None
    else:
        bad = pending is None or reverses is not None or timeout is not None
    if bad:
        res.fail("leaf_fields", pos, None, None, _phase_problem(phase, reverses, pending, timeout))
    items = POSTINGS(postings)
    totals: dict[bytes, int] = {}
    if phase in _POSTED:
        sums_get = sums.get
        for pair, unit, amount in items:
            n = int(amount)
            totals[unit] = totals.get(unit, 0) + n
            sums[pair] = sums_get(pair, 0) + n
    else:
        for _, unit, amount in items:
            totals[unit] = totals.get(unit, 0) + int(amount)
    if any(totals.values()):
        res._unbalanced(pos, totals)
    res.postings += len(items)
    res.transfers += 1
    res.ids.append(tid)
    res.id_positions.append(pos)
    res.phases.append(_CODES[phase])
    if reverses is not None:
        res.refs.append((pos, REF_REVERSE, reverses))
    if pending is not None and phase in _RESOLVING:
        res.refs.append((pos, REF_RESOLVE, pending))
    return prev


def _pair_leaf(
    groups: tuple[Any, ...], pos: int, index_text: bytes, res: ChunkResult, sums: Sums
) -> bytes | None:
    """Check a leaf the two-or-four-posting pattern matched; returns its "prev", or None if its
    index, balance or phase combination is not the plain case (_fast_leaf then decides)."""
    (tid, leaf_index, pending, phase, pair1, amount1, pair2, amount2, pair3, amount3, pair4, amount4,
     prev, reverses, timeout) = groups  # fmt: skip
    if (
        leaf_index != index_text
        or pair1[-3:] != pair2[-3:]  # not one unit (the unit names differ in their last bytes)
        or (amount2 != b"-" + amount1 and amount1 != b"-" + amount2)
        or (pair3 is not None and pair3[-3:] != pair4[-3:])
        or (pair3 is not None and amount4 != b"-" + amount3 and amount3 != b"-" + amount4)
    ):
        return None
    if phase == b"pending":
        if pending is not None or reverses is not None:
            return None
    elif timeout != b"null" or (pending is None) != (phase == b"single") or (pending and reverses):
        return None
    if phase in _POSTED:
        n = int(amount1)
        sums[pair1] = sums.get(pair1, 0) + n
        sums[pair2] = sums.get(pair2, 0) - n
        if pair3 is not None:
            n = int(amount3)
            sums[pair3] = sums.get(pair3, 0) + n
            sums[pair4] = sums.get(pair4, 0) - n
    res.postings += 2 if pair3 is None else 4
    res.transfers += 1
    res.ids.append(tid)
    res.id_positions.append(pos)
    res.phases.append(_CODES[phase])
    if reverses is not None:
        res.refs.append((pos, REF_REVERSE, reverses))
    elif pending is not None:
        res.refs.append((pos, REF_RESOLVE, pending))
    return prev  # type: ignore[no-any-return]


def check_chunk(job: ChunkJob, sums: Sums) -> ChunkResult:
    """Check every leaf line of the job, in order, stopping at the first malformed line.

    Posted amounts (phases single and post) are added to ``sums``, per ``pair_key(account, unit)``:
    a worker keeps one such dict for all its chunks, so they are merged once, not per chunk.
    Framing is inlined in the loop: at a million leaves each call saved is a fraction of a second.
    The "prev" links are compared all at once after the loop (one comparison of joined bytes).
    """
    data = job.lines()
    res = ChunkResult(job.first_index(data), job.sequence)
    origin_b = job.origin.encode()
    fast = _NEVER if job.force_slow else FAST_TRANSFER
    a2b, sha256, verbatim = binascii.a2b_base64, hashlib.sha256, job.verbatim
    pair = _NEVER if job.force_slow else (pair_pattern(origin_b) or _NEVER)
    hashes: list[bytes] = []
    prevs: list[bytes | None] = []
    append_hash, append_prev = hashes.append, prevs.append
    pos = res.start
    for line in data.split(b"\n"):
        if verbatim:
            sep = line.find(b',"leaf":', 9)
            if sep < 0 or line[:9] != LEAF_PREFIX or line[-1:] != b"}":
                malformed(line, pos, res, verbatim)
                break
            index_text, leaf = line[9:sep], line[sep + 8 : -1]
        else:
            sep = line.find(b',"leaf":"', 9)
            if sep < 0 or line[:9] != LEAF_PREFIX or line[-2:] != b'"}':
                malformed(line, pos, res, verbatim)
                break
            index_text, b64 = line[9:sep], line[sep + 9 : -2]
            try:
                leaf = a2b(b64, strict_mode=True)
            except binascii.Error:
                malformed(line, pos, res, verbatim)
                break
            if b64[-1:] == b"=" and not canonical_b64(b64):
                malformed(line, pos, res, verbatim)
                break
        if index_text != b"%d" % pos and not index_checked(index_text, pos, res):
            malformed(line, pos, res, verbatim)
            break
        append_hash(sha256(b"\x00" + leaf).digest())
        m = pair(leaf)
        prev = None if m is None else _pair_leaf(m.groups(), pos, index_text, res, sums)
        if prev is None:
            m = fast(leaf)
            prev = None if m is None else _fast_leaf(m, pos, index_text, origin_b, res, sums)
        if prev is None:
            prev = _general(leaf, pos, int(index_text), job.origin, res, sums)
        append_prev(prev)
        pos += 1
    res.count = len(hashes)
    _local_targets(res)
    if hashes:
        _links(res, hashes, prevs)
        res.last_hash = hashes[-1]
        _tile(res, hashes, job.cuts)
    return res


def _local_targets(res: ChunkResult) -> None:
    """Where each reference's target first appears in this chunk, if it does: most references are
    to recent transfers, so the merge need not search the whole log for them."""
    if res.refs:
        first = dict(zip(reversed(res.ids), reversed(res.id_positions), strict=True))
        res.ref_targets = [first.get(target, -1) for _, _, target in res.refs]


def _links(res: ChunkResult, hashes: list[bytes], prevs: list[bytes | None]) -> None:
    """Check each leaf's "prev" against the hash of the leaf before it (the first against the
    chunk before, by the caller, unless the chunk starts the log)."""
    first = prevs[0]
    if res.start == 0:
        if first is not None and first != _ZERO_HEX:
            res.fail(
                "prev_link", 0, _ZERO_HEX.decode(), first.decode(), "prev is not the previous leaf's hash"
            )
    else:
        res.first_prev = first
    rest = prevs[1:]
    if None not in rest and b"".join(rest) == binascii.hexlify(b"".join(hashes[:-1])):  # type: ignore[arg-type]
        return
    for i, prev in enumerate(rest):
        expected = binascii.hexlify(hashes[i])
        if prev is not None and prev != expected:
            pos = res.start + i + 1
            res.fail(
                "prev_link", pos, expected.decode(), prev.decode(), "prev is not the previous leaf's hash"
            )


def _never(_leaf: bytes) -> None:
    return None


_NEVER = _never
_CODES = {phase: phase_code(phase) for phase in (b"single", b"pending", b"post", b"void")}


def _tile(res: ChunkResult, hashes: list[bytes], cuts: tuple[int, ...]) -> None:
    """The perfect subtrees tiling the chunk's range, and its prefixes ending at each cut."""
    start = res.start
    sha256 = hashlib.sha256

    def subtree(level: int, index: int) -> bytes:
        lo = (index << level) - start
        row = hashes[lo : lo + (1 << level)]
        while len(row) > 1:
            row = [sha256(b"\x01" + row[i] + row[i + 1]).digest() for i in range(0, len(row), 2)]
        return row[0]

    res.tiles = [subtree(lv, i) for lv, i in perfect_subtrees(start, start + len(hashes))]
    # Cuts are rare (one per checkpoint), so their prefixes are simply hashed again.
    res.cut_tiles = {
        cut: [subtree(lv, i) for lv, i in perfect_subtrees(start, cut)]
        for cut in cuts
        if start < cut < start + len(hashes)
    }
