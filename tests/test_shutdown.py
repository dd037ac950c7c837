"""Graceful shutdown, as Kubernetes does it: SIGTERM, then SIGKILL after terminationGracePeriodSeconds.

Every service must report not ready at once (gRPC health NOT_SERVING, receiver ``/readyz`` 503),
keep serving for ``HOOKBAY_SHUTDOWN_DELAY``, finish what is in flight, and exit 0 well within
``HOOKBAY_SHUTDOWN_GRACE``. The receiver must never drop a request it has started to read.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import Proc, Stack, wait_until
from sqlalchemy import text

from hookbay.parser.v1 import parser_service_pb2 as parser_pb
from hookbay.parser.v1 import parser_service_pb2_grpc as parser_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GRACE = 15.0
# What Kubernetes allows by default; a process that is not gone by then is SIGKILLed mid-work.
TERMINATION_GRACE_PERIOD = 30.0


class HealthWatch:
    """A health Watch stream read in a thread: every status it reports, with when it arrived."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[float, int]] = []
        self.ended: grpc.StatusCode | None = None
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._call = health_pb2_grpc.HealthStub(self._channel).Watch(health_pb2.HealthCheckRequest())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for reply in self._call:
                self.seen.append((time.monotonic(), reply.status))
            self.ended = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            self.ended = exc.code()

    def first(self, status: int) -> float | None:
        return next((at for at, s in self.seen if s == status), None)

    def close(self) -> None:
        self._call.cancel()
        self._channel.close()


def check(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status


def sigterm(proc: Proc) -> float:
    os.killpg(proc.pid, signal.SIGTERM)
    return time.monotonic()


def big_json(records: int) -> bytes:
    return json.dumps(
        [{"i": i, "name": f"n{i}", "tags": ["a", "b"], "nested": {"x": i}} for i in range(records)]
    ).encode()


def test_parser_sigterm_reports_not_serving_finishes_the_call_in_flight_and_exits(stack: Stack) -> None:
    delay = 1.0
    proc = stack.parser(
        HOOKBAY_SHUTDOWN_DELAY=str(delay),
        HOOKBAY_SHUTDOWN_GRACE=str(GRACE),
        HOOKBAY_MAX_RECORDS="1000000",
        HOOKBAY_PARSE_TIME_BUDGET="120",
    )
    port = stack.parser_port
    watch = HealthWatch(port)
    wait_until(lambda: watch.first(SERVING), what="SERVING on the Watch stream")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    parser = parser_grpc.ParserServiceStub(channel)

    # The call in flight must outlast SIGTERM + the delay by a margin on any machine: time a preview
    # (after a warm-up one) here, then size the slow one to take about 5 s; a fixed size of 150k
    # records sometimes finished within 1.5 s, before the delay was over.
    def preview_seconds(records: int) -> float:
        body = big_json(records)
        began = time.monotonic()
        parser.PreviewParse(
            parser_pb.PreviewParseRequest(format="json", content_type="application/json", body=body),
            timeout=30,
        )
        return time.monotonic() - began

    preview_seconds(1_000)
    sample = 50_000
    records = min(800_000, max(300_000, int(5.0 * sample / preview_seconds(sample))))
    slow = parser_pb.PreviewParseRequest(
        format="json", content_type="application/json", body=big_json(records)
    )
    try:
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            in_flight = pool.submit(parser.PreviewParse, slow, timeout=60)
            time.sleep(0.5)
            assert not in_flight.done(), "the slow call finished before SIGTERM: make it slower"
            stopped_at = sigterm(proc)

            # Not ready at once, yet still serving during the delay.
            wait_until(lambda: watch.first(NOT_SERVING), timeout=5, what="NOT_SERVING on the Watch stream")
            assert watch.first(NOT_SERVING) - stopped_at < delay
            assert check(port) == NOT_SERVING
            quick = parser.PreviewParse(
                parser_pb.PreviewParseRequest(
                    format="json", content_type="application/json", body=b'{"a": 1}'
                ),
                timeout=5,
            )
            assert not quick.error and len(quick.records) == 1

            reply = in_flight.result(timeout=60)
            finished = time.monotonic()
        assert not reply.error
        assert len(reply.records) == 1000  # previews are capped; the parse itself covered them all
        assert finished - stopped_at > delay, "the call ended before the server stopped accepting"
        code = proc.popen.wait(GRACE + 5)
        exited = time.monotonic()
    finally:
        watch.close()
        channel.close()
    assert code == 0, proc.log()[-3000:]
    took = exited - stopped_at
    assert took < GRACE < TERMINATION_GRACE_PERIOD
    assert watch.ended == grpc.StatusCode.OK  # the Watch stream ended cleanly, it did not hold the stop
    print(
        f"\nparser: call in flight {finished - started:.2f}s, NOT_SERVING after "
        f"{watch.first(NOT_SERVING) - stopped_at:.3f}s, exit {took:.2f}s after SIGTERM"
    )


@pytest.mark.parametrize("service", ["parser", "actions"])
def test_idle_service_exits_at_once_after_saying_not_serving(stack: Stack, service: str) -> None:
    proc = getattr(stack, service)(HOOKBAY_SHUTDOWN_GRACE=str(GRACE))
    port = stack.parser_port if service == "parser" else stack.actions_port
    watch = HealthWatch(port)
    try:
        wait_until(lambda: watch.first(SERVING), what="SERVING on the Watch stream")
        stopped_at = sigterm(proc)
        code = proc.popen.wait(GRACE + 5)
        took = time.monotonic() - stopped_at
        wait_until(lambda: watch.ended is not None, timeout=5, what="the Watch stream to end")
    finally:
        watch.close()
    assert code == 0, proc.log()[-3000:]
    assert watch.first(NOT_SERVING) is not None, watch.seen
    assert took < 3.0, f"an idle {service} took {took:.2f}s to stop"
    assert "grpc.stopped" in proc.log()
    print(f"\n{service}: idle exit {took:.2f}s after SIGTERM")


def _slow_post(port: int, path: str, body: bytes, first: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:first])
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-response"
        rest += chunk
    return status, headers, rest[:length]


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_receiver_answers_a_request_already_started_then_exits(stack: Stack) -> None:
    delay = 1.5
    receiver = stack.receiver(HOOKBAY_SHUTDOWN_DELAY=str(delay), HOOKBAY_SHUTDOWN_GRACE=str(GRACE))
    source = stack.create_source("draining")
    port = stack.http_port
    readyz = f"http://127.0.0.1:{port}/readyz"
    assert stack.http.get(readyz).status_code == 200
    assert check(stack.admin_port) == SERVING

    body = json.dumps({"order": 4711, "note": "sent across a SIGTERM"}).encode()
    slow = _slow_post(port, f"/V1/Data/{source.guid}", body, first=10)
    try:
        time.sleep(0.3)  # headers and the first bytes are in; the handler is reading the body
        stopped_at = sigterm(receiver)

        # Readiness fails at once, while the listener keeps serving for the delay.
        wait_until(lambda: stack.http.get(readyz).status_code == 503, timeout=5, what="/readyz 503")
        not_ready_after = time.monotonic() - stopped_at
        assert not_ready_after < delay
        assert stack.http.get(readyz).json()["error"]["code"] == "draining"
        assert check(stack.admin_port) == NOT_SERVING
        with httpx.Client(timeout=5) as client:  # a request that arrives during the delay
            during = client.post(stack.url(source), content=b'{"during": "delay"}')
        assert during.status_code == 200
        assert during.headers.get("connection") == "close"  # keep-alive clients move on

        # Then the listener closes: new connections are refused...
        wait_until(lambda: _refuses(port), timeout=delay + 5, interval=0.05, what="the listener to close")
        closed_after = time.monotonic() - stopped_at
        assert closed_after >= delay - 0.2
        assert receiver.alive()
        # ...but the request already being read still completes and is acknowledged after its commit.
        slow.sendall(body[10:])
        status, headers, answer = _read_response(slow)
    finally:
        slow.close()
    assert status == 200, answer
    packet_id = json.loads(answer)["id"]
    assert headers.get("connection") == "close"

    code = receiver.popen.wait(GRACE + 5)
    took = time.monotonic() - stopped_at
    assert code == 0, receiver.log()[-3000:]
    assert took < GRACE < TERMINATION_GRACE_PERIOD
    log = receiver.log()
    assert "receiver.stopped" in log and "shutdown.grace_exceeded" not in log
    with stack.db.connect() as conn:
        stored = {
            str(row.id).replace("-", ""): bytes(row.body)
            for row in conn.execute(text("SELECT id, body FROM packets"))
        }
    assert stored[packet_id.replace("-", "")] == body
    assert len(stored) == 2
    print(
        f"\nreceiver: /readyz 503 after {not_ready_after:.3f}s, listener closed after {closed_after:.2f}s, "
        f"exit {took:.2f}s after SIGTERM"
    )


def test_shutdown_delay_must_be_shorter_than_the_grace() -> None:
    from pydantic import ValidationError

    from hookbay_common.settings import ParserSettings

    with pytest.raises(ValidationError, match="shutdown_delay"):
        ParserSettings(shutdown_grace=5, shutdown_delay=5)


def test_steps_are_cut_at_the_deadline_and_a_stuck_process_is_ended() -> None:
    """In a child process: the watchdog ends the process it runs in."""
    import subprocess
    import sys

    script = (
        "import asyncio, time\n"
        "from hookbay_common.shutdown import TEARDOWN_RESERVE, Shutdown\n"
        "shutdown = Shutdown(grace=TEARDOWN_RESERVE + 0.5)\n"
        "started = time.monotonic()\n"
        "result = asyncio.run(shutdown.bound(asyncio.sleep(30, result='finished'), 'stuck step'))\n"
        "print('step', result, round(time.monotonic() - started, 2), flush=True)\n"
        "time.sleep(30)  # then a thread stuck on a dead connection, say\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    took = time.monotonic() - started
    assert done.returncode == 70, done.stdout + done.stderr
    step = next(line for line in done.stdout.splitlines() if line.startswith("step "))
    assert step.split()[1] == "None" and float(step.split()[2]) < 1.0
    assert "shutdown.step_timed_out" in done.stdout and "shutdown.grace_exceeded" in done.stdout
    assert took < 10
