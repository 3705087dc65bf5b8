"""SinglePoster (the batch path's engine) against apply_postings on random books and transfers:
the same rows, state changes and errors."""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.accounts import AccountFlags
from ledger.domain.balances import BalanceState
from ledger.domain.engine import AccountInfo, Effects, Planned, SinglePoster, apply_postings
from ledger.domain.errors import LedgerError
from ledger.domain.lots import LotState
from ledger.domain.transfers import MAX_AMOUNT, Phase, Posting
from ledger.domain.units import Unit

Book = tuple[dict[uuid.UUID, AccountInfo], dict[uuid.UUID, BalanceState], dict[uuid.UUID, list[LotState]]]

# (flags, unit) of the kinds of account a community has; the last one is closed.
KINDS = [
    (AccountFlags.HOT, Unit.POINTS),
    (AccountFlags.HOT, Unit.COIN_MINUTES),
    (AccountFlags.NON_NEGATIVE | AccountFlags.LOTS, Unit.POINTS),
    (AccountFlags.NON_NEGATIVE | AccountFlags.LOTS, Unit.POINTS),
    (AccountFlags.NON_NEGATIVE | AccountFlags.LOTS, Unit.POINTS),
    (AccountFlags.NON_NEGATIVE, Unit.COIN_MINUTES),
    (AccountFlags.NON_NEGATIVE, Unit.COIN_MINUTES),
    (AccountFlags.NONE, Unit.SCORE_POINTS),
    (AccountFlags.NON_NEGATIVE | AccountFlags.LOTS | AccountFlags.CLOSED, Unit.POINTS),
]
IDS = [uuid.UUID(int=i + 1) for i in range(len(KINDS))]
UNKNOWN = uuid.UUID(int=999)


def _mostly(
    usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], one_in: int = 25
) -> st.SearchStrategy[Any]:
    """``usual``, except once in ``one_in`` draws ``odd``: most transfers apply, some fail."""
    return st.integers(1, one_in).flatmap(lambda k: usual if k > 1 else odd)


@st.composite
def books(draw: st.DrawFn) -> Book:
    accounts: dict[uuid.UUID, AccountInfo] = {}
    balances: dict[uuid.UUID, BalanceState] = {}
    lots: dict[uuid.UUID, list[LotState]] = {}
    for i, (flags, unit) in enumerate(KINDS):
        account_id = IDS[i]
        credit_limit = draw(st.sampled_from([0, 10])) if flags == AccountFlags.NON_NEGATIVE else 0
        info = AccountInfo(account_id, unit, flags, credit_limit, 4 if AccountFlags.HOT in flags else 1)
        accounts[account_id] = info
        # A missing balance row is a broken database, which the engine must not paper over.
        if info.hot or draw(_mostly(st.just(False), st.just(True), 60)):
            continue
        pending_out = draw(st.integers(0, 5))
        posted = draw(_mostly(st.integers(pending_out, 60), st.just(MAX_AMOUNT - 3)))
        balances[account_id] = BalanceState(
            account_id,
            unit,
            flags,
            credit_limit,
            posted,
            draw(st.integers(0, 5)),
            pending_out,
            draw(st.integers(0, 9)),
        )
        if info.holds_lots:
            # Lots add up to the available balance (posted - pending_out), as they do in the ledger.
            left, open_lots = posted - pending_out, []
            for n in itertools.count():
                if not left:
                    break
                take = left if n == 3 else draw(st.integers(1, left))
                expiry = draw(st.sampled_from([None, 100, 200, 300]))
                open_lots.append(
                    LotState(uuid.UUID(int=1000 * (i + 1) + n), take, expiry, draw(st.integers(0, 50)))
                )
                left -= take
            lots[account_id] = open_lots
    return accounts, balances, lots


@st.composite
def transfers(draw: st.DrawFn) -> list[tuple[tuple[Posting, ...], int]]:
    """Transfers of one to four postings: to known, open accounts in their unit, now and then not."""
    out = []
    for _ in range(draw(st.integers(1, 10))):
        postings = []
        for _ in range(draw(st.integers(1, 4))):
            account_id = draw(_mostly(st.sampled_from(IDS[:-1]), st.sampled_from([UNKNOWN, IDS[-1]])))
            unit = KINDS[IDS.index(account_id)][1] if account_id in IDS else Unit.POINTS
            unit = draw(_mostly(st.just(unit), st.sampled_from(list(Unit))))
            amount = draw(_mostly(st.integers(-15, 15), st.sampled_from([MAX_AMOUNT, -MAX_AMOUNT])))
            expiry = draw(st.sampled_from([None, None, 150, 400]))
            postings.append(Posting(account_id, unit, amount, expiry))
        out.append((tuple(postings), draw(st.integers(0, 60))))
    return out


def _ids() -> Callable[[], uuid.UUID]:
    return iter(uuid.UUID(int=10**6 + n) for n in itertools.count()).__next__


def _outcome(apply: Callable[[], list[tuple[int | None, int | None]]]) -> object:
    try:
        return apply()
    except LedgerError as exc:
        return ("fault", exc.code, exc.detail)
    except Exception as exc:  # the same exception type, whatever it is
        return ("raised", type(exc))


def _state(book: Book, effects: Effects) -> object:
    _, balances, lots = book
    return (
        {a: (s.posted, s.pending_in, s.pending_out, s.version) for a, s in balances.items()},
        {
            a: [(x.lot_id, x.remaining, x.expires_at_us, x.earned_us) for x in ls]
            for a, ls in lots.items()
            if ls
        },
        effects,
    )


def _apply_general(
    book: Book,
    effects: Effects,
    new_id: Callable[[], uuid.UUID],
    postings: tuple[Posting, ...],
    earned_us: int,
) -> list[tuple[int | None, int | None]]:
    planned = [
        Planned(p.account_id, p.unit, p.amount, Phase.SINGLE, expires_at_us=p.expires_at_us) for p in postings
    ]
    accounts, balances, lots = book
    rows = apply_postings(
        planned,
        earned_us=earned_us,
        accounts=accounts,
        balances=balances,
        lots=lots,
        effects=effects,
        new_id=new_id,
    )
    return [(r.balance_after, r.account_version) for r in rows]


@settings(max_examples=1000)
@given(books(), transfers())
def test_single_poster_does_what_apply_postings_does(book: Book, batch: list[Any]) -> None:
    general_book, fast_book = copy.deepcopy(book), copy.deepcopy(book)
    general_effects, fast_effects = Effects(), Effects()
    general_id = _ids()
    poster = SinglePoster(
        accounts=fast_book[0], balances=fast_book[1], lots=fast_book[2], effects=fast_effects, new_id=_ids()
    )
    for postings, earned_us in batch:
        expected = _outcome(
            partial(_apply_general, general_book, general_effects, general_id, postings, earned_us)
        )
        assert _outcome(partial(poster.apply, postings, earned_us)) == expected
        if not isinstance(expected, list):
            return  # after an error the caller discards the state
        assert _state(fast_book, fast_effects) == _state(general_book, general_effects)


def test_a_typical_award_and_payment() -> None:
    hot, member, other = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)
    lots_flags = AccountFlags.NON_NEGATIVE | AccountFlags.LOTS
    accounts = {
        hot: AccountInfo(hot, Unit.POINTS, AccountFlags.HOT, 0, 4),
        member: AccountInfo(member, Unit.POINTS, lots_flags, 0, 1),
        other: AccountInfo(other, Unit.POINTS, lots_flags, 0, 1),
    }
    balances = {a: BalanceState(a, Unit.POINTS, lots_flags, 0) for a in (member, other)}
    effects = Effects()
    poster = SinglePoster(accounts=accounts, balances=balances, lots={}, effects=effects, new_id=_ids())
    award = (Posting(hot, Unit.POINTS, -30), Posting(member, Unit.POINTS, 30, expires_at_us=500))
    assert poster.apply(award, 7) == [(None, None), (30, 1)]
    assert poster.apply((Posting(member, Unit.POINTS, -12), Posting(other, Unit.POINTS, 12)), 9) == [
        (18, 2),
        (12, 1),
    ]
    assert effects.hot_deltas == {hot: [-30, 0, 0]}
    assert effects.touched == {member, other}
    first_lot = effects.new_lots[0].lot_id
    assert effects.movements == [(0, first_lot, -12)]
    assert effects.lot_deltas == {first_lot: -12}
    assert [lot.amount for lot in effects.new_lots] == [30, 12]
