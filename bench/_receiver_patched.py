"""Diagnostics only: ``python -m hookbay_receiver`` with what-if patches applied in memory.

A profile says where time goes; a patch says how much a proposed change would win, measured the same
way, without editing services/. ``BENCH_RECEIVER_PATCHES`` is a comma-separated list of:

``nodelay``
    bind the HTTP socket with ``proto=IPPROTO_TCP``. ``hookbay_receiver.app.bind_http`` creates it
    with ``proto == 0``, and CPython 3.11's asyncio sets TCP_NODELAY only on accepted sockets whose
    ``proto`` is IPPROTO_TCP, so without it each keep-alive response waits for a delayed ACK (~40 ms).
``gc``
    ``gc.set_threshold(100_000, 50, 1000)``: fewer collections. Requests wait tens of ms for their
    group commit, so their objects survive into the old generation and trigger full collections,
    each of which walks the whole heap FastAPI + SQLAlchemy + gRPC leave behind (~100 ms here).
``gcfreeze``
    ``gc.freeze()`` once the receiver's modules are imported: full collections skip that heap.
``gcstats``
    changes nothing; times every collection and prints a summary to the log at exit ("bench-gc:").

Figures measured through a patch are never the receiver's own: bench/receiver.py labels them.
"""

from __future__ import annotations

import gc
import importlib
import os
import socket

# bench/receiver.py imports this module for PATCHES: Hookbay itself is imported only when patching.
PATCHES = {"nodelay", "gc", "gcfreeze", "gcstats"}


def bind_http_nodelay(host: str, port: int) -> socket.socket:
    """``app.bind_http`` with the one change proposed: an explicit IPPROTO_TCP."""
    from hookbay_common.grpc_server import PortInUse

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port} for HTTP: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def apply(patches: set[str]) -> None:
    unknown = patches - PATCHES
    if unknown:
        raise SystemExit(f"unknown receiver patches: {', '.join(sorted(unknown))}")
    if "nodelay" in patches:
        from hookbay_receiver import app

        app.bind_http = bind_http_nodelay  # run() looks it up in the module at call time
    if "gc" in patches:
        gc.set_threshold(100_000, 50, 1000)  # CPython's default is (700, 10, 10)
    if "gcfreeze" in patches:
        # Importing the receiver builds most of its heap: FastAPI, SQLAlchemy, gRPC, the models.
        importlib.import_module("hookbay_receiver.app")
        gc.collect()
        gc.freeze()
    if "gcstats" in patches:
        record_gc_pauses()


def record_gc_pauses() -> None:
    """Time every garbage collection; print a line per generation at exit (to the receiver's log)."""
    import atexit
    import sys
    import time

    started: list[float] = []
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses[info["generation"]].append(time.perf_counter() - started.pop())

    def report() -> None:
        full = pauses[2]
        if full:
            # In order of occurrence: a pause that keeps growing means a heap that keeps growing.
            sequence = " ".join(f"{t * 1000:.0f}" for t in full)
            print(f"bench-gc: full collections in order (ms): {sequence}", file=sys.stderr)
        print(f"bench-gc: {len(gc.get_objects())} objects tracked at exit", file=sys.stderr)
        for generation, times in pauses.items():
            if times:
                times.sort()
                print(
                    f"bench-gc: generation {generation}: {len(times)} collections, "
                    f"total {sum(times) * 1000:.0f} ms, median {times[len(times) // 2] * 1000:.2f} ms, "
                    f"max {times[-1] * 1000:.1f} ms",
                    file=sys.stderr,
                )

    gc.callbacks.append(callback)
    atexit.register(report)


if __name__ == "__main__":
    apply({p for p in os.environ.get("BENCH_RECEIVER_PATCHES", "").split(",") if p})
    from hookbay_receiver.__main__ import main

    main()
