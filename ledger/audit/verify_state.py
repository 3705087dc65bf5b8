"""The offline verifier's whole-log state: chunk results merged in order into the chain, the tree,
the transfer ids and references, and the posted sums per account."""

from __future__ import annotations

import binascii
import bisect
from collections import Counter
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


_FEW = 8
_NEARBY = 4096  # transfers looked at, from the end of the chunk before a reference's


def _first_positions(
    wanted: set[bytes], chunks: list[tuple[int, list[bytes], list[int]]]
) -> dict[bytes, int]:
    """The first position of each wanted id in chunks (in order), searched a chunk at a time in C."""
    found: dict[bytes, int] = {}
    for _, ids, positions in chunks:
        if not wanted:
            break
        hits = wanted.intersection(ids)
        if len(hits) > _FEW:  # one pass over the chunk rather than one per hit
            first = dict(zip(reversed(ids), reversed(positions), strict=True))
            found.update((tid, first[tid]) for tid in hits)
        else:
            found.update((tid, positions[ids.index(tid)]) for tid in hits)
        wanted = wanted - hits
    return found


class LogState:
    """Everything the verifier keeps while leaves stream past: O(transfers) ids, O(log n) tree."""

    def __init__(self, report: Report, cuts: Iterable[int]) -> None:
        self._report = report
        self.size = 0
        self.last_hash: bytes | None = None
        self._frontier: list[tuple[int, bytes]] = []  # (level, hash), levels strictly decreasing
        self._cuts = sorted(set(cuts))
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT} if 0 in self._cuts else {}
        # Transfer ids: a set for duplicates, and each chunk's ids kept in order, so that the rare
        # references (reversals, resolutions) find their target's position at the end (finish).
        self._ids: set[bytes] = set()
        self._chunk_ids: list[tuple[int, list[bytes], list[int]]] = []  # (start, ids, positions)
        self._refs: list[tuple[int, int, bytes]] = []  # (position, REF_*, target id), in order
        self._ref_targets: list[int] = []  # each target's first position in the ref's chunk, or -1
        self._duplicates = False  # a transfer id was used twice: targets are then looked up again
        self._phases = bytearray()  # phase code of every leaf, by position
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
        self._refs += res.refs
        self._ref_targets += res.ref_targets
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
        before = len(ids)
        ids.update(res.ids)
        self._chunk_ids.append((res.start, res.ids, res.id_positions))
        if len(ids) == before + len(res.ids):
            return
        self._duplicates = True
        # Rare: an id seen before (in an earlier chunk, or earlier in this one). Report each
        # repeat against the first leaf that used it.
        counts = Counter(res.ids)
        first = _first_positions(set(counts), self._chunk_ids[:-1])
        for tid, pos in zip(res.ids, res.id_positions, strict=True):
            if tid in first or counts[tid] > 1:
                earliest = first.setdefault(tid, pos)
                if earliest != pos:
                    self._report.fail(
                        "duplicate_id",
                        pos,
                        earliest,
                        pos,
                        f"transfer id first used at leaf {earliest} is used again",
                    )

    def _targets(self) -> dict[bytes, int]:
        """The first position in the log of every id that a reference names. Most targets were
        found in their reference's own chunk; most others near the end of the chunk before it;
        the rest are searched for here, a chunk at a time. With duplicate ids, "first in its
        chunk" need not be first in the log: all are searched."""
        found: dict[bytes, int] = {}
        wanted: set[bytes] = set()
        for (_, _, target), local in zip(self._refs, self._ref_targets, strict=True):
            if local < 0 or self._duplicates:
                wanted.add(target)
            else:
                found.setdefault(target, local)
        if wanted and not self._duplicates:
            nearby = self._nearby()
            found.update(nearby)
            wanted.difference_update(nearby)
        found.update(_first_positions(wanted, self._chunk_ids))
        return found

    def _nearby(self) -> dict[bytes, int]:
        """Targets of references not found in their own chunk, looked for among the last
        ``_NEARBY`` transfers of the chunk before it (a transfer is mostly reversed or resolved
        soon after it is written). Only used while every id is unique, so any hit is the first."""
        starts = [start for start, _, _ in self._chunk_ids]
        by_chunk: dict[int, set[bytes]] = {}
        for (pos, _, target), local in zip(self._refs, self._ref_targets, strict=True):
            if local < 0:
                chunk = bisect.bisect_right(starts, pos) - 2  # the chunk before the reference's
                if chunk >= 0:
                    by_chunk.setdefault(chunk, set()).add(target)
        found: dict[bytes, int] = {}
        for chunk, targets in by_chunk.items():
            _, ids, positions = self._chunk_ids[chunk]
            for i in range(len(ids) - 1, max(-1, len(ids) - 1 - _NEARBY), -1):
                if ids[i] in targets:
                    found[ids[i]] = positions[i]
                    targets.discard(ids[i])
                    if not targets:
                        break
        return found

    def finish(self) -> None:
        """Check the references (reversals and resolutions) once every leaf is merged."""
        ids, phases, fail = self._targets(), self._phases, self._report.fail
        reversed_, resolved = set(), set()
        for pos, kind, target in self._refs:
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
                elif target in reversed_:
                    fail(
                        "double_reversal",
                        pos,
                        None,
                        first,
                        f"the transfer at leaf {first} is already reversed",
                    )
                else:
                    reversed_.add(target)
            elif code != _PENDING:
                fail(name, pos, "a pending transfer", chr(code), f"leaf {first} is not a pending transfer")
            elif target in resolved:
                fail(
                    "double_resolution", pos, None, first, f"the pending transfer at leaf {first} is resolved"
                )
            else:
                resolved.add(target)

    def root_at(self, size: int) -> bytes | None:
        """The root of the first ``size`` leaves, if ``size`` was one of the cuts and was reached."""
        return self.roots.get(size)
