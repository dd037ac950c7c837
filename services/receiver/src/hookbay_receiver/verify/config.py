"""A source's ``verify:`` mapping from sources.yaml, checked once and turned into a VerifyConfig."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hookbay_receiver.verify.core import HASHES, Secret, decode_base64

SCHEMES: tuple[str, ...] = (
    "standard-webhooks",
    "stripe",
    "github",
    "shopify",
    "woocommerce",
    "slack",
    "twilio",
    "hubspot-v3",
    "typeform",
    "meta",
    "hmac",
    "basic",
    "header-token",
)

DEFAULT_TOLERANCE = 300
MAX_TOLERANCE = 86_400
ENCODINGS = ("hex", "base64")
TIMESTAMP_UNITS = ("s", "ms")
PLACEHOLDERS = ("body", "timestamp", "method", "url")
WHSEC_PREFIX = "whsec_"

_COMMON = frozenset({"scheme", "secrets", "secrets_env"})
_TIMED = _COMMON | {"tolerance_seconds"}
# Which keys each scheme reads: a key another scheme uses is still a mistake here, so it is refused.
SCHEME_KEYS: Mapping[str, frozenset[str]] = {
    "standard-webhooks": _TIMED,
    "stripe": _TIMED,
    "github": _COMMON | {"allow_sha1"},
    "shopify": _COMMON,
    "woocommerce": _COMMON,
    "slack": _TIMED,
    "twilio": _COMMON,
    "hubspot-v3": _TIMED,
    "typeform": _COMMON,
    "meta": _COMMON,
    "hmac": _TIMED
    | {"header", "algorithm", "encoding", "prefix", "signed", "timestamp_header", "timestamp_unit"},
    "basic": _COMMON | {"username", "password"},
    "header-token": _COMMON | {"header", "prefix"},
}
ALL_KEYS = frozenset().union(*SCHEME_KEYS.values())

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")  # an HTTP header name (RFC 9110 token)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
MAX_PREFIX = 64


@dataclass(frozen=True)
class VerifyConfig:
    """How one source's deliveries are verified. Secrets never appear in its repr."""

    scheme: str
    secrets: tuple[Secret, ...]
    tolerance_seconds: int = DEFAULT_TOLERANCE
    header: str | None = None
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    signed: str = "{body}"
    timestamp_header: str | None = None
    timestamp_unit: str = "s"
    username: str | None = None
    allow_sha1: bool = False


def parse_config(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> VerifyConfig:
    """Check a ``verify:`` mapping; a mistake is a ValueError naming the key, never showing a secret."""
    if not isinstance(raw, Mapping):
        raise ValueError("verify: must be a mapping")
    scheme = _scheme(raw.get("scheme"))
    for key in raw:
        if key not in ALL_KEYS:
            raise ValueError(f"verify.{key}: unknown key")
        if key not in SCHEME_KEYS[scheme]:
            raise ValueError(f"verify.{key}: not used by scheme {scheme}")
    secrets = _secrets(raw, scheme, os.environ if environ is None else environ)
    options = _scheme_options(raw, scheme)
    tolerance = _tolerance(raw.get("tolerance_seconds", DEFAULT_TOLERANCE))
    return VerifyConfig(scheme=scheme, secrets=secrets, tolerance_seconds=tolerance, **options)


def _scheme(value: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in SCHEMES:
        raise ValueError(f"verify.scheme: must be one of {', '.join(SCHEMES)}")
    return value.strip().lower()


def _scheme_options(raw: Mapping[str, Any], scheme: str) -> dict[str, Any]:
    if scheme == "hmac":
        return _hmac_options(raw)
    if scheme == "header-token":
        name = _header_name(raw.get("header", "Authorization"), "header")
        default_prefix = "Bearer " if name.lower() == "authorization" else ""
        return {"header": name, "prefix": _prefix(raw.get("prefix", default_prefix))}
    if scheme == "basic":
        return {"username": _text(raw.get("username"), "username")}
    if scheme == "github":
        return {"allow_sha1": _bool(raw.get("allow_sha1", False), "allow_sha1")}
    return {}


def _hmac_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    if "header" not in raw:
        raise ValueError("verify.header: required for scheme hmac")
    options = {
        "header": _header_name(raw["header"], "header"),
        "algorithm": _choice(raw.get("algorithm", "sha256"), "algorithm", tuple(HASHES)),
        "encoding": _choice(raw.get("encoding", "hex"), "encoding", ENCODINGS),
        "prefix": _prefix(raw.get("prefix", "")),
        "signed": _template(raw.get("signed", "{body}")),
        "timestamp_unit": _choice(raw.get("timestamp_unit", "s"), "timestamp_unit", TIMESTAMP_UNITS),
    }
    timestamp_header = raw.get("timestamp_header")
    signs_timestamp = "{timestamp}" in options["signed"]
    # An unsigned timestamp proves nothing, and a signed one must come from somewhere: both or neither.
    if timestamp_header is None and signs_timestamp:
        raise ValueError("verify.timestamp_header: required when signed contains {timestamp}")
    if timestamp_header is not None and not signs_timestamp:
        raise ValueError("verify.signed: must contain {timestamp} when timestamp_header is set")
    if timestamp_header is None:
        for key in ("tolerance_seconds", "timestamp_unit"):
            if key in raw:
                raise ValueError(f"verify.{key}: needs timestamp_header")
        return options
    return options | {"timestamp_header": _header_name(timestamp_header, "timestamp_header")}


def _secrets(raw: Mapping[str, Any], scheme: str, environ: Mapping[str, str]) -> tuple[Secret, ...]:
    labelled: list[tuple[str, Secret]] = []  # (the key to name in an error, the secret)
    listed = raw.get("secrets", [])
    if not isinstance(listed, list):
        raise ValueError("verify.secrets: must be a list")
    for index, item in enumerate(listed):
        labelled.append((f"secrets[{index}]", _secret(item, f"secrets[{index}]")))
    labelled.extend(_env_secrets(raw.get("secrets_env", []), environ))
    if "password" in raw:  # basic: a single password is sugar for one secret
        labelled.append(("password", Secret(_text(raw["password"], "password"))))
    if not labelled:
        hint = "password, secrets or secrets_env" if scheme == "basic" else "secrets or secrets_env"
        raise ValueError(f"verify.secrets: at least one is required ({hint})")
    if scheme == "standard-webhooks":
        for key, secret in labelled:
            if standard_webhooks_key(secret.value) is None:
                raise ValueError(f"verify.{key}: not a whsec_ secret (base64 after the prefix)")
    return tuple(secret for _, secret in labelled)


def _secret(item: Any, key: str) -> Secret:
    if isinstance(item, str):
        return Secret(_text(item, key))
    if not isinstance(item, Mapping):
        raise ValueError(f"verify.{key}: must be a string or a mapping with value and expires_at")
    for field_name in item:
        if field_name not in ("value", "expires_at"):
            raise ValueError(f"verify.{key}.{field_name}: unknown key")
    value = _text(item.get("value"), f"{key}.value")
    expires_at = item.get("expires_at")
    return Secret(value, None if expires_at is None else _datetime(expires_at, f"{key}.expires_at"))


def _env_secrets(names: Any, environ: Mapping[str, str]) -> list[tuple[str, Secret]]:
    if not isinstance(names, list):
        raise ValueError("verify.secrets_env: must be a list of environment variable names")
    secrets = []
    for index, name in enumerate(names):
        key = f"secrets_env[{index}]"
        if not isinstance(name, str) or not name:
            raise ValueError(f"verify.{key}: must be an environment variable name")
        value = environ.get(name)
        if value is None or not value.strip():
            raise ValueError(f"verify.{key}: environment variable {name} is not set")
        secrets.append((key, Secret(value.strip())))
    return secrets


def standard_webhooks_key(value: str) -> bytes | None:
    """The HMAC key of a ``whsec_<base64>`` (or bare base64) secret, or None when it is not one."""
    encoded = value.removeprefix(WHSEC_PREFIX)
    # Svix's own library pads before decoding, so unpadded secrets are valid too.
    key = decode_base64(encoded + "=" * (-len(encoded) % 4))
    return key or None


def _datetime(value: Any, key: str) -> datetime:
    # YAML gives datetimes for unquoted timestamps and strings for quoted ones; a bare date is
    # ambiguous about the moment, so it is refused rather than guessed.
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"verify.{key}: must be an ISO 8601 date-time") from None
    if not isinstance(value, datetime):
        raise ValueError(f"verify.{key}: must be an ISO 8601 date-time")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _tolerance(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOLERANCE:
        raise ValueError(f"verify.tolerance_seconds: must be an integer from 1 to {MAX_TOLERANCE}")
    return value


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"verify.{key}: must be a non-empty string")
    return value.strip()


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"verify.{key}: must be true or false")
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"verify.{key}: must be one of {', '.join(choices)}")
    return value.lower()


def _header_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ValueError(f"verify.{key}: must be an HTTP header name")
    return value


def _prefix(value: Any) -> str:
    # Not stripped: "Bearer " needs its space. Printable ASCII only, as it is matched in a header.
    if not isinstance(value, str) or len(value) > MAX_PREFIX or not (value.isascii() and value.isprintable()):
        raise ValueError(f"verify.prefix: must be printable ASCII of at most {MAX_PREFIX} characters")
    return value


def _template(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("verify.signed: must be a string such as {body} or {timestamp}.{body}")
    names = _PLACEHOLDER.findall(value)
    for name in names:
        if name not in PLACEHOLDERS:
            allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"verify.signed: unknown placeholder {{{name}}}; use {allowed}")
    if names.count("body") != 1:
        raise ValueError("verify.signed: must contain {body} exactly once")
    if "{" in _PLACEHOLDER.sub("", value) or "}" in _PLACEHOLDER.sub("", value):
        raise ValueError("verify.signed: unbalanced brace")
    return value


def template_parts(template: str) -> list[tuple[bool, str]]:
    """Split a checked template into (is_placeholder, text) parts, in order."""
    parts: list[tuple[bool, str]] = []
    position = 0
    for found in _PLACEHOLDER.finditer(template):
        if found.start() > position:
            parts.append((False, template[position : found.start()]))
        parts.append((True, found.group(1)))
        position = found.end()
    if position < len(template):
        parts.append((False, template[position:]))
    return parts
