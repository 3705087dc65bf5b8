"""The checkpoint signer: per-log Ed25519 key files, its own state, refusal of inconsistent checkpoints."""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ledger.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    WrongOriginError,
    parse_checkpoint_body,
    sign_checkpoint,
)
from ledger.audit.keyfiles import (
    SignerError,
    SignerStateError,
    fsync_dir,
    generate_key_file,
    load_key_file,
    locked,
    write_private_file,
)
from ledger.audit.merkle import ProofError, verify_consistency
from ledger.audit.note import (
    NoteError,
    Signer,
    open_note,
    parse_note,
    parse_verifier_key,
)

__all__ = [
    "CheckpointSigner",
    "KeyRecord",
    "Prove",
    "SignerError",
    "SignerRefused",
    "SignerStateError",
    "generate_key_file",
    "load_key_file",
    "locked",
    "rotation_event_fields",
    "verify_with_history",
    "write_private_file",
]

#: Returns the RFC 9162 consistency proof from the first tree size to the second.
Prove = Callable[[int, int], list[bytes]]

_STATE_VERSION = 1


class SignerRefused(SignerError):  # noqa: N818 - the name the service and its callers use
    """The signer will not sign: the checkpoint contradicts what it signed before. The message says how."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key of a log: it may sign checkpoints of sizes ``valid_from`` to ``retired_at`` (None: no end)."""

    vkey: str
    valid_from: int
    retired_at: int | None = None

    def covers(self, size: int) -> bool:
        return self.valid_from <= size and (self.retired_at is None or size <= self.retired_at)

    def to_json(self) -> dict[str, object]:
        return {"vkey": self.vkey, "valid_from": self.valid_from, "retired_at": self.retired_at}

    @classmethod
    def from_json(cls, raw: Any) -> KeyRecord:
        retired = raw["retired_at"]
        return cls(str(raw["vkey"]), int(raw["valid_from"]), None if retired is None else int(retired))


@dataclass(slots=True)
class _LogState:
    keys: list[KeyRecord]
    last: tuple[int, bytes] | None = None  # the last signed (size, root)

    def active(self) -> KeyRecord:
        return self.keys[-1]


def verify_with_history(note: bytes, origin: str, history: Sequence[KeyRecord]) -> Checkpoint:
    """Verify a checkpoint of ``origin`` against the log's key history and return it.

    The note must carry a valid signature by a key whose validity covers the checkpoint's size:
    a key retired at size R signs nothing above R, so a stolen retired key cannot extend the log.
    Raises NoteError (or a subclass) with the reason.
    """
    text, _ = parse_note(note)
    cp = parse_checkpoint_body(text)
    if cp.origin != origin:
        raise WrongOriginError(f"checkpoint is for origin {cp.origin!r}, expected {origin!r}")
    keyed = [(parse_verifier_key(k.vkey), k) for k in history]
    keyed = [(v, k) for v, k in keyed if v.name == origin]
    opened = open_note(note, [v for v, _ in keyed])
    signed_by = [k for v, k in keyed for s in opened.verified if (s.name, s.key_id) == (v.name, v.key_id)]
    if any(k.covers(cp.size) for k in signed_by):
        return cp
    spans = [(k.vkey, k.valid_from, "now" if k.retired_at is None else k.retired_at) for k in signed_by]
    reasons = "; ".join(f"{vkey} signs sizes {start} to {end}" for vkey, start, end in spans)
    raise CheckpointError(
        f"checkpoint of size {cp.size} has no signature by a key valid at that size ({reasons})"
    )


def rotation_event_fields(old_vkey: str, new_vkey: str, retired_at_size: int) -> dict[str, object]:
    """The fields of the ``key_rotation`` event leaf (public keys and a size only, no personal data)."""
    return {"old_key": old_vkey, "new_key": new_vkey, "retired_at_size": retired_at_size}


class CheckpointSigner:
    """Signs each log's checkpoints with that log's key, only if they extend what it signed before.

    One key file per log origin (``<percent-encoded origin>.<key id>.key``), because a C2SP note key's
    name must be the origin: per-origin files let one community's key be rotated or revoked alone,
    and each file is a standard Go note private key. The JSON state file records, per origin, the last
    signed (size, root) and the key history. Several processes may share the files: every operation
    re-reads the state under a file lock.
    """

    def __init__(self, key_dir: Path, state_path: Path) -> None:
        self._key_dir = key_dir
        self._state_path = state_path
        self._mutex = threading.Lock()
        self._read_state()  # fail at start-up, not at the first signature, if the files are inconsistent

    def verifier_key(self, origin: str) -> str:
        """The vkey of the key that signs the log's new checkpoints."""
        return self._log(origin).active().vkey

    def verifier_keys(self) -> list[tuple[str, str]]:
        """(origin, active vkey) of every log this signer has a key for, sorted by origin."""
        return [(origin, log.active().vkey) for origin, log in sorted(self._read_state().items())]

    def key_history(self, origin: str) -> list[KeyRecord]:
        """Every key the log has had, oldest first, for verifiers of old checkpoints."""
        return list(self._log(origin).keys)

    def last_signed(self, origin: str) -> tuple[int, bytes] | None:
        """The (size, root) last signed for ``origin``, or None."""
        log = self._read_state().get(origin)
        return None if log is None else log.last

    def load(self, origin: str) -> Signer:
        """The log's active private key, checked against the state's record of it."""
        return self._signer(origin, self._log(origin))

    def generate(self, origin: str) -> str:
        """Create the first key of a new log; returns its vkey. Refuses a log that already has one."""
        with self._locked() as logs:
            if origin in logs:
                raise SignerStateError(f"log {origin!r} already has a key; rotate it instead")
            logs[origin] = self._new_log(origin)
            self._write_state(logs)
            return logs[origin].active().vkey

    def sign(self, cp: Checkpoint, prove: Prove) -> bytes:
        """Sign ``cp`` if it is consistent with the last checkpoint signed for its origin.

        Refuses (SignerRefused) a smaller size, another root at the same size, or a checkpoint
        the consistency proof ``prove(m, cp.size)`` does not link to the signed root of size m.
        The new state is on disk before the note is returned. A log seen for the first time gets
        a new key.
        """
        with self._locked() as logs:
            log = logs.get(cp.origin)
            if log is None:
                log = logs[cp.origin] = self._new_log(cp.origin)
            self._check(cp, log, prove)
            note = sign_checkpoint(cp, self._signer(cp.origin, log))
            log.last = (cp.size, cp.root_hash)
            self._write_state(logs)
        return note

    def adopt(self, note: bytes, prove: Prove) -> bool:
        """Move the recorded last signed checkpoint up to ``note`` if this key signed it and it is newer.

        For a state file restored from a backup older than the checkpoints stored since: those
        notes prove what was signed, so the state only moves forward. Notes not signed by the log's
        keys are ignored (False). Raises SignerRefused if a genuine note contradicts the state.
        """
        try:
            cp = parse_checkpoint_body(parse_note(note)[0])
        except NoteError:
            return False
        with self._locked() as logs:
            log = logs.get(cp.origin)
            if log is None:
                return False
            try:
                verify_with_history(note, cp.origin, log.keys)
            except NoteError:
                return False
            if log.last is not None and cp.size <= log.last[0]:
                if cp.size == log.last[0] and cp.root_hash != log.last[1]:
                    raise SignerRefused(
                        f"log {cp.origin!r}: this signer's key signed two roots for size {cp.size}"
                    )
                return False
            self._check(cp, log, prove)
            log.last = (cp.size, cp.root_hash)
            self._write_state(logs)
            return True

    def rotate(self, origin: str, retire_at_size: int) -> tuple[str, str]:
        """Retire the log's key at ``retire_at_size`` (the last signed size) and make a new one active.

        Returns (old vkey, new vkey). The retired key stays in the history, valid for sizes up to
        ``retire_at_size``; its private key file is deleted, since it must never sign again.
        """
        with self._locked() as logs:
            log = self._log(origin, logs)
            signed = 0 if log.last is None else log.last[0]
            if retire_at_size != signed:
                raise SignerRefused(
                    f"log {origin!r}: the key must be retired at the last signed size {signed}, not at "
                    f"{retire_at_size} (higher would let it sign sizes it never signed; lower would "
                    "invalidate checkpoints it already signed)"
                )
            old = log.active()
            new = self._create_key(origin, valid_from=retire_at_size)
            log.keys[-1] = replace(old, retired_at=retire_at_size)
            log.keys.append(new)
            self._write_state(logs)
            old_path = self._key_path(origin, old)
            if old_path.exists():
                old_path.unlink()
                fsync_dir(old_path.parent)
        return old.vkey, new.vkey

    def _check(self, cp: Checkpoint, log: _LogState, prove: Prove) -> None:
        if log.last is None:
            return
        m, root_m = log.last
        if cp.size < m:
            raise SignerRefused(
                f"log {cp.origin!r}: checkpoint size {cp.size} is smaller than the last signed size {m}; "
                "a log never shrinks (was the database restored from an older backup?)"
            )
        if cp.size == m:
            if cp.root_hash != root_m:
                raise SignerRefused(
                    f"log {cp.origin!r}: root {cp.root_hash.hex()} at size {m} differs from the root "
                    f"signed at that size, {root_m.hex()}; the history was rewritten"
                )
            return
        try:
            proof = prove(m, cp.size)
        except Exception as exc:  # any failure to prove is a refusal, never a signature
            raise SignerRefused(
                f"log {cp.origin!r}: no consistency proof from the last signed size {m} to {cp.size}: {exc}"
            ) from exc
        try:
            verify_consistency(m, cp.size, root_m, cp.root_hash, proof)
        except ProofError as exc:
            raise SignerRefused(
                f"log {cp.origin!r}: the tree of size {cp.size} does not extend the last signed tree "
                f"(size {m}, root {root_m.hex()}): {exc}; the history was rewritten"
            ) from exc

    def _key_path(self, origin: str, key: KeyRecord) -> Path:
        key_id = key.vkey.split("+")[1]
        return self._key_dir / f"{urllib.parse.quote(origin, safe='')}.{key_id}.key"

    def _create_key(self, origin: str, *, valid_from: int) -> KeyRecord:
        # Written under a temporary name, then renamed: the file name holds the key ID, known only now.
        tmp = self._key_dir / f".new-{urllib.parse.quote(origin, safe='')}.{os.urandom(4).hex()}"
        signer = generate_key_file(tmp, origin)
        record = KeyRecord(signer.verifier().vkey(), valid_from=valid_from)
        tmp.rename(self._key_path(origin, record))
        fsync_dir(self._key_dir)
        return record

    def _new_log(self, origin: str) -> _LogState:
        existing = sorted(self._key_dir.glob(f"{urllib.parse.quote(origin, safe='')}.*.key"))
        if existing:
            raise SignerStateError(
                f"the state file has no record of log {origin!r} but its key file {existing[0].name} "
                "exists: the state file is older than the key (restored from a backup?); restore a newer one"
            )
        return _LogState([self._create_key(origin, valid_from=0)])

    def _signer(self, origin: str, log: _LogState) -> Signer:
        path = self._key_path(origin, log.active())
        if not path.exists():
            raise SignerStateError(
                f"the key file {path} of log {origin!r} is missing; restore it from backup"
            )
        signer = load_key_file(path)
        if signer.verifier().vkey() != log.active().vkey:
            raise SignerStateError(f"key file {path} does not hold the key {log.active().vkey}")
        return signer

    def _log(self, origin: str, logs: dict[str, _LogState] | None = None) -> _LogState:
        log = (self._read_state() if logs is None else logs).get(origin)
        if log is None:
            raise SignerStateError(f"the signer has no key for log {origin!r}")
        return log

    @contextmanager
    def _locked(self) -> Iterator[dict[str, _LogState]]:
        with self._mutex, locked(self._state_path):
            yield self._read_state()

    def _read_state(self) -> dict[str, _LogState]:
        try:
            raw = json.loads(self._state_path.read_bytes())
        except FileNotFoundError:
            if any(self._key_dir.glob("*.key")):
                raise SignerStateError(
                    f"state file {self._state_path} is missing but {self._key_dir} holds keys; "
                    "restore the state file from backup (never start over: it would forget what was signed)"
                ) from None
            return {}
        except (OSError, ValueError) as exc:
            raise SignerStateError(f"cannot read state file {self._state_path}: {exc}") from exc
        try:
            if raw["version"] != _STATE_VERSION:
                raise SignerStateError(f"state file version {raw['version']} is not {_STATE_VERSION}")
            return {origin: _parse_log(entry) for origin, entry in raw["logs"].items()}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SignerStateError(f"state file {self._state_path} is malformed: {exc!r}") from exc

    def _write_state(self, logs: dict[str, _LogState]) -> None:
        out = {origin: _dump_log(log) for origin, log in sorted(logs.items())}
        data = json.dumps({"version": _STATE_VERSION, "logs": out}, indent=2, sort_keys=True) + "\n"
        write_private_file(self._state_path, data.encode())


def _parse_log(entry: Any) -> _LogState:
    keys = [KeyRecord.from_json(k) for k in entry["keys"]]
    if not keys or keys[-1].retired_at is not None:
        raise ValueError("a log needs an active (not retired) last key")
    last = None if entry["size"] is None else (int(entry["size"]), bytes.fromhex(entry["root"]))
    return _LogState(keys, last)


def _dump_log(log: _LogState) -> dict[str, object]:
    size, root = (None, None) if log.last is None else (log.last[0], log.last[1].hex())
    return {"size": size, "root": root, "keys": [k.to_json() for k in log.keys]}
