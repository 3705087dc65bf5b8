"""People over HTTP: masking by permission, own records, lookup by ID number, erasure, raw rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from api.deps import Services
from ledger.domain.roles import ROLE_PERMISSIONS, Permission, Role
from ledger.store.db import Conn
from tests.api.conftest import World

Client = TestClient[Litestar]  # conftest's Client, with its type argument for mypy

ADMIN = "community_admin"
# The world's other person (tests/api/conftest.py).
NAME = "张伟"
ID_NUMBER = "11010519491231002X"
PHONE = "13800138000"
BIRTH = "1949-12-31"  # taken from the ID number
PERSONAL = (NAME, ID_NUMBER, PHONE, BIRTH)

MASKED_READERS = sorted(
    r.value
    for r in Role
    if Permission.PERSON_READ in ROLE_PERMISSIONS[r]
    and Permission.PERSON_READ_FULL not in ROLE_PERMISSIONS[r]
)
FULL_READERS = sorted(r.value for r in Role if Permission.PERSON_READ_FULL in ROLE_PERMISSIONS[r])


def _c(w: World) -> str:
    return f"/api/v1/communities/{w.community_id}"


def _get(client: Client, w: World, person: uuid.UUID, who: str) -> Response:
    response: Response = client.get(f"{_c(w)}/people/{person}", headers=w.auth(who))
    return response


def _lookup(client: Client, w: World, id_number: str, who: str = ADMIN) -> list[dict[str, Any]]:
    response = client.get(f"{_c(w)}/people", params={"id_number": id_number}, headers=w.auth(who))
    assert response.status_code == 200
    assert response.json()["next_cursor"] is None
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _erase(client: Client, w: World, person: uuid.UUID, **headers: str) -> Response:
    response: Response = client.post(f"{_c(w)}/people/{person}/erasure", headers={**w.auth(ADMIN), **headers})
    return response


def _leaks(row: Sequence[object], values: Sequence[str]) -> list[str]:
    """The values that occur in a raw row, as text or as UTF-8 bytes inside binary columns."""
    text = repr(row)
    blob = b"\x00".join(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in row)
    return [v for v in values if v in text or v.encode() in blob]


# ------------------------------------------------------------------------------------- masking


@pytest.mark.parametrize("role", MASKED_READERS)
def test_readers_without_full_access_see_masked_values(client: Client, world: World, role: str) -> None:
    response = _get(client, world, world.other_person, role)
    assert response.status_code == 200
    person = response.json()
    assert person["masked"] is True
    assert person["erased"] is False
    assert person["profile"]["id_number"] == "1101**********002X"
    assert person["profile"]["phone"] == "138****8000"
    assert person["profile"]["name"] == "张*"
    assert person["profile"]["birth_date"] is None
    assert [v for v in PERSONAL if v in response.text] == []


def test_the_people_list_is_masked_for_a_social_worker(client: Client, world: World) -> None:
    response = client.get(f"{_c(world)}/people", headers=world.auth("social_worker"))
    assert response.status_code == 200
    items = {p["person_id"]: p for p in response.json()["items"]}
    assert set(items) == {str(world.volunteer_person), str(world.other_person)}
    assert all(p["masked"] for p in items.values())
    other = items[str(world.other_person)]["profile"]
    assert (other["name"], other["id_number"], other["phone"]) == ("张*", "1101**********002X", "138****8000")
    assert items[str(world.volunteer_person)]["profile"]["name"] == "李*"
    assert [v for v in PERSONAL if v in response.text] == []


@pytest.mark.parametrize("role", FULL_READERS)
def test_admins_see_full_values(client: Client, world: World, role: str) -> None:
    response = _get(client, world, world.other_person, role)
    assert response.status_code == 200
    person = response.json()
    assert person["masked"] is False
    profile = person["profile"]
    assert (profile["name"], profile["id_number"], profile["phone"], profile["birth_date"]) == PERSONAL
    listed = client.get(f"{_c(world)}/people", headers=world.auth(role)).json()["items"]
    assert {p["profile"]["name"] for p in listed} == {NAME, "李明"}


def test_a_volunteer_sees_their_own_record_in_full_and_nobody_elses(client: Client, world: World) -> None:
    own = _get(client, world, world.volunteer_person, "volunteer")
    assert own.status_code == 200
    assert own.json()["masked"] is False
    assert own.json()["profile"]["name"] == "李明"

    other = _get(client, world, world.other_person, "volunteer")
    assert other.status_code == 404
    assert other.json()["code"] == "PERSON_NOT_FOUND"
    # Someone who does not exist looks the same as someone the volunteer may not see.
    ghost = _get(client, world, uuid.uuid4(), "volunteer")
    assert ghost.status_code == 404
    assert ghost.json().keys() == other.json().keys()
    assert [v for v in PERSONAL if v in other.text] == []


def test_registering_as_a_social_worker_echoes_the_person_masked(client: Client, world: World) -> None:
    body = {
        "profile": {"name": "欧阳娜娜", "id_number": "320102199001011232", "phone": "+86 139 1234 5678"},
        "consent_entry": True,
    }
    response = client.post(f"{_c(world)}/people", json=body, headers=world.auth("social_worker"))
    assert response.status_code == 201
    profile = response.json()["profile"]
    assert response.json()["masked"] is True
    assert (profile["name"], profile["id_number"], profile["phone"]) == (
        "欧***",
        "3201**********1232",
        "139****5678",
    )
    for value in ("欧阳娜娜", "320102199001011232", "13912345678"):
        assert value not in response.text

    full = _get(client, world, uuid.UUID(response.json()["person_id"]), ADMIN).json()["profile"]
    assert (full["id_number"], full["phone"]) == ("320102199001011232", "13912345678")  # normalised


def test_an_invalid_profile_names_the_field_not_the_value(client: Client, world: World) -> None:
    body = {"profile": {"name": "赵六", "id_number": "110105194912310021"}, "consent_entry": True}
    response = client.post(f"{_c(world)}/people", json=body, headers=world.auth(ADMIN))
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["field"]) == ("INVALID_FIELD", "id_number")
    assert "110105194912310021" not in response.text
    assert "赵六" not in response.text


# -------------------------------------------------------------------------------------- lookup


def test_lookup_by_id_number_finds_exactly_one(client: Client, world: World) -> None:
    found = _lookup(client, world, ID_NUMBER)
    assert [p["person_id"] for p in found] == [str(world.other_person)]
    assert found[0]["profile"]["id_number"] == ID_NUMBER
    # Any spelling that normalises alike (spaces, a lower-case x) finds the same person.
    assert [p["person_id"] for p in _lookup(client, world, "110105 19491231 002x")] == [
        str(world.other_person)
    ]
    masked = _lookup(client, world, ID_NUMBER, "social_worker")
    assert [p["profile"]["id_number"] for p in masked] == ["1101**********002X"]


def test_lookup_never_matches_part_of_a_number(client: Client, world: World) -> None:
    assert _lookup(client, world, "110105194912310021") == []
    assert _lookup(client, world, ID_NUMBER[:-4]) == []
    assert _lookup(client, world, "002X") == []


def test_lookup_does_not_cross_communities(client: Client, world: World, api_services: Services) -> None:
    other = api_services.communities.create_community(world.region_id, f"l-{uuid.uuid4().hex[:8]}", "邻社区")
    found = api_services.people.find_by_id_number(other.community_id, ID_NUMBER)
    assert found is None
    response = client.get(
        f"/api/v1/communities/{other.community_id}/people",
        params={"id_number": ID_NUMBER},
        headers=world.auth("region_admin"),
    )
    assert response.status_code == 200
    assert response.json()["items"] == []


def test_a_duplicate_id_number_is_409(client: Client, world: World) -> None:
    body = {"profile": {"name": "张伟伟", "id_number": "110105 19491231002x"}, "consent_entry": True}
    response = client.post(f"{_c(world)}/people", json=body, headers=world.auth(ADMIN))
    assert response.status_code == 409
    assert response.json()["code"] == "DUPLICATE_PERSON"
    assert ID_NUMBER not in response.text and "张伟伟" not in response.text


# ------------------------------------------------------------------------------------- erasure


def test_erasure_removes_the_profile_but_keeps_the_ledger(client: Client, world: World) -> None:
    response = _erase(client, world, world.other_person)
    assert response.status_code == 200
    assert response.json()["erased"] is True
    assert response.json()["profile"] is None
    assert [v for v in PERSONAL if v in response.text] == []

    for who in (ADMIN, "social_worker"):
        got = _get(client, world, world.other_person, who)
        assert got.status_code == 200
        person = got.json()
        assert (person["erased"], person["profile"], person["masked"]) == (True, None, False)
        assert person["erased_at"] is not None
    assert _lookup(client, world, ID_NUMBER) == []

    c, headers = _c(world), world.auth(ADMIN)
    balance = client.get(f"{c}/accounts/{world.other_account}/balance", headers=headers)
    assert balance.status_code == 200
    assert balance.json()["posted"] == 50
    statement = client.get(f"{c}/accounts/{world.other_account}/statement", headers=headers)
    assert [line["transfer_id"] for line in statement.json()["items"]] == [str(world.other_transfer)]
    account = client.get(f"{c}/accounts/{world.other_account}", headers=headers).json()
    assert account["owner_id"] == str(world.other_person)  # the pseudonymous id stays
    # The ledger still moves the account.
    move = client.post(
        f"{c}/transfers",
        json={
            "kind": "manual_award",
            "postings": [
                {"account_id": str(world.issuance), "unit": "points", "amount": -1},
                {"account_id": str(world.other_account), "unit": "points", "amount": 1},
            ],
        },
        headers=headers,
    )
    assert move.status_code == 201


def test_erasure_is_idempotent_and_final(client: Client, world: World) -> None:
    assert _erase(client, world, world.other_person).status_code == 200
    again = _erase(client, world, world.other_person)
    assert again.status_code == 200
    assert again.json()["erased"] is True
    consent = client.patch(
        f"{_c(world)}/people/{world.other_person}/consent",
        json={"consent_publish": True},
        headers=world.auth(ADMIN),
    )
    assert consent.status_code == 410
    assert consent.json()["code"] == "PERSON_ERASED"
    assert _erase(client, world, uuid.uuid4()).status_code == 404


def test_the_id_number_may_be_registered_again_after_erasure(client: Client, world: World) -> None:
    assert _erase(client, world, world.other_person).status_code == 200
    body = {"profile": {"name": NAME, "id_number": ID_NUMBER}, "consent_entry": True}
    response = client.post(f"{_c(world)}/people", json=body, headers=world.auth(ADMIN))
    assert response.status_code == 201
    assert response.json()["person_id"] != str(world.other_person)
    assert [p["person_id"] for p in _lookup(client, world, ID_NUMBER)] == [response.json()["person_id"]]


def test_raw_person_rows_hold_no_personal_values(client: Client, world: World, owner: Conn) -> None:
    key = (world.community_id, world.other_person)
    row = owner.execute("SELECT * FROM person WHERE community_id = %s AND person_id = %s", key).fetchone()
    assert row is not None
    assert _leaks(row, PERSONAL) == []
    wrapped = owner.execute(
        "SELECT * FROM person_key WHERE community_id = %s AND person_id = %s", key
    ).fetchone()
    assert wrapped is not None
    assert _leaks(wrapped, PERSONAL) == []

    assert _erase(client, world, world.other_person).status_code == 200
    erased = owner.execute("SELECT * FROM person WHERE community_id = %s AND person_id = %s", key).fetchone()
    assert erased is not None
    assert _leaks(erased, PERSONAL) == []
    gone = owner.execute("SELECT count(*) FROM person_key WHERE community_id = %s AND person_id = %s", key)
    assert gone.fetchone() == (0,)
    events = owner.execute(
        "SELECT * FROM person_event WHERE community_id = %s AND person_id = %s", key
    ).fetchall()
    assert events
    assert all(_leaks(e, PERSONAL) == [] for e in events)


def _register_with_key(client: Client, world: World, key: str) -> tuple[dict[str, Any], Response]:
    body = {
        "profile": {"name": "林秀英", "id_number": "440301198506150024", "phone": "13712345678"},
        "consent_entry": True,
    }
    headers = {**world.auth(ADMIN), "Idempotency-Key": key}
    response: Response = client.post(f"{_c(world)}/people", json=body, headers=headers)
    assert response.status_code == 201
    return body, response


def test_a_replay_after_erasure_returns_no_personal_data(client: Client, world: World) -> None:
    key = f"reg-{uuid.uuid4().hex}"
    body, first = _register_with_key(client, world, key)
    person = uuid.UUID(first.json()["person_id"])
    assert _erase(client, world, person).status_code == 200

    replay = client.post(
        f"{_c(world)}/people", json=body, headers={**world.auth(ADMIN), "Idempotency-Key": key}
    )
    for value in ("林秀英", "440301198506150024", "13712345678"):
        assert value not in replay.text


def test_no_table_keeps_an_erased_persons_values(client: Client, world: World, owner: Conn) -> None:
    key = f"reg-{uuid.uuid4().hex}"
    _body, first = _register_with_key(client, world, key)
    assert _erase(client, world, uuid.UUID(first.json()["person_id"])).status_code == 200
    rows = owner.execute("SELECT * FROM api_idempotency WHERE key = %s", (key,)).fetchall()
    assert len(rows) == 1
    assert _leaks(rows[0], ("林秀英", "440301198506150024", "13712345678")) == []
