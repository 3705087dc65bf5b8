"""Every failure as RFC 9457 problem details: business codes map to 4xx, never to a 500.

One table maps ledger error codes to HTTP statuses. Request validation failures name the fields
that failed, never the values (they may be personal data). Unexpected exceptions become a bare 500
that says nothing about the request; the log gets the exception type and the request id only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
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

from ledger.domain.errors import ErrorCode, LedgerError

log = logging.getLogger("vledger.api")

PROBLEM = "application/problem+json"

_C = ErrorCode
STATUS: dict[ErrorCode, int] = {
    _C.UNAUTHENTICATED: HTTP_401_UNAUTHORIZED,
    _C.INVALID_CREDENTIALS: HTTP_401_UNAUTHORIZED,
    _C.RATE_LIMITED: HTTP_429_TOO_MANY_REQUESTS,
    _C.FORBIDDEN: HTTP_403_FORBIDDEN,
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
            _C.INSUFFICIENT_FUNDS,
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
            fields.append(str(item["key"]))
    return problem(
        HTTP_400_BAD_REQUEST,
        ErrorCode.MALFORMED_REQUEST.message_zh,
        code=str(ErrorCode.MALFORMED_REQUEST),
        extra={"fields": fields},
    )


_TITLES = {
    HTTP_404_NOT_FOUND: "请求的地址不存在",
    405: "不支持该请求方法",
    413: "请求内容过大",
    415: "不支持的内容类型",
}


def http_error(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, object]]:
    status = exc.status_code
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        return internal_error(_request, exc)
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
