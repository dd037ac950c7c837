"""Per-packet limits: record count and time budget, whatever the format."""

from __future__ import annotations

import json
import time

import pytest

from hookbay_parser.formats import Limits, ParseError, parse


def _order_with_items(count: int) -> bytes:
    return json.dumps(
        {"id": 1, "line_items": [{"sku": f"SKU-{i}", "quantity": 1} for i in range(count)]}
    ).encode()


def test_exactly_max_records_is_fine() -> None:
    _, records = parse(_order_with_items(9_999), "application/json")
    assert len(records) == 10_000
    assert records[-1].ordinal == 9_999 and records[-1].parent == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (_order_with_items(10_000), "application/json"),
        (json.dumps([{"event": "open"}] * 50_000).encode(), "application/json"),
        (b"{}\n" * 10_001, "application/x-ndjson"),
        (b"<feed>" + b"<entry><id>1</id></entry>" * 10_001 + b"</feed>", "application/atom+xml"),
    ],
)
def test_too_many_records_is_a_parse_error(body: bytes, content_type: str) -> None:
    started = time.monotonic()
    with pytest.raises(ParseError) as caught:
        parse(body, content_type)
    assert str(caught.value) == "too many records: more than 10000"
    assert time.monotonic() - started < 5


def test_max_records_is_configurable() -> None:
    with pytest.raises(ParseError, match=r"^too many records: more than 2$"):
        parse(_order_with_items(2), "application/json", limits=Limits(max_records=2))


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (_order_with_items(5_000), "application/json"),
        (b"{}\n" * 5_000, "application/x-ndjson"),
        (b"<feed>" + b"<entry><id>1</id></entry>" * 5_000 + b"</feed>", "application/xml"),
        (b"&".join(b"k%d=v" % i for i in range(5_000)), "application/x-www-form-urlencoded"),
    ],
)
def test_time_budget_is_enforced(body: bytes, content_type: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(body, content_type, limits=Limits(time_budget=0.0))
    assert str(caught.value) == "time budget of 0.0s exceeded"


def test_a_generous_time_budget_is_not_hit() -> None:
    _, records = parse(_order_with_items(5_000), "application/json", limits=Limits(time_budget=60.0))
    assert len(records) == 5_001
