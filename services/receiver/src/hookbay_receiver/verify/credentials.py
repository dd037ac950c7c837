"""Static credentials: HTTP Basic and a token in a header. They prove the sender, not the body."""

from __future__ import annotations

from datetime import datetime

from hookbay_receiver.verify.config import VerifyConfig
from hookbay_receiver.verify.core import (
    Delivery,
    VerificationFailed,
    decode_base64,
    equal_secret,
    header,
    live_secrets,
    strip_prefix,
)


def verify_basic(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    """``Authorization: Basic base64(username:password)``; each live secret is an accepted password."""
    assert config.username is not None  # parse_config requires it for this scheme
    encoded = strip_prefix(header(delivery.headers, "Authorization"), "Basic ", "Authorization")
    decoded = decode_base64(encoded)
    if decoded is None or b":" not in decoded:
        raise VerificationFailed("malformed header Authorization")
    username, _, password = decoded.partition(b":")
    # Both halves are always compared, so timing says nothing about which one was wrong.
    matched = equal_secret(username, config.username.encode())
    matched &= _any_equal(password, live_secrets(config.secrets, now))
    if not matched:
        raise VerificationFailed("credentials mismatch")


def verify_header_token(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    """A static token in ``config.header`` after ``config.prefix`` (default ``Authorization: Bearer``)."""
    assert config.header is not None  # parse_config sets it for this scheme
    token = strip_prefix(header(delivery.headers, config.header), config.prefix, config.header)
    if not _any_equal(token.encode(), live_secrets(config.secrets, now)):
        raise VerificationFailed("credentials mismatch")


def _any_equal(given: bytes, secrets: list[bytes]) -> bool:
    matched = False
    for secret in secrets:
        matched |= equal_secret(given, secret)  # no early exit, as in core.match_any
    return matched
