"""The points-expiry run (积分过期): points left in lots whose expiry has passed go to the expiry sink.

Each account with such points gets one ``points_expiry`` transfer of exactly that amount, from the
account to the community's expiry sink. Its debit takes the soonest-expiring lots first (the
ledger's rule), and the expired lots are exactly the soonest-expiring ones, so it empties them and
nothing else. Points an open order holds are not in their lots any more (the pending transfer took
them) and are skipped; if the order is cancelled later, the shop expires them at once.

Accounts are written in batches through the batch path (one transaction per batch). A batch that
cannot commit whole (a spend raced the run and the amount is no longer there) is written again one
account at a time, each amount read afresh. Running again finds nothing left to expire.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import LedgerError
from ledger.domain.times import to_us
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import Communities
from ledger.services.ledger import Ledger
from ledger.store import expiry_repo as sql
from ledger.store.db import Conn, read_connection

__all__ = ["EXPIRY_KIND", "ExpiryRun", "PointsExpiry"]

log = logging.getLogger("vledger.expiry")

EXPIRY_KIND = "points_expiry"
BATCH_ACCOUNTS = 2_000


@dataclass(frozen=True, slots=True)
class ExpiryRun:
    accounts: int  # accounts whose expired points moved to the sink
    points: int  # points expired in all
    retried: int  # accounts written one by one after a batch could not commit whole


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PointsExpiry:
    def __init__(
        self,
        pool: ConnectionPool[Conn],
        ledger: Ledger,
        communities: Communities,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._pool = pool
        self._ledger = ledger
        self._communities = communities
        self._clock = clock

    def run(self, community_id: int, *, now: datetime | None = None) -> ExpiryRun:
        """Expire every point of ``community_id`` whose lot expired at or before ``now``."""
        at = now or self._clock()
        with read_connection(self._pool) as conn:
            due = sql.expired_by_account(conn, community_id, at)
        if not due:
            return ExpiryRun(0, 0, 0)
        sink = self._communities.system_accounts(community_id)[(SystemAccount.EXPIRY_SINK, Unit.POINTS)]
        accounts = points = retried = 0
        for start in range(0, len(due), BATCH_ACCOUNTS):
            chunk = due[start : start + BATCH_ACCOUNTS]
            try:
                self._ledger.post_batch([_request(community_id, a, n, sink, at) for a, n in chunk])
            except LedgerError:
                done = self._one_by_one(community_id, [a for a, _ in chunk], sink, at)
                accounts, points, retried = (
                    accounts + len(done),
                    points + sum(done.values()),
                    retried + len(chunk),
                )
                continue
            accounts, points = accounts + len(chunk), points + sum(n for _, n in chunk)
        log.info("points expiry: community %s, %d accounts, %d points", community_id, accounts, points)
        return ExpiryRun(accounts, points, retried)

    def run_everywhere(self, *, now: datetime | None = None) -> int:
        """The scheduled job: every community with expired points; returns the points expired."""
        at = now or self._clock()
        with read_connection(self._pool) as conn:
            communities = sql.communities_with_expired_lots(conn, at)
        return sum(self.run(c, now=at).points for c in communities)

    def _one_by_one(
        self, community_id: int, accounts: Sequence[uuid.UUID], sink: uuid.UUID, at: datetime
    ) -> dict[uuid.UUID, int]:
        done: dict[uuid.UUID, int] = {}
        for account in accounts:
            with read_connection(self._pool) as conn:
                fresh = sql.expired_by_account(conn, community_id, at, [account])
            for account_id, amount in fresh:
                try:
                    self._ledger.transfer(_request(community_id, account_id, amount, sink, at))
                except LedgerError as err:  # raced again: the next run takes what is left
                    log.warning("points expiry of one account deferred: %s", err.code)
                else:
                    done[account_id] = amount
        return done


def _request(
    community_id: int, account: uuid.UUID, amount: int, sink: uuid.UUID, at: datetime
) -> TransferRequest:
    # One key per account, amount and cut-off: a retry of the same run replays, a later run with
    # points left (a lot that expired since) gets its own key.
    return TransferRequest(
        community_id,
        EXPIRY_KIND,
        (Posting(account, Unit.POINTS, -amount), Posting(sink, Unit.POINTS, amount)),
        f"expiry:{account}:{to_us(at)}:{amount}",
        metadata={"reason": "lots_expired"},
    )
