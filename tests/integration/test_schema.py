"""The migrated schema: tenancy keys lead with community_id, it matches the SQLModel tables, ledger
rows are immutable for the runtime role and the owner alike, and the runtime role cannot change the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from psycopg import errors as pg_errors
from psycopg import sql
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    pool,
)
from sqlmodel.sql.sqltypes import AutoString

from ledger.domain.accounts import SystemAccount
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import CommunityInfo
from ledger.services.ledger import Ledger
from ledger.store import schema as tables
from ledger.store.db import APP_ROLE, Conn, RuntimeRoleError, app_conninfo, open_pool, sqlalchemy_url

IMMUTABLE = ("transfer", "posting", "lot_movement", "log_leaf")
# Alembic's own bookkeeping table is not ledger data.
NOT_LEDGER = tables.REFERENCE_TABLES | {"alembic_version"}


# ------------------------------------------------------------------------------------ (a) tenancy


def metadata_tenancy_violations(metadata: MetaData, exempt: frozenset[str] | set[str]) -> list[str]:
    """Keys of distributed tables must lead with community_id (the distribution column)."""
    out: list[str] = []
    for table in metadata.sorted_tables:
        if table.name in exempt:
            continue
        if "community_id" not in table.c:
            out.append(f"{table.name}: no community_id column")
            continue
        pk = [c.name for c in table.primary_key.columns]
        if pk[:1] != ["community_id"]:
            out.append(f"{table.name}: primary key {pk}")
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint):
                cols = [c.name for c in constraint.columns]
                if cols[:1] != ["community_id"]:
                    out.append(f"{table.name}: unique {constraint.name} {cols}")
            elif isinstance(constraint, ForeignKeyConstraint):
                local = [c.name for c in constraint.columns]
                remote = [e.column.name for e in constraint.elements]
                if local[:1] != ["community_id"] or remote[:1] != ["community_id"]:
                    out.append(
                        f"{table.name}: foreign key {local} -> {constraint.referred_table.name} {remote}"
                    )
        for index in table.indexes:
            cols = [getattr(e, "name", str(e)) for e in index.expressions]
            if index.unique and cols[:1] != ["community_id"]:
                out.append(f"{table.name}: unique index {index.name} {cols}")
    return out


_CATALOG_KEYS = """
SELECT r.relname, c.conname, c.contype, a.attname, fa.attname
FROM pg_constraint c
JOIN pg_class r ON r.oid = c.conrelid
JOIN pg_namespace n ON n.oid = r.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
LEFT JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
WHERE n.nspname = 'public' AND c.contype IN ('p', 'u', 'f') AND r.relkind IN ('r', 'p')
UNION ALL
SELECT t.relname, i.relname, 'i', a.attname, NULL
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
WHERE n.nspname = 'public' AND x.indisunique
"""
_CATALOG_TABLES = """
SELECT r.relname, bool_or(a.attname = 'community_id') FROM pg_class r
JOIN pg_namespace n ON n.oid = r.relnamespace
JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = 'public' AND r.relkind IN ('r', 'p')
GROUP BY r.relname
"""


def catalog_tenancy_violations(conn: Conn) -> list[str]:
    """The same rule on the live catalog: primary keys, unique constraints and indexes, foreign keys."""
    out = [
        f"{name}: no community_id column"
        for name, has in conn.execute(_CATALOG_TABLES).fetchall()
        if name not in NOT_LEDGER and not has
    ]
    for table, name, kind, first, referenced_first in conn.execute(_CATALOG_KEYS).fetchall():
        if table in NOT_LEDGER:
            continue
        if first != "community_id" or (kind == "f" and referenced_first != "community_id"):
            out.append(f"{table}: {kind} {name} leads with {first} (references {referenced_first})")
    return out


def test_models_lead_every_key_with_community_id() -> None:
    assert metadata_tenancy_violations(tables.metadata, tables.REFERENCE_TABLES) == []


def test_migrated_catalog_leads_every_key_with_community_id(owner: Conn) -> None:
    assert catalog_tenancy_violations(owner) == []
    # Every ledger table of the models is in the catalog, so the walk above covered them all.
    names = {r[0] for r in owner.execute(_CATALOG_TABLES).fetchall()}
    assert set(tables.metadata.tables) <= names


def test_tenancy_rule_catches_a_forgotten_community_id() -> None:
    """The rule is not vacuous: a table keyed without community_id first is reported, every way."""
    md = MetaData()
    Table(
        "parent",
        md,
        Column("community_id", BigInteger, primary_key=True),
        Column("id", BigInteger, primary_key=True),
    )
    Table(
        "bad",
        md,
        Column("id", BigInteger, primary_key=True),
        Column("community_id", BigInteger, primary_key=True),
        Column("code", Text),
        Column("parent_id", BigInteger),
        UniqueConstraint("code", "community_id", name="bad_code_uq"),
        ForeignKeyConstraint(["parent_id", "community_id"], ["parent.id", "parent.community_id"]),
        Index("bad_idx", "code", unique=True),
    )
    Table("loose", md, Column("id", BigInteger, primary_key=True))
    found = metadata_tenancy_violations(md, set())
    assert any(v.startswith("bad: primary key") for v in found)
    assert any("bad_code_uq" in v for v in found)
    assert any("foreign key" in v for v in found)
    assert any("bad_idx" in v for v in found)
    assert "loose: no community_id column" in found


def test_catalog_rule_catches_a_migration_that_forgets_it(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        try:
            conn.execute(
                "CREATE TABLE forgetful (id bigint PRIMARY KEY, community_id bigint NOT NULL, code text)"
            )
            conn.execute("CREATE UNIQUE INDEX forgetful_code ON forgetful (code, community_id)")
            conn.execute("CREATE TABLE keyless (id bigint PRIMARY KEY)")
            found = catalog_tenancy_violations(conn)
        finally:
            conn.rollback()
    assert "keyless: no community_id column" in found
    assert any(v.startswith("forgetful: p forgetful_pkey leads with id") for v in found)
    assert any(v.startswith("forgetful: i forgetful_code leads with code") for v in found)


# -------------------------------------------------------------------- (b) migrations match models


def _is_noise(diff: Any) -> bool:
    """SQLModel maps ``str`` to AutoString, a VARCHAR without length; the migration says TEXT. On
    PostgreSQL the two are the same type in all but name (same storage, no length limit, same
    operators), so this one type pair is ignored; any other type difference is reported."""
    return (
        isinstance(diff, list)
        and len(diff) == 1
        and diff[0][0] == "modify_type"
        and isinstance(diff[0][5], Text)
        and isinstance(diff[0][6], AutoString)
        and diff[0][6].length is None
    )


def _describe(diff: Any) -> tuple[str, ...]:
    """A diff as (op, table, column) strings, stable enough to compare with the known list."""
    item = diff[0] if isinstance(diff, list) else diff
    op = item[0]
    if op in ("modify_type", "modify_default", "modify_nullable"):
        return (op, item[2], item[3])
    return (op, str(item[1]))


@pytest.fixture
def schema_diff(db_url: str) -> Iterator[list[tuple[str, ...]]]:
    engine = create_engine(sqlalchemy_url(db_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diffs = compare_metadata(context, tables.metadata)
        yield [_describe(d) for d in diffs if not _is_noise(d)]
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(schema_diff: list[tuple[str, ...]]) -> None:
    """Tables, columns, types, nullability, server defaults, indexes, unique and foreign keys."""
    assert schema_diff == []


# ------------------------------------------------------------------------------- (c) immutability


@pytest.fixture
def history(ledger: Ledger, community: CommunityInfo, open_member: Any) -> int:
    """Rows in every immutable table: an award creates a lot, a spend moves it (lot_movement)."""
    c = community.community_id
    iss = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    sink = community.system_accounts[(SystemAccount.REDEMPTION_SINK, Unit.POINTS)]
    person = open_member(Unit.POINTS)
    ledger.transfer(
        TransferRequest(c, "award", (Posting(iss, Unit.POINTS, -50), Posting(person, Unit.POINTS, 50)), "a")
    )
    ledger.transfer(
        TransferRequest(c, "redeem", (Posting(person, Unit.POINTS, -20), Posting(sink, Unit.POINTS, 20)), "r")
    )
    return c


@pytest.fixture
def runtime(db_url: str) -> Iterator[Conn]:
    with psycopg.connect(app_conninfo(db_url)) as conn:
        yield conn
        conn.rollback()


@pytest.fixture
def superuser(db_url: str) -> Iterator[Conn]:
    """The owner, a superuser: privileges do not stop it, only the triggers do. Always rolled back."""
    with psycopg.connect(db_url) as conn:
        yield conn
        conn.rollback()


def _sql(template: str, table: str) -> sql.Composed:
    """``template`` with ``{t}`` replaced by the quoted table name."""
    return sql.SQL(template).format(t=sql.Identifier(table))


def _denied(conn: Conn, statement: str | sql.Composed, params: tuple[Any, ...] = ()) -> str:
    try:
        with pytest.raises(pg_errors.InsufficientPrivilege) as exc_info:
            conn.execute(statement, params)
    finally:
        conn.rollback()
    return str(exc_info.value)


@pytest.mark.parametrize("table", IMMUTABLE)
def test_runtime_role_cannot_change_ledger_rows(runtime: Conn, history: int, table: str) -> None:
    assert runtime.execute("SELECT current_user").fetchone() == (APP_ROLE,)
    count = runtime.execute(
        _sql("SELECT count(*) FROM {t} WHERE community_id = %s", table), (history,)
    ).fetchone()
    assert count is not None and count[0] > 0
    runtime.rollback()
    for statement in (
        "UPDATE {t} SET community_id = community_id WHERE community_id = %s",
        "DELETE FROM {t} WHERE community_id = %s",
    ):
        assert f"permission denied for table {table}" in _denied(runtime, _sql(statement, table), (history,))
    assert f"permission denied for table {table}" in _denied(runtime, _sql("TRUNCATE {t}", table))


@pytest.mark.parametrize("table", IMMUTABLE)
def test_triggers_stop_even_the_owner(superuser: Conn, history: int, table: str) -> None:
    for statement, op in (
        ("UPDATE {t} SET community_id = community_id WHERE community_id = %s", "UPDATE"),
        ("DELETE FROM {t} WHERE community_id = %s", "DELETE"),
    ):
        message = _denied(superuser, _sql(statement, table), (history,))
        assert f"ledger table {table} is append-only: {op}" in message
    # CASCADE gets past the foreign keys that would otherwise refuse first; the named table's
    # trigger fires first. The transaction is rolled back whatever happens.
    assert f"ledger table {table} is append-only: TRUNCATE" in _denied(
        superuser, _sql("TRUNCATE {t} CASCADE", table)
    )
    assert superuser.execute(
        _sql("SELECT count(*) > 0 FROM {t} WHERE community_id = %s", table), (history,)
    ).fetchone() == (True,)


@pytest.mark.parametrize("conn_fixture", ["runtime", "superuser"])
def test_lot_amount_is_fixed_but_remaining_may_change(
    request: pytest.FixtureRequest, history: int, conn_fixture: str
) -> None:
    conn: Conn = request.getfixturevalue(conn_fixture)
    for statement in (
        "UPDATE lot SET amount = amount + 1 WHERE community_id = %s",
        "UPDATE lot SET earned_at = earned_at - interval '1 day' WHERE community_id = %s",
        "UPDATE lot SET expires_at = now() WHERE community_id = %s",
        "UPDATE lot SET account_id = gen_random_uuid() WHERE community_id = %s",
    ):
        message = _denied(conn, statement, (history,))
        assert "only lot.remaining may change" in message
    updated = conn.execute(
        "UPDATE lot SET remaining = remaining - 1 WHERE community_id = %s AND remaining > 0", (history,)
    )
    assert updated.rowcount == 1
    conn.rollback()
    # A lot is never deleted: the runtime role has no DELETE grant, and the trigger stops the owner.
    expected = "permission denied for table lot" if conn_fixture == "runtime" else "append-only: DELETE"
    assert expected in _denied(conn, "DELETE FROM lot WHERE community_id = %s", (history,))


def test_runtime_role_privileges(owner: Conn) -> None:
    """What the runtime role may do, table by table: it deletes and truncates nothing, and updates only
    balances, log heads, lots (their remaining) and an idempotency key's outcome."""
    rows = owner.execute(
        """
        SELECT c.relname,
               array_remove(ARRAY[
                   CASE WHEN has_table_privilege(%(r)s, c.oid, 'SELECT') THEN 'SELECT' END,
                   CASE WHEN has_table_privilege(%(r)s, c.oid, 'INSERT') THEN 'INSERT' END,
                   CASE WHEN has_table_privilege(%(r)s, c.oid, 'UPDATE') THEN 'UPDATE' END,
                   CASE WHEN has_table_privilege(%(r)s, c.oid, 'DELETE') THEN 'DELETE' END,
                   CASE WHEN has_table_privilege(%(r)s, c.oid, 'TRUNCATE') THEN 'TRUNCATE' END,
                   CASE WHEN has_table_privilege(%(r)s, c.oid, 'REFERENCES') THEN 'REFERENCES' END,
                   CASE WHEN has_table_privilege(%(r)s, c.oid, 'TRIGGER') THEN 'TRIGGER' END], NULL)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'alembic_version'
        """,
        {"r": APP_ROLE},
    ).fetchall()
    granted = {name: set(privs) for name, privs in rows}
    append_only = {"SELECT", "INSERT"}
    assert granted == {
        "region": append_only,
        "community": append_only,
        "account": append_only,
        "transfer": append_only,
        "posting": append_only,
        "lot_movement": append_only,
        "log_leaf": append_only,
        "idempotency": append_only,
        "balance": append_only | {"UPDATE"},
        "log_head": append_only | {"UPDATE"},
        "lot": append_only | {"UPDATE"},
        # People and identity (migration 0004): column-level UPDATE grants are checked below.
        "app_user": append_only,
        "auth_token": append_only,
        "role_grant": append_only,
        "person": append_only | {"UPDATE"},
        "person_key": append_only | {"UPDATE", "DELETE"},  # deleting a data key shreds a person
        "household": append_only,
        "household_member": append_only,
        "household_event": append_only,
        "community_setting": append_only,
        "api_idempotency": append_only | {"DELETE"},
        "person_event": append_only,
        "log_node": append_only,
        "log_tree": append_only,
        "log_checkpoint": append_only,  # a request that fails unexpectedly frees its key
        # Service records (migration 0009): column-level UPDATE grants are checked below.
        "activity": append_only,
        "service_record": append_only,
        "service_record_event": append_only,
        "service_correction": append_only,
        # Time bank (migration 0010): column-level UPDATE grants are checked below.
        "timebank_exchange": append_only,
        "timebank_exchange_event": append_only,
        "person_relation": append_only,
        "hardship_flag": append_only,
        "region_cross_community_event": append_only,
        # Certificates (migration 0011): append-only; the status is derived from supersessions.
        "certificate": append_only,
        "certificate_supersession": append_only,
        # Points supermarket (migration 0012): column-level UPDATE grants are checked below.
        "shop_item": append_only,
        "shop_order": append_only,
        "shop_stock_movement": append_only,
        "shop_order_event": append_only,
    }
    column_updates = owner.execute(
        """
        SELECT c.relname, array_agg(a.attname::text ORDER BY a.attname)
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
        WHERE c.relname IN ('app_user', 'auth_token', 'role_grant', 'household', 'household_member',
                            'api_idempotency', 'log_tree', 'log_checkpoint', 'service_record',
                            'service_correction', 'region', 'timebank_exchange', 'person_relation',
                            'hardship_flag', 'shop_item', 'shop_order')
          AND has_column_privilege(%s, c.oid, a.attnum, 'UPDATE')
        GROUP BY c.relname
        """,
        (APP_ROLE,),
    ).fetchall()
    assert dict(column_updates) == {
        "app_user": ["disabled", "password_hash"],
        "auth_token": ["revoked_at"],
        "role_grant": ["revoked_at", "revoked_by"],
        "household": ["dissolved_at", "grid", "village_group"],
        "household_member": ["is_head", "valid_to"],
        "api_idempotency": ["response", "status_code"],
        "log_tree": ["root", "size"],
        "log_checkpoint": ["note", "signed_at"],
        "service_record": sorted(
            [
                "state",
                "submitted_by",
                "submitted_at",
                "verified_by",
                "verified_at",
                "posted_by",
                "posted_at",
                "rejected_by",
                "rejected_at",
                "rejection_reason",
                "override_by",
                "override_at",
                "override_reason",
                "overdue",
                "settings_version",
                "transfer_id",
                "credited_minutes",
                "credited_points",
                "earned_coin_minutes",
                "credited_coin_minutes",
                "pool_coin_minutes",
            ]
        ),
        "service_correction": sorted(
            [
                "state",
                "decided_by",
                "decided_at",
                "rejection_reason",
                "attempt",
                "reversal_transfer_id",
                "new_transfer_id",
                "previous_credited_minutes",
                "credited_minutes",
            ]
        ),
        "region": ["cross_community"],  # the switch for cross-community exchange (通存通兑)
        "timebank_exchange": sorted(
            [
                "state",
                "provider_community_id",
                "provider_person_id",
                "served_minutes",
                "charged_coin_minutes",
                "credited_coin_minutes",
                "pool_coin_minutes",
                "release_transfer_id",
                "payment_transfer_id",
                "credit_transfer_id",
                "resolution",
                "matched_at",
                "started_at",
                "confirmed_at",
                "disputed_at",
                "resolved_at",
                "settled_at",
                "cancelled_at",
            ]
        ),
        "person_relation": ["ended_at", "ended_by"],
        "hardship_flag": ["revoked_at", "revoked_by"],
        # Points supermarket (migration 0012): catalog terms and stock counters; an order's state
        # and what closed it (its terms are fixed, and a trigger lets the state move once).
        "shop_item": sorted(
            [
                "name",
                "description",
                "price_points",
                "reference_value_fen",
                "funding_source",
                "pickup_point",
                "limit_scope",
                "limit_quantity",
                "limit_period",
                "once_per_period",
                "min_household_score_points",
                "active_from",
                "active_until",
                "active",
                "stock_available",
                "stock_reserved",
                "updated_at",
            ]
        ),
        "shop_order": sorted(
            ["state", "resolve_transfer_id", "expiry_transfer_id", "expired_points", "closed_at", "closed_by"]
        ),
    }
    columns = owner.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'idempotency'::regclass AND attnum > 0 "
        "AND has_column_privilege(%s, 'idempotency'::regclass, attnum, 'UPDATE') ORDER BY attname",
        (APP_ROLE,),
    ).fetchall()
    assert [c[0] for c in columns] == ["error", "transfer_id"]


# ------------------------------------------------------------------------------- (d) schema changes


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE sneaky (id int)",
        "CREATE VIEW sneaky AS SELECT 1",
        "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE SCHEMA sneaky",
        "ALTER TABLE transfer ADD COLUMN sneaky int",
        "ALTER TABLE posting DISABLE TRIGGER posting_append_only",
        "ALTER TABLE balance DROP CONSTRAINT balance_not_below_floor",
        "DROP TRIGGER log_leaf_append_only ON log_leaf",
        "DROP TABLE log_leaf",
        "CREATE INDEX sneaky ON posting (amount)",
        "ALTER TABLE transfer OWNER TO vledger_app",
        "SET session_replication_role = replica",
    ],
)
def test_runtime_role_cannot_change_the_schema(runtime: Conn, statement: str) -> None:
    _denied(runtime, statement)


def test_runtime_session_cannot_take_back_the_owner_role(runtime: Conn) -> None:
    session_user = runtime.execute("SELECT session_user").fetchone()
    assert session_user is not None
    assert session_user[0] == APP_ROLE
    _denied(runtime, "SET ROLE postgres")
    _denied(runtime, "SET SESSION AUTHORIZATION postgres")


def test_open_pool_refuses_a_connection_that_is_not_the_runtime_role(db_url: str) -> None:
    with pytest.raises(RuntimeRoleError):
        open_pool(db_url, app_url=db_url, min_size=1, max_size=1, name="owner-as-runtime")
