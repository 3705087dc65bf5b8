"""Private key files and durable state files for the signer and the witness (0600, atomic, locked)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.audit.note import NoteError, Signer, encode_signer_key, parse_signer_key

__all__ = [
    "SignerError",
    "SignerStateError",
    "fsync_dir",
    "generate_key_file",
    "load_key_file",
    "locked",
    "write_private_file",
]

_SEED_LEN = 32


class SignerError(Exception):
    """Base class of the signer's errors."""


class SignerStateError(SignerError):
    """A key or state file is missing, unreadable, too widely readable or inconsistent with the other."""


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` durably with mode 0600: temporary file, fsync, rename (or link), fsync of the directory.

    Readers see the old content or the new one, never a torn file. With ``overwrite=False`` an
    existing file is never replaced (FileExistsError), which is what key files need.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails atomically if the file exists
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` + ``.lock``, so that processes sharing a state file take turns."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def generate_key_file(path: Path, name: str) -> Signer:
    """A new random Ed25519 key named ``name`` in ``path`` (0600, Go note format); never overwrites."""
    seed = os.urandom(_SEED_LEN)
    write_private_file(path, (encode_signer_key(name, seed) + "\n").encode(), overwrite=False)
    return Signer.from_seed(name, seed)


def load_key_file(path: Path) -> Signer:
    """Read a ``PRIVATE+KEY+...`` file; refuses one that others may read."""
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SignerStateError(f"cannot read key file {path}: {exc}") from exc
    if mode & 0o077:
        raise SignerStateError(f"key file {path} has mode {mode:o}; only its owner may read it (0600)")
    try:
        return parse_signer_key(text.removesuffix("\n"))
    except NoteError as exc:
        raise SignerStateError(f"key file {path}: {exc}") from exc
