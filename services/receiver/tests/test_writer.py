"""Group commit: concurrent receipts share transactions, and a failed commit acknowledges nobody."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from hookbay_common.db.engine import make_engine
from hookbay_common.db.migrate import upgrade
from hookbay_common.db.models import utcnow
from hookbay_common.errors import Unavailable
from hookbay_receiver.writer import GroupCommitWriter


def _row(source_id: uuid.UUID, n: int) -> dict:
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "source_id": source_id,
        "status": "received",
        "method": "POST",
        "query_string": "",
        "headers": [],
        "content_type": "",
        "client_addr": "",
        "size": 1,
        "sha256": "0" * 64,
        "body": str(n).encode(),
        "raw_key": None,
        "received_at": now,
        "attempts": 0,
        "lease_until": now,
        "lease_owner": None,
        "last_error": None,
        "parsed_at": None,
        "archived_at": None,
        "dedup_key": None,
        "receipts": 1,
    }


@pytest.fixture
def engine(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/w.db"
    upgrade(url)
    engine = make_engine(url)
    source_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sources (id, client, name, guid, status, format, max_body, settings, created_at, updated_at)"
                " VALUES (:id, '', 's', :guid, 'active', 'auto', 0, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"id": source_id.hex, "guid": str(uuid.uuid4())},
        )
    engine.source_id = source_id  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


def test_concurrent_writes_share_commits(engine) -> None:
    commits: list[int] = []

    async def main() -> None:
        writer = GroupCommitWriter(engine, interval=0.005, max_batch=64, on_commit=commits.append)
        writer.start()
        await asyncio.gather(*(writer.write(_row(engine.source_id, n), timeout=10) for n in range(300)))
        await writer.stop()

    asyncio.run(main())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM packets")).scalar() == 300
    assert sum(commits) == 300
    assert len(commits) <= 300 // 64 + 2, commits  # a handful of transactions, not 300


def test_a_failed_commit_acknowledges_nobody(engine) -> None:
    async def main() -> list[object]:
        writer = GroupCommitWriter(engine, interval=0.005, max_batch=64)
        writer.start()
        good = [_row(engine.source_id, n) for n in range(5)]
        bad = _row(uuid.uuid4(), 99)  # unknown source: the foreign key fails the whole group
        results = await asyncio.gather(
            *(writer.write(r, timeout=10) for r in [*good, bad]), return_exceptions=True
        )
        await writer.stop()
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, Unavailable) for r in results), results
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM packets")).scalar() == 0
