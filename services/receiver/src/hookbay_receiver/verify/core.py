"""Types and primitives shared by every scheme: secrets, deliveries, the failure, safe decoding."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Bounds on what we parse from attacker-controlled headers: real signature headers are far shorter.
MAX_HEADER_LENGTH = 4096
MAX_SIGNATURES = 10
# Seconds since the epoch fit in 11 digits until the year 5138; ms in 14. Anything longer is junk.
MAX_TIMESTAMP_DIGITS = 15

_DIGITS = re.compile(rf"[0-9]{{1,{MAX_TIMESTAMP_DIGITS}}}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")

HASHES: Mapping[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}


@dataclass(frozen=True)
class Secret:
    """A signing secret; one whose ``expires_at`` has passed is skipped (rotation)."""

    value: str = field(repr=False)  # never in a repr: configs get logged
    expires_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or now < utc(self.expires_at)


@dataclass(frozen=True)
class Delivery:
    """One webhook request as received: the raw body and the URL the sender addressed."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    form: list[tuple[str, str]] | None = field(default=None, repr=False)


class VerificationFailed(Exception):
    """A delivery failed verification; ``str()`` is a short reason safe for a 401 body and logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def live_values(secrets: Iterable[Secret], now: datetime) -> list[str]:
    """Every secret still live at ``now``; none live is a failure (a rotation left no key)."""
    values = [secret.value for secret in secrets if secret.live(now)]
    if not values:
        raise VerificationFailed("no live secret")
    return values


def live_secrets(secrets: Iterable[Secret], now: datetime) -> list[bytes]:
    """The UTF-8 bytes of every live secret: the HMAC key of most schemes."""
    return [value.encode() for value in live_values(secrets, now)]


def header(headers: Mapping[str, str], name: str) -> str:
    """The stripped value of header ``name`` (display spelling); missing, empty or oversized fails."""
    value = headers.get(name.lower())
    if value is None or not value.strip():
        raise VerificationFailed(f"missing header {name}")
    if len(value) > MAX_HEADER_LENGTH:
        raise VerificationFailed(f"header {name} too long")
    return value.strip()


def strip_prefix(value: str, prefix: str, name: str) -> str:
    """``value`` without ``prefix`` (case-insensitive: these prefixes are labels, not secrets)."""
    if not value[: len(prefix)].lower() == prefix.lower():
        raise VerificationFailed(f"malformed header {name}")
    return value[len(prefix) :].strip()


def parse_timestamp(value: str, name: str) -> int:
    """A non-negative integer timestamp made of ASCII digits only (``int()`` also takes '+1', '1_0' and non-ASCII digits)."""
    if not _DIGITS.fullmatch(value):
        raise VerificationFailed(f"malformed header {name}")
    return int(value)


def check_tolerance(timestamp: float, now: datetime, tolerance: float) -> None:
    """Both ways: a stale timestamp is a replay, a far-future one a pre-signed replay."""
    if abs(now.timestamp() - timestamp) > tolerance:
        raise VerificationFailed("timestamp outside tolerance")


def decode_hex(value: str) -> bytes | None:
    """Bytes of a hex string, or None when it is not hex (``bytes.fromhex`` would skip spaces)."""
    if not _HEX.fullmatch(value):
        return None
    return bytes.fromhex(value)


def decode_base64(value: str) -> bytes | None:
    """Bytes of a standard base64 string, or None when it is not valid base64."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode(value: str, encoding: str) -> bytes | None:
    return decode_hex(value) if encoding == "hex" else decode_base64(value)


def mac(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, HASHES[algorithm]).digest()


def match_any(expected: Iterable[bytes], candidates: Iterable[bytes | None]) -> None:
    """Pass when any expected MAC equals any decoded candidate, comparing every pair in constant time.

    Candidates that failed to decode are None: when all of them did, the reason is "malformed
    signature" rather than a mismatch, so a sender with a broken encoder can tell the difference.
    """
    decoded = [candidate for candidate in candidates if candidate is not None]
    if not decoded:
        raise VerificationFailed("malformed signature")
    matched = False
    for want in expected:
        for got in decoded:
            # No early exit: how many comparisons ran must not say which secret matched.
            matched |= hmac.compare_digest(want, got)
    if not matched:
        raise VerificationFailed("signature mismatch")


def equal_secret(given: bytes, expected: bytes) -> bool:
    """Constant time even in length: compare digests, so a static token's length does not leak."""
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


def utc(now: datetime | None) -> datetime:
    """``now`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)
