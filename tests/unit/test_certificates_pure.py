"""Certificates without a database: numbers, hours, the certificate name mask, the bundle's encoding,
hash and shape."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime

import pytest

from ledger.audit.certificate_bundle import (
    FORMAT,
    BundleLeaf,
    CertificateBody,
    RecordEntry,
    build_bundle,
    bundle_digest,
    encode_bundle,
    note_from_lines,
    note_lines,
    with_status,
)
from ledger.audit.certificate_shape import MalformedBundleError, check_shape
from ledger.audit.leaf import leaf_hash
from ledger.domain.certificates import CROCKFORD, Period, hours_text, new_number, parse_number
from ledger.domain.errors import LedgerError
from ledger.privacy import mask_name_on_certificate


def test_numbers_are_readable_random_and_name_their_community() -> None:
    number = new_number(42, 2025, random_bits=lambda bits: (1 << bits) - 1)
    assert number == "C42-2025-ZZZZ-ZZZZ-ZZZZ"
    assert new_number(7, 2026, random_bits=lambda bits: 0) == "C7-2026-0000-0000-0000"
    drawn = {new_number(42, 2025) for _ in range(200)}
    assert len(drawn) == 200
    for n in drawn:
        parsed = parse_number(n)
        assert parsed is not None and (parsed.community_id, parsed.year, parsed.text) == (42, 2025, n)
        assert set(n[9:].replace("-", "")) <= set(CROCKFORD)
    assert parse_number("c42-2025-7kqm-3xf9-ht2d") is not None  # as people type it
    for bad in ("", "C42-2025-7KQM-3XF9", "C042-2025-7KQM-3XF9-HT2D", "C42-2025-7KQM-3XF9-HT2I", "X" * 100):
        assert parse_number(bad) is None
    with pytest.raises(ValueError, match="four-digit year"):
        new_number(42, 25)


def test_hours_are_rounded_down_to_a_tenth() -> None:
    assert [hours_text(m) for m in (5880, 5940, 150, 20, 0, 59)] == [
        "98.0",
        "99.0",
        "2.5",
        "0.3",
        "0.0",
        "0.9",
    ]


def test_periods() -> None:
    assert Period().start is None
    with pytest.raises(LedgerError, check=lambda e: e.field == "period_to"):
        Period(date(2025, 3, 5), date(2025, 3, 4))
    with pytest.raises(LedgerError, check=lambda e: e.field == "period_from"):
        Period(date(2025, 3, 11)).check_not_after(date(2025, 3, 10))


def test_certificate_name_mask() -> None:
    assert [mask_name_on_certificate(n) for n in ("张三丰", "李四", "欧阳娜娜", "王", "")] == [
        "张*丰",
        "李*",
        "欧**娜",
        "*",
        "",
    ]


LEAF = b'{"id":"t1","index":3,"type":"transfer"}'
NOTE = "o/community/1\n4\n" + "A" * 43 + "=\n\n\u2014 o/community/1 AAAA\n"


def _bundle() -> dict[str, object]:
    body = CertificateBody(
        number="C1-2025-0000-0000-0000",
        community_id=1,
        origin="o/community/1",
        issuer="幸福社区",
        issued_on=date(2025, 3, 10),
        issued_at=datetime(2025, 3, 10, 4, tzinfo=UTC),
        period_from=None,
        period_to=date(2025, 3, 9),
        account_id="acct",
        records=(RecordEntry("r1", date(2025, 3, 3), "助老", "陪伴老人", "居委会", 150, ("t1",)),),
    )
    return build_bundle(body, NOTE.encode(), [BundleLeaf(3, LEAF, leaf_hash(LEAF), (bytes(32),))])


def test_the_bundle_encoding_and_its_hash_without_status() -> None:
    bundle = _bundle()
    data = encode_bundle(bundle)
    assert data.startswith(b'{"certificate":{"account":"acct",')
    compact = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data == compact.encode()
    assert bundle_digest(bundle) == hashlib.sha256(data).digest()
    served = with_status(bundle, {"state": "superseded", "replaced_by": "C1-2025-0000-0000-0001"})
    assert bundle_digest(json.loads(served)) == hashlib.sha256(data).digest()  # status is not hashed
    assert served.endswith(b',"status":{"replaced_by":"C1-2025-0000-0000-0001","state":"superseded"}}')
    certificate = bundle["certificate"]
    assert isinstance(certificate, dict) and certificate["total_minutes"] == 150
    assert note_from_lines(note_lines(NOTE.encode())) == NOTE.encode()
    assert bundle["format"] == FORMAT


def test_the_shape_names_the_first_place_that_is_wrong() -> None:
    good = json.loads(encode_bundle(_bundle()))
    assert check_shape(good) is good
    cases = {
        "$.format": lambda b: b.update(format="other"),
        "$.certificate.total_minutes": lambda b: b["certificate"].update(total_minutes=True),
        "$.certificate.records[0]": lambda b: b["certificate"]["records"][0].pop("minutes"),
        "$.leaves[0].leaf_hash": lambda b: b["leaves"][0].update(leaf_hash="AAAA"),
        "$.leaves[0].hashes[0]": lambda b: b["leaves"][0]["hashes"].__setitem__(0, "not base64!"),
        "$.checkpoint": lambda b: b.update(checkpoint=[]),
        "$": lambda b: b.update(extra=1),
    }
    for path, change in cases.items():
        bad = json.loads(json.dumps(good))
        change(bad)
        with pytest.raises(MalformedBundleError) as info:
            check_shape(bad)
        assert info.value.path == path
