"""Sources: the admin operations on them, and the receiver's short-lived cache of GUID lookups."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from hookbay_common.db.engine import unit_of_work
from hookbay_common.db.models import Source, SourceStatus
from hookbay_common.errors import InvalidArgument, Unavailable
from hookbay_common.ids import new_guid, parse_uuid
from hookbay_receiver import repository

FORMATS = ("auto", "json", "xml", "form", "ndjson", "text", "binary")
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the hot path needs to know about a source, detached from any session."""

    id: uuid.UUID
    name: str
    guid: str
    active: bool
    max_body: int
    format: str

    @classmethod
    def of(cls, source: Source) -> SourceInfo:
        return cls(
            id=source.id,
            name=source.name,
            guid=source.guid,
            active=source.status == SourceStatus.ACTIVE,
            max_body=source.max_body,
            format=source.format,
        )


def normalize_guid(text: str) -> str | None:
    """The canonical lower-case form of a GUID, or None when it is not one."""
    parsed = parse_uuid(text) if len(text) <= 64 else None
    return str(parsed) if parsed is not None else None


class SourceCache:
    """GUID → source, cached for ``ttl`` seconds so the hot path rarely touches the database.

    Changes made through this process's admin API invalidate at once; other replicas see them within
    ``ttl``. Unknown GUIDs are cached too, so a flood of bad URLs costs one lookup per ``ttl``.
    """

    def __init__(self, factory: sessionmaker[Session], ttl: float) -> None:
        self._factory = factory
        self._ttl = ttl
        self._entries: dict[str, tuple[float, SourceInfo | None]] = {}
        self._inflight: dict[str, asyncio.Future[SourceInfo | None]] = {}

    async def lookup(self, guid: str) -> SourceInfo | None:
        entry = self._entries.get(guid)
        now = time.monotonic()
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        pending = self._inflight.get(guid)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[SourceInfo | None] = asyncio.get_running_loop().create_future()
        self._inflight[guid] = future
        try:
            info = await asyncio.to_thread(self._load, guid)
        except Exception as exc:
            if entry is not None:  # the database is away: a recent answer beats none
                future.set_result(entry[1])
                return entry[1]
            error = Unavailable("the database is unavailable; retry later", retry_after=1)
            future.set_exception(error)
            future.exception()  # retrieved here; waiters get it through shield
            raise error from exc
        else:
            if len(self._entries) > 100_000:
                self._entries.clear()
            self._entries[guid] = (time.monotonic(), info)
            future.set_result(info)
            return info
        finally:
            del self._inflight[guid]

    def invalidate(self, *guids: str) -> None:
        for guid in guids:
            self._entries.pop(guid, None)

    def _load(self, guid: str) -> SourceInfo | None:
        with self._factory() as session:
            source = repository.source_by_guid(session, guid)
            return SourceInfo.of(source) if source is not None else None


def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidArgument("a source needs a name")
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"a source name has at most {MAX_NAME} characters")
    return name


def check_format(fmt: str) -> str:
    fmt = (fmt or "auto").strip().lower()
    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
    return fmt


def check_max_body(max_body: int) -> int:
    if max_body < 0:
        raise InvalidArgument("max_body must be 0 (the default) or a positive number of bytes")
    return max_body


class SourceService:
    def __init__(self, factory: sessionmaker[Session], cache: SourceCache) -> None:
        self._factory = factory
        self._cache = cache

    def create(self, *, name: str, client: str, fmt: str, max_body: int, settings: dict[str, Any]) -> Source:
        source = Source(
            name=check_name(name),
            client=client.strip(),
            guid=new_guid(),
            status=SourceStatus.ACTIVE,
            format=check_format(fmt),
            max_body=check_max_body(max_body),
            settings=settings,
        )
        with unit_of_work(self._factory) as session:
            return repository.add_source(session, source)

    def get(self, **ref: Any) -> Source:
        with self._factory() as session:
            return repository.source_by(session, **ref)

    def list(self, client: str = "") -> list[Source]:
        with self._factory() as session:
            return list(repository.list_sources(session, client))

    def update(self, ref: dict[str, Any], changes: dict[str, Any]) -> Source:
        with unit_of_work(self._factory) as session:
            source = repository.source_by(session, **ref)
            if "name" in changes:
                source.name = check_name(changes["name"])
            if "client" in changes:
                source.client = changes["client"].strip()
            if "format" in changes:
                source.format = check_format(changes["format"])
            if "max_body" in changes:
                source.max_body = check_max_body(changes["max_body"])
            if "settings" in changes:
                source.settings = changes["settings"]
            if "status" in changes:
                source.status = changes["status"]
            repository.flush_source(session, source)
        self._cache.invalidate(source.guid)
        return source

    def rotate_guid(self, ref: dict[str, Any]) -> Source:
        with unit_of_work(self._factory) as session:
            source = repository.source_by(session, **ref)
            old = source.guid
            source.guid = new_guid()
        self._cache.invalidate(old, source.guid)
        return source
