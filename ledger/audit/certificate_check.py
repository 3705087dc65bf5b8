"""Offline verification of a certificate bundle with trusted keys only (``vledger audit verify-certificate``).

Checks, in this order (docs/reference/certificates.md §4 lists each check and its exit code):

1. the file is a JSON bundle of the known format and shape;
2. the certificate's origin is the trusted log key's name and names the stated community;
3. the checkpoint note is well formed, for that origin, validly signed by a trusted log key (a
   retired key only within its retirement size), and its trusted witnesses' cosignatures verify,
   at least ``quorum`` of them;
4. every leaf: its stated hash is SHA-256(0x00 ‖ leaf), it is a canonical transfer leaf of that
   origin at its stated index, and its inclusion proof leads to the signed root;
5. the records name exactly the bundle's transfers, each record's minutes are what its transfers
   posted to the volunteer's account, and the total is their sum;
6. the bundle's status, the server's word when it was downloaded, is not "superseded".

Keys and quorum come from the command line, never from the bundle. Exit codes as audit.md fixes
them: 0 ok, 1 tampering, 2 malformed input, 3 policy not met (too few witnesses, superseded).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from ledger.audit.certificate_bundle import (
    FORMAT,
    SERVICE_UNIT,
    STATUS_SUPERSEDED,
    bundle_digest,
    note_from_lines,
)
from ledger.audit.certificate_shape import MalformedBundleError, check_shape
from ledger.audit.jcs import CanonicalError
from ledger.audit.leaf import decode_leaf, leaf_hash
from ledger.audit.merkle_proofs import ProofError, verify_inclusion
from ledger.audit.verify_notes import NoteCheck, TrustedKeys, check_note
from ledger.audit.verify_report import EXIT_MALFORMED, EXIT_OK, EXIT_POLICY, EXIT_TAMPERED, Failure

__all__ = ["CHECKS", "CertificateReport", "verify_certificate_bundle"]

CHECKS: dict[str, tuple[int, str]] = {
    "bundle_read": (
        EXIT_MALFORMED,
        "the file is not UTF-8 JSON (or has duplicate keys or non-integer numbers)",
    ),
    "bundle_format": (EXIT_MALFORMED, "the bundle is not of the known format and shape"),
    "checkpoint_syntax": (EXIT_MALFORMED, "the checkpoint is not a well-formed signed note"),
    "origin": (EXIT_TAMPERED, "the certificate is for another log than the trusted key's"),
    "checkpoint_origin": (EXIT_TAMPERED, "the checkpoint is for another log's origin"),
    "checkpoint_signature": (EXIT_TAMPERED, "the checkpoint has no valid signature by a trusted log key"),
    "retired_key": (EXIT_TAMPERED, "the checkpoint is signed by a retired key beyond its retirement size"),
    "cosignature_invalid": (EXIT_TAMPERED, "a trusted witness's cosignature does not verify"),
    "leaf_hash": (EXIT_TAMPERED, "a leaf's stated hash is not the hash of its bytes"),
    "leaf_canonical": (EXIT_TAMPERED, "a leaf's bytes are not canonical JSON"),
    "leaf_fields": (EXIT_TAMPERED, "a leaf is not a transfer leaf, or not at its stated index"),
    "leaf_origin": (EXIT_TAMPERED, "a leaf names another log's origin"),
    "inclusion": (EXIT_TAMPERED, "a leaf's inclusion proof does not lead to the signed root"),
    "record_transfers": (EXIT_TAMPERED, "the records do not name exactly the bundle's transfers"),
    "record_minutes": (EXIT_TAMPERED, "a record's minutes differ from what its transfers posted"),
    "total_minutes": (EXIT_TAMPERED, "the total differs from the sum of the records and of the leaves"),
    "witness_quorum": (EXIT_POLICY, "the checkpoint has too few valid cosignatures by trusted witnesses"),
    "superseded": (EXIT_POLICY, "the certificate was superseded by a correction of a covered record"),
}
_RANK = {EXIT_TAMPERED: 3, EXIT_MALFORMED: 2, EXIT_POLICY: 1}


@dataclass(slots=True)
class CertificateReport:
    number: str | None = None
    origin: str | None = None
    total_minutes: int | None = None
    status: str | None = None
    bundle_sha256: str | None = None
    checkpoint: dict[str, Any] | None = None
    checked: dict[str, int] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)

    def fail(
        self, check: str, index: int | None, expected: Any = None, found: Any = None, detail: str = ""
    ) -> None:
        """The first failure of each check is kept; later ones only add to its count."""
        if check not in CHECKS:
            raise KeyError(f"unknown check {check!r}")
        first = self.failures.get(check)
        if first is None:
            self.failures[check] = Failure(check, index, expected, found, detail or CHECKS[check][1])
        else:
            first.count += 1

    @property
    def exit_code(self) -> int:
        codes = [CHECKS[name][0] for name in self.failures]
        return max(codes, key=lambda c: _RANK.get(c, 0), default=EXIT_OK)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "format": FORMAT,
            "number": self.number,
            "origin": self.origin,
            "total_minutes": self.total_minutes,
            "status": self.status,
            "bundle_sha256": self.bundle_sha256,
            "checkpoint": self.checkpoint,
            "checked": dict(sorted(self.checked.items())),
            "failures": [f.as_json() for f in self.failures.values()],
        }


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


def _no_float(text: str) -> Any:
    raise ValueError(f"number {text!r} is not an integer")


def _read(data: bytes, report: CertificateReport) -> dict[str, Any] | None:
    try:
        value = json.loads(
            data.decode("utf-8"), object_pairs_hook=_pairs, parse_float=_no_float, parse_constant=_no_float
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        report.fail("bundle_read", None, detail=f"cannot read the bundle: {exc}")
        return None
    try:
        return check_shape(value)
    except MalformedBundleError as exc:
        report.fail("bundle_format", None, expected=exc.expected, found=exc.found, detail=str(exc))
        return None


def verify_certificate_bundle(data: bytes, keys: TrustedKeys, *, quorum: int = 0) -> CertificateReport:
    """Check a bundle's bytes against the trusted keys; the report says what failed, first per check."""
    report = CertificateReport()
    bundle = _read(data, report)
    if bundle is None:
        return report
    cert = bundle["certificate"]
    origin = cert["origin"]
    report.number, report.origin, report.total_minutes = cert["number"], origin, cert["total_minutes"]
    report.bundle_sha256 = bundle_digest(bundle).hex()
    _check_origin(cert, keys, report)
    note = _check_checkpoint(note_from_lines(bundle["checkpoint"]), origin, keys, quorum, report)
    posted = _check_leaves(bundle["leaves"], origin, cert["account"], note, report)
    if note.valid and report.checkpoint is not None:  # every proof led to the signed root, or not
        report.checkpoint["root_matches"] = "inclusion" not in report.failures
    _check_records(cert, posted, report)
    _check_status(bundle.get("status"), report)
    return report


def _check_origin(cert: dict[str, Any], keys: TrustedKeys, report: CertificateReport) -> None:
    names = sorted({k.name for k in keys.all_log_keys()})
    origin = cert["origin"]
    if origin not in names:
        report.fail(
            "origin",
            None,
            names[0] if names else None,
            origin,
            "the certificate's log is not the trusted key's",
        )
    elif not origin.endswith(f"/community/{cert['community_id']}"):
        report.fail(
            "origin",
            None,
            f"…/community/{cert['community_id']}",
            origin,
            "the origin names another community",
        )


def _check_checkpoint(
    note: bytes, origin: str, keys: TrustedKeys, quorum: int, report: CertificateReport
) -> NoteCheck:
    check = check_note(0, note, origin, keys)
    report.checkpoint = check.as_json()
    if check.failure is not None:
        name, reason = check.failure
        report.fail(name, check.size, detail=reason)
    for bad in check.bad_cosignatures:
        report.fail("cosignature_invalid", check.size, detail=bad)
    report.checked["cosignatures"] = len(check.cosigners)
    if check.valid and len(check.cosigners) < quorum:
        report.fail(
            "witness_quorum", check.size, quorum, len(check.cosigners), "too few trusted witnesses cosigned"
        )
    return check


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _check_leaves(
    leaves: list[dict[str, Any]], origin: str, account: str, note: NoteCheck, report: CertificateReport
) -> dict[str, int]:
    """Minutes each transfer posted to ``account`` (transfer id -> minutes), from its leaf."""
    posted: dict[str, int] = {}
    proofs = 0
    for entry in leaves:
        index, leaf = entry["index"], entry["leaf"].encode("utf-8", "surrogatepass")
        digest = leaf_hash(leaf)
        stated = _b64(entry["leaf_hash"])
        if digest != stated:
            found = base64.b64encode(digest).decode()
            report.fail(
                "leaf_hash", index, entry["leaf_hash"], found, "the leaf's bytes hash to another value"
            )
        if note.valid and _included(index, digest, [_b64(h) for h in entry["hashes"]], note, report):
            proofs += 1
        transfer = _transfer(index, leaf, origin, account, report)
        if transfer is not None:
            posted[transfer[0]] = transfer[1]
    report.checked["leaves"] = len(leaves)
    report.checked["proofs"] = proofs
    return posted


def _included(
    index: int, digest: bytes, proof: list[bytes], note: NoteCheck, report: CertificateReport
) -> bool:
    assert note.size is not None and note.root is not None
    try:
        verify_inclusion(index, note.size, digest, proof, note.root)
    except ProofError as exc:
        root = base64.b64encode(note.root).decode()
        report.fail("inclusion", index, root, None, str(exc))
        return False
    return True


def _transfer(
    index: int, leaf: bytes, origin: str, account: str, report: CertificateReport
) -> tuple[str, int] | None:
    """(transfer id, minutes posted to ``account``) of a transfer leaf, or None (reported)."""
    try:
        value = decode_leaf(leaf)
    except CanonicalError as exc:
        report.fail("leaf_canonical", index, detail=f"the leaf is not canonical JSON: {exc}")
        return None
    if value.get("type") != "transfer" or not isinstance(value.get("id"), str):
        report.fail("leaf_fields", index, "transfer", value.get("type"), "the leaf is not a transfer leaf")
        return None
    if value["index"] != index:
        report.fail(
            "leaf_fields", index, index, value["index"], "the leaf's own index is not its stated index"
        )
    if value["origin"] != origin:
        report.fail("leaf_origin", index, origin, value["origin"], "the leaf names another log")
    postings = value.get("postings")
    minutes = 0
    ok = isinstance(postings, list) and all(
        isinstance(p, list)
        and len(p) == 3
        and isinstance(p[0], str)
        and isinstance(p[1], str)
        and type(p[2]) is int
        for p in postings
    )
    if not ok:
        report.fail("leaf_fields", index, detail="postings are not [account, unit, amount] triples")
        return None
    assert isinstance(postings, list)
    for acct, unit, amount in postings:
        if acct == account and unit == SERVICE_UNIT:
            minutes += amount
    return str(value["id"]), minutes


def _check_records(cert: dict[str, Any], posted: dict[str, int], report: CertificateReport) -> None:
    listed: dict[str, str] = {}
    stated_sum = 0
    for record in cert["records"]:
        stated_sum += record["minutes"]
        minutes = 0
        for transfer_id in record["transfers"]:
            if transfer_id in listed:
                report.fail(
                    "record_transfers", None, None, transfer_id, f"transfer {transfer_id} is listed twice"
                )
            listed[transfer_id] = record["record_id"]
            if transfer_id not in posted:
                report.fail(
                    "record_transfers",
                    None,
                    transfer_id,
                    None,
                    f"record {record['record_id']}: no leaf for {transfer_id}",
                )
                continue
            minutes += posted[transfer_id]
        if minutes != record["minutes"]:
            report.fail(
                "record_minutes",
                None,
                minutes,
                record["minutes"],
                f"record {record['record_id']}: its transfers posted {minutes} minutes",
            )
    for transfer_id in posted.keys() - listed.keys():
        report.fail(
            "record_transfers", None, None, transfer_id, f"the leaf of {transfer_id} belongs to no record"
        )
    from_leaves = sum(posted.values())
    if cert["total_minutes"] != from_leaves or cert["total_minutes"] != stated_sum:
        report.fail(
            "total_minutes",
            None,
            from_leaves,
            cert["total_minutes"],
            f"the leaves post {from_leaves} minutes and the records state {stated_sum}",
        )
    report.checked["records"] = len(cert["records"])


def _check_status(status: dict[str, Any] | None, report: CertificateReport) -> None:
    report.status = None if status is None else status["state"]
    if status is not None and status["state"] == STATUS_SUPERSEDED:
        report.fail(
            "superseded",
            None,
            "valid",
            STATUS_SUPERSEDED,
            f"superseded at {status.get('superseded_at')} by correction {status.get('correction_id')};"
            f" replaced by {status.get('replaced_by')}",
        )
