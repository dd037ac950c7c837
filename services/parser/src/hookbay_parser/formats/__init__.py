"""Turning a raw webhook body into staging records: a pure library (no database, no network, no I/O).

``parse(body, content_type, fmt, limits)`` returns ``(format used, records)`` or raises ``ParseError``
(the body is not valid for the format) or ``NoParser`` (nothing parses this content). A ParseError
names the format and, where known, the position; lines and columns count from 1 for JSON and XML alike.

Choosing a format
-----------------
A source's explicit format wins; ``text`` and ``binary`` mean "store only" and raise ``NoParser``.
With ``auto`` the Content-Type decides (case-insensitive, parameters ignored):

* json: ``application/json`` and any ``*/*+json`` (so CloudEvents structured and batch mode);
* ndjson: ``application/x-ndjson``, ``application/jsonl``, ``application/x-jsonlines``;
* xml: ``application/xml``, ``text/xml``, any ``*/*+xml`` (so ``application/soap+xml``);
* form: ``application/x-www-form-urlencoded``, ``multipart/form-data``.

A missing Content-Type, ``text/plain`` or ``application/octet-stream`` is sniffed: a body whose first
non-whitespace character is ``{`` or ``[`` and which parses as JSON is json, ``<`` is xml, anything
else gets ``NoParser``. Every other content type, and an unknown explicit format name, gets ``NoParser``.

The record convention
---------------------
Each record has a ``type`` (``"root"``, or the dotted path of the array it came from), an ``ordinal``
(0, 1, 2, ... in document order, a parent before its children, unique within the packet), a
``parent`` ordinal (``None`` for roots) and flat ``data``: dotted keys to JSON values.

JSON

* An object is one ``root`` record. Nested objects flatten into dotted keys (``billing.email``); an
  empty object stays a value ``{}``, an empty array a value ``[]``. Keys are used verbatim, so a key
  that itself contains a dot can collide with a flattened one; the later key in the document wins.
* Arrays of scalars, arrays of arrays, and arrays mixing objects with anything else stay list values.
* Each element of a (non-empty) array made only of objects becomes a child record, and the parent
  does not keep that key. The child's type is the array's dotted path relative to its record,
  prefixed by that record's type unless it is the root: ``line_items``, then ``line_items.taxes``
  for the ``taxes`` array inside a line item; an array at ``a.b`` in the root gives type ``a.b``.
* A top-level array gives one root record per element (SendGrid, HubSpot, CloudEvents batches);
  an element or top-level value that is not an object becomes ``{"value": x}``. An empty top-level
  array gives no records.
* Numbers keep their JSON type: integers are Python ints of any size (CPython's
  ``sys.get_int_max_str_digits`` limit, 4300 digits by default, is a ParseError), floats are floats;
  ``NaN``/``Infinity`` and floats that overflow to infinity are ParseErrors, as JSON has no such values.
* The body is UTF-8 (a BOM is skipped), or UTF-16/UTF-32 recognised as RFC 8259 section 8.1 allows.
* CloudEvents structured mode is plain JSON under this convention.

NDJSON: each non-empty line is parsed and flattened exactly as a JSON body (so a line holding an
array gives one root per element); ordinals run on across lines; errors name the line number.

XML (parsed only with defusedxml: DTDs, entity declarations and external references are refused)

* The document becomes ``{root element's local name: value}``, then follows the JSON rules.
* Namespaces are dropped from element and attribute names (``sf:Id`` -> ``Id``); attributes become
  ``@name`` keys (``xsi:type`` -> ``@type``, its value kept as written, e.g. ``sf:Contact``); two
  attributes differing only by namespace collide and the later one wins.
* An element with only text is that string, verbatim; an empty element without attributes, or any
  element with ``xsi:nil="true"`` (or ``"1"``), is ``None``.
* An element with attributes or children keeps its text as ``#text``: its own text and its children's
  tails, each stripped and joined by single spaces; whitespace-only text (indentation) is dropped.
* Same-named sibling elements form an array (siblings need not be adjacent; their order relative to
  differently named siblings is lost). An array of elements with children or attributes is an array
  of objects and so gives child records. The consequence: one ``<Notification>`` stays flattened into
  its parent (``notifications.Notification.Id``) while two give two ``notifications.Notification``
  records. Mixing such elements with text-only ones gives a list value instead.
* A SOAP ``Envelope`` (by local name) is unwrapped: the first child element of its ``Body`` becomes
  the root element and the ``Header`` is dropped. An envelope with an empty Body is kept as is.
* The encoding comes from the BOM or the XML declaration; a Content-Type charset is not consulted.

Forms: one root record.

* Values are strings. A repeated name gives a list of strings; ``tags[]`` always gives a list.
* Bracketed names nest: ``data[merges][FNAME]`` -> ``data.merges.FNAME``. Numeric indexes are keys
  like any other (``items[0][sku]`` -> ``items.0.sku``). A name whose brackets contradict an earlier
  field (``a=1&a[b]=2``) is a ParseError; malformed brackets (``a[b``) are taken literally.
* A name without ``=`` has the value ``""``.
* Charset: the Content-Type ``charset`` parameter, else a ``charset`` field in the body (PayPal IPN),
  else UTF-8. Percent-decoding happens on bytes before the charset is applied; bytes invalid in that
  charset, or an unknown charset, are a ParseError.
* Multipart: text parts decode with their own ``charset`` parameter, else UTF-8. A file part is
  described, not stored: ``{"filename", "content_type", "size"}`` (size an int) under its field name;
  several files under one name are therefore an array of objects and give child records.

Limits
------
Nesting deeper than ``max_depth`` is a ParseError: for JSON the outermost object or array is level 1;
for XML the root element (before SOAP unwrapping) is level 1; for forms each name segment is a level.
More than ``max_records`` records, or more than ``time_budget`` seconds spent (checked while walking
and flattening, and after the underlying parser returns), is a ParseError.
"""

from __future__ import annotations

from collections.abc import Callable

from hookbay_parser.formats._choose import FORMATS, choose_format
from hookbay_parser.formats._form import parse_form
from hookbay_parser.formats._json import parse_json, parse_ndjson
from hookbay_parser.formats._records import Budget
from hookbay_parser.formats._types import Limits, NoParser, ParsedRecord, ParseError
from hookbay_parser.formats._xml import parse_xml

__all__ = ["FORMATS", "Limits", "NoParser", "ParseError", "ParsedRecord", "choose_format", "parse"]

_PARSERS: dict[str, Callable[[bytes, str, Budget], list[ParsedRecord]]] = {
    "json": parse_json,
    "ndjson": parse_ndjson,
    "xml": parse_xml,
    "form": parse_form,
}


def parse(
    body: bytes, content_type: str, fmt: str = "auto", limits: Limits = Limits()
) -> tuple[str, list[ParsedRecord]]:
    """Returns (format used, records)."""
    budget = Budget(limits)
    body = bytes(body)
    chosen = choose_format(fmt, content_type or "", body)
    try:
        records = _PARSERS[chosen](body, content_type or "", budget)
    except RecursionError:
        # Every walk is depth-checked first; this is the last line of defence, never a crash.
        raise ParseError(f"{chosen}: nesting too deep") from None
    return chosen, records
