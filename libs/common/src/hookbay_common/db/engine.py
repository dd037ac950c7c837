"""Engines and sessions. Engines are made once at process start-up and passed down."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_S = 1.0


def normalize_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(normalize_url(url)).get_backend_name() == "sqlite"


def make_engine(url: str, *, connect_timeout: float = 1.5, pool_size: int = 5, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            pool_pre_ping=True,
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the writer; synchronous=FULL makes every commit survive a
            # process crash and a power cut, so an acknowledged packet is never lost.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cur.close()

        return engine

    return create_engine(
        url,
        connect_args=pg_connect_args(connect_timeout),
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=connect_timeout,
        **kwargs,
    )


def pg_connect_args(connect_timeout: float) -> dict[str, Any]:
    """The libpq parameters of every Hookbay connection to PostgreSQL, pooled or not."""
    return {
        # libpq rounds timeouts under 2 s up to 2 s; the receiver bounds its own answer separately.
        "connect_timeout": max(1, round(connect_timeout)),
        # A stalled server must not hang a writer forever: give up on unacknowledged data and dead peers.
        "tcp_user_timeout": 5000,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        # Acknowledge only what is durable, whatever the server's default says.
        "options": "-c synchronous_commit=on",
    }


def pg_conninfo(url: str) -> str:
    """A database URL as psycopg connects to it directly (no SQLAlchemy dialect in the scheme)."""
    return make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def dialect_insert(conn: Connection, table: Any) -> Any:
    """An INSERT with ON CONFLICT support for the connection's backend (PostgreSQL or SQLite): the
    unique constraints, not a check before the insert, are what keep effects from happening twice."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session and one transaction: committed on success, rolled back on error."""
    with factory() as session, session.begin():
        yield session
