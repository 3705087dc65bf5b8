"""Fast paths for the hottest requests: staff's balance reads and transfer posts.

After routing, Litestar still builds the handler's signature model, resolves its dependencies and
builds the response object: about 0.2–0.3 ms of CPU per request here, more than a balance read
itself. This middleware runs after routing (so metrics and the access log keep the route template)
and answers the common case on its own, sending the bytes the route would send
(``tests/api/test_fastpath.py`` and ``test_fastpath_post.py`` ask both and compare):

- ``GET …/accounts/{account_id}/balance``: a bearer token already in the identity cache, a caller
  whose ``account:read`` permission is known from the cached region, an account that exists.
- ``POST …/transfers``: a cached token whose ``transfer:post`` permission is known from the cached
  region, a JSON body that decodes strictly as ``TransferIn``, at most one valid
  ``Idempotency-Key``. The transfer is then posted as the route posts it; a business failure is
  raised for the application's handler to answer, as the route's is.

Anything else — no or unknown token, a volunteer, an unknown account, an odd header, a body that
does not decode strictly — goes on to the route (with the body as received), which decides as
always.
"""

from __future__ import annotations

import uuid
from collections import deque

import msgspec
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from api.deps import Access
from api.keys import MAX_CLIENT_KEY
from api.routes.ledger import count_transfer, transfer_request
from api.schemas import Balance, TransferIn, TransferOut
from ledger.domain.errors import LedgerError
from ledger.domain.roles import Permission, Principal

__all__ = ["BALANCE_ROUTE", "TRANSFERS_ROUTE", "fast_paths"]

#: The route templates the fast paths answer (as Litestar reports them).
BALANCE_ROUTE = "/api/v1/communities/{community_id}/accounts/{account_id}/balance"
TRANSFERS_ROUTE = "/api/v1/communities/{community_id}/transfers"
#: A larger body goes to the route (a transfer of 64 postings with metadata is far smaller).
MAX_BODY = 64 * 1024
_encode = msgspec.json.Encoder().encode
_decode_transfer = msgspec.json.Decoder(TransferIn).decode
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None
    return None


def _staff(scope: Scope, permission: Permission, community_id: int) -> Principal | None:
    """The caller, if their bearer token is in the identity cache and the cached region shows
    that they hold ``permission`` in the community; None to let the route decide."""
    secret = _bearer(scope)
    services = scope["app"].state.services
    principal: Principal | None = None if secret is None else services.identity.cached(secret)
    if principal is None or not Access(services, principal).allowed_cached(permission, community_id):
        return None
    return principal


async def _balance_body(scope: Scope) -> bytes | None:
    """The response body, or None to let the route answer."""
    params: dict[str, object] = dict(scope.get("path_params") or {})
    community_id, account_id = params.get("community_id"), params.get("account_id")
    if type(community_id) is not int or type(account_id) is not uuid.UUID or scope.get("query_string"):
        return None
    if _staff(scope, Permission.ACCOUNT_READ, community_id) is None:
        return None
    services = scope["app"].state.services
    try:
        view = await services.account_reads.get(community_id, account_id)
    except LedgerError:
        return None
    return _encode(Balance.of(view))


def _single_header(scope: Scope, name: bytes) -> tuple[int, bytes]:
    """How many ``name`` headers the request has, and the value of the last one."""
    count, value = 0, b""
    for key, item in scope["headers"]:
        if key == name:
            count, value = count + 1, item
    return count, value


async def _read_body(receive: Receive) -> tuple[bytes | None, list[ReceiveMessage]]:
    """The whole body (None if it is larger than MAX_BODY or the client left), and the messages
    read, for the route to read again."""
    messages: list[ReceiveMessage] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            return None, messages
        if not message.get("more_body", False):
            return b"".join(chunks), messages


def _replaying(messages: list[ReceiveMessage], receive: Receive) -> Receive:
    pending = deque(messages)

    async def replay() -> ReceiveMessage:
        return pending.popleft() if pending else await receive()

    return replay


async def _post_transfer(scope: Scope, body: bytes) -> tuple[int, bytes] | None:
    """Post the transfer and answer (status, body); None to let the route answer. A business
    failure raises, for the application's exception handler (as the route's would)."""
    params: dict[str, object] = dict(scope.get("path_params") or {})
    community_id = params.get("community_id")
    if type(community_id) is not int or scope.get("query_string"):
        return None
    count, content_type = _single_header(scope, b"content-type")
    if count != 1 or content_type.lower() != b"application/json":
        return None
    count, key = _single_header(scope, b"idempotency-key")
    client_key = key.decode("latin-1") if count else None
    if count > 1 or (client_key is not None and not 1 <= len(client_key) <= MAX_CLIENT_KEY):
        return None
    principal = _staff(scope, Permission.TRANSFER_POST, community_id)
    if principal is None:
        return None
    try:
        data = _decode_transfer(body)
    except msgspec.MsgspecError:
        return None
    request = transfer_request(community_id, data, principal.user_id, client_key)
    result = await scope["app"].state.services.transfers.transfer_async(request)
    return count_transfer(result), _encode(TransferOut.of(result))


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def fast_paths(app: ASGIApp) -> ASGIApp:
    """ASGI middleware (innermost): answer staff's balance reads and transfer posts without the
    handler machinery."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        template, method = scope.get("path_template"), scope.get("method")
        if template == BALANCE_ROUTE and method == "GET":
            body = await _balance_body(scope)
            if body is not None:
                await _answer(send, 200, body)
                return
        elif template == TRANSFERS_ROUTE and method == "POST":
            received, messages = await _read_body(receive)
            answer = None if received is None else await _post_transfer(scope, received)
            if answer is not None:
                await _answer(send, *answer)
                return
            receive = _replaying(messages, receive)
        await app(scope, receive, send)

    return middleware
