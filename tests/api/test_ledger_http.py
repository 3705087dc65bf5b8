"""Ledger routes over HTTP: transfer failures as problems, reversals, statements, lots, exports, lists."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import openpyxl
import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from api.deps import Services
from api.exports import HEADERS
from tests.api.conftest import World, profile

Client = TestClient[Litestar]  # conftest's Client, with its type argument for mypy

ADMIN = "community_admin"
BOM = b"\xef\xbb\xbf"


def _c(w: World) -> str:
    return f"/api/v1/communities/{w.community_id}"


def _postings(*legs: tuple[uuid.UUID, int]) -> list[dict[str, object]]:
    return [{"account_id": str(a), "unit": "points", "amount": n} for a, n in legs]


def _transfer(
    client: Client,
    w: World,
    postings: list[dict[str, object]],
    *,
    kind: str = "manual_award",
    **extra: object,
) -> Response:
    body = {"kind": kind, "postings": postings, **extra}
    response: Response = client.post(f"{_c(w)}/transfers", json=body, headers=w.auth(ADMIN))
    return response


def _raw(client: Client, w: World, content: bytes | str) -> Response:
    headers = {**w.auth(ADMIN), "Content-Type": "application/json"}
    response: Response = client.post(f"{_c(w)}/transfers", content=content, headers=headers)
    return response


def _problem(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"], body["type"]) == (status, code, f"urn:vledger:error:{code}")
    return body


def _fresh_account(client: Client, w: World, s: Services, unit: str = "points") -> uuid.UUID:
    person = s.people.create(
        w.community_id, profile("钱多"), consent_entry=True, consent_publish=False, entered_by_self=False
    )
    response = client.post(
        f"{_c(w)}/accounts",
        json={"owner_kind": "person", "owner_id": str(person), "unit": unit},
        headers=w.auth(ADMIN),
    )
    assert response.status_code == 201
    assert response.json()["balance"]["posted"] == 0
    return uuid.UUID(response.json()["account_id"])


def _award(
    client: Client, w: World, account: uuid.UUID, amount: int, *, kind: str = "manual_award", **extra: object
) -> dict[str, Any]:
    response = _transfer(client, w, _postings((w.issuance, -amount), (account, amount)), kind=kind, **extra)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _statement(client: Client, w: World, account: uuid.UUID, who: str = ADMIN, **params: str) -> Response:
    response: Response = client.get(
        f"{_c(w)}/accounts/{account}/statement", params=params, headers=w.auth(who)
    )
    return response


def _balance(client: Client, w: World, account: uuid.UUID) -> dict[str, Any]:
    response = client.get(f"{_c(w)}/accounts/{account}/balance", headers=w.auth(ADMIN))
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# ---------------------------------------------------------------- transfer failures as problems


def test_unbalanced_postings_are_422(client: Client, world: World) -> None:
    response = _transfer(client, world, _postings((world.issuance, -5), (world.other_account, 4)))
    body = _problem(response, 422, "UNBALANCED_POSTINGS")
    assert body["unit"] == "points"
    assert body["title"] == "各计量单位的分录合计必须为零"
    assert _balance(client, world, world.other_account)["posted"] == 50


def test_an_unknown_account_is_404(client: Client, world: World) -> None:
    ghost = uuid.uuid4()
    body = _problem(
        _transfer(client, world, _postings((world.issuance, -1), (ghost, 1))), 404, "ACCOUNT_NOT_FOUND"
    )
    assert body["account_id"] == str(ghost)


def test_an_account_of_another_community_is_404(client: Client, world: World, api_services: Services) -> None:
    other = api_services.communities.create_community(world.region_id, f"x-{uuid.uuid4().hex[:8]}", "外社区")
    foreign = next(iter(other.system_accounts.values()))
    _problem(
        _transfer(client, world, _postings((world.issuance, -1), (foreign, 1))), 404, "ACCOUNT_NOT_FOUND"
    )


def test_overdrawing_a_member_account_is_409(client: Client, world: World) -> None:
    response = _transfer(client, world, _postings((world.other_account, -51), (world.own_account, 51)))
    _problem(response, 409, "INSUFFICIENT_FUNDS")
    assert _balance(client, world, world.other_account)["posted"] == 50
    assert _balance(client, world, world.own_account)["posted"] == 50
    # Exactly the balance is fine.
    assert (
        _transfer(client, world, _postings((world.other_account, -50), (world.own_account, 50))).status_code
        == 201
    )


def test_malformed_json_is_400_and_says_nothing_about_the_body(client: Client, world: World) -> None:
    response = _raw(client, world, '{"kind": "manual_award", "postings": [{"note": "13812345678"')
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "13812345678" not in response.text


def test_malformed_json_is_malformed_request(client: Client, world: World) -> None:
    response = _raw(client, world, "{not json")
    _problem(response, 400, "MALFORMED_REQUEST")


def test_an_unknown_field_is_400_without_its_value(client: Client, world: World) -> None:
    body = {
        "kind": "manual_award",
        "postings": _postings((world.issuance, -1), (world.other_account, 1)),
        "nickname": "王小明",
    }
    response = _raw(client, world, json.dumps(body, ensure_ascii=False))
    problem = _problem(response, 400, "MALFORMED_REQUEST")
    assert problem["fields"]
    assert "王小明" not in response.text
    assert _balance(client, world, world.other_account)["posted"] == 50


def test_an_unknown_field_is_named(client: Client, world: World) -> None:
    body = {
        "kind": "manual_award",
        "postings": _postings((world.issuance, -1), (world.other_account, 1)),
        "nickname": "王小明",
    }
    problem = _problem(_raw(client, world, json.dumps(body, ensure_ascii=False)), 400, "MALFORMED_REQUEST")
    assert any("nickname" in f for f in problem["fields"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("postings[0].account_id", "13812345678"),
        ("postings[0].unit", "王小明"),
        ("postings[0].amount", "13812345678abc"),
        ("postings[0].amount", 1.5),
        ("kind", 13812345678),
        ("phase", "13812345678"),
    ],
)
def test_a_wrong_type_names_the_field_but_never_the_value(
    client: Client, world: World, field: str, value: object
) -> None:
    postings: list[dict[str, object]] = _postings((world.issuance, -1), (world.other_account, 1))
    body: dict[str, object] = {"kind": "manual_award", "postings": postings}
    if field.startswith("postings[0]."):
        postings[0][field.removeprefix("postings[0].")] = value
    else:
        body[field] = value
    response = _raw(client, world, json.dumps(body, ensure_ascii=False))
    problem = _problem(response, 400, "MALFORMED_REQUEST")
    assert problem["fields"] == [field]
    assert str(value) not in response.text


def test_a_metadata_float_is_malformed(client: Client, world: World) -> None:
    response = _transfer(
        client, world, _postings((world.issuance, -1), (world.other_account, 1)), metadata={"hours": 1.5}
    )
    problem = _problem(response, 400, "MALFORMED_REQUEST")
    assert problem["field"] == "metadata.hours"


def test_an_effective_time_too_far_in_the_future_is_a_client_error(client: Client, world: World) -> None:
    response = _transfer(
        client,
        world,
        _postings((world.issuance, -1), (world.other_account, 1)),
        effective_at="2300-01-01T00:00:00Z",
    )
    assert 400 <= response.status_code < 500
    assert response.json()["code"] in ("MALFORMED_REQUEST", "INVALID_FIELD")


# ------------------------------------------------------------------------------------ reversals


def test_a_transfer_is_reversed_once(client: Client, world: World) -> None:
    path = f"{_c(world)}/transfers/{world.other_transfer}/reversal"
    first = client.post(path, json={"reason": "录入错误"}, headers=world.auth(ADMIN))
    assert first.status_code == 201
    reversal = first.json()
    assert reversal["reverses_id"] == str(world.other_transfer)
    assert reversal["kind"] == "reversal"
    assert {p["account_id"]: p["amount"] for p in reversal["postings"]}[str(world.other_account)] == -50
    assert _balance(client, world, world.other_account)["posted"] == 0

    second = client.post(path, json={"reason": "再次冲正"}, headers=world.auth(ADMIN))
    _problem(second, 409, "ALREADY_REVERSED")
    assert _balance(client, world, world.other_account)["posted"] == 0

    got = client.get(f"{_c(world)}/transfers/{reversal['transfer_id']}", headers=world.auth("auditor"))
    assert got.status_code == 200
    assert got.json()["reverses_id"] == str(world.other_transfer)


def test_reversing_an_unknown_transfer_is_404(client: Client, world: World) -> None:
    response = client.post(
        f"{_c(world)}/transfers/{uuid.uuid4()}/reversal", json={}, headers=world.auth(ADMIN)
    )
    _problem(response, 404, "TRANSFER_NOT_FOUND")


# ---------------------------------------------------------------------------------- statements


def test_statement_pages_walk_every_line_newest_first(
    client: Client, world: World, api_services: Services
) -> None:
    account = _fresh_account(client, world, api_services)
    posted = [_award(client, world, account, n)["transfer_id"] for n in range(1, 8)]

    seen: list[dict[str, Any]] = []
    sizes = []
    cursor: str | None = None
    for _ in range(10):
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = _statement(client, world, account, **params)
        assert page.status_code == 200
        sizes.append(len(page.json()["items"]))
        seen.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    ids = [line["transfer_id"] for line in seen]
    assert ids == list(reversed(posted))  # newest first, each once
    assert len(set(ids)) == len(ids)
    assert [line["amount"] for line in seen] == [7, 6, 5, 4, 3, 2, 1]
    assert [line["balance_after"] for line in seen] == [28, 21, 15, 10, 6, 3, 1]
    whole = _statement(client, world, account, limit="500").json()
    assert whole["items"] == seen
    assert whole["next_cursor"] is None


def test_a_full_last_page_is_followed_by_an_empty_one(
    client: Client, world: World, api_services: Services
) -> None:
    account = _fresh_account(client, world, api_services)
    for n in (1, 2):
        _award(client, world, account, n)
    first = _statement(client, world, account, limit="2").json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = _statement(client, world, account, limit="2", cursor=first["next_cursor"]).json()
    assert rest == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "!!!"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_bad_paging_parameters_are_400(
    client: Client, world: World, params: dict[str, str], field: str
) -> None:
    problem = _problem(_statement(client, world, world.other_account, **params), 400, "MALFORMED_REQUEST")
    assert field in problem.get("fields", [problem.get("field")])


def test_statement_filters_by_kind_and_effective_time(
    client: Client, world: World, api_services: Services
) -> None:
    account = _fresh_account(client, world, api_services)
    jan = _award(client, world, account, 1, effective_at="2024-01-10T00:00:00Z")["transfer_id"]
    feb = _award(client, world, account, 2, effective_at="2024-02-10T00:00:00Z", kind="adjustment")
    mar = _award(client, world, account, 4, effective_at="2024-03-10T00:00:00Z")["transfer_id"]

    def ids(**params: str) -> list[str]:
        response = _statement(client, world, account, **params)
        assert response.status_code == 200
        return [line["transfer_id"] for line in response.json()["items"]]

    assert ids(kind="adjustment") == [feb["transfer_id"]]
    assert ids(kind="manual_award") == [mar, jan]
    assert ids(kind="no_such_kind") == []
    assert ids(**{"from": "2024-02-01T00:00:00Z", "to": "2024-03-01T00:00:00Z"}) == [feb["transfer_id"]]
    assert ids(**{"from": "2024-02-10T00:00:00Z"}) == [mar, feb["transfer_id"]]  # from is inclusive
    assert ids(to="2024-02-10T00:00:00Z") == [jan]  # to is exclusive
    assert ids(**{"from": "2024-02-10T08:00:00+08:00", "to": "2024-02-10T08:00:01+08:00"}) == [
        feb["transfer_id"]
    ]
    assert ids(kind="manual_award", **{"from": "2024-02-01T00:00:00Z"}) == [mar]
    line = _statement(client, world, account, kind="adjustment").json()["items"][0]
    assert datetime.fromisoformat(line["effective_at"]) == datetime(2024, 2, 10, tzinfo=UTC)
    assert line["recorded_at"] != line["effective_at"]  # recorded now, dated back


def test_naive_statement_bounds_are_beijing_time_like_effective_at(
    client: Client, world: World, api_services: Services
) -> None:
    account = _fresh_account(client, world, api_services)
    # 07:30 on 1 March in Beijing is 23:30 on 29 February in UTC.
    line = _award(client, world, account, 1, effective_at="2024-03-01T07:30:00")
    assert datetime.fromisoformat(line["effective_at"]) == datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
    response = _statement(
        client, world, account, **{"from": "2024-03-01T00:00:00", "to": "2024-03-02T00:00:00"}
    )
    assert [x["transfer_id"] for x in response.json()["items"]] == [line["transfer_id"]]


# ----------------------------------------------------------------------------------------- lots


def test_lots_show_their_expiry(client: Client, world: World, api_services: Services) -> None:
    account = _fresh_account(client, world, api_services)
    postings = _postings((world.issuance, -30), (account, 30))
    postings[1]["expires_at"] = "2031-06-30T16:00:00Z"
    assert _transfer(client, world, postings).status_code == 201
    _award(client, world, account, 5)  # no expiry

    response = client.get(f"{_c(world)}/accounts/{account}/lots", headers=world.auth(ADMIN))
    assert response.status_code == 200
    lots = response.json()
    assert [(lot["amount"], lot["remaining"]) for lot in lots] == [(30, 30), (5, 5)]  # soonest expiry first
    assert datetime.fromisoformat(lots[0]["expires_at"]) == datetime(2031, 6, 30, 16, tzinfo=UTC)
    assert lots[1]["expires_at"] is None

    # Spending takes from the lot that expires first.
    spend = _transfer(client, world, _postings((account, -10), (world.issuance, 10)), kind="redemption")
    assert spend.status_code == 201
    lots = client.get(f"{_c(world)}/accounts/{account}/lots", headers=world.auth(ADMIN)).json()
    assert [(lot["amount"], lot["remaining"]) for lot in lots] == [(30, 20), (5, 5)]


def test_an_expiry_on_a_debit_is_refused(client: Client, world: World) -> None:
    postings = _postings((world.other_account, -1), (world.own_account, 1))
    postings[0]["expires_at"] = "2031-06-30T16:00:00Z"
    _problem(_transfer(client, world, postings), 422, "INVALID_EXPIRY")


# -------------------------------------------------------------------------------------- exports


def _export(client: Client, w: World, account: uuid.UUID, fmt: str | None = None) -> Response:
    params = {} if fmt is None else {"format": fmt}
    response: Response = client.get(
        f"{_c(w)}/accounts/{account}/statement/export", params=params, headers=w.auth("auditor")
    )
    assert response.status_code == 200
    return response


def _export_account(client: Client, w: World, s: Services) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    account = _fresh_account(client, w, s)
    _award(client, w, account, 12, effective_at="2024-05-01T02:00:00Z")
    _award(client, w, account, 8)
    _transfer(client, w, _postings((account, -5), (w.issuance, 5)), kind="redemption")
    lines: list[dict[str, Any]] = _statement(client, w, account).json()["items"]
    assert len(lines) == 3
    return account, lines


def test_csv_export_has_a_bom_chinese_headers_and_one_row_per_posting(
    client: Client, world: World, api_services: Services
) -> None:
    account, lines = _export_account(client, world, api_services)
    response = _export(client, world, account)
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert ".csv" in response.headers["content-disposition"]
    assert response.content.startswith(BOM)
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert tuple(rows[0]) == HEADERS
    assert rows[0][:3] == ["转账编号", "序号", "业务类型"]
    body = rows[1:]
    assert len(body) == len(lines)
    assert [r[0] for r in body] == [line["transfer_id"] for line in lines]
    assert [int(r[6]) for r in body] == [line["amount"] for line in lines] == [-5, 8, 12]
    assert [r[2] for r in body] == ["redemption", "manual_award", "manual_award"]
    assert [int(r[7]) for r in body] == [15, 20, 12]
    assert body[2][4] == "2024-05-01 10:00:00"  # effective time in Beijing time


def test_xlsx_export_has_the_same_rows(client: Client, world: World, api_services: Services) -> None:
    account, _lines = _export_account(client, world, api_services)
    csv_rows = list(
        csv.reader(io.StringIO(_export(client, world, account, "csv").content.decode("utf-8-sig")))
    )
    response = _export(client, world, account, "xlsx")
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert ".xlsx" in response.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True)
    sheet = book.worksheets[0]
    xlsx_rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    assert xlsx_rows == csv_rows


def test_an_unknown_export_format_is_400(client: Client, world: World) -> None:
    response = client.get(
        f"{_c(world)}/accounts/{world.other_account}/statement/export",
        params={"format": "pdf"},
        headers=world.auth("auditor"),
    )
    _problem(response, 400, "MALFORMED_REQUEST")


# ------------------------------------------------------------------------------ accounts, reads


def test_account_list_pages_cover_every_account_once(client: Client, world: World) -> None:
    headers = world.auth(ADMIN)
    whole = client.get(f"{_c(world)}/accounts", params={"limit": "500"}, headers=headers).json()
    assert whole["next_cursor"] is None
    expected = [a["account_id"] for a in whole["items"]]
    assert len(expected) > 4
    assert expected == sorted(expected, key=uuid.UUID)
    assert {str(world.own_account), str(world.other_account), str(world.issuance)} <= set(expected)

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(expected)):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{_c(world)}/accounts", params=params, headers=headers).json()
        assert len(page["items"]) <= 2
        seen.extend(a["account_id"] for a in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


def test_account_list_filters(client: Client, world: World) -> None:
    headers = world.auth(ADMIN)
    mine = client.get(
        f"{_c(world)}/accounts", params={"owner_id": str(world.other_person)}, headers=headers
    ).json()["items"]
    assert [a["account_id"] for a in mine] == [str(world.other_account)]
    assert mine[0]["balance"]["posted"] == 50
    assert set(mine[0]["flags"]) == {"non_negative", "lots"}
    coins = client.get(f"{_c(world)}/accounts", params={"unit": "coin_minutes"}, headers=headers).json()[
        "items"
    ]
    assert coins and {a["unit"] for a in coins} == {"coin_minutes"}


def test_a_volunteer_lists_only_their_own_accounts_whatever_the_filter(client: Client, world: World) -> None:
    headers = world.auth("volunteer")
    for params in (
        {},
        {"owner_id": str(world.other_person)},
        {"owner_kind": "household"},
        {"owner_kind": "system"},
        {"owner_id": str(world.other_person), "owner_kind": "person", "unit": "points"},
    ):
        response = client.get(f"{_c(world)}/accounts", params=params, headers=headers)
        assert response.status_code == 200, params
        items = response.json()["items"]
        assert [a["account_id"] for a in items] == [str(world.own_account)], params
        assert all(a["owner_id"] == str(world.volunteer_person) for a in items)


def test_a_volunteer_reads_their_own_transfer_and_statement(client: Client, world: World) -> None:
    statement = _statement(client, world, world.own_account, who="volunteer")
    assert statement.status_code == 200
    lines = statement.json()["items"]
    assert [(x["amount"], x["balance_after"]) for x in lines] == [(50, 50)]
    transfer = client.get(f"{_c(world)}/transfers/{lines[0]['transfer_id']}", headers=world.auth("volunteer"))
    assert transfer.status_code == 200
    legs = {p["account_id"]: p["amount"] for p in transfer.json()["postings"]}
    assert legs[str(world.own_account)] == 50
    balance = client.get(f"{_c(world)}/accounts/{world.own_account}/balance", headers=world.auth("volunteer"))
    assert balance.json() == {
        "account_id": str(world.own_account),
        "unit": "points",
        "posted": 50,
        "pending_in": 0,
        "pending_out": 0,
        "available": 50,
    }


def test_an_unknown_transfer_is_404(client: Client, world: World) -> None:
    _problem(
        client.get(f"{_c(world)}/transfers/{uuid.uuid4()}", headers=world.auth(ADMIN)),
        404,
        "TRANSFER_NOT_FOUND",
    )


def test_an_unknown_community_is_404(client: Client, world: World) -> None:
    response = client.get("/api/v1/communities/999999999/accounts", headers=world.auth(ADMIN))
    _problem(response, 404, "COMMUNITY_NOT_FOUND")
