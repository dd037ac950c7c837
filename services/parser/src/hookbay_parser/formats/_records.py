"""Turning a JSON-like value into flat staging records, within the packet's limits."""

from __future__ import annotations

import time
from typing import Any

from hookbay_parser.formats._types import ROOT, Limits, ParsedRecord, ParseError

# time.monotonic() on every node would cost more than the flattening itself.
_CLOCK_EVERY = 256
_MAX_SHOWN_PATH = 200


class Budget:
    """The work one packet may cost: its limits plus a deadline started when parsing began."""

    __slots__ = ("_deadline", "_ticks", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._deadline = time.monotonic() + limits.time_budget
        self._ticks = 0

    def tick(self) -> None:
        self._ticks += 1
        if self._ticks % _CLOCK_EVERY == 0:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise ParseError(f"time budget of {self.limits.time_budget}s exceeded")


def too_deep(fmt: str, max_depth: int, where: str) -> ParseError:
    if len(where) > _MAX_SHOWN_PATH:
        where = where[:_MAX_SHOWN_PATH] + "..."
    return ParseError(f"{fmt}: nesting deeper than {max_depth} at {where}")


def check_depth(value: Any, fmt: str, budget: Budget, prefix: str = "") -> None:
    """Reject values nested deeper than ``max_depth`` containers (the outermost object or array is level 1).

    Iterative, so that a hostile document cannot exhaust the Python stack here; the flattening that
    follows recurses, which is safe once the depth is known to be bounded."""
    max_depth = budget.limits.max_depth
    stack: list[tuple[Any, int, str]] = [(value, 1, prefix + "$")]
    while stack:
        node, depth, path = stack.pop()
        if not isinstance(node, dict | list):
            continue
        budget.tick()
        if depth > max_depth:
            raise too_deep(fmt, max_depth, path)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if isinstance(child, dict | list):
                step = f".{key}" if isinstance(node, dict) else f"[{key}]"
                stack.append((child, depth + 1, path + step))


def _is_record_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


class RecordBuilder:
    """Collects the records of one packet; ordinals are assigned in document order (pre-order)."""

    def __init__(self, budget: Budget) -> None:
        self.records: list[ParsedRecord] = []
        self._budget = budget

    def add_document(self, value: Any) -> None:
        """A top-level array gives one root per element; anything that is not an object is wrapped
        as ``{"value": x}`` so that every record's data is an object."""
        for item in value if isinstance(value, list) else [value]:
            self._add_record(ROOT, None, item if isinstance(item, dict) else {"value": item})

    def _add_record(self, record_type: str, parent: int | None, obj: dict[str, Any]) -> None:
        max_records = self._budget.limits.max_records
        if len(self.records) >= max_records:
            raise ParseError(f"too many records: more than {max_records}")
        ordinal = len(self.records)
        data: dict[str, Any] = {}
        # Appended before its children are flattened so that a parent's ordinal precedes theirs.
        self.records.append(ParsedRecord(record_type, ordinal, parent, data))
        self._flatten(obj, "", data, record_type, ordinal)

    def _flatten(
        self, obj: dict[str, Any], prefix: str, data: dict[str, Any], record_type: str, ordinal: int
    ) -> None:
        for key, value in obj.items():
            self._budget.tick()
            path = prefix + key
            if isinstance(value, dict) and value:
                self._flatten(value, path + ".", data, record_type, ordinal)
            elif _is_record_array(value):
                child_type = path if record_type == ROOT else f"{record_type}.{path}"
                for item in value:
                    self._add_record(child_type, ordinal, item)
            else:
                data[path] = value
