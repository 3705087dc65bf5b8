"""Parameters shared by many routes: the idempotency header and cursor pagination."""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter, QueryParameter

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        max_length=94,
        description="同一请求重放时返回首次结果；同一键用于不同请求时返回 409。",
    ),
]
Cursor = Annotated[
    str | None, QueryParameter(name="cursor", required=False, description="上一页返回的 next_cursor")
]
Limit = Annotated[
    int | None, QueryParameter(name="limit", required=False, ge=1, le=500, description="每页条数")
]
