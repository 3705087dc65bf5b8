"""Cross-community exchange (通存通兑) over HTTP, in a region of its own: only a region admin of the
region switches it; while it is off, matching or settling with a provider of another community is
refused; the provider, a member of the other community, sees and serves the exchange through the
exchange's community's routes, and is paid in their own community."""

from __future__ import annotations

import uuid

import timebank_api_world as tw  # this directory is on sys.path (rootdir-less tests)
from records_world import problem
from timebank_api_world import COIN, REPLAYED, X, call, ok, step

from api.deps import Services
from ledger.domain.errors import ErrorCode
from ledger.domain.roles import Grant, Role
from tests.api.conftest import Client, World


def test_cross_community_exchange_over_http(client: Client, api_services: Services) -> None:
    s = api_services
    region = s.communities.create_region(f"x-{uuid.uuid4().hex[:8]}", "通存通兑测试街道")
    a = s.communities.create_community(region, f"xa-{uuid.uuid4().hex[:8]}", "甲社区").community_id
    b = s.communities.create_community(region, f"xb-{uuid.uuid4().hex[:8]}", "乙社区").community_id
    w = World(a, region, uuid.UUID(int=0))
    tw.grant_user(w, s, "region_admin", Grant(Role.REGION_ADMIN, region_id=region))
    tw.grant_user(w, s, "a_admin", Grant(Role.COMMUNITY_ADMIN, community_id=a))
    tw.grant_user(w, s, "social_worker", Grant(Role.SOCIAL_WORKER, community_id=a))
    recipient = tw.elder_with_coin(w, s)
    provider, neighbour = tw.person(w, s, 40, community_id=b), tw.person(w, s, 40, community_id=b)
    tw.user(w, s, "recipient", recipient)
    tw.user(w, s, "provider", provider, community_id=b)
    tw.user(w, s, "neighbour", neighbour, community_id=b)
    switch = f"/api/v1/regions/{region}/cross-community"
    assert ok(call(client, w, "recipient", "GET", "/timebank/cross-community")) == {
        "community_id": a,
        "region_id": region,
        "cross_community": False,
    }

    x = ok(call(client, w, "recipient", "POST", X, {"service": "陪诊", "planned_minutes": 60}), 201)[
        "exchange_id"
    ]
    match = {"provider_person_id": str(provider), "provider_community_id": b}
    refused = problem(
        step(client, w, "social_worker", x, "match", match), 422, ErrorCode.CROSS_COMMUNITY_DISABLED
    )
    assert (refused["community_id"], refused["other_community_id"]) == (a, b)

    # Only the region's admin switches it; a community admin of the region may not.
    for who in ("a_admin", "social_worker", "recipient"):
        problem(call(client, w, who, "POST", switch, {"enabled": True}), 403, ErrorCode.FORBIDDEN)
        problem(call(client, w, who, "GET", switch), 403, ErrorCode.FORBIDDEN)
    on = ok(
        call(client, w, "region_admin", "POST", switch, {"enabled": True, "note": "街道办决定"}, key="on-1")
    )
    assert on["cross_community"] is True
    assert [(e["enabled"], e["actor_id"], e["note"]) for e in on["history"]] == [
        (True, str(w.user_ids["region_admin"]), "街道办决定")
    ]
    again = call(
        client, w, "region_admin", "POST", switch, {"enabled": True, "note": "街道办决定"}, key="on-1"
    )
    assert ok(again) == on and again.headers[REPLAYED] == "true"
    assert (
        len(ok(call(client, w, "region_admin", "POST", switch, {"enabled": True}))["history"]) == 1
    )  # no change
    other_region = f"/api/v1/regions/{region + 1_000_000}/cross-community"
    problem(call(client, w, "region_admin", "GET", other_region), 403, ErrorCode.FORBIDDEN)
    assert ok(call(client, w, "recipient", "GET", "/timebank/cross-community"))["cross_community"] is True

    matched = ok(step(client, w, "social_worker", x, "match", match))
    assert (matched["provider_community_id"], matched["provider_person_id"]) == (b, str(provider))
    # The provider, a member of the other community, sees the exchange through its community's
    # routes; another member of theirs does not.
    assert [e["exchange_id"] for e in ok(call(client, w, "provider", "GET", X))["items"]] == [x]
    assert ok(call(client, w, "neighbour", "GET", X))["items"] == []
    problem(call(client, w, "neighbour", "GET", f"{X}/{x}"), 404, ErrorCode.EXCHANGE_NOT_FOUND)
    problem(step(client, w, "neighbour", x, "start"), 404, ErrorCode.EXCHANGE_NOT_FOUND)
    assert ok(step(client, w, "provider", x, "start"))["state"] == "in_service"
    assert ok(step(client, w, "recipient", x, "confirmation", {"served_minutes": 60}))["state"] == "confirmed"

    ok(call(client, w, "region_admin", "POST", switch, {"enabled": False}))
    problem(step(client, w, "provider", x, "settlement"), 422, ErrorCode.CROSS_COMMUNITY_DISABLED)
    ok(call(client, w, "region_admin", "POST", switch, {"enabled": True}))
    settled = ok(step(client, w, "provider", x, "settlement"))
    assert settled["state"] == "settled" and settled["credit_transfer_id"] is not None
    assert tw.balance(s, a, recipient) == (0, 0)
    assert tw.balance(s, b, provider) == (COIN, COIN)
    history = ok(call(client, w, "region_admin", "GET", switch))["history"]
    assert [e["enabled"] for e in history] == [True, False, True]
