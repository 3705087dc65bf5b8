"""The log export file (vledger-log-export/2, and /1 read and written for compatibility): one JSON
object per line, its writer and strict line parser."""

from __future__ import annotations

import binascii
import gzip
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ledger.audit.jcs import MAX_SAFE_INTEGER

__all__ = [
    "BALANCE_PREFIX",
    "CHECKPOINT_PREFIX",
    "END_PREFIX",
    "FORMAT",
    "FORMAT_V1",
    "LEAF_PREFIX",
    "ExportHeader",
    "ExportWriter",
    "LineError",
    "encode_line",
    "format_time",
    "open_export",
    "parse_header",
    "parse_line",
    "parse_time",
    "write_lines",
]

#: The value of the header's "format" key; a new version gets a new name.
FORMAT = "vledger-log-export/2"
#: The first format: leaf bytes as base64 strings (/2 carries them verbatim). Still read.
FORMAT_V1 = "vledger-log-export/1"
_FORMATS = (FORMAT, FORMAT_V1)
# Every line is the compact, key-sorted JSON of one object, so each section's lines start alike.
LEAF_PREFIX = b'{"index":'
CHECKPOINT_PREFIX = b'{"checkpoint":'
BALANCE_PREFIX = b'{"balance":'
END_PREFIX = b'{"end":'

_HEADER_KEYS = frozenset({"format", "origin", "log_id", "size", "exported_at"})
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?Z", re.ASCII)
_GZIP_MAGIC = b"\x1f\x8b"
_WRITE_BUFFER = 1 << 20


class LineError(ValueError):
    """A line of the export is not valid: not strict JSON, not in canonical form, or the wrong shape."""


def encode_line(value: object) -> bytes:
    """A line's bytes (without the newline): compact JSON, keys sorted, non-ASCII text as UTF-8.

    For the values an export holds (objects, strings, integers) this is the RFC 8785 (JCS) encoding.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _reject_float(text: str) -> object:
    raise LineError(f"number {text[:20]!r} is not an integer")


def _reject_constant(text: str) -> object:
    raise LineError(f"{text} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise LineError("an object has a duplicate key")
    return d


_DECODER = json.JSONDecoder(
    parse_float=_reject_float, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
)


def parse_line(line: bytes) -> dict[str, Any]:
    """Parse one line strictly: UTF-8 JSON object, integers only, no duplicate keys, canonical form."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"not valid UTF-8 (byte {exc.start})") from None
    try:
        value = _DECODER.decode(text)
    except LineError:
        raise
    except json.JSONDecodeError as exc:
        raise LineError(f"not valid JSON: {exc.msg} (character {exc.pos})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits
        raise LineError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LineError("a line must hold a JSON object")
    try:
        again = encode_line(value)
    except UnicodeEncodeError:
        raise LineError("a string holds a lone surrogate") from None
    if again != line:
        raise LineError("not in canonical form (compact JSON with sorted keys, no needless escapes)")
    return value


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, as the header's "exported_at" holds it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """The instant of an "exported_at" value (``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``); ValueError otherwise."""
    if not _TIME.fullmatch(text):
        raise ValueError(f"time {text[:40]!r} is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def _int_field(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_SAFE_INTEGER:
        raise LineError(f'header "{name}" must be an integer from 0 to 2**53-1')
    return value


@dataclass(frozen=True, slots=True)
class ExportHeader:
    """The first line: which log, how many leaves, and when the export was taken."""

    origin: str
    log_id: int
    size: int
    exported_at: datetime
    format: str = FORMAT  # FORMAT_V1 writes and marks the old base64 leaf lines

    def __post_init__(self) -> None:
        if self.format not in _FORMATS:
            raise ValueError(f"unknown export format {self.format!r}")

    @property
    def verbatim(self) -> bool:
        """Whether leaf lines carry the leaf bytes verbatim (/2) rather than as base64 (/1)."""
        return self.format == FORMAT

    def line(self) -> bytes:
        return encode_line(
            {
                "format": self.format,
                "origin": self.origin,
                "log_id": self.log_id,
                "size": self.size,
                "exported_at": format_time(self.exported_at),
            }
        )


def parse_header(line: bytes) -> ExportHeader:
    """Parse and check the header line; LineError says what is wrong."""
    value = parse_line(line)
    if set(value) != _HEADER_KEYS:
        raise LineError(f"header keys must be {', '.join(sorted(_HEADER_KEYS))}")
    if value["format"] not in _FORMATS:
        raise LineError(f"unknown export format {str(value['format'])[:60]!r}; expected {FORMAT!r}")
    origin = value["origin"]
    if type(origin) is not str or not origin or not origin.isprintable():
        raise LineError('header "origin" must be a non-empty printable string')
    exported_at = value["exported_at"]
    if type(exported_at) is not str:
        raise LineError('header "exported_at" must be a string')
    try:
        moment = parse_time(exported_at)
    except ValueError as exc:
        raise LineError(f'header "exported_at": {exc}') from None
    return ExportHeader(
        origin,
        _int_field(value["log_id"], "log_id"),
        _int_field(value["size"], "size"),
        moment,
        value["format"],
    )


def open_export(path: Path) -> IO[bytes]:
    """Open an export for reading, gunzipping it if it starts with the gzip magic bytes."""
    raw = path.open("rb")
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


class ExportWriter:
    """Writes one export in the fixed order: header, checkpoints, leaves, balances, end line.

    The file is written under a temporary name and renamed into place by ``finish``, so a reader
    never sees half an export. A name ending in ``.gz`` is gzip-compressed.
    """

    def __init__(self, path: Path, header: ExportHeader) -> None:
        self._path = path
        self._partial = path.with_name(path.name + ".partial")
        raw = self._partial.open("wb")
        self._file: IO[bytes] = (
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6)  # type: ignore[assignment]
            if path.name.endswith(".gz")
            else raw
        )
        self._raw = raw
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._counts = {"checkpoints": 0, "leaves": 0, "balances": 0}
        self._section = 0  # 1 checkpoints, 2 leaves, 3 balances: sections only move forward
        self._verbatim = header.verbatim
        self._write(header.line())

    def _write(self, line: bytes) -> None:
        self._buffer.append(line)
        self._buffer.append(b"\n")
        self._buffered += len(line) + 1
        if self._buffered >= _WRITE_BUFFER:
            self._flush()

    def _flush(self) -> None:
        self._file.write(b"".join(self._buffer))
        self._buffer.clear()
        self._buffered = 0

    def _enter(self, section: int, name: str) -> None:
        if section < self._section:
            raise ValueError(f"{name} lines must come before the lines already written")
        self._section = section
        self._counts[name] += 1

    def checkpoint(self, note: bytes) -> None:
        """A stored signed checkpoint note, signature and cosignature lines included."""
        self._enter(1, "checkpoints")
        self._write(encode_line({"checkpoint": note.decode("utf-8")}))

    def leaf(self, index: int, leaf: bytes) -> None:
        """The leaf at ``index``; leaves must come in index order from 0.

        In /2 the leaf's bytes are written verbatim (a canonical leaf is compact JSON, so the line
        is JSON too). Bytes are not checked here: a leaf tampered with in the database is exported
        as it is, and the verifier reports it (one holding a raw newline cuts its line in two,
        which the verifier reports as a malformed leaf line, ``line_syntax``).
        """
        self._enter(2, "leaves")
        if self._verbatim:
            self._write(b'{"index":%d,"leaf":%s}' % (index, leaf))
        else:
            self._write(b'{"index":%d,"leaf":"%s"}' % (index, binascii.b2a_base64(leaf, newline=False)))

    def balance(self, account: str, unit: str, posted: int) -> None:
        """An account's posted balance as the service reports it at the export's size."""
        self._enter(3, "balances")
        self._write(encode_line({"balance": {"account": account, "unit": unit, "posted": posted}}))

    def finish(self) -> dict[str, int]:
        """Write the end line, close the file and move it into place; returns the line counts.

        The counts are of the lines written; a log whose rows were deleted gives fewer leaf lines
        than the header's size, and the export shows that rather than hiding it.
        """
        self._write(encode_line({"end": dict(self._counts)}))
        self._flush()
        self._close()
        os.replace(self._partial, self._path)
        return dict(self._counts)

    def abort(self) -> None:
        """Close and remove the partial file (an export that failed half-way)."""
        self._close()
        self._partial.unlink(missing_ok=True)

    def _close(self) -> None:
        self._file.close()
        if self._file is not self._raw:
            self._raw.close()


def write_lines(path: Path, emit: Callable[[ExportWriter], None], header: ExportHeader) -> dict[str, int]:
    """Run ``emit`` on a new writer, finishing the file on success and removing it on failure."""
    writer = ExportWriter(path, header)
    try:
        emit(writer)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
