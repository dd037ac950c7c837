"""Test support: real Hookbay processes on free ports against a real database.

Nothing here stands in for a component: the services run as the same processes users run
(``python -m hookbay_receiver`` ...), talking to SQLite files or a real PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hookbay.admin.v1 import admin_service_pb2 as admin_pb
from hookbay.admin.v1 import admin_service_pb2_grpc as admin_grpc
from hookbay_common.db.engine import make_engine
from hookbay_common.db.migrate import upgrade

TEST_PG_ENV = "HOOKBAY_TEST_DATABASE_URL"
# For tests that load one source harder than the default 50/s rate limit allows.
UNLIMITED = {"rate_limit": {"rate": 100000, "burst": 100000}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"hbt_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# SQLite always; PostgreSQL too when HOOKBAY_TEST_DATABASE_URL is set (CI sets it).
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get(TEST_PG_ENV) else [])


@contextlib.contextmanager
def migrated_database(backend: str, directory: Path) -> Iterator[str]:
    """An empty, migrated database on ``backend`` (one of :data:`BACKENDS`): a SQLite file in
    ``directory``, or a fresh PostgreSQL database on the server of ``HOOKBAY_TEST_DATABASE_URL``."""
    if backend == "sqlite":
        url = f"sqlite:///{directory}/hookbay.db"
        migrate(url)
        yield url
    else:
        with postgres_database(os.environ[TEST_PG_ENV]) as url:
            migrate(url)
            yield url


class Proc:
    """A service process with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no chance to flush or clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(Exception):
                self.terminate()
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


class Stack:
    """Hookbay services for one test: start what the test needs, stop everything at the end."""

    def __init__(self, tmp_path: Path, database_url: str, **env: str) -> None:
        self.tmp = tmp_path
        self.database_url = database_url
        self.raw_dir = tmp_path / "raw"
        self.http_port = free_port()
        self.admin_port = free_port()
        self.parser_port = free_port()
        self.actions_port = free_port()
        self.env = {
            **os.environ,
            "HOOKBAY_DATABASE_URL": database_url,
            "HOOKBAY_RAW_STORE_URL": f"file://{self.raw_dir}",
            "HOOKBAY_HTTP_PORT": str(self.http_port),
            "HOOKBAY_ADMIN_PORT": str(self.admin_port),
            "HOOKBAY_PARSER_PORT": str(self.parser_port),
            "HOOKBAY_PARSER_ADDR": f"127.0.0.1:{self.parser_port}",
            "HOOKBAY_ACTIONS_PORT": str(self.actions_port),
            "HOOKBAY_ACTIONS_ADDR": f"127.0.0.1:{self.actions_port}",
            "HOOKBAY_LOG_FORMAT": "json",
            "HOOKBAY_LOG_LEVEL": "debug",
            # Off unless a test asks: several parsers in one test would otherwise share a port.
            "HOOKBAY_PARSER_METRICS_PORT": "0",
            "HOOKBAY_ACTIONS_METRICS_PORT": "0",
            **env,
        }
        self.procs: list[Proc] = []
        self._channel: grpc.Channel | None = None
        self._engine = None
        self.http = httpx.Client(timeout=15)

    # -- processes -------------------------------------------------------------------------------

    def start(self, module: str, name: str | None = None, wait: bool = True, **env: str) -> Proc:
        name = name or module.removeprefix("hookbay_")
        proc = Proc(
            name,
            [sys.executable, "-m", module],
            {**self.env, **env},
            self.tmp / f"{name}-{len(self.procs)}.log",
        )
        self.procs.append(proc)
        if wait and module == "hookbay_receiver":
            port = int(env.get("HOOKBAY_HTTP_PORT", self.http_port))
            self.wait_http(port, proc)
        return proc

    def receiver(self, **env: str) -> Proc:
        return self.start("hookbay_receiver", **env)

    def parser(self, **env: str) -> Proc:
        proc = self.start("hookbay_parser", **env)
        wait_grpc(self.parser_port, proc)
        return proc

    def actions(self, **env: str) -> Proc:
        proc = self.start("hookbay_actions", **env)
        wait_grpc(self.actions_port, proc)
        return proc

    def pipeline(self, **env: str) -> None:
        """All three services."""
        self.parser(**env)
        self.actions(**env)
        self.receiver(**env)

    def wait_http(self, port: int, proc: Proc, timeout: float = 30) -> None:
        def up() -> bool:
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited early:\n{proc.log()[-3000:]}")
            try:
                return self.http.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout, what=f"{proc.name} on port {port}")

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self._channel is not None:
            self._channel.close()
        if self._engine is not None:
            self._engine.dispose()
        self.http.close()

    # -- clients ---------------------------------------------------------------------------------

    @property
    def admin(self) -> admin_grpc.AdminServiceStub:
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.admin_port}")
        return admin_grpc.AdminServiceStub(self._channel)

    def create_source(
        self, name: str = "shop", settings: dict[str, Any] | None = None, **fields: Any
    ) -> admin_pb.Source:
        request = admin_pb.CreateSourceRequest(name=name, **fields)
        if settings:
            request.settings.update(settings)
        return self.admin.CreateSource(request, timeout=10)

    def url(self, source: admin_pb.Source, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.http_port}/V1/Data/{source.guid}"

    def raw(self, packet_id: str) -> bytes:
        return b"".join(
            c.chunk for c in self.admin.GetPacketRaw(admin_pb.GetPacketRawRequest(id=packet_id), timeout=10)
        )

    def packet(self, packet_id: str) -> admin_pb.Packet:
        return self.admin.GetPacket(admin_pb.GetPacketRequest(id=packet_id), timeout=10)

    @property
    def db(self) -> Any:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def packet_count(self) -> int:
        return int(self.scalar("SELECT count(*) FROM packets"))


def wait_grpc(port: int, proc: Proc, timeout: float = 30) -> None:
    """Wait until a gRPC server answers its health check with SERVING."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)

    def serving() -> bool:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited early:\n{proc.log()[-3000:]}")
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    try:
        wait_until(serving, timeout, what=f"{proc.name} gRPC on port {port}")
    finally:
        channel.close()


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free loopback port that keeps what it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email
        import email.policy

        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def stop(self) -> None:
        self._controller.stop()


def migrate(url: str) -> None:
    upgrade(url)


class FaultProxy:
    """A TCP proxy on loopback in front of a real server, to cut or stall the path to it.

    ``mode`` is "pass" (forward), "reset" (drop every connection, refuse new ones by closing them at
    once) or "blackhole" (accept and forward nothing: the peer sees a stall, not an error).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self.port = self._listener.getsockname()[1]
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def set_mode(self, mode: str) -> None:
        assert mode in {"pass", "reset", "blackhole"}
        self.mode = mode
        if mode != "pass":
            with self._lock:
                conns, self._conns = self._conns, set()
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    conn.close()

    def close(self) -> None:
        self._closed = True
        self.set_mode("reset")
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "reset":
                client.close()
                continue
            if self.mode == "blackhole":
                with self._lock:
                    self._conns.add(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self.mode != "pass":
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
