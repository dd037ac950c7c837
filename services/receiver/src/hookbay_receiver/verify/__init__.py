"""Webhook signature verification over the raw body: pure and synchronous, no I/O.

A source's ``verify:`` mapping goes through :func:`parse_config` once; each delivery then goes
through :func:`verify`, which returns the delivery id when the scheme carries one and raises
:class:`VerificationFailed` (a short reason, safe to answer and log) when the delivery is not
authentic. Every live secret and every signature in the header is tried, in constant time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from hookbay_receiver.verify.body import (
    verify_github,
    verify_hmac,
    verify_meta,
    verify_shopify,
    verify_typeform,
    verify_woocommerce,
)
from hookbay_receiver.verify.config import SCHEME_KEYS, SCHEMES, VerifyConfig, parse_config
from hookbay_receiver.verify.core import Delivery, Secret, VerificationFailed, utc
from hookbay_receiver.verify.credentials import verify_basic, verify_header_token
from hookbay_receiver.verify.timestamped import (
    verify_hubspot_v3,
    verify_slack,
    verify_standard_webhooks,
    verify_stripe,
)
from hookbay_receiver.verify.twilio import verify_twilio

Verifier = Callable[[VerifyConfig, Delivery, datetime], str | None]

_VERIFIERS: dict[str, Verifier] = {
    "standard-webhooks": verify_standard_webhooks,
    "stripe": verify_stripe,
    "github": verify_github,
    "shopify": verify_shopify,
    "woocommerce": verify_woocommerce,
    "slack": verify_slack,
    "twilio": verify_twilio,
    "hubspot-v3": verify_hubspot_v3,
    "typeform": verify_typeform,
    "meta": verify_meta,
    "hmac": verify_hmac,
    "basic": verify_basic,
    "header-token": verify_header_token,
}
assert set(_VERIFIERS) == set(SCHEMES)


def verify(config: VerifyConfig, delivery: Delivery, now: datetime | None = None) -> str | None:
    """Verify ``delivery``; return its id (``webhook-id``/``svix-id``) if the scheme has one.

    Raises VerificationFailed, and nothing else, for any delivery that is not authentic.
    """
    verifier = _VERIFIERS.get(config.scheme)
    if verifier is None:
        raise ValueError(f"unknown verify scheme {config.scheme!r}")
    # Lower-case the names once here, so no scheme depends on the caller having done it.
    headers = {str(name).lower(): value for name, value in delivery.headers.items()}
    delivery = replace(delivery, headers=headers)
    try:
        return verifier(config, delivery, utc(now))
    except VerificationFailed:
        raise
    except (ValueError, TypeError, UnicodeError):
        # A backstop: hostile input the parsers above did not foresee fails closed with a fixed
        # reason, never as a 500 carrying an exception text that could echo the input.
        raise VerificationFailed("malformed request") from None


__all__ = [
    "SCHEMES",
    "SCHEME_KEYS",
    "Delivery",
    "Secret",
    "VerificationFailed",
    "VerifyConfig",
    "parse_config",
    "verify",
]
