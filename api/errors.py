"""Every failure as RFC 9457 problem details: business codes map to 4xx, never to a 500.

One table maps ledger error codes to HTTP statuses. Request validation failures name the fields
that failed, never the values (they may be personal data). Unexpected exceptions become a bare 500
that says nothing about the request; the log gets the exception type and the request id only.

The OpenAPI document states the same: ``document_problems`` adds a ``Problem`` schema and, on every
``/api/v1`` and ``/audit/v1`` operation, the 4xx responses it can give as ``application/problem+json``,
each with the error codes that map to that status (derived from the table below, so the two cannot
drift apart).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_410_GONE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
)

from api.observability import log_request
from ledger.domain.errors import ErrorCode, LedgerError

log = logging.getLogger("vledger.api")

PROBLEM = "application/problem+json"

_C = ErrorCode
STATUS: dict[ErrorCode, int] = {
    _C.UNAUTHENTICATED: HTTP_401_UNAUTHORIZED,
    _C.INVALID_CREDENTIALS: HTTP_401_UNAUTHORIZED,
    _C.RATE_LIMITED: HTTP_429_TOO_MANY_REQUESTS,
    _C.FORBIDDEN: HTTP_403_FORBIDDEN,
    _C.VERIFIER_IS_RECORDER: HTTP_403_FORBIDDEN,  # separation of duties: someone else must verify
    _C.ACTOR_NOT_ALLOWED: HTTP_403_FORBIDDEN,  # not a party to the exchange, or staff judging their own
    _C.MALFORMED_REQUEST: HTTP_400_BAD_REQUEST,
    _C.MALFORMED_ID: HTTP_400_BAD_REQUEST,
    _C.INVALID_IDEMPOTENCY_KEY: HTTP_400_BAD_REQUEST,
    _C.IDEMPOTENCY_CONFLICT: HTTP_409_CONFLICT,
    _C.PERSON_ERASED: HTTP_410_GONE,
    **{code: HTTP_404_NOT_FOUND for code in ErrorCode if code.value.endswith("_NOT_FOUND")},
    **dict.fromkeys(
        (
            _C.ACCOUNT_CLOSED,
            _C.PENDING_ALREADY_POSTED,
            _C.PENDING_ALREADY_VOIDED,
            _C.PENDING_EXPIRED,
            _C.CANNOT_REVERSE_PENDING,
            _C.ALREADY_REVERSED,
            _C.TRANSFER_EXISTS,
            _C.USERNAME_TAKEN,
            _C.DUPLICATE_PERSON,
            _C.HOUSEHOLD_CODE_TAKEN,
            _C.HOUSEHOLD_DISSOLVED,
            _C.ALREADY_IN_HOUSEHOLD,
            _C.NOT_IN_HOUSEHOLD,
            _C.SETTING_NOT_LATER,
            _C.NOT_YET_CHECKPOINTED,
            _C.ACCOUNT_EXISTS,
            _C.INSUFFICIENT_FUNDS,
            _C.INVALID_STATE_TRANSITION,
            _C.RECORDING_OVERDUE,
            _C.CORRECTION_PENDING,
            _C.RELATION_EXISTS,
            _C.ITEM_NOT_ACTIVE,
            _C.SCORE_GATE_NOT_MET,
            _C.REDEMPTION_LIMIT_REACHED,
            _C.OUT_OF_STOCK,
        ),
        HTTP_409_CONFLICT,
    ),
}


def status_of(code: ErrorCode) -> int:
    """The HTTP status of a code; anything not listed is a request the server understood but refuses."""
    return STATUS.get(code, HTTP_422_UNPROCESSABLE_ENTITY)


def problem(
    status: int, title: str, *, code: str | None = None, extra: Mapping[str, object] | None = None
) -> Response[dict[str, object]]:
    body: dict[str, object] = {
        "type": f"urn:vledger:error:{code}" if code else "about:blank",
        "title": title,
        "status": status,
    }
    if code:
        body["code"] = code
    body.update(extra or {})
    headers = {"WWW-Authenticate": "Bearer"} if status == HTTP_401_UNAUTHORIZED else {}
    retry = (extra or {}).get("retry_after_s")
    if isinstance(retry, int):
        headers["Retry-After"] = str(retry)
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def ledger_error(_request: Request[Any, Any, Any], exc: LedgerError) -> Response[dict[str, object]]:
    detail = {k: v for k, v in exc.detail.items() if k not in ("type", "title", "status", "code")}
    return problem(status_of(exc.code), exc.code.message_zh, code=str(exc.code), extra=detail)


def validation_error(
    _request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, object]]:
    fields: list[str] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict) and item.get("key"):
            fields.append(_field_name(str(item["key"]), str(item.get("message", ""))))
    return problem(
        HTTP_400_BAD_REQUEST,
        ErrorCode.MALFORMED_REQUEST.message_zh,
        code=str(ErrorCode.MALFORMED_REQUEST),
        extra={"fields": fields},
    )


# msgspec names the failing place as "at `$.postings[0].amount`" and an unknown member as
# "unknown field `name`". Only identifier-like names are echoed: a value never is.
_AT = re.compile(r"at `\$((?:\.[A-Za-z_][A-Za-z0-9_]{0,63}|\[\d{1,6}\]){1,12})`")
_UNKNOWN = re.compile(r"unknown field `([A-Za-z_][A-Za-z0-9_]{0,63})`")


def _field_name(key: str, message: str) -> str:
    """The body field a validation message is about (``postings[0].amount``), else Litestar's key."""
    at, unknown = _AT.search(message), _UNKNOWN.search(message)
    path = at.group(1).lstrip(".") if at else ""
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
    return path or key


_TITLES = {
    HTTP_404_NOT_FOUND: "请求的地址不存在",
    405: "不支持该请求方法",
    413: "请求内容过大",
    415: "不支持的内容类型",
}


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, object]]:
    status = exc.status_code
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        return internal_error(request, exc)
    if "path_template" not in request.scope:  # no route matched: the access middleware never ran
        log_request(request.method, None, status, None)
    if status == HTTP_400_BAD_REQUEST:  # e.g. a body that is not JSON at all
        code = ErrorCode.MALFORMED_REQUEST
        return problem(status, code.message_zh, code=str(code), extra={"fields": ["body"]})
    return problem(status, _TITLES.get(status, "请求无法处理"))


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    # The exception type only: messages may quote request data.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.scope.get("route_handler"))
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "服务器内部错误")


HANDLERS = {
    LedgerError: ledger_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}


# ------------------------------------------------------------------------------------ OpenAPI

API_PREFIX = "/api/v1/"
AUDIT_PREFIX = "/audit/v1/"
PROBLEM_SCHEMA_NAME = "Problem"

# Every /api/v1 operation may answer these; some answer more (see ``problem_statuses``).
COMMON_STATUSES = (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
)
# The audit paths only read, and most are public (no 401 or 403); 409 is a proof asked beyond the
# latest signed checkpoint (NOT_YET_CHECKPOINTED).
AUDIT_STATUSES = (HTTP_400_BAD_REQUEST, HTTP_404_NOT_FOUND, HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY)

_DESCRIPTIONS = {
    HTTP_400_BAD_REQUEST: "请求格式不正确：字段校验失败（fields 列出字段名）、编号、游标或幂等键格式错误",
    HTTP_401_UNAUTHORIZED: "未登录、令牌无效或已过期；登录时用户名或密码不正确",
    HTTP_403_FORBIDDEN: "没有权限执行此操作（permission 为所需权限）",
    HTTP_404_NOT_FOUND: "请求的对象不存在，或对调用者不可见",
    HTTP_409_CONFLICT: "与现有状态冲突：幂等键已用于另一请求、余额不足、重复登记、已冲正等",
    HTTP_410_GONE: "该人员的个人信息已按本人要求删除",
    HTTP_422_UNPROCESSABLE_ENTITY: "请求格式正确，但不符合业务规则（code 说明原因）",
    HTTP_429_TOO_MANY_REQUESTS: "尝试次数过多；Retry-After 为需等待的秒数",
}

_HEADERS = {
    HTTP_401_UNAUTHORIZED: {
        "WWW-Authenticate": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.STRING), required=True, description="Bearer"
        )
    },
    HTTP_429_TOO_MANY_REQUESTS: {
        "Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER, minimum=1), required=True, description="需等待的秒数"
        )
    },
}


def problem_schema() -> Schema:
    """The body of every error (RFC 9457); detail fields hold identifiers and numbers only."""
    return Schema(
        type=OpenAPIType.OBJECT,
        title=PROBLEM_SCHEMA_NAME,
        description="RFC 9457 problem details：code 为稳定的错误码；其余字段为编号、字段名或数值。",
        required=["type", "title", "status"],
        properties={
            "type": Schema(
                type=OpenAPIType.STRING,
                description="urn:vledger:error:<code>；没有错误码时为 about:blank",
            ),
            "title": Schema(type=OpenAPIType.STRING, description="中文说明"),
            "status": Schema(type=OpenAPIType.INTEGER, minimum=400, maximum=599),
            "code": Schema(type=OpenAPIType.STRING, enum=[str(c) for c in ErrorCode]),
            "fields": Schema(
                type=OpenAPIType.ARRAY,
                items=Schema(type=OpenAPIType.STRING),
                description="校验失败的字段名（不含取值）",
            ),
            "retry_after_s": Schema(type=OpenAPIType.INTEGER, minimum=1),
        },
        additional_properties=Schema(
            type=[OpenAPIType.STRING, OpenAPIType.INTEGER, OpenAPIType.NULL],
            description="错误详情：字段名、编号或数值，从不含个人信息",
        ),
    )


def codes_for(status: int) -> list[str]:
    """The error codes that answer with ``status`` (in ErrorCode order)."""
    return [str(code) for code in ErrorCode if status_of(code) == status]


def problem_statuses(path: str, method: str, *, public: bool = False) -> tuple[int, ...]:
    """The 4xx statuses an operation can answer with; none outside the versioned paths.

    ``public``: the operation needs no token (its security requirements are all empty).
    """
    if path.startswith(AUDIT_PREFIX):
        auth = () if public else (HTTP_401_UNAUTHORIZED, HTTP_403_FORBIDDEN)
        return tuple(sorted((*AUDIT_STATUSES, *auth)))
    if not path.startswith(API_PREFIX):
        return ()
    statuses = list(COMMON_STATUSES)
    changes_people = any(
        part in path for part in ("/people", "/households", "/activities", "/service-records", "/timebank")
    ) or path.endswith(("/accounts", "/users"))
    if method != "get" and changes_people:
        statuses.append(HTTP_410_GONE)  # PERSON_ERASED: an erased person takes part in no new change
    if path == f"{API_PREFIX}auth/login" or path.endswith("/shop/fulfilments"):
        statuses.append(HTTP_429_TOO_MANY_REQUESTS)  # RATE_LIMITED (logins, pickup-code checks)
    return tuple(sorted(statuses))


def problem_response(status: int) -> OpenAPIResponse:
    ref = Reference(ref=f"#/components/schemas/{PROBLEM_SCHEMA_NAME}")
    this_status = Schema(
        type=OpenAPIType.OBJECT,
        properties={
            "status": Schema(type=OpenAPIType.INTEGER, const=status),
            # Optional: an HTTP-level failure (unknown path or method, bad JSON) has no code.
            "code": Schema(type=OpenAPIType.STRING, enum=codes_for(status)),
        },
    )
    return OpenAPIResponse(
        description=_DESCRIPTIONS[status],
        headers=dict(_HEADERS.get(status, {})) or None,
        content={PROBLEM: OpenAPIMediaType(schema=Schema(all_of=[ref, this_status]))},
    )


def document_problems(openapi: OpenAPI) -> OpenAPI:
    """Add the Problem schema and each operation's error responses (replacing Litestar's default 400,
    whose body is not what ``validation_error`` sends)."""
    if openapi.components.schemas is None:
        openapi.components.schemas = {}
    openapi.components.schemas[PROBLEM_SCHEMA_NAME] = problem_schema()
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method)
            if operation is None:
                continue
            public = bool(operation.security) and not any(operation.security or ())
            statuses = problem_statuses(path, method, public=public)
            if statuses:
                responses = operation.responses if operation.responses is not None else {}
                for status in statuses:
                    responses[str(status)] = problem_response(status)
                operation.responses = responses
    return openapi
