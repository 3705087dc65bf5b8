"""A region of its own with time-bank services, a settable clock and helpers, for the integration
tests of the time bank (each test gets a fresh region, so switching it touches no other test)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from psycopg_pool import ConnectionPool

from ledger.domain.accounts import SystemAccount
from ledger.domain.ids import uuid7
from ledger.domain.people import PersonProfile
from ledger.domain.service_credit import CHINA_TZ
from ledger.domain.timebank import Actor
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.privacy import Keyring
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.invariants import check_community
from ledger.services.ledger import Ledger
from ledger.services.people import People
from ledger.services.rule_settings import RuleSettings
from ledger.services.timebank import TimeBank
from ledger.services.timebank_members import TimeBankMembers, birth_dates
from ledger.services.timebank_support import ensure_coin_account
from ledger.store.db import Conn

COIN = 60  # coin minutes in one coin
TODAY = date(2026, 6, 1)
KEYRING = Keyring.generate("tb")


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 6, 1, 10, tzinfo=CHINA_TZ))

    def __call__(self) -> datetime:
        return self.now


def born_years_ago(years: int, *, today: date = TODAY) -> date:
    """A birth date that makes someone exactly ``years`` old on ``today`` (birthday a month ago)."""
    month = today.month - 1 or 12
    year = today.year - years - (1 if today.month == 1 else 0)
    return date(year, month, 15)


@dataclass
class World:
    pool: ConnectionPool[Conn]
    owner: Conn
    ledger: Ledger
    communities: Communities
    region_id: int
    clock: Clock
    people: People
    bank: TimeBank
    members: TimeBankMembers
    settings: RuleSettings
    infos: dict[int, CommunityInfo] = field(default_factory=dict)
    staff_user: uuid.UUID = field(default_factory=uuid7)

    # ---------------------------------------------------------------------------------- setup

    def community(self, *, region_id: int | None = None) -> int:
        code = f"tb-{uuid.uuid4().hex[:12]}"
        info = self.communities.create_community(region_id or self.region_id, code, "时间银行测试社区")
        self.infos[info.community_id] = info
        return info.community_id

    def person(self, community_id: int, *, age: int | None = 40) -> uuid.UUID:
        """A registered person of ``age`` today (None: birth date unknown)."""
        born = None if age is None else born_years_ago(age)
        profile = PersonProfile(name="测试人员", birth_date=born)
        return self.people.create(
            community_id, profile, consent_entry=True, consent_publish=False, entered_by_self=False
        )

    def award(self, community_id: int, person_id: uuid.UUID, coin_minutes: int) -> None:
        """Coins from issuance (as service records credit them)."""
        issuance = self.system(community_id, SystemAccount.ISSUANCE)
        account = self.coin_account(community_id, person_id)
        postings = (
            Posting(issuance, Unit.COIN_MINUTES, -coin_minutes),
            Posting(account, Unit.COIN_MINUTES, coin_minutes),
        )
        self.ledger.transfer(TransferRequest(community_id, "award", postings, f"award-{uuid7()}"))

    def publish(self, community_id: int, **params: object) -> None:
        self.settings.publish(community_id, params, effective_from=date(2026, 1, 1))

    # --------------------------------------------------------------------------------- actors

    def staff(self) -> Actor:
        return Actor(self.staff_user, None, staff=True)

    def me(self, community_id: int, person_id: uuid.UUID, *, staff: bool = False) -> Actor:
        """The user who is this person (a fresh user id per call is fine: parties go by person)."""
        return Actor(uuid7(), (community_id, person_id), staff=staff)

    # ---------------------------------------------------------------------------------- reads

    def system(self, community_id: int, code: SystemAccount) -> uuid.UUID:
        return self.infos[community_id].system_accounts[(code, Unit.COIN_MINUTES)]

    def coin_account(self, community_id: int, person_id: uuid.UUID) -> uuid.UUID:
        return ensure_coin_account(self.pool, self.communities, community_id, person_id)

    def posted(self, community_id: int, person_id: uuid.UUID) -> int:
        return self.ledger.balance(community_id, self.coin_account(community_id, person_id)).posted

    def available(self, community_id: int, person_id: uuid.UUID) -> int:
        return self.ledger.balance(community_id, self.coin_account(community_id, person_id)).available

    def system_posted(self, community_id: int, code: SystemAccount) -> int:
        return self.ledger.balance(community_id, self.system(community_id, code)).posted

    def exchange_transfers(self, community_id: int, exchange_id: uuid.UUID) -> list[tuple[str, str]]:
        """(kind, phase) of the community's transfers that name the exchange, in log order."""
        rows = self.owner.execute(
            "SELECT t.kind, t.phase FROM transfer t JOIN log_leaf l USING (community_id, transfer_id)"
            " WHERE t.community_id = %s AND t.metadata->>'exchange_id' = %s ORDER BY l.idx",
            (community_id, str(exchange_id)),
        ).fetchall()
        return [(str(k), str(p)) for k, p in rows]

    def log_size(self, community_id: int) -> int:
        row = self.owner.execute(
            "SELECT size FROM log_head WHERE community_id = %s", (community_id,)
        ).fetchone()
        assert row is not None
        return int(row[0])

    def check_invariants(self) -> None:
        """Every community's ledger invariants, and clearing accounts netting to zero in the region
        (what one community's clearing received, another's paid out)."""
        for community_id in self.infos:
            assert check_community(self.owner, community_id) == [], community_id
        clearing = sum(self.system_posted(c, SystemAccount.CLEARING) for c in self.infos)
        assert clearing == 0


def make_world(pool: ConnectionPool[Conn], owner: Conn, ledger: Ledger, communities: Communities) -> World:
    clock = Clock()
    people = People(pool, KEYRING, clock=clock)
    region_id = communities.create_region(f"tb-{uuid.uuid4().hex[:8]}", "时间银行测试街道")
    world = World(
        pool=pool,
        owner=owner,
        ledger=ledger,
        communities=communities,
        region_id=region_id,
        clock=clock,
        people=people,
        bank=TimeBank(pool, communities, birth_date_of=birth_dates(people), clock=clock),
        members=TimeBankMembers(pool, ledger, communities, birth_date_of=birth_dates(people), clock=clock),
        settings=RuleSettings(pool, clock=clock),
    )
    world.community()
    return world
