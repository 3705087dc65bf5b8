"""Idempotency-Key over HTTP: transfers replay through the ledger, other POSTs through the request store."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from api.deps import Services
from tests.api.conftest import World

Client = TestClient[Litestar]  # conftest's Client, with its type argument for mypy

KEY = "Idempotency-Key"
REPLAYED = "idempotent-replayed"


def _c(w: World) -> str:
    return f"/api/v1/communities/{w.community_id}"


def _key() -> str:
    return f"k-{uuid.uuid4().hex}"


def _award(w: World, amount: int = 3, kind: str = "manual_award") -> dict[str, object]:
    return {
        "kind": kind,
        "postings": [
            {"account_id": str(w.issuance), "unit": "points", "amount": -amount},
            {"account_id": str(w.other_account), "unit": "points", "amount": amount},
        ],
    }


def _post_transfer(client: Client, w: World, body: dict[str, object], who: str, key: str | None) -> Response:
    headers = {**w.auth(who), **({KEY: key} if key is not None else {})}
    response: Response = client.post(f"{_c(w)}/transfers", json=body, headers=headers)
    return response


def _posted(client: Client, w: World, account: uuid.UUID) -> int:
    response = client.get(f"{_c(w)}/accounts/{account}/balance", headers=w.auth("community_admin"))
    assert response.status_code == 200
    posted: int = response.json()["posted"]
    return posted


def _statement_ids(client: Client, w: World, account: uuid.UUID) -> list[str]:
    response = client.get(f"{_c(w)}/accounts/{account}/statement", headers=w.auth("community_admin"))
    return [line["transfer_id"] for line in response.json()["items"]]


# ------------------------------------------------------------------------------ ledger transfers


def test_a_replayed_transfer_answers_200_with_the_first_transfer_and_moves_once(
    client: Client, world: World
) -> None:
    key = _key()
    first = _post_transfer(client, world, _award(world, 7), "community_admin", key)
    assert first.status_code == 201
    assert first.json()["replayed"] is False

    again = _post_transfer(client, world, _award(world, 7), "community_admin", key)
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["transfer_id"] == first.json()["transfer_id"]
    # The replay is the same transfer, receipt and all.
    assert again.json()["receipt"] == first.json()["receipt"]
    assert again.json()["postings"] == first.json()["postings"]

    assert _posted(client, world, world.other_account) == 57
    assert _statement_ids(client, world, world.other_account).count(first.json()["transfer_id"]) == 1


def test_the_same_key_with_another_body_is_409(client: Client, world: World) -> None:
    key = _key()
    assert _post_transfer(client, world, _award(world, 2), "community_admin", key).status_code == 201
    for body in (_award(world, 3), _award(world, 2, kind="adjustment")):
        conflict = _post_transfer(client, world, body, "community_admin", key)
        assert conflict.status_code == 409
        assert conflict.headers["content-type"].startswith("application/problem+json")
        assert conflict.json()["code"] == "IDEMPOTENCY_CONFLICT"
    assert _posted(client, world, world.other_account) == 52


def test_one_client_key_used_by_two_users_makes_two_transfers(client: Client, world: World) -> None:
    key = "order-1"  # a short, guessable key: one caller must not see or block another's
    a = _post_transfer(client, world, _award(world, 1), "community_admin", key)
    b = _post_transfer(client, world, _award(world, 1), "region_admin", key)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["transfer_id"] != b.json()["transfer_id"]
    assert b.json()["replayed"] is False
    # Another body under the other user's key is no conflict for the first user either.
    c = _post_transfer(client, world, _award(world, 4), "region_admin", "order-2")
    assert c.status_code == 201
    assert _posted(client, world, world.other_account) == 56


def test_without_a_key_two_posts_are_two_transfers(client: Client, world: World) -> None:
    a = _post_transfer(client, world, _award(world, 5), "community_admin", None)
    b = _post_transfer(client, world, _award(world, 5), "community_admin", None)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["transfer_id"] != b.json()["transfer_id"]
    assert _posted(client, world, world.other_account) == 60


def test_a_replayed_reversal_is_the_same_reversal(client: Client, world: World) -> None:
    path = f"{_c(world)}/transfers/{world.other_transfer}/reversal"
    headers = {**world.auth("community_admin"), KEY: _key()}
    first = client.post(path, json={"reason": "录入错误"}, headers=headers)
    again = client.post(path, json={"reason": "录入错误"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["transfer_id"] == first.json()["transfer_id"]
    assert again.json()["replayed"] is True
    assert _posted(client, world, world.other_account) == 0


def test_a_malformed_key_is_400(client: Client, world: World) -> None:
    # Characters outside the ledger's alphabet: the ledger refuses the key.
    for key in ("has spaces", "semi;colon", "slash/key"):
        response = _post_transfer(client, world, _award(world, 1), "community_admin", key)
        assert response.status_code == 400, key
        assert response.json()["code"] == "INVALID_IDEMPOTENCY_KEY", key
    # Longer than the caller's share of the ledger's 128 characters: refused as a header.
    too_long = _post_transfer(client, world, _award(world, 1), "community_admin", "x" * 95)
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "MALFORMED_REQUEST"
    assert [f.lower().replace("-", "_") for f in too_long.json()["fields"]] == ["idempotency_key"]
    assert _posted(client, world, world.other_account) == 50


def test_the_longest_allowed_key_works(client: Client, world: World) -> None:
    key = "k" * 94
    first = _post_transfer(client, world, _award(world, 1), "community_admin", key)
    again = _post_transfer(client, world, _award(world, 1), "community_admin", key)
    assert (first.status_code, again.status_code) == (201, 200)


# ------------------------------------------------------------------------- other POSTs (people)


def _person(name: str, id_number: str | None = None, *, consent: bool = True) -> dict[str, Any]:
    profile: dict[str, object] = {"name": name}
    if id_number is not None:
        profile["id_number"] = id_number
    return {"profile": profile, "consent_entry": consent}


def _post_person(client: Client, w: World, body: dict[str, Any], key: str | None, who: str) -> Response:
    headers = {**w.auth(who), **({KEY: key} if key is not None else {})}
    response: Response = client.post(f"{_c(w)}/people", json=body, headers=headers)
    return response


def _people_count(api_services: Services, w: World) -> int:
    return len(api_services.people.list(w.community_id, limit=500))


def test_a_replayed_person_post_returns_the_first_answer_and_creates_nobody(
    client: Client, world: World, api_services: Services
) -> None:
    before = _people_count(api_services, world)
    key = _key()
    body = _person("孙丽", "110101199003074514")
    first = _post_person(client, world, body, key, "social_worker")
    assert first.status_code == 201
    assert REPLAYED not in first.headers

    again = _post_person(client, world, body, key, "social_worker")
    assert again.status_code == 201
    assert again.headers[REPLAYED] == "true"
    assert again.headers["content-type"].startswith("application/json")
    assert again.json() == first.json()
    assert _people_count(api_services, world) == before + 1
    found = api_services.people.find_by_id_number(world.community_id, "110101199003074514")
    assert str(found) == first.json()["person_id"]


def test_the_same_person_key_with_another_body_is_409(
    client: Client, world: World, api_services: Services
) -> None:
    key = _key()
    assert _post_person(client, world, _person("周杰"), key, "social_worker").status_code == 201
    before = _people_count(api_services, world)
    conflict = _post_person(client, world, _person("周洁"), key, "social_worker")
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    assert conflict.json()["code"] == "IDEMPOTENCY_CONFLICT"
    assert "周洁" not in conflict.text
    assert _people_count(api_services, world) == before


def test_a_person_key_is_per_caller(client: Client, world: World, api_services: Services) -> None:
    key = _key()
    before = _people_count(api_services, world)
    a = _post_person(client, world, _person("吴刚"), key, "social_worker")
    b = _post_person(client, world, _person("吴刚"), key, "grid_worker")
    assert (a.status_code, b.status_code) == (201, 201)
    assert REPLAYED not in b.headers
    assert a.json()["person_id"] != b.json()["person_id"]
    assert _people_count(api_services, world) == before + 2


def test_a_business_failure_is_replayed_as_the_same_problem(
    client: Client, world: World, api_services: Services
) -> None:
    key = _key()
    body = _person("郑爽", consent=False)  # an organisation entering data without consent
    first = _post_person(client, world, body, key, "social_worker")
    assert first.status_code == 422
    assert first.json()["code"] == "CONSENT_REQUIRED"
    assert first.json()["field"] == "consent_entry"
    assert REPLAYED not in first.headers

    again = _post_person(client, world, body, key, "social_worker")
    assert again.status_code == first.status_code
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()

    # The key stays bound to the failed request: fixing the body needs a new key.
    fixed = _post_person(client, world, _person("郑爽"), key, "social_worker")
    assert fixed.status_code == 409
    assert fixed.json()["code"] == "IDEMPOTENCY_CONFLICT"
    assert _post_person(client, world, _person("郑爽"), _key(), "social_worker").status_code == 201


def test_a_malformed_body_does_not_use_up_the_key(client: Client, world: World) -> None:
    key = _key()
    bad = _post_person(
        client, world, {"profile": {"name": 13812345678}, "consent_entry": True}, key, "social_worker"
    )
    assert bad.status_code == 400
    good = _post_person(client, world, _person("冯涛"), key, "social_worker")
    assert good.status_code == 201
    assert REPLAYED not in good.headers


def test_a_malformed_person_key_is_400(client: Client, world: World, api_services: Services) -> None:
    before = _people_count(api_services, world)
    response = _post_person(client, world, _person("陈静"), "has spaces", "social_worker")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_IDEMPOTENCY_KEY"
    assert _people_count(api_services, world) == before
