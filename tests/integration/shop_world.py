"""A small points-supermarket world for integration tests: people, households, points accounts
with lots, a settable clock, and checks of the ledger's and the shop's invariants."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from ledger.domain.accounts import AccountSpec, OwnerKind, SystemAccount, member_account_flags
from ledger.domain.people import PersonProfile
from ledger.domain.shop import FundingSource, ItemSpec, LimitScope, Period
from ledger.domain.times import to_us
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.privacy.keyring import Keyring
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.households import Households
from ledger.services.invariants import check_community
from ledger.services.ledger import Ledger
from ledger.services.people import People
from ledger.services.shop import Shop
from ledger.store.db import Conn

CODE_KEY = bytes(range(32))
_keys = itertools.count(1)


@dataclass
class Clock:
    """The wall clock until a test sets ``now``; the shop and households read the same one."""

    now: datetime | None = None

    def __call__(self) -> datetime:
        return self.now or datetime.now(UTC)


@dataclass
class ShopWorld:
    pool: ConnectionPool[Conn]
    owner: Conn
    ledger: Ledger
    communities: Communities
    info: CommunityInfo
    clock: Clock
    shop: Shop
    people: People
    households: Households
    staff: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def c(self) -> int:
        return self.info.community_id

    def sys(self, account: SystemAccount) -> uuid.UUID:
        return self.info.system_accounts[(account, Unit.POINTS)]

    def person(self, points: int = 0) -> tuple[uuid.UUID, uuid.UUID]:
        """(person id, points account), with ``points`` awarded now (never expiring)."""
        person_id = self.people.create(
            self.c,
            PersonProfile(name="测试"),
            consent_entry=True,
            consent_publish=False,
            entered_by_self=False,
        )
        account = self.open(OwnerKind.PERSON, person_id)
        if points:
            self.award(account, points)
        return person_id, account

    def household(self, *members: uuid.UUID, points: int = 0) -> tuple[uuid.UUID, uuid.UUID]:
        household_id = self.households.create(self.c, f"H{next(_keys):05d}", member_ids=list(members))
        account = self.open(OwnerKind.HOUSEHOLD, household_id)
        if points:
            self.award(account, points)
        return household_id, account

    def open(self, kind: OwnerKind, owner_id: uuid.UUID, unit: Unit = Unit.POINTS) -> uuid.UUID:
        spec = AccountSpec(kind, unit, member_account_flags(unit), owner_id=owner_id)
        return self.communities.open_account(self.c, spec)

    def award(
        self,
        account: uuid.UUID,
        points: int,
        *,
        earned: datetime | None = None,
        expires: datetime | None = None,
    ) -> None:
        issuance = self.info.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
        self.ledger.transfer(
            TransferRequest(
                self.c,
                "award",
                (
                    Posting(issuance, Unit.POINTS, -points),
                    Posting(account, Unit.POINTS, points, to_us(expires)),
                ),
                f"award-{next(_keys)}",
                effective_us=to_us(earned),
            )
        )

    def item(self, *, price: int = 50, stock: int = 10, **kw: object) -> uuid.UUID:
        spec = ItemSpec(
            name=str(kw.pop("name", "食用油 5L")),
            price_points=price,
            reference_value_fen=int(str(kw.pop("reference_value_fen", 5000))),
            funding_source=FundingSource(str(kw.pop("funding_source", "public_budget"))),
            pickup_point="村委会一楼",
            limit_scope=LimitScope(str(kw.pop("limit_scope", "person"))),
            limit_period=Period(str(kw.pop("limit_period", "month"))),
            **kw,  # type: ignore[arg-type]
        )
        return self.shop.create_item(self.c, spec, actor_id=self.staff, stock=stock).item_id

    def available(self, account: uuid.UUID) -> int:
        view = self.ledger.balance(self.c, account)
        return view.posted - view.pending_out

    def posted(self, account: uuid.UUID) -> int:
        return self.ledger.balance(self.c, account).posted

    def check(self) -> None:
        """The ledger's invariants, and the shop's: stock counters equal their movements, and every
        open order's units are reserved."""
        assert check_community(self.owner, self.c) == []
        rows = self.owner.execute(
            """
            SELECT i.item_id, i.stock_available, i.stock_reserved,
                   coalesce(sum(CASE m.kind WHEN 'restock' THEN m.quantity WHEN 'release' THEN m.quantity
                                ELSE -m.quantity END) FILTER (WHERE m.kind <> 'fulfilment'), 0),
                   coalesce(sum(CASE m.kind WHEN 'reservation' THEN m.quantity ELSE -m.quantity END)
                            FILTER (WHERE m.kind IN ('reservation', 'release', 'fulfilment')), 0),
                   (SELECT coalesce(sum(quantity), 0) FROM shop_order o
                    WHERE o.community_id = i.community_id AND o.item_id = i.item_id AND o.state = 'placed')
            FROM shop_item i LEFT JOIN shop_stock_movement m
              ON m.community_id = i.community_id AND m.item_id = i.item_id
            WHERE i.community_id = %s GROUP BY i.community_id, i.item_id
            """,
            (self.c,),
        ).fetchall()
        for item_id, available, reserved, moved_available, moved_reserved, open_units in rows:
            assert (available, reserved) == (moved_available, moved_reserved), item_id
            assert reserved == open_units, item_id


def make_world(
    pool: ConnectionPool[Conn], owner: Conn, ledger: Ledger, communities: Communities, info: CommunityInfo
) -> ShopWorld:
    clock = Clock()
    shop = Shop(pool, code_key=CODE_KEY, clock=clock)
    people = People(pool, Keyring.generate())
    return ShopWorld(
        pool, owner, ledger, communities, info, clock, shop, people, Households(pool, clock=clock)
    )
