"""The time bank on real PostgreSQL within one community: scenario 9, the exchange's steps and their
repeats, holds, gifts, relations, hardship flags, disputes, and every refusal; ledger invariants
after each scenario."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from timebank_world import COIN, World, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.timebank import ExchangeState, Resolution
from ledger.domain.timebank_rules import RelationKind
from ledger.domain.transfers import Phase, ResolveRequest
from ledger.services.communities import Communities
from ledger.services.ledger import Ledger
from ledger.store.db import Conn


@pytest.fixture
def w(pool: ConnectionPool[Conn], owner: Conn, ledger: Ledger, communities: Communities) -> Iterator[World]:
    world = make_world(pool, owner, ledger, communities)
    yield world
    world.check_invariants()


@contextmanager
def fails(code: ErrorCode) -> Iterator[None]:
    with pytest.raises(LedgerError) as caught:
        yield
    assert caught.value.code is code, caught.value.to_dict()


def events(w: World, c: int, exchange_id: uuid.UUID) -> list[str]:
    return [e.kind for e in w.bank.history(c, exchange_id)]


# ------------------------------------------------------------------------------- scenario 9


def test_scenario_9(w: World) -> None:
    """A 63-year-old with 200 coins cannot redeem for herself under a 65 rule, can with the hardship
    flag, and can gift 50 to her 88-year-old mother, who spends 2 h on housekeeping."""
    c = next(iter(w.infos))
    w.publish(c, coin_withdrawal_min_age_years=65, coin_withdrawal_hardship_min_age_years=60)
    daughter, mother, helper = w.person(c, age=63), w.person(c, age=88), w.person(c, age=30)
    w.award(c, daughter, 200 * COIN)
    me = w.me(c, daughter)

    with fails(ErrorCode.WITHDRAWAL_AGE_NOT_REACHED):
        w.bank.request(c, daughter, service="家政", planned_minutes=120, actor=me)
    assert w.available(c, daughter) == 200 * COIN  # nothing held

    w.members.grant_hardship(c, daughter, valid_from=date(2026, 1, 1), actor=w.staff())
    own = w.bank.request(c, daughter, service="家政", planned_minutes=120, actor=me)
    assert own.state is ExchangeState.REQUESTED and own.hold_coin_minutes == 2 * COIN
    assert w.available(c, daughter) == 198 * COIN  # the hold
    w.bank.cancel(c, own.exchange_id, actor=me)
    assert w.available(c, daughter) == w.posted(c, daughter) == 200 * COIN

    w.members.record_relation(c, daughter, mother, RelationKind.PARENT, actor=w.staff())
    w.members.gift(c, daughter, mother, 50 * COIN, actor=me, idempotency_key="gift-1")
    assert (w.posted(c, daughter), w.posted(c, mother)) == (150 * COIN, 50 * COIN)

    mum = w.me(c, mother)
    ex = w.bank.request(c, mother, service="家政", planned_minutes=120, actor=mum)
    ex = w.bank.match(c, ex.exchange_id, provider_community_id=c, provider_person_id=helper, actor=w.staff())
    ex = w.bank.start(c, ex.exchange_id, actor=w.me(c, helper))
    ex = w.bank.confirm(c, ex.exchange_id, actor=mum, served_minutes=120)
    ex = w.bank.settle(c, ex.exchange_id, actor=w.me(c, helper))
    assert ex.state is ExchangeState.SETTLED
    assert (ex.charged_coin_minutes, ex.credited_coin_minutes, ex.pool_coin_minutes) == (120, 120, 0)
    assert (w.posted(c, daughter), w.posted(c, mother), w.posted(c, helper)) == (
        150 * COIN,
        48 * COIN,
        2 * COIN,
    )
    assert w.available(c, mother) == 48 * COIN
    assert events(w, c, ex.exchange_id) == ["requested", "matched", "started", "confirmed", "settled"]
    assert w.exchange_transfers(c, ex.exchange_id) == [
        ("timebank_hold", "pending"),
        ("timebank_release", "void"),
        ("timebank_payment", "single"),
    ]
    assert w.system_posted(c, SystemAccount.ESCROW) == 0


# ------------------------------------------------------------------------------ the happy path


def _served(w: World, c: int, *, coins: int = 10, planned: int = 90, served: int = 60) -> tuple:  # type: ignore[type-arg]
    recipient, provider = w.person(c, age=70), w.person(c)
    w.award(c, recipient, coins * COIN)
    me = w.me(c, recipient)
    ex = w.bank.request(c, recipient, service="陪诊", planned_minutes=planned, actor=me)
    w.bank.match(c, ex.exchange_id, provider_community_id=c, provider_person_id=provider, actor=w.staff())
    w.bank.start(c, ex.exchange_id, actor=w.staff())
    ex = w.bank.confirm(c, ex.exchange_id, actor=me, served_minutes=served)
    return ex, recipient, provider, me


def test_a_shorter_service_pays_less_than_was_held(w: World) -> None:
    c = next(iter(w.infos))
    ex, recipient, provider, me = _served(w, c, planned=90, served=45)
    assert w.available(c, recipient) == 10 * COIN - 90
    ex = w.bank.settle(c, ex.exchange_id, actor=me)
    assert ex.charged_coin_minutes == 45
    assert (w.posted(c, recipient), w.available(c, recipient), w.posted(c, provider)) == (555, 555, 45)


def test_every_step_repeated_changes_nothing(w: World) -> None:
    c = next(iter(w.infos))
    recipient, provider = w.person(c, age=70), w.person(c)
    w.award(c, recipient, 5 * COIN)
    me, staff, them = w.me(c, recipient), w.staff(), w.me(c, provider)
    xid = uuid7()
    ex = w.bank.request(c, recipient, service="理发", planned_minutes=60, actor=me, exchange_id=xid)
    assert w.bank.request(c, recipient, service="理发", planned_minutes=60, actor=me, exchange_id=xid) == ex
    with fails(ErrorCode.IDEMPOTENCY_CONFLICT):
        w.bank.request(c, recipient, service="理发", planned_minutes=30, actor=me, exchange_id=xid)
    for _ in range(2):
        ex = w.bank.match(c, xid, provider_community_id=c, provider_person_id=provider, actor=staff)
        ex = w.bank.start(c, xid, actor=them)
        ex = w.bank.confirm(c, xid, actor=me, served_minutes=60)
        ex = w.bank.settle(c, xid, actor=them)
    assert events(w, c, xid) == ["requested", "matched", "started", "confirmed", "settled"]
    assert w.exchange_transfers(c, xid) == [
        ("timebank_hold", "pending"),
        ("timebank_release", "void"),
        ("timebank_payment", "single"),
    ]
    assert (w.posted(c, recipient), w.posted(c, provider)) == (4 * COIN, COIN)
    # A repeat that differs is refused, not silently taken as the first.
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.bank.confirm(c, xid, actor=me, served_minutes=30)
    other = w.person(c)
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.bank.match(c, xid, provider_community_id=c, provider_person_id=other, actor=staff)
    history = w.bank.history(c, xid)
    assert [e.party for e in history] == ["recipient", "staff", "provider", "recipient", "provider"]
    assert history[-1].detail["charged_coin_minutes"] == COIN


def test_per_item_pricing_charges_the_item_price(w: World) -> None:
    c = next(iter(w.infos))
    w.publish(c, coin_pricing="per_item")
    recipient, provider = w.person(c, age=75), w.person(c)
    w.award(c, recipient, 3 * COIN)
    me = w.me(c, recipient)
    with fails(ErrorCode.INVALID_FIELD):
        w.bank.request(c, recipient, service="修理", planned_minutes=60, actor=me)
    ex = w.bank.request(c, recipient, service="修理", item_price_coin_minutes=100, actor=me)
    assert (ex.hold_coin_minutes, ex.rate_coin_minutes_per_hour) == (100, None)
    w.bank.match(c, ex.exchange_id, provider_community_id=c, provider_person_id=provider, actor=w.staff())
    w.bank.start(c, ex.exchange_id, actor=w.staff())
    w.bank.confirm(c, ex.exchange_id, actor=me)
    ex = w.bank.settle(c, ex.exchange_id, actor=w.staff())
    assert (ex.charged_coin_minutes, w.posted(c, recipient), w.posted(c, provider)) == (100, 80, 100)


def test_terms_stay_those_of_the_request_day(w: World) -> None:
    """A rate published after the request does not change what the request holds or charges."""
    c = next(iter(w.infos))
    ex, _, _, me = _served(w, c, planned=60, served=60)
    w.settings.publish(c, {"coin_minutes_per_service_hour": 120}, effective_from=date(2026, 6, 1))
    ex = w.bank.settle(c, ex.exchange_id, actor=me)
    assert (ex.settings_version, ex.rate_coin_minutes_per_hour, ex.charged_coin_minutes) == (0, 60, 60)


def test_a_zero_rate_holds_and_pays_nothing(w: World) -> None:
    c = next(iter(w.infos))
    w.publish(c, coin_minutes_per_service_hour=0)
    ex, _, _, me = _served(w, c, coins=1)
    assert ex.hold_transfer_id is None
    ex = w.bank.settle(c, ex.exchange_id, actor=me)
    assert (ex.charged_coin_minutes, ex.payment_transfer_id, ex.release_transfer_id) == (0, None, None)
    assert w.exchange_transfers(c, ex.exchange_id) == []


# ------------------------------------------------------------------------- the storage cap


@pytest.mark.parametrize(
    ("target", "expected"), [("donation_pool", (180, 120, 60)), ("not_credited", (120, 120, 0))]
)
def test_a_provider_at_the_storage_cap(w: World, target: str, expected: tuple[int, int, int]) -> None:
    """Scenario 8's numbers through an exchange: 1498 h stored, 3 h earned, cap 1500 h."""
    c = next(iter(w.infos))
    w.publish(c, coin_overflow_target=target)
    ex, recipient, provider, me = _served(w, c, coins=5, planned=180, served=180)
    w.award(c, provider, 1498 * COIN)
    ex = w.bank.settle(c, ex.exchange_id, actor=me)
    assert (ex.charged_coin_minutes, ex.credited_coin_minutes, ex.pool_coin_minutes) == expected
    assert w.posted(c, provider) == 1500 * COIN
    assert w.system_posted(c, SystemAccount.DONATION_POOL) == expected[2]
    assert w.posted(c, recipient) == 5 * COIN - expected[0]


# ------------------------------------------------------------------------------ cancellation


def test_cancel_releases_the_hold_and_is_only_for_before_the_service(w: World) -> None:
    c = next(iter(w.infos))
    recipient, provider = w.person(c, age=70), w.person(c)
    w.award(c, recipient, 2 * COIN)
    me = w.me(c, recipient)
    ex = w.bank.request(c, recipient, service="送餐", planned_minutes=60, actor=me)
    ex = w.bank.match(
        c, ex.exchange_id, provider_community_id=c, provider_person_id=provider, actor=w.staff()
    )
    ex = w.bank.cancel(c, ex.exchange_id, actor=w.me(c, provider), reason="临时有事")
    assert ex.state is ExchangeState.CANCELLED and ex.release_transfer_id is not None
    assert w.bank.cancel(c, ex.exchange_id, actor=me) == ex
    assert w.available(c, recipient) == 2 * COIN
    assert w.bank.history(c, ex.exchange_id)[-1].note == "临时有事"
    started = w.bank.request(c, recipient, service="送餐", planned_minutes=60, actor=me)
    w.bank.match(
        c, started.exchange_id, provider_community_id=c, provider_person_id=provider, actor=w.staff()
    )
    w.bank.start(c, started.exchange_id, actor=w.staff())
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.bank.cancel(c, started.exchange_id, actor=me)


# ---------------------------------------------------------------------------------- disputes


def test_a_dispute_in_service_resolved_by_cancelling(w: World) -> None:
    c = next(iter(w.infos))
    recipient, provider = w.person(c, age=70), w.person(c)
    w.award(c, recipient, 2 * COIN)
    me = w.me(c, recipient)
    ex = w.bank.request(c, recipient, service="陪聊", planned_minutes=60, actor=me)
    w.bank.match(c, ex.exchange_id, provider_community_id=c, provider_person_id=provider, actor=w.staff())
    w.bank.start(c, ex.exchange_id, actor=w.staff())
    with fails(ErrorCode.INVALID_FIELD):
        w.bank.dispute(c, ex.exchange_id, actor=me, reason=" ")
    ex = w.bank.dispute(c, ex.exchange_id, actor=me, reason="服务未完成")
    assert w.bank.dispute(c, ex.exchange_id, actor=w.me(c, provider), reason="另一种说法") == ex
    assert w.available(c, recipient) == COIN  # still held while disputed
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.bank.settle(c, ex.exchange_id, actor=me)
    ex = w.bank.resolve(c, ex.exchange_id, actor=w.staff(), resolution=Resolution.CANCEL, note="双方同意取消")
    assert (ex.state, ex.resolution) == (ExchangeState.CANCELLED, Resolution.CANCEL)
    assert w.available(c, recipient) == w.posted(c, recipient) == 2 * COIN
    assert w.bank.resolve(c, ex.exchange_id, actor=w.staff(), resolution=Resolution.CANCEL) == ex
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.bank.resolve(c, ex.exchange_id, actor=w.staff(), resolution=Resolution.SETTLE, served_minutes=30)
    assert events(w, c, ex.exchange_id) == ["requested", "matched", "started", "disputed", "resolved"]


def test_a_dispute_after_confirmation_resolved_by_paying_what_staff_decide(w: World) -> None:
    c = next(iter(w.infos))
    ex, recipient, provider, _ = _served(w, c, coins=3, planned=120, served=30)
    ex = w.bank.dispute(c, ex.exchange_id, actor=w.me(c, provider), reason="实际服务 90 分钟")
    staff_provider = w.me(c, provider, staff=True)
    with fails(ErrorCode.ACTOR_NOT_ALLOWED):  # staff who are a party do not decide their own dispute
        w.bank.resolve(c, ex.exchange_id, actor=staff_provider, resolution=Resolution.SETTLE)
    with fails(ErrorCode.INVALID_FIELD):
        w.bank.resolve(c, ex.exchange_id, actor=w.staff(), resolution=Resolution.SETTLE, served_minutes=121)
    ex = w.bank.resolve(c, ex.exchange_id, actor=w.staff(), resolution=Resolution.SETTLE, served_minutes=90)
    assert (ex.state, ex.served_minutes, ex.charged_coin_minutes) == (ExchangeState.SETTLED, 90, 90)
    assert (w.posted(c, recipient), w.posted(c, provider)) == (90, 90)
    assert ex.confirmed_at is not None and ex.resolved_at is not None
    with fails(ErrorCode.INVALID_FIELD):
        w.bank.resolve(c, ex.exchange_id, actor=w.staff(), resolution="pay")  # type: ignore[arg-type]


def test_a_dispute_in_service_settled_needs_the_minutes(w: World) -> None:
    c = next(iter(w.infos))
    recipient, provider = w.person(c, age=70), w.person(c)
    w.award(c, recipient, COIN)
    ex = w.bank.request(c, recipient, service="陪聊", planned_minutes=60, actor=w.me(c, recipient))
    w.bank.match(c, ex.exchange_id, provider_community_id=c, provider_person_id=provider, actor=w.staff())
    w.bank.start(c, ex.exchange_id, actor=w.staff())
    w.bank.dispute(c, ex.exchange_id, actor=w.me(c, provider), reason="对方未确认")
    with fails(ErrorCode.INVALID_FIELD):
        w.bank.resolve(c, ex.exchange_id, actor=w.staff(), resolution=Resolution.SETTLE)
    ex = w.bank.resolve(c, ex.exchange_id, actor=w.staff(), resolution=Resolution.SETTLE, served_minutes=60)
    assert ex.confirmed_at is None and ex.charged_coin_minutes == COIN


# --------------------------------------------------------------------------------- refusals


def test_who_may_take_each_step(w: World) -> None:
    c = next(iter(w.infos))
    recipient, provider, stranger = w.person(c, age=70), w.person(c), w.person(c)
    w.award(c, recipient, COIN)
    me, them, nobody = w.me(c, recipient), w.me(c, provider), w.me(c, stranger)
    with fails(ErrorCode.ACTOR_NOT_ALLOWED):
        w.bank.request(c, recipient, service="陪聊", planned_minutes=30, actor=nobody)
    on_behalf = w.bank.request(c, recipient, service="陪聊", planned_minutes=30, actor=w.staff())
    assert on_behalf.requested_by == w.staff_user
    xid = on_behalf.exchange_id
    with fails(ErrorCode.ACTOR_NOT_ALLOWED):
        w.bank.match(c, xid, provider_community_id=c, provider_person_id=provider, actor=me)
    w.bank.match(c, xid, provider_community_id=c, provider_person_id=provider, actor=w.staff())
    with fails(ErrorCode.ACTOR_NOT_ALLOWED):
        w.bank.start(c, xid, actor=me)
    w.bank.start(c, xid, actor=them)
    for actor in (them, w.staff(), nobody):
        with fails(ErrorCode.ACTOR_NOT_ALLOWED):
            w.bank.confirm(c, xid, actor=actor, served_minutes=30)
    w.bank.confirm(c, xid, actor=me, served_minutes=30)
    with fails(ErrorCode.ACTOR_NOT_ALLOWED):
        w.bank.settle(c, xid, actor=nobody)
    with fails(ErrorCode.ACTOR_NOT_ALLOWED):
        w.bank.dispute(c, xid, actor=nobody, reason="x")
    with fails(ErrorCode.ACTOR_NOT_ALLOWED):
        w.bank.resolve(c, xid, actor=me, resolution=Resolution.CANCEL)


def test_refusals_of_a_request(w: World) -> None:
    c = next(iter(w.infos))
    recipient, young, unknown = w.person(c, age=70), w.person(c, age=40), w.person(c, age=None)
    me = w.me(c, recipient)
    with fails(ErrorCode.INSUFFICIENT_FUNDS):
        w.bank.request(c, recipient, service="陪聊", planned_minutes=30, actor=me)
    assert w.bank.list(c, recipient_person_id=recipient) == []  # a refused request leaves nothing
    w.award(c, recipient, COIN)
    with fails(ErrorCode.WITHDRAWAL_AGE_NOT_REACHED):
        w.bank.request(c, young, service="陪聊", planned_minutes=30, actor=w.me(c, young))
    with fails(ErrorCode.WITHDRAWAL_AGE_NOT_REACHED):  # no birth date, no withdrawal
        w.bank.request(c, unknown, service="陪聊", planned_minutes=30, actor=w.me(c, unknown))
    for minutes in (None, 0, 1441):
        with fails(ErrorCode.INVALID_FIELD):
            w.bank.request(c, recipient, service="陪聊", planned_minutes=minutes, actor=me)
    with fails(ErrorCode.INVALID_FIELD):
        w.bank.request(c, recipient, service="", planned_minutes=30, actor=me)
    with fails(ErrorCode.PERSON_NOT_FOUND):
        w.bank.request(c, uuid7(), service="陪聊", planned_minutes=30, actor=w.staff())
    with fails(ErrorCode.COMMUNITY_NOT_FOUND):
        w.bank.request(2**40, recipient, service="陪聊", planned_minutes=30, actor=w.staff())
    with fails(ErrorCode.MALFORMED_ID):
        w.bank.request(c, recipient, service="陪聊", planned_minutes=30, actor=me, exchange_id="x")  # type: ignore[arg-type]
    w.people.erase(c, young, actor_id=None)
    with fails(ErrorCode.PERSON_ERASED):
        w.bank.request(c, young, service="陪聊", planned_minutes=30, actor=w.staff())


def test_refusals_of_the_later_steps(w: World) -> None:
    c = next(iter(w.infos))
    with fails(ErrorCode.EXCHANGE_NOT_FOUND):
        w.bank.start(c, uuid7(), actor=w.staff())
    with fails(ErrorCode.EXCHANGE_NOT_FOUND):
        w.bank.history(c, uuid7())
    recipient = w.person(c, age=70)
    w.award(c, recipient, COIN)
    me = w.me(c, recipient)
    ex = w.bank.request(c, recipient, service="陪聊", planned_minutes=60, actor=me)
    with fails(ErrorCode.INVALID_FIELD):  # the recipient does not serve themselves
        w.bank.match(
            c, ex.exchange_id, provider_community_id=c, provider_person_id=recipient, actor=w.staff()
        )
    with fails(ErrorCode.PERSON_NOT_FOUND):
        w.bank.match(c, ex.exchange_id, provider_community_id=c, provider_person_id=uuid7(), actor=w.staff())
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.bank.start(c, ex.exchange_id, actor=w.staff())
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.bank.confirm(c, ex.exchange_id, actor=me, served_minutes=10)
    provider = w.person(c)
    w.bank.match(c, ex.exchange_id, provider_community_id=c, provider_person_id=provider, actor=w.staff())
    w.bank.start(c, ex.exchange_id, actor=w.staff())
    with fails(ErrorCode.INVALID_FIELD):  # more than planned (and held)
        w.bank.confirm(c, ex.exchange_id, actor=me, served_minutes=61)
    with fails(ErrorCode.INVALID_FIELD):  # per hour, the minutes are required
        w.bank.confirm(c, ex.exchange_id, actor=me)
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.bank.settle(c, ex.exchange_id, actor=me)


def test_a_held_coin_cannot_be_given_away(w: World) -> None:
    c = next(iter(w.infos))
    elder, child = w.person(c, age=70), w.person(c, age=40)
    w.award(c, elder, 3 * COIN)
    w.members.record_relation(c, elder, child, RelationKind.CHILD, actor=w.staff())
    w.bank.request(c, elder, service="陪聊", planned_minutes=120, actor=w.me(c, elder))
    with fails(ErrorCode.INSUFFICIENT_FUNDS):
        w.members.gift(c, elder, child, 2 * COIN, actor=w.me(c, elder), idempotency_key="g1")
    w.members.gift(c, elder, child, COIN, actor=w.me(c, elder), idempotency_key="g2")
    assert w.available(c, elder) == 0


# ------------------------------------------------------------------------ relations and gifts


def test_relations_are_one_per_pair_and_seen_from_either_side(w: World) -> None:
    c = next(iter(w.infos))
    a, b = w.person(c), w.person(c)
    with fails(ErrorCode.ACTOR_NOT_ALLOWED):
        w.members.record_relation(c, a, b, RelationKind.PARENT, actor=w.me(c, a))
    first = w.members.record_relation(c, a, b, RelationKind.PARENT, actor=w.staff())
    assert (first.person_id, first.relative_person_id, first.kind) == (a, b, RelationKind.PARENT)
    again = w.members.record_relation(c, b, a, RelationKind.CHILD, actor=w.staff())
    assert again.relation_id == first.relation_id and again.kind is RelationKind.CHILD
    with fails(ErrorCode.RELATION_EXISTS):
        w.members.record_relation(c, a, b, RelationKind.FRIEND, actor=w.staff())
    assert [(r.relative_person_id, r.kind) for r in w.members.relations(c, b)] == [(a, RelationKind.CHILD)]
    with fails(ErrorCode.INVALID_FIELD):
        w.members.record_relation(c, a, a, RelationKind.SPOUSE, actor=w.staff())
    with fails(ErrorCode.INVALID_FIELD):
        w.members.record_relation(c, a, b, "cousin", actor=w.staff())  # type: ignore[arg-type]
    w.members.end_relation(c, first.relation_id, actor=w.staff())
    with fails(ErrorCode.RELATION_NOT_FOUND):
        w.members.end_relation(c, first.relation_id, actor=w.staff())
    assert w.members.relations(c, a) == []
    friends = w.members.record_relation(c, a, b, RelationKind.FRIEND, actor=w.staff())
    assert friends.relation_id != first.relation_id


def test_gifts_follow_the_scope(w: World) -> None:
    c = next(iter(w.infos))
    giver, friend, stranger, spouse = (w.person(c) for _ in range(4))
    w.award(c, giver, 10 * COIN)
    me = w.me(c, giver)
    w.members.record_relation(c, giver, friend, RelationKind.FRIEND, actor=w.staff())
    w.members.record_relation(c, spouse, giver, RelationKind.SPOUSE, actor=w.staff())
    with fails(ErrorCode.GIFT_NOT_ALLOWED):
        w.members.gift(c, giver, stranger, COIN, actor=me, idempotency_key="s")
    with fails(ErrorCode.GIFT_NOT_ALLOWED):
        w.members.gift(c, giver, friend, COIN, actor=me, idempotency_key="f")
    with fails(ErrorCode.GIFT_NOT_ALLOWED):
        w.members.gift(c, giver, giver, COIN, actor=me, idempotency_key="self")
    with fails(ErrorCode.ACTOR_NOT_ALLOWED):
        w.members.gift(c, giver, spouse, COIN, actor=w.me(c, stranger), idempotency_key="x")
    first = w.members.gift(c, giver, spouse, COIN, actor=me, idempotency_key="sp")
    replay = w.members.gift(c, giver, spouse, COIN, actor=me, idempotency_key="sp")
    assert replay.transfer_id == first.transfer_id and replay.replayed
    with fails(ErrorCode.IDEMPOTENCY_CONFLICT):
        w.members.gift(c, giver, spouse, 2 * COIN, actor=me, idempotency_key="sp")
    w.publish(c, coin_gift_recipients="relatives_and_friends")
    w.members.gift(c, giver, friend, COIN, actor=w.staff(), idempotency_key="f2")
    with fails(ErrorCode.INSUFFICIENT_FUNDS):
        w.members.gift(c, giver, friend, 9 * COIN, actor=me, idempotency_key="f3")
    with fails(ErrorCode.INSUFFICIENT_FUNDS):  # a failed key fails the same way again
        w.members.gift(c, giver, friend, 9 * COIN, actor=me, idempotency_key="f3")
    with fails(ErrorCode.INVALID_AMOUNT):
        w.members.gift(c, giver, friend, 0, actor=me, idempotency_key="z")
    assert (w.posted(c, giver), w.posted(c, spouse), w.posted(c, friend)) == (8 * COIN, COIN, COIN)


def test_hardship_flags_by_date_and_revocation(w: World) -> None:
    c = next(iter(w.infos))
    w.publish(c, coin_withdrawal_min_age_years=65, coin_withdrawal_hardship_min_age_years=60)
    person = w.person(c, age=62)
    with fails(ErrorCode.ACTOR_NOT_ALLOWED):
        w.members.grant_hardship(c, person, valid_from=date(2026, 1, 1), actor=w.me(c, person))
    with fails(ErrorCode.INVALID_FIELD):
        w.members.grant_hardship(
            c, person, valid_from=date(2026, 2, 1), valid_until=date(2026, 1, 1), actor=w.staff()
        )
    expired = w.members.grant_hardship(
        c, person, valid_from=date(2025, 1, 1), valid_until=date(2025, 12, 31), actor=w.staff()
    )
    with fails(ErrorCode.WITHDRAWAL_AGE_NOT_REACHED):
        w.members.check_withdrawal(c, person)
    flag = w.members.grant_hardship(c, person, valid_from=date(2026, 5, 1), actor=w.staff())
    w.members.check_withdrawal(c, person)
    revoked = w.members.revoke_hardship(c, flag.flag_id, actor=w.staff())
    assert revoked.revoked_by == w.staff_user and revoked.revoked_at is not None
    assert w.members.revoke_hardship(c, flag.flag_id, actor=w.staff()) == revoked
    with fails(ErrorCode.WITHDRAWAL_AGE_NOT_REACHED):
        w.members.check_withdrawal(c, person)
    with fails(ErrorCode.HARDSHIP_FLAG_NOT_FOUND):
        w.members.revoke_hardship(c, uuid7(), actor=w.staff())
    assert [f.flag_id for f in w.members.hardship_flags(c, person)] == [expired.flag_id, flag.flag_id]


def test_no_personal_data_in_refusals(w: World) -> None:
    """Refusals name settings and ids, never an age, a birth date or a relation."""
    c = next(iter(w.infos))
    w.publish(c, coin_withdrawal_min_age_years=65)
    person = w.person(c, age=63)
    w.award(c, person, COIN)
    with pytest.raises(LedgerError) as caught:
        w.bank.request(c, person, service="陪聊", planned_minutes=30, actor=w.me(c, person))
    text = str(caught.value.to_dict())
    assert "63" not in text and "1963" not in text
    other = w.person(c)
    w.members.record_relation(c, person, other, RelationKind.FRIEND, actor=w.staff())
    with pytest.raises(LedgerError) as caught:
        w.members.gift(c, person, other, COIN, actor=w.staff(), idempotency_key="k")
    assert "friend" not in str(caught.value.to_dict())


# ------------------------------------------------------------------- the database's own guards


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE timebank_exchange SET service = 'x' WHERE community_id = %(c)s", "terms never change"),
        (
            "UPDATE timebank_exchange SET hold_coin_minutes = 1 WHERE community_id = %(c)s",
            "terms never change",
        ),
        ("UPDATE timebank_exchange SET state = 'requested' WHERE community_id = %(c)s", "cannot become"),
        (
            "UPDATE timebank_exchange SET state = 'cancelled', cancelled_at = now(), settled_at = NULL,"
            " charged_coin_minutes = NULL, credited_coin_minutes = NULL, pool_coin_minutes = NULL,"
            " payment_transfer_id = NULL WHERE community_id = %(c)s",
            "cannot become",
        ),
        ("DELETE FROM timebank_exchange WHERE community_id = %(c)s", "append-only"),
        ("UPDATE timebank_exchange_event SET note = 'x' WHERE community_id = %(c)s", "append-only"),
        ("DELETE FROM timebank_exchange_event WHERE community_id = %(c)s", "append-only"),
        ("UPDATE person_relation SET kind = 'spouse' WHERE community_id = %(c)s", "ended, once"),
        ("DELETE FROM person_relation WHERE community_id = %(c)s", "append-only"),
        ("UPDATE hardship_flag SET valid_from = '2020-01-01' WHERE community_id = %(c)s", "ended, once"),
        ("DELETE FROM region_cross_community_event WHERE region_id = %(r)s", "append-only"),
    ],
)
def test_the_database_refuses_what_the_services_never_do(
    w: World, db_url: str, statement: str, message: str
) -> None:
    """Triggers stop even the owner (a superuser): terms, finished steps, events, relations, flags."""
    c = next(iter(w.infos))
    ex, _, provider, me = _served(w, c)
    w.bank.settle(c, ex.exchange_id, actor=me)
    w.members.record_relation(c, me.person[1], provider, RelationKind.FRIEND, actor=w.staff())  # type: ignore[index]
    w.members.grant_hardship(c, provider, valid_from=date(2026, 1, 1), actor=w.staff())
    w.members.set_cross_community(w.region_id, True, actor=w.staff())
    with psycopg.connect(db_url) as conn:
        try:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
                conn.execute(statement, {"c": c, "r": w.region_id})
        finally:
            conn.rollback()
    assert message in str(caught.value)


def test_linked_transfers_are_ordinary_ledger_transfers(w: World) -> None:
    """What a step writes is keyed and hashed as the ledger's own calls would be: asking the ledger
    for the same resolution under the same key replays it instead of writing anything."""
    c = next(iter(w.infos))
    ex, _, _, me = _served(w, c)
    ex = w.bank.settle(c, ex.exchange_id, actor=me)
    assert ex.hold_transfer_id is not None and ex.release_transfer_id is not None
    size = w.log_size(c)
    again = w.ledger.resolve(
        ResolveRequest(
            c, ex.hold_transfer_id, Phase.VOID, f"timebank:{ex.exchange_id}:release", actor_id=me.user_id
        )
    )
    assert (
        again.replayed
        and again.transfer_id == ex.release_transfer_id
        and again.pending_id == ex.hold_transfer_id
    )
    with fails(ErrorCode.PENDING_ALREADY_VOIDED):
        w.ledger.resolve(ResolveRequest(c, ex.hold_transfer_id, Phase.VOID, "another-key"))
    assert w.log_size(c) == size
    payment = w.ledger.get_transfer(c, ex.payment_transfer_id)  # type: ignore[arg-type]
    assert payment.kind == "timebank_payment" and payment.receipt.index == size - 1
