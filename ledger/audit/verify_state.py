"""The offline verifier's whole-log state: chunk results merged in order into the chain, the tree,
the transfer ids and references, and the posted sums per account."""

from __future__ import annotations

import binascii
from collections.abc import Iterable

from ledger.audit.leaf import node_hash
from ledger.audit.merkle import EMPTY_ROOT, perfect_subtrees
from ledger.audit.verify_fields import phase_code
from ledger.audit.verify_leaves import REF_REVERSE, ChunkResult
from ledger.audit.verify_report import Report

__all__ = ["LogState"]

_PENDING = phase_code(b"pending")
_VOID = phase_code(b"void")


def _fold(hashes: list[bytes]) -> bytes:
    """The root over perfect subtrees listed largest first: folded from the right (RFC 9162)."""
    if not hashes:
        return EMPTY_ROOT
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _push_all(frontier: list[tuple[int, bytes]], start: int, end: int, tiles: list[bytes]) -> None:
    """Append the perfect subtrees tiling [start, end) to a frontier, merging equal levels as they
    meet (a binary counter carrying): the frontier then tiles [0, end) as RFC 9162 splits it."""
    for (tile_level, _), tile in zip(perfect_subtrees(start, end), tiles, strict=True):
        level, h = tile_level, tile
        while frontier and frontier[-1][0] == level:
            _, left = frontier.pop()
            h = node_hash(left, h)
            level += 1
        frontier.append((level, h))


class LogState:
    """Everything the verifier keeps while leaves stream past: O(transfers) ids, O(log n) tree."""

    def __init__(self, report: Report, cuts: Iterable[int]) -> None:
        self._report = report
        self.size = 0
        self.last_hash: bytes | None = None
        self._frontier: list[tuple[int, bytes]] = []  # (level, hash), levels strictly decreasing
        self._cuts = sorted(set(cuts))
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT} if 0 in self._cuts else {}
        self._ids: dict[bytes, int] = {}  # transfer id -> position of its first leaf
        self._phases = bytearray()  # phase code of every leaf, by position
        self._reversed: set[bytes] = set()
        self._resolved: set[bytes] = set()
        self.sums: dict[bytes, int] = {}  # posted amounts per pair_key(account, unit)

    def cuts_between(self, start: int, end: int) -> tuple[int, ...]:
        """The wanted tree sizes strictly inside (start, end)."""
        return tuple(c for c in self._cuts if start < c < end)

    def merge(self, res: ChunkResult) -> None:
        """Fold one chunk's results in; chunks must come in order."""
        assert res.start == self.size, "chunks must be merged in order"
        report = self._report
        for check, (index, expected, found, detail, count) in res.failures.items():
            report.fail(check, index, expected, found, detail, count)
        if res.count == 0:
            return
        if res.start > 0 and res.first_prev is not None and self.last_hash is not None:
            expected = binascii.hexlify(self.last_hash)
            if res.first_prev != expected:
                report.fail(
                    "prev_link", res.start, expected.decode(), res.first_prev.decode(),
                    "prev is not the previous leaf's hash",
                )  # fmt: skip
        self._tree(res)
        self._merge_ids(res)
        self._check_refs(res)
        report.count("leaves", res.count)
        report.count("transfers", res.transfers)
        report.count("events", res.events)
        report.count("postings", res.postings)
        self.last_hash = res.last_hash

    def _tree(self, res: ChunkResult) -> None:
        for cut, tiles in res.cut_tiles.items():
            frontier = list(self._frontier)
            _push_all(frontier, res.start, cut, tiles)
            self.roots[cut] = _fold([h for _, h in frontier])
        end = res.start + res.count
        _push_all(self._frontier, res.start, end, res.tiles)
        self.size = end
        if end in self._cuts:
            self.roots[end] = _fold([h for _, h in self._frontier])

    def _merge_ids(self, res: ChunkResult) -> None:
        self._phases += res.phases
        ids = self._ids
        if ids.keys().isdisjoint(res.ids):
            before = len(ids)
            # Reversed, so that an id repeated inside the chunk keeps its first position.
            ids.update(zip(reversed(res.ids), reversed(res.id_positions), strict=True))
            if len(ids) == before + len(res.ids):
                return
            for key in res.ids:  # rare: undo, then find the repeats below
                ids.pop(key, None)
        for tid, pos in zip(res.ids, res.id_positions, strict=True):
            first = ids.setdefault(tid, pos)
            if first != pos:
                self._report.fail(
                    "duplicate_id", pos, first, pos, f"transfer id first used at leaf {first} is used again"
                )

    def _check_refs(self, res: ChunkResult) -> None:
        ids, phases, fail = self._ids, self._phases, self._report.fail
        for pos, kind, target in res.refs:
            first = ids.get(target)
            name = "reversal_target" if kind == REF_REVERSE else "pending_target"
            if first is None or first >= pos:
                where = "is not in the log" if first is None else f"comes later, at leaf {first}"
                fail(name, pos, "an earlier transfer", first, f"the transfer it refers to {where}")
                continue
            code = phases[first]
            if kind == REF_REVERSE:
                if code in (_PENDING, _VOID):
                    fail(
                        name,
                        pos,
                        "a posted transfer",
                        chr(code),
                        "a pending or void transfer cannot be reversed",
                    )
                elif target in self._reversed:
                    fail(
                        "double_reversal",
                        pos,
                        None,
                        first,
                        f"the transfer at leaf {first} is already reversed",
                    )
                else:
                    self._reversed.add(target)
            elif code != _PENDING:
                fail(name, pos, "a pending transfer", chr(code), f"leaf {first} is not a pending transfer")
            elif target in self._resolved:
                fail(
                    "double_resolution", pos, None, first, f"the pending transfer at leaf {first} is resolved"
                )
            else:
                self._resolved.add(target)

    def root_at(self, size: int) -> bytes | None:
        """The root of the first ``size`` leaves, if ``size`` was one of the cuts and was reached."""
        return self.roots.get(size)
