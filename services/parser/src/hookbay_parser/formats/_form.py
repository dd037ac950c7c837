"""HTML form bodies: application/x-www-form-urlencoded and multipart/form-data."""

from __future__ import annotations

import email.policy
import re
from email.errors import CloseBoundaryNotFoundDefect, NoBoundaryInMultipartDefect, StartBoundaryNotFoundDefect
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value
from typing import Any
from urllib.parse import unquote_to_bytes

from hookbay_parser.formats._choose import content_type_param, media_type
from hookbay_parser.formats._records import Budget, RecordBuilder
from hookbay_parser.formats._types import ParsedRecord, ParseError

_DEFAULT_CHARSET = "utf-8"
_BRACKETED = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])+)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_BROKEN_MULTIPART = {
    StartBoundaryNotFoundDefect: "the boundary never occurs",
    NoBoundaryInMultipartDefect: "no boundary",
    CloseBoundaryNotFoundDefect: "the closing boundary is missing",
}

Field = tuple[str, Any]  # (name as sent, str value or file description)


class _Node(dict):
    """A container created by bracketed names, told apart from a file description (also a dict)."""


def parse_form(body: bytes, content_type: str, budget: Budget) -> list[ParsedRecord]:
    if media_type(content_type) == "multipart/form-data":
        fields = _multipart_fields(body, content_type)
    else:
        fields = _urlencoded_fields(body, content_type_param(content_type, "charset"))
    budget.check_time()
    builder = RecordBuilder(budget)
    builder.add_document(_nest(fields, budget))
    return builder.records


# --- application/x-www-form-urlencoded ---------------------------------------------------------


def _urlencoded_fields(body: bytes, declared_charset: str | None) -> list[Field]:
    """Percent-decoding happens on bytes, and only then is the charset applied: ``Jos%E9`` is one
    windows-1252 byte, not a broken UTF-8 sequence."""
    pairs = [_split_pair(chunk) for chunk in body.split(b"&") if chunk]
    # PayPal IPN names its charset inside the body; a Content-Type parameter still wins.
    charset = declared_charset or _body_charset(pairs) or _DEFAULT_CHARSET
    _check_charset(charset)
    fields = []
    for raw_name, raw_value in pairs:
        name = _decode(raw_name, charset, raw_name.decode(charset, errors="replace"))
        fields.append((name, _decode(raw_value, charset, name)))
    return fields


def _split_pair(chunk: bytes) -> tuple[bytes, bytes]:
    # A name without "=" is a blank value, which webhooks do send (e.g. an empty address line).
    name, _, value = chunk.partition(b"=")
    return unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" "))


def _body_charset(pairs: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in pairs:
        if name == b"charset":
            return value.decode("latin-1").strip() or None
    return None


def _check_charset(charset: str) -> None:
    # Decoding a byte (empty input skips the codec lookup) also refuses codecs that are not text
    # encodings, such as base64; a byte that is merely invalid in a multi-byte charset is fine here.
    try:
        b"a".decode(charset)
    except UnicodeDecodeError:
        pass
    except LookupError:
        raise ParseError(f"form: unknown charset {charset!r}") from None


def _decode(raw: bytes, charset: str, field: str) -> str:
    try:
        return raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise ParseError(f"form: field {field!r} is not valid {charset} at byte {exc.start}") from None


# --- multipart/form-data -----------------------------------------------------------------------


def _multipart_fields(body: bytes, content_type: str) -> list[Field]:
    if not content_type_param(content_type, "boundary"):
        raise ParseError("form: multipart/form-data without a boundary")
    header = "Content-Type: " + content_type.replace("\r", " ").replace("\n", " ")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        header.encode("latin-1", "replace") + b"\r\n\r\n" + body
    )
    for defect in message.defects:
        if type(defect) in _BROKEN_MULTIPART:
            raise ParseError(f"form: malformed multipart body: {_BROKEN_MULTIPART[type(defect)]}")
    if not message.is_multipart():
        raise ParseError("form: malformed multipart body: no parts")
    return [_multipart_field(index, part) for index, part in enumerate(message.iter_parts(), start=1)]


def _multipart_field(index: int, part: Message) -> Field:
    name = part.get_param("name", header="content-disposition")
    if name is None:
        raise ParseError(f"form: multipart part {index} has no field name")
    name = collapse_rfc2231_value(name)
    payload = part.get_payload(decode=True) or b""
    filename = part.get_filename()
    if filename is not None:
        # Only a description of an uploaded file: its content stays in the stored packet.
        return name, {"filename": filename, "content_type": part.get_content_type(), "size": len(payload)}
    charset = part.get_content_charset() or _DEFAULT_CHARSET
    _check_charset(charset)
    return name, _decode(payload, charset, name)


# --- bracketed names ---------------------------------------------------------------------------


def _nest(fields: list[Field], budget: Budget) -> dict[str, Any]:
    """``data[merges][FNAME]`` nests, ``tags[]`` appends, a repeated name becomes a list."""
    tree = _Node()
    max_depth = budget.limits.max_depth
    for name, value in fields:
        budget.tick()
        path, append = _name_path(name)
        if len(path) > max_depth:
            raise ParseError(f"form: nesting deeper than {max_depth} in field {name[:200]!r}")
        if not _insert(tree, path, value, append):
            raise ParseError(f"form: field {name!r} conflicts with an earlier field of the same name")
    return tree


def _name_path(name: str) -> tuple[list[str], bool]:
    match = _BRACKETED.fullmatch(name)
    if match is None:
        return [name], False  # not bracket syntax (or malformed brackets): the name is taken literally
    segments = _SEGMENT.findall(match.group(2))
    append = segments[-1] == ""
    if append:
        segments.pop()
    if "" in segments:
        return [name], False  # `a[][b]`: an empty index only means "append" at the end
    return [match.group(1), *segments], append


def _insert(tree: _Node, path: list[str], value: Any, append: bool) -> bool:
    """False when the name's structure contradicts what earlier fields built (``a=1&a[b]=2``)."""
    node = tree
    for segment in path[:-1]:
        child = node.setdefault(segment, _Node())
        if not isinstance(child, _Node):
            return False
        node = child
    leaf = path[-1]
    existing = node.get(leaf)
    if existing is None:
        node[leaf] = [value] if append else value
    elif isinstance(existing, _Node):
        return False
    elif isinstance(existing, list):
        existing.append(value)
    else:
        node[leaf] = [existing, value]
    return True
