"""Vendors' published test vectors, and each sender library's quirks checked against Hookbay's verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import standardwebhooks
import stripe
import svix.webhooks
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator, get_signature_algorithm

from hookbay_receiver.verify import SCHEMES, Delivery, VerificationFailed, VerifyConfig, parse_config, verify

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
URL = "https://hooks.example.com/V1/Data/7d9f0c1e-4b6a-4a8e-9a57-3f1f2d9c0b11"
BODY = b'{"id":"evt_1","type":"ping"}'
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the secret in Standard Webhooks' own examples


def failure(config: VerifyConfig, delivery: Delivery, now: datetime = NOW) -> str:
    with pytest.raises(VerificationFailed) as raised:
        verify(config, delivery, now=now)
    return str(raised.value)


# GitHub


GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_VECTOR = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_published_vector() -> None:
    config = parse_config({"scheme": "github", "secrets": [GITHUB_SECRET]})
    delivery = Delivery("POST", URL, {"x-hub-signature-256": GITHUB_VECTOR}, b"Hello, World!")
    assert verify(config, delivery, now=NOW) is None
    assert failure(
        config, Delivery("POST", URL, {"x-hub-signature-256": GITHUB_VECTOR}, b"Hello, World?")
    ) == ("signature mismatch")


def test_github_hex_is_case_insensitive_and_the_prefix_required() -> None:
    config = parse_config({"scheme": "github", "secrets": [GITHUB_SECRET]})
    upper = "sha256=" + GITHUB_VECTOR.removeprefix("sha256=").upper()
    verify(config, Delivery("POST", URL, {"x-hub-signature-256": upper}, b"Hello, World!"), now=NOW)
    bare = GITHUB_VECTOR.removeprefix("sha256=")
    delivery = Delivery("POST", URL, {"x-hub-signature-256": bare}, b"Hello, World!")
    assert failure(config, delivery) == "malformed header X-Hub-Signature-256"


def test_github_legacy_sha1_only_when_allowed_and_never_over_sha256() -> None:
    body = b"Hello, World!"
    sha1 = "sha1=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha1).hexdigest()
    strict = parse_config({"scheme": "github", "secrets": [GITHUB_SECRET]})
    lenient = parse_config({"scheme": "github", "secrets": [GITHUB_SECRET], "allow_sha1": True})
    legacy = Delivery("POST", URL, {"x-hub-signature": sha1}, body)
    assert failure(strict, legacy) == "missing header X-Hub-Signature-256"
    verify(lenient, legacy, now=NOW)
    # A forged SHA-256 next to a valid SHA-1 must not pass by falling back to the weaker one.
    both = Delivery("POST", URL, {"x-hub-signature": sha1, "x-hub-signature-256": "sha256=" + "0" * 64}, body)
    assert failure(lenient, both) == "signature mismatch"


def test_raw_bytes_that_are_not_utf8_verify() -> None:
    body = b"\xff\xfe\x00binary\x80"
    signature = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    config = parse_config({"scheme": "github", "secrets": [GITHUB_SECRET]})
    verify(config, Delivery("POST", URL, {"x-hub-signature-256": signature}, body), now=NOW)


# Twilio


TWILIO_TOKEN = "12345"
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
TWILIO_VECTOR = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
TWILIO = parse_config({"scheme": "twilio", "secrets": [TWILIO_TOKEN]})


def twilio_delivery(url: str, signature: str, form: list[tuple[str, str]] | None, **headers: str) -> Delivery:
    return Delivery("POST", url, {"x-twilio-signature": signature, **headers}, b"form-bytes", form=form)


def test_twilio_published_vector() -> None:
    assert RequestValidator(TWILIO_TOKEN).compute_signature(TWILIO_URL, TWILIO_PARAMS) == TWILIO_VECTOR
    # The caller's form order does not matter: parameters are sorted by name before signing.
    form = sorted(TWILIO_PARAMS.items(), reverse=True)
    assert verify(TWILIO, twilio_delivery(TWILIO_URL, TWILIO_VECTOR, form), now=NOW) is None
    changed = [*form[:-1], ("CallSid", "CA0000000000ABCDE")]
    assert failure(TWILIO, twilio_delivery(TWILIO_URL, TWILIO_VECTOR, changed)) == "signature mismatch"
    other_url = TWILIO_URL.replace("foo=1", "foo=2")
    assert failure(TWILIO, twilio_delivery(other_url, TWILIO_VECTOR, form)) == "signature mismatch"


@pytest.mark.parametrize(
    "signed_url,delivered_url",
    [
        ("https://mycompany.com:443/myapp.php?foo=1", "https://mycompany.com/myapp.php?foo=1"),
        ("https://mycompany.com/myapp.php?foo=1", "https://mycompany.com:443/myapp.php?foo=1"),
        ("http://mycompany.com:80/myapp.php", "http://mycompany.com/myapp.php"),
        ("https://mycompany.com/myapp.php", "https://mycompany.com:8443/myapp.php"),
    ],
)
def test_twilio_url_with_and_without_port_like_twilios_validator(signed_url: str, delivered_url: str) -> None:
    validator = RequestValidator(TWILIO_TOKEN)
    signature = validator.compute_signature(signed_url, TWILIO_PARAMS)
    assert validator.validate(delivered_url, TWILIO_PARAMS, signature)
    verify(TWILIO, twilio_delivery(delivered_url, signature, list(TWILIO_PARAMS.items())), now=NOW)


def test_twilio_other_hosts_and_paths_do_not_pass() -> None:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature("https://mycompany.com/a", TWILIO_PARAMS)
    for url in ["https://evil.example/a", "https://mycompany.com/b", "http://mycompany.com/a"]:
        assert (
            failure(TWILIO, twilio_delivery(url, signature, list(TWILIO_PARAMS.items())))
            == "signature mismatch"
        )


def test_twilio_json_body_is_bound_by_body_sha256() -> None:
    validator = RequestValidator(TWILIO_TOKEN)
    body = '{"CallSid":"CA1234567890ABCDE","Status":"completed"}'
    url = f"https://mycompany.com/myapp.php?bodySHA256={validator.compute_hash(body)}"
    signature = validator.compute_signature(url, {})
    assert validator.validate(url, body, signature)
    delivery = Delivery("POST", url, {"x-twilio-signature": signature}, body.encode())
    verify(TWILIO, delivery, now=NOW)
    swapped = Delivery("POST", url, {"x-twilio-signature": signature}, b'{"Status":"failed"}')
    assert failure(TWILIO, swapped) == "bodySHA256 mismatch"


def test_twilio_body_not_covered_by_the_signature_is_refused() -> None:
    # A signature over the bare URL (an empty-body callback) must not vouch for a body put in later.
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(TWILIO_URL, {})
    verify(TWILIO, Delivery("POST", TWILIO_URL, {"x-twilio-signature": signature}, b""), now=NOW)
    smuggled = Delivery(
        "POST", TWILIO_URL, {"x-twilio-signature": signature, "content-type": "application/json"}, b'{"a":1}'
    )
    assert failure(TWILIO, smuggled) == "body not covered by signature"


def test_twilio_repeated_parameters_sign_like_the_library() -> None:
    class MultiDict(dict[str, list[str]]):
        def getall(self, name: str) -> list[str]:
            return self[name]

    form = [("To", "+1555"), ("MediaUrl", "https://b"), ("MediaUrl", "https://a"), ("MediaUrl", "https://a")]
    grouped = MultiDict()
    for name, value in form:
        grouped.setdefault(name, []).append(value)
    # Twilio's library sorts each name's values and drops duplicates; so must we.
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(TWILIO_URL, grouped)
    verify(TWILIO, twilio_delivery(TWILIO_URL, signature, form), now=NOW)


def test_twilio_form_is_decoded_from_the_body_when_the_caller_passes_none() -> None:
    body = b"Body=caf%C3%A9+%26+more&From=%2B15551234567&Empty="
    params = {"Body": "café & more", "From": "+15551234567", "Empty": ""}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(TWILIO_URL, params)
    headers = {
        "x-twilio-signature": signature,
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    verify(TWILIO, Delivery("POST", TWILIO_URL, headers, body), now=NOW)
    bad = Delivery("POST", TWILIO_URL, headers, b"Body=\xff\xfe")
    assert failure(TWILIO, bad) == "malformed form body"


def test_twilio_shared_key_hmac_sha256() -> None:
    shared_key = "sharedkey-secret"
    config = parse_config({"scheme": "twilio", "secrets": [TWILIO_TOKEN, shared_key]})
    settings = "key=KS0123456789abcdef,algorithm=HMAC_SHA256"
    assert get_signature_algorithm(settings) == "HMAC_SHA256"
    signature = RequestValidator(shared_key).compute_signature(
        TWILIO_URL, TWILIO_PARAMS, algorithm="HMAC_SHA256"
    )
    headers = {"x-twilio-webhooks-signature-settings": settings}
    verify(config, twilio_delivery(TWILIO_URL, signature, list(TWILIO_PARAMS.items()), **headers), now=NOW)
    # Without the settings header the same signature is read as HMAC-SHA1, and fails.
    assert failure(config, twilio_delivery(TWILIO_URL, signature, list(TWILIO_PARAMS.items()))) == (
        "signature mismatch"
    )
    unknown = {"x-twilio-webhooks-signature-settings": "key=KS1,algorithm=HMAC_MD5"}
    assert failure(config, twilio_delivery(TWILIO_URL, signature, [], **unknown)) == (
        "unsupported algorithm in X-Twilio-Webhooks-Signature-Settings"
    )


# Stripe


STRIPE_SECRET = "whsec_test_secret_0123456789abcdef"
STRIPE = parse_config({"scheme": "stripe", "secrets": [STRIPE_SECRET]})


def stripe_delivery(value: str, body: bytes = BODY) -> Delivery:
    return Delivery("POST", URL, {"stripe-signature": value}, body)


def test_stripe_several_v1_and_ignored_v0_and_unknown_keys() -> None:
    good = stripe.WebhookSignature.generate_signature_header(BODY.decode(), STRIPE_SECRET, timestamp=NOW_TS)
    v1 = good.split("v1=")[1]
    header = f"t={NOW_TS},v1={'0' * 64},v1={v1},v0={'f' * 64},scheme=x,extra"
    # Stripe's own verifier accepts the same header (tolerance 0 turns off its clock check).
    assert stripe.WebhookSignature.verify_header(BODY, header, STRIPE_SECRET, tolerance=0)
    verify(STRIPE, stripe_delivery(header), now=NOW)


def test_stripe_header_shapes_that_fail() -> None:
    assert failure(STRIPE, stripe_delivery(f"v1={'0' * 64}")) == "malformed header Stripe-Signature"
    assert failure(STRIPE, stripe_delivery(f"t=12ab,v1={'0' * 64}")) == "malformed header Stripe-Signature"
    assert (
        failure(STRIPE, stripe_delivery(f"t={NOW_TS},v0={'0' * 64}")) == "no v1 signature in Stripe-Signature"
    )
    assert failure(STRIPE, stripe_delivery(f"t={NOW_TS},v1=zz")) == "malformed signature"


def test_stripe_key_is_the_whole_whsec_string_not_its_base64() -> None:
    decoded_key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    wrong = hmac.new(decoded_key, f"{NOW_TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    config = parse_config({"scheme": "stripe", "secrets": [WHSEC]})
    assert failure(config, stripe_delivery(f"t={NOW_TS},v1={wrong}")) == "signature mismatch"


def test_stripe_only_the_first_ten_signatures_are_read() -> None:
    good = stripe.WebhookSignature.generate_signature_header(BODY.decode(), STRIPE_SECRET, timestamp=NOW_TS)
    v1 = good.split("v1=")[1]
    padding = ",".join(["v1=" + "0" * 64] * 10)
    assert failure(STRIPE, stripe_delivery(f"t={NOW_TS},{padding},v1={v1}")) == "signature mismatch"


# Standard Webhooks and Svix


STANDARD = parse_config({"scheme": "standard-webhooks", "secrets": [WHSEC]})


def standard_signature(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    return standardwebhooks.Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())


def standard_delivery(
    signature: str, msg_id: str = "msg_1", ts: int = NOW_TS, body: bytes = BODY
) -> Delivery:
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}
    return Delivery("POST", URL, headers, body)


def test_standard_webhooks_several_signatures_and_other_versions() -> None:
    good = standard_signature(WHSEC, "msg_1", NOW_TS, BODY)
    other = standard_signature("whsec_" + base64.b64encode(b"x" * 24).decode(), "msg_1", NOW_TS, BODY)
    value = f"v1a,{base64.b64encode(b'e' * 64).decode()} {other}  {good}"
    assert verify(STANDARD, standard_delivery(value), now=NOW) == "msg_1"


def test_standard_webhooks_signature_shapes_that_fail() -> None:
    assert failure(STANDARD, standard_delivery("v1,not*base64")) == "malformed signature"
    other = standard_signature("whsec_" + base64.b64encode(b"x" * 24).decode(), "msg_1", NOW_TS, BODY)
    assert failure(STANDARD, standard_delivery(f"v1,not*base64 {other}")) == "signature mismatch"
    assert failure(STANDARD, standard_delivery("v1a,AAAA")) == "no v1 signature in webhook-signature"
    assert failure(STANDARD, standard_delivery("garbage")) == "no v1 signature in webhook-signature"


def test_standard_webhooks_only_the_first_ten_signatures_are_read() -> None:
    good = standard_signature(WHSEC, "msg_1", NOW_TS, BODY)
    other = standard_signature("whsec_" + base64.b64encode(b"x" * 24).decode(), "msg_1", NOW_TS, BODY)
    assert failure(STANDARD, standard_delivery(" ".join([other] * 10 + [good]))) == "signature mismatch"


def test_standard_webhooks_id_is_signed() -> None:
    good = standard_signature(WHSEC, "msg_1", NOW_TS, BODY)
    assert failure(STANDARD, standard_delivery(good, msg_id="msg_2")) == "signature mismatch"


@pytest.mark.parametrize("value", ["abc", "+1796299200", "1796299200.5", "\u0661\u0662", "-5", "9" * 40])
def test_standard_webhooks_timestamp_must_be_plain_digits(value: str) -> None:
    delivery = standard_delivery(standard_signature(WHSEC, "msg_1", NOW_TS, BODY))
    headers = {**delivery.headers, "webhook-timestamp": value}
    assert failure(STANDARD, Delivery("POST", URL, headers, BODY)) == "malformed header webhook-timestamp"


@pytest.mark.parametrize(
    "secret",
    [WHSEC, WHSEC.removeprefix("whsec_"), "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("=")],
    ids=["whsec", "bare-base64", "unpadded"],
)
def test_standard_webhooks_secret_forms(secret: str) -> None:
    config = parse_config({"scheme": "standard-webhooks", "secrets": [secret]})
    verify(config, standard_delivery(standard_signature(secret, "msg_1", NOW_TS, BODY)), now=NOW)


def test_standard_webhooks_non_utf8_body_verifies_over_raw_bytes() -> None:
    # The Python libraries decode the body as UTF-8 and cannot sign this; the scheme itself can.
    body = b"\x89PNG\r\n\x1a\n\xff"
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    digest = hmac.new(key, f"msg_1.{NOW_TS}.".encode() + body, hashlib.sha256).digest()
    verify(STANDARD, standard_delivery("v1," + base64.b64encode(digest).decode(), body=body), now=NOW)


def test_svix_headers_win_over_webhook_headers_like_svixs_library() -> None:
    good = svix.webhooks.Webhook(WHSEC).sign("msg_svix", datetime.fromtimestamp(NOW_TS, UTC), BODY.decode())
    headers = {
        "svix-id": "msg_svix",
        "svix-timestamp": str(NOW_TS),
        "svix-signature": good,
        "webhook-id": "msg_other",
        "webhook-timestamp": "1",
        "webhook-signature": "v1,AAAA",
    }
    assert verify(STANDARD, Delivery("POST", URL, headers, BODY), now=NOW) == "msg_svix"


def test_standard_webhooks_agrees_with_the_library_on_the_real_clock() -> None:
    # The libraries read the real clock, so this one check runs on it too (now=None).
    msg_id, now = "msg_clock", datetime.now(UTC)
    signature = standardwebhooks.Webhook(WHSEC).sign(msg_id, now, BODY.decode())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    standardwebhooks.Webhook(WHSEC).verify(BODY, headers)
    svix.webhooks.Webhook(WHSEC).verify(BODY, headers)
    assert verify(STANDARD, Delivery("POST", URL, headers, BODY)) == msg_id


# Slack


class FixedClock:
    def now(self) -> float:
        return float(NOW_TS)


def test_slack_agrees_with_slack_sdk() -> None:
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    verifier = SignatureVerifier(secret, clock=FixedClock())
    signature = verifier.generate_signature(timestamp=str(NOW_TS), body=BODY)
    assert verifier.is_valid(BODY, str(NOW_TS), signature)
    headers = {"x-slack-signature": signature, "x-slack-request-timestamp": str(NOW_TS)}
    config = parse_config({"scheme": "slack", "secrets": [secret]})
    verify(config, Delivery("POST", URL, headers, BODY), now=NOW)
    bare = {**headers, "x-slack-signature": signature.removeprefix("v0=")}
    assert failure(config, Delivery("POST", URL, bare, BODY)) == "malformed header X-Slack-Signature"


# HubSpot v3


def hubspot_signature(secret: str, method: str, uri: str, body: bytes, millis: str) -> str:
    message = method.encode() + uri.encode() + body + millis.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize("signed_as", ["given", "decoded"])
def test_hubspot_uri_as_given_or_with_documented_decoding(signed_as: str) -> None:
    url = "https://hooks.example.com/V1/Data/abc?redirect=https%3A%2F%2Fapp.example%2Fx%3Fa%3D1&b=%2a"
    decoded = "https://hooks.example.com/V1/Data/abc?redirect=https://app.example/x?a%3D1&b=*"
    millis = str(NOW_TS * 1000)
    signature = hubspot_signature("hs-secret", "POST", url if signed_as == "given" else decoded, BODY, millis)
    headers = {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": millis}
    config = parse_config({"scheme": "hubspot-v3", "secrets": ["hs-secret"]})
    verify(config, Delivery("post", url, headers, BODY), now=NOW)  # the method is upper-cased


def test_hubspot_method_and_timestamp_are_signed() -> None:
    millis = str(NOW_TS * 1000)
    signature = hubspot_signature("hs-secret", "POST", URL, BODY, millis)
    config = parse_config({"scheme": "hubspot-v3", "secrets": ["hs-secret"]})
    headers = {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": millis}
    assert failure(config, Delivery("PUT", URL, headers, BODY)) == "signature mismatch"
    moved = {**headers, "x-hubspot-request-timestamp": str(NOW_TS * 1000 + 1)}
    assert failure(config, Delivery("POST", URL, moved, BODY)) == "signature mismatch"
    # Seconds where milliseconds are expected are decades out of tolerance.
    seconds = {**headers, "x-hubspot-request-timestamp": str(NOW_TS)}
    assert failure(config, Delivery("POST", URL, seconds, BODY)) == "timestamp outside tolerance"


# Generic hmac


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_generic_hmac_algorithms_and_encodings(algorithm: str, encoding: str) -> None:
    digest = hmac.new(b"k3y", BODY, algorithm).digest()
    value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    raw = {
        "scheme": "hmac",
        "secrets": ["k3y"],
        "header": "X-Sig",
        "algorithm": algorithm,
        "encoding": encoding,
    }
    verify(parse_config(raw), Delivery("POST", URL, {"x-sig": value}, BODY), now=NOW)
    other = "sha512" if algorithm != "sha512" else "sha1"
    assert failure(
        parse_config({**raw, "algorithm": other}), Delivery("POST", URL, {"x-sig": value}, BODY)
    ) == ("signature mismatch")


def test_generic_hmac_template_with_method_url_and_seconds() -> None:
    raw = {
        "scheme": "hmac",
        "secrets": ["k3y"],
        "header": "X-Sig",
        "prefix": "v1=",
        "signed": "{method} {url}\n{timestamp}:{body}",
        "timestamp_header": "X-Ts",
    }
    message = f"POST {URL}\n{NOW_TS}:".encode() + BODY
    value = "v1=" + hmac.new(b"k3y", message, hashlib.sha256).hexdigest()
    headers = {"x-sig": value, "x-ts": str(NOW_TS)}
    verify(parse_config(raw), Delivery("POST", URL, headers, BODY), now=NOW)
    assert failure(parse_config(raw), Delivery("POST", URL + "?x=1", headers, BODY)) == "signature mismatch"
    stale = {"x-sig": value, "x-ts": str(NOW_TS - 301)}
    assert failure(parse_config(raw), Delivery("POST", URL, stale, BODY)) == "timestamp outside tolerance"


@pytest.mark.parametrize("value", ["ab cd", "abc", "zz", "0x" + "0" * 64, "=" * 8, "é" * 10])
def test_malformed_encodings_are_reasons_not_exceptions(value: str) -> None:
    for encoding in ("hex", "base64"):
        config = parse_config({"scheme": "hmac", "secrets": ["k"], "header": "X-Sig", "encoding": encoding})
        assert failure(config, Delivery("POST", URL, {"x-sig": value}, BODY)) == "malformed signature"


def test_oversized_header_is_refused_before_parsing() -> None:
    config = parse_config({"scheme": "hmac", "secrets": ["k"], "header": "X-Sig"})
    assert failure(config, Delivery("POST", URL, {"x-sig": "a" * 5000}, BODY)) == "header X-Sig too long"


# Basic and header tokens


BASIC = parse_config({"scheme": "basic", "username": "hookbay", "password": "pa:ss word"})


def basic(user_pass: bytes, scheme: str = "Basic") -> Delivery:
    return Delivery("POST", URL, {"authorization": f"{scheme} {base64.b64encode(user_pass).decode()}"}, BODY)


def test_basic_auth_shapes() -> None:
    verify(BASIC, basic(b"hookbay:pa:ss word"), now=NOW)  # the password may contain ':'
    verify(BASIC, basic(b"hookbay:pa:ss word", scheme="basic"), now=NOW)  # auth scheme is case-insensitive
    assert failure(BASIC, basic(b"other:pa:ss word")) == "credentials mismatch"
    assert failure(BASIC, basic(b"hookbay:nope")) == "credentials mismatch"
    assert failure(BASIC, basic(b"hookbay")) == "malformed header Authorization"
    assert failure(BASIC, basic(b"hookbay:pa:ss word", scheme="Bearer")) == "malformed header Authorization"
    junk = Delivery("POST", URL, {"authorization": "Basic %%%"}, BODY)
    assert failure(BASIC, junk) == "malformed header Authorization"


def test_header_token_prefix_defaults() -> None:
    bearer = parse_config({"scheme": "header-token", "secrets": ["t0ken"]})
    verify(bearer, Delivery("POST", URL, {"authorization": "bearer t0ken"}, BODY), now=NOW)
    assert (
        failure(bearer, Delivery("POST", URL, {"authorization": "t0ken"}, BODY))
        == "malformed header Authorization"
    )
    assert (
        failure(bearer, Delivery("POST", URL, {"authorization": "Bearer t0ke"}, BODY))
        == "credentials mismatch"
    )
    custom = parse_config(
        {"scheme": "header-token", "secrets": ["t0ken"], "header": "X-Token", "prefix": "Token "}
    )
    verify(custom, Delivery("POST", URL, {"x-token": "Token t0ken"}, BODY), now=NOW)


# Properties of verify itself


def test_naive_now_is_utc_and_default_now_is_the_clock() -> None:
    config = parse_config({"scheme": "slack", "secrets": ["s"]})
    signature = SignatureVerifier("s").generate_signature(timestamp=str(NOW_TS), body=BODY)
    headers = {"x-slack-signature": signature, "x-slack-request-timestamp": str(NOW_TS)}
    verify(config, Delivery("POST", URL, headers, BODY), now=NOW.replace(tzinfo=None))
    live = str(int(time.time()))
    headers = {"x-slack-signature": SignatureVerifier("s").generate_signature(timestamp=live, body=BODY)}
    verify(config, Delivery("POST", URL, {**headers, "x-slack-request-timestamp": live}, BODY))


FUZZ_CONFIGS: dict[str, dict[str, Any]] = {
    "standard-webhooks": {"secrets": [WHSEC]},
    "hmac": {"secrets": ["k"], "header": "X-Sig", "signed": "{timestamp}.{body}", "timestamp_header": "X-Ts"},
    "basic": {"secrets": ["p"], "username": "u"},
}
FUZZ_HEADERS = [
    "webhook-id", "webhook-timestamp", "webhook-signature", "svix-signature", "stripe-signature",
    "x-hub-signature-256", "x-hub-signature", "x-shopify-hmac-sha256", "x-wc-webhook-signature",
    "x-slack-signature", "x-slack-request-timestamp", "x-twilio-signature",
    "x-twilio-webhooks-signature-settings", "x-hubspot-signature-v3", "x-hubspot-request-timestamp",
    "typeform-signature", "x-sig", "x-ts", "authorization", "content-type",
]  # fmt: skip
FUZZ_PIECES = ["v1", "v0", "t", "=", ",", " ", ":", "sha256=", "Basic ", "Bearer ", "\u00e9", "\x00", "=="]


def junk(rng: random.Random) -> str:
    pieces = [rng.choice(FUZZ_PIECES) for _ in range(rng.randint(0, 6))]
    pieces += [rng.choice("0123456789abcdefABCDEF+/") * rng.randint(0, 70) for _ in range(rng.randint(0, 3))]
    rng.shuffle(pieces)
    return "".join(pieces)


def test_hostile_headers_only_ever_raise_verification_failed() -> None:
    seed = random.randrange(2**32)
    print(f"seed={seed}")  # rerun a failure with this seed
    rng = random.Random(seed)
    configs = [
        parse_config({"scheme": scheme, **FUZZ_CONFIGS.get(scheme, {"secrets": ["k"]})}) for scheme in SCHEMES
    ]
    for _ in range(3000):
        config = rng.choice(configs)
        headers = {name: junk(rng) for name in rng.sample(FUZZ_HEADERS, rng.randint(0, 6))}
        url = rng.choice(
            [URL, URL + "?bodySHA256=" + junk(rng), "https://h:99999/x", "junk", "https://[::1]/"]
        )
        form = rng.choice([None, [("a", junk(rng))]])
        delivery = Delivery(rng.choice(["POST", "post"]), url, headers, junk(rng).encode(), form=form)
        try:
            verify(config, delivery, now=NOW)
        except VerificationFailed as failed:
            assert len(str(failed)) < 80
        # Nothing else may escape; a pass on junk would be a bug too, but junk cannot carry a MAC.
        else:
            pytest.fail(f"junk passed {config.scheme} (seed={seed})")


def test_expired_rotation_at_the_exact_instant() -> None:
    config = parse_config({"scheme": "header-token", "secrets": [{"value": "old", "expires_at": NOW}, "new"]})
    delivery = Delivery("POST", URL, {"authorization": "Bearer old"}, BODY)
    verify(config, delivery, now=NOW - timedelta(microseconds=1))
    assert failure(config, delivery, now=NOW) == "credentials mismatch"
