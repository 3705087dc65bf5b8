"""SQLModel mirrors of the ledger schema (migrations create it; a test checks the two agree).

Ledger tables lead every primary, unique and foreign key with ``community_id`` so that the schema can
be distributed by community; ``REFERENCE_TABLES`` are the exceptions (replicated, not distributed).
The hot write paths use SQL in ``ledger.store.ledger_repo`` and ``batch_repo``; these models serve
reads and tooling. The append-only tables have no per-row foreign keys (migration 0003); the
invariant checker verifies their references.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    LargeBinary,
    SmallInteger,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata

REFERENCE_TABLES = frozenset({"region", "community"})


def _big(**kw: Any) -> Any:
    return Field(sa_type=BigInteger, **kw)


def _ts(nullable: bool = False, **kw: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), nullable=nullable, **kw)


class Region(SQLModel, table=True):
    __tablename__ = "region"
    region_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    code: str = Field(unique=True)
    name: str
    cross_community: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    created_at: datetime = _ts(sa_column_kwargs={"server_default": text("now()")})


class Community(SQLModel, table=True):
    __tablename__ = "community"
    community_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    region_id: int = _big(foreign_key="region.region_id")
    code: str = Field(unique=True)
    name: str
    origin: str = Field(unique=True)
    created_at: datetime = _ts(sa_column_kwargs={"server_default": text("now()")})


class Account(SQLModel, table=True):
    __tablename__ = "account"
    __table_args__ = (
        Index(
            "account_system_uq",
            "community_id",
            "code",
            "unit",
            unique=True,
            postgresql_where=text("owner_id IS NULL"),
        ),
        Index(
            "account_owner_uq",
            "community_id",
            "owner_kind",
            "owner_id",
            "unit",
            unique=True,
            postgresql_where=text("owner_id IS NOT NULL"),
        ),
    )
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    account_id: uuid.UUID = Field(primary_key=True)
    owner_kind: str
    owner_id: uuid.UUID | None = None
    code: str | None = None
    unit: str
    flags: int
    credit_limit: int = _big(default=0, sa_column_kwargs={"server_default": text("0")})
    buckets: int = Field(default=1, sa_type=SmallInteger, sa_column_kwargs={"server_default": text("1")})
    created_at: datetime = _ts(sa_column_kwargs={"server_default": text("now()")})


class Balance(SQLModel, table=True):
    __tablename__ = "balance"
    __table_args__ = (
        ForeignKeyConstraint(["community_id", "account_id"], ["account.community_id", "account.account_id"]),
    )
    community_id: int = _big(primary_key=True)
    account_id: uuid.UUID = Field(primary_key=True)
    bucket: int = Field(
        primary_key=True, sa_type=SmallInteger, sa_column_kwargs={"server_default": text("0")}
    )
    posted: int = _big(default=0, sa_column_kwargs={"server_default": text("0")})
    pending_in: int = _big(default=0, sa_column_kwargs={"server_default": text("0")})
    pending_out: int = _big(default=0, sa_column_kwargs={"server_default": text("0")})
    version: int = _big(default=0, sa_column_kwargs={"server_default": text("0")})
    floor: int | None = _big(default=None)


class Transfer(SQLModel, table=True):
    __tablename__ = "transfer"
    __table_args__ = (
        ForeignKeyConstraint(
            ["community_id", "reverses_id"], ["transfer.community_id", "transfer.transfer_id"]
        ),
        ForeignKeyConstraint(
            ["community_id", "pending_id"], ["transfer.community_id", "transfer.transfer_id"]
        ),
        Index(
            "transfer_reversed_once",
            "community_id",
            "reverses_id",
            unique=True,
            postgresql_where=text("reverses_id IS NOT NULL"),
        ),
        Index(
            "transfer_resolved_once",
            "community_id",
            "pending_id",
            unique=True,
            postgresql_where=text("pending_id IS NOT NULL"),
        ),
        Index(
            "transfer_pending_timeout",
            "community_id",
            "timeout_at",
            postgresql_where=text("timeout_at IS NOT NULL"),
        ),
    )
    community_id: int = _big(primary_key=True)
    transfer_id: uuid.UUID = Field(primary_key=True)
    kind: str
    phase: str
    effective_at: datetime = _ts()
    recorded_at: datetime = _ts()
    actor_id: uuid.UUID | None = None
    idempotency_key: str
    reverses_id: uuid.UUID | None = None
    pending_id: uuid.UUID | None = None
    timeout_at: datetime | None = _ts(nullable=True, default=None)
    metadata_: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )


class Posting(SQLModel, table=True):
    __tablename__ = "posting"
    __table_args__ = (Index("posting_by_account", "community_id", "account_id", "transfer_id"),)
    community_id: int = _big(primary_key=True)
    transfer_id: uuid.UUID = Field(primary_key=True)
    seq: int = Field(primary_key=True, sa_type=SmallInteger)
    account_id: uuid.UUID
    unit: str
    phase: str
    amount: int = _big()
    balance_after: int | None = _big(default=None)
    account_version: int | None = _big(default=None)
    expires_at: datetime | None = _ts(nullable=True, default=None)


class Lot(SQLModel, table=True):
    __tablename__ = "lot"
    __table_args__ = (
        Index(
            "lot_open_by_account",
            "community_id",
            "account_id",
            "expires_at",
            "earned_at",
            postgresql_where=text("remaining > 0"),
        ),
        Index(
            "lot_open_by_expiry",
            "community_id",
            "expires_at",
            postgresql_where=text("remaining > 0 AND expires_at IS NOT NULL"),
        ),
    )
    community_id: int = _big(primary_key=True)
    lot_id: uuid.UUID = Field(primary_key=True)
    account_id: uuid.UUID
    transfer_id: uuid.UUID
    seq: int = Field(sa_type=SmallInteger)
    amount: int = _big()
    remaining: int = _big()
    earned_at: datetime = _ts()
    expires_at: datetime | None = _ts(nullable=True, default=None)


class LotMovement(SQLModel, table=True):
    __tablename__ = "lot_movement"
    community_id: int = _big(primary_key=True)
    transfer_id: uuid.UUID = Field(primary_key=True)
    seq: int = Field(primary_key=True, sa_type=SmallInteger)
    lot_id: uuid.UUID = Field(primary_key=True)
    amount: int = _big()


class Idempotency(SQLModel, table=True):
    __tablename__ = "idempotency"
    community_id: int = _big(primary_key=True)
    key: str = Field(primary_key=True)
    request_hash: bytes = Field(sa_type=LargeBinary)
    transfer_id: uuid.UUID | None = None
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = _ts(sa_column_kwargs={"server_default": text("now()")})


class LogHead(SQLModel, table=True):
    __tablename__ = "log_head"
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    size: int = _big(default=0, sa_column_kwargs={"server_default": text("0")})
    # The empty log's "previous hash": 32 zero bytes.
    last_hash: bytes = Field(
        sa_type=LargeBinary, sa_column_kwargs={"server_default": text(f"'\\x{'00' * 32}'::bytea")}
    )


class LogLeaf(SQLModel, table=True):
    __tablename__ = "log_leaf"
    __table_args__ = (
        Index(
            "log_leaf_by_transfer",
            "community_id",
            "transfer_id",
            unique=True,
            postgresql_where=text("transfer_id IS NOT NULL"),
        ),
    )
    community_id: int = _big(primary_key=True)
    idx: int = _big(primary_key=True)
    leaf: bytes = Field(sa_type=LargeBinary)
    leaf_hash: bytes = Field(sa_type=LargeBinary)
    transfer_id: uuid.UUID | None = None


class LogNode(SQLModel, table=True):
    """Perfect-subtree hashes of level >= 1 (migration 0008); level 0 is log_leaf.leaf_hash."""

    __tablename__ = "log_node"
    community_id: int = _big(primary_key=True)
    level: int = Field(primary_key=True, sa_type=SmallInteger)
    idx: int = _big(primary_key=True)
    hash: bytes = Field(sa_type=LargeBinary)


class LogTree(SQLModel, table=True):
    __tablename__ = "log_tree"
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    size: int = _big(default=0, sa_column_kwargs={"server_default": text("0")})
    root: bytes = Field(sa_type=LargeBinary)


class LogCheckpoint(SQLModel, table=True):
    __tablename__ = "log_checkpoint"
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    size: int = _big(primary_key=True)
    root: bytes = Field(sa_type=LargeBinary)
    note: bytes = Field(sa_type=LargeBinary)
    signed_at: datetime = _ts()
