"""check_community reports each kind of tampering it is meant to catch, by index or id."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date, time

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ledger.domain.accounts import AccountFlags, AccountSpec, OwnerKind, SystemAccount
from ledger.domain.transfers import Phase, Posting, ResolveRequest, ReverseRequest, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.invariants import check_community
from ledger.services.ledger import Ledger
from ledger.store.db import Conn
from tests.integration.service_world import make_world

# ------------------------------------------------------------------------------- tampering
# Each test edits committed rows as the superuser with triggers off, inside a transaction that is
# rolled back, and checks that check_community names the problem (by index or id).


@pytest.fixture
def history(
    ledger: Ledger, community: CommunityInfo, open_member: Callable[..., uuid.UUID]
) -> dict[str, uuid.UUID]:
    """A small history: points issued and spent by a LOTS account, a coin pending left open."""
    c = community.community_id
    iss = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    sink = community.system_accounts[(SystemAccount.REDEMPTION_SINK, Unit.POINTS)]
    coin_iss = community.system_accounts[(SystemAccount.ISSUANCE, Unit.COIN_MINUTES)]
    person, coins = open_member(Unit.POINTS), open_member(Unit.COIN_MINUTES)
    award = ledger.transfer(
        TransferRequest(
            c, "award", (Posting(iss, Unit.POINTS, -100), Posting(person, Unit.POINTS, 100)), "t-award"
        )
    )
    spend = ledger.transfer(
        TransferRequest(
            c, "redeem", (Posting(person, Unit.POINTS, -40), Posting(sink, Unit.POINTS, 40)), "t-spend"
        )
    )
    ledger.transfer(
        TransferRequest(
            c,
            "coins",
            (Posting(coin_iss, Unit.COIN_MINUTES, -60), Posting(coins, Unit.COIN_MINUTES, 60)),
            "t-coins",
        )
    )
    held = ledger.transfer(
        TransferRequest(
            c,
            "hold",
            (Posting(coins, Unit.COIN_MINUTES, -20), Posting(coin_iss, Unit.COIN_MINUTES, 20)),
            "t-hold",
            phase=Phase.PENDING,
        )
    )
    return {
        "award": award.transfer_id,
        "spend": spend.transfer_id,
        "held": held.transfer_id,
        "person": person,
        "coins": coins,
    }


@pytest.fixture
def tamper(db_url: str) -> Iterator[Conn]:
    """A superuser connection inside a transaction with triggers off; rolled back afterwards."""
    with psycopg.connect(db_url) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        yield conn
        conn.rollback()


def _only(violations: list[str], *needles: str) -> None:
    assert violations, "the tampering went unnoticed"
    for needle in needles:
        assert any(needle in v for v in violations), (needle, violations)


def test_clean_history_has_no_violations(
    history: dict[str, uuid.UUID], community: CommunityInfo, owner: Conn
) -> None:
    assert check_community(owner, community.community_id) == []


def test_unknown_community_is_reported(owner: Conn) -> None:
    assert check_community(owner, 2**62) == [f"community {2**62} does not exist"]


def test_edited_posting_amount(history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn) -> None:
    c = community.community_id
    tamper.execute(
        "UPDATE posting SET amount = amount - 1 WHERE community_id = %s AND transfer_id = %s AND amount < 0",
        (c, history["spend"]),
    )
    found = check_community(tamper, c)
    _only(
        found,
        f"transfer {history['spend']}: points postings sum to -1",
        f"account {history['person']}",
        "postings differ from transfer",
    )


def test_edited_balance(history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn) -> None:
    c = community.community_id
    tamper.execute(
        "UPDATE balance SET posted = posted + 5 WHERE community_id = %s AND account_id = %s",
        (c, history["coins"]),
    )
    _only(check_community(tamper, c), f"account {history['coins']}: balance (posted")


def test_balance_below_floor(history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn) -> None:
    c = community.community_id
    tamper.execute("ALTER TABLE balance DROP CONSTRAINT balance_not_below_floor")
    tamper.execute(
        "UPDATE balance SET pending_out = pending_out + 1000 WHERE community_id = %s AND account_id = %s",
        (c, history["coins"]),
    )
    _only(check_community(tamper, c), f"account {history['coins']}: available -960 is below its floor 0")


def test_lot_remaining_edited(history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn) -> None:
    c = community.community_id
    tamper.execute("UPDATE lot SET remaining = remaining - 1 WHERE community_id = %s", (c,))
    _only(
        check_community(tamper, c),
        "lot ",
        "remaining 59 but amount 100 plus movements -40",
        f"account {history['person']}: lots hold 59 but available is 60",
    )


def test_running_balance_edited(
    history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn
) -> None:
    c = community.community_id
    tamper.execute(
        "UPDATE posting SET balance_after = 7 WHERE community_id = %s AND transfer_id = %s "
        "AND account_id = %s",
        (c, history["award"], history["person"]),
    )
    _only(check_community(tamper, c), f"account {history['person']}: posting of transfer {history['award']}")


def test_pending_released_without_resolution(
    history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn
) -> None:
    c = community.community_id
    tamper.execute(
        "UPDATE balance SET pending_out = 0 WHERE community_id = %s AND account_id = %s",
        (c, history["coins"]),
    )
    _only(
        check_community(tamper, c),
        f"account {history['coins']}: balance (posted, pending_in, pending_out, "
        "version) = (60, 0, 0, 2) but its postings give (60, 0, 20, 2 postings)",
    )


def test_leaf_bytes_edited_with_hash_fixed(
    history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn
) -> None:
    c = community.community_id
    tamper.execute(
        "UPDATE log_leaf SET leaf = convert_to(replace(convert_from(leaf, 'UTF8'), '\"redeem\"', "
        "'\"redeen\"'), 'UTF8') WHERE community_id = %s AND idx = 1",
        (c,),
    )
    tamper.execute(
        "UPDATE log_leaf SET leaf_hash = sha256('\\x00'::bytea || leaf) WHERE community_id = %s AND idx = 1",
        (c,),
    )
    found = check_community(tamper, c)
    _only(
        found,
        f"leaf 1: kind differ from transfer {history['spend']}",
        'leaf 2: "prev" is not the hash of the leaf before it',
    )


def test_leaf_stored_hash_edited(
    community: CommunityInfo, history: dict[str, uuid.UUID], tamper: Conn
) -> None:
    c = community.community_id
    tamper.execute(
        "UPDATE log_leaf SET leaf_hash = sha256('x'::bytea) WHERE community_id = %s AND idx = 0", (c,)
    )
    _only(check_community(tamper, c), "leaf 0: stored leaf_hash is not SHA-256")


def test_middle_leaf_deleted(history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn) -> None:
    c = community.community_id
    tamper.execute("DELETE FROM log_leaf WHERE community_id = %s AND idx = 2", (c,))
    _only(
        check_community(tamper, c),
        "leaf 3: expected index 2",
        "has 0 log leaves, not 1",
        "log head: size 4 but the log has 3 leaves",
    )


def test_non_canonical_leaf(history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn) -> None:
    c = community.community_id
    tamper.execute("UPDATE log_leaf SET leaf = leaf || ' '::bytea WHERE community_id = %s AND idx = 3", (c,))
    _only(check_community(tamper, c), "leaf 3: not a canonical leaf")


def test_log_head_rolled_back(history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn) -> None:
    c = community.community_id
    tamper.execute("UPDATE log_head SET size = 3 WHERE community_id = %s", (c,))
    _only(check_community(tamper, c), "log head: size 3 but the log has 4 leaves")


def test_reversal_that_is_not_a_mirror(
    history: dict[str, uuid.UUID], ledger: Ledger, community: CommunityInfo, tamper: Conn
) -> None:
    c = community.community_id
    reversal = ledger.reverse(ReverseRequest(c, history["spend"], "t-rev"))
    tamper.execute(
        "UPDATE posting SET amount = -amount WHERE community_id = %s AND transfer_id = %s",
        (c, reversal.transfer_id),
    )
    _only(
        check_community(tamper, c),
        f"reversal {reversal.transfer_id} is not the mirror of a posted transfer {history['spend']}",
    )


def test_violations_are_capped(
    history: dict[str, uuid.UUID], community: CommunityInfo, communities: Communities, tamper: Conn
) -> None:
    c = community.community_id
    for _ in range(60):
        spec = AccountSpec(
            OwnerKind.PERSON, Unit.COIN_MINUTES, AccountFlags.NON_NEGATIVE, owner_id=uuid.uuid4()
        )
        communities.open_account(c, spec)
    tamper.execute("UPDATE balance SET posted = posted + 1 WHERE community_id = %s", (c,))
    found = [v for v in check_community(tamper, c) if "balance (posted" in v or "equals postings" in v]
    assert len(found) == 51
    assert found[-1] == "balance equals postings: further violations not shown"


def test_resolving_a_pending_transfer_on_a_hot_account(
    ledger: Ledger, community: CommunityInfo, open_member: Callable[..., uuid.UUID], owner: Conn
) -> None:
    """An order holds points against the hot redemption sink, then is fulfilled or cancelled.

    Regression: a resolution once released the reservation in the bucket of its own transfer id, not
    the pending's, which pushed that bucket's pending totals below zero (a CheckViolation). With 4
    buckets that happened 3 times in 4, so 12 rounds catch it with certainty in practice.
    """
    c = community.community_id
    iss = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    sink = community.system_accounts[(SystemAccount.REDEMPTION_SINK, Unit.POINTS)]
    person = open_member(Unit.POINTS)
    ledger.transfer(
        TransferRequest(
            c, "award", (Posting(iss, Unit.POINTS, -1000), Posting(person, Unit.POINTS, 1000)), "award"
        )
    )
    for i in range(12):
        held = ledger.transfer(
            TransferRequest(
                c,
                "order",
                (Posting(person, Unit.POINTS, -10), Posting(sink, Unit.POINTS, 10)),
                f"order-{i}",
                phase=Phase.PENDING,
            )
        )
        phase = Phase.POST if i % 2 else Phase.VOID
        ledger.resolve(ResolveRequest(c, held.transfer_id, phase, f"resolve-{i}"))
    sink_balance = ledger.balance(c, sink)
    assert (sink_balance.posted, sink_balance.pending_in) == (60, 0)
    assert check_community(owner, c) == []


def test_check_runs_in_its_own_snapshot_and_leaves_the_connection_idle(
    history: dict[str, uuid.UUID], community: CommunityInfo, db_url: str
) -> None:
    """On an idle transactional connection (any row factory) the check opens and ends its own snapshot."""
    with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as conn:
        assert check_community(conn, community.community_id) == []
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_head_mismatch_is_reported_past_the_cap(
    ledger: Ledger, community: CommunityInfo, open_member: Callable[..., uuid.UUID], tamper: Conn
) -> None:
    c = community.community_id
    iss = community.system_accounts[(SystemAccount.ISSUANCE, Unit.SCORE_POINTS)]
    household = open_member(Unit.SCORE_POINTS)
    for i in range(55):
        postings = (Posting(iss, Unit.SCORE_POINTS, -1), Posting(household, Unit.SCORE_POINTS, 1))
        ledger.transfer(TransferRequest(c, "score", postings, f"s-{i}"))
    tamper.execute("UPDATE log_leaf SET leaf_hash = sha256('x'::bytea) WHERE community_id = %s", (c,))
    tamper.execute("UPDATE log_head SET size = 54, last_hash = sha256('x') WHERE community_id = %s", (c,))
    found = [v for v in check_community(tamper, c) if v.startswith(("leaf", "log"))]
    assert len(found) == 50 + 1 + 2
    assert found[50] == "log chain: further violations not shown"
    assert found[51:] == [
        "log head: size 54 but the log has 55 leaves, the last at index 54",
        "log head: last_hash is not the hash of the last leaf",
    ]


@pytest.mark.parametrize(
    ("statement", "needle"),
    [
        ("DELETE FROM transfer WHERE community_id = %s AND kind = 'coins'", "refers to a transfer"),
        ("DELETE FROM account WHERE community_id = %s AND account_id = %s", "refers to an account"),
        ("DELETE FROM lot WHERE community_id = %s", "lot_movement"),
        ("UPDATE lot SET seq = 7 WHERE community_id = %s", "refers to a posting"),
    ],
    ids=["transfer", "account", "lot", "lot-posting"],
)
def test_broken_reference(
    history: dict[str, uuid.UUID], community: CommunityInfo, tamper: Conn, statement: str, needle: str
) -> None:
    """The append-only tables have no row foreign keys (migration 0003); the checker stands in."""
    c = community.community_id
    params: tuple[object, ...] = (c, history["coins"]) if statement.count("%s") == 2 else (c,)
    if "account" in statement:
        tamper.execute("DELETE FROM balance WHERE community_id = %s AND account_id = %s", params)
    tamper.execute(statement, params)
    _only(check_community(tamper, c), needle)


@pytest.mark.parametrize(
    ("statement", "needle"),
    [
        ("DELETE FROM service_record WHERE community_id = %s", "refers to a service_record"),
        (
            "UPDATE service_record SET person_id = gen_random_uuid() WHERE community_id = %s",
            "refers to a person",
        ),
        (
            "UPDATE service_record SET activity_id = gen_random_uuid() WHERE community_id = %s",
            "refers to an activity",
        ),
    ],
    ids=["event-record", "record-person", "record-activity"],
)
def test_broken_service_record_reference(
    pool: ConnectionPool[Conn],
    owner: Conn,
    ledger: Ledger,
    communities: Communities,
    community: CommunityInfo,
    tamper: Conn,
    statement: str,
    needle: str,
) -> None:
    """Service records and their events have no row foreign keys either (migration 0013)."""
    w = make_world(pool, owner, ledger, communities, community)
    volunteer, activity = w.person(), w.activity(date(2025, 3, 3), date(2025, 3, 7))
    w.posted(volunteer, activity, date(2025, 3, 5), time(9), time(11))
    c = community.community_id
    assert check_community(tamper, c) == []
    tamper.execute(statement, (c,))
    _only(check_community(tamper, c), needle)
