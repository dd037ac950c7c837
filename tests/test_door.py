"""The door, end to end: signatures, quarantine, handshakes, dedup, rate limits, GUID rotation and
content rules, checked through real receiver processes on SQLite and (when configured) PostgreSQL.

Deliveries are signed with the senders' own libraries wherever one exists (stripe, standardwebhooks,
slack_sdk, twilio), so a test passes only when the receiver agrees with the real sender.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import grpc
import httpx
import standardwebhooks
import stripe
from google.protobuf import json_format
from harness import UNLIMITED, Stack, wait_until
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator

from hookbay.admin.v1 import admin_service_pb2 as admin_pb

PAST = "2020-01-01T00:00:00+00:00"
STALE = 3600  # seconds: far outside the default 300 s tolerance
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_VECTOR = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SF_NS = "http://soap.sforce.com/2005/09/outbound"
SALESFORCE_MESSAGE = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="{SF_NS}">
   <OrganizationId>00D000000000062EAA</OrganizationId>
   <ActionId>04k000000000001AAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0/00D000000000062</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/60.0/00D000000000062</PartnerUrl>
   <Notification>
    <Id>04l000000000001AAA</Id>
    <sObject xsi:type="sf:Account" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>001000000000001AAA</sf:Id>
     <sf:Name>Acme</sf:Name>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>
""".encode()


# -- helpers ---------------------------------------------------------------------------------------


def ref(name: str) -> admin_pb.SourceRef:
    return admin_pb.SourceRef(name=name)


def accepted(response: httpx.Response) -> str:
    """A 200 with our JSON answer; returns the packet id."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "accepted", body
    return body["id"]


def refused(response: httpx.Response, status: int, code: str, *reasons: str) -> dict[str, Any]:
    """A refusal in the one error shape, naming each of ``reasons`` in its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert error["code"] == code, error
    for reason in reasons:
        assert reason in error["message"], (reason, error)
    return error


def stored(stack: Stack, source: str) -> list[admin_pb.Packet]:
    reply = stack.admin.ListPackets(admin_pb.ListPacketsRequest(source=source, page_size=1000), timeout=10)
    return list(reply.packets)


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def hmac_b64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def tamper(body: bytes) -> bytes:
    """The same body with one byte changed."""
    assert body.count(b"ORDER") == 1
    return body.replace(b"ORDER", b"ORDEQ")


def json_body() -> bytes:
    return json.dumps({"id": f"evt_{uuid.uuid4().hex}", "type": "order.created", "note": "ORDER"}).encode()


def form_body() -> bytes:
    return urlencode(
        {
            "CallSid": f"CA{uuid.uuid4().hex}",
            "CallStatus": "completed",
            "From": "+15551234567",
            "Body": "café & more",
            "Empty": "",
            "Note": "ORDER",
        }
    ).encode()


# -- the schemes, each signed the way its sender signs -------------------------------------------------

Signer = Callable[[str, str, bytes, int], dict[str, str]]  # (secret, url, body, unix time) -> headers


def sign_github(secret: str, url: str, body: bytes, ts: int) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac_hex(secret, body), "X-GitHub-Event": "push"}


def sign_stripe(secret: str, url: str, body: bytes, ts: int) -> dict[str, str]:
    return {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(body.decode(), secret, ts)}


def sign_standard(secret: str, url: str, body: bytes, ts: int) -> dict[str, str]:
    msg_id = f"msg_{uuid.uuid4().hex}"
    signature = standardwebhooks.Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def sign_slack(secret: str, url: str, body: bytes, ts: int) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    assert signature is not None
    return {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(ts)}


def sign_twilio(secret: str, url: str, body: bytes, ts: int) -> dict[str, str]:
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    return {"X-Twilio-Signature": RequestValidator(secret).compute_signature(url, params)}


def sign_shopify(secret: str, url: str, body: bytes, ts: int) -> dict[str, str]:
    return {"X-Shopify-Hmac-Sha256": hmac_b64(secret, body), "X-Shopify-Topic": "orders/create"}


def sign_woocommerce(secret: str, url: str, body: bytes, ts: int) -> dict[str, str]:
    return {"X-WC-Webhook-Signature": hmac_b64(secret, body), "X-WC-Webhook-Topic": "order.created"}


def sign_bearer(secret: str, url: str, body: bytes, ts: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def sign_basic(secret: str, url: str, body: bytes, ts: int) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"hookbay:{secret}".encode()).decode()}


def plain_secret(scheme: str) -> Callable[[], str]:
    return lambda: f"{scheme}-secret-{uuid.uuid4().hex}"


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass(frozen=True)
class Scheme:
    name: str
    sign: Signer
    required: tuple[str, ...]  # headers a delivery cannot do without
    new_secret: Callable[[], str]
    body: Callable[[], bytes] = json_body
    content_type: str = "application/json"
    timestamped: bool = False
    body_signed: bool = True
    mismatch: str = "signature mismatch"
    options: dict[str, Any] = field(default_factory=dict)

    def verify(self, secrets: list[Any]) -> dict[str, Any]:
        return {"scheme": self.name, "secrets": secrets, **self.options}


SCHEMES = [
    Scheme("github", sign_github, ("X-Hub-Signature-256",), plain_secret("github")),
    Scheme(
        "stripe",
        sign_stripe,
        ("Stripe-Signature",),
        lambda: f"whsec_{uuid.uuid4().hex}",
        timestamped=True,
    ),
    Scheme(
        "standard-webhooks",
        sign_standard,
        ("webhook-id", "webhook-timestamp", "webhook-signature"),
        whsec,
        timestamped=True,
    ),
    Scheme(
        "slack",
        sign_slack,
        ("X-Slack-Signature", "X-Slack-Request-Timestamp"),
        plain_secret("slack"),
        timestamped=True,
    ),
    Scheme(
        "twilio",
        sign_twilio,
        ("X-Twilio-Signature",),
        plain_secret("twilio"),
        body=form_body,
        content_type="application/x-www-form-urlencoded",
    ),
    Scheme("shopify", sign_shopify, ("X-Shopify-Hmac-Sha256",), plain_secret("shopify")),
    Scheme("woocommerce", sign_woocommerce, ("X-WC-Webhook-Signature",), plain_secret("woo")),
    Scheme(
        "header-token",
        sign_bearer,
        ("Authorization",),
        plain_secret("token"),
        body_signed=False,
        mismatch="credentials mismatch",
    ),
    Scheme(
        "basic",
        sign_basic,
        ("Authorization",),
        plain_secret("password"),
        body_signed=False,
        mismatch="credentials mismatch",
        options={"username": "hookbay"},
    ),
]


def deliver(
    stack: Stack,
    scheme: Scheme,
    source: admin_pb.Source,
    secret: str,
    *,
    age: int = 0,
    change_body: bool = False,
    drop: str | None = None,
) -> tuple[httpx.Response, bytes]:
    """Sign a fresh body as the sender would and post it to the exact URL that was signed."""
    url = stack.url(source) + "?via=door&n=1"
    body = scheme.body()
    headers = {"Content-Type": scheme.content_type, **scheme.sign(secret, url, body, int(time.time()) - age)}
    if drop is not None:
        del headers[drop]
    sent = tamper(body) if change_body else body
    return stack.http.post(url, content=sent, headers=headers), sent


def check_scheme(stack: Stack, scheme: Scheme) -> None:
    s1, s2, wrong = scheme.new_secret(), scheme.new_secret(), scheme.new_secret()
    name = scheme.name
    main = stack.create_source(name, settings={"verify": scheme.verify([s1])})
    both = stack.create_source(f"{name}-rotating", settings={"verify": scheme.verify([s1, s2])})
    expiring = stack.create_source(
        f"{name}-expiring", settings={"verify": scheme.verify([{"value": s1, "expires_at": PAST}, s2])}
    )

    def ok(source: admin_pb.Source, secret: str) -> None:
        response, body = deliver(stack, scheme, source, secret)
        packet_id = accepted(response)
        packet = stack.packet(packet_id)
        assert packet.status == admin_pb.PACKET_STATUS_RECEIVED, packet
        assert packet.source == source.name
        assert stack.raw(packet_id) == body

    def unauthorized(response: httpx.Response, reason: str) -> None:
        refused(response, 401, "unauthorized", "signature check failed", reason)

    ok(main, s1)
    unauthorized(deliver(stack, scheme, main, wrong)[0], scheme.mismatch)
    if scheme.body_signed:
        unauthorized(deliver(stack, scheme, main, s1, change_body=True)[0], "signature mismatch")
    if scheme.timestamped:
        unauthorized(deliver(stack, scheme, main, s1, age=STALE)[0], "timestamp outside tolerance")
    for header in scheme.required:
        unauthorized(deliver(stack, scheme, main, s1, drop=header)[0], f"missing header {header}")

    # Rotation: both live secrets are accepted; one past its expires_at is not.
    ok(both, s1)
    ok(both, s2)
    unauthorized(deliver(stack, scheme, both, wrong)[0], scheme.mismatch)
    unauthorized(deliver(stack, scheme, expiring, s1)[0], scheme.mismatch)
    ok(expiring, s2)

    assert [len(stored(stack, s.name)) for s in (main, both, expiring)] == [1, 2, 1]

    # The admin API shows fingerprints, never a secret, whichever way a source is read.
    listed = stack.admin.ListSources(admin_pb.ListSourcesRequest(), timeout=10).SerializeToString()
    for source in (main, both, expiring):
        got = stack.admin.GetSource(admin_pb.GetSourceRequest(source=ref(source.name)), timeout=10)
        verify = json_format.MessageToDict(got.settings)["verify"]
        fingerprints = [item["fingerprint"] for item in verify["secrets"]]
        assert all(f.startswith("sha256:") for f in fingerprints), fingerprints
        for message in (got.SerializeToString(), source.SerializeToString(), listed):
            for secret in (s1, s2):
                assert secret.encode() not in message, f"{name}: a secret is shown by the admin API"


# -- 1. verification ----------------------------------------------------------------------------------


def test_every_scheme_verifies_over_http(stack: Stack) -> None:
    """Valid → 200 and stored; wrong secret, changed byte, stale timestamp, missing header and an
    expired secret → 401 with a JSON reason and nothing stored; two live secrets both pass."""
    stack.receiver()
    failures = []
    for scheme in SCHEMES:
        try:
            check_scheme(stack, scheme)
        except AssertionError as exc:
            failures.append(f"--- {scheme.name}:\n{exc}")
    assert not failures, "\n".join(failures)

    # GitHub's published vector, byte for byte.
    vector = stack.create_source(
        "github-vector", settings={"verify": {"scheme": "github", "secrets": [GITHUB_SECRET]}}
    )
    headers = {"Content-Type": "text/plain", "X-Hub-Signature-256": GITHUB_VECTOR}
    packet_id = accepted(stack.http.post(stack.url(vector), content=b"Hello, World!", headers=headers))
    assert stack.raw(packet_id) == b"Hello, World!"
    refused(
        stack.http.post(stack.url(vector), content=b"Hello, World?", headers=headers),
        401,
        "unauthorized",
        "signature mismatch",
    )
    assert len(stored(stack, "github-vector")) == 1

    # Basic's single password is shown as a fingerprint too.
    stack.create_source(
        "basic-password",
        settings={"verify": {"scheme": "basic", "username": "u", "password": "SENTINEL-PASSWORD-1"}},
    )
    got = stack.admin.GetSource(admin_pb.GetSourceRequest(source=ref("basic-password")), timeout=10)
    assert b"SENTINEL-PASSWORD-1" not in got.SerializeToString()
    good = {"Authorization": "Basic " + base64.b64encode(b"u:SENTINEL-PASSWORD-1").decode()}
    assert stack.http.post(stack.url(got), content=b"x", headers=good).status_code == 200
    bad = {"Authorization": "Basic " + base64.b64encode(b"v:SENTINEL-PASSWORD-1").decode()}
    refused(stack.http.post(stack.url(got), content=b"x", headers=bad), 401, "unauthorized")


def test_url_signing_schemes_use_the_public_url_when_one_is_set(stack: Stack) -> None:
    """Behind a proxy the sender signs the public URL, not the one the receiver sees."""
    public = "https://hooks.example.com"
    stack.receiver(HOOKBAY_PUBLIC_URL=public)
    token = f"twilio-{uuid.uuid4().hex}"
    source = stack.create_source("twilio", settings={"verify": {"scheme": "twilio", "secrets": [token]}})
    assert source.url == f"{public}/V1/Data/{source.guid}"
    query = "?topic=calls&n=2"
    local = stack.url(source) + query
    params = {"CallSid": "CA1234567890ABCDE", "CallStatus": "completed", "From": "+12349013030"}
    body = urlencode(params).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def post(signed_url: str, content: bytes = body) -> httpx.Response:
        signature = RequestValidator(token).compute_signature(signed_url, params)
        return stack.http.post(local, content=content, headers={**form, "X-Twilio-Signature": signature})

    packet_id = accepted(post(source.url + query))
    assert stack.raw(packet_id) == body
    # Twilio's own validator also accepts the URL with the scheme's default port.
    accepted(post(f"https://hooks.example.com:443/V1/Data/{source.guid}{query}"))
    refused(post(local), 401, "unauthorized", "signature mismatch")  # the URL the receiver saw
    refused(post(source.url), 401, "unauthorized", "signature mismatch")  # query left out
    refused(post(source.url + query, content=body.replace(b"completed", b"completeD")), 401, "unauthorized")
    assert len(stored(stack, "twilio")) == 2


# -- 2. quarantine ------------------------------------------------------------------------------------


def test_quarantine_keeps_rejects_unparsed_and_still_answers_401(stack: Stack) -> None:
    stack.parser()
    stack.receiver()
    secret = f"gh-{uuid.uuid4().hex}"
    verify = {"scheme": "github", "secrets": [secret]}
    jail = stack.create_source("jail", settings={"verify": verify, "quarantine": True})
    strict = stack.create_source("strict", settings={"verify": verify})
    body = b'{"action": "opened", "number": 1}'
    delivery = str(uuid.uuid4())
    forged = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hmac_hex("not-the-secret", body),
    }

    refused(stack.http.post(stack.url(strict), content=body, headers=forged), 401, "unauthorized")
    assert stored(stack, "strict") == []

    refused(
        stack.http.post(stack.url(jail), content=body, headers=forged),
        401,
        "unauthorized",
        "signature mismatch",
    )
    unsigned = {k: v for k, v in forged.items() if k != "X-Hub-Signature-256"}
    refused(
        stack.http.post(stack.url(jail), content=b"{}", headers=unsigned),
        401,
        "unauthorized",
        "missing header",
    )
    rejects = stored(stack, "jail")
    assert len(rejects) == 2
    assert all(p.status == admin_pb.PACKET_STATUS_REJECTED for p in rejects), rejects
    errors = sorted(p.error for p in rejects)
    assert "signature mismatch" in errors[1] and "missing header X-Hub-Signature-256" in errors[0], errors
    by_error = {p.error: p for p in rejects}
    assert stack.raw(by_error[errors[1]].id) == body  # kept byte for byte, for inspection

    # The genuine delivery with the same delivery id is not swallowed by the forgery's copy.
    genuine = {**forged, "X-Hub-Signature-256": "sha256=" + hmac_hex(secret, body)}
    good_id = accepted(stack.http.post(stack.url(jail), content=body, headers=genuine))
    assert good_id not in {p.id for p in rejects}
    parsed = wait_until(
        lambda: (p := stack.packet(good_id)).status == admin_pb.PACKET_STATUS_PARSED and p,
        what="the genuine packet parsed",
    )
    assert parsed.record_count >= 1
    # The parser ran meanwhile; the rejects were never handed to it.
    for packet in rejects:
        again = stack.packet(packet.id)
        assert again.status == admin_pb.PACKET_STATUS_REJECTED
        assert again.parsed_at.seconds == 0 and again.record_count == 0 and again.attempts == 0, again


def test_reparse_never_parses_a_rejected_packet(stack: Stack) -> None:
    """Reparsing a source (say after fixing its format) must not send its quarantined forgeries on."""
    stack.parser()
    stack.receiver()
    verify = {"scheme": "github", "secrets": ["right"]}
    jail = stack.create_source("jail", settings={"verify": verify, "quarantine": True})
    body = b'{"forged": true}'
    forged = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + hmac_hex("wrong", body)}
    refused(stack.http.post(stack.url(jail), content=body, headers=forged), 401, "unauthorized")
    (reject,) = stored(stack, "jail")
    genuine = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + hmac_hex("right", b"{}"),
    }
    good_id = accepted(stack.http.post(stack.url(jail), content=b"{}", headers=genuine))
    first = wait_until(lambda: (p := stack.packet(good_id)).parsed_at.seconds and p, what="parsed")

    requests = [
        admin_pb.ReparsePacketsRequest(source="jail"),
        admin_pb.ReparsePacketsRequest(ids=[reject.id]),
        admin_pb.ReparsePacketsRequest(status=admin_pb.PACKET_STATUS_REJECTED),
    ]
    for request in requests:
        with contextlib.suppress(grpc.RpcError):  # refusing to reparse a reject is a fine answer too
            stack.admin.ReparsePackets(request, timeout=10)
    # The genuine packet's second parse shows the dispatcher has been round since.
    wait_until(
        lambda: (
            (p := stack.packet(good_id)).status == admin_pb.PACKET_STATUS_PARSED
            and p.parsed_at.ToNanoseconds() > first.parsed_at.ToNanoseconds()
        ),
        what="the genuine packet parsed again",
    )
    time.sleep(1)
    again = stack.packet(reject.id)
    assert again.status == admin_pb.PACKET_STATUS_REJECTED, again
    assert again.parsed_at.seconds == 0 and again.record_count == 0, again


# -- 3. handshakes ------------------------------------------------------------------------------------


def test_handshakes_and_switching_them_off(stack: Stack) -> None:
    stack.receiver()
    off = {
        name: {"handshakes": {name: False}}
        for name in (
            "woocommerce_ping",
            "slack_url_verification",
            "meta_verification",
            "graph_validation",
            "cloudevents_options",
            "salesforce_ack",
            "github_ping",
        )
    }
    post = stack.http.post
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    # WooCommerce: saving a webhook posts an unsigned form ping that must get exactly 200.
    woo_verify = {"verify": {"scheme": "woocommerce", "secrets": ["woo-secret"]}}
    woo = stack.create_source("woo", settings=woo_verify)
    woo_off = stack.create_source("woo-off", settings={**woo_verify, **off["woocommerce_ping"]})
    response = post(stack.url(woo), content=b"webhook_id=12", headers=form)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored"
    ping = stack.packet(response.json()["id"])
    assert ping.status == admin_pb.PACKET_STATUS_IGNORED and ping.error == "woocommerce ping", ping
    # A ping-shaped body carrying a (forged) signature is judged by its signature.
    forged = {**form, "X-WC-Webhook-Signature": hmac_b64("nope", b"webhook_id=12")}
    refused(post(stack.url(woo), content=b"webhook_id=12", headers=forged), 401, "unauthorized")
    refused(post(stack.url(woo_off), content=b"webhook_id=12", headers=form), 401, "unauthorized")
    assert len(stored(stack, "woo")) == 1 and stored(stack, "woo-off") == []

    # Slack: a signed url_verification is answered with its challenge and not stored.
    slack_verify = {"verify": {"scheme": "slack", "secrets": ["slack-secret"]}}
    slack = stack.create_source("slack", settings=slack_verify)
    slack_off = stack.create_source("slack-off", settings={**slack_verify, **off["slack_url_verification"]})
    challenge = b'{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}'

    def slack_post(source: admin_pb.Source, secret: str = "slack-secret") -> httpx.Response:
        headers = {"Content-Type": "application/json", **sign_slack(secret, "", challenge, int(time.time()))}
        return post(stack.url(source), content=challenge, headers=headers)

    response = slack_post(slack)
    assert response.status_code == 200, response.text
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    refused(slack_post(slack, secret="other"), 401, "unauthorized")  # the challenge is signed too
    assert stored(stack, "slack") == []
    packet_id = accepted(slack_post(slack_off))
    assert stack.raw(packet_id) == challenge

    # Meta: GET with hub.* echoes the challenge when the verify token matches.
    meta = stack.create_source("meta", settings={"verify_token": "meta-token"})
    meta_off = stack.create_source(
        "meta-off", settings={"verify_token": "meta-token", **off["meta_verification"]}
    )
    tokenless = stack.create_source("meta-tokenless")
    hub = "?hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444"
    response = stack.http.get(stack.url(meta) + hub.format("meta-token"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "1158201444"
    refused(stack.http.get(stack.url(meta) + hub.format("wrong")), 403, "forbidden")
    refused(stack.http.get(stack.url(tokenless) + hub.format("")), 403, "forbidden")
    refused(stack.http.get(stack.url(meta)), 405, "method_not_allowed")  # a plain GET
    response = stack.http.get(stack.url(meta_off) + hub.format("meta-token"))
    refused(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"

    # Microsoft Graph: POST ?validationToken=… → the decoded token as plain text, nothing stored.
    graph = stack.create_source("graph")
    graph_off = stack.create_source("graph-off", settings=off["graph_validation"])
    response = post(stack.url(graph) + "?validationToken=abc%20def", headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "abc def"
    assert stored(stack, "graph") == []
    accepted(
        post(stack.url(graph_off) + "?validationToken=abc%20def", headers={"Content-Type": "text/plain"})
    )

    # CloudEvents: the OPTIONS abuse-protection handshake.
    events = stack.create_source("events", settings={"rate_limit": {"rate": 2, "burst": 10}})
    events_off = stack.create_source("events-off", settings=off["cloudevents_options"])
    origin = {"WebHook-Request-Origin": "eventemitter.example.com"}
    response = stack.http.options(stack.url(events), headers=origin)
    assert response.status_code == 200, response.text
    assert response.headers["webhook-allowed-origin"] == "eventemitter.example.com"
    assert response.headers["webhook-allowed-rate"] == "120"  # requests per minute: 2/s
    assert "POST" in [m.strip() for m in response.headers["allow"].split(",")]
    refused(stack.http.options(stack.url(events)), 405, "method_not_allowed")  # no origin: no handshake
    refused(stack.http.options(stack.url(events_off), headers=origin), 405, "method_not_allowed")

    # Salesforce outbound messages: stored, and answered with the SOAP acknowledgement.
    sf = stack.create_source("salesforce")
    sf_off = stack.create_source("salesforce-off", settings=off["salesforce_ack"])
    soap = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
    for attempt in (1, 2):  # a resend is acknowledged too, and stored once
        response = post(stack.url(sf), content=SALESFORCE_MESSAGE, headers=soap)
        assert response.status_code == 200, response.text
        assert "xml" in response.headers["content-type"]
        root = ET.fromstring(response.content)
        assert root.tag == f"{{{SOAP_NS}}}Envelope"
        ack = root.find(f"{{{SOAP_NS}}}Body/{{{SF_NS}}}notificationsResponse/{{{SF_NS}}}Ack")
        assert ack is not None and ack.text == "true", response.text
        (packet,) = stored(stack, "salesforce")
        assert packet.status == admin_pb.PACKET_STATUS_RECEIVED and packet.receipts == attempt
    assert stack.raw(packet.id) == SALESFORCE_MESSAGE
    accepted(post(stack.url(sf_off), content=SALESFORCE_MESSAGE, headers=soap))

    # GitHub's ping: signed, stored as ignored.
    gh_verify = {"verify": {"scheme": "github", "secrets": ["gh-secret"]}}
    gh = stack.create_source("github", settings=gh_verify)
    gh_off = stack.create_source("github-off", settings={**gh_verify, **off["github_ping"]})
    zen = b'{"zen":"Design for failure.","hook_id":1}'
    ping_headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hmac_hex("gh-secret", zen),
    }
    response = post(stack.url(gh), content=zen, headers=ping_headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored"
    ping = stack.packet(response.json()["id"])
    assert ping.status == admin_pb.PACKET_STATUS_IGNORED and ping.error == "github ping", ping
    unsigned = {k: v for k, v in ping_headers.items() if k != "X-Hub-Signature-256"}
    refused(post(stack.url(gh), content=zen, headers=unsigned), 401, "unauthorized")
    packet_id = accepted(post(stack.url(gh_off), content=zen, headers=ping_headers))
    assert stack.packet(packet_id).status == admin_pb.PACKET_STATUS_RECEIVED


# -- 4. idempotency -----------------------------------------------------------------------------------


def concurrent_copies(
    url: str, body: bytes, headers: dict[str, str], copies: int = 50
) -> list[httpx.Response]:
    barrier = threading.Barrier(copies)

    def send(_: int) -> httpx.Response:
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            return http.post(url, content=body, headers=headers)

    with ThreadPoolExecutor(copies) as pool:
        return list(pool.map(send, range(copies)))


def test_fifty_concurrent_copies_of_one_delivery_are_stored_once(stack: Stack) -> None:
    stack.receiver()
    hub = stack.create_source("hub", settings=UNLIMITED)
    secret = whsec()
    std = stack.create_source(
        "std", settings={**UNLIMITED, "verify": {"scheme": "standard-webhooks", "secrets": [secret]}}
    )
    body = b'{"action": "completed", "check_run": {"id": 128620228}}'
    github = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "check_run",
        "X-GitHub-Delivery": str(uuid.uuid4()),
    }
    event = json_body()
    signed = {"Content-Type": "application/json", **sign_standard(secret, "", event, int(time.time()))}

    for source, content, headers in ((hub, body, github), (std, event, signed)):
        responses = concurrent_copies(stack.url(source), content, headers)
        assert [r.status_code for r in responses] == [200] * 50, [
            r.text for r in responses if r.status_code != 200
        ]
        answers = [r.json() for r in responses]
        ids = {a["id"] for a in answers}
        assert len(ids) == 1, ids
        assert sorted(a.get("duplicate", False) for a in answers) == [False] + [True] * 49
        (packet,) = stored(stack, source.name)
        assert packet.id in ids
        assert packet.receipts == 50
        assert stack.packet(packet.id).receipts == 50
        assert stack.raw(packet.id) == content


def test_automatic_and_configured_dedup_keys(stack: Stack) -> None:
    stack.receiver()
    post = stack.http.post

    def twice(
        source: admin_pb.Source,
        first: tuple[bytes, dict[str, str]],
        second: tuple[bytes, dict[str, str]] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        second = second or first
        a = post(stack.url(source), content=first[0], headers=first[1])
        b = post(stack.url(source), content=second[0], headers=second[1])
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        return a.json(), b.json()

    def same(source: admin_pb.Source, *args: Any) -> None:
        a, b = twice(source, *args)
        assert "duplicate" not in a and b["duplicate"] is True and a["id"] == b["id"], (source.name, a, b)

    def distinct(source: admin_pb.Source, *args: Any) -> None:
        a, b = twice(source, *args)
        assert "duplicate" not in a and "duplicate" not in b and a["id"] != b["id"], (source.name, a, b)

    js = {"Content-Type": "application/json"}

    # Stripe: the event id in the body, when the delivery carries a Stripe-Signature. Stripe signs
    # each retry afresh, so the copies differ in their headers but not in their id.
    secret = f"whsec_{uuid.uuid4().hex}"
    stripe_source = stack.create_source(
        "stripe", settings={"verify": {"scheme": "stripe", "secrets": [secret]}}
    )
    event = b'{"id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event", "type": "charge.succeeded"}'

    def signed(body: bytes, age: int = 0) -> tuple[bytes, dict[str, str]]:
        return body, {**js, **sign_stripe(secret, "", body, int(time.time()) - age)}

    same(stripe_source, signed(event), signed(event, age=60))
    distinct(
        stripe_source, signed(event.replace(b"evt_1", b"evt_2")), signed(event.replace(b"evt_1", b"evt_3"))
    )
    (first, *_) = [p for p in stored(stack, "stripe") if p.receipts == 2]
    assert stack.raw(first.id) == event
    # Without a Stripe-Signature a body's "id" is just data.
    plain = stack.create_source("plain")
    distinct(plain, (event, js))

    # CloudEvents: ce-id within ce-source (binary mode), and id within source (structured mode).
    ce = stack.create_source("cloudevents")
    binary = {**js, "ce-specversion": "1.0", "ce-type": "com.example.order", "ce-id": "A234-1234-1234"}
    same(
        ce,
        (b'{"n": 1}', {**binary, "ce-source": "/orders"}),
        (b'{"n": 1}', {**binary, "ce-source": "/orders"}),
    )
    distinct(ce, (b'{"n": 2}', {**binary, "ce-source": "/a"}), (b'{"n": 2}', {**binary, "ce-source": "/b"}))
    structured = json.dumps(
        {"specversion": "1.0", "id": "s-1", "source": "/mycontext", "type": "com.example.x", "data": {}}
    ).encode()
    same(ce, (structured, {"Content-Type": "application/cloudevents+json"}))

    # Shopify's webhook id.
    shopify = stack.create_source("shopify")
    shop = {
        **js,
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    }
    same(shopify, (b'{"id": 820982911946154508}', shop))
    distinct(
        shopify,
        (b"{}", {**shop, "X-Shopify-Webhook-Id": "1"}),
        (b"{}", {**shop, "X-Shopify-Webhook-Id": "2"}),
    )

    # A configured header replaces the automatic keys.
    by_header = stack.create_source("by-header", settings={"dedup": {"header": "X-Request-Id"}})
    same(by_header, (b"one", {"X-Request-Id": "req-1"}), (b"two", {"X-Request-Id": "req-1"}))
    distinct(
        by_header,
        (b"x", {"X-GitHub-Delivery": "d-1", "X-Request-Id": "r-1"}),
        (b"x", {"X-GitHub-Delivery": "d-1", "X-Request-Id": "r-2"}),
    )
    distinct(by_header, (b"no key", {}))

    # A configured JSON path.
    by_path = stack.create_source("by-path", settings={"dedup": {"json_path": "event.id"}})
    same(by_path, (b'{"event": {"id": "e1"}, "n": 1}', js), (b'{"event": {"id": "e1"}, "n": 2}', js))
    distinct(by_path, (b'{"event": {"id": "e2"}}', js), (b'{"event": {"id": "e3"}}', js))
    distinct(by_path, (b'{"other": 1}', js))
    distinct(by_path, (b"not json", js))

    # Off: every copy is stored, even with a delivery id.
    off = stack.create_source("off", settings={"dedup": "off"})
    delivery = {**js, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    distinct(off, (b"{}", delivery))
    # Keys are per source: the same delivery id at another source is another packet.
    hub = stack.create_source("hub")
    same(hub, (b"{}", delivery))

    counts = {
        name: len(stored(stack, name))
        for name in ("stripe", "plain", "cloudevents", "shopify", "by-header", "by-path", "off", "hub")
    }
    assert counts == {
        "stripe": 3, "plain": 2, "cloudevents": 4, "shopify": 3,
        "by-header": 5, "by-path": 7, "off": 2, "hub": 1,
    }  # fmt: skip


def test_the_dedup_key_is_the_message_id_the_signature_covers(stack: Stack) -> None:
    """Svix signs svix-id (its library prefers svix-* headers, and so does the verifier); a
    webhook-id header riding along unsigned must not decide which delivery this is."""
    stack.receiver()
    secret = whsec()
    source = stack.create_source(
        "svix", settings={"verify": {"scheme": "standard-webhooks", "secrets": [secret]}}
    )
    body = json_body()
    now = int(time.time())
    signed = sign_standard(secret, "", body, now)
    svix = {
        "Content-Type": "application/json",
        "svix-id": signed["webhook-id"],
        "svix-timestamp": signed["webhook-timestamp"],
        "svix-signature": signed["webhook-signature"],
    }
    first = stack.http.post(stack.url(source), content=body, headers={**svix, "webhook-id": "msg_a"})
    # The same signed message replayed within the tolerance under another unsigned webhook-id.
    replay = stack.http.post(stack.url(source), content=body, headers={**svix, "webhook-id": "msg_b"})
    assert first.status_code == replay.status_code == 200, (first.text, replay.text)
    assert replay.json().get("duplicate") is True and replay.json()["id"] == first.json()["id"], replay.text
    assert len(stored(stack, "svix")) == 1


# -- 5. rate limits -----------------------------------------------------------------------------------


def test_rate_limits_per_source_and_for_unknown_guids(stack: Stack) -> None:
    stack.receiver()
    flooded = stack.create_source("flooded", settings={"rate_limit": {"rate": 5, "burst": 5}})
    calm = stack.create_source("calm")  # the default limits
    start = threading.Barrier(5)

    def flood(_: int) -> list[httpx.Response]:
        with httpx.Client(timeout=30) as http:
            start.wait()
            return [http.post(stack.url(flooded), content=b'{"n": 1}') for _ in range(10)]

    def neighbour() -> list[httpx.Response]:
        with httpx.Client(timeout=30) as http:
            start.wait()
            return [http.post(stack.url(calm), content=b'{"n": 2}') for _ in range(20)]

    began = time.monotonic()
    with ThreadPoolExecutor(5) as pool:
        calm_future = pool.submit(neighbour)
        floods = [r for batch in pool.map(flood, range(4)) for r in batch]
        calm_responses = calm_future.result()
    elapsed = time.monotonic() - began

    admitted = [r for r in floods if r.status_code == 200]
    limited = [r for r in floods if r.status_code == 429]
    assert len(admitted) + len(limited) == 40, {r.status_code for r in floods}
    assert 5 <= len(admitted) <= 5 + 5 * elapsed + 1, (len(admitted), elapsed)
    for response in limited:
        refused(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) >= 1
    assert len(stored(stack, "flooded")) == len(admitted)
    assert {r.json()["id"] for r in admitted} == {p.id for p in stored(stack, "flooded")}
    # The neighbour was not held back by the flood.
    assert [r.status_code for r in calm_responses] == [200] * 20
    assert len(stored(stack, "calm")) == 20
    # Honouring Retry-After works.
    time.sleep(int(limited[-1].headers["retry-after"]))
    accepted(stack.http.post(stack.url(flooded), content=b"{}"))

    # Guessing GUIDs: a typo's worth of 404s, then 429 for that client, for every URL alike, so
    # that no answer tells a real GUID from a guess.
    base = f"http://127.0.0.1:{stack.http_port}/V1/Data/"
    statuses = []
    began = time.monotonic()
    while len(statuses) < 60 and 429 not in statuses:
        response = stack.http.post(base + str(uuid.uuid4()), content=b"x")
        statuses.append(response.status_code)
    # A burst of 20, refilled at 5 a second while the guesses went on.
    refill = 5 * (time.monotonic() - began)
    assert statuses[:20] == [404] * 20 and statuses[-1] == 429, statuses
    assert len(statuses) - 1 <= 20 + refill + 1, (len(statuses), refill)
    refused(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    refused(stack.http.post(stack.url(calm), content=b"x"), 429, "rate_limited")
    time.sleep(retry_after)
    accepted(stack.http.post(stack.url(calm), content=b"x"))


# -- 6. GUID rotation ---------------------------------------------------------------------------------


def test_rotating_a_guid_with_and_without_overlap(stack: Stack) -> None:
    stack.receiver()
    overlapping = stack.create_source("overlapping")
    at_once = stack.create_source("at-once")
    twice = stack.create_source("twice")

    def rotate(name: str, overlap: int) -> admin_pb.Source:
        request = admin_pb.RotateSourceGuidRequest(source=ref(name), overlap_seconds=overlap)
        return stack.admin.RotateSourceGuid(request, timeout=10)

    def status(guid: str) -> int:
        return stack.http.post(
            f"http://127.0.0.1:{stack.http_port}/V1/Data/{guid}",
            content=b"{}",
            headers={"Content-Type": "application/json"},
        ).status_code

    def alive(guid: str) -> bool:
        """Probe without storing anything: a known GUID answers GET with 405, an unknown with 404."""
        code = stack.http.get(f"http://127.0.0.1:{stack.http_port}/V1/Data/{guid}").status_code
        assert code in (404, 405), code
        return code == 405

    # Revoked at once.
    rotated = rotate("at-once", 0)
    assert rotated.guid != at_once.guid and not rotated.previous_guid
    assert status(at_once.guid) == 404
    assert status(rotated.guid) == 200

    # With overlap both work, until the overlap ends.
    began = time.monotonic()
    rotated = rotate("overlapping", 3)
    assert rotated.previous_guid == overlapping.guid
    assert rotated.previous_guid_expires_at.seconds > 0
    assert status(overlapping.guid) == 200
    assert status(rotated.guid) == 200
    assert {p.source for p in stored(stack, "overlapping")} == {"overlapping"}
    assert len(stored(stack, "overlapping")) == 2
    while alive(overlapping.guid):
        assert time.monotonic() - began < 6, "the old GUID outlived its overlap"
        time.sleep(0.1)
    ended = time.monotonic() - began
    assert ended >= 2.9, f"the old GUID stopped after {ended:.1f}s of a 3s overlap"
    assert status(overlapping.guid) == 404
    assert status(rotated.guid) == 200

    # A second rotation during an overlap revokes the first old GUID; overlap 0 revokes both.
    first = rotate("twice", 30)
    second = rotate("twice", 30)
    assert second.previous_guid == first.guid
    assert (status(twice.guid), status(first.guid), status(second.guid)) == (404, 200, 200)
    third = rotate("twice", 0)
    assert (status(first.guid), status(second.guid), status(third.guid)) == (404, 404, 200)


# -- 7. content types, custom answers, the order of checks ------------------------------------------


def test_content_types_custom_answers_and_the_order_of_the_checks(stack: Stack) -> None:
    stack.receiver()
    typed = stack.create_source(
        "typed", settings={"content_types": ["application/json", "Application/X-WWW-Form-Urlencoded"]}
    )
    url = stack.url(typed)
    for content_type in ("text/plain", "application/xml", "application/jsonx"):
        refused(post_typed(stack, url, content_type), 415, "unsupported_media_type", "application/json")
    refused(stack.http.post(url, content=b"{}"), 415, "unsupported_media_type")  # none given
    assert stored(stack, "typed") == []
    for content_type in (
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/x-www-form-urlencoded",
    ):
        accepted(post_typed(stack, url, content_type))
    assert len(stored(stack, "typed")) == 4

    custom = stack.create_source(
        "custom", settings={"response": {"status": 202, "content_type": "text/plain", "body": "ok {{ id }}"}}
    )
    delivery = {"Content-Type": "application/json", "X-GitHub-Delivery": str(uuid.uuid4())}
    answers = [stack.http.post(stack.url(custom), content=b'{"a": 1}', headers=delivery) for _ in range(2)]
    for response in answers:
        assert response.status_code == 202, response.text
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text.startswith("ok ")
    assert answers[0].text == answers[1].text  # a retry hears the same id
    (packet,) = stored(stack, "custom")
    assert answers[0].text == f"ok {packet.id}"
    assert packet.receipts == 2

    # The order at the door: source → rate limit → content type → size → unsigned handshakes →
    # signature. A request wrong in several ways hears about the first.
    settings = {
        "verify": {"scheme": "github", "secrets": ["s3cret"]},
        "content_types": ["application/json", "application/x-www-form-urlencoded", "text/plain"],
        "rate_limit": {"rate": 0.1, "burst": 5},
    }
    source = stack.create_source("ordered", max_body=100, settings=settings)
    url = stack.url(source)
    forged = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    js = {"Content-Type": "application/json", **forged}
    refused(
        stack.http.post(url, content=b"{}", headers={**forged, "Content-Type": "text/xml"}),
        415,
        "unsupported_media_type",
    )
    refused(stack.http.post(url, content=b"x" * 101, headers=js), 413, "payload_too_large")
    # Graph's validation and WooCommerce's ping come before the signature (their senders sign nothing).
    graph = stack.http.post(url + "?validationToken=t0k", headers={"Content-Type": "text/plain"})
    assert (graph.status_code, graph.text) == (200, "t0k")
    ping = stack.http.post(
        url, content=b"webhook_id=7", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert ping.status_code == 200 and ping.json()["status"] == "ignored", ping.text
    refused(stack.http.post(url, content=b"{}", headers=js), 401, "unauthorized")
    # Five tokens spent: now the rate limit answers first, whatever else is wrong.
    refused(
        stack.http.post(url, content=b"{}", headers={**forged, "Content-Type": "text/xml"}),
        429,
        "rate_limited",
    )
    refused(stack.http.post(url, content=b"x" * 101, headers=js), 429, "rate_limited")
    # An unknown source is 404 before anything else.
    refused(stack.http.post(url[:-12] + "000000000000", content=b"x" * 101, headers=js), 404, "not_found")
    (only,) = stored(stack, "ordered")
    assert only.status == admin_pb.PACKET_STATUS_IGNORED


def post_typed(stack: Stack, url: str, content_type: str) -> httpx.Response:
    return stack.http.post(url, content=b"{}", headers={"Content-Type": content_type})
