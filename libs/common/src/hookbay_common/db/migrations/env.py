"""Alembic environment: runs on the connection handed over by hookbay_common.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from hookbay_common.db.models import Base

config = context.config
target_metadata = Base.metadata

# Serialise concurrent migrators (several pods or `hookbay up` beside a migration job).
ADVISORY_LOCK_KEY = 0x486F6F6B  # "Hook"


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through hookbay_common.db.migrate.upgrade()")
    is_pg = connection.dialect.name == "postgresql"
    if is_pg:
        # Fail fast rather than queue behind live traffic holding locks on busy tables.
        connection.execute(text("SET lock_timeout = '10s'"))
        connection.execute(text("SET statement_timeout = '300s'"))
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported")
run_migrations_online()
