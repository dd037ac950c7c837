"""Parsing one packet: load it, choose its format, parse within limits, commit the outcome."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, SQLAlchemyError

from hookbay_common.db.models import PacketStatus, utcnow
from hookbay_common.db.packets import read_raw
from hookbay_common.errors import NotFound
from hookbay_common.rawstore import RawStore
from hookbay_parser import repository
from hookbay_parser.formats import Limits, NoParser, ParsedRecord, ParseError, parse

log = structlog.get_logger("hookbay.parser")


@dataclass(frozen=True, slots=True)
class Outcome:
    packet_id: str
    status: str  # "parsed", "failed", "ignored", "retry", "not_found", or the status it already had
    records: int = 0
    error: str = ""


class ParseService:
    def __init__(self, engine: Engine, store: RawStore, limits: Limits) -> None:
        self._engine = engine
        self._store = store
        self._limits = limits

    def parse_packet(self, packet_id: str) -> Outcome:
        """Never raises: every packet ends with an outcome the dispatcher can act on."""
        try:
            pid = uuid.UUID(packet_id)
        except ValueError:
            return Outcome(packet_id, "not_found", error="not a packet id")
        try:
            return self._parse(pid)
        except SQLAlchemyError as exc:
            log.warning("parser.database_error", packet_id=packet_id, error=type(exc).__name__)
            return Outcome(packet_id, "retry", error="database unavailable")
        except OSError as exc:  # the raw store (S3, files) did not answer
            log.warning("parser.raw_store_error", packet_id=packet_id, error=type(exc).__name__)
            return Outcome(packet_id, "retry", error="raw store unavailable")
        except Exception as exc:
            # A bug of ours, not the sender's: fail this packet with a pointer to the logs rather than
            # redeliver it forever. The raw bytes are kept; a re-parse after the fix recovers it.
            log.exception("parser.internal_error", packet_id=packet_id)
            return self._fail(
                pid, f"internal error while parsing ({type(exc).__name__}); see the parser's logs"
            )

    def _parse(self, pid: uuid.UUID) -> Outcome:
        with self._engine.connect() as conn:
            packet = repository.packet_to_parse(conn, pid)
            if packet is None:
                return Outcome(str(pid), "not_found", error="no such packet")
            if packet.status != PacketStatus.RECEIVED:
                return Outcome(str(pid), packet.status)  # delivered again after it was done: nothing to do
            try:
                body = read_raw(conn, self._store, pid)
            except NotFound:
                return Outcome(str(pid), "not_found", error="no stored body")
        with structlog.contextvars.bound_contextvars(packet_id=str(pid), source=packet.source_name):
            return self._finish(packet, body)

    def _finish(self, packet: repository.PacketToParse, body: bytes) -> Outcome:
        content_type, body = github_form_payload(packet.headers, packet.content_type, body)
        try:
            fmt, records = parse(body, content_type, packet.format, self._limits)
            status, error = PacketStatus.PARSED, None
        except ParseError as exc:
            fmt, records, status, error = packet.format, [], PacketStatus.FAILED, str(exc)
        except NoParser as exc:
            fmt, records, status, error = None, [], PacketStatus.IGNORED, str(exc)
        now = utcnow()
        rows = [_row(packet.id, packet.source_id, r, now) for r in records]
        try:
            with self._engine.begin() as conn:
                finished = repository.finish_packet(
                    conn, packet, status=status, parsed_format=fmt, records=rows, error=error, now=now
                )
        except DataError as exc:
            # The database refused a value (PostgreSQL's JSONB takes no \u0000 or lone surrogates):
            # the same packet would fail the same way on every delivery, so it fails now, with why.
            status, rows = PacketStatus.FAILED, []
            error = f"{fmt}: records could not be stored: {str(exc.orig).splitlines()[0][:300]}"
            with self._engine.begin() as conn:
                finished = repository.finish_packet(
                    conn, packet, status=status, parsed_format=fmt, records=rows, error=error, now=now
                )
        if not finished:  # another delivery of this packet finished first; report what it decided
            with self._engine.connect() as conn:
                current = repository.packet_to_parse(conn, packet.id)
            return Outcome(str(packet.id), current.status if current else "not_found")
        log.info(
            f"parser.packet_{status.value}",
            format=fmt,
            records=len(rows),
            error=error[:300] if error else None,
        )
        return Outcome(str(packet.id), status.value, len(rows), error or "")

    def _fail(self, pid: uuid.UUID, error: str) -> Outcome:
        try:
            with self._engine.begin() as conn:
                packet = repository.packet_to_parse(conn, pid)
                if packet is None or not repository.finish_packet(
                    conn,
                    packet,
                    status=PacketStatus.FAILED,
                    parsed_format=None,
                    records=[],
                    error=error,
                    now=utcnow(),
                ):
                    return Outcome(str(pid), "retry", error=error)
        except SQLAlchemyError:
            return Outcome(str(pid), "retry", error=error)
        return Outcome(str(pid), "failed", error=error)

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
