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
import contextlib
import random
import socket
import uuid
from datetime import timedelta

import grpc
import structlog
from sqlalchemy import Engine

from hookbay.parser.v1 import parser_service_pb2 as parser_pb
from hookbay.parser.v1 import parser_service_pb2_grpc as parser_grpc
from hookbay_common.db.models import utcnow
from hookbay_receiver import repository

log = structlog.get_logger("hookbay.receiver.dispatcher")


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter, so a failed batch does not come back as one thundering herd."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, attempts - 1))


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
        self._idle_poll = idle_poll
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._owner = f"{socket.gethostname()[:40]}:{uuid.uuid4().hex[:12]}"
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._channel: grpc.aio.Channel | None = None

    def wake(self, _count: int = 0) -> None:
        """Called after each group commit so new packets go out without waiting for the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(
            self._addr, options=[("grpc.lb_policy_name", "round_robin"), ("grpc.enable_retries", 0)]
        )
        self._stub = parser_grpc.ParserServiceStub(self._channel)
        self._task = asyncio.create_task(self._run(), name="outbox-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._inflight:
            # Calls in flight finish or hit their deadline; unfinished packets are redelivered anyway.
            await asyncio.wait(self._inflight, timeout=self._deadline)
        if self._channel is not None:
            await self._channel.close()

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                claimed = await self._claim()
            except Exception as exc:
                self._slots.release()
                log.warning("receiver.dispatch_claim_failed", error=type(exc).__name__)
                await self._sleep(max(self._idle_poll, 1.0))
                continue
            if not claimed:
                self._slots.release()
                await self._sleep(self._idle_poll)
                continue
            task = asyncio.create_task(self._deliver(claimed))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _claim(self) -> list[uuid.UUID]:
        def claim() -> list[uuid.UUID]:
            now = utcnow()
            with self._engine.begin() as conn:
                return repository.claim_due_packets(
                    conn, self._owner, now, now + timedelta(seconds=self._lease), self._batch
                )

        return await asyncio.to_thread(claim)

    async def _deliver(self, ids: list[uuid.UUID]) -> None:
        try:
            retry: list[uuid.UUID] = []
            error = ""
            try:
                response = await self._stub.ParsePackets(
                    parser_pb.ParsePacketsRequest(packet_ids=[str(i) for i in ids]), timeout=self._deadline
                )
            except grpc.aio.AioRpcError as exc:
                retry, error = ids, f"parser: {exc.code().name}: {exc.details() or ''}"
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
        except Exception as exc:  # the lease runs out and the packets go again; nothing is lost
            log.warning("receiver.dispatch_error", error=type(exc).__name__)
        finally:
            self._slots.release()

    def _release(self, ids: list[uuid.UUID], error: str) -> None:
        now = utcnow()
        with self._engine.begin() as conn:
            attempts = repository.attempts_of(conn, ids)
            retry_at = {
                i: now + timedelta(seconds=backoff(attempts.get(i, 1), self._retry_base, self._retry_max))
                for i in ids
            }
            repository.release_packets(conn, self._owner, retry_at, error)
