"""Reading an export's lines in large blocks, and the pinned state kept between verifier runs."""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ledger.audit.export_format import LEAF_PREFIX

__all__ = ["LineReader", "Pin", "PinError", "read_pin", "write_pin"]

_BLOCK = 1 << 23  # bytes read at once: lines are found in C, a block at a time
_WINDOW = 1 << 16  # bytes looked at around a span's end to find its last whole line


class LineReader:
    """The lines of a file without their newlines; runs of leaf lines can be taken as one block,
    or, for a plain file, as a span (offset, length) that a worker reads itself.

    A last line without a newline is still read (``missing_final_newline`` records it).
    """

    def __init__(self, file: IO[bytes], *, seekable: bool = False) -> None:
        self._file = file
        self._fd = file.fileno() if seekable else None
        self._buf = b""
        self._pos = 0
        self._offset = 0  # file offset of self._buf[0]
        self._eof = False
        self._read_size = _BLOCK
        self.missing_final_newline = False

    def _more(self) -> bool:
        """Read another block into the buffer; False at the end of the file."""
        if self._eof:
            return False
        block = self._file.read(self._read_size)
        self._read_size = _BLOCK
        rest = self._buf[self._pos :]
        self._offset += self._pos
        self._pos = 0
        if block:
            self._buf = rest + block
            return True
        self._eof = True
        if rest and not rest.endswith(b"\n"):
            rest += b"\n"
            self.missing_final_newline = True
        self._buf = rest
        return bool(rest)

    def peek(self) -> bytes | None:
        """The next line, not taken; None at the end of the file."""
        while (nl := self._buf.find(b"\n", self._pos)) < 0:
            if not self._more():
                return None
        return self._buf[self._pos : nl]

    def next(self) -> bytes | None:
        """Take the next line; None at the end of the file."""
        line = self.peek()
        if line is not None:
            self._pos += len(line) + 1
        return line

    def take_leaf_block(self, max_bytes: int) -> bytes | None:
        """Whole lines (joined by newlines, about ``max_bytes``) up to the first one that does not
        start like a leaf line; None if the next line is not a leaf line.

        Only where the block ends is looked at here: the worker checks every line in it.
        """
        while len(self._buf) - self._pos < max_bytes and self._more():
            pass
        buf, pos = self._buf, self._pos
        cut = buf.rfind(b"\n", pos, pos + max_bytes)
        if cut < 0:  # one line longer than max_bytes
            cut = buf.find(b"\n", pos)
            if cut < 0:
                return None
        last = buf.rfind(b"\n", pos, cut) + 1 or pos
        if not buf.startswith(LEAF_PREFIX, last):  # the leaf lines end inside this block: find where
            cut = pos - 1
            while buf.startswith(LEAF_PREFIX, cut + 1) and (nxt := buf.find(b"\n", cut + 1)) >= 0:
                cut = nxt
            if cut < pos:
                return None
        self._pos = cut + 1
        return buf[pos:cut]

    def take_leaf_span(self, max_bytes: int) -> tuple[int, int] | None:
        """(offset, length) of whole leaf lines, about ``max_bytes``, without reading them all.

        None where that cannot be decided from the span's last line (not a seekable file, the
        leaf lines end inside the span, a line longer than the window): take_leaf_block then.
        """
        if self._fd is None:
            return None
        start = self._offset + self._pos
        size = os.fstat(self._fd).st_size
        end = min(start + max_bytes, size)
        lo = max(start, end - _WINDOW)
        window = os.pread(self._fd, end - lo, lo)
        if end == size and window and not window.endswith(b"\n"):
            return None  # no final newline: the buffered path deals with it
        cut = window.rfind(b"\n")
        last = window.rfind(b"\n", 0, max(cut, 0)) + 1
        if cut < 0 or (last == 0 and lo > start) or not window.startswith(LEAF_PREFIX, last):
            return None
        self._skip_to(lo + cut + 1)
        return start, lo + cut - start

    def _skip_to(self, offset: int) -> None:
        self._file.seek(offset)
        self._buf, self._pos, self._offset, self._eof = b"", 0, offset, False
        self._read_size = _WINDOW  # usually only the next line is looked at before the next span


class PinError(ValueError):
    """The pinned state file cannot be read or is not valid."""


@dataclass(frozen=True, slots=True)
class Pin:
    """The newest verified checkpoint of the last successful run: the log may only grow from it."""

    origin: str
    size: int
    root: bytes

    def as_json(self) -> dict[str, object]:
        return {"origin": self.origin, "size": self.size, "root": base64.b64encode(self.root).decode()}


def read_pin(path: Path) -> Pin:
    """Read ``{"origin": ..., "size": N, "root": "<base64>"}``; PinError says what is wrong."""
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise PinError(f"cannot read the pin file: {exc.strerror}") from None
    except ValueError:
        raise PinError("the pin file is not valid JSON") from None
    if not isinstance(data, dict) or set(data) != {"origin", "size", "root"}:
        raise PinError("the pin file must hold exactly origin, size and root")
    origin, size, root = data["origin"], data["size"], data["root"]
    if type(origin) is not str or type(size) is not int or size < 0 or type(root) is not str:
        raise PinError("the pin file needs a string origin, a non-negative integer size and a base64 root")
    try:
        raw = base64.b64decode(root, validate=True)
    except (binascii.Error, ValueError):
        raise PinError("the pin file's root is not valid base64") from None
    if len(raw) != 32:
        raise PinError("the pin file's root is not a 32-byte hash")
    return Pin(origin, size, raw)


def write_pin(path: Path, pin: Pin) -> None:
    """Replace the pin file atomically (write a temporary file, then rename it into place)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(pin.as_json(), sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
