"""The certificate bundle (``vledger-certificate-bundle/1``): a service certificate as evidence.

A bundle holds what a certificate states (number, community, the volunteer's pseudonymous hours
account, each covered record's date, activity, content, organising unit and minutes, the total),
the audit-log leaves of every transfer behind those minutes (first postings, reversals and
corrected postings alike), each leaf's RFC 9162 inclusion proof, and the signed checkpoint note
(with its witness cosignatures) the proofs lead to. Anyone with the community's public key can
check it offline (``ledger.audit.certificate_check``); docs/reference/certificates.md defines every
field.

A bundle holds no personal data: the volunteer appears only as an account id, as in the leaves.
The masked name and ID number are printed on the certificate document, never put in the bundle.

The bundle is canonical JSON (RFC 8785, as restricted in docs/reference/leaves.md §1). Its hash,
``bundle_sha256``, is SHA-256 of the canonical encoding of the bundle **without** its ``status``
member: the status (valid, or superseded by a later correction) is the server's current word on the
certificate, added when the bundle is served, and changes after issue; the rest never does.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from ledger.audit.jcs import canonical_json

__all__ = [
    "FORMAT",
    "STATUS_SUPERSEDED",
    "STATUS_VALID",
    "BundleLeaf",
    "CertificateBody",
    "RecordEntry",
    "build_bundle",
    "bundle_digest",
    "encode_bundle",
    "note_from_lines",
    "note_lines",
    "rfc3339_us",
    "with_status",
]

FORMAT: Final = "vledger-certificate-bundle/1"
STATUS_VALID: Final = "valid"
STATUS_SUPERSEDED: Final = "superseded"
SERVICE_UNIT: Final = "service_minutes"


def rfc3339_us(moment: datetime) -> str:
    """UTC with microseconds and a ``Z``: ``2025-03-20T04:00:00.000000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


@dataclass(frozen=True, slots=True)
class RecordEntry:
    """One covered service record as the certificate states it; ``transfer_ids`` in log order."""

    record_id: str
    service_date: date
    activity: str
    content: str
    organising_unit: str
    minutes: int
    transfer_ids: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "record_id": self.record_id,
            "service_date": self.service_date.isoformat(),
            "activity": self.activity,
            "content": self.content,
            "organising_unit": self.organising_unit,
            "minutes": self.minutes,
            "transfers": list(self.transfer_ids),
        }


@dataclass(frozen=True, slots=True)
class CertificateBody:
    number: str
    community_id: int
    origin: str
    issuer: str  # the community's name (出具单位)
    issued_on: date  # China date
    issued_at: datetime
    period_from: date | None
    period_to: date | None
    account_id: str  # the volunteer's service-minutes account (pseudonymous)
    records: tuple[RecordEntry, ...]

    @property
    def total_minutes(self) -> int:
        return sum(r.minutes for r in self.records)

    def as_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "community_id": self.community_id,
            "origin": self.origin,
            "issuer": self.issuer,
            "issued_on": self.issued_on.isoformat(),
            "issued_at": rfc3339_us(self.issued_at),
            "period_from": None if self.period_from is None else self.period_from.isoformat(),
            "period_to": None if self.period_to is None else self.period_to.isoformat(),
            "account": self.account_id,
            "unit": SERVICE_UNIT,
            "total_minutes": self.total_minutes,
            "records": [r.as_json() for r in self.records],
        }


@dataclass(frozen=True, slots=True)
class BundleLeaf:
    """A leaf of the log with its inclusion proof at the checkpoint's tree size."""

    index: int
    leaf: bytes
    leaf_hash: bytes
    proof: tuple[bytes, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            # Leaf bytes are canonical JSON without control characters: as a JSON string they are
            # carried exactly (the leaf is the UTF-8 encoding of the string) and stay readable.
            "leaf": self.leaf.decode("utf-8"),
            "leaf_hash": _b64(self.leaf_hash),
            "hashes": [_b64(h) for h in self.proof],
        }


def note_lines(note: bytes) -> list[str]:
    """A signed note as its lines (the note is those lines, each followed by LF). A JSON string may
    not hold a raw LF under the restricted encoding, so the bundle carries the lines."""
    text = note.decode("utf-8")
    if not text.endswith("\n"):
        raise ValueError("a signed note ends with a newline")
    return text[:-1].split("\n")


def note_from_lines(lines: Sequence[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def build_bundle(
    body: CertificateBody, checkpoint_note: bytes, leaves: Sequence[BundleLeaf]
) -> dict[str, Any]:
    """The bundle without its status; leaves in index order, each once."""
    ordered = sorted(leaves, key=lambda x: x.index)
    if len({x.index for x in ordered}) != len(ordered):
        raise ValueError("a bundle lists each leaf once")
    return {
        "format": FORMAT,
        "certificate": body.as_json(),
        "checkpoint": note_lines(checkpoint_note),
        "leaves": [x.as_json() for x in ordered],
    }


def encode_bundle(bundle: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a bundle (strict: refuses what cannot be encoded canonically)."""
    return canonical_json(dict(bundle))


def bundle_digest(bundle: Mapping[str, Any]) -> bytes:
    """SHA-256 of the bundle without ``status``, encoded with sorted keys, no whitespace and literal
    UTF-8: for a bundle as the service makes it, exactly its canonical encoding (a reader that
    parsed a bundle can recompute this with any JSON library)."""
    rest = {k: v for k, v in bundle.items() if k != "status"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def with_status(bundle: Mapping[str, Any], status: Mapping[str, object]) -> bytes:
    """The bundle as served: its canonical encoding with the current ``status`` member added."""
    return encode_bundle({**bundle, "status": dict(status)})
