"""One settings scheme for every Hookbay process: environment variables prefixed ``HOOKBAY_``.

Each service subclasses :class:`CommonSettings` and reads it once at the process edge (``__main__``);
values are passed down from there, never read from the environment inside handlers.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = ".hookbay"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKBAY_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR}/hookbay.db",
        description="SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB.",
    )
    raw_store_url: str = Field(
        default=f"file://{DEFAULT_DATA_DIR}/raw",
        description="Where raw bodies are archived: file:///DIR (or file://relative/dir) or s3://BUCKET/PREFIX.",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint, for S3-compatible servers.")
    s3_region: str | None = Field(default=None, description="S3 region.")
    s3_sse: str | None = Field(
        default=None, description="Server-side encryption for archived bodies: AES256 or aws:kms."
    )
    s3_sse_kms_key_id: str | None = Field(default=None, description="KMS key id when s3_sse is aws:kms.")
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    log_format: str = Field(
        default="auto", description="json, console, or auto (console on a terminal, JSON otherwise)."
    )
    db_connect_timeout: float = Field(
        default=1.5, description="Seconds to wait for a database connection before answering 503."
    )
    shutdown_grace: float = Field(
        default=20.0,
        gt=0,
        description="Most seconds from SIGTERM to exit, shutdown_delay included; keep it under "
        "Kubernetes' terminationGracePeriodSeconds.",
    )
    shutdown_delay: float = Field(
        default=0.0,
        ge=0,
        description="Seconds a stopping process keeps serving while already reporting not ready, so "
        "load balancers stop sending first (a few seconds on Kubernetes).",
    )

    @model_validator(mode="after")
    def _delay_within_grace(self) -> Self:
        if self.shutdown_delay >= self.shutdown_grace:
            raise ValueError("shutdown_delay must be shorter than shutdown_grace")
        return self


class ReceiverSettings(CommonSettings):
    http_host: str = Field(default="127.0.0.1", description="Address the public HTTP endpoint binds.")
    http_port: int = Field(default=8080, description="Port of the public HTTP endpoint.")
    admin_host: str = Field(default="127.0.0.1", description="Address the internal admin gRPC API binds.")
    admin_port: int = Field(default=50051, description="Port of the internal admin gRPC API.")
    public_url: str | None = Field(
        default=None, description="Base URL senders use, for the URLs Hookbay prints; default from host/port."
    )
    parser_addr: str = Field(
        default="127.0.0.1:50061",
        description="gRPC target of the parser service: host:port or any gRPC target, e.g. "
        "dns:///hookbay-parser.hookbay.svc:50061; calls go round-robin over every address it resolves to.",
    )
    max_body: int = Field(
        default=1024 * 1024, description="Default body limit in bytes (per source overrides)."
    )
    header_timeout: float = Field(
        default=10.0, description="Seconds a client has to send the request line and headers."
    )
    body_timeout: float = Field(default=10.0, description="Seconds a client has to send the body.")
    max_header_bytes: int = Field(
        default=64 * 1024, description="Largest request line plus headers, in bytes (431 beyond)."
    )
    commit_max_batch: int = Field(default=256, description="Most packets committed in one transaction.")
    commit_concurrency: int = Field(
        default=4, description="Group commits in flight at once on PostgreSQL (SQLite always uses one)."
    )
    ack_timeout: float = Field(
        default=1.5, description="Seconds a request waits for its commit before answering 503."
    )
    dispatch_batch: int = Field(default=32, description="Packets handed to the parser per call.")
    dispatch_concurrency: int = Field(default=4, description="Parser calls in flight per receiver.")
    dispatch_lease: float = Field(default=60.0, description="Seconds a dispatcher owns a claimed packet.")
    dispatch_deadline: float = Field(default=30.0, description="Deadline of one parser call, in seconds.")
    dispatch_idle_poll: float = Field(default=0.5, description="Seconds between outbox polls when idle.")
    retry_base: float = Field(default=1.0, description="First redelivery backoff in seconds (doubles).")
    retry_max: float = Field(default=300.0, description="Longest redelivery backoff in seconds.")
    archive_after: float = Field(
        default=60.0,
        description="Seconds after receipt before a still-unparsed body is archived (parsed ones go at once).",
    )
    archive_batch: int = Field(default=64, description="Bodies moved to the raw store per archiver round.")
    archive_enabled: bool = Field(default=True, description="Run the archiver in this receiver.")
    dispatch_enabled: bool = Field(default=True, description="Run the outbox dispatcher in this receiver.")
    source_cache_ttl: float = Field(default=2.0, description="Seconds a source lookup is cached.")
    http_metrics: bool = Field(
        default=True, description="Serve Prometheus metrics at /metrics on the public HTTP port."
    )


class ParserSettings(CommonSettings):
    parser_host: str = Field(default="127.0.0.1", description="Address the parser's gRPC server binds.")
    parser_port: int = Field(default=50061, description="Port of the parser's gRPC server.")
    parser_metrics_port: int = Field(
        default=9461, description="Port of the parser's Prometheus /metrics (on parser_host); 0 turns it off."
    )
    actions_addr: str = Field(
        default="127.0.0.1:50062",
        description="gRPC target of the actions service: host:port or any gRPC target, e.g. "
        "dns:///hookbay-actions.hookbay.svc:50062; calls go round-robin over every address it resolves to.",
    )
    max_depth: int = Field(default=64, description="Deepest JSON/XML nesting a packet may have.")
    max_records: int = Field(default=10_000, description="Most records one packet may produce.")
    parse_time_budget: float = Field(default=5.0, description="Seconds of parsing one packet may take.")
    actions_batch: int = Field(default=16, description="Packets claimed per round for the actions service.")
    actions_concurrency: int = Field(default=4, description="ExecuteActions calls in flight per parser.")
    actions_lease: float = Field(
        default=60.0, description="Seconds the parser owns a claimed actions hand-off."
    )
    actions_deadline: float = Field(
        default=30.0, description="Deadline of one ExecuteActions call, in seconds."
    )


class ActionsSettings(CommonSettings):
    actions_host: str = Field(default="127.0.0.1", description="Address the actions gRPC server binds.")
    actions_port: int = Field(default=50062, description="Port of the actions gRPC server.")
    actions_metrics_port: int = Field(
        default=9462,
        description="Port of the actions service's Prometheus /metrics (on actions_host); 0 turns it off.",
    )
    smtp_url: str = Field(
        default="smtp://127.0.0.1:8025",
        description="SMTP server for email actions: smtp://[user:pass@]host:port (?starttls=1), or smtps://.",
    )
    mail_from: str = Field(
        default="hookbay@localhost", description="From address of emails, unless a rule sets one."
    )
    smtp_timeout: float = Field(default=10.0, description="Seconds one SMTP conversation may take.")
    action_max_attempts: int = Field(default=5, description="Attempts before an action run is dead.")
    action_retry_base: float = Field(
        default=2.0, description="First action retry backoff in seconds (doubles)."
    )
    action_retry_max: float = Field(default=600.0, description="Longest action retry backoff in seconds.")
    action_lease: float = Field(
        default=120.0, description="Seconds a running action run is owned before it counts as interrupted."
    )
    action_poll: float = Field(default=1.0, description="Seconds between polls for due action runs.")


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKBAY_", extra="ignore")

    admin_addr: str = Field(default="127.0.0.1:50051", description="Where the CLI finds the admin API.")
