"""The points supermarket over HTTP: scenario 6, roles, idempotency, problems, reports."""

from __future__ import annotations

import uuid

from api.deps import Services
from ledger.domain.accounts import AccountSpec, OwnerKind, member_account_flags
from ledger.domain.roles import Grant, PersonRef, Role
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from tests.api.conftest import Client, World

ITEM = {
    "name": "食用油 5L",
    "price_points": 50,
    "reference_value_fen": 6000,
    "funding_source": "donor",
    "pickup_point": "村委会一楼",
    "limit_scope": "household",
    "stock": 1,
}


def _c(w: World) -> str:
    return f"/api/v1/communities/{w.community_id}/shop"


def _household_with_points(s: Services, w: World, person: uuid.UUID, points: int) -> uuid.UUID:
    household = s.households.create(w.community_id, f"H{uuid.uuid4().hex[:6]}", member_ids=[person])
    spec = AccountSpec(
        OwnerKind.HOUSEHOLD, Unit.POINTS, member_account_flags(Unit.POINTS), owner_id=household
    )
    account = s.communities.open_account(w.community_id, spec)
    award = (Posting(w.issuance, Unit.POINTS, -points), Posting(account, Unit.POINTS, points))
    s.ledger.transfer(TransferRequest(w.community_id, "award", award, f"hh-{household}"))
    return account


def _second_volunteer(s: Services, w: World) -> dict[str, str]:
    user = s.identity.create_user(
        f"vol2-{uuid.uuid4().hex[:8]}", None, person=PersonRef(w.community_id, w.other_person)
    )
    s.identity.grant(user, Grant(Role.VOLUNTEER, community_id=w.community_id))
    return {"Authorization": f"Bearer {s.identity.issue_api_token(user, 'tests').secret}"}


def test_scenario_6_over_http(client: Client, world: World, api_services: Services) -> None:
    s, w = api_services, world
    mine = _household_with_points(s, w, w.volunteer_person, 120)
    theirs = _household_with_points(s, w, w.other_person, 120)
    other = _second_volunteer(s, w)
    created = client.post(f"{_c(w)}/items", json=ITEM, headers=w.auth("community_admin"))
    assert created.status_code == 201, created.text
    item_id = created.json()["item_id"]
    first = client.post(f"{_c(w)}/orders", json={"item_id": item_id}, headers=w.auth("volunteer"))
    assert first.status_code == 201 and first.json()["order"]["state"] == "placed"
    code = first.json()["pickup_code"]
    lost = client.post(f"{_c(w)}/orders", json={"item_id": item_id}, headers=other)
    assert lost.status_code == 409
    assert lost.headers["content-type"].startswith("application/problem+json")
    assert lost.json()["code"] == "OUT_OF_STOCK"
    assert s.ledger.balance(w.community_id, theirs).posted == 120
    assert s.ledger.balance(w.community_id, theirs).pending_out == 0
    done = client.post(f"{_c(w)}/fulfilments", json={"code": code}, headers=w.auth("shop_clerk"))
    assert done.status_code == 200 and done.json()["state"] == "fulfilled"
    assert s.ledger.balance(w.community_id, mine).posted == 70
    stock = client.get(f"{_c(w)}/reports/stock", headers=w.auth("auditor")).json()
    assert stock["rows"] == [[item_id, "食用油 5L", "donor", 0, 0, 1, 0, 1]]
    funding = client.get(f"{_c(w)}/reports/funding", headers=w.auth("shop_clerk")).json()
    assert funding["rows"] == [["donor", 1, 1, 50, 6000]]
    csv = client.get(f"{_c(w)}/reports/redemptions?format=csv", headers=w.auth("auditor"))
    assert csv.content.startswith("\ufeff月份".encode()) and "食用油 5L" in csv.content.decode()


def test_idempotent_order_wrong_code_and_privacy(
    client: Client, world: World, api_services: Services
) -> None:
    w = world
    item = {**ITEM, "price_points": 10, "limit_scope": "person", "stock": 5}
    item_id = client.post(f"{_c(w)}/items", json=item, headers=w.auth("community_admin")).json()["item_id"]
    headers = {**w.auth("volunteer"), "Idempotency-Key": "order-1"}
    first = client.post(f"{_c(w)}/orders", json={"item_id": item_id}, headers=headers)
    again = client.post(f"{_c(w)}/orders", json={"item_id": item_id}, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["pickup_code"] is None
    assert again.json()["order"]["order_id"] == first.json()["order"]["order_id"]
    conflict = client.post(f"{_c(w)}/orders", json={"item_id": item_id, "quantity": 2}, headers=headers)
    assert conflict.status_code == 409 and conflict.json()["code"] == "IDEMPOTENCY_CONFLICT"
    assert api_services.ledger.balance(w.community_id, w.own_account).pending_out == 10
    wrong = client.post(f"{_c(w)}/fulfilments", json={"code": "2345-6789"}, headers=w.auth("shop_clerk"))
    assert wrong.status_code == 422 and wrong.json()["code"] == "PICKUP_CODE_INVALID"
    assert set(wrong.json()) <= {"type", "title", "status", "code", "field"}
    # The volunteer's list holds only their own order; staff see it too; the code is never shown again.
    order_id = first.json()["order"]["order_id"]
    mine = client.get(f"{_c(w)}/orders", headers=w.auth("volunteer")).json()["items"]
    assert [o["order_id"] for o in mine] == [order_id] and "pickup_code" not in mine[0]
    assert client.get(f"{_c(w)}/orders/{order_id}", headers=w.auth("shop_clerk")).status_code == 200
    cancelled = client.post(f"{_c(w)}/orders/{order_id}/cancellation", headers=w.auth("volunteer"))
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert api_services.ledger.balance(w.community_id, w.own_account).pending_out == 0


def test_catalog_rules_and_what_volunteers_see(client: Client, world: World) -> None:
    w = world
    bad = client.post(f"{_c(w)}/items", json={**ITEM, "price_points": 0}, headers=w.auth("community_admin"))
    assert bad.status_code == 422 and bad.json()["field"] == "price_points"
    hidden = {**ITEM, "active": False}
    item_id = client.post(f"{_c(w)}/items", json=hidden, headers=w.auth("community_admin")).json()["item_id"]
    assert client.get(f"{_c(w)}/items/{item_id}", headers=w.auth("volunteer")).status_code == 404
    assert client.get(f"{_c(w)}/items/{item_id}", headers=w.auth("shop_clerk")).status_code == 200
    assert client.get(f"{_c(w)}/items", headers=w.auth("volunteer")).json()["items"] == []
    off = client.post(
        f"{_c(w)}/items/{item_id}/write-off", json={"quantity": 2}, headers=w.auth("community_admin")
    )
    assert off.status_code == 409 and off.json()["code"] == "OUT_OF_STOCK"
