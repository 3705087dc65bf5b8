"""C2SP tlog-cosignature/v1: timestamped Ed25519 witness cosignatures on checkpoints."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.audit.checkpoint import parse_checkpoint_body
from ledger.audit.note import (
    ALG_COSIGNATURE_V1,
    NoteError,
    Signature,
    Signer,
    Verifier,
    check_key_name,
    decode_verifier_key,
    encode_verifier_key,
    key_id,
    parse_note,
    parse_signature_line,
)

__all__ = [
    "MAX_TIMESTAMP",
    "CosignatureError",
    "WitnessVerifier",
    "cosign",
    "cosignature_message",
    "count_valid_cosignatures",
    "encode_witness_key",
    "parse_witness_key",
    "verify_cosignature",
]

#: Largest timestamp a cosignature may carry (the spec caps the u64 field at 2^63 - 1).
MAX_TIMESTAMP = 2**63 - 1

_TIMESTAMP_LEN = 8
_SIG_LEN = 64
_KEY_LEN = 32


class CosignatureError(NoteError):
    """A cosignature line is malformed, is not by the expected witness, or does not verify."""


def cosignature_message(timestamp_s: int, checkpoint_text: str) -> bytes:
    """The signed message: ``cosignature/v1``, ``time <seconds>``, then the whole checkpoint body."""
    if not 0 <= timestamp_s <= MAX_TIMESTAMP:
        raise CosignatureError(f"timestamp {timestamp_s} is outside 0..2^63-1")
    return f"cosignature/v1\ntime {timestamp_s}\n{checkpoint_text}".encode()


def _verify(public_key: bytes, timestamped: bytes, checkpoint_text: str) -> int | None:
    """The timestamp if ``timestamped`` (timestamp || signature) verifies, else None."""
    if len(timestamped) != _TIMESTAMP_LEN + _SIG_LEN:
        return None
    timestamp = int.from_bytes(timestamped[:_TIMESTAMP_LEN], "big")
    if timestamp > MAX_TIMESTAMP:
        return None
    message = cosignature_message(timestamp, checkpoint_text)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(timestamped[_TIMESTAMP_LEN:], message)
    except (InvalidSignature, ValueError):
        return None
    return timestamp


@dataclass(frozen=True)
class WitnessVerifier:
    """A trusted witness: key name and Ed25519 public key, with its cosignature/v1 (0x04) key ID.

    It also satisfies ``note.NoteVerifier``, so ``open_note`` can verify cosignatures with it.
    """

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name, "witness name")
        if len(self.public_key) != _KEY_LEN:
            raise CosignatureError(f"Ed25519 public key must be 32 bytes, got {len(self.public_key)}")
        object.__setattr__(self, "key_id", key_id(self.name, ALG_COSIGNATURE_V1, self.public_key))

    @classmethod
    def of(cls, key: WitnessVerifier | Verifier | Signer) -> WitnessVerifier:
        """The witness verifier for the same name and Ed25519 key."""
        return key if isinstance(key, WitnessVerifier) else cls(key.name, key.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (timestamp || Ed25519 signature) cosigns the checkpoint ``message``."""
        try:
            text = message.decode()
        except UnicodeDecodeError:
            return False
        return _verify(self.public_key, signature, text) is not None

    def vkey(self) -> str:
        """The verifier key text ``name+hex8+base64(0x04 || public key)``."""
        return encode_witness_key(self.name, self.public_key)


def encode_witness_key(name: str, public_key: bytes) -> str:
    """A witness verifier key with signature type 0x04, as c2sp.org/tlog-cosignature suggests."""
    return encode_verifier_key(name, public_key, ALG_COSIGNATURE_V1)


def parse_witness_key(text: str) -> WitnessVerifier:
    """Parse a witness verifier key of type 0x04 or, as some Go tools publish them, 0x01."""
    name, _alg, public_key = decode_verifier_key(text)
    return WitnessVerifier(name, public_key)


def cosign(checkpoint_text: str, witness_signer: Signer, timestamp_s: int) -> str:
    """The cosignature line (ending in a newline) to append to the signed checkpoint note."""
    parse_checkpoint_body(checkpoint_text)
    message = cosignature_message(timestamp_s, checkpoint_text)
    timestamped = timestamp_s.to_bytes(_TIMESTAMP_LEN, "big") + witness_signer.sign(message)
    wid = key_id(witness_signer.name, ALG_COSIGNATURE_V1, witness_signer.public_key)
    return Signature(witness_signer.name, wid, timestamped).line + "\n"


def verify_cosignature(line: str, checkpoint_text: str, witness_verifier: WitnessVerifier | Verifier) -> int:
    """Check one cosignature line on ``checkpoint_text``; return its timestamp (seconds) or raise."""
    witness = WitnessVerifier.of(witness_verifier)
    parse_checkpoint_body(checkpoint_text)
    body = line[:-1] if line.endswith("\n") else line
    try:
        sig = parse_signature_line(body)
    except NoteError as exc:
        raise CosignatureError(f"malformed cosignature line: {exc}") from exc
    if sig.name != witness.name:
        raise CosignatureError(f"cosignature is by {sig.name!r}, not by witness {witness.name!r}")
    if sig.key_id != witness.key_id:
        raise CosignatureError(
            f"cosignature key ID {sig.key_id:08x} is not witness {witness.name}'s "
            f"cosignature/v1 key ID {witness.key_id:08x}"
        )
    if len(sig.signature) != _TIMESTAMP_LEN + _SIG_LEN:
        raise CosignatureError(
            f"cosignature is {len(sig.signature)} bytes after the key ID; "
            "it must be an 8-byte timestamp and a 64-byte signature"
        )
    timestamp = int.from_bytes(sig.signature[:_TIMESTAMP_LEN], "big")
    if timestamp > MAX_TIMESTAMP:
        raise CosignatureError(f"cosignature timestamp {timestamp} is larger than 2^63-1")
    if _verify(witness.public_key, sig.signature, checkpoint_text) is None:
        raise CosignatureError(f"invalid cosignature by witness {witness.name}+{witness.key_id:08x}")
    return timestamp


def count_valid_cosignatures(
    note_bytes: bytes, witness_verifiers: Iterable[WitnessVerifier | Verifier]
) -> int:
    """How many distinct trusted witnesses validly cosigned the checkpoint in ``note_bytes``.

    Only cosignatures are checked: verify the log's own signature with ``verify_checkpoint``.
    Lines by unknown keys and cosignatures that fail to verify are not counted.
    """
    text, sigs = parse_note(note_bytes)
    parse_checkpoint_body(text)
    witnesses: dict[tuple[str, int], WitnessVerifier] = {}
    for v in witness_verifiers:
        w = WitnessVerifier.of(v)
        seen = witnesses.setdefault((w.name, w.key_id), w)
        if seen != w:
            raise CosignatureError(f"ambiguous witness key {w.name}+{w.key_id:08x}: two keys share it")
    valid = {
        (sig.name, sig.key_id)
        for sig in sigs
        if (known := witnesses.get((sig.name, sig.key_id))) is not None
        and _verify(known.public_key, sig.signature, text) is not None
    }
    return len(valid)
