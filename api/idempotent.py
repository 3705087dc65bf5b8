"""Idempotency-Key for the non-ledger POSTs: the first answer is stored and replayed.

Ledger transfers use the ledger's own keys (api.keys). Here the first response under a caller's
key — success or business failure — is stored with a hash of the request; a replay returns it with
``Idempotent-Replayed: true``; another request under the same key is IDEMPOTENCY_CONFLICT (409). An
unexpected failure releases the key so that the client can retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Response

from api.deps import Access, Services
from api.errors import PROBLEM, status_of
from ledger.domain.errors import LedgerError
from ledger.services.requests import request_hash

REPLAYED = "Idempotent-Replayed"


def idempotent(
    services: Services,
    access: Access,
    key: str | None,
    route: str,
    payload: object,
    run: Callable[[], object],
    *,
    status_code: int = 201,
    remember: Callable[[Any], object] | None = None,
    recall: Callable[[Any], object] | None = None,
) -> Response[object]:
    """Run ``run`` once per (caller, key); ``payload`` is what makes two requests the same.

    Responses holding personal data must not be stored as they are (erasure could not reach them):
    ``remember`` reduces a response to ids, and ``recall`` rebuilds the response from those ids at
    replay time (an erased person then comes back erased). The request hash covers the payload,
    which is hashed, never stored.
    """
    if key is None:
        return Response(run(), status_code=status_code)
    user_id = access.principal.user_id
    digest = request_hash(route, msgspec.to_builtins(payload))
    stored = services.requests.begin(user_id, key, route, digest)
    if stored is not None:
        media = PROBLEM if stored.status_code >= 400 else "application/json"
        headers = {REPLAYED: "true"}
        body = stored.body
        if recall is not None and stored.status_code < 400:
            body = msgspec.to_builtins(recall(body))
        return Response(body, status_code=stored.status_code, media_type=media, headers=headers)
    try:
        result = run()
        body = msgspec.to_builtins(result)
    except LedgerError as err:
        status = status_of(err.code)
        problem = {"type": f"urn:vledger:error:{err.code}", "title": err.code.message_zh, "status": status}
        problem |= {"code": str(err.code), **err.detail}
        services.requests.finish(user_id, key, status, problem)
        raise
    except BaseException:
        services.requests.release(user_id, key)
        raise
    services.requests.finish(user_id, key, status_code, body if remember is None else remember(result))
    return Response(body, status_code=status_code)
