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
from hookbay_common import tracing
from hookbay_common.correlation import DuePacket, call_metadata, origins_to_pb
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

    async def _claim(self) -> list[DuePacket]:
        def claim() -> list[DuePacket]:
            now = utcnow()
            with self._engine.begin() as conn:
                return repository.claim_actions_due(
                    conn, now, now + timedelta(seconds=self._lease), self._batch
                )

        return await asyncio.to_thread(claim)

    async def _deliver(self, due: Sequence[DuePacket]) -> None:
        # The whole claimed batch in one call: the actions service creates its runs in one
        # transaction, which is where its time goes (per statement, not per byte).
        failed: list[uuid.UUID] = []
        ids = [packet.id for packet in due]
        request = actions_pb.ExecuteActionsRequest(
            packet_ids=[str(i) for i in ids], origins=origins_to_pb(due)
        )
        try:
            with tracing.batch_span("parser.actions_handoff", [p.traceparent for p in due]):
                await self._stub.ExecuteActions(request, timeout=self._deadline, metadata=call_metadata(due))
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
