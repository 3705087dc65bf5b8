"""Users, role grants and API tokens over HTTP, within the scope of the calling admin's grants."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from api.deps import Services
from tests.api.conftest import World

Client = TestClient[Litestar]  # conftest's Client, with its type argument for mypy

USERS = "/api/v1/users"
ADMIN = "community_admin"


def _name(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _create(client: Client, w: World, who: str = ADMIN, **body: object) -> Response:
    payload = {"username": _name(), "password": "long enough secret", **body}
    response: Response = client.post(USERS, json=payload, headers=w.auth(who))
    return response


def _grant(client: Client, w: World, user_id: str, who: str = ADMIN, **body: object) -> Response:
    response: Response = client.post(f"{USERS}/{user_id}/grants", json=body, headers=w.auth(who))
    return response


def _user_with_role(client: Client, w: World, role: str = "social_worker") -> dict[str, Any]:
    created = _create(client, w)
    assert created.status_code == 201
    granted = _grant(client, w, created.json()["user_id"], role=role, community_id=w.community_id)
    assert granted.status_code == 201
    user: dict[str, Any] = granted.json()
    return user


def _issue(client: Client, w: World, user_id: str, who: str = ADMIN, **body: object) -> Response:
    response: Response = client.post(
        f"{USERS}/{user_id}/tokens", json={"name": "积分超市收银", **body}, headers=w.auth(who)
    )
    return response


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _code(response: Response) -> tuple[int, str]:
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.status_code, response.json()["code"]


# ---------------------------------------------------------------------------------------- users


def test_an_admin_creates_a_user(client: Client, world: World, api_services: Services) -> None:
    username = _name("cashier")
    response = _create(client, world, username=username, password="long enough secret")
    assert response.status_code == 201
    user = response.json()
    assert user["username"] == username
    assert (user["grants"], user["disabled"], user["person_id"]) == ([], False, None)
    assert "password" not in user and "long enough secret" not in response.text
    assert api_services.identity.user(uuid.UUID(user["user_id"])).username == username


def test_a_user_without_a_password_uses_tokens_only(client: Client, world: World) -> None:
    response = client.post(USERS, json={"username": _name()}, headers=world.auth(ADMIN))
    assert response.status_code == 201


@pytest.mark.parametrize("role", ["social_worker", "grid_worker", "auditor", "volunteer"])
def test_only_admins_create_users(client: Client, world: World, role: str) -> None:
    assert _code(_create(client, world, who=role)) == (403, "FORBIDDEN")


def test_user_fields_are_checked(client: Client, world: World) -> None:
    taken = _name()
    assert _create(client, world, username=taken).status_code == 201
    assert _code(_create(client, world, username=taken)) == (409, "USERNAME_TAKEN")
    bad = _create(client, world, username="Has Spaces")
    assert _code(bad) == (422, "INVALID_FIELD")
    assert bad.json()["field"] == "username"
    short = _create(client, world, password="short7!")
    assert _code(short) == (400, "MALFORMED_REQUEST")
    assert short.json()["fields"] == ["password"]
    assert "short7!" not in short.text


# --------------------------------------------------------------------------------------- grants


def test_an_admin_grants_a_role_in_their_own_community(client: Client, world: World) -> None:
    user = _user_with_role(client, world, "grid_worker")
    assert [(g["role"], g["community_id"], g["region_id"]) for g in user["grants"]] == [
        ("grid_worker", world.community_id, None)
    ]
    assert user["grants"][0]["role_name"] == "网格员"
    # Granting the same role again changes nothing.
    again = _grant(client, world, user["user_id"], role="grid_worker", community_id=world.community_id)
    assert again.status_code == 201
    assert [g["grant_id"] for g in again.json()["grants"]] == [user["grants"][0]["grant_id"]]
    # The admin now manages the user.
    got = client.get(f"{USERS}/{user['user_id']}", headers=world.auth(ADMIN))
    assert got.status_code == 200
    assert got.json() == again.json()


def test_an_admin_cannot_grant_outside_their_community(
    client: Client, world: World, api_services: Services
) -> None:
    user_id = _create(client, world).json()["user_id"]
    neighbour = api_services.communities.create_community(
        world.region_id, f"n-{uuid.uuid4().hex[:8]}", "邻社区"
    )
    refused = [
        _grant(client, world, user_id, role="social_worker", community_id=neighbour.community_id),
        _grant(client, world, user_id, role="social_worker", region_id=world.region_id),
        _grant(client, world, user_id, role="region_admin", community_id=world.community_id),
        _grant(client, world, user_id, role="region_admin", region_id=world.region_id),
    ]
    assert [_code(r) for r in refused] == [(403, "FORBIDDEN")] * 4
    assert api_services.identity.active_grants(uuid.UUID(user_id)) == []


def test_a_region_admin_grants_region_wide_roles(
    client: Client, world: World, api_services: Services
) -> None:
    user_id = _create(client, world, who="region_admin").json()["user_id"]
    granted = _grant(client, world, user_id, who="region_admin", role="auditor", region_id=world.region_id)
    assert granted.status_code == 201
    assert [(g["role"], g["region_id"]) for g in granted.json()["grants"]] == [("auditor", world.region_id)]
    # But a community admin may not take it away.
    grant_id = granted.json()["grants"][0]["grant_id"]
    denied = client.delete(f"{USERS}/{user_id}/grants/{grant_id}", headers=world.auth(ADMIN))
    assert _code(denied) == (403, "FORBIDDEN")
    assert len(api_services.identity.active_grants(uuid.UUID(user_id))) == 1


def test_a_grant_names_one_community_or_one_region(client: Client, world: World) -> None:
    user_id = _create(client, world).json()["user_id"]
    neither = _grant(client, world, user_id, role="auditor")
    both = _grant(
        client, world, user_id, role="auditor", community_id=world.community_id, region_id=world.region_id
    )
    assert [_code(r) for r in (neither, both)] == [(422, "INVALID_FIELD")] * 2
    assert _code(_grant(client, world, user_id, role="mayor", community_id=world.community_id)) == (
        400,
        "MALFORMED_REQUEST",
    )


def test_revoking_a_grant_takes_the_access_away(client: Client, world: World, api_services: Services) -> None:
    user = _user_with_role(client, world, "social_worker")
    token = _issue(client, world, user["user_id"]).json()["token"]
    people = f"/api/v1/communities/{world.community_id}/people"
    assert client.get(people, headers=_bearer(token)).status_code == 200

    grant_id = user["grants"][0]["grant_id"]
    outsider = client.delete(f"{USERS}/{user['user_id']}/grants/{grant_id}", headers=world.auth("outsider"))
    assert _code(outsider) == (403, "FORBIDDEN")

    revoked = client.delete(f"{USERS}/{user['user_id']}/grants/{grant_id}", headers=world.auth(ADMIN))
    assert revoked.status_code == 204
    assert api_services.identity.active_grants(uuid.UUID(user["user_id"])) == []
    assert _code(client.get(people, headers=_bearer(token))) == (403, "FORBIDDEN")
    # Revoking again is no error.
    again = client.delete(f"{USERS}/{user['user_id']}/grants/{grant_id}", headers=world.auth(ADMIN))
    assert again.status_code == 204


# --------------------------------------------------------------------------------------- tokens


def test_an_api_token_is_shown_once_and_authenticates(client: Client, world: World) -> None:
    user = _user_with_role(client, world, "auditor")
    issued = _issue(client, world, user["user_id"])
    assert issued.status_code == 201
    secret = issued.json()["token"]
    assert secret.startswith("vl_")
    assert issued.json()["expires_at"] is None

    me = client.get("/api/v1/me", headers=_bearer(secret))
    assert me.status_code == 200
    assert me.json()["user_id"] == user["user_id"]
    assert [g["role"] for g in me.json()["grants"]] == ["auditor"]

    listed = client.get(f"{USERS}/{user['user_id']}/tokens", headers=world.auth(ADMIN))
    assert listed.status_code == 200
    tokens = listed.json()
    assert [(t["token_id"], t["kind"], t["name"], t["revoked_at"]) for t in tokens] == [
        (issued.json()["token_id"], "api", "积分超市收银", None)
    ]
    assert all("token" not in t and "token_hash" not in t for t in tokens)
    assert secret not in listed.text
    assert secret[3:] not in listed.text


def test_an_expiring_token_says_when(client: Client, world: World) -> None:
    user = _user_with_role(client, world)
    issued = _issue(client, world, user["user_id"], expires_days=30)
    assert issued.status_code == 201
    expires = datetime.fromisoformat(issued.json()["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    assert _code(_issue(client, world, user["user_id"], expires_days=0)) == (400, "MALFORMED_REQUEST")


def test_a_revoked_token_is_401(client: Client, world: World) -> None:
    user = _user_with_role(client, world)
    issued = _issue(client, world, user["user_id"]).json()
    path = f"{USERS}/{user['user_id']}/tokens/{issued['token_id']}"

    assert _code(client.delete(path, headers=world.auth("outsider"))) == (404, "USER_NOT_FOUND")
    assert client.get("/api/v1/me", headers=_bearer(issued["token"])).status_code == 200

    assert client.delete(path, headers=world.auth(ADMIN)).status_code == 204
    after = client.get("/api/v1/me", headers=_bearer(issued["token"]))
    assert _code(after) == (401, "UNAUTHENTICATED")
    listed = client.get(f"{USERS}/{user['user_id']}/tokens", headers=world.auth(ADMIN)).json()
    assert listed[0]["revoked_at"] is not None
    assert client.delete(path, headers=world.auth(ADMIN)).status_code == 204  # again: nothing to do


def test_tokens_of_users_outside_the_callers_scope_do_not_exist(client: Client, world: World) -> None:
    target = world.user_ids["auditor"]
    for who in ("outsider", "grid_worker"):  # an admin elsewhere; a colleague without user:manage
        assert _code(_issue(client, world, str(target), who=who)) == (404, "USER_NOT_FOUND")
        listed = client.get(f"{USERS}/{target}/tokens", headers=world.auth(who))
        assert _code(listed) == (404, "USER_NOT_FOUND")
        assert _code(client.get(f"{USERS}/{target}", headers=world.auth(who))) == (404, "USER_NOT_FOUND")


def test_a_user_reads_themself(client: Client, world: World) -> None:
    me = world.user_ids["shop_clerk"]
    response = client.get(f"{USERS}/{me}", headers=world.auth("shop_clerk"))
    assert response.status_code == 200
    assert [g["role"] for g in response.json()["grants"]] == ["shop_clerk"]


def test_an_outside_admin_cannot_obtain_a_token_for_a_more_powerful_user(
    client: Client, world: World
) -> None:
    target = str(world.user_ids[ADMIN])  # administers the world's community
    outsider_community = next(
        g["community_id"] for g in client.get("/api/v1/me", headers=world.auth("outsider")).json()["grants"]
    )
    _grant(client, world, target, who="outsider", role="volunteer", community_id=outsider_community)
    issued = _issue(client, world, target, who="outsider")
    if issued.status_code == 201:
        people = client.get(
            f"/api/v1/communities/{world.community_id}/people", headers=_bearer(issued.json()["token"])
        )
        assert people.status_code in (401, 403, 404)
    assert issued.status_code in (403, 404)


# ------------------------------------------------------------------------------- linked persons


def test_a_user_linked_to_a_person_acts_as_them(client: Client, world: World) -> None:
    created = _create(
        client, world, person_community_id=world.community_id, person_id=str(world.other_person)
    )
    assert created.status_code == 201
    user = created.json()
    assert (user["person_community_id"], user["person_id"]) == (world.community_id, str(world.other_person))
    granted = _grant(client, world, user["user_id"], role="volunteer", community_id=world.community_id)
    assert granted.status_code == 201
    token = _issue(client, world, user["user_id"]).json()["token"]

    me = client.get("/api/v1/me", headers=_bearer(token)).json()
    assert (me["person_community_id"], me["person_id"]) == (world.community_id, str(world.other_person))
    own = client.get(
        f"/api/v1/communities/{world.community_id}/people/{world.other_person}", headers=_bearer(token)
    )
    assert own.status_code == 200
    assert own.json()["masked"] is False
    accounts = client.get(f"/api/v1/communities/{world.community_id}/accounts", headers=_bearer(token)).json()
    assert [a["account_id"] for a in accounts["items"]] == [str(world.other_account)]


def test_linking_a_person_is_checked(client: Client, world: World) -> None:
    # One user per person.
    taken = _create(
        client, world, person_community_id=world.community_id, person_id=str(world.volunteer_person)
    )
    assert _code(taken) == (422, "INVALID_FIELD")
    # Both halves or neither.
    half = _create(client, world, person_id=str(world.other_person))
    assert _code(half) == (422, "INVALID_FIELD")
    # Someone who does not exist.
    ghost = _create(client, world, person_community_id=world.community_id, person_id=str(uuid.uuid4()))
    assert _code(ghost) == (404, "PERSON_NOT_FOUND")
    # Someone of a community the admin does not manage.
    foreign = _create(
        client,
        world,
        who="outsider",
        person_community_id=world.community_id,
        person_id=str(world.other_person),
    )
    assert _code(foreign) == (403, "FORBIDDEN")
