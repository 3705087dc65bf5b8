"""What a certificate looks like to readers: status, masked identity, certified records.

These are what the printed certificate, the API and the public verification page show. The
identity is masked for print and for the public: the name as 张*三 / 李*, the ID number as
``3201**********1234``, and never a phone number.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ledger.audit.certificate_bundle import STATUS_SUPERSEDED, rfc3339_us
from ledger.domain.certificates import hours_text
from ledger.domain.people import PersonProfile
from ledger.privacy import mask_id_number, mask_name_on_certificate

__all__ = ["CertificateView", "CertifiedRecord", "MaskedIdentity", "Status"]


@dataclass(frozen=True, slots=True)
class Status:
    """``valid``, or ``superseded`` by an accepted correction (and, once issued, by a new certificate)."""

    state: str
    superseded_at: datetime | None = None
    correction_id: uuid.UUID | None = None
    replaced_by: str | None = None

    @property
    def superseded(self) -> bool:
        return self.state == STATUS_SUPERSEDED

    def as_json(self, now: datetime) -> dict[str, object]:
        """The bundle's ``status`` member (docs/reference/certificates.md §2.4)."""
        return {
            "state": self.state,
            "as_of": rfc3339_us(now),
            "superseded_at": None if self.superseded_at is None else rfc3339_us(self.superseded_at),
            "correction_id": None if self.correction_id is None else str(self.correction_id),
            "replaced_by": self.replaced_by,
        }


@dataclass(frozen=True, slots=True)
class MaskedIdentity:
    """The volunteer as a certificate names them; all None once their data was erased."""

    name: str | None
    id_type: str | None
    id_number: str | None

    @property
    def erased(self) -> bool:
        return self.name is None

    @classmethod
    def of(cls, profile: PersonProfile | None) -> MaskedIdentity:
        """From the full profile (None: erased). The phone number is never taken."""
        if profile is None:
            return cls(None, None, None)
        number = None if profile.id_number is None else mask_id_number(profile.id_number)
        return cls(mask_name_on_certificate(profile.name), profile.id_type, number)


@dataclass(frozen=True, slots=True)
class CertifiedRecord:
    service_date: date
    activity: str
    content: str
    organising_unit: str
    minutes: int

    @property
    def hours(self) -> str:
        return hours_text(self.minutes)

    @classmethod
    def of(cls, entry: dict[str, Any]) -> CertifiedRecord:
        """From a record entry of a bundle the service issued."""
        return cls(
            date.fromisoformat(entry["service_date"]),
            str(entry["activity"]),
            str(entry["content"]),
            str(entry["organising_unit"]),
            int(entry["minutes"]),
        )


@dataclass(frozen=True, slots=True)
class CertificateView:
    number: str
    community_id: int
    person_id: uuid.UUID
    issuer: str  # the community (出具单位)
    identity: MaskedIdentity
    total_minutes: int
    period_from: date | None
    period_to: date | None
    issued_on: date
    issued_at: datetime
    issued_by: uuid.UUID
    checkpoint_size: int
    bundle_sha256: str  # hex
    status: Status
    records: tuple[CertifiedRecord, ...]  # empty in lists
    verify_url: str

    @property
    def total_hours(self) -> str:
        return hours_text(self.total_minutes)

    @property
    def organising_units(self) -> tuple[str, ...]:
        """The recording organisations (谁组织谁记录), each once, in the order of the records."""
        return tuple(dict.fromkeys(r.organising_unit for r in self.records))

    @property
    def first_service_date(self) -> date | None:
        return min((r.service_date for r in self.records), default=None)

    @property
    def last_service_date(self) -> date | None:
        return max((r.service_date for r in self.records), default=None)
