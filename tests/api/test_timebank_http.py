"""The time bank over HTTP: scenario 9 end to end, an exchange through every state (dispute and
resolution included) and a member's view of exchanges. Refusals and replays:
test_timebank_rules_http.py; cross-community exchange: test_timebank_cross_http.py; access by role
for every route: test_route_roles.py."""

from __future__ import annotations

import timebank_api_world as tw  # this directory is on sys.path (rootdir-less tests)
from records_world import problem
from timebank_api_world import COIN, X, call, ok, step

from api.deps import Services
from ledger.domain.errors import ErrorCode
from ledger.domain.roles import Role
from tests.api.conftest import Client, World

# ------------------------------------------------------------------------------- scenario 9


def test_scenario_9_over_http(client: Client, world: World, api_services: Services) -> None:
    """A 63-year-old with 200 coins cannot redeem for herself under a 65 rule, can with the hardship
    flag, and can gift 50 to her 88-year-old mother, who spends 2 h on housekeeping."""
    w, s, c = world, api_services, world.community_id
    rules = {"coin_withdrawal_min_age_years": 65, "coin_withdrawal_hardship_min_age_years": 60}
    ok(
        call(
            client,
            w,
            "community_admin",
            "POST",
            "/settings/versions",
            {"effective_from": "2020-01-01", "params": rules},
        ),
        201,
    )
    daughter, mother, helper = tw.person(w, s, 63), tw.person(w, s, 88), tw.person(w, s, 30)
    for name, who in (("daughter", daughter), ("mother", mother), ("helper", helper)):
        tw.user(w, s, name, who)
    tw.award(w, s, daughter, 200 * COIN)
    housekeeping = {"service": "家政", "planned_minutes": 120}

    refused = problem(
        call(client, w, "daughter", "POST", X, housekeeping), 422, ErrorCode.WITHDRAWAL_AGE_NOT_REACHED
    )
    assert (refused["min_age_years"], refused["hardship_min_age_years"]) == (65, 60)
    assert set(refused) == {"type", "title", "status", "code", "min_age_years", "hardship_min_age_years"}
    assert tw.balance(s, c, daughter) == (200 * COIN, 200 * COIN)  # nothing held

    flag = ok(
        call(
            client,
            w,
            "social_worker",
            "POST",
            f"/people/{daughter}/hardship-flags",
            {"valid_from": "2020-01-01"},
        ),
        201,
    )
    assert flag["in_force_today"] is True and flag["valid_until"] is None
    assert [
        f["flag_id"] for f in ok(call(client, w, "daughter", "GET", f"/people/{daughter}/hardship-flags"))
    ] == [flag["flag_id"]]
    own = ok(call(client, w, "daughter", "POST", X, housekeeping), 201)
    assert (own["state"], own["recipient_person_id"], own["hold_coin_minutes"]) == (
        "requested",
        str(daughter),
        120,
    )
    assert tw.balance(s, c, daughter) == (200 * COIN, 198 * COIN)  # the hold
    assert ok(step(client, w, "daughter", own["exchange_id"], "cancellation", {}))["state"] == "cancelled"
    assert tw.balance(s, c, daughter) == (200 * COIN, 200 * COIN)

    relation = {"relative_person_id": str(mother), "kind": "parent"}
    ok(call(client, w, "social_worker", "POST", f"/people/{daughter}/relations", relation), 201)
    seen_by_mother = ok(call(client, w, "mother", "GET", f"/people/{mother}/relations"))
    assert [(r["relative_person_id"], r["kind"]) for r in seen_by_mother] == [(str(daughter), "child")]
    gift = {"recipient_person_id": str(mother), "amount_coin_minutes": 50 * COIN}
    given = ok(call(client, w, "daughter", "POST", "/timebank/gifts", gift, key="gift-1"), 201)
    assert given["kind"] == "timebank_gift" and given["replayed"] is False
    assert (tw.balance(s, c, daughter)[0], tw.balance(s, c, mother)[0]) == (150 * COIN, 50 * COIN)

    ex = ok(call(client, w, "mother", "POST", X, housekeeping), 201)
    x = ex["exchange_id"]
    assert (
        ok(step(client, w, "social_worker", x, "match", {"provider_person_id": str(helper)}))["state"]
        == "matched"
    )
    assert ok(step(client, w, "helper", x, "start"))["state"] == "in_service"
    assert ok(step(client, w, "mother", x, "confirmation", {"served_minutes": 120}))["state"] == "confirmed"
    done = ok(step(client, w, "helper", x, "settlement"))
    assert done["state"] == "settled"
    assert (done["charged_coin_minutes"], done["credited_coin_minutes"], done["pool_coin_minutes"]) == (
        120,
        120,
        0,
    )
    assert [tw.balance(s, c, p)[0] for p in (daughter, mother, helper)] == [150 * COIN, 48 * COIN, 2 * COIN]
    assert tw.balance(s, c, mother)[1] == 48 * COIN
    history = ok(call(client, w, "mother", "GET", f"{X}/{x}/history"))
    assert [(e["kind"], e["party"]) for e in history] == [
        ("requested", "recipient"),
        ("matched", "staff"),
        ("started", "provider"),
        ("confirmed", "recipient"),
        ("settled", "provider"),
    ]
    # Each member sees the exchanges they are a party to, and only those.
    assert [e["exchange_id"] for e in ok(call(client, w, "helper", "GET", X))["items"]] == [x]
    assert [e["exchange_id"] for e in ok(call(client, w, "daughter", "GET", X))["items"]] == [
        own["exchange_id"]
    ]


# ------------------------------------------------------------------------ every state, disputes


def test_an_exchange_through_every_state_with_a_dispute_resolved_by_paying(
    client: Client, world: World, api_services: Services
) -> None:
    w, s, c = world, api_services, world.community_id
    recipient, provider = tw.elder_with_coin(w, s), tw.person(w, s, 40)
    tw.award(w, s, recipient, 2 * COIN)  # three coins
    tw.user(w, s, "recipient", recipient)
    tw.user(w, s, "provider", provider)
    body = {"recipient_person_id": str(recipient), "service": "陪诊", "planned_minutes": 120}
    ex = ok(call(client, w, "social_worker", "POST", X, body), 201)  # staff on the member's behalf
    x = ex["exchange_id"]
    assert (ex["state"], ex["requested_by"], ex["rate_coin_minutes_per_hour"]) == (
        "requested",
        str(w.user_ids["social_worker"]),
        60,
    )
    states = [
        ok(step(client, w, "social_worker", x, "match", {"provider_person_id": str(provider)}))["state"],
        ok(step(client, w, "provider", x, "start"))["state"],
        ok(step(client, w, "recipient", x, "confirmation", {"served_minutes": 90}))["state"],
        ok(step(client, w, "provider", x, "dispute", {"reason": "实际服务了两小时"}))["state"],
    ]
    assert states == ["matched", "in_service", "confirmed", "disputed"]
    assert tw.balance(s, c, recipient) == (3 * COIN, 1 * COIN)  # the hold stays while disputed
    problem(step(client, w, "recipient", x, "settlement"), 409, ErrorCode.INVALID_STATE_TRANSITION)
    resolved = ok(
        step(
            client,
            w,
            "community_admin",
            x,
            "resolution",
            {"resolution": "settle", "served_minutes": 120, "note": "核实为两小时"},
        )
    )
    assert (resolved["state"], resolved["resolution"], resolved["charged_coin_minutes"]) == (
        "settled",
        "settle",
        120,
    )
    assert resolved["resolved_at"] is not None and resolved["payment_transfer_id"] is not None
    assert tw.balance(s, c, recipient) == (1 * COIN, 1 * COIN)
    assert tw.balance(s, c, provider)[0] == 2 * COIN
    kinds = [e["kind"] for e in ok(call(client, w, "auditor", "GET", f"{X}/{x}/history"))]
    assert kinds == ["requested", "matched", "started", "confirmed", "disputed", "resolved"]
    assert ok(call(client, w, "auditor", "GET", f"{X}/{x}"))["state"] == "settled"  # auditors read


def test_a_dispute_in_service_resolved_by_cancelling_releases_the_hold(
    client: Client, world: World, api_services: Services
) -> None:
    w, s, c = world, api_services, world.community_id
    recipient = tw.elder_with_coin(w, s)
    tw.user(w, s, "recipient", recipient, role=Role.SOCIAL_WORKER)  # a social worker, and the recipient
    x = str(tw.exchange(w, s, "in_service", recipient=recipient))
    assert tw.balance(s, c, recipient) == (COIN, 0)
    assert ok(step(client, w, "recipient", x, "dispute", {"reason": "服务者未到"}))["state"] == "disputed"
    # Staff who are the recipient themself never judge their own dispute.
    problem(
        step(client, w, "recipient", x, "resolution", {"resolution": "cancel"}),
        403,
        ErrorCode.ACTOR_NOT_ALLOWED,
    )
    done = ok(step(client, w, "social_worker", x, "resolution", {"resolution": "cancel"}))
    assert (done["state"], done["resolution"], done["cancelled_at"] is not None) == (
        "cancelled",
        "cancel",
        True,
    )
    assert tw.balance(s, c, recipient) == (COIN, COIN)
    listed = ok(
        call(client, w, "social_worker", "GET", f"{X}?state=cancelled&recipient_person_id={recipient}")
    )
    assert [e["exchange_id"] for e in listed["items"]] == [x]


def test_a_filtered_list_pages(client: Client, world: World, api_services: Services) -> None:
    w, s = world, api_services
    recipient = tw.elder_with_coin(w, s)
    tw.award(w, s, recipient, 2 * COIN)
    made = [str(tw.exchange(w, s, recipient=recipient)) for _ in range(3)]
    first = ok(call(client, w, "social_worker", "GET", f"{X}?recipient_person_id={recipient}&limit=2"))
    assert [e["exchange_id"] for e in first["items"]] == made[:2] and first["next_cursor"]
    rest = ok(
        call(
            client,
            w,
            "social_worker",
            "GET",
            f"{X}?recipient_person_id={recipient}&limit=2&cursor={first['next_cursor']}",
        )
    )
    assert [e["exchange_id"] for e in rest["items"]] == made[2:] and rest.get("next_cursor") is None
    ok(step(client, w, "social_worker", made[1], "cancellation", {}))
    by_state = {
        state: [
            e["exchange_id"]
            for e in ok(
                call(client, w, "social_worker", "GET", f"{X}?state={state}&recipient_person_id={recipient}")
            )["items"]
        ]
        for state in ("requested", "cancelled", "settled")
    }
    assert by_state == {"requested": [made[0], made[2]], "cancelled": [made[1]], "settled": []}
    problem(call(client, w, "social_worker", "GET", f"{X}?state=nonsense"), 400, ErrorCode.MALFORMED_REQUEST)


# ---------------------------------------------------------------------------- a member's view


def test_a_member_cannot_see_or_act_on_others_exchanges(
    client: Client, world: World, api_services: Services
) -> None:
    w, s = world, api_services
    others = [str(tw.exchange(w, s, state)) for state in ("requested", "in_service", "confirmed")]
    mine = str(tw.exchange(w, s, recipient=tw.volunteer_elder(w, s)))
    serving = str(tw.exchange(w, s, "matched", provider=w.volunteer_person))
    listed = ok(call(client, w, "volunteer", "GET", X))
    assert [e["exchange_id"] for e in listed["items"]] == [mine, serving]
    for x in others:
        problem(call(client, w, "volunteer", "GET", f"{X}/{x}"), 404, ErrorCode.EXCHANGE_NOT_FOUND)
        problem(call(client, w, "volunteer", "GET", f"{X}/{x}/history"), 404, ErrorCode.EXCHANGE_NOT_FOUND)
    for x, name, body in (
        (others[0], "cancellation", {}),
        (others[1], "dispute", {"reason": "想看看"}),
        (others[1], "start", None),
        (others[2], "settlement", None),
        (others[2], "confirmation", {"served_minutes": 60}),
    ):
        problem(step(client, w, "volunteer", x, name, body), 404, ErrorCode.EXCHANGE_NOT_FOUND)
    assert [ok(call(client, w, "social_worker", "GET", f"{X}/{x}"))["state"] for x in others] == [
        "requested",
        "in_service",
        "confirmed",
    ]  # nothing changed
    # Their own: the recipient may not start the service nor match it; the provider may start.
    problem(
        step(client, w, "volunteer", mine, "match", {"provider_person_id": str(w.other_person)}),
        403,
        ErrorCode.ACTOR_NOT_ALLOWED,
    )
    assert ok(step(client, w, "volunteer", serving, "start"))["state"] == "in_service"
    problem(
        step(client, w, "volunteer", serving, "confirmation", {"served_minutes": 60}),
        403,
        ErrorCode.ACTOR_NOT_ALLOWED,
    )
    # Others' relations and flags do not exist for a member; staff record them, members cannot.
    for what in ("relations", "hardship-flags"):
        problem(
            call(client, w, "volunteer", "GET", f"/people/{w.other_person}/{what}"),
            404,
            ErrorCode.PERSON_NOT_FOUND,
        )
    relation = {"relative_person_id": str(w.other_person), "kind": "friend"}
    problem(
        call(client, w, "volunteer", "POST", f"/people/{w.volunteer_person}/relations", relation),
        403,
        ErrorCode.FORBIDDEN,
    )
