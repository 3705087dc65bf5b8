"""The batch path's rows and chain (ledger.services.batch): what a batch writes, built in Python.

``Rows`` turns each applied transfer into its posting, transfer, lot and lot-movement rows and its
leaf, linked to the one before, and answers each transfer's result for group commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from ledger.audit.leaf import SingleTransferLeaves, leaf_hash
from ledger.domain.engine import NewLot
from ledger.domain.times import to_dt
from ledger.domain.transfers import TransferRequest
from ledger.services.results import PostingView, Receipt, TransferResult
from ledger.store import batch_repo as bsql
from ledger.store.db import Conn

__all__ = ["Applied", "Item", "Names", "Rows"]


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
    """The batch's rows, and its chain: each leaf links to the one before.

    Postings and lot movements are COPY text lines, written with f-strings. Every value is safe in
    them as it is: ids, integers, units and timestamps. Transfers and lots are row tuples for the
    binary COPY (or, with ``lines``, text lines too: see ``insert``); leaves are bytes.
    """

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
        lines: bool = False,
    ) -> None:
        self.community_id = community_id
        self.recorded_us = recorded_us
        self.first_index = size
        self.size = size
        self.prev = prev
        self.postings: list[str] = []
        # Transfer and lot rows as tuples (binary COPY): written after the loop, while Python waits
        # for the server, so the server should not have to parse them.
        self.transfers: list[tuple[object, ...]] = []
        self.lots: list[tuple[object, ...]] = []
        self.movements: list[str] = []
        # With ``lines``: transfers and lots as text lines, like postings, for ``insert``.
        self.lines = lines
        self.transfer_lines: list[str] = []
        self.lot_lines: list[str] = []
        # The leaves as parallel lists (no tuple per leaf for the garbage collector to scan).
        self.leaves: list[bytes] = []
        self.leaf_hashes: list[bytes] = []
        self.transfer_ids: list[uuid.UUID] = []
        # (item, effective_us, applied postings, leaf index, leaf hash): what results() answers
        # from, kept only when asked for.
        self.posted: list[tuple[Item, int, Applied, int, bytes]] | None = [] if results else None
        self._names = names
        self._instants = _Instants()
        self._times = _Times(self._instants)
        self._recorded = self._instants[recorded_us]
        self._recorded_text = self._times[recorded_us]
        self._leaf = SingleTransferLeaves(origin, recorded_us)

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
        leaf = self._leaf.render(
            self.size,
            self.prev,
            transfer_id=tid,
            kind=req.kind,
            effective_us=effective_us,
            actor=req.actor_id,
            idempotency_key=req.idempotency_key,
            postings=leaf_postings,
        )
        self.prev = leaf_hash(leaf)
        self.leaves.append(leaf)
        self.leaf_hashes.append(self.prev)
        self.transfer_ids.append(it.transfer_id)
        if self.posted is not None:
            self.posted.append((it, effective_us, rows, self.size, self.prev))
        self.size += 1
        if self.lines:
            actor = _NULL if req.actor_id is None else str(req.actor_id)
            metadata_text = bsql.json_text(req.metadata)
            self.transfer_lines.append(
                f"{c}\t{tid}\t{req.kind}\tsingle\t{times[effective_us]}\t{self._recorded_text}\t{actor}"
                f"\t{req.idempotency_key}\t{metadata_text}\n"
            )
            for lot in new_lots:
                self.lot_lines.append(
                    f"{c}\t{lot.lot_id}\t{names[lot.account_id]}\t{tid}\t{lot.seq}\t{lot.amount}\t{lot.amount}"
                    f"\t{times[lot.earned_us]}\t{times[lot.expires_at_us]}\n"
                )
        else:
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
        for seq, lot_id, amount in movements:
            self.movements.append(f"{c}\t{tid}\t{seq}\t{lot_id}\t{amount}\n")

    def results(self) -> Iterator[tuple[Item, TransferResult]]:
        """Each posted transfer's result, as the single path would have answered it."""
        assert self.posted is not None, "results were not asked for"
        c = self.community_id
        for it, effective_us, rows, index, hashed in self.posted:
            postings = tuple(
                PostingView(p.account_id, p.unit, "single", p.amount, balance_after, version)
                for p, (balance_after, version) in zip(it.req.postings, rows, strict=True)
            )
            receipt = Receipt(c, index, hashed)
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

    def insert(self, conn: Conn) -> None:
        """Queue (in the caller's pipeline) every row as one INSERT per table, each taking its rows
        as one text (built with ``lines``): for a small batch, one round trip instead of a COPY's
        two per table."""
        assert self.lines
        c, first = self.community_id, self.first_index
        leaves = [
            f"{c}\t{first + i}\t{leaf.hex()}\t{hashed.hex()}\t{tid}\n"
            for i, (leaf, hashed, tid) in enumerate(
                zip(self.leaves, self.leaf_hashes, self.transfer_ids, strict=True)
            )
        ]
        for statement, lines in (
            (bsql.INSERT_POSTINGS, self.postings),
            (bsql.INSERT_TRANSFERS, self.transfer_lines),
            (bsql.INSERT_LOTS, self.lot_lines),
            (bsql.INSERT_MOVEMENTS, self.movements),
            (bsql.INSERT_LEAVES, leaves),
        ):
            if lines:
                conn.execute(statement, ("".join(lines),))

    def copy_rest(self, conn: Conn) -> None:
        bsql.copy_binary(conn, bsql.COPY_TRANSFERS, bsql.TRANSFER_TYPES, self.transfers)
        bsql.copy_binary(conn, bsql.COPY_LOTS, bsql.LOT_TYPES, self.lots)
        bsql.copy_text(conn, bsql.COPY_MOVEMENTS, self.movements)
        bsql.copy_leaves(
            conn, self.community_id, self.first_index, self.leaves, self.leaf_hashes, self.transfer_ids
        )
