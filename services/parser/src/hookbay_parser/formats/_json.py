"""JSON and NDJSON bodies."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from hookbay_parser.formats._records import Budget, RecordBuilder, check_depth, too_deep
from hookbay_parser.formats._types import ParsedRecord, ParseError

_UTF8_BOM = b"\xef\xbb\xbf"
# A JSON string (unrolled so long strings do not backtrack) or a bracket; used only to locate
# over-deep nesting after json.loads gave up with RecursionError.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


def parse_json(body: bytes, content_type: str, budget: Budget) -> list[ParsedRecord]:
    text = decode_text(body, "json")
    if not text.strip():
        raise ParseError("json: empty body")
    value = _loads(text, "json", budget)
    check_depth(value, "json", budget)
    builder = RecordBuilder(budget)
    builder.add_document(value)
    return builder.records


def parse_ndjson(body: bytes, content_type: str, budget: Budget) -> list[ParsedRecord]:
    """One document per line; blank lines are skipped. Lines are split on LF only: U+2028 and friends
    may legally appear inside JSON strings."""
    builder = RecordBuilder(budget)
    for number, line in enumerate(decode_text(body, "ndjson").split("\n"), start=1):
        if not line.strip():
            continue
        value = _loads(line, "ndjson", budget, line_number=number)
        check_depth(value, "ndjson", budget, prefix=f"line {number}, ")
        builder.add_document(value)
    return builder.records


def decode_text(body: bytes, fmt: str) -> str:
    """UTF-8 with an optional BOM; UTF-16/32 recognised as RFC 8259 section 8.1 allows."""
    encoding = json.detect_encoding(body)
    skipped = 0
    if encoding == "utf-8-sig":
        encoding, skipped = "utf-8", len(_UTF8_BOM)
    try:
        return body[skipped:].decode(encoding)
    except UnicodeDecodeError as exc:
        raise ParseError(f"{fmt}: invalid {encoding} at byte {exc.start + skipped}") from None


def _loads(text: str, fmt: str, budget: Budget, line_number: int | None = None) -> Any:
    """``line_number`` is given for NDJSON, where the text is that one line of the body."""
    try:
        value = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        at = f"column {exc.colno} (char {exc.pos})"
        if line_number is None:
            at = f"line {exc.lineno} {at}"
        raise ParseError(f"{fmt}: {_line_prefix(line_number)}{exc.msg} at {at}") from None
    except ValueError as exc:  # raised by the number hooks below
        raise ParseError(f"{fmt}: {_line_prefix(line_number)}{exc}") from None
    except RecursionError:
        raise _deep_nesting_error(text, fmt, budget.limits.max_depth, line_number) from None
    budget.check_time()
    return value


def _line_prefix(line_number: int | None) -> str:
    return "" if line_number is None else f"line {line_number}: "


def _position(line: int, column: int, char: int, line_number: int | None) -> str:
    if line_number is None:
        return f"line {line} column {column} (char {char})"
    return f"line {line_number}, column {column} (char {char})"


def _parse_int(digits: str) -> int:
    # Arbitrary precision is kept (webhook ids beyond 2**64 exist); only CPython's guard against
    # quadratic int parsing (sys.get_int_max_str_digits) can refuse a number.
    try:
        return int(digits)
    except ValueError:
        limit = sys.get_int_max_str_digits()
        raise ValueError(
            f"integer of {len(digits.lstrip('-'))} digits exceeds the {limit}-digit limit"
        ) from None


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e400 would silently become inf, which JSON cannot represent
        raise ValueError(f"number {literal[:40]} is out of range")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _deep_nesting_error(text: str, fmt: str, max_depth: int, line_number: int | None) -> ParseError:
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                pos = match.start()
                line = text.count("\n", 0, pos) + 1
                column = pos - text.rfind("\n", 0, pos)
                return too_deep(fmt, max_depth, _position(line, column, pos, line_number))
        elif token in ("]", "}"):
            depth -= 1
    # Only reachable when max_depth exceeds what the interpreter's recursion limit allows.
    return ParseError(f"{fmt}: {_line_prefix(line_number)}nesting too deep for the JSON parser")
