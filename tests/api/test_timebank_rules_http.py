"""The time bank over HTTP: idempotent replays of every kind of POST, and refusals with their codes
and statuses (what the services refuse, and what the HTTP layer refuses before them)."""

from __future__ import annotations

import uuid

import timebank_api_world as tw  # this directory is on sys.path (rootdir-less tests)
from records_world import problem
from timebank_api_world import COIN, REPLAYED, X, call, ok, step

from api.deps import Services
from ledger.domain.errors import ErrorCode
from tests.api.conftest import Client, World

# ----------------------------------------------------------------------------------- replays


def test_idempotent_replays(client: Client, world: World, api_services: Services) -> None:
    w, s, c = world, api_services, world.community_id
    recipient = tw.elder_with_coin(w, s)
    tw.award(w, s, recipient, COIN)
    tw.user(w, s, "recipient", recipient)
    body = {"service": "理发", "planned_minutes": 60}
    first = call(client, w, "recipient", "POST", X, body, key="req-1")
    again = call(client, w, "recipient", "POST", X, body, key="req-1")
    assert again.status_code == 201 and again.headers[REPLAYED] == "true"
    assert again.json()["exchange_id"] == ok(first, 201)["exchange_id"]
    assert tw.balance(s, c, recipient) == (2 * COIN, COIN)  # held once
    problem(
        call(client, w, "recipient", "POST", X, {**body, "planned_minutes": 30}, key="req-1"),
        409,
        ErrorCode.IDEMPOTENCY_CONFLICT,
    )
    problem(
        call(client, w, "recipient", "POST", X, body, key="bad key!"), 400, ErrorCode.INVALID_IDEMPOTENCY_KEY
    )

    x = first.json()["exchange_id"]
    ok(
        step(
            client,
            w,
            "social_worker",
            x,
            "match",
            {"provider_person_id": str(tw.person(w, s, 40))},
            key="m-1",
        )
    )
    replay = step(
        client, w, "social_worker", x, "match", {"provider_person_id": str(tw.person(w, s, 40))}, key="m-1"
    )
    problem(replay, 409, ErrorCode.IDEMPOTENCY_CONFLICT)  # another provider under the same key
    cancelled = ok(step(client, w, "recipient", x, "cancellation", {"reason": "改期"}, key="c-1"))
    replay = step(client, w, "recipient", x, "cancellation", {"reason": "改期"}, key="c-1")
    assert ok(replay) == cancelled and replay.headers[REPLAYED] == "true"
    assert tw.balance(s, c, recipient) == (2 * COIN, 2 * COIN)

    # A refusal is replayed as the same problem.
    refused = step(client, w, "recipient", x, "start", key="s-1")
    problem(refused, 403, ErrorCode.ACTOR_NOT_ALLOWED)
    assert step(client, w, "recipient", x, "start", key="s-1").headers[REPLAYED] == "true"

    # Gifts replay through the ledger: 200 and "replayed", moved once.
    parent = tw.relative(w, s, recipient)
    gift = {"recipient_person_id": str(parent), "amount_coin_minutes": 30}
    given = ok(call(client, w, "recipient", "POST", "/timebank/gifts", gift, key="g-1"), 201)
    replayed = ok(call(client, w, "recipient", "POST", "/timebank/gifts", gift, key="g-1"))
    assert replayed["replayed"] is True and replayed["transfer_id"] == given["transfer_id"]
    assert tw.balance(s, c, parent)[0] == 30
    problem(
        call(
            client, w, "recipient", "POST", "/timebank/gifts", {**gift, "amount_coin_minutes": 31}, key="g-1"
        ),
        409,
        ErrorCode.IDEMPOTENCY_CONFLICT,
    )
    longest = "k" * 94
    ok(call(client, w, "recipient", "POST", "/timebank/gifts", gift, key=longest), 201)
    assert ok(call(client, w, "recipient", "POST", "/timebank/gifts", gift, key=longest))["replayed"] is True

    # Staff records: one flag, one relation, whatever the replays.
    flag_body = {"valid_from": "2025-01-01", "valid_until": "2030-12-31"}
    flags = [
        call(client, w, "social_worker", "POST", f"/people/{recipient}/hardship-flags", flag_body, key="f-1")
        for _ in range(2)
    ]
    assert flags[0].json() == flags[1].json() and flags[1].headers[REPLAYED] == "true"
    assert len(s.timebank_members.hardship_flags(c, recipient)) == 1
    flag_id = flags[0].json()["flag_id"]
    revoked = [
        call(
            client,
            w,
            "social_worker",
            "POST",
            f"/people/{recipient}/hardship-flags/{flag_id}/revocation",
            key="r-1",
        )
        for _ in range(2)
    ]
    assert ok(revoked[0])["revoked_at"] is not None and ok(revoked[1]) == ok(revoked[0])
    assert ok(revoked[0])["in_force_today"] is False


# ---------------------------------------------------------------------------------- refusals


def test_refusals_with_their_codes_and_statuses(client: Client, world: World, api_services: Services) -> None:
    w, s = world, api_services
    poor, elder = tw.person(w, s, 70), tw.elder_with_coin(w, s)
    tw.user(w, s, "poor", poor)
    tw.user(w, s, "elder", elder)
    body = {"service": "家政", "planned_minutes": 60}
    problem(call(client, w, "poor", "POST", X, body), 409, ErrorCode.INSUFFICIENT_FUNDS)
    problem(
        call(client, w, "poor", "POST", X, {**body, "recipient_person_id": str(elder)}),
        403,
        ErrorCode.ACTOR_NOT_ALLOWED,
    )
    bad = problem(
        call(client, w, "social_worker", "POST", X, body), 422, ErrorCode.INVALID_FIELD
    )  # for whom?
    assert bad["field"] == "recipient_person_id"
    assert problem(
        call(client, w, "elder", "POST", X, {**body, "planned_minutes": 0}), 400, ErrorCode.MALFORMED_REQUEST
    )["fields"] == ["planned_minutes"]
    problem(
        call(client, w, "elder", "POST", X, {"service": "家政", "item_price_coin_minutes": 60}),
        422,
        ErrorCode.INVALID_FIELD,
    )
    problem(
        call(client, w, "auditor", "POST", X, {**body, "recipient_person_id": str(elder)}),
        403,
        ErrorCode.FORBIDDEN,
    )

    x = ok(call(client, w, "elder", "POST", X, body), 201)["exchange_id"]
    problem(step(client, w, "social_worker", str(uuid.uuid4()), "start"), 404, ErrorCode.EXCHANGE_NOT_FOUND)
    problem(step(client, w, "social_worker", x, "start"), 409, ErrorCode.INVALID_STATE_TRANSITION)
    problem(
        step(client, w, "social_worker", x, "match", {"provider_person_id": str(elder)}),
        422,
        ErrorCode.INVALID_FIELD,
    )
    problem(
        step(client, w, "social_worker", x, "match", {"provider_person_id": str(uuid.uuid4())}),
        404,
        ErrorCode.PERSON_NOT_FOUND,
    )
    gone = tw.person(w, s, 40)
    s.people.erase(w.community_id, gone, actor_id=None)
    problem(
        step(client, w, "social_worker", x, "match", {"provider_person_id": str(gone)}),
        410,
        ErrorCode.PERSON_ERASED,
    )
    ok(step(client, w, "social_worker", x, "match", {"provider_person_id": str(tw.person(w, s, 40))}))
    ok(step(client, w, "social_worker", x, "start"))
    problem(
        step(client, w, "social_worker", x, "confirmation", {"served_minutes": 60}),
        403,
        ErrorCode.ACTOR_NOT_ALLOWED,
    )
    problem(step(client, w, "elder", x, "confirmation", {"served_minutes": 61}), 422, ErrorCode.INVALID_FIELD)
    problem(step(client, w, "elder", x, "cancellation", {}), 409, ErrorCode.INVALID_STATE_TRANSITION)
    problem(step(client, w, "elder", x, "dispute", {"reason": ""}), 400, ErrorCode.MALFORMED_REQUEST)
    problem(
        step(client, w, "social_worker", x, "resolution", {"resolution": "cancel"}),
        409,
        ErrorCode.INVALID_STATE_TRANSITION,
    )

    # Gifts: only to a recorded relative within the scope, never to oneself, never held coins.
    stranger, friend = tw.person(w, s, 50), tw.person(w, s, 50)
    gift = {"recipient_person_id": str(stranger), "amount_coin_minutes": 1}
    problem(call(client, w, "elder", "POST", "/timebank/gifts", gift), 422, ErrorCode.GIFT_NOT_ALLOWED)
    problem(
        call(client, w, "elder", "POST", "/timebank/gifts", {**gift, "recipient_person_id": str(elder)}),
        422,
        ErrorCode.GIFT_NOT_ALLOWED,
    )
    ok(
        call(
            client,
            w,
            "social_worker",
            "POST",
            f"/people/{elder}/relations",
            {"relative_person_id": str(friend), "kind": "friend"},
        ),
        201,
    )
    scope = problem(
        call(client, w, "elder", "POST", "/timebank/gifts", {**gift, "recipient_person_id": str(friend)}),
        422,
        ErrorCode.GIFT_NOT_ALLOWED,
    )
    assert scope["scope"] == "direct_relatives"
    parent = tw.relative(w, s, elder)
    held = {"recipient_person_id": str(parent), "amount_coin_minutes": 1}
    problem(
        call(client, w, "elder", "POST", "/timebank/gifts", held), 409, ErrorCode.INSUFFICIENT_FUNDS
    )  # the coin is held
    problem(
        call(client, w, "social_worker", "POST", "/timebank/gifts", held), 403, ErrorCode.ACTOR_NOT_ALLOWED
    )

    # Relations and flags.
    other_kind = {"relative_person_id": str(friend), "kind": "spouse"}
    problem(
        call(client, w, "social_worker", "POST", f"/people/{elder}/relations", other_kind),
        409,
        ErrorCode.RELATION_EXISTS,
    )
    problem(
        call(client, w, "social_worker", "POST", f"/people/{elder}/relations/{uuid.uuid4()}/ending"),
        404,
        ErrorCode.RELATION_NOT_FOUND,
    )
    dates = {"valid_from": "2025-02-01", "valid_until": "2025-01-31"}
    problem(
        call(client, w, "social_worker", "POST", f"/people/{elder}/hardship-flags", dates),
        422,
        ErrorCode.INVALID_FIELD,
    )
    problem(
        call(client, w, "social_worker", "POST", f"/people/{elder}/hardship-flags/{uuid.uuid4()}/revocation"),
        404,
        ErrorCode.HARDSHIP_FLAG_NOT_FOUND,
    )
    other_flag = tw.flag(w, s, w.other_person)  # someone else's flag, under this person's path
    problem(
        call(client, w, "social_worker", "POST", f"/people/{elder}/hardship-flags/{other_flag}/revocation"),
        404,
        ErrorCode.HARDSHIP_FLAG_NOT_FOUND,
    )
    # The region's switch is a region admin's, not a community admin's.
    problem(
        call(
            client,
            w,
            "community_admin",
            "POST",
            f"/api/v1/regions/{w.region_id}/cross-community",
            {"enabled": True},
        ),
        403,
        ErrorCode.FORBIDDEN,
    )


def test_an_erased_person_shows_no_relations_or_flags_and_gets_no_new_ones(
    client: Client, world: World, api_services: Services
) -> None:
    w, s = world, api_services
    gone = tw.person(w, s, 70)
    tw.relation(w, s, gone)
    tw.flag(w, s, gone)
    s.people.erase(w.community_id, gone, actor_id=None)
    for what in ("relations", "hardship-flags"):
        assert ok(call(client, w, "social_worker", "GET", f"/people/{gone}/{what}")) == []
    body = {"relative_person_id": str(tw.person(w, s, 40)), "kind": "friend"}
    problem(
        call(client, w, "social_worker", "POST", f"/people/{gone}/relations", body),
        410,
        ErrorCode.PERSON_ERASED,
    )
    flag = {"valid_from": "2025-01-01"}
    problem(
        call(client, w, "social_worker", "POST", f"/people/{gone}/hardship-flags", flag),
        410,
        ErrorCode.PERSON_ERASED,
    )
    request = {"recipient_person_id": str(gone), "service": "家政", "planned_minutes": 60}
    problem(call(client, w, "social_worker", "POST", X, request), 410, ErrorCode.PERSON_ERASED)
