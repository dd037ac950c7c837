"""NDJSON: one JSON document per line."""

from __future__ import annotations

import pytest

from hookbay_parser.formats import Limits, ParsedRecord, ParseError, parse

# A log-shipping style batch (Segment/Vector/Datadog-like): CRLF endings and a blank line in between.
EVENTS = (
    b'{"type": "track", "event": "Order Completed", "userId": "u_19", "properties": {"revenue": 29.35,'
    b' "products": [{"sku": "SYI-BLK-M", "quantity": 1}, {"sku": "WOO-1", "quantity": 2}]}}\r\n'
    b"\r\n"
    b'{"type": "identify", "userId": "u_19", "traits": {"email": "john.doe@example.com", "tags": ["vip"]}}\n'
    b'["not", "an", "object"]\n'
)


def test_one_root_per_line_with_children_and_running_ordinals() -> None:
    fmt, records = parse(EVENTS, "application/x-ndjson")
    assert fmt == "ndjson"
    assert records == [
        ParsedRecord(
            "root",
            0,
            None,
            {"type": "track", "event": "Order Completed", "userId": "u_19", "properties.revenue": 29.35},
        ),
        ParsedRecord("properties.products", 1, 0, {"sku": "SYI-BLK-M", "quantity": 1}),
        ParsedRecord("properties.products", 2, 0, {"sku": "WOO-1", "quantity": 2}),
        ParsedRecord(
            "root",
            3,
            None,
            {
                "type": "identify",
                "userId": "u_19",
                "traits.email": "john.doe@example.com",
                "traits.tags": ["vip"],
            },
        ),
        # A line holding an array follows the JSON rule: one root per element.
        ParsedRecord("root", 4, None, {"value": "not"}),
        ParsedRecord("root", 5, None, {"value": "an"}),
        ParsedRecord("root", 6, None, {"value": "object"}),
    ]


def test_the_error_names_the_line() -> None:
    body = b'{"event": "delivered", "id": 1}\n\n{"event": "bounce", "id": 2,}\n{"event": "open", "id": 3}\n'
    with pytest.raises(ParseError) as caught:
        parse(body, "application/jsonl")
    assert (
        str(caught.value)
        == "ndjson: line 3: Expecting property name enclosed in double quotes at column 29 (char 28)"
    )


def test_unicode_line_separators_inside_strings_do_not_split_lines() -> None:
    body = '{"text": "first\u2028second"}\n{"text": "third"}'.encode()
    _, records = parse(body, "application/x-jsonlines")
    assert [r.data["text"] for r in records] == ["first\u2028second", "third"]


def test_only_blank_lines_give_no_records() -> None:
    assert parse(b"\n \r\n\n", "application/x-ndjson") == ("ndjson", [])


def test_nesting_is_checked_per_line() -> None:
    with pytest.raises(
        ParseError, match=r"^ndjson: nesting deeper than 64 at line 2, column 65 \(char 64\)$"
    ):
        parse(b'{"ok": true}\n' + b"[" * 10_000 + b"]" * 10_000, "application/x-ndjson")
    with pytest.raises(ParseError, match=r"^ndjson: nesting deeper than 2 at line 2, \$\.a\.b$"):
        parse(b'{"ok": true}\n{"a": {"b": {}}}', "application/x-ndjson", limits=Limits(max_depth=2))


def test_invalid_utf8_is_reported_with_its_byte_offset() -> None:
    with pytest.raises(ParseError, match=r"^ndjson: invalid utf-8 at byte 22$"):
        parse(b'{"a": 1}\n{"name": "Jos\xe9"}', "application/x-ndjson")
