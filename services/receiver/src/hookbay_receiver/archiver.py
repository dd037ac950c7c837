"""Moves inline raw bodies to the raw store in the background and records their keys.

Receipt keeps the body in the packet row so that one commit makes it durable; this keeps the
database small afterwards. Upload first, then clear the body in a transaction that also records the
key: a crash in between leaves the body inline and the next round uploads the same bytes to the same
key again. Reading raw bytes works the same before and after (``hookbay_common.db.packets.read_raw``).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog
from sqlalchemy import Engine

from hookbay_common.db.models import utcnow
from hookbay_common.rawstore import RawStore
from hookbay_receiver import repository

log = structlog.get_logger("hookbay.receiver.archiver")


def raw_key(source_id: object, received_at: object, packet_id: object) -> str:
    return f"{source_id}/{received_at:%Y/%m/%d}/{packet_id}"  # type: ignore[str-format]


class Archiver:
    def __init__(
        self, engine: Engine, store: RawStore, *, after: float, batch: int, idle: float = 1.0
    ) -> None:
        self._engine = engine
        self._store = store
        self._after = after
        self._batch = batch
        self._idle = idle
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="archiver")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                moved = await asyncio.to_thread(self.archive_once)
            except Exception as exc:
                log.warning("receiver.archive_failed", error=type(exc).__name__, detail=str(exc)[:200])
                moved = 0
            if moved < self._batch:
                await asyncio.sleep(self._idle)

    def archive_once(self) -> int:
        cutoff = utcnow() - timedelta(seconds=self._after)
        with self._engine.connect() as conn:
            rows = repository.archivable_packets(conn, cutoff, self._batch)
        keys = {row.id: raw_key(row.source_id, row.received_at, row.id) for row in rows}
        self._store.put_many([(keys[row.id], row.body) for row in rows])
        if keys:
            # One transaction for the round: every key it records was uploaded above.
            with self._engine.begin() as conn:
                repository.mark_archived(conn, keys)
            log.debug("receiver.packets_archived", packets=len(keys))
        return len(rows)
