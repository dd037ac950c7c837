"""Sending email over SMTP: ``smtp://[user:pass@]host:port[?starttls=1]`` or ``smtps://``."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import parse_qs, unquote, urlparse

from hookbay_actions.metrics import SEND_SECONDS
from hookbay_common import tracing


class PermanentError(Exception):
    """Retrying cannot help (a bad address, a rejected recipient): the run goes straight to dead."""


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    tls: bool
    starttls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parsed = urlparse(url)
        if parsed.scheme not in ("smtp", "smtps"):
            raise ValueError(f"HOOKBAY_SMTP_URL must be smtp:// or smtps://, not {parsed.scheme!r}")
        tls = parsed.scheme == "smtps"
        query = parse_qs(parsed.query)
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or (465 if tls else 25),
            tls=tls,
            starttls=query.get("starttls", ["0"])[0] in ("1", "true", "yes"),
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
        )


def _one_line(value: str) -> str:
    # Header injection: a template rendering a newline must not add headers of its own.
    return " ".join(value.split())


def compose(*, sender: str, to: str, subject: str, body: str, message_id: str) -> EmailMessage:
    to = _one_line(to)
    _name, address = parseaddr(to)
    if not address or "@" not in address:
        raise PermanentError(f"not an email address: {to[:200]!r}")
    message = EmailMessage()
    message["From"] = _one_line(sender)
    message["To"] = to
    message["Subject"] = _one_line(subject)
    message["Date"] = formatdate(usegmt=True)
    # Stable per (rule, record): mail systems can recognise a repeat, on top of our own guarantee.
    message["Message-ID"] = message_id
    message.set_content(body)
    return message


def send(target: SmtpTarget, message: EmailMessage, timeout: float) -> None:
    with SEND_SECONDS.time(), tracing.span("actions.send_email", kind="client"):
        _send(target, message, timeout)


def _send(target: SmtpTarget, message: EmailMessage, timeout: float) -> None:
    client: smtplib.SMTP
    if target.tls:
        client = smtplib.SMTP_SSL(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(target.host, target.port, timeout=timeout)
    with client:
        if target.starttls:
            client.starttls(context=ssl.create_default_context())
        if target.username:
            client.login(target.username, target.password or "")
        try:
            client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"recipient refused: {list(exc.recipients)[:3]}") from None
