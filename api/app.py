"""The Litestar application: health, readiness and balance reads (the full API comes with issue 3)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.status_codes import HTTP_404_NOT_FOUND, HTTP_422_UNPROCESSABLE_ENTITY

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.services.ledger import Ledger

_STATUS = {
    ErrorCode.ACCOUNT_NOT_FOUND: HTTP_404_NOT_FOUND,
    ErrorCode.COMMUNITY_NOT_FOUND: HTTP_404_NOT_FOUND,
    ErrorCode.TRANSFER_NOT_FOUND: HTTP_404_NOT_FOUND,
}


@dataclass(frozen=True, slots=True)
class BalanceOut:
    account_id: str
    unit: str
    posted: int
    pending_in: int
    pending_out: int
    available: int


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", sync_to_thread=True)
def ready(state: State) -> dict[str, str]:
    ledger: Ledger = state.ledger
    ledger.ping()
    return {"status": "ready"}


@get("/api/v1/communities/{community_id:int}/accounts/{account_id:uuid}/balance", sync_to_thread=True)
def balance(state: State, community_id: FromPath[int], account_id: FromPath[uuid.UUID]) -> BalanceOut:
    view = state.ledger.balance(community_id, account_id)
    return BalanceOut(
        str(view.account_id), str(view.unit), view.posted, view.pending_in, view.pending_out, view.available
    )


def ledger_error(_request: Request[object, object, State], exc: LedgerError) -> Response[dict[str, object]]:
    """Business failures are RFC 9457 problem details with the ledger's stable code, never a 500."""
    status = _STATUS.get(exc.code, HTTP_422_UNPROCESSABLE_ENTITY)
    body: dict[str, object] = {
        "type": f"urn:vledger:error:{exc.code}",
        "title": exc.code.message_zh,
        "status": status,
        "code": str(exc.code),
        **{k: v for k, v in exc.detail.items() if k != "code"},
    }
    return Response(body, status_code=status, media_type="application/problem+json")


def create_app(ledger: Ledger) -> Litestar:
    return Litestar(
        route_handlers=[health, ready, balance],
        state=State({"ledger": ledger}),
        exception_handlers={LedgerError: ledger_error},
    )
