"""A community with the service-record services, a settable clock and helpers, for the integration
tests of service records, corrections and their races (one fresh community per test)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time

from psycopg_pool import ConnectionPool

from ledger.domain.accounts import SystemAccount
from ledger.domain.ids import uuid7
from ledger.domain.service_credit import CHINA_TZ
from ledger.domain.service_records import ActivityFields
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services import service_posting
from ledger.services.activities import Activities
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.ledger import Ledger
from ledger.services.rule_settings import RuleSettings
from ledger.services.service_corrections import ServiceCorrections
from ledger.services.service_records import ServiceRecords
from ledger.store import service_posting_repo
from ledger.store.db import Conn
from ledger.store.service_records_repo import ActivityRow, RecordRow

HOUR = 60


@dataclass
class Clock:
    """Wall time for the services; ``on(day)`` moves it to noon of that date in China."""

    now: datetime = field(default_factory=lambda: datetime(2025, 3, 10, 12, tzinfo=CHINA_TZ))

    def __call__(self) -> datetime:
        return self.now

    def on(self, day: date) -> None:
        self.now = datetime(day.year, day.month, day.day, 12, tzinfo=CHINA_TZ)


@dataclass
class World:
    info: CommunityInfo
    pool: ConnectionPool[Conn]
    owner: Conn
    ledger: Ledger
    communities: Communities
    clock: Clock
    activities: Activities
    records: ServiceRecords
    corrections: ServiceCorrections
    settings: RuleSettings
    # Users by role: ids only (actors are not foreign keys); the leader is a real user row.
    worker: uuid.UUID = field(default_factory=uuid7)
    leader: uuid.UUID = field(default_factory=uuid7)
    admin: uuid.UUID = field(default_factory=uuid7)

    @property
    def cid(self) -> int:
        return self.info.community_id

    def person(self) -> uuid.UUID:
        person_id = uuid7()
        self.owner.execute(
            "INSERT INTO person (community_id, person_id) VALUES (%s, %s)", (self.cid, person_id)
        )
        return person_id

    def activity(
        self, start: date = date(2025, 3, 3), end: date = date(2025, 3, 7), name: str = "社区助老服务"
    ) -> ActivityRow:
        fields = ActivityFields(name, start, end, "幸福社区活动中心", "陪伴老人、打扫卫生", "幸福社区居委会")
        return self.activities.create(self.cid, fields, leader_user_id=self.leader, actor_id=self.worker)

    def record(
        self,
        person: uuid.UUID,
        activity: ActivityRow,
        day: date,
        start: time = time(9, 0),
        end: time = time(11, 45),
        *,
        submit: bool = True,
    ) -> RecordRow:
        """A record made by the social worker (and submitted, by default)."""
        row = self.records.create(
            self.cid,
            activity_id=activity.activity_id,
            person_id=person,
            service_date=day,
            start_time=start,
            end_time=end,
            actor_id=self.worker,
        )
        if submit:
            row = self.records.submit(self.cid, row.record_id, actor_id=self.worker)
        return row

    def posted(
        self, person: uuid.UUID, activity: ActivityRow, day: date, start: time, end: time
    ) -> RecordRow:
        row = self.record(person, activity, day, start, end)
        return self.records.verify(self.cid, row.record_id, verifier_id=self.leader)

    def accounts(self, person: uuid.UUID) -> dict[Unit, uuid.UUID]:
        service_posting.ensure_member_accounts(self.pool, self.communities, self.cid, person)
        with self.pool.connection() as conn:
            return service_posting_repo.person_accounts(conn, self.cid, person)

    def balance(self, person: uuid.UUID, unit: Unit) -> int:
        return self.ledger.balance(self.cid, self.accounts(person)[unit]).posted

    def system(self, code: SystemAccount, unit: Unit) -> uuid.UUID:
        return self.info.system_accounts[(code, unit)]

    def pool_coins(self) -> int:
        return self.ledger.balance(
            self.cid, self.system(SystemAccount.DONATION_POOL, Unit.COIN_MINUTES)
        ).posted

    def award(self, person: uuid.UUID, unit: Unit, amount: int, **posting: int) -> None:
        """Credit ``amount`` from issuance directly (history from before the service records)."""
        issuance = self.system(SystemAccount.ISSUANCE, unit)
        postings = (
            Posting(issuance, unit, -amount),
            Posting(self.accounts(person)[unit], unit, amount, **posting),
        )
        self.ledger.transfer(TransferRequest(self.cid, "award", postings, f"award-{uuid7()}"))

    def redeem(self, person: uuid.UUID, points: int) -> None:
        sink = self.system(SystemAccount.REDEMPTION_SINK, Unit.POINTS)
        postings = (
            Posting(self.accounts(person)[Unit.POINTS], Unit.POINTS, -points),
            Posting(sink, Unit.POINTS, points),
        )
        self.ledger.transfer(TransferRequest(self.cid, "redemption", postings, f"redeem-{uuid7()}"))

    def transfers_for(self, record_id: uuid.UUID) -> list[tuple[uuid.UUID, str, str | None]]:
        """(transfer_id, kind, idempotency key) of every transfer naming the record, oldest first."""
        rows = self.owner.execute(
            "SELECT transfer_id, kind, idempotency_key FROM transfer WHERE community_id = %s"
            " AND (metadata->>'service_record_id' = %s OR reverses_id IN (SELECT transfer_id FROM transfer"
            "  WHERE community_id = %s AND metadata->>'service_record_id' = %s))"
            " ORDER BY recorded_at, transfer_id",
            (self.cid, str(record_id), self.cid, str(record_id)),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def amounts(self, transfer_id: uuid.UUID) -> dict[uuid.UUID, int]:
        rows = self.owner.execute(
            "SELECT account_id, amount FROM posting WHERE community_id = %s AND transfer_id = %s",
            (self.cid, transfer_id),
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def publish(self, effective_from: date, **params: object) -> int:
        return self.settings.publish(self.cid, params, effective_from=effective_from).version


def make_world(
    pool: ConnectionPool[Conn], owner: Conn, ledger: Ledger, communities: Communities, info: CommunityInfo
) -> World:
    clock = Clock()
    world = World(
        info=info,
        pool=pool,
        owner=owner,
        ledger=ledger,
        communities=communities,
        clock=clock,
        activities=Activities(pool, clock=clock),
        records=ServiceRecords(pool, ledger, communities, clock=clock),
        corrections=ServiceCorrections(pool, ledger, clock=clock),
        settings=RuleSettings(pool, clock=clock),
    )
    owner.execute(
        "INSERT INTO app_user (user_id, username) VALUES (%s, %s)",
        (world.leader, f"leader-{world.leader.hex[:12]}"),
    )
    return world
