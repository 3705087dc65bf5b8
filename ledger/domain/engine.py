"""Applying a transfer's postings to locked balances and lots, producing the rows to write.

Shared by the single-transfer path and the batch path, so both enforce exactly the same rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ledger.domain.accounts import AccountFlags
from ledger.domain.balances import BalanceState
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.lots import LotState, consume
from ledger.domain.transfers import Phase, Posting
from ledger.domain.units import Unit


@dataclass(frozen=True, slots=True)
class AccountInfo:
    account_id: uuid.UUID
    unit: Unit
    flags: AccountFlags
    credit_limit: int
    buckets: int
    # Derived from ``flags`` once (flag tests are on the per-posting path).
    hot: bool = field(init=False)
    holds_lots: bool = field(init=False)
    closed: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hot", AccountFlags.HOT in self.flags)
        object.__setattr__(self, "holds_lots", AccountFlags.LOTS in self.flags)
        object.__setattr__(self, "closed", AccountFlags.CLOSED in self.flags)


@dataclass(frozen=True, slots=True)
class Planned:
    """One posting to apply. ``pending_amount`` is the reservation a POST or VOID releases;
    ``lot_first`` is the lot a debit drains first; ``lot_restore`` gives points back to named lots
    instead of creating a new lot (void, partial post, reversal of a spend)."""

    account_id: uuid.UUID
    unit: Unit
    amount: int
    phase: Phase
    pending_amount: int = 0
    expires_at_us: int | None = None
    lot_first: uuid.UUID | None = None
    lot_restore: tuple[tuple[uuid.UUID, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class PostingRow:
    seq: int
    account_id: uuid.UUID
    unit: Unit
    phase: Phase
    amount: int
    balance_after: int | None  # None for hot accounts: their balance is a sum of buckets
    account_version: int | None
    expires_at_us: int | None


@dataclass(frozen=True, slots=True)
class NewLot:
    lot_id: uuid.UUID
    account_id: uuid.UUID
    seq: int
    amount: int
    earned_us: int
    expires_at_us: int | None


@dataclass(slots=True)
class Effects:
    """Everything one transfer (or a batch of them) writes besides the transfer row and the leaf."""

    new_lots: list[NewLot] = field(default_factory=list)
    movements: list[tuple[int, uuid.UUID, int]] = field(default_factory=list)  # (seq, lot_id, amount)
    lot_deltas: dict[uuid.UUID, int] = field(default_factory=dict)
    hot_deltas: dict[uuid.UUID, list[int]] = field(default_factory=dict)  # [posted, pending_in, pending_out]
    touched: set[uuid.UUID] = field(default_factory=set)  # non-hot accounts whose balance row changed


def check_accounts(planned: Sequence[Planned], accounts: dict[uuid.UUID, AccountInfo]) -> None:
    """Existence, then unit, then closed: each check over all postings before the next one."""
    for p in planned:  # one pass when all is well (the common case)
        info = accounts.get(p.account_id)
        if info is None or info.unit != p.unit or info.closed:
            break
    else:
        return
    for p in planned:
        if p.account_id not in accounts:
            raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, account_id=str(p.account_id))
    for p in planned:
        if accounts[p.account_id].unit != p.unit:
            raise LedgerError(ErrorCode.UNIT_MISMATCH, account_id=str(p.account_id))
    for p in planned:
        if accounts[p.account_id].closed:
            raise LedgerError(ErrorCode.ACCOUNT_CLOSED, account_id=str(p.account_id))


def apply_postings(
    planned: Sequence[Planned],
    *,
    earned_us: int,
    accounts: dict[uuid.UUID, AccountInfo],
    balances: dict[uuid.UUID, BalanceState],
    lots: dict[uuid.UUID, list[LotState]],
    effects: Effects,
    new_id: Callable[[], uuid.UUID],
) -> list[PostingRow]:
    """Apply ``planned`` in order, mutating ``balances`` and ``lots`` and appending to ``effects``.

    Raises LedgerError (INSUFFICIENT_FUNDS, BALANCE_OVERFLOW) before the caller writes anything;
    the caller rolls back its in-memory state by discarding it.
    """
    check_accounts(planned, accounts)
    rows: list[PostingRow] = []
    for seq, p in enumerate(planned):
        info = accounts[p.account_id]
        if info.hot:
            _apply_hot(p, effects)
            row = PostingRow(seq, p.account_id, p.unit, p.phase, p.amount, None, None, p.expires_at_us)
        else:
            state = balances[p.account_id]
            state.apply(p.phase, p.amount, p.pending_amount)
            effects.touched.add(p.account_id)
            row = PostingRow(
                seq, p.account_id, p.unit, p.phase, p.amount, state.posted, state.version, p.expires_at_us
            )
            if info.holds_lots:
                _apply_lots(seq, p, earned_us, lots.setdefault(p.account_id, []), effects, new_id)
        rows.append(row)
    return rows


@dataclass(slots=True)
class _Slot:
    """An account as SinglePoster keeps it: what a posting to it needs, looked up once."""

    account_id: uuid.UUID
    unit: Unit
    closed: bool
    hot: bool
    state: BalanceState | None  # its balance row (non-hot accounts)
    lots: list[LotState] | None  # its open lots (non-hot accounts that hold lots)
    delta: list[int] | None = None  # its entry in Effects.hot_deltas, once it has one


# The (balance_after, account_version) of a posting to a hot account.
_HOT_ROW: tuple[None, None] = (None, None)


class SinglePoster:
    """``apply_postings`` for single-phase transfers applied one after another to the same state
    (the batch path): the same checks, state changes and errors, without a Planned and a PostingRow
    per posting, and with each account looked up once per batch instead of once per posting.

    ``apply`` answers each posting's ``(balance_after, account_version)``; the rest of a
    PostingRow is the posting's own. Anything unusual (an unknown, closed or mismatched account)
    takes apply_postings itself. tests/unit/test_single_poster.py compares the two.
    """

    __slots__ = ("_accounts", "_balances", "_effects", "_lots", "_new_id", "_slots")

    def __init__(
        self,
        *,
        accounts: dict[uuid.UUID, AccountInfo],
        balances: dict[uuid.UUID, BalanceState],
        lots: dict[uuid.UUID, list[LotState]],
        effects: Effects,
        new_id: Callable[[], uuid.UUID],
    ) -> None:
        self._accounts = accounts
        self._balances = balances
        self._lots = lots
        self._effects = effects
        self._new_id = new_id
        self._slots: dict[uuid.UUID, _Slot] = {}

    def apply(self, postings: Sequence[Posting], earned_us: int) -> list[tuple[int | None, int | None]]:
        """Apply ``postings`` as apply_postings applies them with phase SINGLE and their expiry."""
        slots = self._slots
        found: list[_Slot] = []
        for p in postings:
            slot = slots.get(p.account_id) or self._slot(p.account_id)
            if slot is None or slot.unit != p.unit or slot.closed:
                return self._general(postings, earned_us)
            found.append(slot)
        effects = self._effects
        rows: list[tuple[int | None, int | None]] = []
        for seq, (p, slot) in enumerate(zip(postings, found, strict=True)):
            amount = p.amount
            if slot.hot:
                delta = slot.delta
                if delta is None:
                    delta = slot.delta = effects.hot_deltas.setdefault(p.account_id, [0, 0, 0])
                delta[0] += amount
                rows.append(_HOT_ROW)
                continue
            # A balance row missing from the reads raises KeyError here, as in apply_postings.
            state = slot.state or self._balances[p.account_id]
            state.post(amount)
            effects.touched.add(p.account_id)
            rows.append((state.posted, state.version))
            open_lots = slot.lots
            if open_lots is None:
                continue
            if amount < 0:
                _take_lots(effects, seq, open_lots, -amount, None)
            elif amount > 0:
                _new_lot(
                    effects, seq, p.account_id, amount, earned_us, p.expires_at_us, open_lots, self._new_id
                )
        return rows

    def _slot(self, account_id: uuid.UUID) -> _Slot | None:
        info = self._accounts.get(account_id)
        if info is None:
            return None
        state = None if info.hot else self._balances.get(account_id)
        lots = self._lots.setdefault(account_id, []) if info.holds_lots and not info.hot else None
        slot = self._slots[account_id] = _Slot(account_id, info.unit, info.closed, info.hot, state, lots)
        return slot

    def _general(self, postings: Sequence[Posting], earned_us: int) -> list[tuple[int | None, int | None]]:
        planned = [
            Planned(p.account_id, p.unit, p.amount, Phase.SINGLE, expires_at_us=p.expires_at_us)
            for p in postings
        ]
        rows = apply_postings(
            planned,
            earned_us=earned_us,
            accounts=self._accounts,
            balances=self._balances,
            lots=self._lots,
            effects=self._effects,
            new_id=self._new_id,
        )
        return [(r.balance_after, r.account_version) for r in rows]


def _apply_hot(p: Planned, effects: Effects) -> None:
    delta = effects.hot_deltas.setdefault(p.account_id, [0, 0, 0])
    if p.phase == Phase.SINGLE:
        delta[0] += p.amount
    elif p.phase == Phase.PENDING:
        delta[1 if p.amount > 0 else 2] += abs(p.amount)
    else:
        delta[1 if p.pending_amount > 0 else 2] -= abs(p.pending_amount)
        if p.phase == Phase.POST:
            delta[0] += p.amount


def _apply_lots(
    seq: int,
    p: Planned,
    earned_us: int,
    open_lots: list[LotState],
    effects: Effects,
    new_id: Callable[[], uuid.UUID],
) -> None:
    if p.lot_restore is not None:
        by_id = {lot.lot_id: lot for lot in open_lots}
        for lot_id, amount in p.lot_restore:
            _move(effects, seq, lot_id, amount)
            if lot_id in by_id:
                by_id[lot_id].remaining += amount
        return
    if p.amount < 0 and p.phase in (Phase.SINGLE, Phase.PENDING):
        _take_lots(effects, seq, open_lots, -p.amount, p.lot_first)
    elif p.amount > 0 and p.phase in (Phase.SINGLE, Phase.POST):
        _new_lot(effects, seq, p.account_id, p.amount, earned_us, p.expires_at_us, open_lots, new_id)


def _take_lots(
    effects: Effects, seq: int, open_lots: list[LotState], amount: int, first: uuid.UUID | None
) -> None:
    for lot_id, taken in consume(open_lots, amount, first=first):
        _move(effects, seq, lot_id, -taken)


def _new_lot(
    effects: Effects,
    seq: int,
    account_id: uuid.UUID,
    amount: int,
    earned_us: int,
    expires_at_us: int | None,
    open_lots: list[LotState],
    new_id: Callable[[], uuid.UUID],
) -> None:
    lot = NewLot(new_id(), account_id, seq, amount, earned_us, expires_at_us)
    effects.new_lots.append(lot)
    open_lots.append(LotState(lot.lot_id, amount, expires_at_us, earned_us))


def _move(effects: Effects, seq: int, lot_id: uuid.UUID, amount: int) -> None:
    effects.movements.append((seq, lot_id, amount))
    effects.lot_deltas[lot_id] = effects.lot_deltas.get(lot_id, 0) + amount
