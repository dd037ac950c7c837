"""Twilio: base64 HMAC over the public URL plus the sorted form parameters (or bodySHA256 for JSON)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import defaultdict
from datetime import datetime
from urllib.parse import SplitResult, parse_qs, parse_qsl, urlsplit

from hookbay_receiver.verify.config import VerifyConfig
from hookbay_receiver.verify.core import (
    MAX_HEADER_LENGTH,
    Delivery,
    VerificationFailed,
    decode_base64,
    header,
    live_secrets,
    mac,
    match_any,
)

SIGNATURE = "X-Twilio-Signature"
# Present when a Webhooks Rule makes Twilio sign with a SharedKey: "key=<id>,algorithm=HMAC_SHA256".
SETTINGS = "X-Twilio-Webhooks-Signature-Settings"
_ALGORITHMS = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}
_DEFAULT_PORTS = {"https": "443", "http": "80"}
_PORT = re.compile(r":([0-9]*)$")
MAX_FORM_FIELDS = 1000


def verify_twilio(config: VerifyConfig, delivery: Delivery, now: datetime) -> None:
    signature = header(delivery.headers, SIGNATURE)
    algorithm = _algorithm(delivery.headers.get(SETTINGS.lower()))
    params = _signed_params(delivery)
    keys = live_secrets(config.secrets, now)
    expected = []
    for url in url_variants(delivery.url):
        message = (url + "".join(name + value for name, value in params)).encode()
        expected.extend(mac(key, message, algorithm) for key in keys)
    match_any(expected, [decode_base64(signature)])


def _algorithm(settings: str | None) -> str:
    """HMAC-SHA1 (Auth Token) unless the settings header names another; an unknown one fails."""
    if settings is not None and len(settings) > MAX_HEADER_LENGTH:
        raise VerificationFailed(f"header {SETTINGS} too long")
    for part in (settings or "").split(","):
        name, _, value = part.partition("=")
        if name.strip() == "algorithm" and value.strip():
            algorithm = _ALGORITHMS.get(value.strip().upper())
            if algorithm is None:
                raise VerificationFailed(f"unsupported algorithm in {SETTINGS}")
            return algorithm
    return "sha1"


def _signed_params(delivery: Delivery) -> list[tuple[str, str]]:
    """The (name, value) pairs appended to the URL, in the order Twilio's library signs them."""
    query = parse_qs(_split(delivery.url).query)
    if "bodySHA256" in query:
        # JSON bodies: the URL carries the body's hash and only the URL is signed, so the body is
        # bound by that hash, which must match the bytes received.
        given = query["bodySHA256"][0].strip().lower()
        actual = hashlib.sha256(delivery.body).hexdigest()
        if not hmac.compare_digest(given.encode(), actual.encode()):
            raise VerificationFailed("bodySHA256 mismatch")
        return []
    form = delivery.form if delivery.form is not None else _parse_form(delivery)
    if form is None:
        if delivery.body:
            # A body that is neither form parameters nor hashed in the URL is not covered by the
            # signature at all: accepting it would let anyone swap the body of a signed request.
            raise VerificationFailed("body not covered by signature")
        return []
    return sorted_params(form)


def _parse_form(delivery: Delivery) -> list[tuple[str, str]] | None:
    """Form parameters decoded from the body (Twilio posts UTF-8) when the caller passed none."""
    content_type = delivery.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    try:
        text = delivery.body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # UnicodeDecodeError included
        raise VerificationFailed("malformed form body") from None


def sorted_params(form: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Sorted by name, then each name's distinct values sorted: exactly what Twilio's library does."""
    values: dict[str, set[str]] = defaultdict(set)
    for name, value in form:
        values[name].add(value)
    return [(name, value) for name in sorted(values) for value in sorted(values[name])]


def url_variants(url: str) -> list[str]:
    """The URL as given, without its port, and with the scheme's default port (Twilio's own retries)."""
    parts = _split(url)
    start = len(parts.scheme) + 3  # after "scheme://"
    if not parts.netloc or url[start : start + len(parts.netloc)] != parts.netloc:
        return [url]
    before, after = url[:start], url[start + len(parts.netloc) :]
    port = _PORT.search(parts.netloc)
    variants = [url]
    if port:
        variants.append(before + parts.netloc[: port.start()] + after)
    elif parts.scheme.lower() in _DEFAULT_PORTS:
        variants.append(f"{before}{parts.netloc}:{_DEFAULT_PORTS[parts.scheme.lower()]}{after}")
    return variants


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise VerificationFailed("malformed URL") from None
