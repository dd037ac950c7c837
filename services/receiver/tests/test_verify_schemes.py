"""Every scheme against the same matrix: valid, wrong secret, body changed, stale, missing header, rotation.

Deliveries are signed by the senders' own libraries wherever one is on PyPI (standardwebhooks, svix,
stripe, twilio, slack_sdk), so passing here means Hookbay accepts what those senders send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import standardwebhooks
import stripe
import svix.webhooks
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator

from hookbay_receiver.verify import SCHEMES, Delivery, VerificationFailed, parse_config, verify

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
URL = "https://hooks.example.com/V1/Data/7d9f0c1e-4b6a-4a8e-9a57-3f1f2d9c0b11"
JSON_BODY = '{"id":"evt_1","text":"Hello caf\u00e9","amount":4200}'.encode()
FORM_BODY = b"Body=Hello+caf%C3%A9&From=%2B15551234567&MessageSid=SM1&To=%2B15557654321"
FORM_TYPE = {"content-type": "application/x-www-form-urlencoded"}


def secret_for(scheme: str, n: int) -> str:
    """A distinct secret per index, in the shape the scheme's sender issues."""
    raw = hashlib.sha256(f"{scheme}-{n}".encode()).digest()
    if scheme == "standard-webhooks":
        return "whsec_" + base64.b64encode(raw[:24]).decode()
    if scheme == "stripe":
        return "whsec_" + raw.hex()[:32]
    return f"{scheme}-secret-{n}-" + raw.hex()[:12]


def hmac_b64(key: str, message: bytes, digest: Any = hashlib.sha256) -> str:
    return base64.b64encode(hmac.new(key.encode(), message, digest).digest()).decode()


def hmac_hex(key: str, message: bytes, digest: Any = hashlib.sha256) -> str:
    return hmac.new(key.encode(), message, digest).hexdigest()


# Signers: (secret, body, timestamp in seconds) -> Delivery, as each sender would deliver it.


def sign_standard(secret: str, body: bytes, ts: int) -> Delivery:
    signature = standardwebhooks.Webhook(secret).sign(
        "msg_2Kx", datetime.fromtimestamp(ts, UTC), body.decode()
    )
    headers = {"webhook-id": "msg_2Kx", "webhook-timestamp": str(ts), "webhook-signature": signature}
    return Delivery("POST", URL, headers, body)


def sign_svix(secret: str, body: bytes, ts: int) -> Delivery:
    signature = svix.webhooks.Webhook(secret).sign("msg_svix", datetime.fromtimestamp(ts, UTC), body.decode())
    headers = {"svix-id": "msg_svix", "svix-timestamp": str(ts), "svix-signature": signature}
    return Delivery("POST", URL, headers, body)


def sign_stripe(secret: str, body: bytes, ts: int) -> Delivery:
    value = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=ts)
    return Delivery("POST", URL, {"stripe-signature": value}, body)


def sign_github(secret: str, body: bytes, ts: int) -> Delivery:
    headers = {"x-hub-signature-256": "sha256=" + hmac_hex(secret, body), "x-github-event": "push"}
    return Delivery("POST", URL, headers, body)


def sign_meta(secret: str, body: bytes, ts: int) -> Delivery:
    return Delivery("POST", URL, {"x-hub-signature-256": "sha256=" + hmac_hex(secret, body)}, body)


def sign_shopify(secret: str, body: bytes, ts: int) -> Delivery:
    return Delivery("POST", URL, {"x-shopify-hmac-sha256": hmac_b64(secret, body)}, body)


def sign_woocommerce(secret: str, body: bytes, ts: int) -> Delivery:
    return Delivery("POST", URL, {"x-wc-webhook-signature": hmac_b64(secret, body)}, body)


def sign_typeform(secret: str, body: bytes, ts: int) -> Delivery:
    return Delivery("POST", URL, {"typeform-signature": "sha256=" + hmac_b64(secret, body)}, body)


def sign_slack(secret: str, body: bytes, ts: int) -> Delivery:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    headers = {"x-slack-signature": signature, "x-slack-request-timestamp": str(ts)}
    return Delivery("POST", URL, headers, body)


def sign_twilio_form(secret: str, body: bytes, ts: int) -> Delivery:
    params = dict(parse_qsl(body.decode()))
    signature = RequestValidator(secret).compute_signature(URL, params)
    # form is left to the verifier to decode from the body, so a changed byte changes the params.
    return Delivery("POST", URL, {"x-twilio-signature": signature, **FORM_TYPE}, body)


def sign_twilio_json(secret: str, body: bytes, ts: int) -> Delivery:
    validator = RequestValidator(secret)
    url = f"{URL}?bodySHA256={validator.compute_hash(body.decode())}"
    signature = validator.compute_signature(url, {})
    return Delivery("POST", url, {"x-twilio-signature": signature, "content-type": "application/json"}, body)


def sign_hubspot(secret: str, body: bytes, ts: int) -> Delivery:
    # The formula of hubspot-api-client's Signature.get_signature for v3 (the package is not a
    # dependency): method + uri + body + timestamp in milliseconds, base64 HMAC-SHA256.
    millis = str(ts * 1000)
    signature = hmac_b64(secret, b"POST" + URL.encode() + body + millis.encode())
    headers = {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": millis}
    return Delivery("POST", URL, headers, body)


def sign_hmac_body(secret: str, body: bytes, ts: int) -> Delivery:
    return Delivery("POST", URL, {"x-signature": hmac_hex(secret, body)}, body)


def sign_hmac_timed(secret: str, body: bytes, ts: int) -> Delivery:
    millis = str(ts * 1000)
    signature = "sha512=" + hmac_b64(secret, millis.encode() + b"." + body, hashlib.sha512)
    return Delivery("POST", URL, {"x-acme-signature": signature, "x-acme-timestamp": millis}, body)


def sign_basic(secret: str, body: bytes, ts: int) -> Delivery:
    credentials = base64.b64encode(f"hookbay:{secret}".encode()).decode()
    return Delivery("POST", URL, {"authorization": f"Basic {credentials}"}, body)


def sign_bearer(secret: str, body: bytes, ts: int) -> Delivery:
    return Delivery("POST", URL, {"authorization": f"Bearer {secret}"}, body)


def sign_api_key(secret: str, body: bytes, ts: int) -> Delivery:
    return Delivery("POST", URL, {"x-api-key": secret}, body)


@dataclass(frozen=True)
class Case:
    id: str
    scheme: str
    sign: Callable[[str, bytes, int], Delivery]
    headers: tuple[str, ...]  # the display names of the headers the scheme requires
    options: dict[str, Any] = field(default_factory=dict)
    body: bytes = JSON_BODY
    timed: bool = False
    covers_body: bool = True
    mismatch: str = "signature mismatch"
    tampered: str = "signature mismatch"  # the reason when one byte of the body changed
    missing: dict[str, str] = field(default_factory=dict)  # header -> reason, when not "missing header X"

    def config(self, secrets: list[Any]) -> Any:
        return parse_config({"scheme": self.scheme, "secrets": secrets, **self.options})


CASES = [
    Case(
        "standard-webhooks",
        "standard-webhooks",
        sign_standard,
        ("webhook-id", "webhook-timestamp", "webhook-signature"),
        timed=True,
    ),
    Case(
        "standard-webhooks/svix",
        "standard-webhooks",
        sign_svix,
        ("svix-id", "svix-timestamp", "svix-signature"),
        timed=True,
        missing={
            "svix-id": "missing header webhook-id",
            "svix-timestamp": "missing header webhook-timestamp",
            "svix-signature": "missing header webhook-signature",
        },
    ),
    Case("stripe", "stripe", sign_stripe, ("Stripe-Signature",), timed=True),
    Case("github", "github", sign_github, ("X-Hub-Signature-256",)),
    Case("shopify", "shopify", sign_shopify, ("X-Shopify-Hmac-Sha256",)),
    Case("woocommerce", "woocommerce", sign_woocommerce, ("X-WC-Webhook-Signature",)),
    Case("slack", "slack", sign_slack, ("X-Slack-Signature", "X-Slack-Request-Timestamp"), timed=True),
    Case("twilio/form", "twilio", sign_twilio_form, ("X-Twilio-Signature",), body=FORM_BODY),
    Case(
        "twilio/json",
        "twilio",
        sign_twilio_json,
        ("X-Twilio-Signature",),
        tampered="bodySHA256 mismatch",
    ),
    Case(
        "hubspot-v3",
        "hubspot-v3",
        sign_hubspot,
        ("X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"),
        timed=True,
    ),
    Case("typeform", "typeform", sign_typeform, ("Typeform-Signature",)),
    Case("meta", "meta", sign_meta, ("X-Hub-Signature-256",)),
    Case("hmac/body", "hmac", sign_hmac_body, ("X-Signature",), options={"header": "X-Signature"}),
    Case(
        "hmac/timestamp-ms",
        "hmac",
        sign_hmac_timed,
        ("X-Acme-Signature", "X-Acme-Timestamp"),
        options={
            "header": "X-Acme-Signature",
            "algorithm": "sha512",
            "encoding": "base64",
            "prefix": "sha512=",
            "signed": "{timestamp}.{body}",
            "timestamp_header": "X-Acme-Timestamp",
            "timestamp_unit": "ms",
        },
        timed=True,
    ),
    Case(
        "basic",
        "basic",
        sign_basic,
        ("Authorization",),
        options={"username": "hookbay"},
        covers_body=False,
        mismatch="credentials mismatch",
    ),
    Case(
        "header-token/bearer",
        "header-token",
        sign_bearer,
        ("Authorization",),
        covers_body=False,
        mismatch="credentials mismatch",
    ),
    Case(
        "header-token/x-api-key",
        "header-token",
        sign_api_key,
        ("X-Api-Key",),
        options={"header": "X-Api-Key"},
        covers_body=False,
        mismatch="credentials mismatch",
    ),
]
BY_CASE = pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
TIMED = [case for case in CASES if case.timed]


def reason(case: Case, config: Any, delivery: Delivery) -> str:
    with pytest.raises(VerificationFailed) as failure:
        verify(config, delivery, now=NOW)
    return str(failure.value)


def flip_one_byte(body: bytes) -> bytes:
    at = body.index(b"Hello")
    return body[:at] + b"I" + body[at + 1 :]  # 'H' -> 'I': one byte, still valid JSON / form


def test_every_scheme_is_in_the_matrix() -> None:
    assert {case.scheme for case in CASES} == set(SCHEMES)


@BY_CASE
def test_valid_delivery_passes(case: Case) -> None:
    secret = secret_for(case.scheme, 1)
    delivery = case.sign(secret, case.body, NOW_TS)
    result = verify(case.config([secret]), delivery, now=NOW)
    expected_id = delivery.headers.get("webhook-id") or delivery.headers.get("svix-id")
    assert result == expected_id


@BY_CASE
def test_header_names_are_case_insensitive(case: Case) -> None:
    secret = secret_for(case.scheme, 1)
    delivery = case.sign(secret, case.body, NOW_TS)
    shouted = replace(delivery, headers={name.upper(): value for name, value in delivery.headers.items()})
    verify(case.config([secret]), shouted, now=NOW)


@BY_CASE
def test_wrong_secret_fails(case: Case) -> None:
    delivery = case.sign(secret_for(case.scheme, 2), case.body, NOW_TS)
    assert reason(case, case.config([secret_for(case.scheme, 1)]), delivery) == case.mismatch


@BY_CASE
def test_one_changed_body_byte_fails(case: Case) -> None:
    secret = secret_for(case.scheme, 1)
    delivery = case.sign(secret, case.body, NOW_TS)
    tampered = replace(delivery, body=flip_one_byte(delivery.body))
    if case.covers_body:
        assert reason(case, case.config([secret]), tampered) == case.tampered
    else:
        # Basic and header tokens authenticate the sender only: the body is not covered, by design.
        verify(case.config([secret]), tampered, now=NOW)


@pytest.mark.parametrize("case", TIMED, ids=[case.id for case in TIMED])
@pytest.mark.parametrize("offset", [-301, 301, -86_400 * 3], ids=["stale", "future", "three-days-old"])
def test_timestamp_outside_tolerance_fails(case: Case, offset: int) -> None:
    secret = secret_for(case.scheme, 1)
    delivery = case.sign(secret, case.body, NOW_TS + offset)
    assert reason(case, case.config([secret]), delivery) == "timestamp outside tolerance"


@pytest.mark.parametrize("case", TIMED, ids=[case.id for case in TIMED])
@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_at_the_edge_of_tolerance_passes(case: Case, offset: int) -> None:
    secret = secret_for(case.scheme, 1)
    verify(case.config([secret]), case.sign(secret, case.body, NOW_TS + offset), now=NOW)


@pytest.mark.parametrize("case", TIMED, ids=[case.id for case in TIMED])
def test_tolerance_is_configurable(case: Case) -> None:
    secret = secret_for(case.scheme, 1)
    delivery = case.sign(secret, case.body, NOW_TS - 600)
    widened = parse_config(
        {"scheme": case.scheme, "secrets": [secret], "tolerance_seconds": 900, **case.options}
    )
    verify(widened, delivery, now=NOW)
    narrowed = parse_config(
        {"scheme": case.scheme, "secrets": [secret], "tolerance_seconds": 60, **case.options}
    )
    fresh = case.sign(secret, case.body, NOW_TS - 61)
    assert reason(case, narrowed, fresh) == "timestamp outside tolerance"


MISSING = [(case, name) for case in CASES for name in case.headers]


@pytest.mark.parametrize("case,name", MISSING, ids=[f"{case.id}:{name}" for case, name in MISSING])
def test_missing_header_fails_naming_it(case: Case, name: str) -> None:
    secret = secret_for(case.scheme, 1)
    delivery = case.sign(secret, case.body, NOW_TS)
    headers = {k: v for k, v in delivery.headers.items() if k != name.lower()}
    assert len(headers) == len(delivery.headers) - 1
    expected = case.missing.get(name, f"missing header {name}")
    assert reason(case, case.config([secret]), replace(delivery, headers=headers)) == expected


@BY_CASE
def test_empty_header_counts_as_missing(case: Case) -> None:
    secret = secret_for(case.scheme, 1)
    delivery = case.sign(secret, case.body, NOW_TS)
    name = case.headers[-1]
    headers = {**delivery.headers, name.lower(): "  "}
    # Present but blank names the header that was sent (svix-signature, not webhook-signature).
    assert reason(case, case.config([secret]), replace(delivery, headers=headers)) == f"missing header {name}"


@BY_CASE
def test_rotation_old_and_new_secrets_both_pass(case: Case) -> None:
    old, new = secret_for(case.scheme, 1), secret_for(case.scheme, 2)
    config = case.config([{"value": old, "expires_at": (NOW + timedelta(hours=1)).isoformat()}, new])
    verify(config, case.sign(old, case.body, NOW_TS), now=NOW)
    verify(config, case.sign(new, case.body, NOW_TS), now=NOW)


@BY_CASE
def test_rotation_expired_secret_no_longer_passes(case: Case) -> None:
    old, new = secret_for(case.scheme, 1), secret_for(case.scheme, 2)
    config = case.config([{"value": old, "expires_at": NOW - timedelta(seconds=1)}, new])
    assert reason(case, config, case.sign(old, case.body, NOW_TS)) == case.mismatch
    verify(config, case.sign(new, case.body, NOW_TS), now=NOW)
    # The same secret passed a second before it expired.
    verify(config, case.sign(old, case.body, NOW_TS), now=NOW - timedelta(seconds=2))


@BY_CASE
def test_only_expired_secrets_left_fails_closed(case: Case) -> None:
    old = secret_for(case.scheme, 1)
    config = case.config([{"value": old, "expires_at": NOW - timedelta(days=1)}])
    assert reason(case, config, case.sign(old, case.body, NOW_TS)) == "no live secret"


@BY_CASE
def test_reasons_never_contain_the_secret_the_signature_or_the_body(case: Case) -> None:
    secret = secret_for(case.scheme, 1)
    signed = case.sign(secret, case.body, NOW_TS)
    config = case.config([secret])
    failures = [
        case.sign(secret_for(case.scheme, 2), case.body, NOW_TS),
        replace(signed, body=flip_one_byte(signed.body)),
        replace(signed, headers={name: value + "x" for name, value in signed.headers.items()}),
        replace(signed, headers={name: value[:-3] for name, value in signed.headers.items()}),
        replace(signed, headers={}),
    ]
    if case.timed:
        failures.append(case.sign(secret, case.body, NOW_TS - 3600))
    # Sentinels: the secret, the body's distinctive text, and every signature value, ours and theirs.
    sentinels = [secret, secret.removeprefix("whsec_"), "Hello", "caf", *signed.headers.values()]
    for delivery in failures:
        try:
            verify(config, delivery, now=NOW)
        except VerificationFailed as failure:
            text = f"{failure} {failure!r} {failure.args}"
            for sentinel in sentinels:
                assert sentinel not in text, (case.id, str(failure))
    assert secret not in repr(config)


def mutations(rng: random.Random, value: str) -> str:
    at = rng.randrange(len(value) + 1)
    junk = rng.choice(["", " ", ",", "=", "v1,", "t=", ":", "\u00e9", "\x00", "A" * 5000, "0" * 20, "%3A"])
    return rng.choice(
        [
            value[:at],
            value[:at] + junk + value[at:],
            value[:at] + junk + value[at + 1 :],
            value + " " + value,
            value.swapcase(),
        ]
    )


@BY_CASE
def test_mutated_deliveries_only_ever_fail_cleanly(case: Case) -> None:
    seed = random.randrange(2**32)
    print(f"seed={seed}")  # rerun a failure with this seed
    rng = random.Random(seed)
    secret = secret_for(case.scheme, 1)
    config = case.config([secret])
    signed = case.sign(secret, case.body, NOW_TS)
    for _ in range(300):
        headers = dict(signed.headers)
        for name in rng.sample(sorted(headers), rng.randint(1, len(headers))):
            headers[name] = mutations(rng, headers[name])
        url = rng.choice([signed.url, mutations(rng, signed.url)])
        body = rng.choice([signed.body, mutations(rng, signed.body.decode()).encode()])
        try:
            verify(config, Delivery("POST", url, headers, body), now=NOW)
        except VerificationFailed as failure:
            assert len(str(failure)) < 80 and secret not in str(failure), (seed, str(failure))
