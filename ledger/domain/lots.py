"""Points lots: which earned points a debit consumes (soonest-expiring, then oldest, first)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(slots=True)
class LotState:
    lot_id: uuid.UUID
    remaining: int
    expires_at_us: int | None  # None: never expires
    earned_us: int

    def order_key(self) -> tuple[bool, int, int, int]:
        # The id as an integer: UUIDs compare by it anyway, and ints compare without Python code.
        return (self.expires_at_us is None, self.expires_at_us or 0, self.earned_us, self.lot_id.int)


def consume(lots: list[LotState], amount: int, first: uuid.UUID | None = None) -> list[tuple[uuid.UUID, int]]:
    """Take ``amount`` (> 0) from ``lots`` and return ``[(lot_id, taken)]`` in the order taken.

    ``lots`` is left sorted in consumption order.

    ``first`` names a lot to drain before the usual order: a reversal takes back the very lot its
    original transfer created. The caller has checked the balance, and the lots of a lot-holding
    account always add up to its available balance, so running short is a broken invariant.
    """
    assert amount > 0
    # In place: a list sorted by an earlier call is sorted again in one pass (Timsort finds the run),
    # so an account that spends many times in one batch does not pay a full sort each time.
    lots.sort(key=LotState.order_key)
    ordered = lots
    if first is not None:
        ordered = sorted(lots, key=lambda lot: lot.lot_id != first)  # stable: ``first`` to the front
    taken: list[tuple[uuid.UUID, int]] = []
    left = amount
    for lot in ordered:
        if left == 0:
            break
        take = min(lot.remaining, left)
        if take > 0:
            lot.remaining -= take
            left -= take
            taken.append((lot.lot_id, take))
    if left:
        raise AssertionError("lots do not cover the available balance")
    return taken


def restore(consumed: list[tuple[uuid.UUID, int]], amount: int) -> list[tuple[uuid.UUID, int]]:
    """Give back ``amount`` of what ``consumed`` took, last-taken first, so that what stays spent is
    the soonest-expiring part (a partial post keeps the oldest points spent)."""
    assert 0 < amount <= sum(take for _, take in consumed)
    back: list[tuple[uuid.UUID, int]] = []
    left = amount
    for lot_id, take in reversed(consumed):
        if left == 0:
            break
        give = min(take, left)
        back.append((lot_id, give))
        left -= give
    return back
