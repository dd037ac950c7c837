"""Senders' probes and quirks, recognised only where the request is unmistakable.

Each returns None when the request is not that handshake, so ordinary packets pass straight on.
Every one can be switched off per source (``handshakes:`` in the source's settings).
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

WOO_PING = re.compile(rb"^webhook_id=\d{1,20}$")
SALESFORCE_NS = b"http://soap.sforce.com/2005/09/outbound"
SALESFORCE_ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>"
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>'
    b"</soapenv:Body></soapenv:Envelope>"
)
MAX_ECHO = 4096


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def woocommerce_ping(headers: Mapping[str, str], content_type: str, body: bytes) -> bool:
    """Saving a webhook in WooCommerce posts an unsigned form `webhook_id=<n>` that must get a 200."""
    return (
        "x-wc-webhook-signature" not in headers
        and content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
        and WOO_PING.match(body.strip()) is not None
    )


def github_ping(headers: Mapping[str, str]) -> bool:
    return headers.get("x-github-event", "").lower() == "ping"


def graph_validation(query: str) -> Reply | None:
    """Microsoft Graph validates a subscription URL with ?validationToken=…: echo it as plain text."""
    values = parse_qs(query, keep_blank_values=True).get("validationToken")
    if not values:
        return None
    return Reply(200, "text/plain; charset=utf-8", values[0][:MAX_ECHO].encode())


def slack_challenge(content_type: str, body: bytes) -> Reply | None:
    """Slack's url_verification event: answer with its challenge."""
    if "json" not in content_type.lower() or b"url_verification" not in body[:4096]:
        return None
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") != "url_verification":
        return None
    challenge = str(event.get("challenge", ""))[:MAX_ECHO]
    return Reply(200, "application/json", json.dumps({"challenge": challenge}).encode())


def meta_verification(query: str, verify_token: str | None) -> Reply | None:
    """Meta (Facebook, WhatsApp, Instagram) verifies with GET ?hub.mode=subscribe&hub.verify_token&hub.challenge."""
    params = parse_qs(query, keep_blank_values=True)
    if params.get("hub.mode", [""])[0] != "subscribe" or "hub.challenge" not in params:
        return None
    offered = params.get("hub.verify_token", [""])[0]
    if not verify_token or not hmac.compare_digest(offered.encode(), verify_token.encode()):
        return Reply(
            403, "application/json", b'{"error":{"code":"forbidden","message":"verify token mismatch"}}'
        )
    return Reply(200, "text/plain; charset=utf-8", params["hub.challenge"][0][:MAX_ECHO].encode())


def cloudevents_options(headers: Mapping[str, str], rate: float) -> Reply | None:
    """The CloudEvents webhook abuse-protection handshake (an OPTIONS with WebHook-Request-Origin)."""
    origin = headers.get("webhook-request-origin")
    if not origin:
        return None
    return Reply(
        200,
        "text/plain",
        b"",
        (
            ("WebHook-Allowed-Origin", origin[:255]),
            ("WebHook-Allowed-Rate", str(max(1, int(rate * 60)))),
            ("Allow", "POST, OPTIONS"),
        ),
    )


def is_salesforce(content_type: str, body: bytes) -> bool:
    return "xml" in content_type.lower() and SALESFORCE_NS in body[:8192]


def salesforce_ack() -> Reply:
    """Salesforce resends an outbound message for a day unless it gets this acknowledgement."""
    return Reply(200, "text/xml; charset=utf-8", SALESFORCE_ACK)
