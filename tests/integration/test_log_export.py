"""Exporting a community's log from the real database, and what the offline verifier reports when
the database was tampered with before the export (rows edited as the superuser, triggers off)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.note import Signer
from ledger.audit.verifier import VerifyOptions, verify_export
from ledger.audit.verify_notes import TrustedKeys
from ledger.audit.verify_report import Report
from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import Phase, Posting, ResolveRequest, ReverseRequest, TransferRequest
from ledger.domain.units import Unit
from ledger.services.audit_log import AuditLog
from ledger.services.communities import CommunityInfo
from ledger.services.ledger import Ledger
from ledger.services.log_export import export_log, write_export
from ledger.store.db import Conn

SEED = bytes(range(32))
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _sign(pool: ConnectionPool[Conn], community: CommunityInfo) -> int:
    """Fold the new leaves into the tree and store a checkpoint signed with the test key."""
    audit = AuditLog(pool)
    size, root = audit.ingest(community.community_id)
    note = sign_checkpoint(Checkpoint(community.origin, size, root), Signer.from_seed(community.origin, SEED))
    audit.store_checkpoint(community.community_id, size, root, note)
    return size


@pytest.fixture
def signed_log(
    pool: ConnectionPool[Conn],
    ledger: Ledger,
    community: CommunityInfo,
    open_member: Callable[..., uuid.UUID],
) -> dict[str, object]:
    """Eight leaves signed at sizes 4 and 8: awards, a spend and its reversal, a hold posted, coins."""
    c = community.community_id
    iss = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    sink = community.system_accounts[(SystemAccount.REDEMPTION_SINK, Unit.POINTS)]
    coin_iss = community.system_accounts[(SystemAccount.ISSUANCE, Unit.COIN_MINUTES)]
    person, other, coins = open_member(Unit.POINTS), open_member(Unit.POINTS), open_member(Unit.COIN_MINUTES)

    def pay(src: uuid.UUID, dst: uuid.UUID, unit: Unit, amount: int, key: str, **kw: object) -> uuid.UUID:
        postings = (Posting(src, unit, -amount), Posting(dst, unit, amount))
        return ledger.transfer(TransferRequest(c, "award", postings, key, **kw)).transfer_id  # type: ignore[arg-type]

    pay(iss, person, Unit.POINTS, 100, "e-award")
    spend = pay(person, sink, Unit.POINTS, 40, "e-spend")
    ledger.reverse(ReverseRequest(c, spend, "e-reverse"))
    pay(iss, other, Unit.POINTS, 25, "e-award-2")
    first = _sign(pool, community)
    pay(coin_iss, coins, Unit.COIN_MINUTES, 60, "e-coins")
    held = pay(coins, coin_iss, Unit.COIN_MINUTES, 20, "e-hold", phase=Phase.PENDING)
    ledger.resolve(ResolveRequest(c, held, Phase.POST, "e-post"))
    pay(person, other, Unit.POINTS, 10, "e-pay")
    return {"sizes": (first, _sign(pool, community)), "person": person}


def _verify(path: Path, community: CommunityInfo) -> Report:
    keys = TrustedKeys((Signer.from_seed(community.origin, SEED).verifier(),))
    return verify_export(path, VerifyOptions(keys, jobs=1))


def _found(report: Report) -> dict[str, int | None]:
    return {f.check: f.index for f in report.failures.values()}


@pytest.fixture
def tamper(db_url: str) -> Iterator[Conn]:
    """A superuser connection in a transaction with triggers off; the export reads inside it, and
    everything is rolled back afterwards."""
    with psycopg.connect(db_url) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        yield conn
        conn.rollback()


def test_export_verifies(
    pool: ConnectionPool[Conn], community: CommunityInfo, signed_log: dict[str, object], tmp_path: Path
) -> None:
    path = tmp_path / "log.jsonl.gz"
    summary = export_log(pool, community.community_id, path, clock=lambda: NOW)
    assert (summary.size, summary.leaves, summary.checkpoints) == (8, 8, 2)
    assert summary.balances == len(community.system_accounts) + 3
    report = _verify(path, community)
    assert report.failures == {}
    assert report.exit_code == 0
    assert report.checked["transfers"] == 8
    assert report.checked["roots_checked"] == 2


def test_export_matches_the_reported_balances(
    pool: ConnectionPool[Conn], community: CommunityInfo, signed_log: dict[str, object], tmp_path: Path
) -> None:
    path = tmp_path / "log.jsonl"
    export_log(pool, community.community_id, path)
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    balances = {x["balance"]["account"]: x["balance"]["posted"] for x in lines if "balance" in x}
    assert balances[str(signed_log["person"])] == 100 - 40 + 40 - 10
    header, end = lines[0], lines[-1]
    assert (header["format"], header["origin"], header["size"]) == (
        "vledger-log-export/2",
        community.origin,
        8,
    )
    assert end == {"end": {"balances": len(balances), "checkpoints": 2, "leaves": 8}}


def test_unknown_log(pool: ConnectionPool[Conn], tmp_path: Path) -> None:
    with pytest.raises(LedgerError) as caught:
        export_log(pool, 2**62, tmp_path / "none.jsonl")
    assert caught.value.code == ErrorCode.COMMUNITY_NOT_FOUND
    assert not list(tmp_path.iterdir())  # no partial file is left behind


def test_leaves_after_the_last_checkpoint(
    pool: ConnectionPool[Conn],
    ledger: Ledger,
    community: CommunityInfo,
    signed_log: dict[str, object],
    tmp_path: Path,
) -> None:
    iss = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    person = signed_log["person"]
    postings = (Posting(iss, Unit.POINTS, -1), Posting(person, Unit.POINTS, 1))  # type: ignore[arg-type]
    ledger.transfer(TransferRequest(community.community_id, "award", postings, "e-late"))
    path = tmp_path / "log.jsonl"
    export_log(pool, community.community_id, path)
    report = _verify(path, community)
    assert _found(report) == {"unsigned_leaves": 8}
    assert report.exit_code == 3


def _leaf(conn: Conn, c: int, idx: int) -> bytes:
    row = conn.execute("SELECT leaf FROM log_leaf WHERE community_id = %s AND idx = %s", (c, idx)).fetchone()
    assert row is not None
    return bytes(row[0])


def _set_leaf(conn: Conn, c: int, idx: int, leaf: bytes) -> None:
    """Replace a leaf's bytes and fix its stored hash, as a superuser could."""
    conn.execute(
        "UPDATE log_leaf SET leaf = %s, leaf_hash = sha256('\\x00'::bytea || %s)"
        " WHERE community_id = %s AND idx = %s",
        (leaf, leaf, c, idx),
    )


def test_edited_leaf_bytes_with_the_hash_fixed(
    community: CommunityInfo, signed_log: dict[str, object], tamper: Conn, tmp_path: Path
) -> None:
    c = community.community_id
    _set_leaf(tamper, c, 2, _leaf(tamper, c, 2).replace(b'"kind":"reversal"', b'"kind":"award"'))
    path = tmp_path / "log.jsonl"
    write_export(tamper, c, path)
    report = _verify(path, community)
    assert _found(report) == {"prev_link": 3, "root_mismatch": 4, "unsigned_leaves": 0}
    assert report.exit_code == 1


def test_edited_decoded_field_is_a_re_encoding_mismatch(
    community: CommunityInfo, signed_log: dict[str, object], tamper: Conn, tmp_path: Path
) -> None:
    c = community.community_id
    value = json.loads(_leaf(tamper, c, 5))
    value["kind"] = "gift"
    _set_leaf(tamper, c, 5, json.dumps(value).encode())
    path = tmp_path / "log.jsonl"
    write_export(tamper, c, path)
    report = _verify(path, community)
    assert _found(report) == {"leaf_canonical": 5, "prev_link": 6, "root_mismatch": 8, "unsigned_leaves": 4}


def test_deleted_middle_row_is_an_index_gap(
    community: CommunityInfo, signed_log: dict[str, object], tamper: Conn, tmp_path: Path
) -> None:
    c = community.community_id
    tamper.execute("DELETE FROM log_leaf WHERE community_id = %s AND idx = 3", (c,))  # the second award
    path = tmp_path / "log.jsonl"
    write_export(tamper, c, path)
    report = _verify(path, community)
    assert _found(report) == {
        "index_gap": 3, "prev_link": 3, "root_mismatch": 4, "checkpoint_beyond_export": 8, "leaf_count": 7,
        "balance_mismatch": None, "unsigned_leaves": 0,
    }  # fmt: skip
    assert report.exit_code == 1


def test_truncated_tail_against_the_pin(
    community: CommunityInfo,
    signed_log: dict[str, object],
    tamper: Conn,
    tmp_path: Path,
    pool: ConnectionPool[Conn],
) -> None:
    c = community.community_id
    path, pin = tmp_path / "log.jsonl", tmp_path / "pin.json"
    export_log(pool, c, path)
    keys = TrustedKeys((Signer.from_seed(community.origin, SEED).verifier(),))
    assert verify_export(path, VerifyOptions(keys, pin_path=pin, write_pin=True)).ok
    # the superuser removes the newest leaves and checkpoint and rolls the head back
    tamper.execute("DELETE FROM log_leaf WHERE community_id = %s AND idx >= 4", (c,))
    tamper.execute("DELETE FROM log_checkpoint WHERE community_id = %s AND size > 4", (c,))
    tamper.execute("UPDATE log_head SET size = 4 WHERE community_id = %s", (c,))
    write_export(tamper, c, path)
    report = verify_export(path, VerifyOptions(keys, pin_path=pin))
    assert _found(report) == {"balance_mismatch": None, "rollback": 4}
    assert report.exit_code == 1
    assert json.loads(pin.read_text())["root"] == base64.b64encode(AuditLog(pool).root(c, 8)).decode()


def test_edited_balance(
    community: CommunityInfo, signed_log: dict[str, object], tamper: Conn, tmp_path: Path
) -> None:
    c = community.community_id
    tamper.execute(
        "UPDATE balance SET posted = posted + 5 WHERE community_id = %s AND account_id = %s",
        (c, signed_log["person"]),
    )
    path = tmp_path / "log.jsonl"
    write_export(tamper, c, path)
    report = _verify(path, community)
    assert _found(report) == {"balance_mismatch": None}
    failure = report.failures["balance_mismatch"]
    assert (failure.expected, failure.found) == (90, 95)
    assert str(signed_log["person"]) in failure.detail
