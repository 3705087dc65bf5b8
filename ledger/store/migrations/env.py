"""Alembic environment: migrations run on the owner connection handed over by ledger.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from ledger.store import schema as tables

config = context.config
target_metadata = tables.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported: migrations run against a live database")
run_migrations_online()
