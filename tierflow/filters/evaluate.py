"""The Python backend: decide whether one record (a dict) matches a filter.

This module is also the definition of what each operator means; `sql.py` compiles the same
meaning to SQL, and a property test checks that the two agree.

- A missing field, or a value of a type the operator does not apply to, makes the condition
  false (and so its NOT true). Nothing raises.
- `eq`/`in` compare like with like: strings with strings (case-folded unless case-sensitive),
  numbers with numbers, booleans with booleans, null with null.
- `ne`/`nin` hold for a present scalar (string, number, boolean, null) that `eq`/`in` reject.
- `gt gte lt lte` compare numbers with numbers, or strings with strings in code-point order
  (ISO-8601 timestamps sort by time in that order; tierflow stores its own in one UTC form).
- `contains` is a substring test on strings and a membership test (`eq`) on arrays.
- `exists` asks whether the key is present (null counts); `is_null` whether a present value is null.
- `text` holds when each word of the query appears as a whole word, in any case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierflow.filters import ast
from tierflow.filters.matching import fold, regex_search, text_patterns

MISSING: Any = object()
"""What `resolve_path` returns for a path the record does not have."""


def resolve_path(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dot path, or `MISSING`; only objects are traversed, never arrays."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return MISSING
        current = current[part]
    return current


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _is_scalar(value: Any) -> bool:
    return _kind(value) in ("null", "bool", "number", "string")


def _equal(value: Any, target: Any, case_sensitive: bool) -> bool:
    kind = _kind(target)
    if _kind(value) != kind:
        return False
    if kind == "string" and not case_sensitive:
        return fold(value) == fold(target)
    return bool(value == target)


def _compare(value: Any, target: Any, operator: str) -> bool:
    kind = _kind(target)
    if _kind(value) != kind or kind not in ("number", "string"):
        return False
    if operator == "gt":
        return bool(value > target)
    if operator == "gte":
        return bool(value >= target)
    if operator == "lt":
        return bool(value < target)
    return bool(value <= target)


def _folded(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else fold(text)


def matches_condition(value: Any, condition: ast.Condition) -> bool:
    """Apply one condition to the value found at its field (`MISSING` when absent)."""
    op, target, cs = condition.operator, condition.value, condition.case_sensitive
    if op == "exists":
        return (value is not MISSING) == target
    if value is MISSING:
        return False
    if op == "is_null":
        return (value is None) == target
    if op == "eq":
        return _equal(value, target, cs)
    if op == "ne":
        return _is_scalar(value) and not _equal(value, target, cs)
    if op == "in":
        return any(_equal(value, t, cs) for t in target)
    if op == "nin":
        return _is_scalar(value) and not any(_equal(value, t, cs) for t in target)
    if op in ("gt", "gte", "lt", "lte"):
        return _compare(value, target, op)
    if op == "contains":
        if isinstance(value, list):
            return any(_equal(item, target, cs) for item in value)
        return (
            isinstance(value, str)
            and isinstance(target, str)
            and _folded(target, cs) in _folded(value, cs)
        )
    if not isinstance(value, str):
        return False
    if op == "starts_with":
        return _folded(value, cs).startswith(_folded(target, cs))
    if op == "ends_with":
        return _folded(value, cs).endswith(_folded(target, cs))
    if op == "regex":
        return regex_search(target, cs, value)
    return all(regex_search(p, False, value) for p in text_patterns(target))


def evaluate(node: ast.Node, record: Mapping[str, Any]) -> bool:
    """True when `record` matches the filter tree `node`."""
    if isinstance(node, ast.Condition):
        return matches_condition(resolve_path(record, node.field), node)
    if isinstance(node, ast.All):
        return all(evaluate(item, record) for item in node.items)
    if isinstance(node, ast.AnyOf):
        return any(evaluate(item, record) for item in node.items)
    return not any(evaluate(item, record) for item in node.items)
