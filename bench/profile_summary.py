"""Summarise py-spy collapsed stacks (``bench/receiver.py --profile DIR``) into the receiver's cost centres.

    uv run python bench/profile_summary.py DIR/receiver-r1.collapsed [--top 15]

Each sample is charged to one bucket: the first rule in ``RULES`` that matches wins, so Hookbay's own
callers take precedence over the libraries they call (SQLAlchemy under the dispatcher's release is
"dispatcher: release", under the group commit it is "group commit"), and only stacks with no Hookbay
frame fall through to the framework buckets. Shares are of all samples py-spy kept (non-idle, or with
``--profile-gil`` GIL-holding only), split by thread.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (bucket, pattern one of the frames must match, pattern the innermost frame must match or None).
RULES: list[tuple[str, str, str | None]] = [
    ("logging (structlog render + write)", r"structlog/|PrintLogger|hookbay_common/logging\.py", None),
    ("dispatcher: release (per-packet UPDATEs)", r"Dispatcher\._release", None),
    ("dispatcher: claim", r"Dispatcher\._claim", None),
    ("dispatcher: parser gRPC call", r"Dispatcher\.|grpc/", None),
    ("archiver", r"Archiver\.", None),
    ("source lookup", r"SourceCache\.", None),
    ("group commit insert: psycopg", r"PgCommitter\.|ThreadCommitter\.|insert_packets", r"psycopg/"),
    ("group commit insert: SQLAlchemy, other", r"PgCommitter\.|ThreadCommitter\.|insert_packets", None),
    ("group commit: queue and hand-off", r"GroupCommitWriter\.", None),
    ("intake: row build (uuid7, sha256, dict)", r"IntakeService\.accept", None),
    ("receive handler (headers, Incoming)", r"hookbay_receiver/http\.py", None),
    ("FastAPI/Starlette", r"fastapi/|starlette/", None),
    ("uvicorn/httptools", r"uvicorn/", None),
    ("asyncio loop + sockets", r"asyncio/|selectors\.py", None),
    ("thread pool plumbing", r"concurrent/futures|threading\.py", None),
]
_COMPILED = [(name, re.compile(any_), re.compile(leaf) if leaf else None) for name, any_, leaf in RULES]


def bucket_of(frames: list[str]) -> str:
    for name, any_frame, leaf in _COMPILED:
        if any(any_frame.search(f) for f in frames) and (
            leaf is None or (frames and leaf.search(frames[-1]))
        ):
            return name
    return "other"


def thread_of(frames: list[str]) -> str:
    # "thread (1234): db_3" -> "db" ; "MainThread" stays. Numbered pool threads are one pool.
    head = frames[0].split(": ", 1)[-1] if frames else "?"
    return re.sub(r"_\d+$", "", head)


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str], Counter[tuple[str, str]]]:
    total = 0
    buckets: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    per_thread: Counter[tuple[str, str]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        bucket = bucket_of(frames[1:])
        buckets[bucket] += n
        threads[thread_of(frames)] += n
        per_thread[(thread_of(frames), bucket)] += n
    return total, buckets, threads, per_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    for path in args.files:
        total, buckets, threads, per_thread = summarise(path)
        print(f"{path}: {total} samples")
        print("  by thread: " + ", ".join(f"{t} {100 * n / total:.1f}%" for t, n in threads.most_common()))
        for name, n in buckets.most_common(args.top):
            split = ", ".join(
                f"{t} {100 * c / total:.1f}%" for (t, b), c in per_thread.most_common() if b == name
            )
            print(f"  {100 * n / total:5.1f}%  {name:<48} [{split}]")
        print()


if __name__ == "__main__":
    main()
