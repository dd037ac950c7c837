"""Group commit: concurrent receipts share transactions, duplicates count as receipts, and a failed
commit acknowledges nobody. On SQLite (a thread) and on PostgreSQL (async connections) alike."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import BACKENDS, FaultProxy, migrated_database
from sqlalchemy import Engine, text

from hookbay_common.db.engine import is_sqlite, make_engine, pg_connect_args, pg_conninfo
from hookbay_common.db.models import utcnow
from hookbay_common.errors import Unavailable
from hookbay_receiver.writer import Committer, GroupCommitWriter, PgCommitter, ThreadCommitter


def _row(source_id: uuid.UUID, n: int, dedup_key: str | None = None) -> dict:
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "source_id": source_id,
        "status": "received",
        "method": "POST",
        "query_string": "",
        "headers": [["content-type", "text/plain"]],
        "content_type": "text/plain",
        "client_addr": "",
        "size": len(str(n)),
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
        "dedup_key": dedup_key,
        "receipts": 1,
        "request_id": None,
        "traceparent": None,
    }


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with migrated_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    source_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sources (id, client, name, guid, status, format, max_body, settings, created_at, updated_at)"
                " VALUES (:id, '', 's', :guid, 'active', 'auto', 0, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"id": source_id.hex if is_sqlite(url) else source_id, "guid": str(uuid.uuid4())},
        )
    engine.source_id = source_id  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


def committer(url: str, engine: Engine, conninfo: str | None = None, idle_check: float = 1.0) -> Committer:
    if is_sqlite(url):
        return ThreadCommitter(engine)
    return PgCommitter(
        conninfo or pg_conninfo(url), pg_connect_args(1.0), concurrency=4, idle_check=idle_check
    )


def count(engine: Engine, sql: str = "SELECT count(*) FROM packets") -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_concurrent_writes_share_commits(url: str, engine: Engine) -> None:
    commits: list[int] = []

    async def main() -> None:
        writer = GroupCommitWriter(committer(url, engine), max_batch=64, timeout=10, on_commit=commits.append)
        await asyncio.gather(*(writer.write(_row(engine.source_id, n)) for n in range(300)))
        await writer.stop()

    asyncio.run(main())
    assert count(engine) == 300
    assert sum(commits) == 300
    assert len(commits) <= 300 // 64 + 2, commits  # a handful of transactions, not 300


def test_a_lone_write_commits_at_once(url: str, engine: Engine) -> None:
    """No timer: an idle receiver commits a packet as soon as it arrives."""

    async def main() -> float:
        writer = GroupCommitWriter(committer(url, engine), max_batch=64, timeout=10)
        await writer.write(_row(engine.source_id, 0))  # connects
        loop = asyncio.get_running_loop()
        started = loop.time()
        await writer.write(_row(engine.source_id, 1))
        elapsed = loop.time() - started
        await writer.stop()
        return elapsed

    assert asyncio.run(main()) < 0.5
    assert count(engine) == 2


def test_every_acknowledged_write_is_committed_after_idle_pauses(url: str, engine: Engine) -> None:
    """Connections idle for a while are pinged before use; what follows must still really commit
    (seen from another connection while the writer's connections are still open)."""

    async def main() -> None:
        writer = GroupCommitWriter(committer(url, engine, idle_check=0.01), max_batch=64, timeout=10)
        for n in range(3):
            await asyncio.gather(*(writer.write(_row(engine.source_id, 10 * n + i)) for i in range(5)))
            assert count(engine) == 5 * (n + 1)
            await asyncio.sleep(0.05)
        await writer.stop()

    asyncio.run(main())


def test_duplicates_in_and_across_groups_count_as_receipts(url: str, engine: Engine) -> None:
    async def main() -> list[uuid.UUID]:
        writer = GroupCommitWriter(committer(url, engine), max_batch=64, timeout=10)
        first = await asyncio.gather(
            *(writer.write(_row(engine.source_id, n, dedup_key=f"k{n % 3}")) for n in range(7)),
            writer.write(_row(engine.source_id, 99)),
        )
        again = await writer.write(_row(engine.source_id, 100, dedup_key="k0"))
        await writer.stop()
        return [*first, again]

    ids = asyncio.run(main())
    # k0 at n = 0, 3, 6 and once more later; k1 at 1, 4; k2 at 2, 5: each key is one packet.
    assert ids[0] == ids[3] == ids[6] == ids[8]
    assert ids[1] == ids[4] and ids[2] == ids[5]
    assert len(set(ids)) == 4
    assert count(engine) == 4
    assert count(engine, "SELECT sum(receipts) FROM packets") == 9


def test_a_failed_commit_acknowledges_nobody(url: str, engine: Engine) -> None:
    async def main() -> list[object]:
        writer = GroupCommitWriter(committer(url, engine), max_batch=64, timeout=10)
        good = [_row(engine.source_id, n) for n in range(5)]
        bad = _row(uuid.uuid4(), 99)  # unknown source: the foreign key fails the whole group
        results = await asyncio.gather(*(writer.write(r) for r in [*good, bad]), return_exceptions=True)
        # The writer goes on: the next group commits (on a new connection, on PostgreSQL).
        results.append(await writer.write(_row(engine.source_id, 100)))
        await writer.stop()
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, Unavailable) for r in results[:-1]), results
    assert isinstance(results[-1], uuid.UUID)
    assert count(engine) == 1


def test_a_stalled_database_fails_the_group_in_time_then_recovers(url: str, engine: Engine) -> None:
    """The path to the server is cut and new connections stall: the group gets 503 within the
    timeout, and the writer commits again once the path is back, without a restart."""
    if is_sqlite(url):
        pytest.skip("a network stall needs a server")
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    proxy = FaultProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    try:
        conninfo = pg_conninfo(parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(False))

        async def main() -> tuple[list[tuple[object, float]], uuid.UUID]:
            writer = GroupCommitWriter(committer(url, engine, conninfo), max_batch=64, timeout=0.5)
            await writer.write(_row(engine.source_id, 0))
            proxy.set_mode("blackhole")
            loop = asyncio.get_running_loop()

            async def timed(n: int) -> tuple[object, float]:
                await asyncio.sleep(n * 0.1)  # some find every connection stuck, and queue
                started = loop.time()
                try:
                    result: object = await writer.write(_row(engine.source_id, n))
                except Unavailable as exc:
                    result = exc
                return result, loop.time() - started

            stalled = await asyncio.gather(*(timed(n) for n in range(1, 9)))
            proxy.set_mode("pass")
            after = await writer.write(_row(engine.source_id, 100))
            await writer.stop()
            return stalled, after

        stalled, after = asyncio.run(main())
    finally:
        proxy.close()
    assert all(isinstance(result, Unavailable) for result, _ in stalled), stalled
    assert max(waited for _, waited in stalled) < 0.5 + 0.3, stalled  # each within its own deadline
    assert isinstance(after, uuid.UUID)
    assert count(engine) == 2
