"""Bulk import of a sheet of service hours over HTTP: the file is the request body.

``POST .../service-records/imports?dry_run=true`` (the default) checks the sheet and answers the
row report; ``dry_run=false`` imports it if it has no problem at all (``committed`` says whether it
did). The body is the CSV (UTF-8 with or without BOM, or GB18030) or XLSX file itself, any
Content-Type. Needs ``record:write``. The report names rows, columns and codes, never a cell's value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, post
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK

from api.deps import Access, Services
from api.errors import PROBLEM, PROBLEM_SCHEMA_NAME
from api.idempotent import idempotent
from api.params import IdempotencyKey
from api.routes.service_records import COMMUNITY
from api.schemas_records import ImportReportOut
from ledger.domain.roles import Permission

MAX_SHEET_BYTES = 32 * 1024 * 1024  # about 100 000 rows of CSV; larger sheets are split


@dataclass
class ImportOperation(Operation):
    """The body is a file (no JSON schema can say so from a parameter), and it may be too large."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            description="CSV（UTF-8，可带 BOM；或 GB18030）或 XLSX 文件本身；表头见文档",
            required=True,
            content={
                "application/octet-stream": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                )
            },
        )
        assert self.responses is not None
        self.responses["413"] = OpenAPIResponse(
            description=f"文件超过 {MAX_SHEET_BYTES // (1024 * 1024)} MB，请分成多个文件导入",
            content={
                PROBLEM: OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"))
            },
        )


class RecordImportRoutes(Controller):
    path = f"{COMMUNITY}/service-records/imports"
    tags = ("service records",)

    @post(
        "/",
        summary="批量导入志愿服务记录（CSV 或 XLSX；默认只检查不导入）",
        status_code=HTTP_200_OK,
        request_max_body_size=MAX_SHEET_BYTES,
        operation_class=ImportOperation,
        responses={200: ResponseSpec(ImportReportOut, description="逐行检查结果", generate_examples=False)},
    )
    async def import_sheet(
        self,
        request: Request[Any, Any, Any],
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
        dry_run: Annotated[
            bool, QueryParameter(name="dry_run", required=False, description="只检查、不写入（默认是）")
        ] = True,
    ) -> Response[object]:
        await sync_to_thread(access.require, Permission.RECORD_WRITE, community_id)
        body = await request.body()
        digest = hashlib.sha256(body).hexdigest()

        def run() -> ImportReportOut:
            report = services.record_import.run(
                community_id, body, actor_id=access.principal.user_id, dry_run=dry_run
            )
            return ImportReportOut.of(report)

        return await sync_to_thread(
            idempotent,
            services,
            access,
            idempotency_key,
            f"imports:{community_id}",
            {"sheet_sha256": digest, "dry_run": dry_run},
            run,
            status_code=HTTP_200_OK,
        )
