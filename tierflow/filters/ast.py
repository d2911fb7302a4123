"""The parsed form of a LogicalOperator filter, and the limits every filter must respect.

Both backends (the Python evaluator and the SQL compiler) work on these frozen nodes, never on raw
dicts, so they cannot disagree about what a filter says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

Operator = Literal[
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "starts_with",
    "ends_with", "regex", "exists", "is_null", "text",
]
OPERATORS: tuple[str, ...] = (
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "starts_with",
    "ends_with", "regex", "exists", "is_null", "text",
)
Scalar: TypeAlias = str | int | float | bool | None

# Limits: past any of them a filter is refused with a validation error naming the place.
MAX_DEPTH = 16
MAX_CONDITIONS = 256
MAX_NODES = 512
"""Groups and conditions together, empty groups included: each costs work in SQL and in Python."""
MAX_TEXT_WORDS = 32
"""Words of one `text` query: each is a regular expression run on every candidate row."""
MAX_PATTERNS = 64
"""Regular expressions of one filter: its `regex` conditions and the words of its `text` ones."""
MAX_LIST_VALUES = 1000
MAX_STRING_LENGTH = 4096
MAX_PATTERN_LENGTH = 1024
MAX_FIELD_LENGTH = 256


@dataclass(frozen=True)
class Condition:
    """`field operator value`, with the case sensitivity in force where it stands."""

    field: str
    operator: Operator
    value: Any
    case_sensitive: bool = False


@dataclass(frozen=True)
class All:
    """Every item holds (AND, and the several keys of one operator)."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one item holds (OR)."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class NoneOf:
    """No item holds (NOT)."""

    items: tuple[Node, ...]


Node: TypeAlias = Condition | All | AnyOf | NoneOf

MATCH_ALL: Node = All(())


def combine_all(*nodes: Node | None) -> Node:
    """AND of the given filters, skipping absent ones (how collection, trigger and ids merge)."""
    present = tuple(n for n in nodes if n is not None and n != MATCH_ALL)
    if not present:
        return MATCH_ALL
    if len(present) == 1:
        return present[0]
    return All(present)
