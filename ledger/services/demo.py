"""A demo community with members and a little history, so a newcomer sees a working ledger at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ledger.domain.accounts import AccountSpec, OwnerKind, SystemAccount, member_account_flags
from ledger.domain.transfers import Phase, Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import Communities
from ledger.services.ledger import Ledger
from ledger.store.db import Conn

DEMO_REGION = "demo-region"
DEMO_COMMUNITY = "demo"
_YEAR_END_US = int(datetime(2026, 12, 31, 16, 0, tzinfo=UTC).timestamp() * 1_000_000)  # 24:00 Beijing


def find_demo(conn: Conn) -> int | None:
    row = conn.execute("SELECT community_id FROM community WHERE code = %s", (DEMO_COMMUNITY,)).fetchone()
    conn.rollback()
    return None if row is None else int(row[0])


def seed_demo(communities: Communities, ledger: Ledger, *, members: int = 20) -> int:
    """Create 演示街道 / 幸福社区 with ``members`` volunteers, service credited and some points spent."""
    region_id = communities.create_region(DEMO_REGION, "演示街道")
    info = communities.create_community(region_id, DEMO_COMMUNITY, "幸福社区")
    cid = info.community_id
    issuance = {unit: info.system_accounts[(SystemAccount.ISSUANCE, unit)] for unit in Unit}
    sink = info.system_accounts[(SystemAccount.REDEMPTION_SINK, Unit.POINTS)]
    people = [uuid.uuid4() for _ in range(members)]
    accounts = {
        (person, unit): communities.open_account(
            cid, AccountSpec(OwnerKind.PERSON, unit, member_account_flags(unit), owner_id=person)
        )
        for person in people
        for unit in (Unit.SERVICE_MINUTES, Unit.POINTS, Unit.COIN_MINUTES)
    }
    credits = []
    for i, person in enumerate(people):
        minutes = 60 * (1 + i % 4)
        credits.append(
            TransferRequest(
                cid,
                "service_credit",
                (
                    Posting(issuance[Unit.SERVICE_MINUTES], Unit.SERVICE_MINUTES, -minutes),
                    Posting(accounts[(person, Unit.SERVICE_MINUTES)], Unit.SERVICE_MINUTES, minutes),
                    Posting(issuance[Unit.POINTS], Unit.POINTS, -(minutes // 60)),
                    Posting(
                        accounts[(person, Unit.POINTS)],
                        Unit.POINTS,
                        minutes // 60,
                        expires_at_us=_YEAR_END_US,
                    ),
                    Posting(issuance[Unit.COIN_MINUTES], Unit.COIN_MINUTES, -minutes),
                    Posting(accounts[(person, Unit.COIN_MINUTES)], Unit.COIN_MINUTES, minutes),
                ),
                f"demo-service-{i}",
            )
        )
    ledger.post_batch(credits)
    buyer = accounts[(people[3], Unit.POINTS)]
    ledger.transfer(
        TransferRequest(
            cid,
            "redemption",
            (Posting(buyer, Unit.POINTS, -2), Posting(sink, Unit.POINTS, 2)),
            "demo-order-1",
            phase=Phase.PENDING,
        )
    )
    return cid
