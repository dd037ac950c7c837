"""XML bodies, parsed only through defusedxml and converted to JSON-like data."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element
from xml.etree.ElementTree import ParseError as XMLSyntaxError
from xml.parsers.expat import ErrorString

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from hookbay_parser.formats._records import Budget, RecordBuilder, too_deep
from hookbay_parser.formats._types import ParsedRecord, ParseError

_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def parse_xml(body: bytes, content_type: str, budget: Budget) -> list[ParsedRecord]:
    root = _parse_tree(body)
    budget.check_time()
    _check_depth(root, budget)
    root = _unwrap_soap(root)
    builder = RecordBuilder(budget)
    builder.add_document({_local(root.tag): _element_value(root, budget)})
    return builder.records


def _parse_tree(body: bytes) -> Element:
    # The encoding comes from the BOM or the XML declaration, as expat reads them; forbidding DTDs
    # outright also rules out entity expansion bombs and external fetches before they start.
    try:
        return SafeElementTree.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden:
        raise ParseError("xml: DTDs are not allowed") from None
    except EntitiesForbidden:
        raise ParseError("xml: entity declarations are not allowed") from None
    except ExternalReferenceForbidden:
        raise ParseError("xml: external references are not allowed") from None
    except XMLSyntaxError as exc:
        line, column = exc.position
        # expat counts columns from 0; report them from 1, like the JSON errors and text editors.
        raise ParseError(f"xml: {ErrorString(exc.code)} at line {line}, column {column + 1}") from None


def _check_depth(root: Element, budget: Budget) -> None:
    """Iterative, like the JSON check: the conversion below recurses once the depth is known to be bounded.
    Each stack entry carries its parent entry so the path is only spelled out on failure."""
    max_depth = budget.limits.max_depth
    stack: list[tuple[Element, int, tuple | None]] = [(root, 1, None)]
    while stack:
        entry = stack.pop()
        element, depth, _ = entry
        budget.tick()
        if depth > max_depth:
            raise too_deep("xml", max_depth, _path(entry))
        stack.extend((child, depth + 1, entry) for child in element)


def _path(entry: tuple | None) -> str:
    names: list[str] = []
    while entry is not None:
        element, _, entry = entry
        names.append(_local(element.tag))
    return "/" + "/".join(reversed(names))


def _unwrap_soap(root: Element) -> Element:
    """A SOAP envelope is transport: its Body's first child element is the document (the Header is dropped)."""
    if _local(root.tag) != "Envelope":
        return root
    body = next((child for child in root if _local(child.tag) == "Body"), None)
    if body is None or len(body) == 0:
        return root
    return body[0]


def _local(name: str) -> str:
    """``{http://uri}Id`` -> ``Id`` (ElementTree has already resolved ``prefix:`` to ``{uri}``)."""
    return name.rsplit("}", 1)[-1]


def _element_value(element: Element, budget: Budget) -> Any:
    budget.tick()
    if element.get(_XSI_NIL) in ("true", "1"):
        return None
    attributes = {f"@{_local(name)}": value for name, value in element.attrib.items()}
    if not attributes and len(element) == 0:
        return element.text or None  # a leaf keeps its text verbatim; <a/> and <a></a> are None
    value: dict[str, Any] = attributes
    text = _mixed_text(element)
    if text:
        value["#text"] = text
    for child in element:
        _add_child(value, _local(child.tag), _element_value(child, budget))
    return value


def _mixed_text(element: Element) -> str:
    """The element's own text and its children's tails, stripped and joined by spaces; indentation
    (whitespace-only text) is dropped."""
    pieces = [element.text, *(child.tail for child in element)]
    return " ".join(piece.strip() for piece in pieces if piece and piece.strip())


def _add_child(value: dict[str, Any], name: str, child: Any) -> None:
    # Element values are never lists, so a list here can only be a run of same-named siblings.
    if name not in value:
        value[name] = child
    elif isinstance(value[name], list):
        value[name].append(child)
    else:
        value[name] = [value[name], child]
