"""Parsing packets: load them, choose each one's format, parse within limits, commit the outcomes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, SQLAlchemyError

from hookbay_common.db.models import PacketStatus, utcnow
from hookbay_common.errors import NotFound
from hookbay_common.rawstore import RawStore
from hookbay_parser import metrics, repository
from hookbay_parser.formats import Limits, NoParser, ParsedRecord, ParseError, parse

log = structlog.get_logger("hookbay.parser")


@dataclass(frozen=True, slots=True)
class Outcome:
    packet_id: str
    status: str  # "parsed", "failed", "ignored", "retry", "not_found", or the status it already had
    records: int = 0
    error: str = ""


@dataclass(slots=True)
class _Parsed:
    """A packet parsed in memory, waiting for the commit that makes it so."""

    packet: repository.PacketToParse
    status: PacketStatus
    format: str | None
    rows: list[dict[str, Any]]
    error: str | None


class ParseService:
    def __init__(self, engine: Engine, store: RawStore, limits: Limits) -> None:
        self._engine = engine
        self._store = store
        self._limits = limits

    def parse_packets(self, packet_ids: Sequence[str]) -> list[Outcome]:
        """Parse a batch: one read, then one transaction for all of it. Never raises: every packet
        ends with an outcome the dispatcher can act on, in the order asked."""
        outcomes: dict[str, Outcome] = {}
        wanted: dict[uuid.UUID, str] = {}
        for text in packet_ids:
            try:
                wanted[uuid.UUID(text)] = text
            except ValueError:
                outcomes[text] = Outcome(text, "not_found", error="not a packet id")
        try:
            with self._engine.connect() as conn:
                found = repository.packets_to_parse(conn, list(wanted))
        except SQLAlchemyError as exc:
            log.warning("parser.database_error", packets=len(wanted), error=type(exc).__name__)
            found = {}
            outcomes.update({t: Outcome(t, "retry", error="database unavailable") for t in wanted.values()})
            wanted = {}
        parsed: list[_Parsed] = []
        for pid, text in wanted.items():
            packet = found.get(pid)
            if packet is None:
                outcomes[text] = Outcome(text, "not_found", error="no such packet")
            elif packet.status != PacketStatus.RECEIVED:
                outcomes[text] = Outcome(text, packet.status)  # delivered again after it was done
            else:
                result = self._parse_one(packet)
                if isinstance(result, Outcome):
                    outcomes[text] = result
                else:
                    parsed.append(result)
        outcomes.update(self._commit(parsed))
        return [outcomes[text] for text in packet_ids]

    def _parse_one(self, packet: repository.PacketToParse) -> _Parsed | Outcome:
        with metrics.packet_scope(packet.id, packet.source_name):
            try:
                body = packet.body if packet.body is not None else self._store.get(packet.raw_key or "")
            except OSError as exc:  # the raw store (S3, files) did not answer
                log.warning("parser.raw_store_error", error=type(exc).__name__)
                return Outcome(str(packet.id), "retry", error="raw store unavailable")
            try:
                return self._parse(packet, body)
            except Exception as exc:
                # A bug of ours, not the sender's: fail this packet with a pointer to the logs rather
                # than redeliver it forever. The raw bytes are kept; a re-parse after the fix recovers it.
                log.exception("parser.internal_error")
                error = f"internal error while parsing ({type(exc).__name__}); see the parser's logs"
                return _Parsed(packet, PacketStatus.FAILED, None, [], error)

    def _parse(self, packet: repository.PacketToParse, body: bytes) -> _Parsed:
        content_type, body = github_form_payload(packet.headers, packet.content_type, body)
        try:
            fmt, records = parse(body, content_type, packet.format, self._limits)
        except ParseError as exc:
            return _Parsed(packet, PacketStatus.FAILED, packet.format, [], str(exc))
        except NoParser as exc:
            return _Parsed(packet, PacketStatus.IGNORED, None, [], str(exc))
        now = utcnow()
        rows = [_row(packet.id, packet.source_id, r, now) for r in records]
        return _Parsed(packet, PacketStatus.PARSED, fmt, rows, None)

    def _commit(self, batch: list[_Parsed]) -> dict[str, Outcome]:
        if not batch:
            return {}
        now = utcnow()
        try:
            with self._engine.begin() as conn:
                finished = repository.finish_packets(
                    conn,
                    [repository.Finished(p.packet, p.status, p.format, p.rows, p.error) for p in batch],
                    now,
                )
        except DataError as exc:
            if len(batch) > 1:  # find the packet the database refuses; the others commit without it
                return {k: v for p in batch for k, v in self._commit([p]).items()}
            # PostgreSQL's JSONB takes no \u0000 or lone surrogates: this packet would fail the same
            # way on every delivery, so it fails now, with the reason.
            (p,) = batch
            reason = str(exc.orig).splitlines()[0][:300]
            return self._commit(
                [
                    _Parsed(
                        p.packet,
                        PacketStatus.FAILED,
                        p.format,
                        [],
                        f"{p.format}: records could not be stored: {reason}",
                    )
                ]
            )
        except SQLAlchemyError as exc:
            log.warning("parser.database_error", packets=len(batch), error=type(exc).__name__)
            return {
                str(p.packet.id): Outcome(str(p.packet.id), "retry", error="database unavailable")
                for p in batch
            }
        outcomes = {}
        for p in batch:
            pid = str(p.packet.id)
            if p.packet.id in finished:
                log.info(
                    f"parser.packet_{p.status.value}",
                    packet_id=pid,
                    source=p.packet.source_name,
                    format=p.format,
                    records=len(p.rows),
                    error=p.error[:300] if p.error else None,
                )
                outcomes[pid] = Outcome(pid, p.status.value, len(p.rows), p.error or "")
                metrics.packet_finished(p.format, p.status.value, len(p.rows))
            else:  # another delivery of this packet finished first; it is done either way
                outcomes[pid] = Outcome(pid, "parsed")
        return outcomes

    def preview(
        self, source: str, fmt: str, content_type: str, body: bytes
    ) -> tuple[str, list[ParsedRecord]]:
        if source and not fmt:
            with self._engine.connect() as conn:
                found = repository.source_for_preview(conn, source)
            if found is None:
                raise NotFound(f"no source named {source!r}")
            fmt = found[1]
        return parse(body, content_type, fmt or "auto", self._limits)


def github_form_payload(headers: list, content_type: str, body: bytes) -> tuple[str, bytes]:
    """GitHub's form mode posts one field, ``payload=<url-encoded JSON>``: parse the JSON it carries."""
    is_github = any(name == "x-github-event" for name, _ in headers)
    if not is_github or not body.startswith(b"payload=") or b"&" in body:
        return content_type, body
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return content_type, body
    return "application/json", unquote_to_bytes(body[len(b"payload=") :].replace(b"+", b" "))


def _row(packet_id: uuid.UUID, source_id: uuid.UUID, record: ParsedRecord, now: object) -> dict:
    return {
        "packet_id": packet_id,
        "source_id": source_id,
        "type": record.type,
        "ordinal": record.ordinal,
        "parent": record.parent,
        "data": record.data,
        "created_at": now,
    }
