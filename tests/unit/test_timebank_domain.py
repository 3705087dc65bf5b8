"""The time bank in the domain: the exchange state machine, who may take each step, pricing, the
storage cap at settlement, the withdrawal age, hardship flags, relations and the gift scope."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.rule_settings import default_params, validate_params
from ledger.domain.timebank import (
    ALLOWED_PARTIES,
    MAX_SERVICE_MINUTES,
    Action,
    Actor,
    ExchangeState,
    Party,
    Pricing,
    Resolution,
    Terms,
    acting_party,
    charge_for,
    check_actor,
    check_note,
    check_service,
    coin_minutes_for,
    next_state,
    parties_of,
    plan_terms,
    settlement_amounts,
    validate_minutes,
)
from ledger.domain.timebank_rules import (
    DIRECT_RELATIONS,
    GiftScope,
    HardshipPeriod,
    RelationKind,
    TimeBankRules,
    check_gift,
    check_withdrawal,
    hardship_in_force,
    inverse,
    may_withdraw,
)

S, A, P = ExchangeState, Action, Party


def code_of(fn: object, *args: object, **kwargs: object) -> ErrorCode:
    assert callable(fn)
    with pytest.raises(LedgerError) as caught:
        fn(*args, **kwargs)
    return caught.value.code


# ---------------------------------------------------------------------------- the state machine

EXPECTED = {
    (S.REQUESTED, A.MATCH): S.MATCHED,
    (S.REQUESTED, A.CANCEL): S.CANCELLED,
    (S.MATCHED, A.START): S.IN_SERVICE,
    (S.MATCHED, A.CANCEL): S.CANCELLED,
    (S.IN_SERVICE, A.CONFIRM): S.CONFIRMED,
    (S.IN_SERVICE, A.DISPUTE): S.DISPUTED,
    (S.CONFIRMED, A.SETTLE): S.SETTLED,
    (S.CONFIRMED, A.DISPUTE): S.DISPUTED,
}


@pytest.mark.parametrize(("state", "action"), list(itertools.product(ExchangeState, Action)))
def test_every_state_and_action(state: ExchangeState, action: Action) -> None:
    """Exhaustive: the listed transitions and nothing else (RESOLVE is tested with its outcome)."""
    if action is A.RESOLVE:
        for resolution, after in ((Resolution.SETTLE, S.SETTLED), (Resolution.CANCEL, S.CANCELLED)):
            if state is S.DISPUTED:
                assert next_state(state, action, resolution) is after
            else:
                assert code_of(next_state, state, action, resolution) is ErrorCode.INVALID_STATE_TRANSITION
        # Without an outcome, resolving is not a step at all.
        assert code_of(next_state, state, action) is ErrorCode.INVALID_STATE_TRANSITION
        return
    if (state, action) in EXPECTED:
        assert next_state(state, action) is EXPECTED[(state, action)]
    else:
        with pytest.raises(LedgerError) as caught:
            next_state(state, action)
        assert caught.value.code is ErrorCode.INVALID_STATE_TRANSITION
        assert caught.value.detail == {"state": str(state), "action": str(action)}


def test_settled_and_cancelled_are_final() -> None:
    for state, action in itertools.product((S.SETTLED, S.CANCELLED), Action):
        with pytest.raises(LedgerError):
            next_state(state, action, Resolution.SETTLE)


def _walk(actions: list[tuple[Action, Resolution | None]]) -> list[tuple[Action, ExchangeState]]:
    state, path = S.REQUESTED, []
    for action, resolution in actions:
        try:
            state = next_state(state, action, resolution)
        except LedgerError:
            continue
        path.append((action, state))
    return path


@given(st.lists(st.tuples(st.sampled_from(list(Action)), st.sampled_from([None, *Resolution])), max_size=30))
def test_any_walk_takes_each_step_at_most_once_and_ends_only_in_a_final_state(
    actions: list[tuple[Action, Resolution | None]],
) -> None:
    """No cycles: a step seen done is never due again, which is what makes repeats recognisable."""
    path = _walk(actions)
    taken = [a for a, _ in path]
    assert len(taken) == len(set(taken))
    states = [S.REQUESTED] + [s for _, s in path]
    assert len(states) == len(set(states)), "no state is entered twice"
    for s in states[:-1]:
        assert s not in (S.SETTLED, S.CANCELLED)


def test_every_state_is_reachable() -> None:
    reached = {S.REQUESTED}
    frontier = [S.REQUESTED]
    while frontier:
        state = frontier.pop()
        for action, resolution in itertools.product(Action, [None, *Resolution]):
            try:
                after = next_state(state, action, resolution)
            except LedgerError:
                continue
            if after not in reached:
                reached.add(after)
                frontier.append(after)
    assert reached == set(ExchangeState)


# ------------------------------------------------------------------------------- who may act

SUBSETS = [frozenset(c) for n in range(4) for c in itertools.combinations(list(Party), n)]


@pytest.mark.parametrize(("action", "parties"), list(itertools.product(Action, SUBSETS)))
def test_who_may_take_each_step(action: Action, parties: frozenset[Party]) -> None:
    expected = {
        A.REQUEST: {P.RECIPIENT, P.STAFF},
        A.MATCH: {P.STAFF},
        A.START: {P.PROVIDER, P.STAFF},
        A.CONFIRM: {P.RECIPIENT},
        A.SETTLE: {P.RECIPIENT, P.PROVIDER, P.STAFF},
        A.CANCEL: {P.RECIPIENT, P.PROVIDER, P.STAFF},
        A.DISPUTE: {P.RECIPIENT, P.PROVIDER, P.STAFF},
        A.RESOLVE: {P.STAFF},
    }[action]
    assert set(ALLOWED_PARTIES[action]) == expected
    allowed = bool(parties & expected)
    if action is A.RESOLVE and parties & {P.RECIPIENT, P.PROVIDER}:
        allowed = False  # nobody decides their own dispute, staff or not
    if allowed:
        check_actor(action, parties)
        assert acting_party(action, parties) in parties
    else:
        with pytest.raises(LedgerError) as caught:
            check_actor(action, parties)
        assert caught.value.code is ErrorCode.ACTOR_NOT_ALLOWED
        assert caught.value.detail["action"] == str(action)


def test_acting_party_prefers_the_actors_own_part_to_staff() -> None:
    assert acting_party(A.SETTLE, frozenset({P.STAFF, P.PROVIDER})) is P.PROVIDER
    assert acting_party(A.MATCH, frozenset({P.STAFF, P.RECIPIENT})) is P.STAFF


def test_parties_of() -> None:
    user, me, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    recipient, provider = (1, me), (2, other)
    assert parties_of(Actor(user, (1, me)), recipient, provider) == {P.RECIPIENT}
    assert parties_of(Actor(user, (2, other)), recipient, provider) == {P.PROVIDER}
    assert parties_of(Actor(user, (1, other)), recipient, provider) == set()  # same id, other community
    assert parties_of(Actor(user, None, staff=True), recipient, None) == {P.STAFF}
    assert parties_of(Actor(user, (1, me), staff=True), recipient, provider) == {P.RECIPIENT, P.STAFF}


# ------------------------------------------------------------------------------------ inputs


@pytest.mark.parametrize("value", [0, -1, MAX_SERVICE_MINUTES + 1, True, 1.5, "60", None])
def test_bad_minutes(value: object) -> None:
    assert code_of(validate_minutes, value, "planned_minutes") is ErrorCode.INVALID_FIELD


def test_service_and_note_text() -> None:
    assert check_service("家政") == "家政"
    assert code_of(check_service, "") is ErrorCode.INVALID_FIELD
    assert code_of(check_service, "x" * 101) is ErrorCode.INVALID_FIELD
    assert code_of(check_service, "a\x00b") is ErrorCode.NON_CANONICAL_TEXT
    assert code_of(check_service, None) is ErrorCode.INVALID_FIELD
    assert check_note("") == ""
    assert code_of(check_note, " ", required=True) is ErrorCode.INVALID_FIELD


# ----------------------------------------------------------------------------------- pricing


@given(st.integers(0, MAX_SERVICE_MINUTES), st.integers(0, 6000))
def test_coin_minutes_round_down_and_never_exceed_the_exact_price(minutes: int, rate: int) -> None:
    coins = coin_minutes_for(minutes, rate)
    assert coins * 60 <= minutes * rate < (coins + 1) * 60
    assert coin_minutes_for(minutes, 60) == minutes  # 1 h = 1 coin by default


def test_plan_terms_per_hour() -> None:
    terms = plan_terms(Pricing.PER_HOUR, 60, 120, None)
    assert terms == Terms(Pricing.PER_HOUR, 60, 120, None, 120)
    assert plan_terms(Pricing.PER_HOUR, 90, 45, None).hold == 67  # 67.5 rounds down
    assert code_of(plan_terms, Pricing.PER_HOUR, 60, None, None) is ErrorCode.INVALID_FIELD
    assert code_of(plan_terms, Pricing.PER_HOUR, 60, 60, 100) is ErrorCode.INVALID_FIELD


def test_plan_terms_per_item() -> None:
    assert plan_terms(Pricing.PER_ITEM, 60, None, 90) == Terms(Pricing.PER_ITEM, None, None, 90, 90)
    assert plan_terms(Pricing.PER_ITEM, 60, 30, 90).planned_minutes == 30
    for price in (None, 0, -5, True, 2**53):
        assert code_of(plan_terms, Pricing.PER_ITEM, 60, None, price) is ErrorCode.INVALID_FIELD


@given(st.integers(1, MAX_SERVICE_MINUTES), st.integers(1, MAX_SERVICE_MINUTES), st.integers(0, 6000))
def test_a_charge_never_exceeds_the_hold(planned: int, served: int, rate: int) -> None:
    terms = plan_terms(Pricing.PER_HOUR, rate, planned, None)
    if served > planned:
        assert code_of(charge_for, terms, served) is ErrorCode.INVALID_FIELD
    else:
        assert 0 <= charge_for(terms, served) <= terms.hold


def test_per_item_charges_the_price_whatever_the_minutes() -> None:
    terms = plan_terms(Pricing.PER_ITEM, 60, None, 150)
    assert charge_for(terms, None) == charge_for(terms, 1000) == 150
    assert code_of(charge_for, plan_terms(Pricing.PER_HOUR, 60, 60, None), None) is ErrorCode.INVALID_FIELD


@given(
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.one_of(st.none(), st.integers(1, 10**6)),
    st.booleans(),
)
def test_settlement_creates_and_destroys_no_coins(
    charge: int, stored: int, cap: int | None, to_pool: bool
) -> None:
    split = settlement_amounts(
        charge, provider_coin_minutes=stored, storage_cap=cap, overflow_to_pool=to_pool
    )
    assert split.charged == split.credited + split.pool
    assert 0 <= split.charged <= charge
    assert split.credited >= 0 and split.pool >= 0
    if cap is None:
        assert split == type(split)(charge, charge, 0)
    else:
        assert stored + split.credited <= max(cap, stored)  # never over the cap because of this
        if stored + charge <= cap:
            assert split.credited == charge
    if not to_pool:
        assert split.pool == 0


def test_settlement_at_the_cap_like_scenario_8() -> None:
    # 1498 h stored, 3 h earned under a 1500 h cap: 2 h credited, 1 h to the pool (or not charged).
    split = settlement_amounts(180, provider_coin_minutes=89_880, storage_cap=90_000, overflow_to_pool=True)
    assert (split.charged, split.credited, split.pool) == (180, 120, 60)
    split = settlement_amounts(180, provider_coin_minutes=89_880, storage_cap=90_000, overflow_to_pool=False)
    assert (split.charged, split.credited, split.pool) == (120, 120, 0)


# ------------------------------------------------------------------------------------ people

RULES = TimeBankRules.from_params(0, default_params())
SHANGHAI = TimeBankRules.from_params(
    1, validate_params({"coin_withdrawal_min_age_years": 65, "coin_withdrawal_hardship_min_age_years": 60})
)


def test_rules_from_the_defaults() -> None:
    expected = TimeBankRules(0, Pricing.PER_HOUR, 60, 60, None, GiftScope.DIRECT_RELATIVES, 90_000, True)
    assert expected == RULES


@pytest.mark.parametrize(
    ("age", "min_age", "hardship_age", "hardship", "allowed"),
    [
        (60, 60, None, False, True),
        (59, 60, None, True, False),  # no hardship exception configured
        (63, 65, 60, False, False),  # scenario 9: under the Shanghai rule
        (63, 65, 60, True, True),  # scenario 9: with the hardship flag
        (59, 65, 60, True, False),
        (65, 65, 60, False, True),
        (88, 65, 60, False, True),
    ],
)
def test_may_withdraw(
    age: int, min_age: int, hardship_age: int | None, hardship: bool, allowed: bool
) -> None:
    assert may_withdraw(age, min_age, hardship_age, hardship) is allowed


def test_withdrawal_counts_completed_years_and_names_no_age() -> None:
    today = date(2026, 6, 1)
    turns_65 = date(1961, 6, 1)
    check_withdrawal(SHANGHAI, turns_65, today, hardship=False)
    with pytest.raises(LedgerError) as caught:
        check_withdrawal(SHANGHAI, turns_65 + timedelta(days=1), today, hardship=False)
    assert caught.value.code is ErrorCode.WITHDRAWAL_AGE_NOT_REACHED
    assert caught.value.detail == {"min_age_years": 65, "hardship_min_age_years": 60}
    # An unknown birth date opens nothing, even with a hardship flag.
    assert (
        code_of(check_withdrawal, SHANGHAI, None, today, hardship=True)
        is ErrorCode.WITHDRAWAL_AGE_NOT_REACHED
    )


def test_hardship_in_force_by_date() -> None:
    flag = HardshipPeriod(date(2026, 1, 1), date(2026, 12, 31), None)
    assert not hardship_in_force([flag], date(2025, 12, 31))
    assert hardship_in_force([flag], date(2026, 1, 1))
    assert hardship_in_force([flag], date(2026, 12, 31))
    assert not hardship_in_force([flag], date(2027, 1, 1))
    revoked = HardshipPeriod(date(2026, 1, 1), None, date(2026, 3, 1))
    assert hardship_in_force([revoked], date(2026, 2, 28))
    assert not hardship_in_force([revoked], date(2026, 3, 1))
    assert hardship_in_force([revoked, flag], date(2026, 3, 1))
    assert not hardship_in_force([], date(2026, 3, 1))


@pytest.mark.parametrize("kind", list(RelationKind))
def test_inverse_is_an_involution_that_keeps_directness(kind: RelationKind) -> None:
    assert inverse(inverse(kind)) is kind
    assert (kind in DIRECT_RELATIONS) == (inverse(kind) in DIRECT_RELATIONS)


@pytest.mark.parametrize(("scope", "kind"), list(itertools.product(GiftScope, [None, *RelationKind])))
def test_gift_scope(scope: GiftScope, kind: RelationKind | None) -> None:
    direct = {"parent", "child", "spouse", "grandparent", "grandchild"}
    allowed = kind is not None and (kind in direct or scope is GiftScope.RELATIVES_AND_FRIENDS)
    if allowed:
        check_gift(scope, kind)
    else:
        with pytest.raises(LedgerError) as caught:
            check_gift(scope, kind)
        assert caught.value.code is ErrorCode.GIFT_NOT_ALLOWED
        assert caught.value.detail == {"scope": str(scope)}
