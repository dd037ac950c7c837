"""SIGKILL the parser, then the actions service, while 500 packets stream in: nothing acknowledged
is lost, no packet gets a second record set, and no (rule, record) sends a second email."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from harness import UNLIMITED, SmtpSink, Stack, wait_until
from sqlalchemy import text

from hookbay.types.v1 import types_pb2

PACKETS = 500


def order(i: int) -> bytes:
    return json.dumps(
        {
            "id": i,
            "number": str(i),
            "billing": {"email": f"customer{i}@example.com", "first_name": f"C{i}"},
            "line_items": [{"id": i * 10 + k, "qty": k + 1, "taxes": [{"total": "0.10"}]} for k in range(2)],
        }
    ).encode()


RECORDS_PER_ORDER = 1 + 2 + 2  # root, two line items, one tax each


def test_sigkill_parser_and_actions_mid_stream(tmp_path: Path, database_url: str, smtp: SmtpSink) -> None:
    seed = int(os.environ.get("HOOKBAY_TEST_SEED") or random.randrange(1_000_000))
    print(f"seed={seed}")
    rng = random.Random(seed)
    stack = Stack(
        tmp_path,
        database_url,
        HOOKBAY_SMTP_URL=smtp.url,
        HOOKBAY_DISPATCH_IDLE_POLL="0.1",
        HOOKBAY_RETRY_BASE="0.2",
        HOOKBAY_RETRY_MAX="2",
        HOOKBAY_DISPATCH_LEASE="8",
        HOOKBAY_DISPATCH_DEADLINE="5",
        HOOKBAY_ACTIONS_LEASE="8",
        HOOKBAY_ACTIONS_DEADLINE="5",
        HOOKBAY_ACTION_LEASE="3",
        HOOKBAY_ACTION_POLL="0.2",
        HOOKBAY_ACTION_RETRY_BASE="0.2",
        HOOKBAY_LOG_LEVEL="info",
    )
    try:
        stack.pipeline()
        source = stack.create_source(
            "orders",
            format="json",
            settings=UNLIMITED,
            actions=[
                types_pb2.ActionRule(
                    name="confirm",
                    type="email",
                    when="billing.email",
                    to="{{ billing.email }}",
                    subject="Order {{ number }}",
                    body="Thanks {{ billing.first_name }}",
                ),
                types_pb2.ActionRule(name="audit", type="log", on="line_items"),
            ],
        )
        url = stack.url(source)
        acked: dict[str, int] = {}
        lock = threading.Lock()

        def send(indices: list[int]) -> None:
            with httpx.Client(timeout=10) as http:
                for i in indices:
                    for _attempt in range(50):
                        try:
                            response = http.post(
                                url, content=order(i), headers={"Content-Type": "application/json"}
                            )
                        except httpx.TransportError:
                            time.sleep(0.1)
                            continue
                        if response.status_code == 200:
                            with lock:
                                acked[response.json()["id"]] = i
                            break
                        time.sleep(0.1)

        senders = [threading.Thread(target=send, args=(list(range(k, PACKETS, 4)),)) for k in range(4)]
        for thread in senders:
            thread.start()
        parser = next(p for p in stack.procs if p.name == "parser")
        actions = next(p for p in stack.procs if p.name == "actions")
        time.sleep(rng.uniform(0.5, 1.5))
        parser.kill()
        time.sleep(rng.uniform(0.2, 1.0))
        stack.parser()
        time.sleep(rng.uniform(0.5, 1.5))
        actions.kill()
        time.sleep(rng.uniform(0.2, 1.0))
        stack.actions()
        for thread in senders:
            thread.join(120)
        assert len(acked) == PACKETS, f"seed={seed}: only {len(acked)} of {PACKETS} acknowledged"

        def drained() -> bool:
            return (
                stack.scalar("SELECT count(*) FROM packets WHERE status = 'received'") == 0
                and stack.scalar("SELECT count(*) FROM packets WHERE actions_state = 'pending'") == 0
                and stack.scalar(
                    "SELECT count(*) FROM action_runs WHERE status IN ('pending', 'running', 'failed')"
                )
                == 0
            )

        wait_until(drained, timeout=180, interval=0.5, what=f"the pipeline to drain (seed={seed})")

        with stack.db.connect() as conn:
            statuses = {
                str(uuid.UUID(str(row.id))): row.status
                for row in conn.execute(text("SELECT id, status FROM packets"))
            }
            records = Counter(
                str(uuid.UUID(str(row.packet_id)))
                for row in conn.execute(text("SELECT packet_id FROM records"))
            )
            runs = conn.execute(text("SELECT rule, status, last_error FROM action_runs")).all()
        lost = [pid for pid in acked if pid not in statuses]
        assert not lost, f"seed={seed}: acknowledged packets lost: {lost[:5]}"
        assert set(statuses) == set(acked), f"seed={seed}: packets nobody acknowledged"
        assert all(statuses[pid] == "parsed" for pid in acked), f"seed={seed}: {Counter(statuses.values())}"
        assert all(records[pid] == RECORDS_PER_ORDER for pid in acked), (
            f"seed={seed}: a packet has a second record set"
        )

        email_runs = [r for r in runs if r.rule == "confirm"]
        log_runs = [r for r in runs if r.rule == "audit"]
        assert len(email_runs) == PACKETS
        assert len(log_runs) == PACKETS * 2
        recipients = Counter(str(m["To"]) for m in smtp.messages)
        duplicates = {to: n for to, n in recipients.items() if n > 1}
        assert not duplicates, f"seed={seed}: emails sent twice: {duplicates}"
        assert len(set(m["Message-ID"] for m in smtp.messages)) == len(smtp.messages)
        sent = sum(1 for r in email_runs if r.status == "succeeded")
        interrupted = [r for r in email_runs if r.status == "dead"]
        assert len(smtp.messages) >= sent
        assert sent + len(interrupted) == PACKETS
        # A run cut off mid-send is not retried by itself: at most one email, and the reason says why.
        assert all("interrupted" in (r.last_error or "") for r in interrupted), interrupted[:3]
        assert len(interrupted) <= 10, f"seed={seed}: {len(interrupted)} runs interrupted"
        print(f"seed={seed} emails={len(smtp.messages)} interrupted={len(interrupted)}")
    finally:
        stack.close()
