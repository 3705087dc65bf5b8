"""Communities, accounts, balances, statements, lots and transfers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
)
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import Access, Services
from api.exports import to_csv, to_xlsx
from api.keys import ledger_key
from api.observability import count_posted
from api.pagination import Page, decode_cursor, next_cursor, page_limit
from api.params import Cursor, IdempotencyKey, Limit
from api.schemas import (
    Account,
    Balance,
    Community,
    Line,
    Lot,
    OpenAccount,
    ReversalIn,
    TransferIn,
    TransferOut,
    aware,
    to_us,
)
from ledger.domain.accounts import AccountSpec, OwnerKind, member_account_flags
from ledger.domain.roles import Permission
from ledger.domain.transfers import Phase, Posting, ReverseRequest, TransferRequest
from ledger.domain.units import Unit
from ledger.services.accounts import CommunityView, StatementLine
from ledger.services.results import TransferResult

MAX_EXPORT_LINES = 50_000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"  # Litestar adds "; charset=utf-8" to text/* media types
# Filters on names (a transfer kind, an owner kind) take the form the ledger gives names
# (ledger/domain/transfers.py): anything else matches nothing, and a NUL would reach SQL.
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"


@dataclass
class ExportOperation(Operation):
    """The export answers CSV or XLSX (by ``format``), which a return annotation cannot say."""

    def __post_init__(self) -> None:
        assert self.responses is not None
        self.responses["200"] = OpenAPIResponse(
            description="账户明细文件（format=csv 为 UTF-8 带 BOM 的 CSV，format=xlsx 为 Excel 工作簿）",
            headers={
                "Content-Disposition": OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), required=True)
            },
            content={
                CSV: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
                XLSX: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)),
            },
        )


REPLAY = ResponseSpec(
    TransferOut, description="重放：同一幂等键、同一请求的首次结果", generate_examples=False
)


class CommunityRoutes(Controller):
    path = "/api/v1/communities"
    tags = ("communities",)

    @get("/", sync_to_thread=True, summary="我可访问的社区")
    def list_communities(
        self, access: NamedDependency[Access], services: NamedDependency[Services]
    ) -> list[Community]:
        grants = access.principal.grants
        views = services.accounts.communities(
            [g.community_id for g in grants if g.community_id is not None],
            [g.region_id for g in grants if g.region_id is not None],
        )
        return [_community(v) for v in views]

    @get("/{community_id:int}", sync_to_thread=True, summary="社区信息")
    def get_community(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> Community:
        access.require(Permission.COMMUNITY_READ, community_id)
        return _community(services.accounts.community(community_id))


def _community(view: CommunityView) -> Community:
    return Community(
        community_id=view.community_id,
        region_id=view.region_id,
        code=view.code,
        name=view.name,
        origin=view.origin,
    )


class AccountRoutes(Controller):
    path = "/api/v1/communities/{community_id:int}/accounts"
    tags = ("accounts",)

    @get("/", sync_to_thread=True, summary="账户列表")
    def list_accounts(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        cursor: Cursor = None,
        limit: Limit = None,
        owner_kind: Annotated[
            str | None,
            QueryParameter(
                name="owner_kind",
                required=False,
                pattern=NAME_PATTERN,
                description="person、household 或 community",
            ),
        ] = None,
        owner_id: Annotated[uuid.UUID | None, QueryParameter(name="owner_id", required=False)] = None,
        unit: Annotated[Unit | None, QueryParameter(name="unit", required=False)] = None,
    ) -> Page[Account]:
        """Staff see the community's accounts; a volunteer sees their own only (whatever the filter)."""
        size = page_limit(limit)
        if not access.can(Permission.ACCOUNT_READ, community_id):
            owner_kind, owner_id = "person", access.as_person(community_id, Permission.ACCOUNT_READ)
        views = services.accounts.find(
            community_id,
            after=decode_cursor(cursor),
            limit=size,
            owner_kind=owner_kind,
            owner_id=owner_id,
            unit=unit,
        )
        return Page(
            items=[Account.of(v) for v in views],
            next_cursor=next_cursor([v.account_id for v in views], size),
        )

    @post("/", sync_to_thread=True, summary="开立账户", status_code=HTTP_201_CREATED)
    def open_account(
        self,
        community_id: FromPath[int],
        data: JSONBody[OpenAccount],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> Account:
        access.require(Permission.ACCOUNT_OPEN, community_id)
        unit = Unit(data.unit)
        if data.owner_kind == "person":
            services.people.get(community_id, data.owner_id, full=False)  # PERSON_NOT_FOUND
        else:
            services.households.get(community_id, data.owner_id)  # HOUSEHOLD_NOT_FOUND
        flags = member_account_flags(unit)
        spec = AccountSpec(OwnerKind(data.owner_kind), unit, flags, owner_id=data.owner_id)
        account_id = services.communities.open_account(community_id, spec)
        return Account.of(services.accounts.get(community_id, account_id))

    @get("/{account_id:uuid}", sync_to_thread=True, summary="账户详情")
    def get_account(
        self, community_id: FromPath[int], account_id: FromPath[uuid.UUID], access: NamedDependency[Access]
    ) -> Account:
        return Account.of(access.account(community_id, account_id, Permission.ACCOUNT_READ))

    @get("/{account_id:uuid}/balance", summary="余额（已入账、预留、可用）")
    async def get_balance(
        self, community_id: FromPath[int], account_id: FromPath[uuid.UUID], access: NamedDependency[Access]
    ) -> Balance:
        # The hottest read: answered on the event loop (see Access.account_async).
        return Balance.of(await access.account_async(community_id, account_id, Permission.ACCOUNT_READ))

    @get("/{account_id:uuid}/statement", sync_to_thread=True, summary="账户明细")
    def statement(
        self,
        community_id: FromPath[int],
        account_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        cursor: Cursor = None,
        limit: Limit = None,
        kind: Annotated[str | None, QueryParameter(name="kind", required=False, pattern=NAME_PATTERN)] = None,
        effective_from: Annotated[datetime | None, QueryParameter(name="from", required=False)] = None,
        effective_to: Annotated[datetime | None, QueryParameter(name="to", required=False)] = None,
    ) -> Page[Line]:
        access.account(community_id, account_id, Permission.ACCOUNT_READ)
        size = page_limit(limit)
        lines = services.accounts.statement(
            community_id,
            account_id,
            before=decode_cursor(cursor),
            limit=size,
            kind=kind,
            effective_from=aware(effective_from),
            effective_to=aware(effective_to),
        )
        return Page(
            items=[Line.of(x) for x in lines],
            next_cursor=next_cursor([x.transfer_id for x in lines], size),
        )

    @get(
        "/{account_id:uuid}/statement/export",
        sync_to_thread=True,
        summary="导出账户明细（CSV 或 XLSX）",
        operation_class=ExportOperation,
    )
    def export_statement(
        self,
        community_id: FromPath[int],
        account_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        fmt: Annotated[Literal["csv", "xlsx"], QueryParameter(name="format", required=False)] = "csv",
        effective_from: Annotated[datetime | None, QueryParameter(name="from", required=False)] = None,
        effective_to: Annotated[datetime | None, QueryParameter(name="to", required=False)] = None,
    ) -> Response[bytes]:
        account = access.account(community_id, account_id, Permission.STATEMENT_EXPORT)
        lines: list[StatementLine] = []
        before: uuid.UUID | None = None
        while len(lines) < MAX_EXPORT_LINES:
            page = services.accounts.statement(
                community_id,
                account_id,
                before=before,
                limit=500,
                effective_from=aware(effective_from),
                effective_to=aware(effective_to),
            )
            lines.extend(page)
            if len(page) < 500:
                break
            before = page[-1].transfer_id
        name = f"statement-{community_id}-{account_id}-{account.unit}"
        if fmt == "xlsx":
            body, media = to_xlsx(lines[:MAX_EXPORT_LINES], title=str(account.unit)), XLSX
        else:
            body, media = to_csv(lines[:MAX_EXPORT_LINES]), CSV
        disposition = f'attachment; filename="{name}.{fmt}"'
        return Response(body, media_type=media, headers={"Content-Disposition": disposition})

    @get("/{account_id:uuid}/lots", sync_to_thread=True, summary="积分批次及有效期")
    def lots(
        self,
        community_id: FromPath[int],
        account_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        open_only: Annotated[bool, QueryParameter(name="open_only", required=False)] = True,
    ) -> list[Lot]:
        access.account(community_id, account_id, Permission.ACCOUNT_READ)
        return [Lot.of(x) for x in services.accounts.lots(community_id, account_id, open_only=open_only)]


class TransferRoutes(Controller):
    path = "/api/v1/communities/{community_id:int}/transfers"
    tags = ("transfers",)

    @post("/", summary="记账（手工发放、调整）", responses={200: REPLAY})
    async def post_transfer(
        self,
        community_id: FromPath[int],
        data: JSONBody[TransferIn],
        access: NamedDependency[Access],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[TransferOut]:
        await access.require_async(Permission.TRANSFER_POST, community_id)
        request = transfer_request(community_id, data, access.principal.user_id, idempotency_key)
        # Grouped with concurrent posts; awaited on the event loop (no worker thread parked).
        result = await access.services.transfers.transfer_async(request)
        return _transfer_response(result)

    @get("/{transfer_id:uuid}", sync_to_thread=True, summary="转账详情")
    def get_transfer(
        self,
        community_id: FromPath[int],
        transfer_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> TransferOut:
        access.require_transfer(community_id, transfer_id)
        return TransferOut.of(services.ledger.get_transfer(community_id, transfer_id))

    @post("/{transfer_id:uuid}/reversal", sync_to_thread=True, summary="冲正", responses={200: REPLAY})
    def reverse(
        self,
        community_id: FromPath[int],
        transfer_id: FromPath[uuid.UUID],
        data: JSONBody[ReversalIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[TransferOut]:
        access.require(Permission.TRANSFER_POST, community_id)
        request = ReverseRequest(
            community_id,
            transfer_id,
            ledger_key(access.principal.user_id, idempotency_key),
            actor_id=access.principal.user_id,
            reason=data.reason,
        )
        result = services.ledger.reverse(request)
        return _transfer_response(result)


def transfer_request(
    community_id: int, data: TransferIn, user_id: uuid.UUID, client_key: str | None
) -> TransferRequest:
    """The ledger request of a POST to the transfers route (also built by api.fastpath)."""
    return TransferRequest(
        community_id,
        data.kind,
        tuple(
            Posting(
                p.account_id,
                Unit(p.unit),
                p.amount,
                None if p.expires_at is None else to_us(p.expires_at),
            )
            for p in data.postings
        ),
        ledger_key(user_id, client_key),
        phase=Phase(data.phase),
        effective_us=None if data.effective_at is None else to_us(data.effective_at),
        actor_id=user_id,
        timeout_us=None if data.timeout_s is None else data.timeout_s * 1_000_000,
        metadata=data.metadata,
    )


def count_transfer(result: TransferResult) -> int:
    """Count a posted transfer in the metrics (a replay is not counted); its status code: 201 for a
    new transfer, 200 for a replay of an earlier request under the same key."""
    if result.replayed:
        return HTTP_200_OK
    count_posted(result.kind, [str(posting.unit) for posting in result.postings])
    return HTTP_201_CREATED


def _transfer_response(result: TransferResult) -> Response[TransferOut]:
    return Response(TransferOut.of(result), status_code=count_transfer(result))
