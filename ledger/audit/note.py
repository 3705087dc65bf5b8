"""C2SP signed notes with Ed25519 keys: key encodings, signing, and strict parsing and verification."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "InvalidSignatureError",
    "NoteError",
    "NoteVerifier",
    "OpenedNote",
    "Signature",
    "Signer",
    "UnverifiedNoteError",
    "Verifier",
    "check_key_name",
    "decode_b64",
    "decode_verifier_key",
    "encode_signer_key",
    "encode_verifier_key",
    "key_id",
    "open_note",
    "parse_note",
    "parse_signature_line",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
]

#: Signature type byte of plain Ed25519 note signatures (c2sp.org/signed-note).
ALG_ED25519 = 0x01
#: Signature type byte of timestamped Ed25519 witness cosignatures (c2sp.org/tlog-cosignature).
ALG_COSIGNATURE_V1 = 0x04
#: Most signature lines a note may carry; the spec requires accepting at least 16 (Go allows 100).
MAX_SIGNATURES = 100

_SIG_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
# Characters people (and word processors) put where the em dash belongs.
_LOOKALIKE_DASHES = {"-": "an ASCII hyphen-minus", "\u2013": "an en dash", "\u2212": "a minus sign"}
_ED25519_KEY_LEN = 32
_ED25519_SIG_LEN = 64


class NoteError(ValueError):
    """A signed note, key or signature line is malformed; the message says exactly what is wrong."""


class InvalidSignatureError(NoteError):
    """A signature by a trusted key does not verify: the note was altered or forged."""


class UnverifiedNoteError(NoteError):
    """The note parsed but carries no signature by any trusted key; ``note`` holds what was found."""

    def __init__(self, message: str, note: OpenedNote) -> None:
        super().__init__(message)
        self.note = note


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """Key ID: the first 4 bytes (big-endian) of SHA-256(name || 0x0A || alg || public key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def check_key_name(name: str, what: str = "key name") -> None:
    """Reject names the signed-note format cannot carry: empty, with a space or with a '+'."""
    if not name:
        raise NoteError(f"{what} is empty")
    if "+" in name:
        raise NoteError(f"{what} {name!r} contains '+' (U+002B)")
    # str.isspace covers the Unicode white space Go's unicode.IsSpace rejects.
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise NoteError(f"{what} {name!r} contains a space or control character")


def decode_b64(text: str, what: str) -> bytes:
    """Decode standard base64 with padding, accepting only the canonical encoding of the bytes."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise NoteError(f"{what} is not valid standard base64 with padding") from exc
    # Re-encoding catches non-zero padding bits, so each value has exactly one accepted spelling.
    if base64.b64encode(raw).decode() != text:
        raise NoteError(f"{what} is not canonical standard base64")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class NoteVerifier(Protocol):
    """What open_note needs of a trusted key: its name, its key ID and a signature check."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 note key (signature type 0x01): its name and 32-byte public key."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public_key) != _ED25519_KEY_LEN:
            raise NoteError(f"Ed25519 public key must be 32 bytes, got {len(self.public_key)}")
        object.__setattr__(self, "key_id", key_id(self.name, ALG_ED25519, self.public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID) is this key's Ed25519 signature of ``message``."""
        if len(signature) != _ED25519_SIG_LEN:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def vkey(self) -> str:
        """The verifier key text ``name+hex8+base64(0x01 || public key)``."""
        return encode_verifier_key(self.name, self.public_key)


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key with the key name it signs notes under."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)
    public_key: bytes = field(init=False)
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        pub = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        object.__setattr__(self, "public_key", pub)
        object.__setattr__(self, "key_id", key_id(self.name, ALG_ED25519, pub))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """The signer whose RFC 8032 private key is the 32-byte ``seed``."""
        if len(seed) != _ED25519_KEY_LEN:
            raise NoteError(f"Ed25519 seed must be 32 bytes, got {len(seed)}")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self.private_key.sign(message)

    def verifier(self) -> Verifier:
        """The matching public verifier."""
        return Verifier(self.name, self.public_key)


def encode_verifier_key(name: str, public_key: bytes, alg: int = ALG_ED25519) -> str:
    """Verifier key text ``name+hex8(key ID)+base64(alg || public key)``."""
    check_key_name(name)
    if len(public_key) != _ED25519_KEY_LEN:
        raise NoteError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
    return f"{name}+{key_id(name, alg, public_key):08x}+{_b64(bytes([alg]) + public_key)}"


def _split_key(text: str, what: str) -> tuple[str, str, int, bytes]:
    """Split ``name+hex8+base64(type || key)`` into name, key ID text, type byte and 32-byte key."""
    parts = text.split("+", 2)  # names have no '+'; the base64 part may
    if len(parts) != 3:
        raise NoteError(f"{what} key must have the form name+hex8+base64")
    name, hex8, material64 = parts
    check_key_name(name, f"{what} name")
    if not _KEY_ID_HEX.fullmatch(hex8):
        raise NoteError(f"{what} key ID {hex8!r} is not 8 lowercase hexadecimal digits")
    material = decode_b64(material64, f"{what} key material")
    if len(material) != 1 + _ED25519_KEY_LEN:
        raise NoteError(f"{what} key material must be 33 bytes (type byte and key), got {len(material)}")
    return name, hex8, material[0], material[1:]


def decode_verifier_key(text: str) -> tuple[str, int, bytes]:
    """Split and check a verifier key of an Ed25519 type (0x01 or 0x04): (name, type byte, key)."""
    name, hex8, alg, public_key = _split_key(text, "verifier")
    if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
        raise NoteError(f"verifier key has unsupported signature type 0x{alg:02x}")
    if int(hex8, 16) != key_id(name, alg, public_key):
        raise NoteError(f"verifier key ID {hex8} does not match its name and public key")
    return name, alg, public_key


def parse_verifier_key(text: str) -> Verifier:
    """Parse an Ed25519 (type 0x01) verifier key ``name+hex8+base64(0x01 || public key)``."""
    name, alg, public_key = decode_verifier_key(text)
    if alg != ALG_ED25519:
        raise NoteError(
            f"verifier key has signature type 0x{alg:02x}, not Ed25519 note signatures (0x01); "
            "witness keys are read with ledger.audit.cosignature.parse_witness_key"
        )
    return Verifier(name, public_key)


def encode_signer_key(name: str, seed: bytes) -> str:
    """Private key text ``PRIVATE+KEY+name+hex8+base64(0x01 || seed)``, as Go's note package writes it."""
    signer = Signer.from_seed(name, seed)
    return f"{_PRIVATE_PREFIX}{name}+{signer.key_id:08x}+{_b64(bytes([ALG_ED25519]) + seed)}"


def parse_signer_key(text: str) -> Signer:
    """Parse ``PRIVATE+KEY+name+hex8+base64(0x01 || seed)``; the key ID must match the derived key."""
    if not text.startswith(_PRIVATE_PREFIX):
        raise NoteError("signer key must start with PRIVATE+KEY+")
    name, hex8, alg, seed = _split_key(text[len(_PRIVATE_PREFIX) :], "signer")
    if alg != ALG_ED25519:
        raise NoteError(f"signer key has unsupported signature type 0x{alg:02x}")
    signer = Signer.from_seed(name, seed)
    if int(hex8, 16) != signer.key_id:
        raise NoteError(f"signer key ID {hex8} does not match its name and derived public key")
    return signer


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the signature bytes after the key ID."""

    name: str
    key_id: int
    signature: bytes

    @property
    def line(self) -> str:
        """The signature line, without its final newline."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {_b64(blob)}"


class OpenedNote(NamedTuple):
    """A note's text with its verified signatures and those by keys not trusted (not verified)."""

    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


def _check_text_chars(text: str, what: str) -> None:
    for i, c in enumerate(text):
        if c == "\r":
            raise NoteError(
                f"{what} contains a carriage return (U+000D) at character {i}; lines end in LF only"
            )
        if ord(c) < 0x20 and c != "\n":
            raise NoteError(f"{what} contains control character U+{ord(c):04X} at character {i}")
        if 0xD800 <= ord(c) <= 0xDFFF:
            raise NoteError(f"{what} contains a lone surrogate at character {i}")


def parse_signature_line(line: str) -> Signature:
    """Parse ``— <key name> <base64(key ID || signature)>`` (no final newline)."""
    if not line.startswith(_SIG_PREFIX):
        if line[:1] in _LOOKALIKE_DASHES:
            found = f"{_LOOKALIKE_DASHES[line[0]]} '{line[0]}' (U+{ord(line[0]):04X})"
            raise NoteError(f"signature line starts with {found} instead of an em dash '\u2014' (U+2014)")
        if line.startswith("\u2014"):
            raise NoteError("signature line must have exactly one space (U+0020) after the em dash")
        raise NoteError("signature line does not start with an em dash (U+2014) and a space")
    name, sep, blob64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep:
        raise NoteError("signature line must be an em dash, a space, the key name, a space and base64")
    check_key_name(name)
    if not blob64:
        raise NoteError(f"signature line for key {name!r} has no signature")
    if " " in blob64:
        raise NoteError("signature line has more than three fields (key names cannot contain spaces)")
    blob = decode_b64(blob64, f"signature of key {name!r}")
    if len(blob) < 5:
        raise NoteError(f"signature of key {name!r} is {len(blob)} bytes; it needs a 4-byte key ID and more")
    return Signature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def parse_note(data: bytes) -> tuple[str, tuple[Signature, ...]]:
    """Parse a signed note's syntax only: its text and every signature line, in order. Trusts nothing."""
    try:
        decoded = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise NoteError(f"note is not valid UTF-8 (byte {exc.start})") from exc
    _check_text_chars(decoded, "note")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line separating the text from the signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block:
        raise NoteError("note has no signature lines after the blank line")
    if not block.endswith("\n"):
        raise NoteError("the last signature line does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signature lines; at most {MAX_SIGNATURES} are accepted")
    sigs = []
    for number, line in enumerate(lines, start=1):
        try:
            sigs.append(parse_signature_line(line))
        except NoteError as exc:
            raise NoteError(f"signature line {number}: {exc}") from exc
    return text, tuple(sigs)


_Index = dict[tuple[str, int], list[NoteVerifier]]


def _index_verifiers(verifiers: Iterable[NoteVerifier]) -> _Index:
    index: _Index = {}
    for v in verifiers:
        same = index.setdefault((v.name, v.key_id), [])
        if v not in same:
            same.append(v)
    return index


def _near_miss(sig: Signature, index: _Index) -> str:
    """Why an unknown signature looks like a trusted one: same key name or same key ID, not both."""
    if any(name == sig.name for name, _ in index):
        return " (a trusted key name with another key ID)"
    if any(kid == sig.key_id for _, kid in index):
        return " (a trusted key ID with another key name)"
    return ""


def open_note(
    data: bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    known_unknown: Literal["report", "reject"] = "report",
) -> OpenedNote:
    """Parse ``data`` and verify its signatures by trusted keys.

    Signatures by keys not in ``verifiers`` are returned unverified, never trusted. A signature
    whose key name or key ID (but not both) matches a trusted key is such an unknown signature,
    as the spec requires; ``known_unknown="reject"`` instead refuses the note with that reason.
    Raises InvalidSignatureError if any signature by a trusted key fails (even a second one by
    a key that also signed validly), and UnverifiedNoteError if none verifies. Identical repeated
    lines are reported once.
    """
    text, sigs = parse_note(data)
    message = text.encode()
    index = _index_verifiers(verifiers)
    verified: list[Signature] = []
    unverified: list[Signature] = []
    for sig in sigs:
        if sig in verified or sig in unverified:
            continue
        candidates = index.get((sig.name, sig.key_id))
        if candidates is None:
            near_miss = _near_miss(sig, index)
            if known_unknown == "reject" and near_miss:
                reason = f"signature by untrusted key {sig.name}+{sig.key_id:08x}{near_miss}"
                raise UnverifiedNoteError(reason, OpenedNote(text, (), ()))
            unverified.append(sig)
            continue
        if len(candidates) > 1:
            raise NoteError(f"ambiguous key {sig.name}+{sig.key_id:08x}: several trusted keys share it")
        if not candidates[0].verify(message, sig.signature):
            raise InvalidSignatureError(f"invalid signature for key {sig.name}+{sig.key_id:08x}")
        verified.append(sig)
    opened = OpenedNote(text, tuple(verified), tuple(unverified))
    if not verified:
        trusted = ", ".join(f"{n}+{k:08x}" for n, k in sorted(index)) or "none"
        found = "; ".join(f"{s.name}+{s.key_id:08x}{_near_miss(s, index)}" for s in unverified)
        raise UnverifiedNoteError(
            f"note has no signature by a trusted key (trusted: {trusted}; found: {found})", opened
        )
    return opened


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """Sign ``text`` (ending in a newline) with each signer, in order, and return the note bytes."""
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_text_chars(text, "note text")
    if not signers:
        raise NoteError("a note needs at least one signer")
    keys = [(s.name, s.key_id) for s in signers]
    if len(set(keys)) != len(keys):
        raise NoteError("the same key is given twice")
    message = text.encode()
    lines = [Signature(s.name, s.key_id, s.sign(message)).line + "\n" for s in signers]
    return (text + "\n" + "".join(lines)).encode()
