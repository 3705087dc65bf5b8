"""The transfer-post fast path answers what the route answers, and only in its own case.

Two apps over the same services (whose identity caches tokens, as in production): one with the fast
paths, one without. A new transfer's answer carries its own id, times and log index, so the two
apps' answers to the same request under two keys are compared without those; a replay, a refusal
and a business failure are compared byte for byte. The fast path must have answered the staff's
posts itself, and left everything else to the route (with the body as it came).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from api import fastpath
from tests.api.conftest import World

Apps = tuple[TestClient[Any], TestClient[Any]]
# What differs between two new transfers of the same request.
_OWN = ("transfer_id", "effective_at", "recorded_at", "receipt")


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Statuses of the answers the fast path sent itself."""
    sent: list[int] = []
    real = fastpath._post_transfer

    async def spy(scope: Any, body: bytes) -> tuple[int, bytes] | None:
        answer = await real(scope, body)
        if answer is not None:
            sent.append(answer[0])
        return answer

    monkeypatch.setattr(fastpath, "_post_transfer", spy)
    return sent


def _award(w: World, amount: int = 1, **extra: object) -> dict[str, object]:
    postings = [
        {"account_id": str(w.issuance), "unit": "points", "amount": -amount},
        {"account_id": str(w.other_account), "unit": "points", "amount": amount},
    ]
    return {"kind": "award", "postings": postings, **extra}


def _post(client: TestClient[Any], w: World, body: bytes, headers: dict[str, str], query: str = "") -> Any:
    path = f"/api/v1/communities/{w.community_id}/transfers{query}"
    return client.post(path, content=body, headers={"Content-Type": "application/json", **headers})


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}


def _posted_count() -> float:
    return REGISTRY.get_sample_value("vledger_transfers_total", {"kind": "award", "outcome": "posted"}) or 0.0


def _common(answer: dict[str, Any]) -> dict[str, Any]:
    """A new transfer's answer without what is its own (ids, times, log index, balances after)."""
    out = {k: v for k, v in answer.items() if k not in _OWN}
    out["postings"] = [{k: v for k, v in p.items() if k != "balance_after"} for p in answer["postings"]]
    return out


def _same(a: Any, b: Any) -> None:
    assert (a.status_code, a.headers["content-type"], a.content) == (
        b.status_code,
        b.headers["content-type"],
        b.content,
    )


def _warm(apps: Apps, w: World, who: str) -> None:
    """Fill both apps' token and region caches (the fast path needs them) with a read."""
    for client in apps:
        client.get(
            f"/api/v1/communities/{w.community_id}/accounts/{w.other_account}/balance", headers=w.auth(who)
        )


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"metadata": {"note": "第一季度", "n": 3, "flag": True}},
        {"effective_at": "2025-03-05T09:00:00Z"},
        {"effective_at": "2025-03-05T17:00:00"},  # no zone: Beijing time, as the route reads it
        {"phase": "pending", "timeout_s": 60},
    ],
    ids=["plain", "metadata", "effective_at", "effective_at_beijing", "pending"],
)
def test_staff_posts_are_answered_by_the_fast_path_as_the_route_answers(
    apps: Apps, world: World, answered: list[int], extra: dict[str, object]
) -> None:
    fast, slow = apps
    admin = world.auth("community_admin")
    _warm(apps, world, "community_admin")
    body = json.dumps(_award(world, 2, **extra)).encode()
    key = _key()
    counted = _posted_count()
    new = _post(fast, world, body, admin | key)
    assert answered == [201] and new.status_code == 201
    assert _posted_count() == counted + 1  # the transfer is in the metrics, as the route counts it
    other = _post(slow, world, body, admin | _key())
    assert answered == [201] and other.status_code == 201
    assert new.headers["content-type"] == other.headers["content-type"] == "application/json"
    mine, theirs = new.json(), other.json()
    assert _common(mine) == _common(theirs)
    assert theirs["receipt"]["index"] == mine["receipt"]["index"] + 1
    if extra.get("phase") != "pending":  # the second moved the balances on by as much again
        after = mine["postings"][1]["balance_after"]  # the member's (the hot issuance has none)
        assert theirs["postings"][1]["balance_after"] == after + 2
    # A replay under the first key: the route's bytes and the fast path's are the same.
    replayed = _post(slow, world, body, admin | key)
    assert replayed.status_code == 200 and replayed.json() == mine | {"replayed": True}
    _same(_post(fast, world, body, admin | key), replayed)
    assert answered == [201, 200]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("overdraw", "INSUFFICIENT_FUNDS"),
        ("unknown_account", "ACCOUNT_NOT_FOUND"),
        ("unit", "UNIT_MISMATCH"),
        ("unbalanced", "UNBALANCED_POSTINGS"),
        ("bad_kind", "INVALID_KIND"),
    ],
)
def test_a_business_failure_is_answered_as_the_route_answers_it(
    apps: Apps, world: World, answered: list[int], case: str, code: str
) -> None:
    fast, slow = apps
    admin = world.auth("community_admin")
    _warm(apps, world, "community_admin")
    award = _award(world)
    postings: list[dict[str, Any]] = award["postings"]  # type: ignore[assignment]
    if case == "overdraw":
        award = {
            "kind": "gift",
            "postings": [{**postings[1], "amount": -(10**9)}, {**postings[0], "amount": 10**9}],
        }
    elif case == "unknown_account":
        postings[1]["account_id"] = str(uuid.uuid4())
    elif case == "unit":
        postings[0]["unit"] = postings[1]["unit"] = "coin_minutes"
    elif case == "unbalanced":
        postings[1]["amount"] = 2
    else:
        award["kind"] = "Award!"
    body = json.dumps(award).encode()
    a, b = _post(fast, world, body, admin | _key()), _post(slow, world, body, admin | _key())
    _same(a, b)
    assert a.status_code in (400, 404, 409, 422) and a.json()["code"] == code


def test_a_key_used_with_another_request_is_a_conflict_either_way(
    apps: Apps, world: World, answered: list[int]
) -> None:
    fast, slow = apps
    admin, key = world.auth("community_admin"), _key()
    _warm(apps, world, "community_admin")
    assert _post(fast, world, json.dumps(_award(world, 1)).encode(), admin | key).status_code == 201
    other = json.dumps(_award(world, 3)).encode()
    a, b = _post(fast, world, other, admin | key), _post(slow, world, other, admin | key)
    _same(a, b)
    assert a.status_code == 409 and a.json()["code"] == "IDEMPOTENCY_CONFLICT"


def _headers(world: World, case: str) -> dict[str, str]:
    admin = world.auth("community_admin")
    return {
        "no_token": {},
        "unknown_token": {"Authorization": "Bearer nope"},
        "volunteer": world.auth("volunteer"),
        "outsider": world.auth("outsider"),
        "shop_clerk": world.auth("shop_clerk"),
        "empty_key": admin | {"Idempotency-Key": ""},
        "long_key": admin | {"Idempotency-Key": "k" * 95},
        "longest_key": admin | {"Idempotency-Key": uuid.uuid4().hex * 2 + "k" * 30},
        "odd_key": admin | {"Idempotency-Key": "a b/c"},
        "text_plain": admin | {"Content-Type": "text/plain"},
    }.get(case, admin)


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("no_token", None),
        ("unknown_token", None),
        ("volunteer", None),
        ("outsider", None),
        ("shop_clerk", None),
        ("empty_key", None),
        ("long_key", None),
        ("longest_key", None),
        ("odd_key", None),  # the ledger refuses its characters: both answer its error
        ("text_plain", None),
        ("query", None),
        ("not_json", b"{kind: award"),
        ("unknown_field", b'{"kind": "award", "postings": [], "extra": 1}'),
        ("lax_amount", None),
        ("no_postings", b'{"kind": "award", "postings": []}'),
        ("too_many_postings", None),
        ("big_body", None),
    ],
)
def test_everything_else_is_left_to_the_route(
    apps: Apps, world: World, answered: list[int], case: str, body: bytes | None
) -> None:
    fast, slow = apps
    _warm(apps, world, "community_admin")
    for who in ("volunteer", "outsider", "shop_clerk"):
        _warm(apps, world, who)
    award = _award(world)
    if case == "lax_amount":  # a number in a string: strict decoding refuses it, the route decides
        award["postings"][1]["amount"] = "1"  # type: ignore[index]
        award["postings"][0]["amount"] = "-1"  # type: ignore[index]
    elif case == "too_many_postings":
        award["postings"] = award["postings"] * 33  # type: ignore[operator]
    elif case == "big_body":
        award["metadata"] = {f"k{i}": "x" * 200 for i in range(400)}
    data = body if body is not None else json.dumps(award).encode()
    headers = _headers(world, case)
    query = "?x=1" if case == "query" else ""
    # Each app gets its own key, so neither replays the other's answer.
    key = {} if "Idempotency-Key" in headers else {"Idempotency-Key": f"k-{case}"}
    a = _post(fast, world, data, {**headers, **{k: v + "-a" for k, v in key.items()}}, query)
    if case == "longest_key":  # the longest key the route accepts: the fast path takes it
        headers = _headers(world, case)  # another key of that length
    b = _post(slow, world, data, {**headers, **{k: v + "-b" for k, v in key.items()}}, query)
    if case == "longest_key":
        assert a.status_code == b.status_code == 201 and answered == [201]
        return
    assert answered == []
    # The route accepts a number in a string (lax decoding), ignores a query, reads a body sent as
    # text/plain as JSON and takes large metadata: both apps posted, each under its own key.
    accepted = ("lax_amount", "query", "text_plain", "big_body")
    assert a.status_code == b.status_code == (201 if case in accepted else a.status_code)
    if case not in accepted:
        assert a.status_code >= 400
        _same(a, b)


def test_a_body_in_pieces_is_read_whole_and_replayed_to_the_route() -> None:
    asyncio.run(_pieces())


async def _pieces() -> None:
    """The fast path reads a body sent in several messages; what it read is given to the route
    again, message by message, then the client's later messages."""
    messages: list[Any] = [
        {"type": "http.request", "body": b'{"kind": ', "more_body": True},
        {"type": "http.request", "body": b'"award"}', "more_body": False},
        {"type": "http.disconnect"},
    ]
    queue = list(messages)

    async def receive() -> Any:
        return queue.pop(0)

    body, read = await fastpath._read_body(receive)
    assert body == b'{"kind": "award"}' and read == messages[:2]
    replay = fastpath._replaying(read, receive)
    assert [await replay() for _ in range(3)] == messages

    big = [{"type": "http.request", "body": b"x" * fastpath.MAX_BODY, "more_body": True}]
    big.append({"type": "http.request", "body": b"y", "more_body": False})
    queue[:] = list(big)
    body, read = await fastpath._read_body(receive)
    assert body is None and read == big  # too large: left to the route, which reads it all again
    queue[:] = [{"type": "http.disconnect"}]
    body, read = await fastpath._read_body(receive)
    assert body is None and read == [{"type": "http.disconnect"}]
