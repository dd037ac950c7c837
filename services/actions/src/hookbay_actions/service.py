"""Running actions: create one run per (rule, matching record), execute runs, retry with backoff.

Runs are created with an insert that skips existing (source, rule, packet, ordinal) keys, in the
same transaction that takes the packet off the parser's outbox, so a repeated hand-off or a re-parse
creates nothing new. A run is claimed ('running', with a lease) before it executes and finished
after. A run found still 'running' after its lease belongs to a process that died mid-run: a log
run is settled as done (its effect is the run itself), but an email run may or may not have gone
out, so it is not sent again automatically — it goes to 'dead' with that reason, to be retried by
hand. That is how each (rule, record) sends at most one email.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import Engine

from hookbay_actions import repository
from hookbay_actions.mailer import PermanentError, SmtpTarget, compose, send
from hookbay_common.db.models import ActionRun, ActionRunStatus, utcnow
from hookbay_common.outbox import backoff
from hookbay_common.rules import CompiledRule, nested

log = structlog.get_logger("hookbay.actions")
INTERRUPTED = (
    "interrupted while running; an email may or may not have been sent, so it is not resent automatically"
)


def message_id(source_id: uuid.UUID, rule: str, packet_id: uuid.UUID, ordinal: int) -> str:
    digest = hashlib.sha256(f"{source_id}|{rule}|{packet_id}|{ordinal}".encode()).hexdigest()[:40]
    return f"<{digest}@hookbay>"


class ActionsService:
    def __init__(
        self,
        engine: Engine,
        *,
        smtp: SmtpTarget,
        mail_from: str,
        smtp_timeout: float,
        max_attempts: int,
        retry_base: float,
        retry_max: float,
        lease: float,
    ) -> None:
        self._engine = engine
        self._smtp = smtp
        self._mail_from = mail_from
        self._smtp_timeout = smtp_timeout
        self._max_attempts = max_attempts
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._lease = lease

    # -- creating runs ----------------------------------------------------------------------------

    def create_runs(self, packet_id: uuid.UUID) -> int:
        """Match the source's rules against the packet's records and create the runs (idempotent)."""
        now = utcnow()
        with self._engine.begin() as conn:
            packet = repository.packet_records(conn, packet_id)
            if packet is None:
                return 0
            rules = [CompiledRule(rule) for rule in packet.rules]
            rows = []
            for record_type, ordinal, data in packet.records:
                view = nested(data)
                for rule in rules:
                    if not _matches(rule, record_type, view):
                        continue
                    rows.append(
                        {
                            "id": uuid.uuid4(),
                            "source_id": packet.source_id,
                            "rule": rule.name,
                            "action_type": rule.rule.type,
                            "packet_id": packet_id,
                            "record_ordinal": ordinal,
                            "status": ActionRunStatus.PENDING,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "message_id": message_id(packet.source_id, rule.name, packet_id, ordinal)
                            if rule.rule.type == "email"
                            else None,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
            repository.create_runs(conn, rows)
            repository.mark_actions_done(conn, packet_id)
        return len(rows)

    # -- executing runs ---------------------------------------------------------------------------

    def run_due(self, limit: int = 50, packet_id: uuid.UUID | None = None) -> list[ActionRun]:
        """Claim due runs and execute them; returns the runs as claimed."""
        now = utcnow()
        with self._engine.begin() as conn:
            claimed = repository.claim_runs(conn, now, now + timedelta(seconds=self._lease), limit, packet_id)
        for run in claimed:
            self._execute(run)
        return claimed

    def settle_interrupted(self) -> int:
        now = utcnow()
        settled = 0
        with self._engine.begin() as conn:
            for run in repository.interrupted_runs(conn, now):
                if run.action_type == "log":
                    status, error = ActionRunStatus.SUCCEEDED, None
                else:
                    status, error = ActionRunStatus.DEAD, INTERRUPTED
                if repository.settle_interrupted(conn, run.id, status, error, now):
                    settled += 1
                    log.warning(
                        "actions.run_interrupted", run_id=str(run.id), rule=run.rule, status=status.value
                    )
        return settled

    def _execute(self, run: ActionRun) -> None:
        with structlog.contextvars.bound_contextvars(
            run_id=str(run.id), rule=run.rule, packet_id=str(run.packet_id), ordinal=run.record_ordinal
        ):
            try:
                self._perform(run)
            except PermanentError as exc:
                self._finish(run, ActionRunStatus.DEAD, str(exc))
            except Exception as exc:  # a transient failure (SMTP down, timeout): retry with backoff
                if run.attempts >= self._max_attempts:
                    self._finish(run, ActionRunStatus.DEAD, f"{type(exc).__name__}: {exc}")
                else:
                    delay = backoff(run.attempts, self._retry_base, self._retry_max)
                    self._finish(run, ActionRunStatus.FAILED, f"{type(exc).__name__}: {exc}", retry_in=delay)
            else:
                self._finish(run, ActionRunStatus.SUCCEEDED, None)

    def _perform(self, run: ActionRun) -> None:
        with self._engine.connect() as conn:
            record = repository.record_data(conn, run.packet_id, run.record_ordinal)
            rules = {r["name"]: r for r in repository.source_rules(conn, run.source_id)}
        if record is None:
            raise PermanentError("the record no longer exists")
        if run.rule not in rules:
            raise PermanentError(f"the source no longer has an action named {run.rule!r}")
        rule = CompiledRule(rules[run.rule])
        view = nested(record[1])
        if rule.rule.type == "log":
            log.info("actions.log", record_type=record[0])
            return
        try:
            message = compose(
                sender=rule.render("sender", view) or self._mail_from,
                to=rule.render("to", view),
                subject=rule.render("subject", view),
                body=rule.render("body", view),
                message_id=run.message_id
                or message_id(run.source_id, run.rule, run.packet_id, run.record_ordinal),
            )
        except PermanentError:
            raise
        except Exception as exc:  # a template that fails on this record fails the same way every time
            raise PermanentError(f"template error: {type(exc).__name__}: {exc}") from None
        send(self._smtp, message, self._smtp_timeout)
        log.info("actions.email_sent", message_id=message["Message-ID"])

    def _finish(
        self, run: ActionRun, status: ActionRunStatus, error: str | None, retry_in: float | None = None
    ) -> None:
        now = utcnow()
        with self._engine.begin() as conn:
            repository.finish_run(
                conn,
                run.id,
                status=status,
                error=error,
                next_attempt_at=now + timedelta(seconds=retry_in) if retry_in is not None else None,
                now=now,
            )
        if status != ActionRunStatus.SUCCEEDED:
            log.warning(f"actions.run_{status.value}", error=(error or "")[:300])


def _matches(rule: CompiledRule, record_type: str, view: dict[str, Any]) -> bool:
    with contextlib.suppress(Exception):  # a condition that cannot be evaluated on this record is false
        return rule.matches(record_type, view)
    return False


class Worker:
    """Background rounds: retry due runs and settle runs interrupted by a crash."""

    def __init__(self, service: ActionsService, poll: float) -> None:
        self._service = service
        self._poll = poll
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="actions-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._service.settle_interrupted)
                while await asyncio.to_thread(self._service.run_due):
                    pass
            except Exception as exc:
                log.warning("actions.worker_error", error=type(exc).__name__, detail=str(exc)[:300])
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
