"""Volunteer service certificates (志愿服务证明): issue, read, print (PDF), bundle, public verification.

Staff with ``certificate:issue`` issue certificates for any volunteer of their community; a
volunteer issues their own (someone else's do not exist for them: 404). Staff with ``record:read``
read every certificate of the community, a volunteer their own. The verification paths are public
(no token): the HTML page the printed QR code leads to, and the same as JSON; they show only what
the printed certificate shows, masked the same way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import msgspec
from litestar import Controller, MediaType, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
)
from litestar.params import FromPath, JSONBody

from api.certificate_page import not_found_page, verification_page
from api.certificate_pdf import certificate_pdf
from api.deps import Access, Services
from api.idempotent import idempotent
from api.params import IdempotencyKey
from ledger.domain.certificates import Period
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Permission
from ledger.services.certificate_views import CertificateView, CertifiedRecord

P = Permission
PDF = "application/pdf"
COMMUNITY = "/api/v1/communities/{community_id:int}"
StateName = Literal["valid", "superseded"]


class IssueIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Service dates to cover (both ends included); leave out for all posted service."""

    period_from: date | None = None
    period_to: date | None = None


class RecordOut(msgspec.Struct, kw_only=True):
    service_date: date
    activity: str
    content: str
    organising_unit: str
    minutes: int
    hours: str

    @classmethod
    def of(cls, r: CertifiedRecord) -> RecordOut:
        return cls(
            service_date=r.service_date,
            activity=r.activity,
            content=r.content,
            organising_unit=r.organising_unit,
            minutes=r.minutes,
            hours=r.hours,
        )


class IdentityOut(msgspec.Struct, kw_only=True):
    """Masked as printed: 张*三, 3201**********1234; no phone number ever. All null once erased."""

    name: str | None
    id_type: str | None
    id_number: str | None
    erased: bool


class StatusOut(msgspec.Struct, kw_only=True):
    state: StateName
    superseded_at: datetime | None
    replaced_by: str | None  # the first later certificate covering the corrected record again


class CertificateOut(msgspec.Struct, kw_only=True):
    number: str
    community_id: int
    person_id: uuid.UUID
    identity: IdentityOut
    total_minutes: int
    total_hours: str
    period_from: date | None
    period_to: date | None
    issuer: str
    organising_units: list[str]
    issued_on: date
    issued_at: datetime
    issued_by: uuid.UUID
    checkpoint_size: int
    bundle_sha256: str
    status: StatusOut
    correction_id: uuid.UUID | None  # the correction that superseded it
    records: list[RecordOut]  # empty in lists
    verify_url: str

    @classmethod
    def of(cls, v: CertificateView) -> CertificateOut:
        return cls(
            number=v.number,
            community_id=v.community_id,
            person_id=v.person_id,
            identity=_identity(v),
            total_minutes=v.total_minutes,
            total_hours=v.total_hours,
            period_from=v.period_from,
            period_to=v.period_to,
            issuer=v.issuer,
            organising_units=list(v.organising_units),
            issued_on=v.issued_on,
            issued_at=v.issued_at,
            issued_by=v.issued_by,
            checkpoint_size=v.checkpoint_size,
            bundle_sha256=v.bundle_sha256,
            status=_status(v),
            correction_id=v.status.correction_id,
            records=[RecordOut.of(r) for r in v.records],
            verify_url=v.verify_url,
        )


class PublicCertificateOut(msgspec.Struct, kw_only=True):
    """What the public verification page shows: no ids, masked identity, hours, content, dates, status."""

    number: str
    status: StatusOut
    identity: IdentityOut
    total_minutes: int
    total_hours: str
    period_from: date | None
    period_to: date | None
    issuer: str
    organising_units: list[str]
    issued_on: date
    records: list[RecordOut]
    bundle_sha256: str
    verify_url: str

    @classmethod
    def of(cls, v: CertificateView) -> PublicCertificateOut:
        return cls(
            number=v.number,
            status=_status(v),
            identity=_identity(v),
            total_minutes=v.total_minutes,
            total_hours=v.total_hours,
            period_from=v.period_from,
            period_to=v.period_to,
            issuer=v.issuer,
            organising_units=list(v.organising_units),
            issued_on=v.issued_on,
            records=[RecordOut.of(r) for r in v.records],
            bundle_sha256=v.bundle_sha256,
            verify_url=v.verify_url,
        )


def _identity(v: CertificateView) -> IdentityOut:
    who = v.identity
    return IdentityOut(name=who.name, id_type=who.id_type, id_number=who.id_number, erased=who.erased)


def _status(v: CertificateView) -> StatusOut:
    state: StateName = "superseded" if v.status.superseded else "valid"
    return StatusOut(state=state, superseded_at=v.status.superseded_at, replaced_by=v.status.replaced_by)


@dataclass
class PdfOperation(Operation):
    """The PDF download answers application/pdf, which a return annotation cannot say."""

    def __post_init__(self) -> None:
        assert self.responses is not None
        self.responses["200"] = OpenAPIResponse(
            description="可打印的志愿服务证明（A4，含核验二维码）",
            content={
                PDF: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY))
            },
        )


@dataclass
class BundleOperation(Operation):
    """The bundle is a JSON document of its own format (docs/reference/certificates.md)."""

    def __post_init__(self) -> None:
        assert self.responses is not None
        self.responses["200"] = OpenAPIResponse(
            description="证据包 vledger-certificate-bundle/1：叶子、包含性证明、签名检查点与当前状态",
            content={
                MediaType.JSON: OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        required=["format", "certificate", "checkpoint", "leaves", "status"],
                    )
                )
            },
        )


def _subject(access: Access, community_id: int, person_id: uuid.UUID, permission: Permission) -> None:
    """Staff with ``permission``, or the volunteer themself; someone else's do not exist for them."""
    if access.can(permission, community_id):
        return
    if access.as_person(community_id, permission) != person_id:
        raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))


def readable(access: Access, services: Services, community_id: int, number: str) -> CertificateView:
    """A certificate the caller may read: any, with RECORD_READ; a volunteer's own."""
    if access.can(P.RECORD_READ, community_id):
        return services.certificates.get(community_id, number)
    own = access.as_person(community_id, P.RECORD_READ)
    view = services.certificates.get(community_id, number)
    if view.person_id != own:
        raise LedgerError(ErrorCode.CERTIFICATE_NOT_FOUND, number=number)
    return view


class CertificateRoutes(Controller):
    path = COMMUNITY
    tags = ("certificates",)

    @post(
        "/people/{person_id:uuid}/certificates",
        sync_to_thread=True,
        summary="出具志愿服务证明（本人或有出具权限的工作人员）",
        responses={201: ResponseSpec(CertificateOut, description="已出具", generate_examples=False)},
    )
    def issue(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        data: JSONBody[IssueIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        """Refused with NOT_YET_CHECKPOINTED until a signed checkpoint covers every transfer."""
        _subject(access, community_id, person_id, P.CERTIFICATE_ISSUE)
        period = Period(data.period_from, data.period_to)

        def run() -> CertificateOut:
            view = services.certificates.issue(
                community_id, person_id, actor_id=access.principal.user_id, period=period
            )
            return CertificateOut.of(view)

        return idempotent(
            services,
            access,
            idempotency_key,
            f"certificates:{community_id}:{person_id}",
            data,
            run,
            # The answer holds the masked identity: only the number is stored, the rest re-read.
            remember=lambda out: {"number": out.number},
            recall=lambda stored: CertificateOut.of(
                services.certificates.get(community_id, stored["number"])
            ),
        )

    @get("/people/{person_id:uuid}/certificates", sync_to_thread=True, summary="某志愿者的证明（新的在前）")
    def of_person(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> list[CertificateOut]:
        _subject(access, community_id, person_id, P.RECORD_READ)
        return [CertificateOut.of(v) for v in services.certificates.of_person(community_id, person_id)]

    @get("/certificates/{number:str}", sync_to_thread=True, summary="证明详情")
    def get_certificate(
        self,
        community_id: FromPath[int],
        number: FromPath[str],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> CertificateOut:
        return CertificateOut.of(readable(access, services, community_id, number))

    @get(
        "/certificates/{number:str}/pdf",
        sync_to_thread=True,
        summary="下载可打印的证明（PDF）",
        operation_class=PdfOperation,
    )
    def pdf(
        self,
        community_id: FromPath[int],
        number: FromPath[str],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> Response[bytes]:
        view = readable(access, services, community_id, number)
        disposition = f'attachment; filename="certificate-{view.number}.pdf"'
        return Response(certificate_pdf(view), media_type=PDF, headers={"Content-Disposition": disposition})

    @get(
        "/certificates/{number:str}/bundle",
        sync_to_thread=True,
        summary="下载证据包（离线核验用 JSON）",
        operation_class=BundleOperation,
    )
    def bundle(
        self,
        community_id: FromPath[int],
        number: FromPath[str],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> Response[bytes]:
        """vledger-certificate-bundle/1 (docs/reference/certificates.md), with its current status."""
        view = readable(access, services, community_id, number)
        disposition = f'attachment; filename="certificate-{view.number}.json"'
        body = services.certificates.bundle(community_id, view.number)
        return Response(body, media_type=MediaType.JSON, headers={"Content-Disposition": disposition})


class PublicCertificateRoutes(Controller):
    """No token: anyone holding a printed certificate checks it here."""

    path = "/"
    tags = ("certificates",)

    @get("/api/v1/public/certificates/{number:str}", sync_to_thread=True, summary="公开核验证明（JSON）")
    def public_json(self, number: FromPath[str], services: NamedDependency[Services]) -> PublicCertificateOut:
        return PublicCertificateOut.of(services.certificates.public(number))

    @get(
        "/verify/certificates/{number:str}",
        sync_to_thread=True,
        media_type=MediaType.HTML,
        include_in_schema=False,
    )
    def public_page(self, number: FromPath[str], services: NamedDependency[Services]) -> Response[str]:
        try:
            view = services.certificates.public(number)
        except LedgerError as err:
            if err.code is not ErrorCode.CERTIFICATE_NOT_FOUND:
                raise
            return Response(not_found_page(), status_code=404, media_type=MediaType.HTML)
        return Response(verification_page(view), media_type=MediaType.HTML)
