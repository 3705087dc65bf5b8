"""The offline verifier's checks of checkpoint notes: trusted log keys (with their history), origin,
signatures, witness cosignatures and equivocation."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.audit.checkpoint import CheckpointError, parse_checkpoint_body
from ledger.audit.cosignature import CosignatureError, WitnessVerifier, verify_cosignature
from ledger.audit.note import (
    InvalidSignatureError,
    NoteError,
    UnverifiedNoteError,
    Verifier,
    open_note,
    parse_note,
    parse_verifier_key,
)

__all__ = [
    "HistoricKey",
    "NoteCheck",
    "TrustedKeys",
    "check_note",
    "find_equivocation",
    "parse_key_history",
]


@dataclass(frozen=True, slots=True)
class HistoricKey:
    """A retired log key: it may have signed checkpoints of at most ``retired_at_size`` leaves."""

    verifier: Verifier
    retired_at_size: int


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """What the auditor trusts, given on the command line: never read from the export."""

    log_keys: tuple[Verifier, ...]
    history: tuple[HistoricKey, ...] = ()
    witnesses: tuple[WitnessVerifier, ...] = ()

    def all_log_keys(self) -> list[Verifier]:
        return [*self.log_keys, *(h.verifier for h in self.history)]


def parse_key_history(text: str) -> tuple[HistoricKey, ...]:
    """Parse a key history file: ``{"keys": [{"vkey": "<verifier key>", "retired_at_size": N}, ...]}``.

    Raises ValueError (NoteError for a bad key) naming the entry that is wrong.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"key history is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or set(data) != {"keys"} or not isinstance(data["keys"], list):
        raise ValueError('key history must be {"keys": [{"vkey": ..., "retired_at_size": ...}, ...]}')
    keys = []
    for i, entry in enumerate(data["keys"]):
        if not isinstance(entry, dict) or set(entry) != {"vkey", "retired_at_size"}:
            raise ValueError(f"key history entry {i} must have exactly vkey and retired_at_size")
        size = entry["retired_at_size"]
        if type(size) is not int or size < 0:
            raise ValueError(f"key history entry {i}: retired_at_size must be a non-negative integer")
        if not isinstance(entry["vkey"], str):
            raise ValueError(f"key history entry {i}: vkey must be a string")
        keys.append(HistoricKey(parse_verifier_key(entry["vkey"]), size))
    return tuple(keys)


@dataclass(slots=True)
class NoteCheck:
    """One checkpoint note as the verifier judged it."""

    ordinal: int  # its place among the export's checkpoint lines, from 0
    size: int | None = None
    root: bytes | None = None
    failure: tuple[str, str] | None = None  # (check, reason) if the note is not trusted
    key: str | None = None  # name+keyid of the log key that signed it
    cosigners: list[str] = field(default_factory=list)
    cosigned_at: int | None = None  # newest trusted cosignature timestamp, Unix seconds
    bad_cosignatures: list[str] = field(default_factory=list)
    root_matches: bool | None = None

    @property
    def valid(self) -> bool:
        return self.failure is None and self.size is not None

    def as_json(self) -> dict[str, Any]:
        cosigned = (
            None
            if self.cosigned_at is None
            else datetime.fromtimestamp(self.cosigned_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        return {
            "size": self.size,
            "root": None if self.root is None else base64.b64encode(self.root).decode(),
            "signature": "valid" if self.failure is None else self.failure[1],
            "key": self.key,
            "root_matches": self.root_matches,
            "cosignatures": len(self.cosigners),
            "cosigned_at": cosigned,
        }


def _signature_failure(check: NoteCheck, exc: NoteError) -> None:
    if isinstance(exc, InvalidSignatureError):
        check.failure = ("checkpoint_signature", f"invalid signature: {exc}")
    elif isinstance(exc, UnverifiedNoteError):
        check.failure = ("checkpoint_signature", f"no trusted signature: {exc}")
    else:
        check.failure = ("checkpoint_signature", str(exc))


def _key_allowed(check: NoteCheck, keys: TrustedKeys, signed_by: Iterable[tuple[str, int]]) -> None:
    """Accept the note if a current key signed it, or a retired key within its retirement size."""
    current = {(k.name, k.key_id) for k in keys.log_keys}
    retired = {(h.verifier.name, h.verifier.key_id): h.retired_at_size for h in keys.history}
    signed = list(signed_by)
    for name, kid in signed:
        if (name, kid) in current:
            check.key = f"{name}+{kid:08x}"
            return
    assert check.size is not None
    for name, kid in signed:
        limit = retired.get((name, kid))
        if limit is not None and check.size <= limit:
            check.key = f"{name}+{kid:08x}"
            return
    name, kid = signed[0]
    limit = retired[(name, kid)]
    check.failure = (
        "retired_key",
        f"signed by {name}+{kid:08x}, retired at size {limit}, for size {check.size}",
    )


def _cosignatures(check: NoteCheck, text: str, sigs: Sequence[Any], keys: TrustedKeys) -> None:
    witnesses = {(w.name, w.key_id): w for w in keys.witnesses}
    for sig in sigs:
        witness = witnesses.get((sig.name, sig.key_id))
        if witness is None:
            continue
        name = f"{witness.name}+{witness.key_id:08x}"
        try:
            timestamp = verify_cosignature(sig.line, text, witness)
        except CosignatureError as exc:
            check.bad_cosignatures.append(f"{name}: {exc}")
            continue
        if name not in check.cosigners:
            check.cosigners.append(name)
        if check.cosigned_at is None or timestamp > check.cosigned_at:
            check.cosigned_at = timestamp


def check_note(ordinal: int, note: bytes, origin: str, keys: TrustedKeys) -> NoteCheck:
    """Parse and verify one checkpoint note against the trusted keys (never keys in the export)."""
    check = NoteCheck(ordinal)
    try:
        text, sigs = parse_note(note)
        body = parse_checkpoint_body(text)
    except (NoteError, CheckpointError) as exc:
        check.failure = ("checkpoint_syntax", str(exc))
        return check
    check.size, check.root = body.size, body.root_hash
    if body.origin != origin:
        check.failure = (
            "checkpoint_origin",
            f"checkpoint is for origin {body.origin!r}, expected {origin!r}",
        )
        return check
    try:
        # Signatures by other keys (witnesses, keys the auditor does not trust) are ignored, as the
        # signed-note spec requires; the reason names near misses (a trusted name, another key ID).
        opened = open_note(note, keys.all_log_keys())
    except NoteError as exc:
        _signature_failure(check, exc)
        return check
    _key_allowed(check, keys, ((s.name, s.key_id) for s in opened.verified))
    _cosignatures(check, text, sigs, keys)
    return check


def find_equivocation(checks: Sequence[NoteCheck]) -> tuple[int, str, str] | None:
    """The first size two validly signed notes give different roots: (size, root, other root)."""
    roots: dict[int, bytes] = {}
    for c in checks:
        if not c.valid or c.size is None or c.root is None:
            continue
        seen = roots.setdefault(c.size, c.root)
        if seen != c.root:
            b64 = base64.b64encode
            return c.size, b64(seen).decode(), b64(c.root).decode()
    return None
