"""A demo community with members and a little history, so a newcomer sees a working ledger at once."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import date

from ledger.domain.accounts import AccountSpec, OwnerKind, SystemAccount, member_account_flags
from ledger.domain.people import PersonProfile
from ledger.domain.roles import Grant, PersonRef, Role
from ledger.domain.transfers import Phase, Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.activities import Activities
from ledger.services.communities import Communities
from ledger.services.demo_activity import seed_activity_and_shop
from ledger.services.identity import Identity
from ledger.services.ledger import Ledger
from ledger.services.people import People
from ledger.services.service_records import ServiceRecords
from ledger.services.shop import Shop

DEMO_REGION = "demo-region"
DEMO_COMMUNITY = "demo"


@dataclass(frozen=True, slots=True)
class DemoExtras:
    """The services the demo's service records and catalog item are made with."""

    activities: Activities
    records: ServiceRecords
    shop: Shop


def find_demo(communities: Communities) -> int | None:
    return communities.find_by_code(DEMO_COMMUNITY)


# Demo sign-ins, printed by ``vledger serve --demo`` and listed in the README. Demo data only.
DEMO_PASSWORD = "vledger-demo"  # noqa: S105 - a published demo credential, not a secret
DEMO_USERS = (
    ("admin", Role.COMMUNITY_ADMIN),
    ("worker", Role.SOCIAL_WORKER),
    ("leader", Role.ACTIVITY_LEADER),
    ("clerk", Role.SHOP_CLERK),
    ("auditor", Role.AUDITOR),
)
DEMO_VOLUNTEER = "volunteer"
_SURNAMES = "王李张刘陈杨黄赵吴周"
_GIVEN = ("芳", "伟", "敏", "静", "强", "磊", "洋", "艳", "勇", "军")


def seed_demo(
    communities: Communities,
    ledger: Ledger,
    people_service: People,
    identity: Identity,
    *,
    members: int = 20,
    now_us: int | None = None,
    extras: DemoExtras | None = None,
) -> int:
    """Create 演示街道 / 幸福社区: ``members`` volunteers (encrypted profiles, consent recorded),
    service credited, some points reserved for an order, and sign-ins for each kind of user; with
    ``extras``, also an activity with service records and a points-supermarket item."""
    region_id = communities.create_region(DEMO_REGION, "演示街道")
    info = communities.create_community(region_id, DEMO_COMMUNITY, "幸福社区")
    cid = info.community_id
    issuance = {unit: info.system_accounts[(SystemAccount.ISSUANCE, unit)] for unit in Unit}
    sink = info.system_accounts[(SystemAccount.REDEMPTION_SINK, Unit.POINTS)]
    people = [
        people_service.create(
            cid,
            PersonProfile(
                name=_SURNAMES[i % 10] + _GIVEN[(i * 3) % 10],
                sex="female" if i % 2 else "male",
                birth_date=date(1960 + i, 1 + i % 12, 1 + i % 28),
                residence="幸福社区",
                service_categories=("助老服务",),
            ),
            consent_entry=True,
            consent_publish=i % 3 != 0,
            entered_by_self=False,
        )
        for i in range(members)
    ]
    user_ids: dict[str, uuid.UUID] = {}
    for username, role in DEMO_USERS:
        user_id = user_ids[username] = identity.create_user(username, DEMO_PASSWORD)
        identity.grant(user_id, Grant(role, community_id=cid))
    volunteer = identity.create_user(DEMO_VOLUNTEER, DEMO_PASSWORD, person=PersonRef(cid, people[0]))
    identity.grant(volunteer, Grant(Role.VOLUNTEER, community_id=cid))
    year_us = 365 * 86_400_000_000
    expires_at_us = (now_us if now_us is not None else int(time.time() * 1_000_000)) + year_us
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
                        expires_at_us=expires_at_us,
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
    if extras is not None:
        seed_activity_and_shop(
            cid,
            activities=extras.activities,
            records=extras.records,
            shop=extras.shop,
            worker_id=user_ids["worker"],
            leader_id=user_ids["leader"],
            volunteers=(people[1], people[2]),
        )
    return cid
