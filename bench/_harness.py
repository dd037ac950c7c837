"""Pieces shared by Hookbay's benchmarks: child processes, free ports, readiness, wrk, scratch
databases, and a little accounting of CPU time.

Benchmarks are scripts, not tests: they print figures for a person to read. Everything here fails
loudly (with the tail of the child's log) rather than measuring a half-started system.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark could not produce a trustworthy figure."""


# ---- ports and processes ---------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now. Racy in principle; on a bench machine it is enough."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise BenchError(
                f"{self.name} exited with {code}; last lines of {self.log_path}:\n{self.log_tail()}"
            )


def start(name: str, argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None) -> Service:
    """Start ``argv`` with stdout and stderr going to ``log_path``.

    The child gets its own session: a Ctrl-C at the terminal then reaches only the benchmark, which
    stops its children itself, in order (a receiver must finish its commits before the database goes).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    return Service(name, popen, log_path)


def stop(service: Service, timeout: float = 30.0) -> int | None:
    """SIGTERM, wait up to ``timeout`` for a graceful exit, then SIGKILL. Returns the exit code."""
    popen = service.popen
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"  ! {service.name} ignored SIGTERM for {timeout:.0f}s; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                popen.kill()
            popen.wait()
    return popen.returncode


@contextlib.contextmanager
def running(
    name: str, argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[Service]:
    """A started service that is stopped on the way out, whatever the way out is."""
    service = start(name, argv, log_path=log_path, env=env)
    try:
        yield service
    finally:
        stop(service)


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into KeyboardInterrupt, so ``finally`` blocks stop children and drop
    databases. SIGINT is set explicitly because a shell starting us in the background leaves it ignored."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def wait_http_ok(url: str, service: Service, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200 (a /readyz), failing early if the service dies."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        service.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(
        f"{service.name} not ready at {url} after {timeout:.0f}s ({last}):\n{service.log_tail()}"
    )


def wait_tcp(host: str, port: int, service: Service, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on ``host:port`` (for gRPC-only services)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.check_alive()
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.1)
    raise BenchError(
        f"{service.name} not listening on {host}:{port} after {timeout:.0f}s:\n{service.log_tail()}"
    )


# ---- CPU accounting --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def pids_named(comm: str) -> list[int]:
    """Pids whose command name is ``comm`` (e.g. every ``postgres`` backend on the machine)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == comm:
                    pids.append(int(entry.name))
    return pids


class CpuMeter:
    """CPU seconds used by some processes between ``start()`` and ``stop()``.

    Processes may come and go in between (PostgreSQL backends do); those seen only at one end are
    counted from zero or dropped, which is close enough for "how busy was PostgreSQL".
    """

    def __init__(self, pids: Sequence[int] = (), comm: str | None = None) -> None:
        self._fixed = list(pids)
        self._comm = comm
        self._before: dict[int, float] = {}
        self._t0 = 0.0
        self.seconds = 0.0
        self.wall = 0.0

    def _sample(self) -> dict[int, float]:
        pids = self._fixed + (pids_named(self._comm) if self._comm else [])
        sample = {}
        for pid in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                sample[pid] = cpu_seconds(pid)
        return sample

    def start(self) -> None:
        self._before = self._sample()
        self._t0 = time.monotonic()

    def stop(self) -> None:
        after = self._sample()
        self.wall = time.monotonic() - self._t0
        self.seconds = sum(t - self._before.get(pid, 0.0) for pid, t in after.items())

    @property
    def cores(self) -> float:
        """Average cores busy over the interval (1.0 = one core flat out)."""
        return self.seconds / self.wall if self.wall else 0.0


# ---- wrk -------------------------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise BenchError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


@dataclass
class WrkResult:
    command: list[str]
    output: str
    requests: int  # complete responses, whatever their status
    seconds: float
    rps: float
    percentiles_ms: dict[int, float]
    non_2xx_3xx: int  # wrk's own count
    lua_ok: int | None  # the script's count of 2xx answers
    lua_bad: int | None
    lua_codes: dict[int, int] = field(default_factory=dict)
    socket_errors: dict[str, int] = field(default_factory=dict)
    wrk_cpu_seconds: float = 0.0

    @property
    def p50(self) -> float:
        return self.percentiles_ms[50]

    @property
    def p99(self) -> float:
        return self.percentiles_ms[99]

    @property
    def failures(self) -> int:
        """Requests that did not get a 2xx: bad statuses, plus timeouts and other socket errors."""
        bad = max(self.non_2xx_3xx, self.lua_bad or 0)
        return bad + sum(self.socket_errors.values())

    @property
    def ok(self) -> int:
        return self.lua_ok if self.lua_ok is not None else self.requests - self.non_2xx_3xx


def parse_wrk(output: str, command: Sequence[str] = ()) -> WrkResult:
    """Read wrk 4's text report (run with --latency) and the post_json.lua ``done`` line."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if done is None or rps is None:
        raise BenchError(f"cannot read wrk's report:\n{output}")
    percentiles = {
        int(p): _ms(value) for p, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.MULTILINE)
    }
    if set(percentiles) != {50, 75, 90, 99}:
        raise BenchError(f"no latency distribution in wrk's report (run it with --latency):\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    lua = re.search(r"^bench-lua: ok=(\d+) bad=(\d+) codes=(\S*)$", output, re.MULTILINE)
    codes = {}
    if lua and lua[3]:
        codes = {int(k): int(v) for k, v in (pair.split(":") for pair in lua[3].split(","))}
    return WrkResult(
        command=list(command),
        output=output,
        requests=int(done[1]),
        seconds=_ms(done[2] + done[3]) / 1000,
        rps=float(rps[1]),
        percentiles_ms=percentiles,
        non_2xx_3xx=int(non2xx[1]) if non2xx else 0,
        lua_ok=int(lua[1]) if lua else None,
        lua_bad=int(lua[2]) if lua else None,
        lua_codes=codes,
        socket_errors=(
            dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True))
            if errors
            else {}
        ),
    )


def wrk_command(
    url: str, *, script: Path, duration: float, connections: int, threads: int, timeout: float = 5.0
) -> list[str]:
    return [
        os.environ.get("WRK", "wrk"),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={duration:g}s",
        # Longer than the receiver's own 1.5 s acknowledgement deadline, so a slow answer shows up as
        # latency (or a 503) rather than vanishing into wrk's timeout count.
        f"--timeout={timeout:g}s",
        "--latency",
        f"--script={script}",
        url,
    ]


def run_wrk(
    url: str,
    *,
    script: Path,
    duration: float,
    connections: int,
    threads: int,
    env: Mapping[str, str] | None = None,
) -> WrkResult:
    command = wrk_command(url, script=script, duration=duration, connections=connections, threads=threads)
    before = os.times()
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=duration + 60,
        check=False,
    )
    after = os.times()
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result = parse_wrk(proc.stdout + proc.stderr, command)
    result.wrk_cpu_seconds = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return result


# ---- PostgreSQL ------------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(server_dsn: str, prefix: str = "hookbay_bench") -> Iterator[str]:
    """A new, empty database on the server at ``server_dsn``; dropped on the way out. Yields its name."""
    import psycopg  # here, so that benchmarks without a database do not need the driver

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            # FORCE: a child that was SIGKILLed may leave a session behind for a moment.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_database(dsn: str, database: str) -> str:
    """``dsn`` (a URL ending in /DBNAME or /) pointed at ``database``."""
    base = dsn.rsplit("/", 1)[0] if dsn.count("/") > 2 else dsn
    return f"{base}/{database}"


# ---- reporting -------------------------------------------------------------------------------------


def code_state(paths: Sequence[str] = ("services", "libs")) -> str:
    """Which code was measured: HEAD plus a fingerprint of uncommitted changes under ``paths``.

    Read-only git (``--no-optional-locks`` keeps even the index untouched).
    """

    def git(*args: str) -> str:
        proc = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        return proc.stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = git("diff", "HEAD", "--name-only", "--", *paths).split()
    untracked = git("ls-files", "--others", "--exclude-standard", "--", *paths).split()
    if not changed and not untracked:
        return f"{head} (clean under {', '.join(paths)})"
    digest = hashlib.sha256(git("diff", "HEAD", "--", *paths).encode())
    for name in sorted(untracked):
        with contextlib.suppress(OSError):
            digest.update((REPO_ROOT / name).read_bytes())
    return (
        f"{head} + uncommitted changes to {len(changed)} tracked and {len(untracked)} new files "
        f"under {', '.join(paths)} (fingerprint {digest.hexdigest()[:12]})"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    # The cores this process may use, as nproc(1) counts them, not the host's.
    return {"nproc": str(len(os.sched_getaffinity(0))), "cpu": model, "loadavg": load}


# ---- statistics ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank, the way latency tools report it; nan if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least the first
    return ordered[int(min(rank, len(ordered))) - 1]


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (units of y per unit of x); 0 with fewer than two points."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


# ---- paced (open-loop) load ------------------------------------------------------------------------
#
# wrk pushes as hard as its connections allow (closed loop), which measures capacity. A steady load
# at a fixed rate needs an open loop: request i is due at t0 + i / rate whatever happened to the ones
# before it, and its latency counts from when it was due, not from when a free connection sent it
# (no "coordinated omission", as wrk2 does it). wrk2 is not packaged by Debian, so this is a small
# asyncio client on raw streams: keep-alive HTTP/1.1, Content-Length bodies only, which is what
# uvicorn answers with. Run it in its own process (``python bench/_harness.py paced ...``) so its CPU
# and its event loop are apart from the benchmark's sampling.


@dataclass
class PacedResult:
    url: str
    rate: float
    duration: float
    connections: int
    t0_wall: float  # time.time() when request 0 was due
    scheduled: int
    # One row per request: (index, due, sent, done, status, packet id); times are seconds after t0,
    # done is None and status 0 when no answer came (the error is counted in ``errors``).
    rows: list[tuple[int, float, float, float | None, int, str | None]]
    errors: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0

    @property
    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for row in self.rows:
            counts[row[4]] = counts.get(row[4], 0) + 1
        return counts

    @property
    def ok_ids(self) -> list[str]:
        return [row[5] for row in self.rows if 200 <= row[4] < 300 and row[5]]

    @property
    def failures(self) -> int:
        return sum(1 for row in self.rows if not 200 <= row[4] < 300)

    def latencies_ms(self) -> list[float]:
        """From when each answered request was due to its answer (what a sender on schedule sees)."""
        return [(row[3] - row[1]) * 1000 for row in self.rows if row[3] is not None]

    def late_ms(self) -> list[float]:
        """How late each request left: > 0 when every connection was still busy at its due time."""
        return [(row[2] - row[1]) * 1000 for row in self.rows]

    @property
    def last_done(self) -> float:
        return max((row[3] for row in self.rows if row[3] is not None), default=0.0)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: dict) -> PacedResult:
        data = dict(data)
        data["rows"] = [tuple(row) for row in data["rows"]]
        return cls(**data)


async def _read_response(reader: object) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, server asked to close)."""
    head = await reader.readuntil(b"\r\n\r\n")  # type: ignore[attr-defined]
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
        elif name == "transfer-encoding":
            raise ValueError("chunked responses are not supported by the paced client")
    body = await reader.readexactly(length) if length else b""  # type: ignore[attr-defined]
    return status, body, close


async def paced_load(
    url: str,
    body: bytes,
    *,
    rate: float,
    duration: float,
    connections: int,
    content_type: str = "application/json",
    timeout: float = 5.0,
) -> PacedResult:
    import asyncio
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    total = int(rate * duration)
    loop = asyncio.get_running_loop()
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    rows: list[tuple[int, float, float, float | None, int, str | None]] = []
    errors: dict[str, int] = {}
    next_index = 0
    t0 = loop.time() + 0.05
    t0_wall = time.time() + (t0 - loop.time())

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal next_index
        while next_index < total:
            i = next_index
            next_index += 1
            due = t0 + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = loop.time()
            try:
                writer.write(request)
                status, answer, close = await asyncio.wait_for(_read_response(reader), timeout)
            except (OSError, EOFError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                rows.append((i, due - t0, sent - t0, None, 0, None))
                close = True
            else:
                packet_id = None
                if 200 <= status < 300:
                    with contextlib.suppress(ValueError, AttributeError):
                        packet_id = json.loads(answer).get("id")
                rows.append((i, due - t0, sent - t0, loop.time() - t0, status, packet_id))
            if close:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                reader, writer = await asyncio.open_connection(host, port)
        writer.close()

    await asyncio.gather(*(worker(r, w) for r, w in streams))
    rows.sort()
    return PacedResult(url, rate, duration, connections, t0_wall, total, rows, errors)


def paced_command(
    url: str, *, body_file: Path, rate: float, duration: float, connections: int, out: Path
) -> list[str]:
    return [
        sys.executable,
        str(BENCH_DIR / "_harness.py"),
        "paced",
        *("--url", url, "--body", str(body_file), "--rate", f"{rate:g}"),
        *("--duration", f"{duration:g}", "--connections", str(connections), "--out", str(out)),
    ]


def _paced_main(argv: Sequence[str]) -> int:
    import argparse
    import asyncio
    import json

    parser = argparse.ArgumentParser(
        prog="_harness.py paced", description="open-loop POST load at a fixed rate"
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True, help="JSON result file")
    args = parser.parse_args(argv)
    result = asyncio.run(
        paced_load(
            args.url,
            args.body.read_bytes(),
            rate=args.rate,
            duration=args.duration,
            connections=args.connections,
            content_type=args.content_type,
        )
    )
    times = os.times()
    result.cpu_seconds = times.user + times.system
    args.out.write_text(json.dumps(result.to_json()))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "paced":
        sys.exit(_paced_main(sys.argv[2:]))
    sys.exit("usage: python bench/_harness.py paced --url URL --body FILE --rate N --duration S --out FILE")
