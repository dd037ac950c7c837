"""Which delivery a packet is: the sender's own delivery id, so that retries are stored once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import defusedxml.ElementTree as SafeET

from hookbay_receiver.source_config import DedupHeader, DedupJsonPath, DoorConfig

# Headers that name one delivery and stay the same when the sender retries it, in priority order.
DELIVERY_HEADERS = (
    "webhook-id",
    "svix-id",
    "x-github-delivery",
    "x-shopify-webhook-id",
    "x-wc-webhook-delivery-id",
    "x-wc-delivery-id",
    "i-twilio-idempotency-token",
)
SALESFORCE_NS = b"http://soap.sforce.com/2005/09/outbound"
MAX_KEY_SOURCE = 1000


def _digest(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\x00{value[:MAX_KEY_SOURCE]}".encode()).hexdigest()


def dedup_key(
    config: DoorConfig,
    headers: Mapping[str, str],
    content_type: str,
    body: bytes,
    verified_id: str | None = None,
) -> str | None:
    """A stable key for this delivery, or None when it has none (then it is always stored).

    ``verified_id`` is the message id a signature covered (Standard Webhooks, Svix): when there
    is one, automatic dedup uses it, never an unsigned header a replayer could change.
    """
    mode = config.settings.dedup
    if mode == "off":
        return None
    if isinstance(mode, DedupHeader):
        value = headers.get(mode.header.lower())
        return _digest(f"header:{mode.header.lower()}", value) if value else None
    if isinstance(mode, DedupJsonPath):
        value = _json_path(config, body)
        return _digest(f"json:{mode.json_path}", value) if value else None
    if verified_id:
        return _digest("webhook-id", verified_id)
    return _automatic(headers, content_type, body)


def _automatic(headers: Mapping[str, str], content_type: str, body: bytes) -> str | None:
    for name in DELIVERY_HEADERS:
        value = headers.get(name)
        if value:
            return _digest(name, value)
    if headers.get("ce-id"):
        # CloudEvents: an id is unique within its source.
        return _digest("ce", f"{headers.get('ce-source', '')}\x00{headers['ce-id']}")
    if "stripe-signature" in headers:
        event_id = _json_field(body, "id")
        return _digest("stripe", event_id) if event_id else None
    if SALESFORCE_NS in body[:4096] or (b"<" in body[:64] and SALESFORCE_NS in body):
        ids = _salesforce_ids(body)
        return _digest("salesforce", ",".join(sorted(ids))) if ids else None
    if "json" in content_type and body[:1] in (b"{", b" ", b"\n") and b'"specversion"' in body[:2048]:
        event = _json(body)
        if isinstance(event, dict) and event.get("id") and event.get("specversion"):
            return _digest("ce", f"{event.get('source', '')}\x00{event['id']}")
    return None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _json_field(body: bytes, key: str) -> str | None:
    data = _json(body)
    value = data.get(key) if isinstance(data, dict) else None
    return str(value) if isinstance(value, (str, int)) and value != "" else None


def _json_path(config: DoorConfig, body: bytes) -> str | None:
    data = _json(body)
    if data is None:
        return None
    try:
        value = config.dedup_path.search(data)
    except Exception:
        return None
    if value is None or value == "" or isinstance(value, (dict, list)):
        return None
    return str(value)


def _salesforce_ids(body: bytes) -> list[str]:
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception:  # defusedxml raises several kinds; a body we cannot read simply has no key
        return []
    ns = "{" + SALESFORCE_NS.decode() + "}"
    return [i.text or "" for n in root.iter(f"{ns}Notification") for i in n.findall(f"{ns}Id")]
