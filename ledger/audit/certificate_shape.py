"""The shape of a certificate bundle (docs/reference/certificates.md §2): keys, types and encodings.

A bundle that does not have this shape cannot be checked at all and is reported as malformed input
(``bundle_format``, exit 2), naming the first place that is wrong.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ledger.audit.certificate_bundle import FORMAT, SERVICE_UNIT, STATUS_SUPERSEDED, STATUS_VALID

__all__ = ["MalformedBundleError", "check_shape"]

_HASH_LEN = 32
_CERTIFICATE = {
    "number": str,
    "community_id": int,
    "origin": str,
    "issuer": str,
    "issued_on": str,
    "issued_at": str,
    "period_from": (str, type(None)),
    "period_to": (str, type(None)),
    "account": str,
    "unit": str,
    "total_minutes": int,
    "records": list,
}
_RECORD = {
    "record_id": str,
    "service_date": str,
    "activity": str,
    "content": str,
    "organising_unit": str,
    "minutes": int,
    "transfers": list,
}
_LEAF = {"index": int, "leaf": str, "leaf_hash": str, "hashes": list}
_STATUS = {
    "state": str,
    "as_of": str,
    "superseded_at": (str, type(None)),
    "correction_id": (str, type(None)),
    "replaced_by": (str, type(None)),
}


class MalformedBundleError(ValueError):
    def __init__(self, path: str, reason: str, expected: Any = None, found: Any = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.expected = expected
        self.found = found


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _members(value: Any, spec: dict[str, Any], path: str) -> dict[str, Any]:
    """``value`` must be an object with exactly the keys of ``spec``, each of its type (bool is no int)."""
    if not isinstance(value, dict):
        raise MalformedBundleError(path, "must be an object", "object", _kind(value))
    missing, extra = spec.keys() - value.keys(), value.keys() - spec.keys()
    if missing or extra:
        raise MalformedBundleError(path, "has other keys than the format's", sorted(spec), sorted(value))
    for key, kind in spec.items():
        item = value[key]
        if isinstance(item, bool) or not isinstance(item, kind):
            raise MalformedBundleError(f"{path}.{key}", "has the wrong type", None, _kind(item))
    return value


def _hash(text: Any, path: str) -> None:
    if not isinstance(text, str):
        raise MalformedBundleError(path, "must be a base64 string", "string", _kind(text))
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise MalformedBundleError(path, "is not base64", None, text) from None
    if len(raw) != _HASH_LEN or base64.b64encode(raw).decode() != text:
        raise MalformedBundleError(path, "is not the canonical base64 of 32 bytes", None, text)


def _strings(value: list[Any], path: str) -> None:
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise MalformedBundleError(f"{path}[{i}]", "must be a string", "string", _kind(item))


def _leaves(leaves: list[Any]) -> None:
    last = -1
    for i, entry in enumerate(leaves):
        path = f"$.leaves[{i}]"
        _members(entry, _LEAF, path)
        if entry["index"] <= last:
            raise MalformedBundleError(
                f"{path}.index", "leaves must be in increasing index order", None, entry["index"]
            )
        last = entry["index"]
        _hash(entry["leaf_hash"], f"{path}.leaf_hash")
        for j, h in enumerate(entry["hashes"]):
            _hash(h, f"{path}.hashes[{j}]")


def check_shape(value: Any) -> dict[str, Any]:
    """The bundle, if it has the format's shape; MalformedBundleError naming the first place that does not."""
    if not isinstance(value, dict):
        raise MalformedBundleError("$", "must be an object", "object", _kind(value))
    if value.get("format") != FORMAT:
        raise MalformedBundleError("$.format", "unknown bundle format", FORMAT, value.get("format"))
    top = {"format": str, "certificate": dict, "checkpoint": list, "leaves": list}
    if "status" in value:
        top["status"] = dict
    _members(value, top, "$")
    cert = _members(value["certificate"], _CERTIFICATE, "$.certificate")
    if cert["unit"] != SERVICE_UNIT:
        raise MalformedBundleError("$.certificate.unit", "unknown unit", SERVICE_UNIT, cert["unit"])
    for i, record in enumerate(cert["records"]):
        _members(record, _RECORD, f"$.certificate.records[{i}]")
        _strings(record["transfers"], f"$.certificate.records[{i}].transfers")
    if not value["checkpoint"]:
        raise MalformedBundleError("$.checkpoint", "is empty", "note lines", [])
    _strings(value["checkpoint"], "$.checkpoint")
    _leaves(value["leaves"])
    if "status" in value:
        status = _members(value["status"], _STATUS, "$.status")
        if status["state"] not in (STATUS_VALID, STATUS_SUPERSEDED):
            raise MalformedBundleError(
                "$.status.state", "unknown state", [STATUS_VALID, STATUS_SUPERSEDED], status["state"]
            )
    return value
