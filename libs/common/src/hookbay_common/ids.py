"""Identifiers."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): packet ids sort by receipt and index well."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def new_guid() -> str:
    """A source's URL credential: 122 random bits."""
    return str(uuid.uuid4())


def parse_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return None


MAX_REQUEST_ID = 128


def request_id_or_new(value: str | None) -> str:
    """The caller's request id if it is safe to log and store (printable ASCII, at most 128
    characters), otherwise a fresh one: a sender must not be able to forge log lines or bloat rows."""
    if value and len(value) <= MAX_REQUEST_ID and value.isascii() and value.isprintable():
        return value
    return os.urandom(16).hex()  # 128 random bits, as a uuid4's hex but a quarter of the cost
