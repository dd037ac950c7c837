from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from hookbay_common.errors import InvalidArgument
from hookbay_common.outbox import backoff
from hookbay_receiver.packets import decode_cursor, encode_cursor, page_size
from hookbay_receiver.sources import check_format, normalize_guid


def test_guids_are_normalised_and_junk_refused() -> None:
    guid = str(uuid.uuid4())
    assert normalize_guid(guid.upper()) == guid
    for junk in ["", "nope", "../../etc/passwd", "x" * 5000, guid + "0"]:
        assert normalize_guid(junk) is None


def test_backoff_grows_and_is_capped() -> None:
    assert 0.5 <= backoff(1, 1.0, 300) <= 1.0
    assert 4.0 <= backoff(4, 1.0, 300) <= 8.0
    assert backoff(40, 1.0, 300) <= 300


def test_cursors_round_trip_and_reject_forgeries() -> None:
    at, last = datetime(2026, 12, 3, 10, 0, tzinfo=UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor(at, last)) == (at, last)
    assert decode_cursor("") is None
    with pytest.raises(InvalidArgument):
        decode_cursor("not-a-token")
    assert page_size(0) == 100
    assert page_size(5000) == 1000


def test_formats_are_checked() -> None:
    assert check_format("JSON") == "json"
    assert check_format("") == "auto"
    with pytest.raises(InvalidArgument, match="unknown format"):
        check_format("yaml")
