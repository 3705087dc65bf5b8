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

import certificates_world as cw  # this directory is on sys.path (rootdir-less tests)
import pytest
import records_world as rw  # this directory is on sys.path (rootdir-less tests)
import timebank_api_world as tw  # this directory is on sys.path (rootdir-less tests)

from api.deps import Services
from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.note import Signer
from ledger.domain.roles import ROLE_PERMISSIONS, Permission, Role
from ledger.domain.shop import FundingSource, ItemSpec
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.shop import PlacedOrder
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
    staff: int | None = None  # every other role's status, where only the volunteer may call (own record)
    only: frozenset[str] | None = None  # exactly these roles may call (a scope no permission states)


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


def _shop_item(w: World, s: Services) -> uuid.UUID:
    item = s.shop.create_item(
        w.community_id,
        ItemSpec("洗衣液", 1, 1500, FundingSource.DONOR, "村委会"),
        actor_id=w.user_ids["community_admin"],
        stock=100,
    )
    return item.item_id


def _other_order(w: World, s: Services) -> PlacedOrder:
    return s.shop.place_order(
        w.community_id,
        w.other_person,
        _shop_item(w, s),
        idempotency_key=f"shop-{next(_counter)}",
        actor_id=w.user_ids["community_admin"],
    )


_ITEM_BODY = {"name": "大米 10kg", "price_points": 40, "reference_value_fen": 6000,
              "funding_source": "village_collective", "pickup_point": "村委会"}  # fmt: skip


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
    # Service records (api/routes/service_records.py, corrections.py, record_import.py)
    Case("activities", "GET", lambda w, s: (f"{_c(w)}/activities", None), P.RECORD_READ),
    Case(
        "activity",
        "GET",
        lambda w, s: (f"{_c(w)}/activities/{rw.records(w, s).activity.activity_id}", None),
        P.RECORD_READ,
    ),
    Case(
        "create activity",
        "POST",
        lambda w, s: (
            f"{_c(w)}/activities",
            {
                "name": "垃圾分类宣传",
                "start_date": rw.today().isoformat(),
                "end_date": rw.today().isoformat(),
                "place": "小区广场",
                "content": "宣传垃圾分类",
                "organising_unit": "幸福社区居委会",
                "leader_user_id": str(rw.leader(w)),
            },
        ),
        P.ACTIVITY_WRITE,
    ),
    Case("records", "GET", lambda w, s: (f"{_c(w)}/service-records", None), P.RECORD_READ, 200),
    Case(
        "own stars",
        "GET",
        lambda w, s: (f"{_c(w)}/people/{w.volunteer_person}/stars", None),
        P.RECORD_READ,
        200,
    ),
    Case(
        "other's stars",
        "GET",
        lambda w, s: (f"{_c(w)}/people/{w.other_person}/stars", None),
        P.RECORD_READ,
        404,
    ),
    Case(
        "other record",
        "GET",
        lambda w, s: (f"{_c(w)}/service-records/{rw.records(w, s).other_record.record_id}", None),
        P.RECORD_READ,
        404,
    ),
    Case(
        "own record",
        "GET",
        lambda w, s: (f"{_c(w)}/service-records/{rw.records(w, s).own_record.record_id}", None),
        P.RECORD_READ,
        200,
    ),
    Case(
        "history of other record",
        "GET",
        lambda w, s: (f"{_c(w)}/service-records/{rw.records(w, s).other_record.record_id}/history", None),
        P.RECORD_READ,
        404,
    ),
    Case(
        "create record",
        "POST",
        lambda w, s: (
            f"{_c(w)}/service-records",
            {
                "activity_id": str(rw.records(w, s).activity.activity_id),
                "person_id": str(w.other_person),
                "service_date": rw.today().isoformat(),
                "start_time": "14:00",
                "end_time": "16:00",
            },
        ),
        P.RECORD_WRITE,
    ),
    Case(
        "submit record",
        "POST",
        lambda w, s: (f"{_c(w)}/service-records/{rw.fresh(w, s).record_id}/submission", None),
        P.RECORD_WRITE,
    ),
    Case(
        "verify record",
        "POST",
        lambda w, s: (
            f"{_c(w)}/service-records/{rw.fresh(w, s, state='submitted').record_id}/verification",
            None,
        ),
        P.RECORD_VERIFY,
    ),
    Case(
        "reject record",
        "POST",
        lambda w, s: (
            f"{_c(w)}/service-records/{rw.fresh(w, s, state='submitted').record_id}/rejection",
            {"reason": "时间有误"},
        ),
        P.RECORD_VERIFY,
    ),
    Case(
        "post record",
        "POST",
        lambda w, s: (f"{_c(w)}/service-records/{rw.fresh(w, s, state='verified').record_id}/posting", None),
        P.RECORD_VERIFY,
    ),
    Case(
        "override deadline",
        "POST",
        lambda w, s: (
            f"{_c(w)}/service-records/{rw.fresh(w, s).record_id}/deadline-override",
            {"reason": "活动方延迟报送"},
        ),
        P.RECORD_OVERRIDE,
    ),
    Case(
        "import sheet (dry run)",
        "POST",
        lambda w, s: (f"{_c(w)}/service-records/imports?dry_run=true", None),
        P.RECORD_WRITE,
    ),
    Case(
        "corrections of other record",
        "GET",
        lambda w, s: (f"{_c(w)}/service-records/{rw.records(w, s).other_record.record_id}/corrections", None),
        P.RECORD_READ,
        404,
    ),
    Case(
        "file correction of own record",
        "POST",
        lambda w, s: (
            f"{_c(w)}/service-records/{rw.own_posted(w, s).record_id}/corrections",
            {"start_time": "09:00", "end_time": "12:00", "reason": "实际服务到12点"},
        ),
        P.RECORD_READ,  # no permission files a correction: only the record's own volunteer may
        200,
        staff=403,
    ),
    Case("corrections", "GET", lambda w, s: (f"{_c(w)}/corrections", None), P.RECORD_READ, 200),
    Case(
        "other correction",
        "GET",
        lambda w, s: (f"{_c(w)}/corrections/{rw.records(w, s).other_correction.correction_id}", None),
        P.RECORD_READ,
        404,
    ),
    Case(
        "accept correction",
        "POST",
        lambda w, s: (f"{_c(w)}/corrections/{rw.file_correction(w, s).correction_id}/acceptance", None),
        P.CORRECTION_DECIDE,
    ),
    Case(
        "reject correction",
        "POST",
        lambda w, s: (
            f"{_c(w)}/corrections/{rw.file_correction(w, s).correction_id}/rejection",
            {"reason": "与签到表不符"},
        ),
        P.CORRECTION_DECIDE,
    ),
    Case(
        "issue certificate",
        "POST",
        lambda w, s: (f"{_c(w)}/people/{cw.signed(w, s).other}/certificates", {}),
        P.CERTIFICATE_ISSUE,
        404,
    ),
    Case(
        "issue own certificate",
        "POST",
        lambda w, s: (f"{_c(w)}/people/{cw.signed(w, s).own}/certificates", {}),
        P.CERTIFICATE_ISSUE,
        200,
    ),
    Case(
        "certificates of other",
        "GET",
        lambda w, s: (f"{_c(w)}/people/{w.other_person}/certificates", None),
        P.RECORD_READ,
        404,
    ),
    Case(
        "other certificate",
        "GET",
        lambda w, s: (f"{_c(w)}/certificates/{cw.other_certificate(w, s)}", None),
        P.RECORD_READ,
        404,
    ),
    Case(
        "other certificate bundle",
        "GET",
        lambda w, s: (f"{_c(w)}/certificates/{cw.other_certificate(w, s)}/bundle", None),
        P.RECORD_READ,
        404,
    ),
    # The time bank (api/routes/timebank.py, timebank_people.py): staff who read transfers see every
    # exchange; a volunteer sees the exchanges they are a party to, and others' are 404.
    Case("exchanges", "GET", lambda w, s: (f"{_c(w)}/timebank/exchanges", None), P.TRANSFER_READ, 200),
    Case(
        "other exchange",
        "GET",
        lambda w, s: (f"{_c(w)}/timebank/exchanges/{tw.exchange(w, s)}", None),
        P.TRANSFER_READ,
        404,
    ),
    Case(
        "own exchange",
        "GET",
        lambda w, s: (
            f"{_c(w)}/timebank/exchanges/{tw.exchange(w, s, recipient=tw.volunteer_elder(w, s))}",
            None,
        ),
        P.TRANSFER_READ,
        200,
    ),
    Case(
        "history of other exchange",
        "GET",
        lambda w, s: (f"{_c(w)}/timebank/exchanges/{tw.exchange(w, s)}/history", None),
        P.TRANSFER_READ,
        404,
    ),
    Case(
        "request exchange for someone",
        "POST",
        lambda w, s: (
            f"{_c(w)}/timebank/exchanges",
            {"recipient_person_id": str(tw.elder_with_coin(w, s)), "service": "陪诊", "planned_minutes": 60},
        ),
        P.TIMEBANK_MANAGE,
    ),
    Case(
        "request own exchange",
        "POST",
        lambda w, s: (
            f"{_c(w)}/timebank/exchanges",
            {"recipient_person_id": str(tw.volunteer_elder(w, s)), "service": "陪诊", "planned_minutes": 60},
        ),
        P.TIMEBANK_MANAGE,
        200,
    ),
    Case(
        "match exchange",
        "POST",
        lambda w, s: (
            f"{_c(w)}/timebank/exchanges/{tw.exchange(w, s)}/match",
            {"provider_person_id": str(tw.person(w, s, 40))},
        ),
        P.TIMEBANK_MANAGE,
        404,
    ),
    Case(
        "start own service",
        "POST",
        lambda w, s: (
            f"{_c(w)}/timebank/exchanges/{tw.exchange(w, s, 'matched', provider=w.volunteer_person)}/start",
            None,
        ),
        P.TIMEBANK_MANAGE,
        200,
    ),
    Case(
        "confirm own exchange",
        "POST",
        lambda w, s: (
            f"{_c(w)}/timebank/exchanges/"
            f"{tw.exchange(w, s, 'in_service', recipient=tw.volunteer_elder(w, s))}/confirmation",
            {"served_minutes": 60},
        ),
        P.TIMEBANK_MANAGE,  # no permission confirms: only the recipient may
        200,
        staff=403,
    ),
    Case(
        "settle other exchange",
        "POST",
        lambda w, s: (f"{_c(w)}/timebank/exchanges/{tw.exchange(w, s, 'confirmed')}/settlement", None),
        P.TIMEBANK_MANAGE,
        404,
    ),
    Case(
        "cancel other exchange",
        "POST",
        lambda w, s: (f"{_c(w)}/timebank/exchanges/{tw.exchange(w, s)}/cancellation", {"reason": "不需要了"}),
        P.TIMEBANK_MANAGE,
        404,
    ),
    Case(
        "dispute other exchange",
        "POST",
        lambda w, s: (
            f"{_c(w)}/timebank/exchanges/{tw.exchange(w, s, 'in_service')}/dispute",
            {"reason": "服务未完成"},
        ),
        P.TIMEBANK_MANAGE,
        404,
    ),
    Case(
        "resolve dispute",
        "POST",
        lambda w, s: (
            f"{_c(w)}/timebank/exchanges/{tw.exchange(w, s, 'disputed')}/resolution",
            {"resolution": "cancel"},
        ),
        P.TIMEBANK_MANAGE,
        404,
    ),
    Case(
        "give coins to a relative",
        "POST",
        lambda w, s: (
            f"{_c(w)}/timebank/gifts",
            {
                "recipient_person_id": str(tw.relative(w, s, tw.volunteer_elder(w, s))),
                "amount_coin_minutes": 30,
            },
        ),
        P.TIMEBANK_MANAGE,  # no permission gives: the giver is the caller's own person
        200,
        staff=403,
    ),
    Case(
        "relations of other",
        "GET",
        lambda w, s: (f"{_c(w)}/people/{w.other_person}/relations", None),
        P.TIMEBANK_MANAGE,
        404,
    ),
    Case(
        "own relations",
        "GET",
        lambda w, s: (f"{_c(w)}/people/{w.volunteer_person}/relations", None),
        P.TIMEBANK_MANAGE,
        200,
    ),
    Case(
        "record relation",
        "POST",
        lambda w, s: (
            f"{_c(w)}/people/{tw.person(w, s, 40)}/relations",
            {"relative_person_id": str(tw.person(w, s, 20)), "kind": "child"},
        ),
        P.TIMEBANK_MANAGE,
    ),
    Case(
        "end relation",
        "POST",
        lambda w, s: (
            f"{_c(w)}/people/{w.other_person}/relations/{tw.relation(w, s, w.other_person)}/ending",
            None,
        ),
        P.TIMEBANK_MANAGE,
    ),
    Case(
        "hardship flags of other",
        "GET",
        lambda w, s: (f"{_c(w)}/people/{w.other_person}/hardship-flags", None),
        P.TIMEBANK_MANAGE,
        404,
    ),
    Case(
        "own hardship flags",
        "GET",
        lambda w, s: (f"{_c(w)}/people/{w.volunteer_person}/hardship-flags", None),
        P.TIMEBANK_MANAGE,
        200,
    ),
    Case(
        "grant hardship flag",
        "POST",
        lambda w, s: (f"{_c(w)}/people/{tw.person(w, s, 62)}/hardship-flags", {"valid_from": "2025-01-01"}),
        P.TIMEBANK_MANAGE,
    ),
    Case(
        "revoke hardship flag",
        "POST",
        lambda w, s: (
            f"{_c(w)}/people/{w.other_person}/hardship-flags/{tw.flag(w, s, w.other_person)}/revocation",
            None,
        ),
        P.TIMEBANK_MANAGE,
    ),
    Case(
        "cross-community of the community",
        "GET",
        lambda w, s: (f"{_c(w)}/timebank/cross-community", None),
        P.COMMUNITY_READ,
    ),
    Case(
        "region cross-community",
        "GET",
        lambda w, s: (f"/api/v1/regions/{w.region_id}/cross-community", None),
        P.TIMEBANK_MANAGE,
        only=frozenset({Role.REGION_ADMIN.value}),
    ),
    Case(
        "switch region cross-community",
        "POST",
        lambda w, s: (f"/api/v1/regions/{w.region_id}/cross-community", {"enabled": False}),
        P.TIMEBANK_MANAGE,
        only=frozenset({Role.REGION_ADMIN.value}),
    ),
    # Points supermarket (shop:catalog, shop:fulfil, shop:report); ordering is a volunteer's own act.
    Case("shop items", "GET", lambda w, s: (f"{_c(w)}/shop/items", None), P.COMMUNITY_READ),
    Case("shop item", "GET", lambda w, s: (f"{_c(w)}/shop/items/{_shop_item(w, s)}", None), P.COMMUNITY_READ),
    Case("create shop item", "POST", lambda w, s: (f"{_c(w)}/shop/items", _ITEM_BODY), P.SHOP_CATALOG),
    Case(
        "update shop item",
        "PUT",
        lambda w, s: (f"{_c(w)}/shop/items/{_shop_item(w, s)}", _ITEM_BODY),
        P.SHOP_CATALOG,
    ),
    Case(
        "restock",
        "POST",
        lambda w, s: (f"{_c(w)}/shop/items/{_shop_item(w, s)}/restock", {"quantity": 5}),
        P.SHOP_CATALOG,
    ),
    Case(
        "write off",
        "POST",
        lambda w, s: (f"{_c(w)}/shop/items/{_shop_item(w, s)}/write-off", {"quantity": 1, "note": "破损"}),
        P.SHOP_CATALOG,
    ),
    Case(
        "place shop order",
        "POST",
        lambda w, s: (f"{_c(w)}/shop/orders", {"item_id": str(_shop_item(w, s))}),
        P.COMMUNITY_READ,
        only=frozenset({Role.VOLUNTEER.value}),
    ),
    Case("shop orders", "GET", lambda w, s: (f"{_c(w)}/shop/orders", None), P.SHOP_FULFIL, volunteer=200),
    Case(
        "other shop order",
        "GET",
        lambda w, s: (f"{_c(w)}/shop/orders/{_other_order(w, s).order.order_id}", None),
        P.SHOP_FULFIL,
        404,
    ),
    Case(
        "cancel other shop order",
        "POST",
        lambda w, s: (f"{_c(w)}/shop/orders/{_other_order(w, s).order.order_id}/cancellation", None),
        P.SHOP_FULFIL,
        404,
    ),
    Case(
        "fulfil by pickup code",
        "POST",
        lambda w, s: (f"{_c(w)}/shop/fulfilments", {"code": _other_order(w, s).pickup_code}),
        P.SHOP_FULFIL,
    ),
    Case("redemption report", "GET", lambda w, s: (f"{_c(w)}/shop/reports/redemptions", None), P.SHOP_REPORT),
    Case(
        "stock report csv",
        "GET",
        lambda w, s: (f"{_c(w)}/shop/reports/stock?format=csv", None),
        P.SHOP_REPORT,
    ),
    Case(
        "funding report xlsx",
        "GET",
        lambda w, s: (f"{_c(w)}/shop/reports/funding?format=xlsx", None),
        P.SHOP_REPORT,
    ),
]

ROLES = [r.value for r in Role]


def expected(case: Case, role: str) -> int:
    if case.permission is None:
        return 200
    if role == "outsider":
        return 403
    if case.only is not None:
        return 200 if role in case.only else 403
    if role == Role.VOLUNTEER and case.volunteer is not None:
        return case.volunteer
    if role != Role.VOLUNTEER and case.staff is not None:
        return case.staff
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
