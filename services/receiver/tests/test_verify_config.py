"""parse_config: the ``verify:`` mapping of sources.yaml, with errors that name the key and hide secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from hookbay_receiver.verify import SCHEME_KEYS, SCHEMES, Secret, VerifyConfig, parse_config

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def error(raw: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ValueError) as raised:
        parse_config(raw, environ={} if environ is None else environ)
    return str(raised.value)


def test_defaults() -> None:
    config = parse_config({"scheme": "stripe", "secrets": ["whsec_abc"]})
    assert config == VerifyConfig(scheme="stripe", secrets=(Secret("whsec_abc"),), tolerance_seconds=300)
    token = parse_config({"scheme": "header-token", "secrets": ["t"]})
    assert (token.header, token.prefix) == ("Authorization", "Bearer ")
    custom = parse_config({"scheme": "header-token", "secrets": ["t"], "header": "X-Api-Key"})
    assert (custom.header, custom.prefix) == ("X-Api-Key", "")
    generic = parse_config({"scheme": "HMAC", "secrets": ["k"], "header": "X-Sig"})
    assert (generic.scheme, generic.algorithm, generic.encoding, generic.prefix, generic.signed) == (
        "hmac",
        "sha256",
        "hex",
        "",
        "{body}",
    )


def test_every_scheme_parses_with_just_a_secret_where_that_is_enough() -> None:
    extra = {"hmac": {"header": "X-Sig"}, "basic": {"username": "u"}, "standard-webhooks": {}}
    for scheme in SCHEMES:
        secret = WHSEC if scheme == "standard-webhooks" else "s3cret"
        assert parse_config({"scheme": scheme, "secrets": [secret], **extra.get(scheme, {})}).scheme == scheme


@pytest.mark.parametrize(
    "raw,message",
    [
        ({}, "verify.scheme: must be one of standard-webhooks, stripe, github,"),
        ({"scheme": "paypal", "secrets": ["s"]}, "verify.scheme: must be one of"),
        ({"scheme": "github", "secrets": ["s"], "colour": 1}, "verify.colour: unknown key"),
        (
            {"scheme": "github", "secrets": ["s"], "algorithm": "sha1"},
            "verify.algorithm: not used by scheme github",
        ),
        (
            {"scheme": "stripe", "secrets": ["s"], "allow_sha1": True},
            "verify.allow_sha1: not used by scheme stripe",
        ),
        (
            {"scheme": "shopify", "secrets": ["s"], "tolerance_seconds": 5},
            "verify.tolerance_seconds: not used",
        ),
        ({"scheme": "github"}, "verify.secrets: at least one is required (secrets or secrets_env)"),
        ({"scheme": "github", "secrets": []}, "verify.secrets: at least one is required"),
        ({"scheme": "github", "secrets": "s"}, "verify.secrets: must be a list"),
        ({"scheme": "github", "secrets": [""]}, "verify.secrets[0]: must be a non-empty string"),
        ({"scheme": "github", "secrets": [7]}, "verify.secrets[0]: must be a string or a mapping"),
        (
            {"scheme": "github", "secrets": [{"value": "s", "until": 1}]},
            "verify.secrets[0].until: unknown key",
        ),
        (
            {"scheme": "github", "secrets": [{"expires_at": "2027-01-01T00:00:00Z"}]},
            "verify.secrets[0].value:",
        ),
        (
            {"scheme": "github", "secrets": ["a", {"value": "s", "expires_at": "soon"}]},
            "verify.secrets[1].expires_at",
        ),
        (
            {"scheme": "github", "secrets": ["s"], "allow_sha1": "yes"},
            "verify.allow_sha1: must be true or false",
        ),
        (
            {"scheme": "stripe", "secrets": ["s"], "tolerance_seconds": 0},
            "verify.tolerance_seconds: must be an",
        ),
        (
            {"scheme": "stripe", "secrets": ["s"], "tolerance_seconds": True},
            "verify.tolerance_seconds: must be an",
        ),
        (
            {"scheme": "stripe", "secrets": ["s"], "tolerance_seconds": "300"},
            "verify.tolerance_seconds: must be an",
        ),
        ({"scheme": "standard-webhooks", "secrets": ["whsec_***"]}, "verify.secrets[0]: not a whsec_ secret"),
        ({"scheme": "standard-webhooks", "secrets": ["whsec_"]}, "verify.secrets[0]: not a whsec_ secret"),
        ({"scheme": "hmac", "secrets": ["s"]}, "verify.header: required for scheme hmac"),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X Sig"},
            "verify.header: must be an HTTP header name",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X-Sig", "algorithm": "md5"},
            "verify.algorithm: must be one of sha1, sha256, sha512",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X-Sig", "encoding": "base32"},
            "verify.encoding: must be one of hex, base64",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X-Sig", "signed": "{timestamp}.{body}"},
            "verify.timestamp_header: required when signed contains {timestamp}",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X-Sig", "timestamp_header": "X-Ts"},
            "verify.signed: must contain {timestamp} when timestamp_header is set",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X-Sig", "tolerance_seconds": 60},
            "verify.tolerance_seconds: needs timestamp_header",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X-Sig", "timestamp_unit": "ms"},
            "verify.timestamp_unit: needs timestamp_header",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X-Sig", "signed": "{ts}.{body}"},
            "verify.signed: unknown placeholder {ts}; use {body}, {timestamp}, {method}, {url}",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X-Sig", "signed": "{timestamp}"},
            "{body} exactly once",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X-Sig", "signed": "{body}{body}"},
            "{body} exactly once",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X-Sig", "signed": "{body}}"},
            "verify.signed: unbalanced",
        ),
        (
            {
                "scheme": "hmac",
                "secrets": ["s"],
                "header": "X-Sig",
                "signed": "{timestamp}{body}",
                "timestamp_header": "X-Ts",
                "timestamp_unit": "us",
            },
            "verify.timestamp_unit: must be one of s, ms",
        ),
        (
            {"scheme": "hmac", "secrets": ["s"], "header": "X", "prefix": "x" * 65},
            "verify.prefix: must be printable",
        ),
        ({"scheme": "basic", "secrets": ["p"]}, "verify.username: must be a non-empty string"),
        ({"scheme": "basic", "username": "u"}, "(password, secrets or secrets_env)"),
        (
            {"scheme": "header-token", "secrets": ["t"], "header": ""},
            "verify.header: must be an HTTP header name",
        ),
    ],
)
def test_mistakes_name_the_key(raw: dict[str, Any], message: str) -> None:
    assert message in error(raw)
    assert error(raw).startswith("verify.")


def test_errors_never_show_a_secret() -> None:
    secret = "whsec_not-base64-SENTINEL!"
    assert "SENTINEL" not in error({"scheme": "standard-webhooks", "secrets": [secret]})
    bad_expiry = {"value": "SENTINEL", "expires_at": "tomorrow"}
    assert "SENTINEL" not in error({"scheme": "github", "secrets": [bad_expiry]})


def test_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="verify: must be a mapping"):
        parse_config(["scheme", "github"])  # type: ignore[arg-type]


def test_secrets_with_expiry_accept_yaml_datetimes_and_iso_strings() -> None:
    aware = datetime(2027, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    config = parse_config(
        {
            "scheme": "github",
            "secrets": [
                {"value": "a", "expires_at": "2027-01-01T10:00:00Z"},
                {"value": "b", "expires_at": datetime(2027, 1, 1, 10, 0)},  # naive from YAML: UTC
                {"value": "c", "expires_at": aware},
                {"value": "d"},
            ],
        }
    )
    expected = datetime(2027, 1, 1, 10, tzinfo=UTC)
    assert [s.expires_at for s in config.secrets] == [expected, expected, expected, None]


def test_a_bare_date_is_refused_as_ambiguous() -> None:
    from datetime import date

    raw = {"scheme": "github", "secrets": [{"value": "a", "expires_at": date(2027, 1, 1)}]}
    assert error(raw) == "verify.secrets[0].expires_at: must be an ISO 8601 date-time"


def test_secrets_env_resolves_through_the_injected_environment() -> None:
    environ = {"HOOKBAY_GH_OLD": "old-secret", "HOOKBAY_GH_NEW": " new-secret\n"}
    config = parse_config(
        {"scheme": "github", "secrets": ["inline"], "secrets_env": ["HOOKBAY_GH_OLD", "HOOKBAY_GH_NEW"]},
        environ=environ,
    )
    assert [s.value for s in config.secrets] == ["inline", "old-secret", "new-secret"]
    only_env = parse_config({"scheme": "github", "secrets_env": ["HOOKBAY_GH_OLD"]}, environ=environ)
    assert [s.value for s in only_env.secrets] == ["old-secret"]


def test_secrets_env_missing_or_empty_is_a_clear_error() -> None:
    raw = {"scheme": "github", "secrets_env": ["HOOKBAY_GH_OLD", "HOOKBAY_MISSING"]}
    assert error(raw, {"HOOKBAY_GH_OLD": "x"}) == (
        "verify.secrets_env[1]: environment variable HOOKBAY_MISSING is not set"
    )
    assert "HOOKBAY_EMPTY is not set" in error(
        {"scheme": "github", "secrets_env": ["HOOKBAY_EMPTY"]}, {"HOOKBAY_EMPTY": ""}
    )
    assert error({"scheme": "github", "secrets_env": "HOOKBAY_GH"}) == (
        "verify.secrets_env: must be a list of environment variable names"
    )
    assert (
        error({"scheme": "github", "secrets_env": [3]})
        == "verify.secrets_env[0]: must be an environment variable name"
    )


def test_secrets_env_validates_standard_webhooks_secrets_naming_the_env_entry() -> None:
    raw = {"scheme": "standard-webhooks", "secrets": [WHSEC], "secrets_env": ["HOOKBAY_SW"]}
    assert error(raw, {"HOOKBAY_SW": "whsec_!!"}).startswith("verify.secrets_env[0]: not a whsec_ secret")


def test_secrets_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKBAY_TEST_VERIFY_SECRET", "from-env")
    config = parse_config({"scheme": "github", "secrets_env": ["HOOKBAY_TEST_VERIFY_SECRET"]})
    assert config.secrets == (Secret("from-env"),)


def test_basic_password_joins_the_secrets_for_rotation() -> None:
    config = parse_config({"scheme": "basic", "username": "u", "password": "p1", "secrets": ["p2"]})
    assert [s.value for s in config.secrets] == ["p2", "p1"]


def test_repr_of_a_config_hides_secrets() -> None:
    config = parse_config({"scheme": "basic", "username": "u", "password": "SENTINEL-PW"})
    assert "SENTINEL" not in repr(config)
    assert "SENTINEL" not in repr(config.secrets[0])


def test_scheme_keys_table_is_complete() -> None:
    # SCHEME_KEYS is what parse_config enforces, so every scheme must have an entry.
    assert set(SCHEME_KEYS) == set(SCHEMES)
    assert all({"scheme", "secrets", "secrets_env"} <= keys for keys in SCHEME_KEYS.values())
