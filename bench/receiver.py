"""Receiver throughput: the real Hookbay receiver on PostgreSQL against a do-nothing FastAPI baseline.

Both are loaded by wrk on loopback with the same ~1 KB JSON order. The receiver acknowledges only
what PostgreSQL has committed (group commit, synchronous_commit=on), so its figure is "durable
receipts per second". The baseline (bench/baseline_app.py) runs the same uvicorn settings and only
reads the body, so receiver/baseline is the share of the HTTP stack's throughput Hookbay keeps.

Three kinds of run:
- ``baseline``: the bare FastAPI endpoint;
- ``receiver``: the receiver as an intake replica (HOOKBAY_DISPATCH_ENABLED=false, no parser): the
  durable-acknowledgement path the targets are about;
- ``pipeline``: the receiver as shipped with its dispatcher on and the parser parsing beside it,
  all on the same cores as wrk and PostgreSQL. Printed for information: its figure is mostly how much
  CPU the parse pipeline leaves over on this machine (bench/pipeline.py measures the pipeline).

Runs are interleaved (baseline, receiver, pipeline, baseline, ...) so that drift on a shared machine
hits all; each receiver round gets a fresh database and processes, so rounds are alike.

    uv run python bench/receiver.py [--duration 15] [--connections 64] [--rounds 2] [--check]

A non-2xx answer, a socket error or fewer stored packets than 2xx answers makes the run INVALID
(exit 1 always). Missing the performance targets prints FAIL, and exits 1 only with --check.
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
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import _harness as h
from _receiver_patched import PATCHES

TARGET_RATIO = 0.6
TARGET_P99_MS = 50.0
DEFAULT_SERVER_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BODY_FILE = h.BENCH_DIR / "order.json"
LUA_SCRIPT = h.BENCH_DIR / "post_json.lua"


KINDS = ("baseline", "receiver", "pipeline")


@dataclass
class Run:
    kind: str  # one of KINDS
    round: int
    wrk: h.WrkResult
    cpu: dict[str, float] = field(default_factory=dict)  # cores busy during the measured run
    stored: int | None = None  # receiver: packets in PostgreSQL for the measured source
    statuses: Counter[str] = field(default_factory=Counter)  # ... of which, by status
    db_commits: int | None = None  # transactions committed in the scratch database during the run
    batches: tuple[int, int] | None = None  # (never-dispatched rows, distinct inserting transactions)
    log_lines: int | None = None
    log_events: Counter[str] = field(default_factory=Counter)
    exit_code: int | None = None
    problems: list[str] = field(default_factory=list)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Hookbay receiver vs. a bare FastAPI endpoint, under wrk.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=15, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (keep-alive)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the kinds of run, interleaved")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--pg", default=DEFAULT_SERVER_DSN, help="PostgreSQL server to create scratch DBs on")
    parser.add_argument("--only", choices=KINDS, help="run one kind only (diagnostics; no ratio)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the informational pipeline runs")
    parser.add_argument(
        "--receiver-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the receiver, e.g. HOOKBAY_DISPATCH_ENABLED=false (diagnostics)",
    )
    parser.add_argument(
        "--receiver-patch",
        action="append",
        default=[],
        choices=sorted(PATCHES),
        help="run the receiver with a what-if patch from bench/_receiver_patched.py (diagnostics)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="attach py-spy to the server during each measured run; collapsed stacks go to DIR",
    )
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="py-spy executable")
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="sample only the thread holding the GIL: shows who keeps the event loop waiting",
    )
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and wrk output in DIR")
    args = parser.parse_args(argv)
    for item in args.receiver_env:
        if "=" not in item:
            parser.error(f"--receiver-env wants KEY=VALUE, got {item!r}")
    if args.profile and not (shutil.which(args.py_spy) or Path(args.py_spy).is_file()):
        parser.error(f"--profile needs py-spy; {args.py_spy!r} not found (see bench/README.md)")
    if args.rounds < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--rounds must be >= 1, --duration > 0 and --warmup >= 0")
    return args


def command_line(args: argparse.Namespace) -> str:
    """The invocation with every default spelled out, so a figure can be reproduced exactly."""
    parts = [
        "uv run python bench/receiver.py",
        f"--duration {args.duration:g} --warmup {args.warmup:g}",
        f"--connections {args.connections} --threads {args.threads} --rounds {args.rounds}",
    ]
    if args.only:
        parts.append(f"--only {args.only}")
    if args.no_pipeline:
        parts.append("--no-pipeline")
    parts += [f"--receiver-env {shlex.quote(e)}" for e in args.receiver_env]
    parts += [f"--receiver-patch {p}" for p in args.receiver_patch]
    if args.profile:
        parts.append(f"--profile {shlex.quote(str(args.profile))}")
    if args.profile_gil:
        parts.append("--profile-gil")
    if args.pg != DEFAULT_SERVER_DSN:
        parts.append(f"--pg {shlex.quote(args.pg)}")
    if args.check:
        parts.append("--check")
    return " ".join(parts)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.wrk_env = {"BENCH_BODY_FILE": str(BODY_FILE)}

    def load(self, url: str, seconds: float) -> h.WrkResult:
        return h.run_wrk(
            url,
            script=LUA_SCRIPT,
            duration=seconds,
            connections=self.args.connections,
            threads=self.args.threads,
            env=self.wrk_env,
        )

    def measure(
        self,
        url: str,
        server: h.Service,
        label: str,
        *,
        others: dict[str, h.CpuMeter] | None = None,
        also_profile: dict[str, h.Service] | None = None,
        warmup_url: str | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> Run:
        """Warm up (discarded), then one measured wrk run with CPU meters and an optional profiler."""
        if self.args.warmup > 0:
            self.load(warmup_url or url, self.args.warmup)
        if on_start is not None:
            on_start()
        server.check_alive()
        meters = {"server": h.CpuMeter([server.pid]), **(others or {})}
        profilers = self._start_profilers({"server": server, **(also_profile or {})}, label)
        try:
            for meter in meters.values():
                meter.start()
            result = self.load(url, self.args.duration)
            for meter in meters.values():
                meter.stop()
            for profiler in profilers:
                profiler.wait(timeout=60)
        finally:
            for profiler in profilers:
                if profiler.poll() is None:
                    profiler.kill()
                    profiler.wait()
        cpu = {name: meter.cores for name, meter in meters.items()}
        cpu["wrk"] = result.wrk_cpu_seconds / result.seconds
        kind, round_ = label.rsplit("-r", 1)
        run = Run(kind, int(round_), result, cpu)
        if result.failures:
            run.problems.append(
                f"{result.failures} requests without a 2xx answer "
                f"(statuses {result.lua_codes or '-'}, socket errors {result.socket_errors})"
            )
        if result.lua_ok is None:
            run.problems.append("the Lua done() hook did not report (is post_json.lua in use?)")
        self._save(label, result)
        return run

    def _start_profilers(self, services: dict[str, h.Service], label: str) -> list[subprocess.Popen[bytes]]:
        if self.args.profile is None:
            return []
        self.args.profile.mkdir(parents=True, exist_ok=True)
        profilers = []
        for name, service in services.items():
            stem = label if name == "server" else f"{label}-{name}"
            # --nonblocking: sample without pausing the process, so profiling costs it little throughput.
            # --threads: keeps the event loop apart from the worker threads in the stacks.
            command = [
                self.args.py_spy,
                *("record", "--pid", str(service.pid), "--duration", str(int(self.args.duration))),
                *("--rate", "250", "--nonblocking", "--threads", "--format", "raw"),
                *("--output", str(self.args.profile / f"{stem}.collapsed")),
                *(["--gil"] if self.args.profile_gil else []),
            ]
            with (self.workdir / f"{stem}.py-spy.log").open("wb") as log:
                profilers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log))
        return profilers

    def _save(self, label: str, result: h.WrkResult) -> None:
        (self.workdir / f"{label}.wrk.txt").write_text(shlex.join(result.command) + "\n\n" + result.output)

    # ---- the two sides -------------------------------------------------------------------------------

    def baseline(self, round_: int) -> Run:
        label = f"baseline-r{round_}"
        port = h.free_port()
        argv = [sys.executable, str(h.BENCH_DIR / "baseline_app.py"), "--port", str(port)]
        with h.running("baseline", argv, log_path=self.workdir / f"{label}.log") as server:
            h.wait_http_ok(f"http://127.0.0.1:{port}/readyz", server)
            run = self.measure(f"http://127.0.0.1:{port}/V1/Data/{uuid.uuid4()}", server, label)
        run.exit_code = server.popen.returncode
        return run

    def receiver(self, round_: int, *, pipeline: bool = False) -> Run:
        from hookbay_common.db.migrate import upgrade

        kind = "pipeline" if pipeline else "receiver"
        label = f"{kind}-r{round_}"
        with h.scratch_database(self.args.pg) as database:
            dsn = h.with_database(self.args.pg, database)
            db_url = "postgresql+psycopg://" + dsn.split("://", 1)[1]
            upgrade(db_url)
            http_port, admin_port, parser_port = h.free_port(), h.free_port(), h.free_port()
            env = {
                "HOOKBAY_DATABASE_URL": db_url,
                "HOOKBAY_RAW_STORE_URL": f"file://{self.workdir / f'{label}-raw'}",
                "HOOKBAY_HTTP_HOST": "127.0.0.1",
                "HOOKBAY_HTTP_PORT": str(http_port),
                "HOOKBAY_ADMIN_HOST": "127.0.0.1",
                "HOOKBAY_ADMIN_PORT": str(admin_port),
                "HOOKBAY_PARSER_HOST": "127.0.0.1",
                "HOOKBAY_PARSER_PORT": str(parser_port),
                "HOOKBAY_PARSER_ADDR": f"127.0.0.1:{parser_port}",
                # No actions service runs here (the bench source has no action rules); a free port
                # keeps the parser from ever reaching some other process on the default one.
                "HOOKBAY_ACTIONS_ADDR": f"127.0.0.1:{h.free_port()}",
                "HOOKBAY_LOG_FORMAT": "json",
            }
            # An intake replica: the packets wait in the outbox for replicas that dispatch.
            intake = {} if pipeline else {"HOOKBAY_DISPATCH_ENABLED": "false"}
            receiver_env = {**env, **intake, **dict(e.split("=", 1) for e in self.args.receiver_env)}
            parser_argv = [sys.executable, "-m", "hookbay_parser"]
            receiver_argv = [sys.executable, "-m", "hookbay_receiver"]
            if self.args.receiver_patch:
                receiver_argv = [sys.executable, str(h.BENCH_DIR / "_receiver_patched.py")]
                receiver_env["BENCH_RECEIVER_PATCHES"] = ",".join(self.args.receiver_patch)
            log_path = self.workdir / f"{label}.log"
            # Nested so that the receiver stops first (committing what it acknowledged), then the
            # parser, and the database is dropped last.
            with contextlib.ExitStack() as stack:
                others = {"postgres": h.CpuMeter(comm="postgres")}
                also_profile: dict[str, h.Service] = {}
                if pipeline:
                    parser = stack.enter_context(
                        h.running(
                            "parser", parser_argv, log_path=self.workdir / f"{label}-parser.log", env=env
                        )
                    )
                    h.wait_tcp("127.0.0.1", parser_port, parser)
                    others["parser"] = h.CpuMeter([parser.pid])
                    also_profile["parser"] = parser
                with h.running("receiver", receiver_argv, log_path=log_path, env=receiver_env) as receiver:
                    h.wait_http_ok(f"http://127.0.0.1:{http_port}/readyz", receiver)
                    warm_url, _ = create_source(admin_port, f"bench-warmup-{round_}")
                    url, source_id = create_source(admin_port, f"bench-measured-{round_}")
                    commits_before: list[int] = []
                    # Warm up on another source, so the count below covers exactly the measured run.
                    run = self.measure(
                        url,
                        receiver,
                        label,
                        others=others,
                        also_profile=also_profile,
                        warmup_url=warm_url,
                        on_start=lambda: commits_before.append(committed_transactions(dsn)),
                    )
                    # Counted while the receiver still runs: every 2xx must already be committed.
                    run.statuses = count_packets(dsn, source_id)
                    run.stored = run.statuses.total()
                    run.db_commits = committed_transactions(dsn) - commits_before[0]
                    run.batches = insert_batches(dsn, source_id)
                    receiver.check_alive()
                run.exit_code = receiver.popen.returncode
        if run.stored < run.wrk.ok:
            run.problems.append(f"only {run.stored} packets stored for {run.wrk.ok} 2xx answers")
        if run.exit_code != 0:
            run.problems.append(f"the receiver exited with {run.exit_code} on SIGTERM")
        run.log_lines, run.log_events = log_summary(log_path)
        return run


# The per-source rate limit (default 50/s, burst 100) would answer 429 to nearly all of wrk's load:
# this benchmark measures capacity, so the source allows the most the settings accept. The limiter
# itself still runs on every request, so its cost is included.
SOURCE_SETTINGS = {"rate_limit": {"rate": 100_000, "burst": 1_000_000}}


def create_source(admin_port: int, name: str) -> tuple[str, str]:
    """Create a source through the admin gRPC API; return (URL to POST to, source id)."""
    import grpc
    from google.protobuf import struct_pb2

    from hookbay.admin.v1 import admin_service_pb2 as pb
    from hookbay.admin.v1 import admin_service_pb2_grpc as pb_grpc

    settings = struct_pb2.Struct()
    settings.update(SOURCE_SETTINGS)
    request = pb.CreateSourceRequest(name=name, format="json", settings=settings)
    with grpc.insecure_channel(f"127.0.0.1:{admin_port}") as channel:
        source = pb_grpc.AdminServiceStub(channel).CreateSource(request, timeout=15)
    return source.url, source.id


def count_packets(dsn: str, source_id: str) -> Counter[str]:
    """Packets stored for the source, by status: the total is the durability check, the split shows
    how far the parser got behind while the receiver was loaded."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM packets WHERE source_id = %s GROUP BY status", (source_id,)
        ).fetchall()
    return Counter({status: int(n) for status, n in rows})


def committed_transactions(dsn: str) -> int:
    """Transactions committed in this database so far (PostgreSQL flushes these counters about once
    a second, close enough over a 15 s run)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")  # our own backend's pending counts
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def insert_batches(dsn: str, source_id: str) -> tuple[int, int]:
    """How many rows each group commit carried: rows inserted by one transaction share its ``xmin``.

    Only rows the dispatcher never touched still carry the inserting transaction's xmin (an UPDATE
    writes a new row version), so with the dispatcher on this sees the newest rows only.
    """
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM packets WHERE source_id = %s AND attempts = 0",
            (source_id,),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def log_summary(path: Path) -> tuple[int, Counter[str]]:
    """Lines in the receiver's JSON log, and how many of each event: logging is part of the cost."""
    events: Counter[str] = Counter()
    lines = 0
    with path.open(errors="replace") as log:
        for line in log:
            lines += 1
            try:
                events[json.loads(line).get("event", "?")] += 1
            except (json.JSONDecodeError, AttributeError):
                events["(not json)"] += 1
    return lines, events


# ---- report ------------------------------------------------------------------------------------------


def print_report(args: argparse.Namespace, runs: list[Run]) -> bool:
    """Print the table and verdicts; return False when the run is invalid or misses a target."""
    print()
    variant = variant_of(args)
    if variant:
        print(f"receiver variant: {variant} (diagnostics: not the receiver as shipped)")
    # CPU per request is steadier than req/s on a shared machine: it does not depend on how much of
    # the CPU the neighbours left us, only on how much work each request costs.
    print(
        f"{'run':<14}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'2xx':>10}{'non-2xx':>9}"
        f"{'srv cpu ms/req':>16}  cpu (cores busy)"
    )
    for run in runs:
        cpu = " ".join(f"{k}={v:.2f}" for k, v in run.cpu.items())
        per_request = run.cpu["server"] * run.wrk.seconds / max(run.wrk.requests, 1) * 1000
        print(
            f"{run.kind + ' r' + str(run.round):<14}{run.wrk.rps:>10.0f}{run.wrk.p50:>9.2f}{run.wrk.p99:>9.2f}"
            f"{run.wrk.ok:>10}{run.wrk.failures:>9}{per_request:>16.3f}  {cpu}"
        )
    medians: dict[str, tuple[float, float, float]] = {}
    for kind in KINDS:
        mine = [r for r in runs if r.kind == kind]
        if mine:
            medians[kind] = (
                h.median([r.wrk.rps for r in mine]),
                h.median([r.wrk.p50 for r in mine]),
                h.median([r.wrk.p99 for r in mine]),
            )
            rps, p50, p99 = medians[kind]
            print(f"{kind + ' median':<14}{rps:>10.0f}{p50:>9.2f}{p99:>9.2f}")

    receiver_runs = [r for r in runs if r.kind != "baseline"]
    if receiver_runs:
        print("\ndurable acknowledgement check (measured source only):")
        for run in receiver_runs:
            verdict = "ok" if run.stored is not None and run.stored >= run.wrk.ok else "MISMATCH"
            print(
                f"  {run.kind} r{run.round}: 2xx answered by wrk = {run.wrk.ok}, packets stored = {run.stored}"
                f"  {verdict}"
                f"  (by status: {', '.join(f'{k} {v}' for k, v in sorted(run.statuses.items()))})"
            )
        for run in receiver_runs:
            rows, transactions = run.batches or (0, 0)
            batch = (
                f"{rows / transactions:.1f} rows per group commit over {rows} never-dispatched rows"
                if transactions
                else "n/a"
            )
            print(
                f"  {run.kind} r{run.round} postgres: {(run.db_commits or 0) / run.wrk.seconds:.0f} commits/s "
                f"in the scratch database; {batch}"
            )
        for run in receiver_runs:
            top = ", ".join(f"{event} {n}" for event, n in run.log_events.most_common(4))
            print(f"  {run.kind} r{run.round} receiver log: {run.log_lines} lines ({top})")

    problems = [f"{r.kind} r{r.round}: {p}" for r in runs for p in r.problems]
    passed = True
    print()
    if "baseline" in medians and "receiver" in medians:
        ratio = medians["receiver"][0] / medians["baseline"][0]
        ok_ratio = ratio >= TARGET_RATIO
        ok_p99 = medians["receiver"][2] <= TARGET_P99_MS
        passed = ok_ratio and ok_p99
        print(f"ratio receiver/baseline req/s: {ratio:.2f}  (target >= {TARGET_RATIO})  {_pf(ok_ratio)}")
        print(
            f"receiver p99: {medians['receiver'][2]:.2f} ms  (target <= {TARGET_P99_MS:g} ms)  {_pf(ok_p99)}"
        )
        print(f"overall: {_pf(passed)}")
    if "baseline" in medians and "pipeline" in medians:
        print(
            f"for information, pipeline/baseline req/s: {medians['pipeline'][0] / medians['baseline'][0]:.2f}"
            f" (p99 {medians['pipeline'][2]:.2f} ms): the receiver as shipped, sharing the cores with the parser"
        )
    if problems:
        print("\nINVALID run:")
        for problem in problems:
            print(f"  - {problem}")
    return passed and not problems


def variant_of(args: argparse.Namespace) -> str:
    return " ".join([*args.receiver_env, *(f"patch:{p}" for p in args.receiver_patch)])


def _pf(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    info = h.machine()
    started = datetime.now(UTC)
    print(f"command: {command_line(args)}")
    print(f"machine: {info['nproc']} cores, {info['cpu']}, load average {info['loadavg']}")
    print(f"started: {started:%Y-%m-%d %H:%M:%S} UTC")
    print(f"code:    {h.code_state()}")
    print(
        f"body:    {BODY_FILE.relative_to(h.REPO_ROOT)} ({BODY_FILE.stat().st_size} bytes, application/json)"
    )
    print(
        "wrk:     "
        + shlex.join(
            h.wrk_command(
                "URL",
                script=LUA_SCRIPT.relative_to(h.REPO_ROOT),
                duration=args.duration,
                connections=args.connections,
                threads=args.threads,
            )
        )
    )
    workdir = Path(tempfile.mkdtemp(prefix="hookbay-bench-"))
    bench = Bench(args, workdir)
    runs: list[Run] = []
    sides = [args.only] if args.only else [k for k in KINDS if not (args.no_pipeline and k == "pipeline")]
    try:
        with h.interrupts_as_exceptions():
            for round_ in range(1, args.rounds + 1):
                for side in sides:
                    print(f"... {side} round {round_}/{args.rounds}", flush=True)
                    run = (
                        bench.baseline(round_)
                        if side == "baseline"
                        else bench.receiver(round_, pipeline=side == "pipeline")
                    )
                    print(
                        f"    {run.wrk.rps:.0f} req/s, p50 {run.wrk.p50:.2f} ms, p99 {run.wrk.p99:.2f} ms",
                        flush=True,
                    )
                    runs.append(run)
    except KeyboardInterrupt:
        print("\ninterrupted; every process started here was stopped", file=sys.stderr)
        return 130
    except h.BenchError as exc:
        print(f"\nbenchmark error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
            print(f"logs and wrk output kept in {args.keep}")
        shutil.rmtree(workdir, ignore_errors=True)
    passed = print_report(args, runs)
    if any(r.problems for r in runs):
        return 1
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
