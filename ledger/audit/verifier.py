"""The offline verifier: one streaming pass over a log export, checked against trusted keys only."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import os
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ledger.audit.export_format import (
    BALANCE_PREFIX,
    CHECKPOINT_PREFIX,
    END_PREFIX,
    ExportHeader,
    LineError,
    open_export,
    parse_header,
    parse_line,
)
from ledger.audit.merkle import EMPTY_ROOT
from ledger.audit.verify_io import LineReader, Pin, PinError, read_pin, write_pin
from ledger.audit.verify_leaves import ChunkJob, ChunkResult, check_chunk
from ledger.audit.verify_notes import NoteCheck, TrustedKeys, check_note, find_equivocation
from ledger.audit.verify_policy import check_balance_lines, check_end, check_policy
from ledger.audit.verify_pool import WorkerPool
from ledger.audit.verify_report import Report
from ledger.audit.verify_state import LogState

__all__ = ["CHUNK_BYTES", "Progress", "VerifyOptions", "verify_export"]

#: Bytes of leaf lines per chunk handed to a worker (about ten thousand leaves).
CHUNK_BYTES = 8 << 20
#: Exports smaller than this are checked in this process: starting workers would cost more.
PARALLEL_MIN_LEAVES = 50_000
#: Called with (leaves checked, leaves in the export) after each chunk.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """The auditor's trust and policy: keys from the command line, never from the export."""

    keys: TrustedKeys
    quorum: int = 0  # trusted witness cosignatures the newest checkpoint needs
    pin_path: Path | None = None
    write_pin: bool = False  # on success, pin the newest verified checkpoint
    max_age: timedelta | None = None
    now: datetime | None = None
    jobs: int | None = None  # worker processes; None: one per CPU for large exports
    chunk_bytes: int = CHUNK_BYTES

    def __post_init__(self) -> None:
        if not self.keys.log_keys:
            raise ValueError("at least one trusted log key is needed")
        if self.chunk_bytes < 1:
            raise ValueError("chunk_bytes must be positive")
        if self.quorum > len(self.keys.witnesses):
            raise ValueError(f"a quorum of {self.quorum} needs at least as many trusted witness keys")


def verify_export(path: Path, options: VerifyOptions, progress: Progress | None = None) -> Report:
    """Check an export end to end and return the report (``report.exit_code`` is the exit status)."""
    started = time.perf_counter()
    report = Report()
    pin: Pin | None = None
    try:
        with open_export(path) as file:
            plain = isinstance(file, io.BufferedReader)
            pin = _Run(LineReader(file, seekable=plain), path, plain, options, report, progress).run()
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        report.fail("export_read", None, None, None, f"cannot read the export: {exc}")
    if options.write_pin and options.pin_path is not None and pin is not None and report.ok:
        try:
            write_pin(options.pin_path, pin)
        except OSError as exc:
            report.fail("pin_file", None, None, None, f"cannot write the pin file: {exc.strerror}")
    report.duration_s = time.perf_counter() - started
    report.leaves = report.checked.get("leaves", 0)
    return report


class _Run:
    """One verification: the sections of the file in order, then the policy checks."""

    def __init__(
        self,
        lines: LineReader,
        path: Path,
        plain: bool,
        options: VerifyOptions,
        report: Report,
        progress: Progress | None,
    ) -> None:
        self.lines = lines
        self.path = path
        self.plain = plain  # not compressed: workers may read spans of it
        self.options = options
        self.report = report
        self.progress = progress
        self.origin = options.keys.log_keys[0].name
        self.notes: list[NoteCheck] = []
        self.pin: Pin | None = None
        self.aborted = False  # a malformed leaf line stopped the leaf checks

    def run(self) -> Pin | None:
        """Check everything; returns the newest verified checkpoint as the pin to keep."""
        header = self._header()
        if header is None:
            return None
        self._pin()
        self._checkpoints()
        cuts = [n.size for n in self.notes if n.size is not None]
        if self.pin is not None:
            cuts.append(self.pin.size)
        state = LogState(self.report, cuts)
        self._leaves(state, header)
        state.finish()
        self._leaf_section_end(state)
        self._roots(state)
        if self.aborted:
            return None
        if state.size != header.size:
            self.report.fail("leaf_count", state.size, header.size, state.size, "leaf lines differ from size")
        balances = check_balance_lines(self.lines, state, self.report)
        check_end(self.lines, self.report, len(self.notes), state.size, balances)
        latest = check_policy(self.report, self.options, header, state, self.notes, self.pin)
        # A run passes only if every leaf is signed, so no checkpoint means an empty log.
        if latest is None or latest.size is None or latest.root is None:
            return Pin(self.origin, 0, EMPTY_ROOT)
        return Pin(self.origin, latest.size, latest.root)

    def _header(self) -> ExportHeader | None:
        line = self.lines.next()
        if line is None:
            self.report.fail("header", None, None, None, "the export is empty")
            return None
        try:
            header = parse_header(line)
        except LineError as exc:
            self.report.fail("header", None, None, None, f"header line: {exc}")
            return None
        self.report.origin, self.report.size = header.origin, header.size
        if header.origin != self.origin:
            self.report.fail(
                "origin",
                None,
                self.origin,
                header.origin,
                "the export is for another log than the trusted key",
            )
            return None
        return header

    def _pin(self) -> None:
        path = self.options.pin_path
        if path is None or (self.options.write_pin and not path.exists()):
            return  # no pin yet: this run may write the first one
        try:
            pin = read_pin(path)
        except PinError as exc:
            self.report.fail("pin_file", None, None, None, str(exc))
            return
        if pin.origin != self.origin:
            self.report.fail("pin_file", None, self.origin, pin.origin, "the pin is for another log")
            return
        self.pin = pin
        self.report.count("pins", 1)

    def _checkpoints(self) -> None:
        while (line := self.lines.peek()) is not None and line.startswith(CHECKPOINT_PREFIX):
            self.lines.next()
            ordinal = len(self.notes)
            note = _note_bytes(line)
            if isinstance(note, str):
                self.report.fail("line_syntax", None, None, None, f"checkpoint line {ordinal}: {note}")
                self.notes.append(NoteCheck(ordinal, failure=("checkpoint_syntax", note)))
                continue
            check = check_note(ordinal, note, self.origin, self.options.keys)
            self.notes.append(check)
            if check.failure is not None:
                name, reason = check.failure
                self.report.fail(name, check.size, None, None, f"checkpoint {ordinal}: {reason}")
            for bad in check.bad_cosignatures:
                self.report.fail(
                    "cosignature_invalid", check.size, None, None, f"checkpoint {ordinal}: {bad}"
                )
        self.report.count("checkpoints", len(self.notes))
        self.report.count("checkpoints_signed", sum(1 for n in self.notes if n.valid))
        equivocation = find_equivocation(self.notes)
        if equivocation is not None:
            size, first, other = equivocation
            self.report.fail(
                "equivocation", size, first, other, f"two signed checkpoints of size {size} differ"
            )

    def _jobs(self, header: ExportHeader) -> int:
        if self.options.jobs is not None:
            return max(1, self.options.jobs)
        return (os.cpu_count() or 1) if header.size >= PARALLEL_MIN_LEAVES else 1

    def _chunk_jobs(self, state: LogState, header: ExportHeader, *, parallel: bool) -> Iterator[ChunkJob]:
        """Leaf chunks in file order; for workers, spans of the file they read themselves if it is
        a plain file, and no start (each takes its first line's index, so nobody counts lines)."""
        cuts, size = tuple(state.cuts_between(-1, 2**63)), self.options.chunk_bytes
        path = str(self.path) if parallel and self.plain else None
        sequence, verbatim = 0, header.verbatim
        while True:
            start = None if parallel else state.size
            span = self.lines.take_leaf_span(size) if path is not None else None
            if span is not None:
                yield ChunkJob(
                    b"", start, self.origin, cuts, sequence, path, span[0], span[1], verbatim=verbatim
                )
            elif (block := self.lines.take_leaf_block(size)) is not None:
                yield ChunkJob(block, start, self.origin, cuts, sequence, verbatim=verbatim)
            else:
                return
            sequence += 1

    def _merge(self, state: LogState, job: ChunkJob, res: ChunkResult, header: ExportHeader) -> bool:
        if res.start != state.size:  # a line's index was not its position: check again from there
            res = check_chunk(dataclasses.replace(job, start=state.size), {})
        state.merge(res)
        if self.progress is not None:
            self.progress(state.size, header.size)
        if res.fatal:
            self.aborted = True
        return not res.fatal

    def _leaves(self, state: LogState, header: ExportHeader) -> None:
        jobs = self._jobs(header)
        if jobs == 1:
            for job in self._chunk_jobs(state, header, parallel=False):
                if not self._merge(state, job, check_chunk(job, state.sums), header):
                    return
            return
        with WorkerPool(jobs) as pool:
            sums = pool.run(
                self._chunk_jobs(state, header, parallel=True),
                lambda job, res: self._merge(state, job, res, header),
            )
        if sums is not None:
            state.sums = sums

    def _leaf_section_end(self, state: LogState) -> None:
        """After the leaf lines only balance lines or the end line may come. Another line (such as
        the rest of a leaf line cut by a raw newline in the leaf) is malformed input."""
        line = self.lines.peek()
        if self.aborted or line is None or line.startswith((BALANCE_PREFIX, END_PREFIX)):
            return
        self.report.fail(
            "line_syntax", state.size, None, None,
            "a line in the leaf section is not a leaf line (a leaf cut by a raw newline?)",
        )  # fmt: skip
        self.aborted = True

    def _roots(self, state: LogState) -> None:
        """Each checkpoint's root against the tree of the leaves (after the leaf pass)."""
        checked = 0
        for note in self.notes:
            if note.size is None or note.root is None:
                continue
            if note.size > state.size:
                if note.valid and not self.aborted:
                    self.report.fail(
                        "checkpoint_beyond_export", note.size, note.size, state.size,
                        f"checkpoint {note.ordinal} signs {note.size} leaves; the export has {state.size}",
                    )  # fmt: skip
                continue
            root = state.root_at(note.size)
            if root is None:
                continue
            note.root_matches = root == note.root
            checked += 1
            if note.valid and not note.root_matches:
                self.report.fail(
                    "root_mismatch", note.size, _b64(note.root), _b64(root),
                    f"checkpoint {note.ordinal}: the first {note.size} leaves hash to another root",
                )  # fmt: skip
        self.report.count("roots_checked", checked)
        self.report.checkpoints = [n.as_json() for n in self.notes]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _note_bytes(line: bytes) -> bytes | str:
    """The note a checkpoint line holds, or why the line is malformed."""
    try:
        value = parse_line(line)
    except LineError as exc:
        return str(exc)
    note = value.get("checkpoint")
    if set(value) != {"checkpoint"} or type(note) is not str:
        return 'a checkpoint line must be {"checkpoint":"<note>"}'
    try:
        return note.encode("utf-8")
    except UnicodeEncodeError:
        return "the note holds a lone surrogate"
