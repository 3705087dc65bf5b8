"""The batch path on transfers of every shape it accepts: the rows and leaves it writes satisfy the
ledger's invariants, the stored request hashes are the requests' own, results equal what is stored,
and a failing transfer is reported at its index with nothing written."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.times import to_dt
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services import batch
from ledger.services.communities import CommunityInfo
from ledger.services.invariants import check_community
from ledger.services.ledger import Ledger
from ledger.store.db import Conn

OpenMember = Callable[..., uuid.UUID]
YEAR_US = 366 * 86_400_000_000


def _requests(info: CommunityInfo, open_member: OpenMember, tag: str) -> list[TransferRequest]:
    c = info.community_id
    points = info.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    coins = info.system_accounts[(SystemAccount.ISSUANCE, Unit.COIN_MINUTES)]
    score = info.system_accounts[(SystemAccount.ISSUANCE, Unit.SCORE_POINTS)]
    members = [open_member() for _ in range(4)]
    savers = [open_member(Unit.COIN_MINUTES) for _ in range(2)]
    household = open_member(Unit.SCORE_POINTS)
    out: list[TransferRequest] = []
    for i in range(12):
        extra: dict[str, Any] = {}
        if i % 3 == 0:
            extra["effective_us"] = 1_700_000_000_000_000 + i
        if i % 4 == 1:
            extra["actor_id"] = members[0]
        if i % 5 == 2:
            extra["metadata"] = {
                "note": 'a "quoted" \\ back/slash \\N, 文字',  # \N: NULL in COPY-like text
                "none": None,
                "n": [1, True, {"x": -2}],
            }
        if i % 6 == 3:
            extra["transfer_id"] = uuid.uuid4()
        expiry = None if i % 2 else 1_900_000_000_000_000 + i * YEAR_US // 12
        award = (Posting(points, Unit.POINTS, -(i + 5)), Posting(members[i % 4], Unit.POINTS, i + 5, expiry))
        out.append(TransferRequest(c, "award", award, f"{tag}:award:{i}", **extra))
    for i in range(8):  # payments drain the lots the awards made (soonest-expiring first)
        payer, payee = members[i % 4], members[(i + 1) % 4]
        pay = (Posting(payer, Unit.POINTS, -3), Posting(payee, Unit.POINTS, 3))
        out.append(TransferRequest(c, "payment", pay, f"{tag}:pay:{i}"))
    mixed = (
        Posting(coins, Unit.COIN_MINUTES, -60),
        Posting(savers[0], Unit.COIN_MINUTES, 45),
        Posting(savers[1], Unit.COIN_MINUTES, 15),
        Posting(score, Unit.SCORE_POINTS, 2),
        Posting(household, Unit.SCORE_POINTS, -2),  # a household score may go negative
    )
    out.append(TransferRequest(c, "mixed_units", mixed, f"{tag}:mixed"))
    out.append(out[3])  # a key repeated with the same request posts once
    return out


@pytest.fixture(params=[4, batch._CLAIM_SLICE], ids=["claims_in_slices_of_4", "claims_in_one_slice"])
def claim_slice(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Keys are claimed a slice at a time while the next slice is validated: with slices of 4, a
    repeated key and a failing request fall in later slices than the keys already claimed."""
    monkeypatch.setattr(batch, "_CLAIM_SLICE", request.param)
    return int(request.param)


@pytest.fixture(params=[batch._PIPELINED, 0], ids=["rows_in_one_pipeline", "rows_by_copy"])
def rows_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """A small batch is written by one statement (PipelinedRows.write), a large one with COPY:
    both ways, on the same transfers."""
    monkeypatch.setattr(batch, "_PIPELINED", request.param)
    return int(request.param)


def test_every_shape_is_written_consistently(
    claim_slice: int,
    rows_path: int,
    ledger: Ledger,
    pool: ConnectionPool[Conn],
    community: CommunityInfo,
    open_member: OpenMember,
    owner: Conn,
) -> None:
    c = community.community_id
    requests = _requests(community, open_member, "b")
    result = ledger.post_batch(requests)
    assert (result.posted, result.skipped) == (len(requests) - 1, 1)
    assert result.transfer_ids[3] == result.transfer_ids[-1]
    assert requests[3].transfer_id == result.transfer_ids[3]
    with pool.connection() as conn:
        assert check_community(conn, c) == []
    rows = owner.execute("SELECT key, request_hash FROM idempotency WHERE community_id = %s", (c,)).fetchall()
    assert {r.idempotency_key: r.request_hash() for r in requests} == {k: bytes(v) for k, v in rows}
    stored = owner.execute(
        "SELECT idempotency_key, metadata, effective_at, actor_id FROM transfer WHERE community_id = %s", (c,)
    ).fetchall()
    assert {k: (m, e, a) for k, m, e, a in stored} == {
        r.idempotency_key: (r.metadata, to_dt(r.effective_us) if r.effective_us else e, r.actor_id)
        for r in requests
        for k, m, e, a in stored
        if k == r.idempotency_key
    }
    lots = owner.execute(
        "SELECT l.expires_at = p.expires_at OR (l.expires_at IS NULL AND p.expires_at IS NULL),"
        " l.earned_at = t.effective_at, l.amount = p.amount AND l.account_id = p.account_id"
        " FROM lot l JOIN posting p USING (community_id, transfer_id, seq)"
        " JOIN transfer t USING (community_id, transfer_id) WHERE l.community_id = %s",
        (c,),
    ).fetchall()
    assert len(lots) >= 12
    assert all(all(row) for row in lots)
    assert ledger.post_batch(requests).skipped == len(requests)  # a replay posts nothing


def test_group_results_equal_what_is_stored(
    claim_slice: int,
    rows_path: int,
    ledger: Ledger,
    pool: ConnectionPool[Conn],
    community: CommunityInfo,
    open_member: OpenMember,
) -> None:
    requests = _requests(community, open_member, "g")[:-1]
    posted = batch.post_group(pool, requests, clock=lambda: 1_800_000_000_000_000)
    assert sorted(posted) == list(range(len(requests)))
    for result in posted.values():
        assert result == ledger.get_transfer(result.community_id, result.transfer_id)
    with pool.connection() as conn:
        assert check_community(conn, community.community_id) == []


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("overdraw", ErrorCode.INSUFFICIENT_FUNDS),
        ("unknown", ErrorCode.ACCOUNT_NOT_FOUND),
        ("unit", ErrorCode.UNIT_MISMATCH),
        ("key", ErrorCode.INVALID_IDEMPOTENCY_KEY),
    ],
)
def test_a_failing_transfer_is_reported_at_its_index(
    claim_slice: int,
    rows_path: int,
    ledger: Ledger,
    community: CommunityInfo,
    open_member: OpenMember,
    owner: Conn,
    fault: str,
    code: ErrorCode,
) -> None:
    c = community.community_id
    requests = _requests(community, open_member, f"f{fault}")
    payer, payee = requests[12].postings[0].account_id, requests[12].postings[1].account_id
    accounts = {
        "overdraw": (payer, payee, Unit.POINTS),
        "unknown": (payer, uuid.uuid4(), Unit.POINTS),
        "unit": (payer, requests[-2].postings[1].account_id, Unit.POINTS),
        "key": (payer, payee, Unit.POINTS),
    }
    debit, credit, unit = accounts[fault]
    key = "bad key" if fault == "key" else f"f{fault}:bad"
    bad = TransferRequest(c, "payment", (Posting(debit, unit, -(10**6)), Posting(credit, unit, 10**6)), key)
    requests.insert(15, bad)
    with pytest.raises(LedgerError) as caught:
        ledger.post_batch(requests)
    assert (caught.value.code, caught.value.detail["index"]) == (code, 15)
    assert owner.execute("SELECT count(*) FROM transfer WHERE community_id = %s", (c,)).fetchone() == (0,)
    # Keys claimed before the failure (earlier slices) are rolled back with the rest.
    assert owner.execute("SELECT count(*) FROM idempotency WHERE community_id = %s", (c,)).fetchone() == (0,)
    assert ledger.post_batch([r for r in requests if r is not bad]).posted == len(requests) - 2
