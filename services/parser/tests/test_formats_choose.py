"""Format choice: explicit source format, Content-Type, then sniffing."""

from __future__ import annotations

import pytest

from hookbay_parser.formats import FORMATS, NoParser, ParsedRecord, choose_format, parse


def test_format_names_are_stable() -> None:
    assert FORMATS == ("auto", "json", "xml", "form", "ndjson", "text", "binary")


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", "json"),
        ("Application/JSON; charset=UTF-8", "json"),
        ("application/vnd.github+json", "json"),
        ("application/cloudevents+json; charset=utf-8", "json"),
        ("application/cloudevents-batch+json", "json"),
        ("application/problem+json", "json"),
        ("application/x-ndjson", "ndjson"),
        ("application/jsonl", "ndjson"),
        ("application/x-jsonlines", "ndjson"),
        ("application/xml", "xml"),
        ("text/xml; charset=utf-8", "xml"),
        ("application/soap+xml; charset=utf-8; action=urn:notify", "xml"),
        ("application/atom+xml", "xml"),
        ("application/x-www-form-urlencoded", "form"),
        ("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW", "form"),
    ],
)
def test_content_type_decides_with_auto(content_type: str, expected: str) -> None:
    assert choose_format("auto", content_type, b"whatever") == expected


@pytest.mark.parametrize("content_type", ["image/png", "application/pdf", "text/html", "text/csv"])
def test_other_content_types_have_no_parser(content_type: str) -> None:
    with pytest.raises(NoParser) as caught:
        choose_format("auto", content_type + "; charset=binary", b"\x89PNG\r\n\x1a\n")
    assert str(caught.value) == f"no parser for content type {content_type}"


@pytest.mark.parametrize(
    "content_type", ["", "text/plain", "text/plain; charset=utf-8", "application/octet-stream"]
)
def test_json_and_xml_bodies_are_sniffed(content_type: str) -> None:
    assert choose_format("auto", content_type, b'\r\n  {"event": "ping"}') == "json"
    assert choose_format("auto", content_type, b"\xef\xbb\xbf[1, 2]") == "json"
    assert choose_format("auto", content_type, '{"a": "é"}'.encode("utf-16")) == "json"
    assert choose_format("auto", content_type, b'<?xml version="1.0"?><ping/>') == "xml"


def test_plain_text_is_not_parsed() -> None:
    with pytest.raises(NoParser) as caught:
        parse(b"Deployment finished: 3 services restarted.\n", "text/plain")
    assert str(caught.value) == "no parser for content type text/plain (body is neither JSON nor XML)"


def test_a_brace_that_is_not_json_is_not_json() -> None:
    with pytest.raises(NoParser, match=r"neither JSON nor XML"):
        choose_format("auto", "text/plain", b"{curly} but not JSON")


def test_binary_octet_stream_is_not_parsed() -> None:
    with pytest.raises(NoParser) as caught:
        parse(
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00",
            "application/octet-stream",
        )
    assert (
        str(caught.value)
        == "no parser for content type application/octet-stream (body is neither JSON nor XML)"
    )


def test_missing_content_type_is_said_so() -> None:
    with pytest.raises(NoParser, match=r"^no parser for a packet without a content type \(body is neither"):
        parse(b"ok", "")


def test_json_sent_as_text_plain_is_parsed_as_json() -> None:
    fmt, records = parse(b'{"alert": "disk full", "host": {"name": "db-1"}}', "text/plain; charset=utf-8")
    assert fmt == "json"
    assert records == [ParsedRecord("root", 0, None, {"alert": "disk full", "host.name": "db-1"})]


@pytest.mark.parametrize("fmt", ["text", "binary"])
def test_store_only_formats_are_not_parsed(fmt: str) -> None:
    with pytest.raises(NoParser) as caught:
        parse(b'{"a": 1}', "application/json", fmt)
    assert str(caught.value) == f"source format is {fmt}: not parsed"


def test_explicit_format_overrides_the_content_type() -> None:
    assert parse(b"a=1&b=2", "application/json", "form") == (
        "form",
        [ParsedRecord("root", 0, None, {"a": "1", "b": "2"})],
    )
    assert parse(b'{"a": 1}', "image/png", "json")[0] == "json"
    assert parse(b'{"a": 1}\n{"a": 2}\n', "application/json", "ndjson")[0] == "ndjson"
    assert parse(b"<a>1</a>", "application/octet-stream", "xml")[0] == "xml"


def test_unknown_source_format_has_no_parser() -> None:
    with pytest.raises(NoParser, match="unknown source format 'yaml'"):
        choose_format("yaml", "application/json", b"{}")
