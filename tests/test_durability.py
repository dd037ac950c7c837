"""Nothing acknowledged is ever lost: database outages, SIGKILL mid-flight, and concurrent dispatch."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
from harness import UNLIMITED, FaultProxy, Stack, wait_until
from sqlalchemy import text
from sqlalchemy.engine import make_url

from hookbay.parser.v1 import parser_service_pb2 as parser_pb
from hookbay.parser.v1 import parser_service_pb2_grpc as parser_grpc
from hookbay_common.db.engine import make_engine


def _outage(stack: Stack, database_url: str, tmp_path: Path):
    """Start a receiver whose database can be taken away; return (take_down, bring_back) callables."""
    if database_url.startswith("sqlite"):
        path = make_url(database_url).database
        holder: dict[str, sqlite3.Connection] = {}
        stack.receiver()

        def down(mode: str) -> None:
            conn = sqlite3.connect(path, timeout=5, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")  # every other writer now waits, then gives up
            holder["conn"] = conn

        def up() -> None:
            holder.pop("conn").execute("ROLLBACK")

        return down, up, ["locked"]

    url = make_url(database_url)
    proxy = FaultProxy(url.host or "127.0.0.1", url.port or 5432)
    stack.receiver(HOOKBAY_DATABASE_URL=url.set(port=proxy.port).render_as_string(hide_password=False))
    return proxy.set_mode, lambda: proxy.set_mode("pass"), ["reset", "blackhole"]


def test_database_outage_answers_503_fast_and_recovers_without_restart(
    stack: Stack, database_url: str, tmp_path: Path
) -> None:
    down, up, modes = _outage(stack, database_url, tmp_path)
    source = stack.create_source("outage")
    url = stack.url(source)
    assert stack.http.post(url, content=b"before").status_code == 200
    acked = 1
    for mode in modes:
        down(mode)
        for i in range(6):
            started = time.monotonic()
            response = stack.http.post(url, content=f"during-{mode}-{i}".encode())
            elapsed = time.monotonic() - started
            assert response.status_code == 503, (mode, response.status_code, response.text)
            assert response.headers.get("retry-after"), mode
            assert response.json()["error"]["code"] == "unavailable"
            assert elapsed < 2.0, (mode, elapsed)
        if mode != "locked":  # a locked SQLite file still answers reads: ready, yet unable to commit
            assert stack.http.get(f"http://127.0.0.1:{stack.http_port}/readyz").status_code == 503
        assert stack.http.get(f"http://127.0.0.1:{stack.http_port}/healthz").status_code == 200
        up()

        def recovered() -> bool:
            return stack.http.post(url, content=f"after-{mode}".encode()).status_code == 200

        wait_until(recovered, timeout=30, interval=0.5, what=f"recovery after {mode}")
        acked += 1
    assert stack.http.get(f"http://127.0.0.1:{stack.http_port}/readyz").status_code == 200
    # Nothing answered 503 may be counted on; everything answered 200 must be there.
    stored = stack.scalar(
        "SELECT count(*) FROM packets WHERE sha256 = :h", h=hashlib.sha256(b"before").hexdigest()
    )
    assert stored == 1
    assert stack.packet_count() >= acked


def test_sigkill_during_posts_loses_no_acknowledged_packet(stack: Stack) -> None:
    seed = random.randrange(1_000_000)
    print(f"seed={seed}")
    rng = random.Random(seed)
    receiver = stack.receiver()
    source = stack.create_source("crashy", settings=UNLIMITED)
    url = stack.url(source)
    acked: dict[str, bytes] = {}
    sent: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                body = f"client={n} seq={i} pad={'x' * rng.randrange(10, 2000)}".encode()
                i += 1
                with lock:
                    sent.add(hashlib.sha256(body).hexdigest())
                try:
                    response = http.post(url, content=body)
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if response.status_code == 200:
                    with lock:
                        acked[response.json()["id"]] = body

    with ThreadPoolExecutor(16) as pool:
        for n in range(16):
            pool.submit(client, n)
        for _round in range(2):
            time.sleep(rng.uniform(0.8, 1.6))
            receiver.kill()
            receiver = stack.receiver()
        time.sleep(0.5)
        stop.set()
    assert len(acked) > 50, "the load never got going"

    with stack.db.connect() as conn:
        rows = conn.execute(text("SELECT id, sha256 FROM packets"))
        # SQLite keeps UUIDs as 32 hex digits, PostgreSQL as uuid: compare canonical forms.
        stored = {str(uuid.UUID(str(row.id))): row.sha256 for row in rows}
    lost = [pid for pid in acked if pid not in stored]
    assert not lost, f"seed={seed}: {len(lost)} acknowledged packets lost"
    for pid, body in acked.items():
        assert stored[pid] == hashlib.sha256(body).hexdigest(), pid
    unexpected = set(stored.values()) - sent
    assert not unexpected, f"seed={seed}: stored packets nobody sent"
    for pid, body in list(acked.items())[:: max(1, len(acked) // 20)]:
        assert stack.raw(pid) == body


class ProbeParser(parser_grpc.ParserServiceServicer):
    """Stands where the parser stands and records every delivery's time span, so overlapping
    deliveries of one packet are visible. It finishes packets the way the parser does: by marking
    them in the database, in one transaction."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)
        self.spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.first_seen: set[str] = set()
        self.lock = threading.Lock()

    async def ParsePackets(self, request, context):
        start = time.monotonic()
        await asyncio.sleep(0.02)
        results, done = [], []
        for packet_id in request.packet_ids:
            with self.lock:
                again = packet_id in self.first_seen
                self.first_seen.add(packet_id)
            if not again and int(packet_id[-2:], 16) % 7 == 0:
                results.append(
                    parser_pb.PacketParseResult(packet_id=packet_id, outcome=parser_pb.PARSE_OUTCOME_RETRY)
                )
            else:
                done.append(packet_id)
                results.append(
                    parser_pb.PacketParseResult(packet_id=packet_id, outcome=parser_pb.PARSE_OUTCOME_PARSED)
                )
        if done:
            await asyncio.to_thread(self._mark, done)
        end = time.monotonic()
        with self.lock:
            for packet_id in request.packet_ids:
                self.spans[packet_id].append((start, end))
        return parser_pb.ParsePacketsResponse(results=results)

    def _mark(self, ids: list[str]) -> None:
        with self.engine.begin() as conn:
            for packet_id in ids:
                conn.execute(
                    text(
                        "UPDATE packets SET status = 'parsed', parsed_at = CURRENT_TIMESTAMP WHERE id = :id"
                    ),
                    {
                        "id": uuid.UUID(packet_id)
                        if self.engine.dialect.name == "postgresql"
                        else uuid.UUID(packet_id).hex
                    },
                )


def _serve_probe(
    probe: ProbeParser, port: int
) -> tuple[threading.Thread, asyncio.AbstractEventLoop, threading.Event]:
    loop = asyncio.new_event_loop()
    stop = threading.Event()
    started = threading.Event()

    async def main() -> None:
        server = grpc.aio.server()
        parser_grpc.add_ParserServiceServicer_to_server(probe, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await server.stop(1)

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    started.wait(10)
    return thread, loop, stop


def test_two_receivers_never_hand_one_packet_to_the_parser_concurrently(tmp_path: Path, pg_url: str) -> None:
    stack = Stack(
        tmp_path,
        pg_url,
        HOOKBAY_DISPATCH_BATCH="5",
        HOOKBAY_DISPATCH_CONCURRENCY="4",
        HOOKBAY_DISPATCH_IDLE_POLL="0.05",
        HOOKBAY_RETRY_BASE="0.05",
        HOOKBAY_RETRY_MAX="0.2",
    )
    try:
        from harness import free_port

        stack.receiver()
        second_http = free_port()
        stack.start(
            "hookbay_receiver",
            name="receiver-b",
            HOOKBAY_HTTP_PORT=str(second_http),
            HOOKBAY_ADMIN_PORT=str(free_port()),
        )
        source = stack.create_source("shared", settings=UNLIMITED)
        urls = [stack.url(source), stack.url(source, port=second_http)]
        with httpx.Client(timeout=10) as http:
            # The parser is not up yet: packets queue in the outbox and are retried with backoff.
            ids = [http.post(urls[i % 2], content=f"p{i}".encode()).json()["id"] for i in range(60)]
        probe = ProbeParser(pg_url)
        thread, _loop, stop = _serve_probe(probe, stack.parser_port)
        try:
            with httpx.Client(timeout=10) as http:
                ids += [http.post(urls[i % 2], content=f"q{i}".encode()).json()["id"] for i in range(240)]
            wait_until(
                lambda: stack.scalar("SELECT count(*) FROM packets WHERE status = 'parsed'") == len(ids),
                timeout=60,
                interval=0.2,
                what="all packets parsed",
            )
        finally:
            stop.set()
            thread.join(10)
        assert set(probe.spans) == set(ids)
        for packet_id, spans in probe.spans.items():
            spans.sort()
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start >= end, f"packet {packet_id} was handed over twice at once: {spans}"
        # Every packet went out once, or twice where the probe asked for redelivery.
        retried = {p for p in ids if int(p[-2:], 16) % 7 == 0}
        for packet_id in ids:
            assert len(probe.spans[packet_id]) == (2 if packet_id in retried else 1), packet_id
        probe.engine.dispose()
    finally:
        stack.close()
