"""Schemes that sign the body alone, in one header: GitHub, Meta, Shopify, WooCommerce, Typeform, generic hmac."""

from __future__ import annotations

from datetime import datetime

from hookbay_receiver.verify.config import VerifyConfig, template_parts
from hookbay_receiver.verify.core import (
    Delivery,
    check_tolerance,
    decode,
    header,
    live_secrets,
    mac,
    match_any,
    parse_timestamp,
    strip_prefix,
)


def _body_mac(
    config: VerifyConfig,
    delivery: Delivery,
    now: datetime,
    *,
    name: str,
    prefix: str,
    encoding: str,
    algorithm: str = "sha256",
) -> None:
    """One signature of the raw body: ``<prefix><encoded HMAC(secret, body)>`` in header ``name``."""
    given = strip_prefix(header(delivery.headers, name), prefix, name)
    expected = [mac(key, delivery.body, algorithm) for key in live_secrets(config.secrets, now)]
    match_any(expected, [decode(given, encoding)])


def verify_github(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    # The legacy SHA-1 header is read only when opted into and the SHA-256 one is absent: a sender
    # that sends both must never be judged by the weaker one.
    if (
        config.allow_sha1
        and "x-hub-signature-256" not in delivery.headers
        and "x-hub-signature" in delivery.headers
    ):
        _body_mac(
            config, delivery, now, name="X-Hub-Signature", prefix="sha1=", encoding="hex", algorithm="sha1"
        )
        return
    _body_mac(config, delivery, now, name="X-Hub-Signature-256", prefix="sha256=", encoding="hex")


def verify_meta(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    _body_mac(config, delivery, now, name="X-Hub-Signature-256", prefix="sha256=", encoding="hex")


def verify_shopify(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    _body_mac(config, delivery, now, name="X-Shopify-Hmac-Sha256", prefix="", encoding="base64")


def verify_woocommerce(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    _body_mac(config, delivery, now, name="X-WC-Webhook-Signature", prefix="", encoding="base64")


def verify_typeform(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    _body_mac(config, delivery, now, name="Typeform-Signature", prefix="sha256=", encoding="base64")


def verify_hmac(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    """The configurable scheme: any header, algorithm, encoding, prefix and signed template."""
    assert config.header is not None  # parse_config requires it for this scheme
    given = strip_prefix(header(delivery.headers, config.header), config.prefix, config.header)
    timestamp = _timestamp(config, delivery, now)
    message = _signed_message(config, delivery, timestamp)
    expected = [mac(key, message, config.algorithm) for key in live_secrets(config.secrets, now)]
    match_any(expected, [decode(given, config.encoding)])


def _timestamp(config: VerifyConfig, delivery: Delivery, now: datetime) -> str | None:
    """The timestamp header's text, after checking it is within tolerance; None when not configured."""
    if config.timestamp_header is None:
        return None
    text = header(delivery.headers, config.timestamp_header)
    value = parse_timestamp(text, config.timestamp_header)
    seconds = value / 1000 if config.timestamp_unit == "ms" else value
    check_tolerance(seconds, now, config.tolerance_seconds)
    return text


def _signed_message(config: VerifyConfig, delivery: Delivery, timestamp: str | None) -> bytes:
    # Literal text and header values are UTF-8; the body goes in as the raw bytes received.
    values = {"timestamp": timestamp or "", "method": delivery.method.upper(), "url": delivery.url}
    pieces: list[bytes] = []
    for is_placeholder, text in template_parts(config.signed):
        if not is_placeholder:
            pieces.append(text.encode())
        elif text == "body":
            pieces.append(delivery.body)
        else:
            pieces.append(values[text].encode())
    return b"".join(pieces)
