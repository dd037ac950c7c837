"""Schemes that sign a timestamp with the body: Standard Webhooks (Svix), Stripe, Slack, HubSpot v3."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from hookbay_receiver.verify.config import VerifyConfig, standard_webhooks_key
from hookbay_receiver.verify.core import (
    MAX_SIGNATURES,
    Delivery,
    VerificationFailed,
    check_tolerance,
    decode_base64,
    decode_hex,
    header,
    live_secrets,
    live_values,
    mac,
    match_any,
    parse_timestamp,
    strip_prefix,
)


def verify_standard_webhooks(config: VerifyConfig, delivery: Delivery, now: datetime) -> str:
    """HMAC-SHA256 over ``{id}.{timestamp}.{body}``; returns the ``webhook-id`` for deduplication."""
    msg_id, _ = _svix_or_standard(delivery.headers, "id")
    timestamp_text, timestamp_name = _svix_or_standard(delivery.headers, "timestamp")
    signatures, signature_name = _svix_or_standard(delivery.headers, "signature")
    timestamp = parse_timestamp(timestamp_text, timestamp_name)
    check_tolerance(timestamp, now, config.tolerance_seconds)
    candidates = _standard_signatures(signatures, signature_name)
    # The libraries sign str(int(timestamp)), so "0123" is signed as "123": do the same.
    message = f"{msg_id}.{timestamp}.".encode() + delivery.body
    keys = [standard_webhooks_key(value) for value in live_values(config.secrets, now)]
    match_any([mac(key, message) for key in keys if key], candidates)
    return msg_id


def _svix_or_standard(headers: Mapping[str, str], part: str) -> tuple[str, str]:
    """``svix-<part>`` or ``webhook-<part>``, with the name it came from. Svix's library prefers svix-*."""
    for name in (f"svix-{part}", f"webhook-{part}"):
        if name in headers:
            return header(headers, name), name
    raise VerificationFailed(f"missing header webhook-{part}")


def _standard_signatures(value: str, name: str) -> list[bytes | None]:
    """The decoded ``v1,<base64>`` entries of a space-separated list; other versions (v1a) are skipped."""
    candidates: list[bytes | None] = []
    for entry in [entry for entry in value.split(" ") if entry][:MAX_SIGNATURES]:
        version, _, signature = entry.partition(",")
        if version == "v1":
            candidates.append(decode_base64(signature))
    if not candidates:
        raise VerificationFailed(f"no v1 signature in {name}")
    return candidates


def verify_stripe(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    """``Stripe-Signature: t=…,v1=…``: hex HMAC-SHA256 keyed by the whole ``whsec_…`` string."""
    timestamp, signatures = _stripe_header(header(delivery.headers, "Stripe-Signature"))
    check_tolerance(timestamp, now, config.tolerance_seconds)
    message = f"{timestamp}.".encode() + delivery.body
    expected = [mac(key, message) for key in live_secrets(config.secrets, now)]
    match_any(expected, [decode_hex(signature) for signature in signatures])


def _stripe_header(value: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in value.split(","):
        key, _, item_value = item.strip().partition("=")
        if key == "t" and timestamp is None:  # the first t wins, as in Stripe's library
            timestamp = parse_timestamp(item_value.strip(), "Stripe-Signature")
        elif key == "v1":
            signatures.append(item_value.strip())
        # v0 (a test-mode scheme) and unknown keys are ignored, as Stripe's library does.
    if timestamp is None:
        raise VerificationFailed("malformed header Stripe-Signature")
    if not signatures:
        raise VerificationFailed("no v1 signature in Stripe-Signature")
    return timestamp, signatures[:MAX_SIGNATURES]


def verify_slack(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    """``X-Slack-Signature: v0=<hex>`` over ``v0:{timestamp}:{body}``."""
    signature = strip_prefix(header(delivery.headers, "X-Slack-Signature"), "v0=", "X-Slack-Signature")
    timestamp_text = header(delivery.headers, "X-Slack-Request-Timestamp")
    check_tolerance(
        parse_timestamp(timestamp_text, "X-Slack-Request-Timestamp"), now, config.tolerance_seconds
    )
    message = f"v0:{timestamp_text}:".encode() + delivery.body
    expected = [mac(key, message) for key in live_secrets(config.secrets, now)]
    match_any(expected, [decode_hex(signature)])


# The characters HubSpot's documentation says it decodes in the URI before signing.
_HUBSPOT_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_HUBSPOT_ESCAPE = re.compile("|".join(_HUBSPOT_DECODED), re.IGNORECASE)


def verify_hubspot_v3(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    """Base64 HMAC-SHA256 over method + URI + body + timestamp (milliseconds)."""
    signature = header(delivery.headers, "X-HubSpot-Signature-v3")
    timestamp_text = header(delivery.headers, "X-HubSpot-Request-Timestamp")
    timestamp_ms = parse_timestamp(timestamp_text, "X-HubSpot-Request-Timestamp")
    check_tolerance(timestamp_ms / 1000, now, config.tolerance_seconds)
    keys = live_secrets(config.secrets, now)
    expected = []
    for uri in _hubspot_uris(delivery.url):
        message = f"{delivery.method.upper()}{uri}".encode() + delivery.body + timestamp_text.encode()
        expected.extend(mac(key, message) for key in keys)
    match_any(expected, [decode_base64(signature)])


def _hubspot_uris(url: str) -> list[str]:
    # HubSpot's docs decode a few escapes before signing; its Python client signs the URI as given.
    decoded = _HUBSPOT_ESCAPE.sub(lambda found: _HUBSPOT_DECODED[found.group(0).upper()], url)
    return [url] if decoded == url else [url, decoded]
