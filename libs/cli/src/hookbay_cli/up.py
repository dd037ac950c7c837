"""``hookbay up``: the whole of Hookbay on one machine, supervised.

Receiver, parser and actions run as child processes (``python -m hookbay_<service>``), the same way
they run in production, so nothing here imports them. This process checks the ports, migrates the
database, starts the children, waits until they answer, restarts one that dies, and on Ctrl-C or
SIGTERM stops them all before exiting. On Linux the children also die with it when it is killed
outright (SIGKILL, OOM killer): they are started with a parent-death signal.

Unless ``HOOKBAY_SMTP_URL`` points elsewhere, this process also runs a local mail capture (an SMTP
server in a thread, part of the tool rather than a service) that saves every email the actions
service sends as an ``.eml`` file in ``DATA_DIR/outbox``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hookbay_cli.errors import CliError

POLL = 0.2
READY_TIMEOUT = 60.0
# The services stop by themselves within HOOKBAY_SHUTDOWN_GRACE (default 20 s); a child still alive
# STOP_MARGIN after that is stuck, and only then is it killed.
DEFAULT_SHUTDOWN_GRACE = 20.0
STOP_MARGIN = 5.0
BACKOFF_MAX = 30.0
# A child that dies this soon after starting counts towards giving up; one that ran longer than
# STABLE had recovered, so its backoff starts again from one second.
QUICK_DEATH = 10.0
STABLE = 60.0
MAX_QUICK_DEATHS = 5
# The services exit 2 when they cannot start at all (port taken, schema out of date): retrying won't help.
EXIT_CANNOT_START = 2
DEFAULT_ADMIN_PORT = 50051
SMTP_HOST = "127.0.0.1"  # the mail capture is for this machine only
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Local probes must never go through an HTTP proxy, and must notice a freshly started server quickly.
LOCAL_GRPC_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


@dataclass(frozen=True)
class UpConfig:
    data_dir: Path
    http_host: str
    http_port: int
    admin_port: int
    parser_port: int
    actions_port: int
    database_url: str
    raw_store_url: str
    smtp_port: int = 8025
    smtp_url: str = ""  # HOOKBAY_SMTP_URL from the environment; empty: run the local mail capture
    admin_host: str = "127.0.0.1"
    parser_host: str = "127.0.0.1"
    actions_host: str = "127.0.0.1"
    # The services' own defaults differ (9461, 9462), so both fit on one machine; 0 turns one off.
    parser_metrics_port: int = 9461
    actions_metrics_port: int = 9462
    stop_grace: float = DEFAULT_SHUTDOWN_GRACE + STOP_MARGIN

    @classmethod
    def build(
        cls,
        *,
        data_dir: str,
        http_host: str,
        http_port: int,
        admin_port: int,
        parser_port: int,
        actions_port: int,
        environ: dict[str, str],
        smtp_port: int = 8025,
    ) -> UpConfig:
        """Flags first; the database and raw store from the environment when set there."""
        root = Path(data_dir).expanduser().resolve()
        return cls(
            data_dir=root,
            http_host=http_host,
            http_port=http_port,
            admin_port=admin_port,
            parser_port=parser_port,
            actions_port=actions_port,
            database_url=environ.get("HOOKBAY_DATABASE_URL") or f"sqlite:///{root / 'hookbay.db'}",
            raw_store_url=environ.get("HOOKBAY_RAW_STORE_URL") or f"file://{root / 'raw'}",
            smtp_port=smtp_port,
            smtp_url=environ.get("HOOKBAY_SMTP_URL") or "",
            # The services read their bind hosts from the environment too; probe where they will bind.
            admin_host=environ.get("HOOKBAY_ADMIN_HOST") or "127.0.0.1",
            parser_host=environ.get("HOOKBAY_PARSER_HOST") or "127.0.0.1",
            actions_host=environ.get("HOOKBAY_ACTIONS_HOST") or "127.0.0.1",
            parser_metrics_port=_env_port(environ, "HOOKBAY_PARSER_METRICS_PORT", 9461),
            actions_metrics_port=_env_port(environ, "HOOKBAY_ACTIONS_METRICS_PORT", 9462),
            stop_grace=_env_seconds(environ, "HOOKBAY_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE) + STOP_MARGIN,
        )

    @property
    def admin_addr(self) -> str:
        return join_host_port(connect_host(self.admin_host), self.admin_port)

    @property
    def parser_addr(self) -> str:
        return join_host_port(connect_host(self.parser_host), self.parser_port)

    @property
    def actions_addr(self) -> str:
        return join_host_port(connect_host(self.actions_host), self.actions_port)

    @property
    def capture_mail(self) -> bool:
        return not self.smtp_url

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def http_url(self) -> str:
        return f"http://{join_host_port(connect_host(self.http_host), self.http_port)}"

    def child_env(self, environ: dict[str, str]) -> dict[str, str]:
        mail = {"HOOKBAY_SMTP_URL": f"smtp://{SMTP_HOST}:{self.smtp_port}"} if self.capture_mail else {}
        return {
            **environ,
            **mail,
            "HOOKBAY_DATABASE_URL": self.database_url,
            "HOOKBAY_RAW_STORE_URL": self.raw_store_url,
            "HOOKBAY_HTTP_HOST": self.http_host,
            "HOOKBAY_HTTP_PORT": str(self.http_port),
            "HOOKBAY_ADMIN_PORT": str(self.admin_port),
            "HOOKBAY_PARSER_PORT": str(self.parser_port),
            "HOOKBAY_PARSER_ADDR": self.parser_addr,
            "HOOKBAY_ACTIONS_PORT": str(self.actions_port),
            "HOOKBAY_ACTIONS_ADDR": self.actions_addr,
        }


def _env_port(environ: dict[str, str], name: str, default: int) -> int:
    value = environ.get(name) or str(default)
    if not value.isdigit() or int(value) > 65535:
        raise CliError(f"{name} must be a port number (0 turns it off), not {value!r}")
    return int(value)


def _env_seconds(environ: dict[str, str], name: str, default: float) -> float:
    value = environ.get(name) or str(default)
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise CliError(f"{name} must be a positive number of seconds, not {value!r}")
    return seconds


def connect_host(bind_host: str) -> str:
    """Where to connect to reach a server bound on ``bind_host`` (wildcards mean this machine)."""
    if bind_host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind_host == "::":
        return "::1"
    return bind_host


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- ports -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortUse:
    host: str
    port: int
    label: str  # what listens there, for the message
    flag: str  # the option that changes it


def port_uses(config: UpConfig) -> list[PortUse]:
    uses = [
        PortUse(config.http_host, config.http_port, "HTTP", "--http-port"),
        PortUse(config.admin_host, config.admin_port, "admin gRPC", "--admin-port"),
        PortUse(config.parser_host, config.parser_port, "parser gRPC", "--parser-port"),
        PortUse(config.actions_host, config.actions_port, "actions gRPC", "--actions-port"),
    ]
    if config.parser_metrics_port:
        uses.append(
            PortUse(
                config.parser_host,
                config.parser_metrics_port,
                "parser metrics",
                "HOOKBAY_PARSER_METRICS_PORT (0 turns it off)",
            )
        )
    if config.actions_metrics_port:
        uses.append(
            PortUse(
                config.actions_host,
                config.actions_metrics_port,
                "actions metrics",
                "HOOKBAY_ACTIONS_METRICS_PORT (0 turns it off)",
            )
        )
    if config.capture_mail:
        uses.append(PortUse(SMTP_HOST, config.smtp_port, "mail capture SMTP", "--smtp-port"))
    return uses


def check_ports(uses: list[PortUse]) -> None:
    """Fail with one line naming the flag to change when a port is taken or given twice."""
    seen: dict[int, PortUse] = {}
    for use in uses:
        if use.port in seen:
            raise CliError(
                f"port {use.port} is given for both {seen[use.port].label} and {use.label};"
                f" pick another with {use.flag}"
            )
        seen[use.port] = use
    for use in uses:
        check_port(use)


def check_port(use: PortUse) -> None:
    family = socket.AF_INET6 if ":" in use.host else socket.AF_INET
    try:
        # The services bind with SO_REUSEADDR; do the same so a port in TIME_WAIT does not look taken.
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((use.host, use.port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {use.port} is already in use ({use.label}); pick another with {use.flag}"
            ) from None
        if isinstance(exc, socket.gaierror):
            raise CliError(f"cannot listen on {use.host!r} ({use.label}): unknown host") from None
        raise CliError(
            f"cannot listen on {join_host_port(use.host, use.port)} ({use.label}): {exc.strerror or exc};"
            f" pick another with {use.flag}"
        ) from None


# -- children --------------------------------------------------------------------------------------


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def log(message: str) -> None:
    print(f"hookbay: {message}", file=sys.stderr, flush=True)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux SIGTERM the child when this process dies, however it dies.

    Without it a SIGKILLed ``up`` leaves the services running and holding their ports. Everything
    is looked up here, in the parent, so the child between fork and exec only makes the one call.
    The signal follows the *thread* that forked: children are only ever started from the main
    thread. None (no preexec_fn) where prctl does not exist.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sigterm)

    return preexec


@dataclass
class Child:
    name: str
    module: str
    env: dict[str, str]
    preexec: Callable[[], None] | None = None
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0  # deaths since it last ran stably, for the backoff
    quick_deaths: int = 0  # consecutive deaths within QUICK_DEATH of starting
    restart_at: float | None = None

    def start(self) -> None:
        # stdout/stderr are inherited: the services' logs are the user's view of what happens. The
        # terminal's input stays with `up`. preexec_fn: see die_with_parent.
        self.popen = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self.env,
            stdin=subprocess.DEVNULL,
            preexec_fn=self.preexec,
        )
        self.started_at = time.monotonic()
        self.restart_at = None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def supervise(self, now: float) -> None:
        """Notice a death and schedule the restart; restart when due. Raises CliError to give up."""
        if self.popen is not None:
            code = self.popen.poll()
            if code is None:
                return
            self.popen = None
            self._died(code, now)
        if self.restart_at is not None and now >= self.restart_at:
            self.start()

    def _died(self, code: int, now: float) -> None:
        lived = now - self.started_at
        if code == EXIT_CANNOT_START:
            raise CliError(f"the {self.name} cannot start (its reason is above); stopping Hookbay")
        self.quick_deaths = self.quick_deaths + 1 if lived < QUICK_DEATH else 0
        if self.quick_deaths >= MAX_QUICK_DEATHS:
            raise CliError(
                f"the {self.name} keeps dying ({self.quick_deaths} times in a row within"
                f" {QUICK_DEATH:.0f}s of starting, last {describe_exit(code)}); stopping Hookbay"
            )
        if lived >= STABLE:
            self.restarts = 0
        delay = min(BACKOFF_MAX, 2.0**self.restarts)
        self.restarts += 1
        log(f"the {self.name} exited unexpectedly ({describe_exit(code)}); restarting in {delay:.0f}s")
        self.restart_at = now + delay

    def terminate(self) -> None:
        if self.alive() and self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.alive() and self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait()


class Signals:
    """Counts SIGINT/SIGTERM/SIGHUP: the first asks for a graceful stop, a second hurries it."""

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1


def stop_children(children: list[Child], signals: Signals, grace: float) -> None:
    """SIGTERM everyone, wait up to ``grace`` seconds (less if signalled again), SIGKILL the rest."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace
    first = signals.count
    hurried = False
    while any(c.alive() for c in children) and time.monotonic() < deadline:
        if first and signals.count > first:
            hurried = True
            break
        time.sleep(0.05)
    for child in children:
        if child.alive():
            if not hurried:
                log(f"the {child.name} did not stop within {grace:.0f}s; killing it")
            child.kill()


# -- mail capture ----------------------------------------------------------------------------------


class Outbox:
    """aiosmtpd handler: every message received becomes one ``.eml`` file in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        try:
            self.save(envelope.original_content or envelope.content or b"")
        except OSError as exc:
            log(f"the mail capture cannot save a message in {self.directory}: {exc.strerror or exc}")
            return "451 Requested action aborted: cannot save the message"
        return "250 Message accepted for delivery"

    def save(self, data: bytes) -> Path:
        """Write atomically (temporary file, then rename): a reader never sees half a message."""
        now = datetime.now(UTC)
        name = f"{now:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(4)}.eml"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        try:
            with open(temporary, "xb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return final


class MailCapture:
    """The local SMTP server of ``hookbay up``, in a thread of this process (aiosmtpd's Controller)."""

    def __init__(self, port: int, outbox: Path) -> None:
        self.port = port
        self.outbox = outbox
        self._controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"cannot create the outbox {self.outbox}: {exc.strerror or exc}") from None
        # server_hostname: without it aiosmtpd asks DNS for this machine's name, which can hang.
        controller = Controller(
            Outbox(self.outbox), hostname=SMTP_HOST, port=self.port, server_hostname="localhost"
        )
        try:
            controller.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {self.port} is already in use (mail capture SMTP); pick another with --smtp-port"
                ) from None
            raise CliError(
                f"cannot start the mail capture on port {self.port}: {exc.strerror or exc}"
            ) from None
        except Exception as exc:
            raise CliError(f"cannot start the mail capture on port {self.port}: {exc}") from None
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            with contextlib.suppress(Exception):
                self._controller.stop()
            self._controller = None


# -- readiness -------------------------------------------------------------------------------------


class Readiness:
    """Receiver HTTP /readyz plus gRPC health of the admin API, parser and actions."""

    def __init__(self, config: UpConfig) -> None:
        self._readyz = f"{config.http_url}/readyz"
        # urllib would honour http_proxy; a probe of this machine must not.
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._closed = False
        self._checks: list[tuple[grpc.Channel, str]] = [
            (
                grpc.insecure_channel(config.admin_addr, options=LOCAL_GRPC_OPTIONS),
                "hookbay.admin.v1.AdminService",
            ),
            (
                grpc.insecure_channel(config.parser_addr, options=LOCAL_GRPC_OPTIONS),
                "hookbay.parser.v1.ParserService",
            ),
            (
                grpc.insecure_channel(config.actions_addr, options=LOCAL_GRPC_OPTIONS),
                "hookbay.actions.v1.ActionsService",
            ),
        ]

    def http_ready(self) -> bool:
        try:
            with self._http.open(self._readyz, timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def grpc_ready(self, channel: grpc.Channel, service: str) -> bool:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
        except grpc.RpcError:
            return False
        return response.status == health_pb2.HealthCheckResponse.SERVING

    def ready(self) -> bool:
        return self.http_ready() and all(self.grpc_ready(ch, svc) for ch, svc in self._checks)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for channel, _ in self._checks:
            channel.close()


# -- the command -----------------------------------------------------------------------------------


# SQLAlchemy and Alembic are imported inside the functions that need them: every other command
# imports this module and should not pay for them.


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def migrate(database_url: str) -> None:
    """Run the migrations, turning any failure into one line."""
    from hookbay_common.db.migrate import upgrade

    try:
        upgrade(database_url)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CliError(f"cannot migrate the database at {safe_url(database_url)}: {first}") from None


def safe_smtp_url(url: str) -> str:
    """The SMTP URL without its user and password, for messages."""
    try:
        parts = urllib.parse.urlsplit(url)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    except ValueError:
        return url.rpartition("@")[2]


def metrics_urls(config: UpConfig) -> str:
    urls = [f"{config.http_url}/metrics"]
    for host, port in (
        (config.parser_host, config.parser_metrics_port),
        (config.actions_host, config.actions_metrics_port),
    ):
        if port:
            urls.append(f"http://{join_host_port(connect_host(host), port)}/metrics")
    return "  ".join(urls)


def banner(config: UpConfig) -> str:
    prefix = "" if config.admin_port == DEFAULT_ADMIN_PORT else f"HOOKBAY_ADMIN_ADDR={config.admin_addr} "
    if config.capture_mail:
        mail = f"  outbox     {config.outbox}   (emails are captured here, smtp://{SMTP_HOST}:{config.smtp_port})"
    else:
        mail = f"  mail       {safe_smtp_url(config.smtp_url)}   (HOOKBAY_SMTP_URL; no local capture)"
    return "\n".join(
        [
            "",
            "Hookbay is up.",
            f"  receiver   {config.http_url}   (senders POST to {config.http_url}/V1/Data/<guid>)",
            f"  admin API  {config.admin_addr}",
            f"  database   {safe_url(config.database_url)}",
            f"  raw store  {config.raw_store_url}",
            mail,
            f"  metrics    {metrics_urls(config)}",
            "",
            "Try it:",
            f"  {prefix}uv run hookbay sources create --name shop      # prints the source's URL",
            "  curl -X POST --data-binary @order.json -H 'content-type: application/json' <url>",
            f"  {prefix}uv run hookbay packets list",
            f"  {prefix}uv run hookbay records list",
            "",
            "Press Ctrl-C to stop.",
            "",
        ]
    )


# (what messages call it, the module ``python -m`` runs)
SERVICES = [
    ("receiver", "hookbay_receiver"),
    ("parser", "hookbay_parser"),
    ("actions service", "hookbay_actions"),
]


def run(config: UpConfig) -> int:
    """Run until signalled (exit 0) or until something cannot be kept running (CliError)."""
    check_ports(port_uses(config))
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create the data directory {config.data_dir}: {exc.strerror or exc}") from None
    signals = Signals()
    signals.install()
    migrate(config.database_url)
    if signals.count:
        return 0

    env = config.child_env(dict(os.environ))
    preexec = die_with_parent()
    children = [Child(name, module, env, preexec) for name, module in SERVICES]
    capture = MailCapture(config.smtp_port, config.outbox) if config.capture_mail else None
    readiness = Readiness(config)
    try:
        if capture is not None:
            capture.start()  # before the actions service, which may have mail to send at once
        for child in children:
            child.start()
        deadline = time.monotonic() + READY_TIMEOUT
        ready = False
        while not signals.count:
            now = time.monotonic()
            for child in children:
                if signals.count:
                    break  # a child stopping because of our Ctrl-C is not a crash
                child.supervise(now)
            if not ready:
                if all(c.alive() for c in children) and readiness.ready():
                    ready = True
                    readiness.close()
                    print(banner(config), flush=True)
                elif now > deadline:
                    raise CliError(
                        f"Hookbay did not become ready within {READY_TIMEOUT:.0f}s (see the service logs above);"
                        " stopping"
                    )
            time.sleep(POLL)
        log("stopping (press Ctrl-C again to stop at once)")
    finally:
        readiness.close()
        stop_children(children, signals, config.stop_grace)
        if capture is not None:
            capture.stop()  # after the actions service, so a mail it is sending still lands
    log("stopped")
    return 0
