"""read_connection: one-statement reads in autocommit, and the connection goes back to the pool as it came."""

from __future__ import annotations

import pytest
from psycopg import pq
from psycopg_pool import ConnectionPool

from ledger.store.db import Conn, read_connection


def test_a_read_is_not_left_in_a_transaction(pool: ConnectionPool[Conn]) -> None:
    with read_connection(pool) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        # No BEGIN was sent: the server holds no transaction open after the statement.
        assert conn.info.transaction_status is pq.TransactionStatus.IDLE
        held = conn
    with pool.connection() as again:
        if again is held:  # the pool may hand out another connection; check the one we used
            assert again.autocommit is False
    assert held.autocommit is False


def test_an_error_inside_still_restores_the_connection(pool: ConnectionPool[Conn]) -> None:
    used: list[Conn] = []

    def fail() -> None:
        with read_connection(pool) as conn:
            used.append(conn)
            conn.execute("SELECT 1")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail()
    assert used[0].autocommit is False
    with pool.connection() as conn:  # the pool still works and starts transactions as before
        conn.execute("SELECT 1")
        assert conn.info.transaction_status is pq.TransactionStatus.INTRANS
        conn.rollback()
