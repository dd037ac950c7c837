"""The parser's outbox towards the actions service (same pattern as the receiver's dispatcher).

A parsed packet whose source has action rules is marked 'pending' in the transaction that writes
its records. This hand-off calls ExecuteActions for it; the actions service clears the mark in the
transaction that creates the action runs. A crash anywhere in between leaves the mark, so the call
is made again when the lease runs out, and the runs' unique key keeps it from doing anything twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta

import grpc
import structlog
from sqlalchemy import Engine

from hookbay.actions.v1 import actions_service_pb2 as actions_pb
from hookbay.actions.v1 import actions_service_pb2_grpc as actions_grpc
from hookbay.types.v1 import types_pb2
from hookbay_common import tracing
from hookbay_common.correlation import call_metadata
from hookbay_common.db.models import utcnow
from hookbay_common.grpc_client import internal_channel
from hookbay_common.outbox import OutboxPump, backoff
from hookbay_parser import repository

log = structlog.get_logger("hookbay.parser.handoff")


class ActionsHandoff:
    def __init__(
        self,
        engine: Engine,
        actions_addr: str,
        *,
        batch: int,
        concurrency: int,
        lease: float,
        deadline: float,
        retry_base: float = 1.0,
        retry_max: float = 300.0,
    ) -> None:
        if deadline >= lease:
            raise ValueError("the actions deadline must be shorter than the lease")
        self._engine = engine
        self._addr = actions_addr
        self._batch = batch
        self._lease = lease
        self._deadline = deadline
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._failures: dict[uuid.UUID, int] = {}
        # Claimed packets' (request id, traceparent), until their delivery sends them along.
        self._origins: dict[uuid.UUID, tuple[str, str | None]] = {}
        self._channel: grpc.aio.Channel | None = None
        self._pump = OutboxPump(
            "actions-handoff",
            self._claim,
            self._deliver,
            concurrency=concurrency,
            idle_poll=1.0,
            drain_timeout=deadline,
        )
        self.wake = self._pump.wake

    def start(self) -> None:
        self._channel = internal_channel(self._addr)
        self._stub = actions_grpc.ActionsServiceStub(self._channel)
        self._pump.start()

    async def stop(self) -> None:
        await self._pump.stop()
        if self._channel is not None:
            await self._channel.close()

    async def _claim(self) -> list[uuid.UUID]:
        def claim() -> list[uuid.UUID]:
            now = utcnow()
            with self._engine.begin() as conn:
                ids = repository.claim_actions_due(
                    conn, now, now + timedelta(seconds=self._lease), self._batch
                )
                self._origins.update(repository.packet_origins(conn, ids))
                return ids

        return await asyncio.to_thread(claim)

    async def _deliver(self, ids: Sequence[uuid.UUID]) -> None:
        # The whole claimed batch in one call: the actions service creates its runs in one
        # transaction, which is where its time goes (per statement, not per byte).
        failed: list[uuid.UUID] = []
        origins = {i: self._origins.pop(i) for i in ids if i in self._origins}
        request = actions_pb.ExecuteActionsRequest(
            packet_ids=[str(i) for i in ids],
            origins=[
                types_pb2.PacketOrigin(packet_id=str(i), request_id=rid, traceparent=tp or "")
                for i, (rid, tp) in origins.items()
            ],
        )
        traceparents = [origins[i][1] if i in origins else None for i in ids]
        try:
            with tracing.batch_span("parser.actions_handoff", traceparents):
                await self._stub.ExecuteActions(
                    request,
                    timeout=self._deadline,
                    metadata=call_metadata([origins[i][0] if i in origins else None for i in ids]),
                )
            for packet_id in ids:
                self._failures.pop(packet_id, None)
        except grpc.aio.AioRpcError as exc:
            failed = list(ids)
            log.warning("parser.actions_handoff_failed", packets=len(ids), code=exc.code().name)
        if failed:
            now = utcnow()
            retry_at = {}
            for packet_id in failed:
                self._failures[packet_id] = self._failures.get(packet_id, 0) + 1
                delay = backoff(self._failures[packet_id], self._retry_base, self._retry_max)
                retry_at[packet_id] = now + timedelta(seconds=delay)
            await asyncio.to_thread(self._release, retry_at)

    def _release(self, retry_at: dict) -> None:
        with self._engine.begin() as conn:
            repository.release_actions(conn, retry_at)
