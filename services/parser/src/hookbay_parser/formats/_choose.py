"""Which parser a packet gets: the source's explicit format, else its Content-Type, else a sniff."""

from __future__ import annotations

import email.message
import json
from email.utils import collapse_rfc2231_value

from hookbay_common.formats import FORMATS
from hookbay_parser.formats._types import NoParser

_STORE_ONLY = frozenset({"text", "binary"})

_JSON_TYPES = frozenset(
    {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
)
_NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/x-jsonlines"})
_XML_TYPES = frozenset({"application/xml", "text/xml", "application/soap+xml"})
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
# Senders that do not know (or do not say) what they send: look at the body instead.
_SNIFFED_TYPES = frozenset({"", "text/plain", "application/octet-stream"})
# Enough to get past any leading whitespace a sender puts before a document.
_SNIFF_PREFIX = 4096


def media_type(content_type: str) -> str:
    """``Application/JSON; charset=utf-8`` -> ``application/json``."""
    return content_type.split(";", 1)[0].strip().lower()


def content_type_param(content_type: str, name: str) -> str | None:
    """A Content-Type parameter, unquoted (RFC 2045 / RFC 2231 rules, as the email package applies them)."""
    header = email.message.Message()
    header["content-type"] = content_type.replace("\r", " ").replace("\n", " ")
    value = header.get_param(name)
    if value is None:
        return None
    return collapse_rfc2231_value(value).strip() or None


def choose_format(fmt: str, content_type: str, body: bytes) -> str:
    """Return the concrete format (json, ndjson, xml or form) to parse with, or raise NoParser."""
    fmt = (fmt or "auto").strip().lower()
    if fmt in _STORE_ONLY:
        raise NoParser(f"source format is {fmt}: not parsed")
    if fmt not in FORMATS:
        raise NoParser(f"unknown source format {fmt!r}")
    if fmt != "auto":
        return fmt
    return _by_content_type(media_type(content_type or ""), body)


def _by_content_type(media: str, body: bytes) -> str:
    if media in _JSON_TYPES or media.endswith("+json"):
        return "json"
    if media in _NDJSON_TYPES:
        return "ndjson"
    if media in _XML_TYPES or media.endswith("+xml"):
        return "xml"
    if media in _FORM_TYPES:
        return "form"
    if media in _SNIFFED_TYPES:
        return _sniff(media, body)
    raise NoParser(f"no parser for content type {media}")


def _sniff(media: str, body: bytes) -> str:
    first = _first_char(body)
    if first in ("{", "[") and _is_json(body):
        return "json"
    if first == "<":
        return "xml"
    described = f"content type {media}" if media else "a packet without a content type"
    raise NoParser(f"no parser for {described} (body is neither JSON nor XML)")


def _first_char(body: bytes) -> str:
    # detect_encoding also recognises UTF-16/32 (by BOM or NUL pattern); a cut multi-byte sequence
    # at the end of the prefix is irrelevant to the first character, hence errors="ignore".
    encoding = json.detect_encoding(body)
    return body[:_SNIFF_PREFIX].decode(encoding, errors="ignore").lstrip()[:1]


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except RecursionError:
        return True  # JSON-shaped but too deep: let the JSON parser report the nesting precisely
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return False
    return True
