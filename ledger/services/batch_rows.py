"""The batch path's rows and chain (ledger.services.batch): what a batch writes, built in Python.

``Rows`` turns each applied transfer into its posting, transfer, lot and lot-movement rows and its
leaf, and answers each transfer's result for group commit: ``CopiedRows`` for COPY, with the chain
computed here; ``PipelinedRows`` for a small batch's one pipeline, with the chain computed by the
server under the log head's lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from ledger.audit.leaf import SingleTransferLeaves, leaf_hash, transfer_leaf_template
from ledger.domain.engine import NewLot
from ledger.domain.times import to_dt
from ledger.domain.transfers import TransferRequest
from ledger.services.results import PostingView, Receipt, TransferResult
from ledger.store import batch_repo as bsql
from ledger.store.db import Conn
from ledger.store.ledger_repo import Cur

__all__ = ["Applied", "CopiedRows", "Item", "Names", "PipelinedRows", "Rows"]


@dataclass(slots=True)
class Item:
    """A request of a batch, validated, with its transfer id and request hash."""

    req: TransferRequest
    transfer_id: uuid.UUID
    request_hash: bytes
    transfer_text: str  # str(transfer_id): the claim, the rows and the leaf all write it


class Names(dict[uuid.UUID, str]):
    """``names[account_id]`` is ``str(account_id)``, computed once: a batch writes each account id
    into many request hashes, rows and leaves. After _prepare it holds every account id the
    batch's postings name."""

    def __missing__(self, account_id: uuid.UUID) -> str:
        text = self[account_id] = str(account_id)
        return text


_NULL = "\\N"
# (balance_after, account_version) of each posting, as SinglePoster answers them.
Applied = list[tuple[int | None, int | None]]


class _Instants(dict[int | None, datetime | None]):
    """``instants[us]`` is the datetime of an instant (or None), computed once per distinct value."""

    def __missing__(self, us: int | None) -> datetime | None:
        dt = self[us] = to_dt(us)
        return dt


class _Times(dict[int | None, str]):
    """``times[us]`` is the COPY text of an instant (or NULL), computed once per distinct value."""

    def __init__(self, instants: _Instants) -> None:
        super().__init__()
        self._instants = instants

    def __missing__(self, us: int | None) -> str:
        dt = self._instants[us]
        text = self[us] = _NULL if dt is None else dt.isoformat()
        return text


class Rows:
    """The batch's rows: each applied transfer's posting, transfer, lot and lot-movement rows and
    its leaf, and each transfer's result for group commit.

    Postings and lot movements are COPY text lines, written with f-strings. Every value is safe in
    them as it is: ids, integers, units and timestamps. Two ways to write the rest:
    ``CopiedRows`` (a batch) and ``PipelinedRows`` (a small batch: a group of concurrent posts).
    """

    def __init__(
        self, community_id: int, origin: str, recorded_us: int, names: Names, *, results: bool
    ) -> None:
        self.community_id = community_id
        self.recorded_us = recorded_us
        self.first_index = 0  # of the batch's leaves in the log
        self.size = 0  # the log's size after the batch
        self.postings: list[str] = []
        self.movements: list[str] = []
        self.transfer_ids: list[uuid.UUID] = []
        self.leaf_hashes: list[bytes] = []
        # (item, effective_us, applied postings): what results() answers from, kept only when asked for.
        self.posted: list[tuple[Item, int, Applied]] | None = [] if results else None
        self._origin = origin
        self._names = names
        self._instants = _Instants()
        self._times = _Times(self._instants)

    def add(
        self,
        it: Item,
        effective_us: int,
        rows: Applied,
        new_lots: list[NewLot],
        movements: list[tuple[int, uuid.UUID, int]],
    ) -> None:
        c, req, tid = self.community_id, it.req, it.transfer_text
        names, times = self._names, self._times
        postings = self.postings
        leaf_postings: list[tuple[str, str, int]] = []
        for seq, (p, (balance_after, version)) in enumerate(zip(req.postings, rows, strict=True)):
            name, unit, amount = names[p.account_id], p.unit.value, p.amount
            leaf_postings.append((name, unit, amount))
            balance = _NULL if balance_after is None else balance_after
            postings.append(
                f"{c}\t{tid}\t{seq}\t{name}\t{unit}\tsingle\t{amount}\t{balance}"
                f"\t{_NULL if version is None else version}\t{times[p.expires_at_us]}\n"
            )
        self._transfer(it, effective_us, leaf_postings, new_lots)
        self.transfer_ids.append(it.transfer_id)
        if self.posted is not None:
            self.posted.append((it, effective_us, rows))
        for seq, lot_id, amount in movements:
            self.movements.append(f"{c}\t{tid}\t{seq}\t{lot_id}\t{amount}\n")

    def _transfer(
        self, it: Item, effective_us: int, leaf_postings: list[tuple[str, str, int]], new_lots: list[NewLot]
    ) -> None:
        """The transfer's own row, its lots and its leaf."""
        raise NotImplementedError

    def results(self) -> Iterator[tuple[Item, TransferResult]]:
        """Each posted transfer's result, as the single path would have answered it (once the
        leaves are in the log)."""
        assert self.posted is not None, "results were not asked for"
        assert len(self.leaf_hashes) == len(self.posted)
        c = self.community_id
        for i, (it, effective_us, rows) in enumerate(self.posted):
            postings = tuple(
                PostingView(p.account_id, p.unit, "single", p.amount, balance_after, version)
                for p, (balance_after, version) in zip(it.req.postings, rows, strict=True)
            )
            receipt = Receipt(c, self.first_index + i, self.leaf_hashes[i])
            yield (
                it,
                TransferResult(
                    it.transfer_id,
                    c,
                    it.req.kind,
                    "single",
                    effective_us,
                    self.recorded_us,
                    postings,
                    receipt,
                ),
            )


class CopiedRows(Rows):
    """A batch's rows for COPY, and its chain, computed here from the log head (``size``, ``prev``)
    that the batch holds. Transfers and lots are row tuples for the binary COPY: written after the
    loop, while Python waits for the server, so the server should not have to parse them."""

    def __init__(
        self,
        community_id: int,
        origin: str,
        recorded_us: int,
        size: int,
        prev: bytes,
        names: Names,
        *,
        results: bool,
    ) -> None:
        super().__init__(community_id, origin, recorded_us, names, results=results)
        self.first_index = self.size = size
        self.prev = prev
        self.transfers: list[tuple[object, ...]] = []
        self.lots: list[tuple[object, ...]] = []
        self.leaves: list[bytes] = []  # parallel to leaf_hashes (no tuple per leaf for the GC to scan)
        self._recorded = self._instants[recorded_us]
        self._leaf = SingleTransferLeaves(origin, recorded_us)

    def _transfer(
        self, it: Item, effective_us: int, leaf_postings: list[tuple[str, str, int]], new_lots: list[NewLot]
    ) -> None:
        c, req = self.community_id, it.req
        leaf = self._leaf.render(
            self.size,
            self.prev,
            transfer_id=it.transfer_text,
            kind=req.kind,
            effective_us=effective_us,
            actor=req.actor_id,
            idempotency_key=req.idempotency_key,
            postings=leaf_postings,
        )
        self.prev = leaf_hash(leaf)
        self.leaves.append(leaf)
        self.leaf_hashes.append(self.prev)
        self.size += 1
        instants = self._instants
        metadata = bsql.jsonb(req.metadata)
        self.transfers.append(
            (c, it.transfer_id, req.kind, "single", instants[effective_us], self._recorded, req.actor_id,
             req.idempotency_key, metadata)
        )  # fmt: skip
        for lot in new_lots:
            self.lots.append(
                (c, lot.lot_id, lot.account_id, it.transfer_id, lot.seq, lot.amount, lot.amount,
                 instants[lot.earned_us], instants[lot.expires_at_us])
            )  # fmt: skip

    def copy_rest(self, conn: Conn) -> None:
        bsql.copy_binary(conn, bsql.COPY_TRANSFERS, bsql.TRANSFER_TYPES, self.transfers)
        bsql.copy_binary(conn, bsql.COPY_LOTS, bsql.LOT_TYPES, self.lots)
        bsql.copy_text(conn, bsql.COPY_MOVEMENTS, self.movements)
        bsql.copy_leaves(
            conn, self.community_id, self.first_index, self.leaves, self.leaf_hashes, self.transfer_ids
        )


class PipelinedRows(Rows):
    """A small batch's rows as text lines, written by one statement before its commit (``write``,
    migration 0014). Its leaves go as templates (ledger.audit.leaf.LeafTemplate): the server fills
    in "index" and "prev" under the log head's lock, which the batch takes only there, at the end
    of its transaction."""

    def __init__(
        self, community_id: int, origin: str, recorded_us: int, names: Names, *, results: bool
    ) -> None:
        super().__init__(community_id, origin, recorded_us, names, results=results)
        self.transfer_lines: list[str] = []
        self.lot_lines: list[str] = []
        self.leaf_lines: list[str] = []
        self._recorded_text = self._times[recorded_us]

    def _transfer(
        self, it: Item, effective_us: int, leaf_postings: list[tuple[str, str, int]], new_lots: list[NewLot]
    ) -> None:
        c, req, tid, times = self.community_id, it.req, it.transfer_text, self._times
        template = transfer_leaf_template(
            origin=self._origin, transfer_id=tid, kind=req.kind, phase="single",
            effective_us=effective_us, recorded_us=self.recorded_us, actor=req.actor_id,
            idempotency_key=req.idempotency_key, postings=leaf_postings, reverses=None,
            pending_id=None, timeout_us=None,
        )  # fmt: skip
        self.leaf_lines.append(
            f"{template.prefix.decode()}\t{template.middle.decode()}\t{template.suffix.decode()}\t{tid}\n"
        )
        actor = _NULL if req.actor_id is None else str(req.actor_id)
        self.transfer_lines.append(
            f"{c}\t{tid}\t{req.kind}\tsingle\t{times[effective_us]}\t{self._recorded_text}\t{actor}"
            f"\t{req.idempotency_key}\t{bsql.json_text(req.metadata)}\n"
        )
        names = self._names
        for lot in new_lots:
            self.lot_lines.append(
                f"{c}\t{lot.lot_id}\t{names[lot.account_id]}\t{tid}\t{lot.seq}\t{lot.amount}\t{lot.amount}"
                f"\t{times[lot.earned_us]}\t{times[lot.expires_at_us]}\n"
            )

    def write(self, conn: Conn, balances: str, hot: str, lot_deltas: str) -> Cur:
        """Send the group's one write (with its balance lines: ledger_repo.balance_lines); it locks
        the log head, so it is the transaction's last statement. ``appended`` reads its answer."""
        return conn.execute(
            bsql.WRITE_GROUP,
            (
                self.community_id,
                "".join(self.postings),
                "".join(self.transfer_lines),
                "".join(self.lot_lines),
                "".join(self.movements),
                balances,
                hot,
                lot_deltas,
                "".join(self.leaf_lines),
            ),
        )

    def appended(self, cur: Cur) -> None:
        """Where the leaves went: their first index and their hashes."""
        row = cur.fetchone()
        assert row is not None
        first_index, hashes = int(row[0]), bytes(row[1])
        assert len(hashes) == 32 * len(self.leaf_lines)
        self.first_index = first_index
        self.size = first_index + len(self.leaf_lines)
        self.leaf_hashes = [hashes[i : i + 32] for i in range(0, len(hashes), 32)]
