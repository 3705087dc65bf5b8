"""Every route × every role: allowed calls succeed, the rest get 403 — or 404 where a volunteer
asks about someone else's record, whose existence must not leak. An admin of another community
gets 403 everywhere here, and a request without a token gets 401.

The expectation comes from ROLE_PERMISSIONS (ledger/domain/roles.py), not from the handlers, so a
handler that checks the wrong permission fails here.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from api.deps import Services
from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.note import Signer
from ledger.domain.roles import ROLE_PERMISSIONS, Permission, Role
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from tests.api.conftest import Client, World, profile

_counter = itertools.count(1)


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    # Builds the path (and body) for one call; fresh resources where a call can only succeed once.
    build: Callable[[World, Services], tuple[str, object | None]]
    permission: Permission | None  # None: any role in the community may call it
    volunteer: int | None = None  # the volunteer's status when it differs from the permission rule


def _c(w: World) -> str:
    return f"/api/v1/communities/{w.community_id}"


def _fresh_transfer(w: World, s: Services) -> uuid.UUID:
    result = s.ledger.transfer(
        TransferRequest(
            w.community_id,
            "award",
            (Posting(w.issuance, Unit.POINTS, -1), Posting(w.other_account, Unit.POINTS, 1)),
            f"fresh-{next(_counter)}",
        )
    )
    return result.transfer_id


def _fresh_person(w: World, s: Services) -> uuid.UUID:
    return s.people.create(
        w.community_id, profile("赵敏"), consent_entry=True, consent_publish=False, entered_by_self=False
    )


def _signed(w: World, s: Services) -> uuid.UUID:
    """The other person's transfer, with a signed checkpoint covering it (a test key)."""
    size, root = s.audit.ingest(w.community_id)
    origin = s.audit.origin(w.community_id)
    note = sign_checkpoint(Checkpoint(origin, size, root), Signer.from_seed(origin, bytes(32)))
    s.audit.store_checkpoint(w.community_id, size, root, note)
    return w.other_transfer


def _transfer_body(w: World) -> dict[str, object]:
    return {
        "kind": "manual_award",
        "postings": [
            {"account_id": str(w.issuance), "unit": "points", "amount": -1},
            {"account_id": str(w.other_account), "unit": "points", "amount": 1},
        ],
    }


P = Permission
CASES = [
    Case("community", "GET", lambda w, s: (_c(w), None), P.COMMUNITY_READ),
    Case("accounts", "GET", lambda w, s: (f"{_c(w)}/accounts", None), P.ACCOUNT_READ, volunteer=200),
    Case(
        "other account",
        "GET",
        lambda w, s: (f"{_c(w)}/accounts/{w.other_account}", None),
        P.ACCOUNT_READ,
        404,
    ),
    Case(
        "own balance",
        "GET",
        lambda w, s: (f"{_c(w)}/accounts/{w.own_account}/balance", None),
        P.ACCOUNT_READ,
        200,
    ),
    Case(
        "other statement",
        "GET",
        lambda w, s: (f"{_c(w)}/accounts/{w.other_account}/statement", None),
        P.ACCOUNT_READ,
        404,
    ),
    Case(
        "other lots",
        "GET",
        lambda w, s: (f"{_c(w)}/accounts/{w.other_account}/lots", None),
        P.ACCOUNT_READ,
        404,
    ),
    Case(
        "export other",
        "GET",
        lambda w, s: (f"{_c(w)}/accounts/{w.other_account}/statement/export", None),
        P.STATEMENT_EXPORT,
        404,
    ),
    Case(
        "export own",
        "GET",
        lambda w, s: (f"{_c(w)}/accounts/{w.own_account}/statement/export?format=xlsx", None),
        P.STATEMENT_EXPORT,
        200,
    ),
    Case(
        "open account",
        "POST",
        lambda w, s: (
            f"{_c(w)}/accounts",
            {"owner_kind": "person", "owner_id": str(_fresh_person(w, s)), "unit": "coin_minutes"},
        ),
        P.ACCOUNT_OPEN,
    ),
    Case("post transfer", "POST", lambda w, s: (f"{_c(w)}/transfers", _transfer_body(w)), P.TRANSFER_POST),
    Case(
        "other transfer",
        "GET",
        lambda w, s: (f"{_c(w)}/transfers/{w.other_transfer}", None),
        P.TRANSFER_READ,
        404,
    ),
    Case(
        "reverse",
        "POST",
        lambda w, s: (f"{_c(w)}/transfers/{_fresh_transfer(w, s)}/reversal", {"reason": "录入错误"}),
        P.TRANSFER_POST,
    ),
    Case("people", "GET", lambda w, s: (f"{_c(w)}/people", None), P.PERSON_READ),
    Case(
        "create person",
        "POST",
        lambda w, s: (f"{_c(w)}/people", {"profile": {"name": "孙丽"}, "consent_entry": True}),
        P.PERSON_WRITE,
    ),
    Case("other person", "GET", lambda w, s: (f"{_c(w)}/people/{w.other_person}", None), P.PERSON_READ, 404),
    Case(
        "own person", "GET", lambda w, s: (f"{_c(w)}/people/{w.volunteer_person}", None), P.PERSON_READ, 200
    ),
    Case(
        "consent of other",
        "PATCH",
        lambda w, s: (f"{_c(w)}/people/{w.other_person}/consent", {"consent_publish": True}),
        P.PERSON_WRITE,
    ),
    Case(
        "own consent",
        "PATCH",
        lambda w, s: (f"{_c(w)}/people/{w.volunteer_person}/consent", {"consent_publish": True}),
        P.PERSON_WRITE,
        200,
    ),
    Case(
        "erase", "POST", lambda w, s: (f"{_c(w)}/people/{_fresh_person(w, s)}/erasure", None), P.PERSON_ERASE
    ),
    Case("households", "GET", lambda w, s: (f"{_c(w)}/households", None), P.HOUSEHOLD_READ),
    Case(
        "create household",
        "POST",
        lambda w, s: (f"{_c(w)}/households", {"code": f"H{next(_counter)}"}),
        P.HOUSEHOLD_WRITE,
    ),
    Case("settings", "GET", lambda w, s: (f"{_c(w)}/settings", None), P.SETTINGS_READ),
    Case("settings versions", "GET", lambda w, s: (f"{_c(w)}/settings/versions", None), P.SETTINGS_READ),
    Case(
        "publish settings",
        "POST",
        lambda w, s: (
            f"{_c(w)}/settings/versions",
            {
                "effective_from": (date(2030, 1, 1) + timedelta(days=next(_counter))).isoformat(),
                "params": {},
            },
        ),
        P.SETTINGS_WRITE,
    ),
    Case("me", "GET", lambda w, s: ("/api/v1/me", None), None),
    Case(
        "log entries",
        "GET",
        lambda w, s: (f"/audit/v1/logs/{w.community_id}/entries?start=0&end=1", None),
        P.LOG_ENTRIES_READ,
    ),
    Case(
        "proof of other transfer",
        "GET",
        lambda w, s: (f"{_c(w)}/transfers/{_signed(w, s)}/proof", None),
        P.TRANSFER_READ,
        404,
    ),
]

ROLES = [r.value for r in Role]


def expected(case: Case, role: str) -> int:
    if case.permission is None:
        return 200
    if role == "outsider":
        return 403
    if role == Role.VOLUNTEER and case.volunteer is not None:
        return case.volunteer
    return 200 if case.permission in ROLE_PERMISSIONS[Role(role)] else 403


def call(client: Client, world: World, services: Services, case: Case, who: str | None) -> int:
    path, body = case.build(world, services)
    headers = world.auth(who) if who else {}
    response = client.request(case.method, path, json=body, headers=headers)
    assert response.headers["content-type"].startswith(
        ("application/json", "application/problem+json", "text/csv", "application/vnd.openxml")
    )
    return response.status_code


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_route_by_role(client: Client, world: World, api_services: Services, case: Case) -> None:
    got = {}
    for role in [*ROLES, "outsider"]:
        status = call(client, world, api_services, case, role)
        got[role] = status // 100 * 100 if status < 300 else status  # 200 and 201 both mean allowed
    want = {role: expected(case, role) for role in [*ROLES, "outsider"]}
    assert got == want


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_route_without_a_token_is_401(
    client: Client, world: World, api_services: Services, case: Case
) -> None:
    assert call(client, world, api_services, case, None) == 401


def test_the_matrix_covers_every_permission() -> None:
    covered = {c.permission for c in CASES}
    missing = set(Permission) - covered - {Permission.PERSON_READ_FULL, Permission.USER_MANAGE}
    assert missing == set()  # READ_FULL and USER_MANAGE have their own tests (masking, users)
