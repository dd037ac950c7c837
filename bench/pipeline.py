"""End-to-end pipeline on PostgreSQL: does the parser (and the actions service) keep up with the receiver?

The receiver, the parser and the actions service run as real processes on a scratch database, the
way `hookbay up` runs them. The measured source has one action rule, ``type: log`` on root records,
so every packet makes one action run and no SMTP server is needed (``--no-actions`` runs without the
actions service and without rules). Two phases:

1. **Capacity.** wrk (64 connections, bench/order.json) against the receiver for a few seconds:
   the receiver's req/s with the whole pipeline running beside it. The backlog this leaves is then
   drained before phase 2, which also shows how fast the parser goes when it has the machine.
2. **Steady load** at half that rate (``--rate-fraction``) for ``--steady`` seconds, open loop: a
   paced client (bench/_harness.py ``paced``) sends request i at t0 + i/rate and keeps every packet
   id it is given. A sampler counts the backlog (packets still ``received``) every second. After
   the load, PostgreSQL's ``received_at``/``parsed_at`` per packet and ``action_runs.created_at``
   give the end-to-end rate, the receipt → parsed lag and the receipt → action run lag.

    uv run python bench/pipeline.py [--capacity-duration 8] [--steady 20] [--rate-fraction 0.5] [--check]

Targets (PASS/FAIL; exit 1 only with --check): the parser keeps up, i.e. the backlog's slope over the
steady window is at most 1 % of the offered rate and everything is parsed within ``--drain-target``
seconds of the load stopping; and p99 receipt → parsed lag < 1 s. A non-2xx answer, a socket error,
an acknowledged packet missing from the database, a service that died, or a load generator that could
not hold the rate makes the run INVALID (exit 1 always).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _harness as h

DEFAULT_SERVER_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BODY_FILE = h.BENCH_DIR / "order.json"
LUA_SCRIPT = h.BENCH_DIR / "post_json.lua"
# As in receiver.py: the default per-source rate limit (50/s) would refuse most of the load.
SOURCE_SETTINGS = {"rate_limit": {"rate": 100_000, "burst": 1_000_000}}
LOG_RULE = {"name": "log-root", "type": "log", "on": "root"}

TARGET_SLOPE_SHARE = 0.01  # backlog growth, as a share of the offered rate
TARGET_P99_LAG_MS = 1000.0
MIN_SEND_SHARE = 0.95  # below this share of the offered rate the load generator, not Hookbay, is measured


# ---- command line -----------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Hookbay end to end on PostgreSQL: receiver capacity, then steady load at a share of it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--capacity-duration", type=float, default=8, help="seconds of wrk in phase 1")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured wrk seconds before phase 1")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections in phase 1")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads in phase 1")
    parser.add_argument("--steady", type=float, default=20, help="seconds of steady load in phase 2")
    parser.add_argument(
        "--rate-fraction", type=float, default=0.5, help="steady rate as a share of the phase 1 req/s"
    )
    parser.add_argument("--rate", type=float, help="steady rate in packets/s (overrides --rate-fraction)")
    parser.add_argument(
        "--steady-connections",
        type=int,
        default=128,
        help="keep-alive connections of the paced client (enough that a slow answer does not delay the next send)",
    )
    parser.add_argument(
        "--settle", type=float, default=2, help="first seconds of the steady load left out of the window"
    )
    parser.add_argument(
        "--drain-target", type=float, default=5, help="seconds after the load within which all must be parsed"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=60, help="longest wait for the backlog after the steady load"
    )
    parser.add_argument(
        "--capacity-drain-timeout",
        type=float,
        default=300,
        help="longest wait for phase 1's backlog to be parsed before phase 2 starts",
    )
    parser.add_argument(
        "--no-actions", action="store_true", help="no actions service and no action rules on the source"
    )
    for service in ("receiver", "parser", "actions"):
        parser.add_argument(
            f"--{service}-env",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"extra environment for the {service} (what-if variants; labelled in the report)",
        )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--pg", default=DEFAULT_SERVER_DSN, help="PostgreSQL server to create scratch DBs on")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy the three services during the steady load"
    )
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="py-spy executable")
    parser.add_argument("--profile-gil", action="store_true", help="sample only the GIL holder")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and raw results in DIR")
    args = parser.parse_args(argv)
    for item in args.receiver_env + args.parser_env + args.actions_env:
        if "=" not in item:
            parser.error(f"--*-env wants KEY=VALUE, got {item!r}")
    if args.no_actions and args.actions_env:
        parser.error("--actions-env makes no sense with --no-actions")
    if args.profile and not (shutil.which(args.py_spy) or Path(args.py_spy).is_file()):
        parser.error(f"--profile needs py-spy; {args.py_spy!r} not found (see bench/README.md)")
    if args.capacity_duration <= 0 or args.steady <= 0 or not 0 <= args.settle < args.steady:
        parser.error("--capacity-duration and --steady must be > 0, and 0 <= --settle < --steady")
    return args


def command_line(args: argparse.Namespace) -> str:
    """The invocation with every default spelled out, so a figure can be reproduced exactly."""
    parts = [
        "uv run python bench/pipeline.py",
        f"--capacity-duration {args.capacity_duration:g} --warmup {args.warmup:g}",
        f"--connections {args.connections} --threads {args.threads}",
        f"--steady {args.steady:g} --settle {args.settle:g} --steady-connections {args.steady_connections}",
        f"--rate {args.rate:g}" if args.rate else f"--rate-fraction {args.rate_fraction:g}",
        f"--drain-target {args.drain_target:g} --drain-timeout {args.drain_timeout:g}",
    ]
    if args.no_actions:
        parts.append("--no-actions")
    for service in ("receiver", "parser", "actions"):
        parts += [f"--{service}-env {shlex.quote(e)}" for e in getattr(args, f"{service}_env")]
    if args.profile:
        parts.append(
            f"--profile {shlex.quote(str(args.profile))}" + (" --profile-gil" if args.profile_gil else "")
        )
    if args.pg != DEFAULT_SERVER_DSN:
        parts.append(f"--pg {shlex.quote(args.pg)}")
    if args.check:
        parts.append("--check")
    return " ".join(parts)


def variant_of(args: argparse.Namespace) -> str:
    return " ".join(
        f"{service}:{e}"
        for service in ("receiver", "parser", "actions")
        for e in getattr(args, f"{service}_env")
    )


# ---- database helpers ---------------------------------------------------------------------------------


def connect(dsn: str) -> Any:  # psycopg.Connection; psycopg is imported lazily
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


def backlog_counts(conn: Any, source_id: str | None = None) -> tuple[int, int, int]:
    """(packets still 'received', packets waiting for the actions service, action runs not yet run).

    Each count goes through a partial or status index, so sampling it every second stays cheap.
    """
    where = " AND source_id = %(s)s" if source_id else ""
    row = conn.execute(
        f"""SELECT
              (SELECT count(*) FROM packets WHERE status = 'received'{where}),
              (SELECT count(*) FROM packets WHERE actions_state = 'pending'{where}),
              (SELECT count(*) FROM action_runs WHERE status IN ('pending', 'running'){where})""",
        {"s": source_id},
    ).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def packet_times(dsn: str, source_id: str) -> list[tuple[str, float, float | None, str]]:
    """(id, received_at, parsed_at, status) of every packet of the source, times as epoch seconds."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id::text, extract(epoch FROM received_at)::float8, extract(epoch FROM parsed_at)::float8,"
            " status FROM packets WHERE source_id = %s",
            (source_id,),
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def run_times(dsn: str, source_id: str) -> list[tuple[float, float, str]]:
    """(action run created_at, its packet's received_at, run status) for the source's runs."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM r.created_at)::float8, extract(epoch FROM p.received_at)::float8, r.status"
            " FROM action_runs r JOIN packets p ON p.id = r.packet_id WHERE r.source_id = %s",
            (source_id,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def db_counters(dsn: str) -> dict[str, int]:
    """Cumulative counters of the scratch database: commits, and scans per table (how the SQL runs)."""
    with connect(dsn) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")  # this backend's pending counts
        commits = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        counters = {"commits": int(commits[0]) if commits else 0}
        for table, seq, seq_rows, idx in conn.execute(
            "SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) FROM pg_stat_user_tables"
            " WHERE relname IN ('packets', 'records', 'action_runs', 'sources')"
        ).fetchall():
            counters[f"{table}.seq_scan"] = int(seq)
            counters[f"{table}.seq_rows"] = int(seq_rows)
            counters[f"{table}.idx_scan"] = int(idx)
    return counters


def stored_ids(dsn: str, ids: list[str]) -> set[str]:
    with connect(dsn) as conn:
        rows = conn.execute("SELECT id::text FROM packets WHERE id = ANY(%s::uuid[])", (ids,)).fetchall()
    return {r[0] for r in rows}


def count_by_status(dsn: str, source_id: str) -> Counter[str]:
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM packets WHERE source_id = %s GROUP BY status", (source_id,)
        ).fetchall()
    return Counter({status: int(n) for status, n in rows})


def create_source(admin_port: int, name: str, rules: list[dict]) -> tuple[str, str]:
    """Create a source through the admin gRPC API; return (URL to POST to, source id)."""
    import grpc
    from google.protobuf import struct_pb2

    from hookbay.admin.v1 import admin_service_pb2 as pb
    from hookbay.admin.v1 import admin_service_pb2_grpc as pb_grpc
    from hookbay.types.v1 import types_pb2

    settings = struct_pb2.Struct()
    settings.update(SOURCE_SETTINGS)
    request = pb.CreateSourceRequest(
        name=name, format="json", settings=settings, actions=[types_pb2.ActionRule(**r) for r in rules]
    )
    with grpc.insecure_channel(f"127.0.0.1:{admin_port}") as channel:
        source = pb_grpc.AdminServiceStub(channel).CreateSource(request, timeout=15)
    return source.url, source.id


@dataclass
class Sample:
    at: float  # epoch seconds
    backlog: int  # packets of the source still 'received'
    actions_pending: int
    runs_pending: int


class Sampler(threading.Thread):
    """Counts the backlog of one source every ``interval`` seconds, on its own connection."""

    def __init__(self, dsn: str, source_id: str, interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="backlog-sampler")
        self.dsn = dsn
        self.source_id = source_id
        self.interval = interval
        self.samples: list[Sample] = []
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.dsn) as conn:
                next_at = time.time()
                while not self._stop_event.is_set():
                    at = time.time()
                    self.samples.append(Sample(at, *backlog_counts(conn, self.source_id)))
                    next_at += self.interval
                    self._stop_event.wait(max(0.0, next_at - time.time()))
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)

    def drained(self, actions: bool) -> bool:
        if not self.samples:
            return False
        last = self.samples[-1]
        return last.backlog == 0 and (not actions or (last.actions_pending == 0 and last.runs_pending == 0))


def wait_drained(dsn: str, timeout: float, actions: bool, services: list[h.Service]) -> float | None:
    """Wait until nothing is left to parse (nor to hand to or run by actions); seconds waited, or None."""
    t0 = time.monotonic()
    with connect(dsn) as conn:
        while time.monotonic() - t0 < timeout:
            for service in services:
                service.check_alive()
            backlog, pending, runs = backlog_counts(conn)
            if backlog == 0 and (not actions or (pending == 0 and runs == 0)):
                return time.monotonic() - t0
            time.sleep(0.25)
    return None


# ---- one run ------------------------------------------------------------------------------------------


@dataclass
class Phase1:
    wrk: h.WrkResult
    t0: float
    t1: float
    cpu: dict[str, float]
    statuses: Counter[str]  # measured source, counted right after wrk
    packets: list[tuple[str, float, float | None, str]] = field(default_factory=list)
    runs: list[tuple[float, float, str]] = field(default_factory=list)
    drained_after: float | None = None  # seconds after wrk stopped


@dataclass
class Phase2:
    rate: float
    load: h.PacedResult
    cpu: dict[str, float]
    cpu_seconds: dict[str, float]
    samples: list[Sample]
    packets: list[tuple[str, float, float | None, str]]
    runs: list[tuple[float, float, str]]
    missing: int  # 2xx'd packet ids not in the database
    statuses: Counter[str]
    db: dict[str, int] = field(default_factory=dict)  # counter deltas, load start to drained


@dataclass
class Outcome:
    phase1: Phase1 | None = None
    phase2: Phase2 | None = None
    logs: dict[str, Counter[str]] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Pipeline:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.actions = not args.no_actions
        self.rules = [LOG_RULE] if self.actions else []
        self.out = Outcome()

    def run(self) -> Outcome:
        from hookbay_common.db.migrate import upgrade

        args = self.args
        with h.scratch_database(args.pg, prefix="hookbay_pipeline") as database:
            dsn = h.with_database(args.pg, database)
            db_url = "postgresql+psycopg://" + dsn.split("://", 1)[1]
            upgrade(db_url)
            http_port, admin_port = h.free_port(), h.free_port()
            parser_port, actions_port = h.free_port(), h.free_port()
            common = {
                "HOOKBAY_DATABASE_URL": db_url,
                "HOOKBAY_RAW_STORE_URL": f"file://{self.workdir / 'raw'}",
                "HOOKBAY_LOG_FORMAT": "json",
            }
            envs = {
                "actions": {
                    **common,
                    "HOOKBAY_ACTIONS_HOST": "127.0.0.1",
                    "HOOKBAY_ACTIONS_PORT": str(actions_port),
                    # Only log rules here; an SMTP URL where nothing listens keeps any email from leaving.
                    "HOOKBAY_SMTP_URL": f"smtp://127.0.0.1:{h.free_port()}",
                },
                "parser": {
                    **common,
                    "HOOKBAY_PARSER_HOST": "127.0.0.1",
                    "HOOKBAY_PARSER_PORT": str(parser_port),
                    # Without the actions service, a free port keeps the parser off any other process.
                    "HOOKBAY_ACTIONS_ADDR": f"127.0.0.1:{actions_port if self.actions else h.free_port()}",
                },
                "receiver": {
                    **common,
                    "HOOKBAY_HTTP_HOST": "127.0.0.1",
                    "HOOKBAY_HTTP_PORT": str(http_port),
                    "HOOKBAY_ADMIN_HOST": "127.0.0.1",
                    "HOOKBAY_ADMIN_PORT": str(admin_port),
                    "HOOKBAY_PARSER_ADDR": f"127.0.0.1:{parser_port}",
                },
            }
            for service, env in envs.items():
                env.update(dict(e.split("=", 1) for e in getattr(args, f"{service}_env", [])))
            services: dict[str, h.Service] = {}
            # Started actions, parser, receiver; stopped in reverse, so the receiver commits what it
            # acknowledged first, and the database is dropped last.
            with contextlib.ExitStack() as stack:
                if self.actions:
                    services["actions"] = stack.enter_context(self._running("actions", envs))
                    h.wait_tcp("127.0.0.1", actions_port, services["actions"])
                services["parser"] = stack.enter_context(self._running("parser", envs))
                h.wait_tcp("127.0.0.1", parser_port, services["parser"])
                services["receiver"] = stack.enter_context(self._running("receiver", envs))
                h.wait_http_ok(f"http://127.0.0.1:{http_port}/readyz", services["receiver"])
                try:
                    self._phases(dsn, admin_port, services)
                finally:
                    for service in services.values():
                        if service.popen.poll() is not None:
                            self.out.problems.append(
                                f"{service.name} died during the run:\n{service.log_tail(10)}"
                            )
            for name, service in services.items():
                self.out.exit_codes[name] = service.popen.returncode
                self.out.logs[name] = log_events(service.log_path)
                if service.popen.returncode != 0:
                    self.out.problems.append(f"{name} exited with {service.popen.returncode} on SIGTERM")
        return self.out

    def _running(
        self, name: str, envs: dict[str, dict[str, str]]
    ) -> contextlib.AbstractContextManager[h.Service]:
        argv = [sys.executable, "-m", f"hookbay_{name}"]
        return h.running(name, argv, log_path=self.workdir / f"{name}.log", env=envs[name])

    def _meters(self, services: dict[str, h.Service]) -> dict[str, h.CpuMeter]:
        meters = {name: h.CpuMeter([s.pid]) for name, s in services.items()}
        meters["postgres"] = h.CpuMeter(comm="postgres")
        return meters

    def _phases(self, dsn: str, admin_port: int, services: dict[str, h.Service]) -> None:
        args = self.args
        alive = list(services.values())
        warm_url, _ = create_source(admin_port, "pipeline-warmup", self.rules)
        cap_url, cap_id = create_source(admin_port, "pipeline-capacity", self.rules)
        steady_url, steady_id = create_source(admin_port, "pipeline-steady", self.rules)
        wrk_env = {"BENCH_BODY_FILE": str(BODY_FILE)}

        # ---- phase 1: capacity
        if args.warmup > 0:
            print(f"... warm-up: wrk {args.warmup:g}s on another source", flush=True)
            self._wrk(warm_url, args.warmup, wrk_env, "warmup")
            print("    waiting for the warm-up backlog to drain", flush=True)
            if wait_drained(dsn, args.capacity_drain_timeout, self.actions, alive) is None:
                self.out.problems.append("the warm-up backlog did not drain")
                return
        print(
            f"... phase 1: capacity, wrk {args.capacity_duration:g}s x {args.connections} connections",
            flush=True,
        )
        meters = self._meters(services)
        for meter in meters.values():
            meter.start()
        t0 = time.time()
        result = self._wrk(cap_url, args.capacity_duration, wrk_env, "capacity")
        t1 = time.time()
        for meter in meters.values():
            meter.stop()
        cpu = {name: meter.cores for name, meter in meters.items()}
        cpu["wrk"] = result.wrk_cpu_seconds / result.seconds
        # Counted while the receiver still runs: every 2xx must already be committed.
        phase1 = Phase1(result, t0, t1, cpu, count_by_status(dsn, cap_id))
        self.out.phase1 = phase1
        print(f"    {result.rps:.0f} req/s, p50 {result.p50:.1f} ms, p99 {result.p99:.1f} ms", flush=True)
        if result.failures:
            self.out.problems.append(
                f"capacity: {result.failures} requests without a 2xx (statuses {result.lua_codes or '-'}, "
                f"socket errors {result.socket_errors})"
            )
        if phase1.statuses.total() < result.ok:
            self.out.problems.append(
                f"capacity: only {phase1.statuses.total()} packets stored for {result.ok} 2xx answers"
            )
        print(f"    waiting for its backlog to drain (at most {args.capacity_drain_timeout:g}s)", flush=True)
        waited = wait_drained(dsn, args.capacity_drain_timeout, self.actions, alive)
        phase1.packets = packet_times(dsn, cap_id)
        phase1.runs = run_times(dsn, cap_id)
        if waited is None:
            self.out.problems.append(
                f"capacity: the backlog did not drain in {args.capacity_drain_timeout:g}s; phase 2 skipped"
            )
            return
        phase1.drained_after = time.time() - t1
        print(f"    drained {phase1.drained_after:.1f}s after wrk stopped", flush=True)

        # ---- phase 2: steady load at a share of the capacity
        rate = args.rate or result.rps * args.rate_fraction
        print(f"... phase 2: steady load, {rate:.0f} packets/s for {args.steady:g}s", flush=True)
        out_file = self.workdir / "steady-load.json"
        command = h.paced_command(
            steady_url,
            body_file=BODY_FILE,
            rate=rate,
            duration=args.steady,
            connections=args.steady_connections,
            out=out_file,
        )
        self.paced_command_shown = shlex.join(
            h.paced_command(
                "URL",
                body_file=BODY_FILE.relative_to(h.REPO_ROOT),
                rate=round(rate),
                duration=args.steady,
                connections=args.steady_connections,
                out=Path("OUT.json"),
            )
        ).replace(shlex.quote(sys.executable), "python")
        db_before = db_counters(dsn)
        sampler = Sampler(dsn, steady_id, interval=1.0)
        sampler.start()
        meters = self._meters(services)
        with (self.workdir / "steady-load.log").open("wb") as log:
            loadgen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=h.REPO_ROOT)
        meters["loadgen"] = h.CpuMeter([loadgen.pid])
        for meter in meters.values():
            meter.start()
        profilers = self._start_profilers(services)
        try:
            code = loadgen.wait(timeout=args.steady + 120)
        except BaseException:
            loadgen.kill()
            loadgen.wait()
            raise
        finally:
            for profiler in profilers:
                try:
                    profiler.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    profiler.kill()
                    profiler.wait()
        # The loadgen is reaped now, so its CPU comes from its own report; the others from /proc.
        for meter in meters.values():
            meter.stop()
        if code != 0 or not out_file.exists():
            sampler.stop()
            raise h.BenchError(
                f"the paced load generator failed ({code}):\n{(self.workdir / 'steady-load.log').read_text()}"
            )
        load = h.PacedResult.from_json(json.loads(out_file.read_text()))
        cpu_seconds = {name: meter.seconds for name, meter in meters.items()}
        cpu_seconds["loadgen"] = load.cpu_seconds
        cpu = {name: meter.cores for name, meter in meters.items()}
        cpu["loadgen"] = load.cpu_seconds / max(meters["loadgen"].wall, 1e-9)
        print(
            f"    load done; waiting for the backlog to drain (at most {args.drain_timeout:g}s)", flush=True
        )
        sampler.interval = 0.25
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline and not sampler.drained(self.actions) and sampler.error is None:
            for service in alive:
                service.check_alive()
            time.sleep(0.25)
        sampler.stop()
        if sampler.error is not None:
            raise h.BenchError(f"backlog sampler failed: {sampler.error!r}")
        db_after = db_counters(dsn)
        ok_ids = load.ok_ids
        missing = len(ok_ids) - len(stored_ids(dsn, ok_ids))
        self.out.phase2 = Phase2(
            rate,
            load,
            cpu,
            cpu_seconds,
            sampler.samples,
            packet_times(dsn, steady_id),
            run_times(dsn, steady_id),
            missing,
            count_by_status(dsn, steady_id),
            {k: v - db_before.get(k, 0) for k, v in db_after.items()},
        )
        if load.failures:
            self.out.problems.append(
                f"steady: {load.failures} requests without a 2xx (statuses {load.statuses}, errors {load.errors})"
            )
        if missing:
            self.out.problems.append(
                f"steady: {missing} of {len(ok_ids)} acknowledged packets are not stored"
            )

    def _wrk(self, url: str, seconds: float, env: dict[str, str], label: str) -> h.WrkResult:
        result = h.run_wrk(
            url,
            script=LUA_SCRIPT,
            duration=seconds,
            connections=self.args.connections,
            threads=self.args.threads,
            env=env,
        )
        (self.workdir / f"{label}.wrk.txt").write_text(shlex.join(result.command) + "\n\n" + result.output)
        return result

    def _start_profilers(self, services: dict[str, h.Service]) -> list[subprocess.Popen[bytes]]:
        if self.args.profile is None:
            return []
        self.args.profile.mkdir(parents=True, exist_ok=True)
        profilers = []
        for name, service in services.items():
            command = [
                self.args.py_spy,
                *("record", "--pid", str(service.pid), "--duration", str(int(self.args.steady))),
                *("--rate", "100", "--nonblocking", "--threads", "--format", "raw"),
                *("--output", str(self.args.profile / f"steady-{name}.collapsed")),
                *(["--gil"] if self.args.profile_gil else []),
            ]
            with (self.workdir / f"steady-{name}.py-spy.log").open("wb") as log:
                profilers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log))
        return profilers


def log_events(path: Path) -> Counter[str]:
    """Warning and error events in a service's JSON log: a pipeline that retries is not keeping up."""
    events: Counter[str] = Counter()
    with contextlib.suppress(OSError), path.open(errors="replace") as log:
        for line in log:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
                events[f"{entry.get('level')}:{entry.get('event')}"] += 1
    return events


# ---- analysis -----------------------------------------------------------------------------------------


@dataclass
class Steady:
    window: tuple[float, float]  # epoch seconds
    offered: float
    sent_rate: float
    accepted_rate: float
    parsed_rate: float
    lag_ms: list[float]
    unparsed: int  # received in the window, still 'received' after the drain wait
    not_parsed_ok: Counter[str]  # received in the window, ended failed/ignored/...
    backlog: list[tuple[float, int]]  # (seconds after window start, packets) within the window
    backlog_slope: float  # packets per second
    backlog_max: int
    load_end: float  # epoch seconds of the last answer
    drain_s: float | None  # last parse after load_end; None when some packet was never parsed
    backlog_at_end: int | None
    actions_backlog: list[tuple[float, int]] = field(default_factory=list)  # parsed, runs not yet created
    actions_slope: float = 0.0
    runs_rate: float | None = None
    run_lag_ms: list[float] = field(default_factory=list)
    runs_drain_s: float | None = None
    runs_by_status: Counter[str] = field(default_factory=Counter)


def analyse(args: argparse.Namespace, p2: Phase2, actions: bool) -> Steady:
    load = p2.load
    w0, w1 = load.t0_wall + args.settle, load.t0_wall + args.steady
    span = w1 - w0
    sent = sum(1 for row in load.rows if w0 <= load.t0_wall + row[2] < w1)
    in_window = [p for p in p2.packets if w0 <= p[1] < w1]
    parsed_in_window = sum(1 for p in p2.packets if p[2] is not None and w0 <= p[2] < w1)
    lags = [(p[2] - p[1]) * 1000 for p in in_window if p[2] is not None and p[3] == "parsed"]
    unparsed = sum(1 for p in in_window if p[3] == "received")
    others = Counter(p[3] for p in in_window if p[3] not in ("parsed", "received"))
    backlog = [(s.at - w0, s.backlog) for s in p2.samples if w0 <= s.at <= w1]
    load_end = load.t0_wall + load.last_done
    parse_times = [p[2] for p in p2.packets if p[2] is not None]
    still = sum(1 for p in p2.packets if p[3] == "received")
    drain = None if still or not parse_times else max(0.0, max(parse_times) - load_end)
    after = [s for s in p2.samples if s.at >= load_end]
    result = Steady(
        window=(w0, w1),
        offered=p2.rate,
        sent_rate=sent / span,
        accepted_rate=len(in_window) / span,
        parsed_rate=parsed_in_window / span,
        lag_ms=lags,
        unparsed=unparsed,
        not_parsed_ok=others,
        backlog=backlog,
        backlog_slope=h.slope(backlog),
        backlog_max=max((b for _, b in backlog), default=0),
        load_end=load_end,
        drain_s=drain,
        backlog_at_end=after[0].backlog if after else None,
    )
    if actions:
        result.runs_rate = sum(1 for r in p2.runs if w0 <= r[0] < w1) / span
        result.run_lag_ms = [(r[0] - r[1]) * 1000 for r in p2.runs if w0 <= r[1] < w1]
        result.runs_by_status = Counter(r[2] for r in p2.runs)
        result.actions_backlog = [(t.at - w0, t.actions_pending) for t in p2.samples if w0 <= t.at <= w1]
        result.actions_slope = h.slope(result.actions_backlog)
        expected = sum(1 for p in p2.packets if p[3] == "parsed")
        if p2.runs and len(p2.runs) >= expected:
            result.runs_drain_s = max(0.0, max(r[0] for r in p2.runs) - load_end)
    return result


# ---- report -------------------------------------------------------------------------------------------


def _pf(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _ms(values: list[float], q: float) -> str:
    return f"{h.percentile(values, q):.0f}" if values else "-"


def print_report(args: argparse.Namespace, out: Outcome, actions: bool) -> bool:
    print()
    variant = variant_of(args)
    if variant:
        print(f"variant: {variant} (what-if diagnostics: not Hookbay as shipped)")
    p1 = out.phase1
    if p1 is not None:
        w = p1.wrk
        cpu = " ".join(f"{k}={v:.2f}" for k, v in p1.cpu.items())
        print(
            f"phase 1, capacity: {w.rps:.0f} req/s, p50 {w.p50:.1f} ms, p99 {w.p99:.1f} ms, "
            f"{w.ok} 2xx, {w.failures} non-2xx/errors over {w.seconds:.1f}s"
        )
        print(f"  cores busy: {cpu}")
        parsed_during = sum(1 for p in p1.packets if p[2] is not None and p[2] <= p1.t1)
        print(
            f"  parsed while wrk ran: {parsed_during / (p1.t1 - p1.t0):.0f} packets/s "
            f"({parsed_during} of {len(p1.packets)}); backlog when wrk stopped: {len(p1.packets) - parsed_during}"
        )
        if p1.drained_after is not None:
            left = [p[2] for p in p1.packets if p[2] is not None and p[2] > p1.t1]
            last = max((p[2] for p in p1.packets if p[2] is not None), default=p1.t1)
            rate = len(left) / (last - p1.t1) if last > p1.t1 else float("nan")
            print(
                f"  drained {p1.drained_after:.1f}s after wrk stopped; parser alone (receiver idle): {rate:.0f} packets/s"
            )
        if actions and p1.runs:
            print(
                f"  action runs: {len(p1.runs)}; receipt -> run created p50 {_ms([(r[0] - r[1]) * 1000 for r in p1.runs], 50)} ms"
            )
        print(
            f"  durability: 2xx answered {w.ok}, packets stored {p1.statuses.total()}  "
            f"{'ok' if p1.statuses.total() >= w.ok else 'MISMATCH'}"
        )

    passed = False
    p2 = out.phase2
    if p2 is not None:
        s = analyse(args, p2, actions)
        load = p2.load
        lat = load.latencies_ms()
        late = load.late_ms()
        print(
            f"\nphase 2, steady: offered {s.offered:.0f}/s for {args.steady:g}s over {load.connections} "
            f"connections; window = seconds {args.settle:g}-{args.steady:g} of the load ({s.window[1] - s.window[0]:.0f}s)"
        )
        print(
            f"  client: {len(load.ok_ids)} 2xx of {load.scheduled}; latency from due time p50 {_ms(lat, 50)} ms, "
            f"p99 {_ms(lat, 99)} ms, max {_ms(lat, 100)} ms; sent late p99 {_ms(late, 99)} ms, max {_ms(late, 100)} ms"
        )
        cpu = " ".join(f"{k}={v:.2f}" for k, v in p2.cpu.items())
        server = sum(v for k, v in p2.cpu_seconds.items() if k != "loadgen")
        accepted = sum(1 for row in load.rows if 200 <= row[4] < 300)
        print(f"  cores busy: {cpu}")
        # Per unit of the work each process did while the load ran (the parser and actions may lag).
        t_start, t_end = load.t0_wall, s.load_end
        parsed = sum(1 for p in p2.packets if p[2] is not None and t_start <= p[2] <= t_end)
        runs = sum(1 for r in p2.runs if t_start <= r[0] <= t_end)
        per = [
            f"receiver {p2.cpu_seconds['receiver'] / max(accepted, 1) * 1000:.2f} ms/packet received",
            f"parser {p2.cpu_seconds['parser'] / max(parsed, 1) * 1000:.2f} ms/packet parsed",
        ]
        if actions:
            per.append(f"actions {p2.cpu_seconds['actions'] / max(runs, 1) * 1000:.2f} ms/run created")
        per.append(f"postgres {p2.cpu_seconds['postgres'] / max(accepted, 1) * 1000:.2f} ms/packet received")
        print(f"  CPU while loaded: {'; '.join(per)}")
        print(
            f"  server CPU (receiver+parser{'+actions' if actions else ''}+postgres) per packet received: "
            f"{server / max(accepted, 1) * 1000:.2f} ms"
        )
        if p2.db:
            seq = ", ".join(
                f"{t} {p2.db.get(t + '.seq_scan', 0)} seq ({p2.db.get(t + '.seq_rows', 0)} rows) / "
                f"{p2.db.get(t + '.idx_scan', 0)} idx"
                for t in ("packets", "records", "action_runs")
            )
            print(
                f"  postgres, load start to drained: {p2.db.get('commits', 0)} commits "
                f"({p2.db.get('commits', 0) / max(accepted, 1):.1f} per packet); scans: {seq}"
            )
        slope_limit = TARGET_SLOPE_SHARE * s.offered
        drain = "not drained" if s.drain_s is None else f"{s.drain_s:.1f} s"
        keeps_up = (
            s.backlog_slope <= slope_limit
            and s.drain_s is not None
            and s.drain_s <= args.drain_target
            and s.unparsed == 0
        )
        p99 = h.percentile(s.lag_ms, 99)
        lag_ok = bool(s.lag_ms) and p99 < TARGET_P99_LAG_MS and s.unparsed == 0
        rows = [
            ("offered rate (scheduled)", f"{s.offered:.0f} /s", "", ""),
            ("sent by the client in the window", f"{s.sent_rate:.0f} /s", "", ""),
            ("accepted (received_at in window)", f"{s.accepted_rate:.0f} /s", "", ""),
            ("end to end: parsed (parsed_at in window)", f"{s.parsed_rate:.0f} /s", "", ""),
            ("lag receipt -> parsed p50", f"{_ms(s.lag_ms, 50)} ms", "", ""),
            (
                "lag receipt -> parsed p99",
                f"{_ms(s.lag_ms, 99)} ms",
                f"< {TARGET_P99_LAG_MS:.0f} ms",
                _pf(lag_ok),
            ),
            ("lag receipt -> parsed max", f"{_ms(s.lag_ms, 100)} ms", "", ""),
            (
                "backlog (received) first / last / max",
                f"{s.backlog[0][1] if s.backlog else '-'} / {s.backlog[-1][1] if s.backlog else '-'} / {s.backlog_max}",
                "",
                "",
            ),
            (
                "backlog slope over the window",
                f"{s.backlog_slope:+.1f} /s",
                f"<= {slope_limit:.1f} /s",
                _pf(s.backlog_slope <= slope_limit),
            ),
            (
                "backlog when the load stopped",
                f"{s.backlog_at_end if s.backlog_at_end is not None else '-'}",
                "",
                "",
            ),
            (
                "all parsed after the load stopped",
                drain,
                f"<= {args.drain_target:g} s",
                _pf(s.drain_s is not None and s.drain_s <= args.drain_target),
            ),
        ]
        if actions:
            runs_drain = "not done" if s.runs_drain_s is None else f"{s.runs_drain_s:.1f} s"
            rows += [
                ("action runs created (created_at in window)", f"{s.runs_rate:.0f} /s", "", ""),
                ("lag receipt -> action run p50", f"{_ms(s.run_lag_ms, 50)} ms", "", ""),
                ("lag receipt -> action run p99", f"{_ms(s.run_lag_ms, 99)} ms", "", ""),
                (
                    "actions backlog (parsed, no runs yet) first / last",
                    f"{s.actions_backlog[0][1] if s.actions_backlog else '-'} / "
                    f"{s.actions_backlog[-1][1] if s.actions_backlog else '-'}",
                    "",
                    "",
                ),
                ("actions backlog slope over the window", f"{s.actions_slope:+.1f} /s", "", ""),
                ("all action runs created after the load stopped", runs_drain, "", ""),
            ]
        width = max(len(r[0]) for r in rows)
        print(f"\n  {'metric':<{width}}  {'value':>16}  {'target':>12}  verdict")
        for name, value, target, verdict in rows:
            print(f"  {name:<{width}}  {value:>16}  {target:>12}  {verdict}")
        if s.unparsed:
            print(f"  ! {s.unparsed} packets received in the window were still unparsed at the end")
        if s.not_parsed_ok:
            print(f"  ! packets that ended otherwise: {dict(s.not_parsed_ok)}")
        if actions:
            print(f"  action runs by status: {dict(s.runs_by_status)}")
        print("\n  backlog samples (s after window start: packets received, not yet parsed):")
        print("   " + " ".join(f"{t:.0f}:{b}" for t, b in s.backlog))
        print(
            f"\n  durability: 2xx answered {len(load.ok_ids)}, stored {len(load.ok_ids) - p2.missing}, "
            f"missing {p2.missing}  {'ok' if p2.missing == 0 else 'MISMATCH'}  "
            f"(source holds {p2.statuses.total()}: {', '.join(f'{k} {v}' for k, v in sorted(p2.statuses.items()))})"
        )
        if s.sent_rate < MIN_SEND_SHARE * s.offered:
            out.problems.append(
                f"steady: the client sent only {s.sent_rate:.0f}/s of the {s.offered:.0f}/s offered "
                "(more --steady-connections, or a less busy machine)"
            )
        print(
            f"\nparser keeps up (slope <= 1% of offered, drained <= {args.drain_target:g}s): {_pf(keeps_up)}"
        )
        print(f"p99 receipt -> parsed lag < {TARGET_P99_LAG_MS / 1000:g} s: {_pf(lag_ok)}")
        if actions:
            actions_ok = s.actions_slope <= slope_limit and s.runs_drain_s is not None
            print(
                f"(not a target) actions keep up, same slope rule, all runs created within the drain wait: "
                f"{'yes' if actions_ok else 'NO'}"
            )
        passed = keeps_up and lag_ok
        print(f"overall: {_pf(passed)}")
    for name, events in out.logs.items():
        if events:
            print(f"{name} log warnings: {', '.join(f'{k} {v}' for k, v in events.most_common(5))}")
    if out.problems:
        print("\nINVALID run:")
        for problem in out.problems:
            print(f"  - {problem}")
    return passed and not out.problems


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    info = h.machine()
    print(f"command: {command_line(args)}")
    print(f"machine: {info['nproc']} cores, {info['cpu']}, load average {info['loadavg']}")
    print(f"started: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
    print(f"code:    {h.code_state()}")
    print(
        f"body:    {BODY_FILE.relative_to(h.REPO_ROOT)} ({BODY_FILE.stat().st_size} bytes, application/json)"
    )
    print(
        f"source:  format json, {'one action rule ' + json.dumps(LOG_RULE) if not args.no_actions else 'no action rules (--no-actions)'}"
    )
    wrk = h.wrk_command(
        "URL",
        script=LUA_SCRIPT.relative_to(h.REPO_ROOT),
        duration=args.capacity_duration,
        connections=args.connections,
        threads=args.threads,
    )
    print(f"phase 1: {shlex.join(wrk)}")
    print(
        "phase 2: python bench/_harness.py paced --url URL --body bench/order.json --rate RATE "
        f"--duration {args.steady:g} --connections {args.steady_connections} --out OUT.json "
        "(wrk2 is not packaged by Debian)"
    )
    workdir = Path(tempfile.mkdtemp(prefix="hookbay-pipeline-"))
    pipeline = Pipeline(args, workdir)
    try:
        with h.interrupts_as_exceptions():
            out = pipeline.run()
    except KeyboardInterrupt:
        print("\ninterrupted; every process started here was stopped", file=sys.stderr)
        return 130
    except h.BenchError as exc:
        print(f"\nbenchmark error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
            print(f"logs and raw results kept in {args.keep}")
        shutil.rmtree(workdir, ignore_errors=True)
    if getattr(pipeline, "paced_command_shown", None):
        print(f"phase 2 client: {pipeline.paced_command_shown}")
    passed = print_report(args, out, not args.no_actions)
    if out.problems:
        return 1
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
