"""A small batch's one-statement reads (vledger_group_reads, migration 0015) answer exactly what the
large batch's separate statements answer: claimed keys, origin, accounts, locked balance rows and
open lots (with and without expiry, exact to the microsecond)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from psycopg_pool import ConnectionPool

from ledger.domain.accounts import SystemAccount
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services import batch
from ledger.services.communities import CommunityInfo
from ledger.services.ledger import Ledger
from ledger.store import batch_repo as bsql
from ledger.store.db import Conn


def _sorted_lots(reads: bsql.GroupReads) -> dict[uuid.UUID, list[object]]:
    return {a: sorted(lots, key=lambda lot: lot.lot_id) for a, lots in reads.lots.items()}


def test_one_statement_reads_what_the_separate_statements_read(
    pool: ConnectionPool[Conn],
    ledger: Ledger,
    community: CommunityInfo,
    open_member: Callable[..., uuid.UUID],
) -> None:
    c = community.community_id
    issuance = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    members = [open_member() for _ in range(3)]
    saver = open_member(Unit.COIN_MINUTES)
    awards = [
        TransferRequest(
            c,
            "award",
            (Posting(issuance, Unit.POINTS, -(i + 1)), Posting(m, Unit.POINTS, i + 1, expiry)),
            f"reads:{i}:{expiry}",
            effective_us=1_700_000_000_123_456 + i,
        )
        for i, m in enumerate(members)
        for expiry in (None, 1_900_000_000_654_321 + i)
    ]
    ledger.post_batch(awards)
    ids = sorted([*members, saver, issuance])
    claim = ("new-key,used-key", "00" * 32 + "," + "11" * 32, f"{uuid.uuid4()},{uuid.uuid4()}")
    ledger.post_batch(
        [
            TransferRequest(
                c,
                "award",
                (Posting(issuance, Unit.POINTS, -1), Posting(members[0], Unit.POINTS, 1)),
                "used-key",
            )
        ]
    )
    with pool.connection() as conn:
        with conn.pipeline():
            one = conn.execute(bsql.GROUP_READS, (c, *claim, ids, [*members, issuance], 5))
        small = bsql.group_reads(one)
        conn.rollback()
        with conn.pipeline():
            claimed = [conn.execute(bsql.CLAIM_KEYS, (c, *claim))]
            queued = batch._queue_reads(conn, c, ids, [*members, issuance], 5)
        large = queued.fetch(claimed)
        conn.rollback()

    assert small.claimed == large.claimed == {"new-key"}
    assert small.origin == large.origin == community.origin
    assert small.accounts == large.accounts
    assert set(small.accounts) == set(ids)
    assert small.balances == large.balances
    assert set(small.balances) == {*members, saver}  # the hot issuance account has bucket rows only
    assert _sorted_lots(small) == _sorted_lots(large)
    assert sorted(len(lots) for lots in small.lots.values()) == [2, 2, 3]
    assert {lot.expires_at_us for lots in small.lots.values() for lot in lots} >= {
        None,
        1_900_000_000_654_321,
    }
    assert {lot.earned_us for lots in small.lots.values() for lot in lots} >= {1_700_000_000_123_456}


def test_an_unknown_community_has_no_origin(pool: ConnectionPool[Conn]) -> None:
    with pool.connection() as conn:
        reads = bsql.group_reads(conn.execute(bsql.GROUP_READS, (-1, "", "", "", [], [], 0)))
        conn.rollback()
    assert reads.origin is None
    assert (reads.claimed, reads.accounts, reads.balances, reads.lots) == (frozenset(), {}, {}, {})
