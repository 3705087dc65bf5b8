"""SQLModel mirrors of migration 0011: issued certificates and their supersession by corrections.

``ledger.store.schema`` gathers these with the other tables into one metadata; a test compares it
with the migrated database. All SQL the services run is in ``certificates_repo``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Column, Date, ForeignKeyConstraint, Index, LargeBinary
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlmodel import Field, SQLModel

from ledger.store.tables import _big, _ts


class Certificate(SQLModel, table=True):
    """One issued certificate (append-only); its status is derived from ``certificate_supersession``."""

    __tablename__ = "certificate"
    __table_args__ = (
        ForeignKeyConstraint(["community_id", "person_id"], ["person.community_id", "person.person_id"]),
        Index("certificate_by_person", "community_id", "person_id", "issued_at"),
    )
    community_id: int = _big(primary_key=True, foreign_key="community.community_id")
    number: str = Field(primary_key=True)
    person_id: uuid.UUID
    account_id: uuid.UUID
    period_from: date | None = Field(default=None, sa_type=Date, nullable=True)
    period_to: date | None = Field(default=None, sa_type=Date, nullable=True)
    record_ids: list[uuid.UUID] = Field(sa_column=Column(ARRAY(UUID(as_uuid=True)), nullable=False))
    transfer_ids: list[uuid.UUID] = Field(sa_column=Column(ARRAY(UUID(as_uuid=True)), nullable=False))
    total_minutes: int = _big()
    issued_on: date = Field(sa_type=Date)
    issued_at: datetime = _ts()
    issued_by: uuid.UUID
    checkpoint_size: int = _big()
    bundle: bytes = Field(sa_type=LargeBinary)
    bundle_sha256: bytes = Field(sa_type=LargeBinary)


class CertificateSupersession(SQLModel, table=True):
    """An accepted correction of a covered record superseded the certificate (append-only)."""

    __tablename__ = "certificate_supersession"
    __table_args__ = (
        ForeignKeyConstraint(["community_id", "number"], ["certificate.community_id", "certificate.number"]),
        ForeignKeyConstraint(
            ["community_id", "correction_id"],
            ["service_correction.community_id", "service_correction.correction_id"],
        ),
    )
    community_id: int = _big(primary_key=True)
    number: str = Field(primary_key=True)
    correction_id: uuid.UUID = Field(primary_key=True)
    record_id: uuid.UUID
    superseded_at: datetime = _ts()
