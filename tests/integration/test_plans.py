"""The posting path's reads look each account up by primary key, whatever the statistics say.

A community created or grown since the last ANALYZE is estimated at about one row. With
``community_id = c AND account_id = ANY(ids)`` the planner then scanned the community's rows and
filtered them; the hot-bucket lock became a nested loop over every balance row times every account
(~280 ms for a thousand accounts). Here the statistics are taken before the community exists, the
community then gets its accounts, and each statement's plan must reach account, balance and lot
rows through an index condition on the account id.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from ledger.domain.accounts import AccountSpec, OwnerKind, SystemAccount, member_account_flags
from ledger.domain.times import to_us
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.ledger import Ledger
from ledger.store import accounts_repo, batch_repo, ledger_repo
from ledger.store.db import Conn

OWNED = "SELECT account_id FROM account WHERE community_id = %s AND owner_kind = 'person'"
TABLES = {"account", "balance", "lot"}
STATEMENTS = {
    "accounts": (ledger_repo.ACCOUNTS, {}),
    "balance locks": (ledger_repo.LOCK_BALANCES, {}),
    "open lots": (ledger_repo.OPEN_LOTS, {}),
    "hot bucket locks": (batch_repo.LOCK_HOT_BUCKETS, {"bucket": 3}),
    "balance reads": (accounts_repo.ACCOUNTS_BY_ID, {}),
}


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The plan node and every node below it."""
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every plan node that reads one of TABLES (a bitmap heap scan with its index scans below)."""
    return (n for n in _nodes(node) if n.get("Relation Name") in TABLES)


def _by_account(node: dict[str, Any]) -> bool:
    conditions = [node.get("Index Cond", ""), node.get("Recheck Cond", "")]
    conditions += [child.get("Index Cond", "") for child in node.get("Plans", [])]
    return any("account_id = " in c for c in conditions)


def _member(unit: Unit = Unit.POINTS) -> AccountSpec:
    return AccountSpec(OwnerKind.PERSON, unit, member_account_flags(unit), owner_id=uuid.uuid4())


@pytest.fixture(scope="module")
def grown_after_analyze(
    db_url: str, communities: Communities, ledger: Ledger, region_id: int
) -> tuple[CommunityInfo, list[uuid.UUID]]:
    """A community of 300 members, all opened after the last ANALYZE, which saw another community
    of 3,000 members with a lot each: the tables are no longer small, and the statistics know
    nothing of this community."""
    older = communities.create_community(region_id, f"c-{uuid.uuid4().hex[:12]}", "老社区")
    issuance = older.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    expires_at_us = to_us(datetime.now(UTC) + timedelta(days=365))
    with psycopg.connect(db_url, autocommit=True) as conn:
        communities.open_missing(conn, older.community_id, [_member() for _ in range(3000)])
        filler = [r[0] for r in conn.execute(OWNED, (older.community_id,))]
        awards = [
            TransferRequest(
                older.community_id,
                "plan_test_award",
                (Posting(issuance, Unit.POINTS, -1), Posting(m, Unit.POINTS, 1, expires_at_us=expires_at_us)),
                f"plans-{m}",
            )
            for m in filler
        ]
        ledger.post_batch(awards)
        conn.execute("ANALYZE account, balance, lot")
    community = communities.create_community(region_id, f"c-{uuid.uuid4().hex[:12]}", "新社区")
    members = [communities.open_account(community.community_id, _member()) for _ in range(300)]
    return community, members


@pytest.mark.parametrize("name", list(STATEMENTS))
def test_each_account_is_looked_up_by_its_key(
    owner: Conn, grown_after_analyze: tuple[CommunityInfo, list[uuid.UUID]], name: str
) -> None:
    community, members = grown_after_analyze
    statement, extra = STATEMENTS[name]
    ids = [*members[:8], community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]]
    params = {"c": community.community_id, "a": ids, **extra}
    row = owner.execute("EXPLAIN (FORMAT JSON) " + statement, params).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    scans = list(_scans(plan[0]["Plan"]))
    assert scans, plan
    unkeyed = [(s["Node Type"], s["Relation Name"]) for s in scans if not _by_account(s)]
    assert not unkeyed, json.dumps(plan, indent=1)


def test_repeated_ids_answer_once_in_account_order(
    owner: Conn, grown_after_analyze: tuple[CommunityInfo, list[uuid.UUID]]
) -> None:
    community, members = grown_after_analyze
    ids = members[:5]
    params = {"c": community.community_id, "a": [*reversed(ids), *ids]}
    assert [r[0] for r in owner.execute(ledger_repo.ACCOUNTS, params)] == sorted(ids)
    locked = [r[0] for r in owner.execute(ledger_repo.LOCK_BALANCES, params)]
    assert locked == sorted(ids)
    assert [r[0] for r in owner.execute(accounts_repo.ACCOUNTS_BY_ID, params)] == sorted(ids)


def _logged_plans(conn: Conn, run: Callable[[], object]) -> list[str]:
    """The plans of the statements ``run`` makes ``conn`` execute, nested ones included, as
    auto_explain logs them."""
    plans: list[str] = []

    def logged(notice: psycopg.errors.Diagnostic) -> None:
        plans.append(notice.message_primary or "")

    conn.add_notice_handler(logged)
    conn.execute("LOAD 'auto_explain'")
    for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_level = notice"):
        conn.execute(f"SET auto_explain.{setting}")
    try:
        run()
    finally:
        conn.execute("SET auto_explain.log_min_duration = -1")
        conn.remove_notice_handler(logged)
    return plans


def _probes_by_key_generically(plan: str) -> None:
    """Each account, balance and lot row of a generic plan (the community a parameter, $n) is
    reached by an index condition on the account id."""
    assert "Seq Scan" not in plan, plan
    for table in ("account", "balance", "lot"):
        if any(f" on {table} " in line for line in plan.splitlines()):
            assert re.search(r"\(community_id = \$\d+\) AND \(account_id = ", plan), plan


def test_the_group_reads_generic_plans_look_each_account_up_by_key(
    owner: Conn, grown_after_analyze: tuple[CommunityInfo, list[uuid.UUID]]
) -> None:
    """vledger_group_reads plans its statements once per connection (generic plans, migration
    0016); with the statistics blind to the community, those plans must still reach each account,
    balance and lot row through an index condition on the account id."""
    community, members = grown_after_analyze
    issuance = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    config = owner.execute(
        "SELECT proconfig FROM pg_proc WHERE oid = 'vledger_group_reads(bigint, text, text, text, uuid[],"
        " uuid[], integer)'::regprocedure"
    ).fetchone()
    assert config == (["plan_cache_mode=force_generic_plan"],)
    claim = ("plan-key", "00" * 32, str(uuid.uuid4()))
    params = (community.community_id, *claim, [*members[:8], issuance], [issuance, *members[:2]], 3)
    lines: list[str] = []

    def read() -> None:
        with owner.transaction(force_rollback=True):
            lines.extend(r[0] for r in owner.execute(batch_repo.GROUP_READS, params))

    plans = _logged_plans(owner, read)
    assert sum(line.startswith("b") for line in lines) == 8  # the members' balance rows, locked
    nested = [p for p in plans if "vledger_group_reads" not in p]
    assert len(nested) == 6, plans  # claims, origin, accounts, balances, lots, hot buckets
    for plan in nested:
        _probes_by_key_generically(plan)


@pytest.mark.parametrize("statement", [accounts_repo.ACCOUNT, accounts_repo.ACCOUNTS_BY_ID])
def test_the_balance_reads_generic_plans_look_each_account_up_by_key(
    owner: Conn, grown_after_analyze: tuple[CommunityInfo, list[uuid.UUID]], statement: str
) -> None:
    """The asyncio read pool (balance reads) plans each statement once per connection; both of its
    statements' generic plans probe by key."""
    community, members = grown_after_analyze
    many = statement is accounts_repo.ACCOUNTS_BY_ID
    params = {"c": community.community_id, "a": members[:4] if many else members[0]}
    rows: list[tuple[Any, ...]] = []

    def read() -> None:
        owner.execute("SET plan_cache_mode = force_generic_plan")
        try:
            rows.extend(owner.execute(statement, params, prepare=True).fetchall())
        finally:
            owner.execute("RESET plan_cache_mode")

    plans = [p for p in _logged_plans(owner, read) if "plan_cache_mode" not in p]
    assert sorted(r[0] for r in rows) == sorted(members[:4] if many else members[:1])
    assert len(plans) == 1, plans
    _probes_by_key_generically(plans[0])


def test_the_group_writes_balance_rows_are_probed_by_key(
    owner: Conn, grown_after_analyze: tuple[CommunityInfo, list[uuid.UUID]]
) -> None:
    """vledger_write_group updates a group's balance rows with one statement (migration 0017): each
    row found by its key and updated through its tuple id, never a join over the community's rows,
    with the statistics blind to the community. Run with nothing else to write, and rolled back."""
    community, members = grown_after_analyze
    rows = owner.execute(
        "SELECT account_id, posted, pending_in, pending_out, version + 1 FROM balance"
        " WHERE community_id = %s AND account_id = ANY(%s) AND bucket = 0 ORDER BY account_id",
        (community.community_id, members[:8]),
    ).fetchall()
    balances = "".join("\t".join(map(str, r)) + "\n" for r in rows)
    write = "SELECT first_index FROM vledger_write_group(%s, '', '', '', '', %s, '', '', '')"
    versions: list[int] = []

    def run() -> None:
        with owner.transaction(force_rollback=True):
            owner.execute(write, (community.community_id, balances))
            versions.extend(
                r[0]
                for r in owner.execute(
                    "SELECT version FROM balance WHERE community_id = %s AND account_id = ANY(%s)"
                    " AND bucket = 0 ORDER BY account_id",
                    (community.community_id, members[:8]),
                )
            )

    plans = _logged_plans(owner, run)
    assert versions == [r[4] for r in rows]  # every row written
    (update,) = [p for p in plans if "UPDATE balance b" in p]
    assert "Seq Scan" not in update and "Hash" not in update and "Merge" not in update, update
    assert "Tid Scan on balance b" in update, update
    _probes_by_key_generically(update)
