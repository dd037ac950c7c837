"""What a source may configure at the door, stored in the source's ``settings``.

```yaml
verify: {scheme: stripe, secrets: [whsec_...], tolerance_seconds: 300}
quarantine: false            # keep deliveries that fail verification, as status 'rejected'
dedup: auto                  # auto | off | {header: X-Request-Id} | {json_path: event.id}
rate_limit: {rate: 50, burst: 100}
handshakes: {woocommerce_ping: true, slack_url_verification: true, meta_verification: true,
             graph_validation: true, cloudevents_options: true, salesforce_ack: true, github_ping: true}
verify_token: "..."          # what Meta's GET verification must present
response: {status: 200, content_type: application/json, body: '{"ok": true, "id": "{{ id }}"}'}
content_types: [application/json]
```

Validation happens when a source is created or updated (a mistake names its key); the receiver
compiles the result once per cache load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import jinja2
import jmespath
import jmespath.exceptions
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hookbay_common.errors import InvalidArgument
from hookbay_receiver.verify import VerifyConfig, parse_config

DEFAULT_RATE = 50.0
DEFAULT_BURST = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DedupHeader(_Strict):
    header: str = Field(min_length=1, max_length=200)


class DedupJsonPath(_Strict):
    json_path: str = Field(min_length=1, max_length=500)

    @field_validator("json_path")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            jmespath.compile(value)
        except jmespath.exceptions.JMESPathError as exc:
            raise ValueError(f"not a valid JMESPath expression: {str(exc).splitlines()[0]}") from None
        return value


class RateLimit(_Strict):
    rate: float = Field(default=DEFAULT_RATE, gt=0, le=100_000)
    burst: int = Field(default=DEFAULT_BURST, ge=1, le=1_000_000)


class Handshakes(_Strict):
    woocommerce_ping: bool = True
    slack_url_verification: bool = True
    meta_verification: bool = True
    graph_validation: bool = True
    cloudevents_options: bool = True
    salesforce_ack: bool = True
    github_ping: bool = True


class Response(_Strict):
    status: int = Field(default=200, ge=200, le=299)
    content_type: str = Field(default="application/json", max_length=200)
    body: str = Field(default="", max_length=10_000)

    @field_validator("body")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            _env().parse(value)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"template error on line {exc.lineno}: {exc.message}") from None
        return value


class SourceSettings(_Strict):
    verify: dict[str, Any] | None = None
    quarantine: bool = False
    dedup: Literal["auto", "off"] | DedupHeader | DedupJsonPath = "auto"
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    handshakes: Handshakes = Field(default_factory=Handshakes)
    verify_token: str | None = Field(default=None, max_length=500)
    response: Response | None = None
    content_types: list[str] | None = None

    @field_validator("content_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return [t.strip().lower() for t in value] if value is not None else None


def _env() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)


@dataclass(frozen=True)
class DoorConfig:
    """A source's settings, checked and compiled for the hot path."""

    settings: SourceSettings
    verify: VerifyConfig | None
    response_body: jinja2.Template | None = field(default=None, compare=False)
    dedup_path: Any = field(default=None, compare=False)


def _loc(error: dict[str, Any]) -> str:
    parts = [str(p) for p in error["loc"] if not str(p).startswith(("function-", "literal["))]
    # Skip pydantic's union branch names (DedupHeader, ...) in the path.
    parts = [p for p in parts if p not in {"DedupHeader", "DedupJsonPath", "str"}]
    return ".".join(parts) or "settings"


def validate_settings(raw: dict[str, Any] | None, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Check settings; return them as given (secrets stay where the operator put them)."""
    compile_settings(raw or {}, environ)
    return raw or {}


def compile_settings(raw: dict[str, Any], environ: dict[str, str] | None = None) -> DoorConfig:
    try:
        settings = SourceSettings.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        raise InvalidArgument(f"{_loc(error)}: {message}") from None
    verify = None
    if settings.verify is not None:
        try:
            verify = parse_config(settings.verify, environ)
        except ValueError as exc:
            message = str(exc)
            raise InvalidArgument(message if message.startswith("verify") else f"verify: {message}") from None
    template = (
        _env().from_string(settings.response.body) if settings.response and settings.response.body else None
    )
    dedup_path = (
        jmespath.compile(settings.dedup.json_path) if isinstance(settings.dedup, DedupJsonPath) else None
    )
    return DoorConfig(settings=settings, verify=verify, response_body=template, dedup_path=dedup_path)
