"""The HTTP surface that exists so far: health, readiness, balance reads and problem details."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from ledger.domain.accounts import SystemAccount
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import CommunityInfo
from ledger.services.ledger import Ledger


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app=create_app(ledger)) as c:
        yield c


def test_health_and_readiness(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}


def test_balance_read(client: TestClient, ledger: Ledger, community: CommunityInfo, open_member) -> None:  # type: ignore[no-untyped-def,type-arg]
    member = open_member(Unit.POINTS)
    issuance = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    ledger.transfer(
        TransferRequest(
            community.community_id,
            "award",
            (Posting(issuance, Unit.POINTS, -7), Posting(member, Unit.POINTS, 7)),
            "a1",
        )
    )
    body = client.get(f"/api/v1/communities/{community.community_id}/accounts/{member}/balance").json()
    assert body == {
        "account_id": str(member),
        "unit": "points",
        "posted": 7,
        "pending_in": 0,
        "pending_out": 0,
        "available": 7,
    }


def test_unknown_account_is_a_404_problem(client: TestClient, community: CommunityInfo) -> None:  # type: ignore[type-arg]
    response = client.get(f"/api/v1/communities/{community.community_id}/accounts/{uuid.uuid4()}/balance")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "ACCOUNT_NOT_FOUND"
