"""The demo community's service records and points supermarket: an activity that ended a few days
ago with one record posted and one waiting for the leader, and an item in the catalog."""

from __future__ import annotations

import logging
import uuid
from datetime import time, timedelta

from ledger.domain.errors import LedgerError
from ledger.domain.service_records import ActivityFields
from ledger.domain.shop import FundingSource, ItemSpec
from ledger.services.activities import Activities
from ledger.services.service_records import ServiceRecords
from ledger.services.shop import Shop

__all__ = ["seed_activity_and_shop"]

log = logging.getLogger("vledger.demo")


def seed_activity_and_shop(
    community_id: int,
    *,
    activities: Activities,
    records: ServiceRecords,
    shop: Shop,
    worker_id: uuid.UUID,
    leader_id: uuid.UUID,
    volunteers: tuple[uuid.UUID, uuid.UUID],
) -> None:
    """An activity ended three days ago; the worker records two volunteers' mornings; the leader
    verifies (and so posts) the first, the second waits. A catalog item with stock."""
    shop.create_item(
        community_id,
        ItemSpec(
            name="洗衣液（2 千克）",
            price_points=10,
            reference_value_fen=2_000,
            funding_source=FundingSource.PUBLIC_BUDGET,
            pickup_point="幸福社区服务站",
            description="每人每月限兑 2 件",
            limit_quantity=2,
        ),
        actor_id=worker_id,
        stock=20,
    )
    end = records.today() - timedelta(days=3)
    try:
        activity = activities.create(
            community_id,
            ActivityFields(
                "社区助老服务",
                end - timedelta(days=2),
                end,
                "幸福社区活动中心",
                "陪伴老人、打扫卫生",
                "幸福社区居委会",
            ),
            leader_user_id=leader_id,
            actor_id=worker_id,
        )
        made = [
            records.create(
                community_id,
                activity_id=activity.activity_id,
                person_id=person,
                service_date=end,
                start_time=time(9, 0),
                end_time=time(11, 30),
                actor_id=worker_id,
            )
            for person in volunteers
        ]
        for row in made:
            records.submit(community_id, row.record_id, actor_id=worker_id)
        records.verify(community_id, made[0].record_id, verifier_id=leader_id)
    except LedgerError as err:  # e.g. CALENDAR_NOT_COVERED in a year the holiday data does not cover yet
        log.warning("demo service records skipped: %s", err.code)
