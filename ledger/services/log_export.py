"""Exporting a community's log to one file the offline verifier checks (docs/audit.md).

The export reads the log's size, its stored checkpoints, its leaves [0, size) and every account's
posted balance in one REPEATABLE READ snapshot. A ledger write appends its leaf and changes the
balances in the same transaction, so in that snapshot each balance is exactly the sum of the
account's postings in the exported leaves (phases single and post), which the verifier re-adds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from psycopg_pool import ConnectionPool

from ledger.audit.export_format import ExportHeader, ExportWriter, write_lines
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.store import export_repo as sql
from ledger.store.db import Conn

__all__ = ["ExportSummary", "export_log", "write_export"]


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export holds: its log, size and the number of lines of each kind."""

    log_id: int
    origin: str
    size: int
    checkpoints: int
    leaves: int
    balances: int
    path: Path


def _now() -> datetime:
    return datetime.now(UTC)


def export_log(
    pool: ConnectionPool[Conn], log_id: int, path: Path, *, clock: Callable[[], datetime] = _now
) -> ExportSummary:
    """Write the log of community ``log_id`` to ``path`` (gzip if it ends in ``.gz``) from one
    REPEATABLE READ snapshot. Raises LedgerError(COMMUNITY_NOT_FOUND) for an unknown log."""
    with pool.connection() as conn:
        try:
            sql.begin_snapshot(conn)
            return write_export(conn, log_id, path, clock=clock)
        finally:
            conn.rollback()


def write_export(
    conn: Conn, log_id: int, path: Path, *, clock: Callable[[], datetime] = _now
) -> ExportSummary:
    """Write the export reading in the caller's transaction, which should be one snapshot.

    The file appears only when complete; rows are streamed, so memory does not grow with the log.
    """
    found = sql.head(conn, log_id)
    if found is None:
        raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=log_id)
    origin, size = found

    def emit(writer: ExportWriter) -> None:
        for note in sql.checkpoint_notes(conn, log_id):
            writer.checkpoint(note)
        for index, leaf in sql.leaves(conn, log_id, size):
            writer.leaf(index, leaf)
        for account_id, unit, posted in sql.balances(conn, log_id):
            writer.balance(account_id, unit, posted)

    counts = write_lines(path, emit, ExportHeader(origin, log_id, size, clock()))
    return ExportSummary(
        log_id, origin, size, counts["checkpoints"], counts["leaves"], counts["balances"], path
    )
