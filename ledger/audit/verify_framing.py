"""The framing of an export's leaf lines: what is wrong with a line that is not ``{"index":n,"leaf":…}``."""

from __future__ import annotations

import binascii
from typing import TYPE_CHECKING

from ledger.audit.export_format import LEAF_PREFIX

if TYPE_CHECKING:
    from ledger.audit.verify_leaves import ChunkResult

__all__ = ["canonical_b64", "decimal", "index_checked", "malformed"]

# Base64 characters whose low bits are zero, as the last character before "=" or "==" must be.
_PAD1_LAST = frozenset(b"AEIMQUYcgkosw048")
_PAD2_LAST = frozenset(b"AQgw")


def canonical_b64(b64: bytes) -> bool:
    """Whether padded base64 has zero padding bits (one spelling per value); the alphabet is checked."""
    if b64[-2:] == b"==":
        return b64[-3] in _PAD2_LAST
    return b64[-2] in _PAD1_LAST


def malformed(line: bytes, pos: int, res: ChunkResult, verbatim: bool) -> None:
    """Record why a leaf line is malformed (its framing, index or base64)."""
    if verbatim:
        sep = line.find(b',"leaf":', len(LEAF_PREFIX))
        if not line.startswith(LEAF_PREFIX) or sep < 0:
            detail = 'a leaf line must be {"index":<n>,"leaf":<leaf bytes>}'
        elif not line.endswith(b"}"):
            detail = 'a leaf line does not end with "}": cut short (a raw newline in the leaf?)'
        else:
            detail = "a leaf line's index is not a decimal integer"
        res.fail("line_syntax", pos, None, None, detail)
        res.fatal = True
        return
    sep = line.find(b',"leaf":"', len(LEAF_PREFIX))
    if not line.startswith(LEAF_PREFIX) or sep < 0 or not line.endswith(b'"}'):
        detail = 'a leaf line must be {"index":<n>,"leaf":"<base64>"}'
    elif not decimal(line[len(LEAF_PREFIX) : sep]):
        detail = "a leaf line's index is not a decimal integer"
    else:
        b64 = line[sep + 9 : -2]
        try:
            binascii.a2b_base64(b64, strict_mode=True)
            detail = "a leaf line's base64 has non-zero padding bits"
        except binascii.Error as exc:
            detail = f"a leaf line's base64 is invalid: {exc}"
    res.fail("line_syntax", pos, None, None, detail)
    res.fatal = True


def decimal(text: bytes) -> bool:
    return text.isdigit() and (text[:1] != b"0" or text == b"0") and len(text) <= 16


def index_checked(index_text: bytes, pos: int, res: ChunkResult) -> bool:
    """Report a line whose index is not its position; False if the index is not even a number."""
    if not decimal(index_text):
        return False
    found = int(index_text)
    if found > pos:
        res.fail(
            "index_gap", pos, pos, found, f"the line at position {pos} says index {found}: leaves are missing"
        )
    else:
        res.fail("leaf_position", pos, pos, found, f"the line at position {pos} says index {found}")
    return True
