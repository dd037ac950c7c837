"""Fixtures shared by the cross-service tests: a migrated database per test on each backend, and a
loopback SMTP server for the actions service."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import BACKENDS, TEST_PG_ENV, SmtpSink, Stack, migrated_database


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database: SQLite always, PostgreSQL too when HOOKBAY_TEST_DATABASE_URL is set."""
    with migrated_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A migrated PostgreSQL database, for the tests only PostgreSQL can answer (several replicas)."""
    if not os.environ.get(TEST_PG_ENV):
        pytest.skip(f"set {TEST_PG_ENV} to run PostgreSQL-only tests")
    with migrated_database("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    s = Stack(tmp_path, database_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    try:
        yield sink
    finally:
        sink.stop()
