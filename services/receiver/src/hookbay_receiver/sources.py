"""Sources: the admin operations on them, and the receiver's short-lived cache of GUID lookups."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from hookbay_common.db.engine import unit_of_work
from hookbay_common.db.models import Source, SourceStatus, utcnow
from hookbay_common.errors import InvalidArgument, Unavailable
from hookbay_common.formats import FORMATS
from hookbay_common.ids import new_guid, parse_uuid
from hookbay_common.rules import validate_rules
from hookbay_receiver import repository
from hookbay_receiver.source_config import DoorConfig, compile_settings, validate_settings

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
    door: DoorConfig | None
    # Why the settings could not be compiled here (a secrets_env variable missing in this
    # process): deliveries then get 503 rather than being let in unverified.
    config_error: str | None = None
    previous_guid: str | None = None
    previous_guid_expires_at: datetime | None = None

    @classmethod
    def of(cls, source: Source) -> SourceInfo:
        door, error = None, None
        try:
            door = compile_settings(source.settings or {})
        except InvalidArgument as exc:
            error = exc.message
        return cls(
            id=source.id,
            name=source.name,
            guid=source.guid,
            active=source.status == SourceStatus.ACTIVE,
            max_body=source.max_body,
            format=source.format,
            door=door,
            config_error=error,
            previous_guid=source.previous_guid,
            previous_guid_expires_at=source.previous_guid_expires_at,
        )

    def accepts_guid(self, guid: str, now: datetime) -> bool:
        """The current GUID always; the previous one only until its overlap ends."""
        if guid == self.guid:
            return True
        return (
            guid == self.previous_guid
            and self.previous_guid_expires_at is not None
            and now < self.previous_guid_expires_at
        )


def normalize_guid(text: str) -> str | None:
    """The canonical lower-case form of a GUID, or None when it is not one."""
    parsed = parse_uuid(text) if len(text) <= 64 else None
    return str(parsed) if parsed is not None else None


class SourceCache:
    """GUID → source, cached so the hot path rarely touches the database.

    A known source past its ``ttl`` is still served while one background lookup refreshes it, so a
    slow or absent database never holds a request up here (the write that follows answers 503 then).
    Changes made through this process's admin API invalidate at once; other replicas see them within
    about ``ttl``. Unknown GUIDs are cached too, so a flood of bad URLs costs one lookup per ``ttl``.
    """

    def __init__(self, factory: sessionmaker[Session], ttl: float, load_timeout: float = 1.0) -> None:
        self._factory = factory
        self._ttl = ttl
        self._load_timeout = load_timeout
        self._entries: dict[str, tuple[float, SourceInfo | None]] = {}
        self._inflight: dict[str, asyncio.Task[SourceInfo | None]] = {}

    async def lookup(self, guid: str) -> SourceInfo | None:
        entry = self._entries.get(guid)
        if entry is not None:
            fresh = time.monotonic() - entry[0] < self._ttl
            if fresh:
                return entry[1]
            if entry[1] is not None:
                self._fetch(guid)
                return entry[1]
        try:
            return await asyncio.wait_for(asyncio.shield(self._fetch(guid)), self._load_timeout)
        except Exception as exc:
            raise Unavailable("the database is unavailable; retry later", retry_after=1) from exc

    def invalidate(self, *guids: str) -> None:
        for guid in guids:
            self._entries.pop(guid, None)

    def _fetch(self, guid: str) -> asyncio.Task[SourceInfo | None]:
        """One lookup per GUID at a time, however many requests want it."""
        task = self._inflight.get(guid)
        if task is None:
            task = asyncio.create_task(self._refresh(guid))
            self._inflight[guid] = task
            task.add_done_callback(functools.partial(self._settled, guid))
        return task

    def _settled(self, guid: str, task: asyncio.Task[SourceInfo | None]) -> None:
        self._inflight.pop(guid, None)
        if not task.cancelled():
            task.exception()  # a failed background refresh is expected while the database is away

    async def _refresh(self, guid: str) -> SourceInfo | None:
        info = await asyncio.to_thread(self._load, guid)
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[guid] = (time.monotonic(), info)
        return info

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

    def create(
        self,
        *,
        name: str,
        client: str,
        fmt: str,
        max_body: int,
        settings: dict[str, Any],
        actions: list[dict[str, Any]] | None = None,
        status: SourceStatus = SourceStatus.ACTIVE,
    ) -> Source:
        source = Source(
            name=check_name(name),
            client=client.strip(),
            guid=new_guid(),
            status=status,
            format=check_format(fmt),
            max_body=check_max_body(max_body),
            settings=validate_settings(settings),
            actions=validate_rules(actions or []),
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
                source.settings = validate_settings(changes["settings"])
            if "actions" in changes:
                source.actions = validate_rules(changes["actions"])
            if "status" in changes:
                source.status = changes["status"]
            repository.flush_source(session, source)
        self._cache.invalidate(source.guid)
        return source

    def rotate_guid(self, ref: dict[str, Any], overlap_seconds: int = 0) -> Source:
        """A new GUID; the old one keeps working for ``overlap_seconds`` (0 revokes it at once)."""
        if overlap_seconds < 0:
            raise InvalidArgument("overlap must not be negative")
        with unit_of_work(self._factory) as session:
            source = repository.source_by(session, **ref)
            stale = source.previous_guid
            old = source.guid
            source.guid = new_guid()
            if overlap_seconds:
                source.previous_guid = old
                source.previous_guid_expires_at = utcnow() + timedelta(seconds=overlap_seconds)
            else:
                source.previous_guid = None
                source.previous_guid_expires_at = None
        self._cache.invalidate(*(g for g in (old, stale, source.guid) if g))
        return source
