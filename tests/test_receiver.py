"""The receiver's promises, checked against real processes on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from harness import UNLIMITED, Stack, wait_until

from hookbay.admin.v1 import admin_service_pb2 as admin_pb

ORDER = b'{"id": 727, "number": "727", "billing": {"email": "jo@example.com"}, "total": "29.35"}'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_accepts_and_stores_everything_about_the_request(stack: Stack) -> None:
    stack.receiver()
    source = stack.create_source("shop")
    response = stack.http.post(
        stack.url(source) + "?topic=order.created&x=1",
        content=ORDER,
        headers={"Content-Type": "application/json", "X-WC-Webhook-Topic": "order.created"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "accepted"

    packet = stack.packet(body["id"])
    assert packet.source == "shop"
    assert packet.status == admin_pb.PACKET_STATUS_RECEIVED
    assert packet.method == "POST"
    assert packet.query_string == "topic=order.created&x=1"
    assert packet.content_type == "application/json"
    assert packet.client_addr == "127.0.0.1"
    assert packet.size == len(ORDER)
    assert packet.sha256 == sha(ORDER)
    assert packet.received_at.seconds > 0
    headers = {h.name: h.value for h in packet.headers}
    assert headers["x-wc-webhook-topic"] == "order.created"  # names lower-cased
    assert all(h.name == h.name.lower() for h in packet.headers)
    assert stack.raw(body["id"]) == ORDER

    # The lower-case path works too.
    lower = stack.http.post(stack.url(source).replace("/V1/Data/", "/v1/data/"), content=b"x")
    assert lower.status_code == 200


def test_byte_exact_before_and_after_archiving(stack: Stack) -> None:
    stack.receiver(HOOKBAY_ARCHIVE_AFTER="2")
    source = stack.create_source("bytes", max_body=2 * 1024 * 1024)
    bodies = {
        "latin1": "Señor José — ünïcødé".encode("windows-1252", errors="replace") + bytes(range(256)),
        "one_mib": os.urandom(1024 * 1024),
        "empty": b"",
    }
    ids = {}
    for name, body in bodies.items():
        response = stack.http.post(
            stack.url(source), content=body, headers={"Content-Type": "application/octet-stream"}
        )
        assert response.status_code == 200, (name, response.text)
        ids[name] = response.json()["id"]
    for name, packet_id in ids.items():
        assert not stack.packet(packet_id).archived
        assert sha(stack.raw(packet_id)) == sha(bodies[name]), name

    wait_until(lambda: all(stack.packet(i).archived for i in ids.values()), timeout=30, what="archiving")
    for name, packet_id in ids.items():
        packet = stack.packet(packet_id)
        assert packet.raw_key, name
        assert (stack.raw_dir / packet.raw_key).read_bytes() == bodies[name]
        assert sha(stack.raw(packet_id)) == sha(bodies[name]) == packet.sha256, name
    # The inline copy is gone once the store has the bytes.
    assert stack.scalar("SELECT count(*) FROM packets WHERE body IS NOT NULL") == 0


def test_refusals_store_nothing(stack: Stack) -> None:
    stack.receiver(HOOKBAY_MAX_BODY="1000")
    source = stack.create_source("small")
    big = stack.create_source("big", max_body=5000)
    paused = stack.create_source("paused")
    stack.admin.PauseSource(admin_pb.PauseSourceRequest(source=admin_pb.SourceRef(name="paused")))

    def check(response: httpx.Response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["code"] == code

    check(
        stack.http.post(f"http://127.0.0.1:{stack.http_port}/V1/Data/{'0' * 8}-unknown", content=b"x"),
        404,
        "not_found",
    )
    check(
        stack.http.post(
            f"http://127.0.0.1:{stack.http_port}/V1/Data/00000000-0000-4000-8000-000000000000", content=b"x"
        ),
        404,
        "not_found",
    )
    check(stack.http.post(stack.url(paused), content=b"x"), 404, "not_found")
    # Over the global limit, declared up front and streamed without a length; and a per-source limit.
    check(stack.http.post(stack.url(source), content=b"x" * 1001), 413, "payload_too_large")
    check(
        stack.http.post(stack.url(source), content=iter([b"x" * 600, b"x" * 600])), 413, "payload_too_large"
    )
    check(stack.http.post(stack.url(big), content=b"x" * 5001), 413, "payload_too_large")
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = stack.http.request(method, stack.url(source), content=b"x")
        check(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"
    assert stack.packet_count() == 0

    # Exactly at the limit is fine; resuming a paused source opens it again.
    assert stack.http.post(stack.url(source), content=b"x" * 1000).status_code == 200
    assert stack.http.post(stack.url(big), content=b"x" * 5000).status_code == 200
    stack.admin.ResumeSource(admin_pb.ResumeSourceRequest(source=admin_pb.SourceRef(name="paused")))
    assert stack.http.post(stack.url(paused), content=b"x").status_code == 200
    assert stack.packet_count() == 3


def test_oversized_body_is_refused_without_reading_it_all(stack: Stack) -> None:
    """A client streaming 50 MiB at a 1 KiB limit is answered 413 long before it finishes sending."""
    stack.receiver(HOOKBAY_MAX_BODY="1024")
    source = stack.create_source("limit")
    sent = 0

    def stream():
        nonlocal sent
        for _ in range(800):
            sent += 65536
            yield b"y" * 65536

    try:
        response = stack.http.post(stack.url(source), content=stream())
        assert response.status_code == 413
    except httpx.TransportError:
        pass  # the server may close the connection while the client is still writing
    assert sent < 50 * 1024 * 1024
    assert stack.packet_count() == 0


def test_fifty_concurrent_clients_all_acknowledged_and_stored(stack: Stack) -> None:
    stack.receiver()
    source = stack.create_source("busy", settings=UNLIMITED)
    url = stack.url(source)
    barrier = threading.Barrier(50)

    def client(n: int) -> list[tuple[str, bytes]]:
        acked = []
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            for i in range(10):
                body = f'{{"client": {n}, "seq": {i}}}'.encode()
                response = http.post(url, content=body, headers={"Content-Type": "application/json"})
                assert response.status_code == 200, response.text
                acked.append((response.json()["id"], body))
        return acked

    with ThreadPoolExecutor(50) as pool:
        results = [item for batch in pool.map(client, range(50)) for item in batch]
    assert len(results) == 500
    assert len({packet_id for packet_id, _ in results}) == 500
    assert stack.packet_count() == 500
    for packet_id, body in results[::25]:
        assert stack.raw(packet_id) == body


def test_logs_carry_ids_but_never_bodies_secrets_or_full_guids(stack: Stack) -> None:
    receiver = stack.receiver()
    source = stack.create_source("secretive")
    response = stack.http.post(
        stack.url(source),
        content=b'{"card": "SENTINEL-BODY-4242"}',
        headers={"Authorization": "Bearer SENTINEL-AUTH-77", "Cookie": "session=SENTINEL-COOKIE-99"},
    )
    assert response.status_code == 200
    packet_id = response.json()["id"]
    stack.http.post(stack.url(source), content=b"z" * 10)
    log = wait_until(lambda: (text := receiver.log()) and packet_id in text and text, what="log line")
    assert "receiver.packet_accepted" in log
    assert source.guid[:8] in log
    for secret in ("SENTINEL-BODY", "SENTINEL-AUTH", "SENTINEL-COOKIE", source.guid):
        assert secret not in log, secret


def test_sigterm_stops_cleanly(stack: Stack) -> None:
    receiver = stack.receiver()
    source = stack.create_source("stopping")
    assert stack.http.post(stack.url(source), content=b"1").status_code == 200
    assert receiver.terminate(timeout=20) == 0
    assert "receiver.stopped" in receiver.log()


def test_port_in_use_is_one_clear_line(stack: Stack) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = stack.start("hookbay_receiver", wait=False, HOOKBAY_HTTP_PORT=str(port))
        assert proc.popen.wait(30) == 2
    log = proc.log()
    assert f"cannot listen on 127.0.0.1:{port}" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("via", ["name", "guid"])
def test_grpc_ingest_has_the_same_rules(stack: Stack, via: str) -> None:
    import grpc

    from hookbay.ingest.v1 import ingest_service_pb2 as ingest_pb
    from hookbay.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc

    stack.receiver(HOOKBAY_MAX_BODY="100")
    source = stack.create_source("internal")
    ingest = ingest_grpc.IngestServiceStub(grpc.insecure_channel(f"127.0.0.1:{stack.admin_port}"))
    ref = source.name if via == "name" else source.guid
    reply = ingest.SubmitPacket(
        ingest_pb.SubmitPacketRequest(
            source=ref,
            content_type="application/json",
            body=b'{"a": 1}',
            headers=[ingest_pb.Header(name="X-Trace", value="t1")],
        ),
        timeout=10,
    )
    assert stack.raw(reply.id) == b'{"a": 1}'
    assert {h.name: h.value for h in stack.packet(reply.id).headers}["x-trace"] == "t1"
    with pytest.raises(grpc.RpcError) as too_big:
        ingest.SubmitPacket(ingest_pb.SubmitPacketRequest(source=ref, body=b"x" * 101), timeout=10)
    assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as unknown:
        ingest.SubmitPacket(ingest_pb.SubmitPacketRequest(source="nope", body=b"x"), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert stack.packet_count() == 1


def test_slow_and_oversized_clients_are_cut_off(stack: Stack) -> None:
    """Slowloris: a client that trickles its headers, or sends none, loses the connection; a
    client trickling its body gets 408; headers past the cap get 431."""
    import socket
    import time

    stack.receiver(HOOKBAY_HEADER_TIMEOUT="1", HOOKBAY_BODY_TIMEOUT="1", HOOKBAY_MAX_HEADER_BYTES="8192")
    source = stack.create_source("slow")
    path = f"/V1/Data/{source.guid}"

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", stack.http_port), timeout=5)
        sock.settimeout(5)
        return sock

    def read_all(sock: socket.socket) -> bytes:
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data

    started = time.monotonic()
    idle = connect()
    assert read_all(idle).startswith(b"HTTP/1.1 408")  # said nothing at all
    assert time.monotonic() - started < 4

    trickle = connect()
    trickle.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode())
    started = time.monotonic()
    with pytest.raises(OSError):
        for _ in range(20):
            trickle.sendall(b"X")
            time.sleep(0.3)
    assert time.monotonic() - started < 4

    slow_body = connect()
    slow_body.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{'a' * 10}".encode())
    assert read_all(slow_body).startswith(b"HTTP/1.1 408")

    big = connect()
    big.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 20000}\r\nContent-Length: 1\r\n\r\nz".encode()
    )
    assert read_all(big).startswith(b"HTTP/1.1 431")
    assert stack.packet_count() == 0

    # An ordinary client is unaffected, also across a kept-alive connection.
    for _ in range(3):
        assert stack.http.post(stack.url(source), content=b"ok").status_code == 200
    assert stack.packet_count() == 3
