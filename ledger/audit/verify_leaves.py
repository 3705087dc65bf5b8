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
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ledger.audit.export_format import LEAF_PREFIX
from ledger.audit.jcs import CanonicalError, parse_canonical
from ledger.audit.merkle import perfect_subtrees
from ledger.audit.verify_fields import EVENT, UNITS, UNKNOWN, TransferFields, check_leaf_value, phase_code
from ledger.audit.verify_framing import canonical_b64, decimal, index_checked, malformed
from ledger.audit.verify_patterns import FAST_TRANSFER, MAX_TIME, POSTINGS, line_pattern

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

    def __reduce__(self) -> tuple[Callable[[list[Any]], ChunkResult], tuple[list[Any]]]:
        """Pickled for the trip from a worker with its ids joined into one bytes object: a list of
        ten thousand small bytes objects costs far more to pickle and unpickle. Ids holding a
        newline (only a tampered leaf has one) keep the list."""
        state = [getattr(self, f.name) for f in fields(self)]
        joined = b"\n".join(self.ids)
        if self.ids and joined.count(b"\n") == len(self.ids) - 1:
            state[_IDS_FIELD] = joined
        return _unpickle_result, (state,)

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


_IDS_FIELD = [f.name for f in fields(ChunkResult)].index("ids")


def _unpickle_result(state: list[Any]) -> ChunkResult:
    ids = state[_IDS_FIELD]
    if isinstance(ids, bytes):
        state[_IDS_FIELD] = ids.split(b"\n")
    return ChunkResult(*state)


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


def check_chunk(job: ChunkJob, sums: Sums) -> ChunkResult:
    """Check every leaf line of the job, in order, stopping at the first malformed line.

    Posted amounts (phases single and post) are added to ``sums``, per ``pair_key(account, unit)``:
    a worker keeps one such dict for all its chunks, so they are merged once, not per chunk.
    The "prev" links are compared all at once after the loop (one comparison of joined bytes).
    """
    data = job.lines()
    res = ChunkResult(job.first_index(data), job.sequence)
    lines = _Lines(res, sums, job)
    match = None if job.force_slow or not job.verbatim else line_pattern(lines.origin_b)
    if match is None:
        for line in data.split(b"\n"):
            if not lines.check(line):
                break
    else:
        _scan(data, match, lines)
    hashes, prevs = lines.hashes, lines.prevs
    res.count = len(hashes)
    _local_targets(res)
    if hashes:
        _links(res, hashes, prevs)
        res.last_hash = hashes[-1]
        _tile(res, hashes, job.cuts)
    return res


class _Lines:
    """The line-at-a-time checks: framing, then the one-pattern transfer path or the general path.
    Each checked line adds its leaf hash and its "prev" (None if unreadable)."""

    def __init__(self, res: ChunkResult, sums: Sums, job: ChunkJob) -> None:
        self.res, self.sums, self.job = res, sums, job
        self.origin_b = job.origin.encode()
        self.fast = _NEVER if job.force_slow else FAST_TRANSFER
        self.hashes: list[bytes] = []
        self.prevs: list[bytes | None] = []
        self.pos = res.start  # the position of the next line

    def check(self, line: bytes) -> bool:
        """Check one line; False if it is malformed (the chunk stops there)."""
        res, pos, verbatim = self.res, self.pos, self.job.verbatim
        if verbatim:
            sep = line.find(b',"leaf":', 9)
            if sep < 0 or line[:9] != LEAF_PREFIX or line[-1:] != b"}":
                malformed(line, pos, res, verbatim)
                return False
            index_text, leaf = line[9:sep], line[sep + 8 : -1]
        else:
            sep = line.find(b',"leaf":"', 9)
            if sep < 0 or line[:9] != LEAF_PREFIX or line[-2:] != b'"}':
                malformed(line, pos, res, verbatim)
                return False
            index_text, b64 = line[9:sep], line[sep + 9 : -2]
            try:
                leaf = binascii.a2b_base64(b64, strict_mode=True)
            except binascii.Error:
                malformed(line, pos, res, verbatim)
                return False
            if b64[-1:] == b"=" and not canonical_b64(b64):
                malformed(line, pos, res, verbatim)
                return False
        if index_text != b"%d" % pos and not index_checked(index_text, pos, res):
            malformed(line, pos, res, verbatim)
            return False
        self.hashes.append(hashlib.sha256(b"\x00" + leaf).digest())
        m = self.fast(leaf)
        prev = None if m is None else _fast_leaf(m, pos, index_text, self.origin_b, res, self.sums)
        if prev is None:
            prev = _general(leaf, pos, int(index_text), self.job.origin, res, self.sums)
        self.prevs.append(prev)
        self.pos = pos + 1
        return True


def _scan(data: bytes, match: Callable[[bytes, int], re.Match[bytes] | None], lines: _Lines) -> None:
    """Walk the chunk's bytes a line at a time: the commonest lines (verify_patterns.line_pattern)
    are checked here in one step; any other line, or one whose signs or phase combination is not
    the plain case, is handed to _Lines.check, which reports on it exactly as if it came alone.
    The twin of this is ChunkResult.transfer (tests/unit/test_verifier.py compares the paths)."""
    res, sums = lines.res, lines.sums
    get, sha256 = sums.get, hashlib.sha256
    hashes, prevs = lines.hashes, lines.prevs
    ids, id_positions, phases, refs = res.ids, res.id_positions, res.phases, res.refs
    end, at, pos = len(data), 0, lines.pos
    while at <= end:
        m = match(data, at)
        if m is not None:
            (index_text, leaf, tid, pending, phase, pair1, _, sign1, digits1, pair2, sign2,
             pair3, _, sign3, digits3, pair4, sign4, prev, reverses, timeout) = m.groups()  # fmt: skip
            if phase == b"pending":
                odd = pending is not None or reverses is not None
            else:
                single = phase == b"single"
                odd = timeout != b"null" or (pending is None) != single or bool(pending and reverses)
            if odd or sign1 == sign2 or (pair3 is not None and sign3 == sign4) or index_text != b"%d" % pos:
                m = None
        if m is None:  # not the plain case: the line-at-a-time checks decide
            nl = data.find(b"\n", at)
            if nl < 0:
                nl = end
            lines.pos = pos
            if not lines.check(data[at:nl]):
                return
            at, pos = nl + 1, lines.pos
            continue
        hashes.append(sha256(b"\x00" + leaf).digest())
        prevs.append(prev)
        if phase in _POSTED:
            n = -int(digits1) if sign1 else int(digits1)
            sums[pair1] = get(pair1, 0) + n
            sums[pair2] = get(pair2, 0) - n
            if pair3 is not None:
                n = -int(digits3) if sign3 else int(digits3)
                sums[pair3] = get(pair3, 0) + n
                sums[pair4] = get(pair4, 0) - n
        res.postings += 2 if pair3 is None else 4
        res.transfers += 1
        ids.append(tid)
        id_positions.append(pos)
        phases.append(_CODES[phase])
        if reverses is not None:
            refs.append((pos, REF_REVERSE, reverses))
        elif pending is not None:
            refs.append((pos, REF_RESOLVE, pending))
        at, pos = m.end() + 1, pos + 1
    lines.pos = pos


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
