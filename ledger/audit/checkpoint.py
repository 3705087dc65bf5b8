"""C2SP tlog-checkpoint bodies: strict formatting and parsing, signing and verification as signed notes."""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass

from ledger.audit.note import NoteError, Signer, Verifier, decode_b64, open_note, parse_note, sign_note

__all__ = [
    "MAX_TREE_SIZE",
    "Checkpoint",
    "CheckpointError",
    "WrongOriginError",
    "format_checkpoint_body",
    "parse_checkpoint_body",
    "sign_checkpoint",
    "verify_checkpoint",
]

#: Largest tree size a checkpoint may state (Go and most tools read it as an unsigned 64-bit integer).
MAX_TREE_SIZE = 2**64 - 1

_HASH_LEN = 32
# re.ASCII: \d would otherwise accept non-ASCII digits such as '١'.
_SIZE = re.compile(r"0|[1-9][0-9]*", re.ASCII)


class CheckpointError(NoteError):
    """A checkpoint body is malformed, or a checkpoint cannot be signed as asked."""


class WrongOriginError(CheckpointError):
    """A checkpoint is well formed but belongs to another log (another origin)."""


def _check_line(value: str, what: str) -> None:
    if not value:
        raise CheckpointError(f"{what} is empty")
    for i, c in enumerate(value):
        # Category Cc covers C0 controls (newline and CR included), DEL and C1 controls.
        if unicodedata.category(c) in ("Cc", "Cs"):
            raise CheckpointError(f"{what} contains control character U+{ord(c):04X} at character {i}")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, RFC 9162 root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError("tree size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"tree size {self.size} is outside 0..2^64-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != _HASH_LEN:
            raise CheckpointError("root hash must be 32 bytes")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for n, line in enumerate(self.extensions, start=1):
            _check_line(line, f"extension line {n}")


def format_checkpoint_body(cp: Checkpoint) -> str:
    """The note text: origin, decimal size and base64 root hash, then extension lines, each ending in LF."""
    lines = [cp.origin, str(cp.size), base64.b64encode(cp.root_hash).decode(), *cp.extensions]
    return "".join(line + "\n" for line in lines)


def _parse_size(line: str) -> int:
    if not _SIZE.fullmatch(line):
        if line.isascii() and line.isdigit():
            raise CheckpointError(f"tree size {line!r} has a leading zero")
        raise CheckpointError(f"tree size {line!r} is not a decimal number")
    size = int(line)
    if size > MAX_TREE_SIZE:
        raise CheckpointError(f"tree size {line} is larger than 2^64-1")
    return size


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse a checkpoint note text strictly: every rule of c2sp.org/tlog-checkpoint is enforced."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint body has {len(lines)} lines; it needs origin, size and root hash")
    origin, size_line, root_line, *extensions = lines
    _check_line(origin, "origin")
    size = _parse_size(size_line)
    try:
        root = decode_b64(root_line, "root hash")
    except NoteError as exc:
        raise CheckpointError(str(exc)) from exc
    if len(root) != _HASH_LEN:
        raise CheckpointError(f"root hash is {len(root)} bytes; SHA-256 roots are 32")
    for n, line in enumerate(extensions, start=1):
        _check_line(line, f"extension line {n}")
    return Checkpoint(origin, size, root, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> bytes:
    """The checkpoint as a signed note, signed by ``signer``, whose key name must be the origin."""
    if signer.name != cp.origin:
        raise CheckpointError(f"signer key name {signer.name!r} is not the checkpoint origin {cp.origin!r}")
    return sign_note(format_checkpoint_body(cp), [signer])


def verify_checkpoint(data: bytes, verifier: Verifier, *, origin: str) -> Checkpoint:
    """Verify a signed checkpoint of the log ``origin`` against the log's trusted key and parse it.

    Raises NoteError (or a subclass) naming the reason: malformed note or body, another origin,
    no signature by the trusted key (unknown key or wrong key ID) or an invalid signature.
    Signatures by other keys, such as witness cosignatures, are ignored here.
    """
    if verifier.name != origin:
        raise CheckpointError(f"trusted key name {verifier.name!r} is not the origin {origin!r}")
    text, _ = parse_note(data)
    cp = parse_checkpoint_body(text)
    # Checked before the signature so that another log's genuine checkpoint gets a precise reason.
    if cp.origin != origin:
        raise WrongOriginError(f"checkpoint is for origin {cp.origin!r}, expected {origin!r}")
    open_note(data, [verifier])
    return cp
