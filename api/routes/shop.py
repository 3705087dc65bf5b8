"""Points supermarket (积分超市): catalog and stock, orders, pickup, reports.

Any member of the community browses the catalog (what is on sale; staff with ``shop:catalog`` or
``shop:fulfil`` see every item). A volunteer, as a person, places orders and cancels and reads
their own (and their household's, for household items); someone else's do not exist for them
(404). Clerks (``shop:fulfil``) hand orders over by pickup code, and see and cancel every order.
Admins (``shop:catalog``) manage items and stock. Reports need ``shop:report``. Rules and codes:
docs/points-supermarket.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from litestar import Controller, MediaType, Response, get, post, put
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
from litestar.params import FromPath, JSONBody, QueryParameter

from api.deps import Access, Services
from api.exports import table_to_csv, table_to_xlsx
from api.idempotent import REPLAYED, idempotent
from api.pagination import Page, decode_cursor, next_cursor, page_limit
from api.params import Cursor, IdempotencyKey, Limit
from api.routes.ledger import CSV, XLSX
from api.schemas_shop import (
    FulfilIn,
    ItemIn,
    ItemOut,
    NewItemIn,
    OrderIn,
    OrderOut,
    PlacedOut,
    ReportOut,
    StockIn,
)
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Permission
from ledger.services.shop_reports import Report

P = Permission
COMMUNITY = "/api/v1/communities/{community_id:int}"
StateFilter = Literal["placed", "fulfilled", "cancelled", "unclaimed_expired"]
Format = Annotated[Literal["json", "csv", "xlsx"], QueryParameter(name="format", required=False)]
Since = Annotated[date | None, QueryParameter(name="from", required=False, description="含当日（北京时间）")]
Until = Annotated[date | None, QueryParameter(name="to", required=False, description="不含当日")]


def _buyer(access: Access, community_id: int) -> uuid.UUID | None:
    """None for staff who see every order; a volunteer's person id otherwise (FORBIDDEN for others)."""
    if access.can(P.SHOP_FULFIL, community_id):
        return None
    return access.as_person(community_id, P.SHOP_FULFIL)


class ShopCatalogRoutes(Controller):
    path = COMMUNITY + "/shop/items"
    tags = ("points-supermarket",)

    @get("/", sync_to_thread=True, summary="积分超市商品（志愿者只见在售商品）")
    def list_items(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> Page[ItemOut]:
        access.require(P.COMMUNITY_READ, community_id)
        staff = access.can(P.SHOP_CATALOG, community_id) or access.can(P.SHOP_FULFIL, community_id)
        size = page_limit(limit)
        items = services.shop.list_items(
            community_id, on_sale_only=not staff, after=decode_cursor(cursor), limit=size
        )
        return Page(
            items=[ItemOut.of(i) for i in items], next_cursor=next_cursor([i.item_id for i in items], size)
        )

    @get("/{item_id:uuid}", sync_to_thread=True, summary="商品详情")
    def get_item(
        self,
        community_id: FromPath[int],
        item_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> ItemOut:
        access.require(P.COMMUNITY_READ, community_id)
        staff = access.can(P.SHOP_CATALOG, community_id) or access.can(P.SHOP_FULFIL, community_id)
        return ItemOut.of(services.shop.get_item(community_id, item_id, on_sale_only=not staff))

    @post("/", sync_to_thread=True, summary="上架商品")
    def create_item(
        self,
        community_id: FromPath[int],
        data: JSONBody[NewItemIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(P.SHOP_CATALOG, community_id)

        def run() -> ItemOut:
            view = services.shop.create_item(
                community_id, data.spec(), actor_id=access.principal.user_id, stock=data.stock
            )
            return ItemOut.of(view)

        return idempotent(services, access, idempotency_key, f"shop-items:{community_id}", data, run)

    @put("/{item_id:uuid}", sync_to_thread=True, summary="修改商品（已下的订单按原条件）")
    def update_item(
        self,
        community_id: FromPath[int],
        item_id: FromPath[uuid.UUID],
        data: JSONBody[ItemIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> ItemOut:
        access.require(P.SHOP_CATALOG, community_id)
        return ItemOut.of(services.shop.update_item(community_id, item_id, data.spec()))

    @post("/{item_id:uuid}/restock", sync_to_thread=True, summary="入库")
    def restock(
        self,
        community_id: FromPath[int],
        item_id: FromPath[uuid.UUID],
        data: JSONBody[StockIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(P.SHOP_CATALOG, community_id)

        def run() -> ItemOut:
            actor = access.principal.user_id
            return ItemOut.of(
                services.shop.restock(community_id, item_id, data.quantity, actor_id=actor, note=data.note)
            )

        return idempotent(
            services,
            access,
            idempotency_key,
            f"shop-restock:{community_id}:{item_id}",
            data,
            run,
            status_code=200,
        )

    @post("/{item_id:uuid}/write-off", sync_to_thread=True, summary="报损")
    def write_off(
        self,
        community_id: FromPath[int],
        item_id: FromPath[uuid.UUID],
        data: JSONBody[StockIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(P.SHOP_CATALOG, community_id)

        def run() -> ItemOut:
            actor = access.principal.user_id
            view = services.shop.write_off(
                community_id, item_id, data.quantity, actor_id=actor, note=data.note
            )
            return ItemOut.of(view)

        return idempotent(
            services,
            access,
            idempotency_key,
            f"shop-write-off:{community_id}:{item_id}",
            data,
            run,
            status_code=200,
        )


class ShopOrderRoutes(Controller):
    path = COMMUNITY + "/shop"
    tags = ("points-supermarket",)

    @post(
        "/orders",
        sync_to_thread=True,
        summary="兑换下单（志愿者本人；冻结积分、预留库存）",
        responses={200: ResponseSpec(PlacedOut, description="重放：同一幂等键的首次订单（不再显示取货码）")},
    )
    def place(
        self,
        community_id: FromPath[int],
        data: JSONBody[OrderIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[PlacedOut]:
        """The pickup code is in the first answer only. Without Idempotency-Key every call orders."""
        person_id = access.as_person(community_id, P.SHOP_FULFIL)
        placed = services.shop.place_order(
            community_id,
            person_id,
            data.item_id,
            data.quantity,
            idempotency_key=idempotency_key or f"auto-{uuid.uuid4()}",
            actor_id=access.principal.user_id,
        )
        if placed.replayed:
            return Response(PlacedOut.of(placed), status_code=200, headers={REPLAYED: "true"})
        return Response(PlacedOut.of(placed), status_code=201)

    @get("/orders", sync_to_thread=True, summary="订单（店员见全部；志愿者见本人和本户的）")
    def list_orders(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        order_state: Annotated[StateFilter | None, QueryParameter(name="state", required=False)] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> Page[OrderOut]:
        person_id = _buyer(access, community_id)
        size = page_limit(limit)
        orders = services.shop.list_orders(
            community_id, person_id=person_id, state=order_state, after=decode_cursor(cursor), limit=size
        )
        return Page(
            items=[OrderOut.of(o) for o in orders],
            next_cursor=next_cursor([o.order_id for o in orders], size),
        )

    @get("/orders/{order_id:uuid}", sync_to_thread=True, summary="订单详情")
    def get_order(
        self,
        community_id: FromPath[int],
        order_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> OrderOut:
        return OrderOut.of(
            services.shop.get_order(community_id, order_id, person_id=_buyer(access, community_id))
        )

    @post(
        "/orders/{order_id:uuid}/cancellation", sync_to_thread=True, summary="取消订单（解冻积分、释放库存）"
    )
    def cancel(
        self,
        community_id: FromPath[int],
        order_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        person_id = _buyer(access, community_id)

        def run() -> OrderOut:
            actor = access.principal.user_id
            return OrderOut.of(
                services.shop.cancel(community_id, order_id, actor_id=actor, person_id=person_id)
            )

        route = f"shop-cancel:{community_id}:{order_id}"
        return idempotent(services, access, idempotency_key, route, None, run, status_code=200)

    @post("/fulfilments", sync_to_thread=True, summary="凭取货码兑付（店员）")
    def fulfil(
        self,
        community_id: FromPath[int],
        data: JSONBody[FulfilIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> Response[OrderOut]:
        """PICKUP_CODE_INVALID (422) for any code that names no open order; RATE_LIMITED (429) after
        too many checks in a minute. Not replayable by key: the code is the request's only content,
        and a second hand-over of one order is refused as an invalid code."""
        access.require(P.SHOP_FULFIL, community_id)
        order = services.shop.fulfil(community_id, data.code, actor_id=access.principal.user_id)
        return Response(OrderOut.of(order), status_code=200)


@dataclass
class ReportOperation(Operation):
    """A report answers JSON, CSV or XLSX (by ``format``), which a return annotation cannot say."""

    def __post_init__(self) -> None:
        assert self.responses is not None
        table = Schema(type=OpenAPIType.OBJECT, required=["report", "title", "columns", "rows"])
        self.responses["200"] = OpenAPIResponse(
            description="报表（format=json 为表格 JSON，csv 为 UTF-8 带 BOM 的 CSV，xlsx 为 Excel 工作簿）",
            content={
                MediaType.JSON: OpenAPIMediaType(schema=table),
                CSV: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
                XLSX: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)),
            },
        )


def _report_response(report: Report, fmt: str, community_id: int) -> Response[object]:
    if fmt == "json":
        rows: list[list[str | int]] = [list(r) for r in report.rows]
        body = ReportOut(report=report.name, title=report.title, columns=list(report.columns), rows=rows)
        return Response(body)
    if fmt == "xlsx":
        content, media = table_to_xlsx(report.headers, report.rows, title=report.title), XLSX
    else:
        content, media = table_to_csv(report.headers, report.rows), CSV
    disposition = f'attachment; filename="shop-{report.name}-{community_id}.{fmt}"'
    return Response(content, media_type=media, headers={"Content-Disposition": disposition})


class ShopReportRoutes(Controller):
    path = COMMUNITY + "/shop/reports"
    tags = ("points-supermarket",)

    @get(
        "/redemptions", sync_to_thread=True, summary="兑换统计：按商品和月份", operation_class=ReportOperation
    )
    def redemptions(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        fmt: Format = "json",
        since: Since = None,
        until: Until = None,
    ) -> Response[object]:
        access.require(P.SHOP_REPORT, community_id)
        _check_range(since, until)
        return _report_response(
            services.shop_reports.redemptions(community_id, since=since, until=until), fmt, community_id
        )

    @get("/stock", sync_to_thread=True, summary="库存报表", operation_class=ReportOperation)
    def stock(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        fmt: Format = "json",
    ) -> Response[object]:
        access.require(P.SHOP_REPORT, community_id)
        return _report_response(services.shop_reports.stock(community_id), fmt, community_id)

    @get("/funding", sync_to_thread=True, summary="兑换参考价值：按资金来源", operation_class=ReportOperation)
    def funding(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        fmt: Format = "json",
        since: Since = None,
        until: Until = None,
    ) -> Response[object]:
        access.require(P.SHOP_REPORT, community_id)
        _check_range(since, until)
        return _report_response(
            services.shop_reports.funding(community_id, since=since, until=until), fmt, community_id
        )


def _check_range(since: date | None, until: date | None) -> None:
    if since is not None and until is not None and until <= since:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="to")
