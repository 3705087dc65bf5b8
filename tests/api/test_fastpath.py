"""The balance fast path answers exactly what the route answers, and only in its own case.

Two apps over the same services (whose identity caches tokens, as in production): one with the fast
path, one without. Every case is asked of both; the answers must be the same bytes, and the fast
path must have answered the staff reads (and nothing else).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar.testing import TestClient

from api import fastpath
from tests.api.conftest import World


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Bodies the fast path sent itself."""
    sent: list[bytes] = []
    real = fastpath._balance_body

    async def spy(scope: Any) -> bytes | None:
        body = await real(scope)
        if body is not None:
            sent.append(body)
        return body

    monkeypatch.setattr(fastpath, "_balance_body", spy)
    return sent


def _both(apps: tuple[TestClient[Any], TestClient[Any]], path: str, headers: dict[str, str]) -> Any:
    fast, slow = apps
    a, b = fast.get(path, headers=headers), slow.get(path, headers=headers)
    assert (a.status_code, a.content, a.headers["content-type"]) == (
        b.status_code,
        b.content,
        b.headers["content-type"],
    )
    return a


def test_staff_reads_are_answered_by_the_fast_path_with_the_routes_bytes(
    apps: tuple[TestClient[Any], TestClient[Any]], world: World, answered: list[bytes]
) -> None:
    path = f"/api/v1/communities/{world.community_id}/accounts/{world.other_account}/balance"
    for role in ("community_admin", "auditor", "social_worker", "region_admin"):
        _both(apps, path, world.auth(role))  # the first read fills the token and region caches
        answered.clear()
        response = _both(apps, path, world.auth(role))
        assert response.status_code == 200 and response.json()["posted"] == 50
        assert answered == [response.content], role


@pytest.mark.parametrize(
    ("who", "which", "status"),
    [
        ("volunteer", "own", 200),  # ownership needs the database: the route decides
        ("volunteer", "other", 404),
        ("outsider", "other", 403),
        (None, "other", 401),
        ("community_admin", "unknown", 404),
        ("shop_clerk", "other", 403),
    ],
)
def test_everything_else_is_left_to_the_route(
    apps: tuple[TestClient[Any], TestClient[Any]],
    world: World,
    answered: list[bytes],
    who: str | None,
    which: str,
    status: int,
) -> None:
    account = {"own": world.own_account, "other": world.other_account, "unknown": uuid.uuid4()}[which]
    path = f"/api/v1/communities/{world.community_id}/accounts/{account}/balance"
    headers = {} if who is None else world.auth(who)
    _both(apps, path, headers)  # warm the caches
    answered.clear()
    assert _both(apps, path, headers).status_code == status
    assert answered == []


def test_a_query_string_goes_to_the_route(
    apps: tuple[TestClient[Any], TestClient[Any]], world: World, answered: list[bytes]
) -> None:
    path = f"/api/v1/communities/{world.community_id}/accounts/{world.other_account}/balance"
    _both(apps, path, world.auth("community_admin"))
    answered.clear()
    assert _both(apps, path + "?x=1", world.auth("community_admin")).status_code == 200
    assert answered == []
