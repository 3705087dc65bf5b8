"""Service certificates on real PostgreSQL: issue against a signed checkpoint, verify the bundle offline,
scenario 4 (98.0 h superseded by 99.0 h after a correction), masking, and the refusals."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import date, time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from certificate_world import BASE_URL, ID_NUMBER, NAME, PHONE, CertWorld, make_cert_world
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool
from service_world import HOUR, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.audit.certificate_bundle import bundle_digest
from ledger.domain.certificates import Period, parse_number
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.services.audit_log import AuditLog
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.ledger import Ledger
from ledger.store import certificates_repo
from ledger.store.db import Conn

MAR_3, MAR_5 = date(2025, 3, 3), date(2025, 3, 5)


@pytest.fixture
def cw(
    pool: ConnectionPool[Conn],
    owner: Conn,
    ledger: Ledger,
    communities: Communities,
    community: CommunityInfo,
) -> CertWorld:
    return make_cert_world(make_world(pool, owner, ledger, communities, community), AuditLog(pool))


def fails(code: ErrorCode) -> pytest.RaisesExc[LedgerError]:
    return pytest.raises(LedgerError, check=lambda e: e.code is code)


def checks(report: dict[str, Any]) -> list[str]:
    return [f["check"] for f in report["failures"]]


def test_scenario_4_certificate_superseded_by_one_after_the_correction(cw: CertWorld, tmp_path: Path) -> None:
    """96 h of earlier service and a 3.0 h shift recorded as 2.0 h: a certificate of 98.0 h; after the
    accepted correction it is superseded, and the next one, once checkpointed, shows 99.0 h."""
    w, volunteer = cw.w, cw.volunteer()
    care, clean = w.activity(), w.activity(name="社区环境整治")
    for day in range(3, 8):  # 5 × 12 h + 3 × 12 h = 96 h
        cw.serve(volunteer, care, date(2025, 3, day), time(8, 0), time(20, 0))
    for day in range(3, 6):
        cw.serve(volunteer, clean, date(2025, 3, day), time(8, 0), time(20, 0))
    shift = cw.serve(volunteer, care, MAR_5, time(20, 0), time(22, 0))
    cw.sign()

    first = cw.certs.issue(w.cid, volunteer, actor_id=w.admin)
    assert (first.total_minutes, first.total_hours, len(first.records)) == (98 * HOUR, "98.0", 9)
    assert first.status.state == "valid" and first.issued_on == date(2025, 3, 10)
    assert first.organising_units == ("幸福社区居委会",)
    assert (first.identity.name, first.identity.id_number) == ("张*丰", "1101**********002X")
    assert first.verify_url == f"{BASE_URL}/verify/certificates/{first.number}"
    parsed = parse_number(first.number)
    assert parsed is not None and (parsed.community_id, parsed.year) == (w.cid, 2025)
    code, report = cw.verify(cw.certs.bundle(w.cid, first.number), tmp_path)
    assert (code, report["ok"], report["status"], report["total_minutes"]) == (0, True, "valid", 5880)
    assert report["checked"] == {"cosignatures": 1, "leaves": 9, "proofs": 9, "records": 9}
    assert report["bundle_sha256"] == first.bundle_sha256

    filed = w.corrections.file(
        w.cid, shift, start_time=time(19, 0), end_time=time(22, 0), reason="实际服务3小时", actor_id=w.admin
    )
    accepted = w.corrections.accept(w.cid, filed.correction_id, actor_id=w.leader)
    old = cw.certs.get(w.cid, first.number)
    assert (old.status.state, old.status.correction_id, old.status.replaced_by) == (
        "superseded",
        accepted.correction_id,
        None,
    )
    assert old.total_minutes == 98 * HOUR  # a certificate never changes; only its status does
    with fails(ErrorCode.NOT_YET_CHECKPOINTED):  # the reversal and the new posting are not signed yet
        cw.certs.issue(w.cid, volunteer, actor_id=w.admin)

    w.clock.on(date(2025, 3, 11))
    cw.sign()
    second = cw.certs.issue(w.cid, volunteer, actor_id=w.admin)
    assert (second.total_minutes, second.total_hours, second.status.state) == (99 * HOUR, "99.0", "valid")
    corrected = next(r for r in second.records if r.service_date == MAR_5 and r.minutes == 180)
    assert corrected.hours == "3.0"
    assert cw.certs.get(w.cid, first.number).status.replaced_by == second.number
    assert [c.number for c in cw.certs.of_person(w.cid, volunteer)] == [second.number, first.number]

    # The new bundle carries the original posting, its reversal and the corrected posting.
    bundle = json.loads(cw.certs.bundle(w.cid, second.number))
    entry = next(r for r in bundle["certificate"]["records"] if r["record_id"] == str(shift))
    assert entry["transfers"] == [
        str(t) for t in (filed_transfer(cw, shift), accepted.reversal_transfer_id, accepted.new_transfer_id)
    ]
    assert (entry["minutes"], bundle["status"]["state"]) == (180, "valid")
    assert cw.verify(cw.certs.bundle(w.cid, second.number), tmp_path)[0] == 0

    # Offline, the old bundle still proves what it stated, and says it was superseded (policy: exit 3).
    code, report = cw.verify(cw.certs.bundle(w.cid, first.number), tmp_path)
    assert (code, report["status"], checks(report)) == (3, "superseded", ["superseded"])
    assert second.number in report["failures"][0]["detail"]


def filed_transfer(cw: CertWorld, record_id: object) -> object:
    """The record's first transfer (posted under its idempotency key)."""
    row = cw.w.owner.execute(
        "SELECT transfer_id FROM idempotency WHERE community_id = %s AND key = %s",
        (cw.cid, f"service-record:{record_id}"),
    ).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def issued(cw: CertWorld) -> tuple[str, bytes]:
    """A certificate of two records (2.5 h and 1.5 h), and its bundle as served."""
    volunteer, activity = cw.volunteer(), cw.w.activity()
    cw.serve(volunteer, activity, MAR_3, time(9, 0), time(11, 45))
    cw.serve(volunteer, activity, MAR_5, time(14, 0), time(15, 30))
    cw.sign()
    cert = cw.certs.issue(cw.cid, volunteer, actor_id=cw.w.admin)
    assert cert.total_minutes == 240
    return cert.number, cw.certs.bundle(cw.cid, cert.number)


def edit(bundle: bytes, change: Any) -> bytes:
    value = json.loads(bundle)
    change(value)
    return json.dumps(value, ensure_ascii=False).encode()


def test_a_leaf_edited_is_reported_at_its_index(
    cw: CertWorld, issued: tuple[str, bytes], tmp_path: Path
) -> None:
    _, bundle = issued
    index = json.loads(bundle)["leaves"][0]["index"]

    def more_minutes(value: dict[str, Any]) -> None:
        leaf = value["leaves"][0]
        leaf["leaf"] = leaf["leaf"].replace('"service_minutes",150]', '"service_minutes",210]')

    code, report = cw.verify(edit(bundle, more_minutes), tmp_path)
    assert code == 1
    assert checks(report) == ["leaf_hash", "inclusion", "record_minutes", "total_minutes"]
    assert [f["index"] for f in report["failures"][:2]] == [index, index]
    assert report["failures"][2]["expected"] == 210 and report["failures"][2]["found"] == 150

    def rehashed(value: dict[str, Any]) -> None:  # the hash fixed too: only the proof can tell
        more_minutes(value)
        leaf = value["leaves"][0]
        digest = hashlib.sha256(b"\0" + leaf["leaf"].encode()).digest()
        leaf["leaf_hash"] = base64.b64encode(digest).decode()

    code, report = cw.verify(edit(bundle, rehashed), tmp_path)
    assert (code, checks(report)) == (1, ["inclusion", "record_minutes", "total_minutes"])


def test_a_proof_edited_is_reported_at_its_leaf(
    cw: CertWorld, issued: tuple[str, bytes], tmp_path: Path
) -> None:
    _, bundle = issued
    leaves = json.loads(bundle)["leaves"]
    assert leaves[1]["hashes"], "the tree has more than one leaf"

    def flip(value: dict[str, Any]) -> None:
        raw = bytearray(base64.b64decode(value["leaves"][1]["hashes"][0]))
        raw[0] ^= 1
        value["leaves"][1]["hashes"][0] = base64.b64encode(bytes(raw)).decode()

    code, report = cw.verify(edit(bundle, flip), tmp_path)
    assert (code, checks(report), report["failures"][0]["index"]) == (1, ["inclusion"], leaves[1]["index"])
    assert "root mismatch" in report["failures"][0]["detail"]


def test_the_checkpoint_edited_or_unwitnessed(
    cw: CertWorld, issued: tuple[str, bytes], tmp_path: Path
) -> None:
    _, bundle = issued
    size = int(json.loads(bundle)["checkpoint"][1])

    def other_root(value: dict[str, Any]) -> None:
        value["checkpoint"][2] = base64.b64encode(bytes(32)).decode()

    code, report = cw.verify(edit(bundle, other_root), tmp_path)
    assert (code, checks(report), report["failures"][0]["index"]) == (1, ["checkpoint_signature"], size)
    assert report["checked"]["proofs"] == 0  # nothing is proved against an untrusted root

    def bigger(value: dict[str, Any]) -> None:
        value["checkpoint"][1] = str(size + 1)

    assert checks(cw.verify(edit(bundle, bigger), tmp_path)[1]) == ["checkpoint_signature"]

    def ascii_dash(value: dict[str, Any]) -> None:
        value["checkpoint"][4] = "-" + value["checkpoint"][4][1:]

    code, report = cw.verify(edit(bundle, ascii_dash), tmp_path)
    assert (code, checks(report)) == (2, ["checkpoint_syntax"])

    def no_witness(value: dict[str, Any]) -> None:
        del value["checkpoint"][5]

    code, report = cw.verify(edit(bundle, no_witness), tmp_path)
    assert (code, checks(report)) == (3, ["witness_quorum"])
    assert cw.verify(edit(bundle, no_witness), tmp_path, "--quorum", "0")[0] == 0

    def forged_cosignature(value: dict[str, Any]) -> None:
        line = value["checkpoint"][5]
        value["checkpoint"][5] = line[:-6] + ("A" if line[-6] != "A" else "B") + line[-5:]

    code, report = cw.verify(edit(bundle, forged_cosignature), tmp_path)
    assert code == 1 and checks(report) == ["cosignature_invalid", "witness_quorum"]


def test_totals_edited(cw: CertWorld, issued: tuple[str, bytes], tmp_path: Path) -> None:
    _, bundle = issued

    def more(value: dict[str, Any]) -> None:
        value["certificate"]["total_minutes"] = 300

    code, report = cw.verify(edit(bundle, more), tmp_path)
    assert (code, checks(report)) == (1, ["total_minutes"])
    assert (report["failures"][0]["expected"], report["failures"][0]["found"]) == (240, 300)

    def record_more(value: dict[str, Any]) -> None:
        value["certificate"]["records"][0]["minutes"] += 60
        value["certificate"]["total_minutes"] += 60

    code, report = cw.verify(edit(bundle, record_more), tmp_path)
    assert (code, checks(report)) == (1, ["record_minutes", "total_minutes"])


def test_malformed_bundles_and_keys(cw: CertWorld, issued: tuple[str, bytes], tmp_path: Path) -> None:
    _, bundle = issued
    assert cw.verify(b'{"format": 1.5}', tmp_path)[1]["failures"][0]["check"] == "bundle_read"
    code, report = cw.verify(bundle[:-10], tmp_path)
    assert (code, checks(report)) == (2, ["bundle_read"])

    def other_format(value: dict[str, Any]) -> None:
        value["format"] = "vledger-certificate-bundle/9"

    code, report = cw.verify(edit(bundle, other_format), tmp_path)
    assert (code, checks(report)) == (2, ["bundle_format"])

    def no_records(value: dict[str, Any]) -> None:
        del value["certificate"]["records"]

    assert cw.verify(edit(bundle, no_records), tmp_path)[1]["failures"][0]["detail"].startswith(
        "$.certificate"
    )

    # Another log's key: the certificate is not of the trusted log, and its checkpoint is unsigned.
    path = tmp_path / "b.json"
    path.write_bytes(bundle)
    from click.testing import CliRunner  # noqa: PLC0415

    from ledger.audit.note import Signer  # noqa: PLC0415
    from vledger.audit_cli import audit  # noqa: PLC0415

    stranger = Signer.from_seed("ledger.example.org/community/1", bytes(32)).verifier().vkey()
    result = CliRunner().invoke(audit, ["verify-certificate", str(path), "--log-key", stranger])
    report = json.loads(result.stdout)
    assert (result.exit_code, checks(report)) == (1, ["origin", "checkpoint_signature"])
    result = CliRunner().invoke(audit, ["verify-certificate", str(path), "--log-key", "not a key"])
    assert result.exit_code == 2  # a usage error, before anything is read


def test_the_bundle_hash_and_the_stored_row(cw: CertWorld, issued: tuple[str, bytes], owner: Conn) -> None:
    number, bundle = issued
    value = json.loads(bundle)
    assert bundle_digest(value).hex() == cw.certs.get(cw.cid, number).bundle_sha256
    stored = owner.execute(
        "SELECT bundle, bundle_sha256 FROM certificate WHERE community_id = %s AND number = %s",
        (cw.cid, number),
    ).fetchone()
    assert stored is not None and bytes(stored[1]) == bundle_digest(value)
    assert json.loads(bytes(stored[0])) == {k: v for k, v in value.items() if k != "status"}


def test_no_personal_data_in_the_bundle_or_the_rows(
    cw: CertWorld, issued: tuple[str, bytes], owner: Conn
) -> None:
    _, bundle = issued
    rows = owner.execute(
        "SELECT row_to_json(c)::text FROM certificate c WHERE community_id = %s", (cw.cid,)
    ).fetchall()
    text = bundle.decode() + "".join(r[0] for r in rows)
    for secret in (NAME, "张*丰", ID_NUMBER, ID_NUMBER[-4:] + '"', PHONE, "1101**"):
        assert secret not in text


def test_refusals(cw: CertWorld) -> None:
    w = cw.w
    volunteer = cw.volunteer()
    with fails(ErrorCode.NO_SERVICE_TO_CERTIFY):
        cw.certs.issue(w.cid, volunteer, actor_id=w.admin)
    cw.serve(volunteer, w.activity(), MAR_3, time(9, 0), time(11, 0))
    with fails(ErrorCode.NOT_YET_CHECKPOINTED):  # no checkpoint at all
        cw.certs.issue(w.cid, volunteer, actor_id=w.admin)
    cw.sign()
    with fails(ErrorCode.NO_SERVICE_TO_CERTIFY):  # nothing in the period
        cw.certs.issue(w.cid, volunteer, actor_id=w.admin, period=Period(date(2025, 3, 4), date(2025, 3, 9)))
    with fails(ErrorCode.INVALID_FIELD):
        cw.certs.issue(w.cid, volunteer, actor_id=w.admin, period=Period(date(2025, 3, 11)))
    with fails(ErrorCode.INVALID_FIELD):
        Period(date(2025, 3, 5), date(2025, 3, 4))
    cert = cw.certs.issue(w.cid, volunteer, actor_id=w.admin, period=Period(MAR_3, MAR_3))
    assert (cert.total_minutes, cert.period_from, cert.period_to) == (120, MAR_3, MAR_3)
    with fails(ErrorCode.PERSON_NOT_FOUND):
        cw.certs.issue(w.cid, w.admin, actor_id=w.admin)
    with fails(ErrorCode.CERTIFICATE_NOT_FOUND):
        cw.certs.get(w.cid, "C1-2025-0000-0000-0000")
    for bad in ("", "nonsense", f"C{w.cid}-2025-IIII-0000-0000", "C0-2025-0000-0000-0000"):
        with fails(ErrorCode.CERTIFICATE_NOT_FOUND):
            cw.certs.public(bad)
    assert cw.certs.public(cert.number.lower()).number == cert.number

    # Erased: the certificate stands, without a name; no new certificate is issued.
    cw.people.erase(w.cid, volunteer, actor_id=w.admin)
    shown = cw.certs.get(w.cid, cert.number)
    assert shown.identity.erased and shown.identity.id_number is None and shown.status.state == "valid"
    with fails(ErrorCode.PERSON_ERASED):
        cw.certs.issue(w.cid, volunteer, actor_id=w.admin)


def test_certificates_are_append_only(cw: CertWorld, issued: tuple[str, bytes], db_url: str) -> None:
    number, _ = issued
    with psycopg.connect(db_url) as conn:
        for statement in (
            "UPDATE certificate SET total_minutes = 1 WHERE number = %s",
            "DELETE FROM certificate WHERE number = %s",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                conn.execute(statement, (number,))
            conn.rollback()
        with pytest.raises(pg_errors.CheckViolation):  # the hash must be the bundle's
            conn.execute(
                "INSERT INTO certificate SELECT community_id, 'C1-2025-0000-0000-0001', person_id,"
                " account_id, period_from, period_to, record_ids, transfer_ids, total_minutes, issued_on,"
                " issued_at, issued_by, checkpoint_size, bundle || '\\x00'::bytea, bundle_sha256"
                " FROM certificate WHERE number = %s",
                (number,),
            )
        conn.rollback()


def test_a_correction_accepted_while_a_certificate_is_issued_supersedes_it(
    cw: CertWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The correction is accepted just after the certificate read the records: it waits for the
    volunteer's lock, which the certificate holds, and then supersedes the new certificate. (Without
    the lock it would finish first, and the certificate would state the old hours as valid.)"""
    w = cw.w
    volunteer = cw.volunteer()
    record = cw.serve(volunteer, w.activity(), MAR_3, time(9, 0), time(11, 0))
    cw.sign()
    filed = w.corrections.file(
        w.cid, record, start_time=time(9, 0), end_time=time(12, 0), reason="补记", actor_id=w.admin
    )
    read, accepted = threading.Event(), threading.Event()
    covered = certificates_repo.covered

    def covered_then_wait(*args: Any) -> Any:
        rows = covered(*args)
        read.set()
        accepted.wait(timeout=1.0)  # the correction cannot finish meanwhile: it waits for the lock
        return rows

    def accept() -> None:
        read.wait(timeout=10)
        w.corrections.accept(w.cid, filed.correction_id, actor_id=w.leader)
        accepted.set()

    monkeypatch.setattr(certificates_repo, "covered", covered_then_wait)
    thread = threading.Thread(target=accept)
    thread.start()
    cert = cw.certs.issue(w.cid, volunteer, actor_id=w.admin)
    thread.join()
    assert cert.total_minutes == 120
    status = cw.certs.get(w.cid, cert.number).status
    assert (status.state, status.correction_id) == ("superseded", filed.correction_id)
