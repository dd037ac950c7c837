"""The values the format parsers produce and the errors they raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROOT = "root"


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    type: str  # "root", or the dotted path of the array the record came from
    ordinal: int  # 0, 1, 2, ... in document order (parents before their children), unique per packet
    parent: int | None  # ordinal of the parent record, None for roots
    data: dict[str, Any]  # flat: dotted keys -> JSON values


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 64
    max_records: int = 10_000
    time_budget: float = 5.0  # seconds of parsing/flattening per packet


class ParseError(Exception):
    """The body is not valid for the chosen format; ``str()`` is a precise reason naming the format
    and, where the underlying parser knows it, the position."""


class NoParser(Exception):
    """Nothing can parse this content (or the source asks for it to be stored only); ``str()`` says why."""
