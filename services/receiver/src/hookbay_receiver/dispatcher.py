"""The outbox dispatcher: hands received packets to the parser, at least once.

A packet row with status 'received' and an expired lease is due. The dispatcher leases a batch
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas never claim the same rows), calls the parser
with a deadline shorter than the lease, and, if the parser could not take them, gives them back with
an exponential backoff. The parser marks a packet parsed/failed/ignored in the same transaction as
its records; a crash anywhere in between leaves the packet 'received', so its lease runs out and it
is delivered again.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Sequence
from datetime import timedelta

import grpc
import structlog
from sqlalchemy import Engine

from hookbay.parser.v1 import parser_service_pb2 as parser_pb
from hookbay.parser.v1 import parser_service_pb2_grpc as parser_grpc
from hookbay_common import tracing
from hookbay_common.correlation import DuePacket, call_metadata, origins_to_pb
from hookbay_common.db.models import utcnow
from hookbay_common.grpc_client import internal_channel
from hookbay_common.outbox import OutboxPump, backoff
from hookbay_receiver import repository

log = structlog.get_logger("hookbay.receiver.dispatcher")


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        parser_addr: str,
        *,
        batch: int,
        concurrency: int,
        lease: float,
        deadline: float,
        idle_poll: float,
        retry_base: float,
        retry_max: float,
    ) -> None:
        if deadline >= lease:
            raise ValueError("the dispatch deadline must be shorter than the lease")
        self._engine = engine
        self._addr = parser_addr
        self._batch = batch
        self._lease = lease
        self._deadline = deadline
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._owner = f"{socket.gethostname()[:40]}:{uuid.uuid4().hex[:12]}"
        self._channel: grpc.aio.Channel | None = None
        self._pump = OutboxPump(
            "parser-dispatch",
            self._claim,
            self._deliver,
            concurrency=concurrency,
            idle_poll=idle_poll,
            drain_timeout=deadline,
        )
        self.wake = self._pump.wake

    def start(self) -> None:
        self._channel = internal_channel(self._addr)
        self._stub = parser_grpc.ParserServiceStub(self._channel)
        self._pump.start()

    async def stop(self) -> None:
        await self._pump.stop()
        if self._channel is not None:
            await self._channel.close()

    async def _claim(self) -> list[DuePacket]:
        def claim() -> list[DuePacket]:
            now = utcnow()
            with self._engine.begin() as conn:
                return repository.claim_due_packets(
                    conn, self._owner, now, now + timedelta(seconds=self._lease), self._batch
                )

        return await asyncio.to_thread(claim)

    async def _deliver(self, due: Sequence[DuePacket]) -> None:
        ids = [packet.id for packet in due]
        retry: list[uuid.UUID] = []
        error = ""
        request = parser_pb.ParsePacketsRequest(packet_ids=[str(i) for i in ids], origins=origins_to_pb(due))
        try:
            with tracing.batch_span("receiver.dispatch", [p.traceparent for p in due]):
                response = await self._stub.ParsePackets(
                    request, timeout=self._deadline, metadata=call_metadata(due)
                )
        except grpc.aio.AioRpcError as exc:
            retry, error = list(ids), f"parser: {exc.code().name}: {exc.details() or ''}"
            log.warning("receiver.dispatch_failed", packets=len(ids), code=exc.code().name)
        else:
            answered = {r.packet_id: r for r in response.results}
            for packet_id in ids:
                result = answered.get(str(packet_id))
                if result is None or result.outcome == parser_pb.PARSE_OUTCOME_RETRY:
                    retry.append(packet_id)
                    error = (result.error if result else "") or "parser asked for redelivery"
            log.debug("receiver.dispatched", packets=len(ids), retry=len(retry))
        if retry:
            await asyncio.to_thread(self._release, retry, error)

    def _release(self, ids: list[uuid.UUID], error: str) -> None:
        """One statement for the batch: it failed together and waits together."""
        with self._engine.begin() as conn:
            attempts = repository.most_attempts(conn, ids)
            retry_at = utcnow() + timedelta(seconds=backoff(attempts, self._retry_base, self._retry_max))
            repository.release_packets(conn, self._owner, ids, retry_at, error)
