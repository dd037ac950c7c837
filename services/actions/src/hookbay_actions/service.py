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
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine

from hookbay_actions import metrics, repository
from hookbay_actions.mailer import PermanentError, SmtpTarget, compose, send
from hookbay_common.db.models import ActionRun, ActionRunStatus, utcnow
from hookbay_common.outbox import backoff
from hookbay_common.rules import CompiledRule, nested

log = structlog.get_logger("hookbay.actions")
INTERRUPTED = (
    "interrupted while running; an email may or may not have been sent, so it is not resent automatically"
)


# Email runs one call executes at once; the worker takes any beyond that on its next round.
MAX_RUNS_PER_CALL = 500
# Runs claimed ('running') at a time by one call. A crash leaves every claimed run in doubt, to be
# settled as dead rather than resent, so each call claims only the run it is about to send, not
# its whole batch: a claim is one short transaction, far cheaper than the SMTP exchange after it.
CLAIM_CHUNK = 1
RULE_CACHE_SIZE = 1024


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
        # Per source: the rule set last compiled for it, and the compiled rules.
        self._compiled: dict[uuid.UUID, tuple[list[dict[str, Any]], list[CompiledRule]]] = {}

    # -- creating runs ----------------------------------------------------------------------------

    def execute_packets(self, packet_ids: Sequence[uuid.UUID]) -> list[ActionRun]:
        """What one ExecuteActions call does: create the runs of these packets (the commitment),
        then execute the email runs among them right away (the worker retries whatever fails)."""
        created = self.create_runs(packet_ids)
        executed = (
            self.run_due(limit=MAX_RUNS_PER_CALL, packet_ids=packet_ids)
            if any(run.status == ActionRunStatus.PENDING for run in created)
            else []
        )
        return [run for run in created if run.status != ActionRunStatus.PENDING] + executed

    def create_runs(self, packet_ids: Sequence[uuid.UUID]) -> list[ActionRun]:
        """Match the sources' rules against the packets' records and create the runs, all in one
        transaction (idempotent). A log run's effect is its row, so it is created 'succeeded'."""
        now = utcnow()
        with self._engine.begin() as conn:
            rows = []
            for packet in repository.packets_records(conn, packet_ids):
                rules = self._rules(packet.source_id, packet.rules)
                for record_type, ordinal, data in packet.records:
                    view = nested(data)
                    for rule in rules:
                        if _matches(rule, record_type, view):
                            rows.append(_run_row(packet.source_id, packet.packet_id, ordinal, rule, now))
            created = repository.create_runs(conn, rows)
            repository.mark_actions_done(conn, packet_ids)
        for run in created:
            if run.action_type == "log":
                metrics.run_finished(run.action_type, run.status)
                log.info(
                    "actions.log",
                    run_id=str(run.id),
                    rule=run.rule,
                    packet_id=str(run.packet_id),
                    ordinal=run.record_ordinal,
                )
        return created

    def _rules(self, source_id: uuid.UUID, rules: list[dict[str, Any]]) -> list[CompiledRule]:
        """Compiled rules, cached per source until its rule set changes: compiling costs more than
        matching."""
        cached = self._compiled.get(source_id)
        if cached is not None and cached[0] == rules:
            return cached[1]
        if len(self._compiled) >= RULE_CACHE_SIZE:
            self._compiled.clear()
        compiled = [CompiledRule(rule) for rule in rules]
        self._compiled[source_id] = (rules, compiled)
        return compiled

    # -- executing runs ---------------------------------------------------------------------------

    def run_due(self, limit: int = 50, packet_ids: Sequence[uuid.UUID] | None = None) -> list[ActionRun]:
        """Claim due runs a few at a time and execute them; returns the runs as finished."""
        done: list[ActionRun] = []
        while len(done) < limit:
            now = utcnow()
            with self._engine.begin() as conn:
                claimed = repository.claim_runs(
                    conn,
                    now,
                    now + timedelta(seconds=self._lease),
                    min(CLAIM_CHUNK, limit - len(done)),
                    packet_ids,
                )
                records, rules = repository.runs_context(conn, claimed) if claimed else ({}, {})
            for run in claimed:
                self._execute(
                    run, records.get((run.packet_id, run.record_ordinal)), rules.get(run.source_id, [])
                )
            done += claimed
            if len(claimed) < CLAIM_CHUNK:
                break
        return done

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
                    metrics.run_finished(run.action_type, status)
                    log.warning(
                        "actions.run_interrupted", run_id=str(run.id), rule=run.rule, status=status.value
                    )
        return settled

    def _execute(
        self, run: ActionRun, record: tuple[str, dict[str, Any]] | None, rules: list[dict[str, Any]]
    ) -> None:
        with structlog.contextvars.bound_contextvars(
            run_id=str(run.id), rule=run.rule, packet_id=str(run.packet_id), ordinal=run.record_ordinal
        ):
            try:
                self._perform(run, record, rules)
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

    def _perform(
        self, run: ActionRun, record: tuple[str, dict[str, Any]] | None, rules: list[dict[str, Any]]
    ) -> None:
        if record is None:
            raise PermanentError("the record no longer exists")
        by_name = {r.name: r for r in self._rules(run.source_id, rules)}
        if run.rule not in by_name:
            raise PermanentError(f"the source no longer has an action named {run.rule!r}")
        rule = by_name[run.rule]
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
        run.status, run.last_error = status, error
        with self._engine.begin() as conn:
            repository.finish_run(
                conn,
                run.id,
                status=status,
                error=error,
                next_attempt_at=now + timedelta(seconds=retry_in) if retry_in is not None else None,
                now=now,
            )
        metrics.run_finished(run.action_type, status)
        if status != ActionRunStatus.SUCCEEDED:
            log.warning(f"actions.run_{status.value}", error=(error or "")[:300])


def _run_row(
    source_id: uuid.UUID, packet_id: uuid.UUID, ordinal: int, rule: CompiledRule, now: datetime
) -> dict[str, Any]:
    is_log = rule.rule.type == "log"
    return {
        "id": uuid.uuid4(),
        "source_id": source_id,
        "rule": rule.name,
        "action_type": rule.rule.type,
        "packet_id": packet_id,
        "record_ordinal": ordinal,
        "status": ActionRunStatus.SUCCEEDED if is_log else ActionRunStatus.PENDING,
        "attempts": 1 if is_log else 0,
        "next_attempt_at": None if is_log else now,
        "last_error": None,
        "message_id": None if is_log else message_id(source_id, rule.name, packet_id, ordinal),
        "created_at": now,
        "updated_at": now,
    }


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
