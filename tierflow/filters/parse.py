"""Turn a raw LogicalOperator (JSON) into the checked tree of `ast`.

Every problem is reported with its place, e.g. `AND[1].operator: 'equals' is not one of eq, ne, …`,
and all problems are collected before raising, so a user fixes a filter in one go.
"""

from __future__ import annotations

import math
import re
from typing import Any

from tierflow.errors import ValidationError
from tierflow.filters import ast
from tierflow.filters.matching import compile_pattern, text_patterns
from tierflow.timestamps import canonical_timestamp

_FIELD_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_GROUPS: dict[str, type[ast.All] | type[ast.AnyOf] | type[ast.NoneOf]] = {
    "AND": ast.All, "OR": ast.AnyOf, "NOT": ast.NoneOf,
}
_CONDITION_KEYS = {"field", "operator", "value", "case_sensitive"}
_SCALARS = (str, int, float, bool, type(None))

Location = list[str | int]


class _TooLarge(Exception):
    """Raised past `MAX_NODES`: the rest of the filter is not even looked at."""


class _Parser:
    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []
        self.conditions = 0
        self.nodes = 0
        self.patterns = 0

    def count_node(self, loc: Location) -> None:
        self.nodes += 1
        if self.nodes > ast.MAX_NODES:
            self.fail(loc, f"a filter may hold at most {ast.MAX_NODES} groups and conditions in all "
                           "(empty ones count too)", "limit")
            raise _TooLarge

    def fail(self, location: Location, message: str, kind: str = "value_error") -> None:
        self.errors.append({"type": kind, "location": list(location), "message": message})

    def group(self, raw: Any, loc: Location, depth: int, case_sensitive: bool) -> ast.Node | None:
        if depth > ast.MAX_DEPTH:
            self.fail(loc, f"filters nest deeper than {ast.MAX_DEPTH} levels", "limit")
            return None
        self.count_node(loc)
        if not isinstance(raw, dict):
            self.fail(loc, f"expected an object (a LogicalOperator), got {_describe(raw)}")
            return None
        if "field" in raw:
            return self.condition(raw, loc, case_sensitive)
        cs = raw.get("case_sensitive", case_sensitive)
        if not isinstance(cs, bool):
            self.fail([*loc, "case_sensitive"], f"expected true or false, got {_describe(cs)}")
            cs = case_sensitive
        parts: list[ast.Node] = []
        for key, value in raw.items():
            if key == "case_sensitive":
                continue
            here = [*loc, key]
            if key in _GROUPS:
                items = self.items(key, value, here, depth, cs)
                if items is not None:
                    parts.append(_GROUPS[key](items))
            else:
                parts.append(self.shorthand(key, value, here, cs) or ast.MATCH_ALL)
        return parts[0] if len(parts) == 1 else ast.All(tuple(parts))

    def items(
        self, key: str, value: Any, loc: Location, depth: int, cs: bool
    ) -> tuple[ast.Node, ...] | None:
        if key == "NOT" and isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            self.fail(loc, f"expected a list of conditions or operators, got {_describe(value)}")
            return None
        nodes = [self.group(item, [*loc, i], depth + 1, cs) for i, item in enumerate(value)]
        return tuple(n for n in nodes if n is not None)

    def shorthand(self, key: str, value: Any, loc: Location, cs: bool) -> ast.Node | None:
        self.count_node(loc)
        return self.build(key, "eq", value, loc, cs, field_loc=loc, value_loc=loc)

    def condition(self, raw: dict[str, Any], loc: Location, cs: bool) -> ast.Node | None:
        for extra in sorted(set(raw) - _CONDITION_KEYS):
            self.fail([*loc, extra], "unknown key in a condition (use field, operator, value)")
        own_cs = raw.get("case_sensitive", cs)
        if not isinstance(own_cs, bool):
            self.fail([*loc, "case_sensitive"], f"expected true or false, got {_describe(own_cs)}")
            own_cs = cs
        operator = raw.get("operator", "eq")
        if operator not in ast.OPERATORS:
            self.fail(
                [*loc, "operator"],
                f"{operator!r} is not one of {', '.join(ast.OPERATORS)}",
                "enum",
            )
            return None
        if "value" not in raw and operator not in ("exists", "is_null"):
            self.fail([*loc, "value"], f"operator '{operator}' needs a value", "missing")
            return None
        return self.build(
            raw["field"], operator, raw.get("value", True), loc, own_cs,
            field_loc=[*loc, "field"], value_loc=[*loc, "value"],
        )

    def build(
        self, field: Any, operator: str, value: Any, loc: Location, cs: bool, *,
        field_loc: Location, value_loc: Location,
    ) -> ast.Node | None:
        self.conditions += 1
        if self.conditions == ast.MAX_CONDITIONS + 1:
            self.fail(loc, f"a filter may hold at most {ast.MAX_CONDITIONS} conditions", "limit")
        if not isinstance(field, str) or not _FIELD_RE.match(field):
            self.fail(
                field_loc,
                f"{field!r} is not a field path (letters, digits, '_' and '-', joined by dots)",
            )
            return None
        if len(field) > ast.MAX_FIELD_LENGTH:
            self.fail(field_loc, f"field paths are at most {ast.MAX_FIELD_LENGTH} characters")
            return None
        problem, value = _check_value(operator, value)
        if problem:
            self.fail(value_loc, problem)
            return None
        if operator in ("regex", "text"):
            self.patterns += len(text_patterns(value)) if operator == "text" else 1
            if self.patterns > ast.MAX_PATTERNS:
                self.fail(value_loc, f"a filter may hold at most {ast.MAX_PATTERNS} patterns in all (each regex, "
                                     "and each word of a text query)", "limit")
                return None
        return ast.Condition(field, operator, value, cs)  # type: ignore[arg-type]


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _scalar_problem(value: Any) -> str | None:
    if not isinstance(value, _SCALARS):
        return f"expected a string, number, boolean or null, got {_describe(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite"
    if isinstance(value, str) and len(value) > ast.MAX_STRING_LENGTH:
        return f"strings are at most {ast.MAX_STRING_LENGTH} characters"
    return None


def _normalize(value: Any) -> Any:
    if isinstance(value, str):
        return canonical_timestamp(value) or value
    return value


def _check_value(operator: str, value: Any) -> tuple[str | None, Any]:
    """Return (problem, normalized value) for `value` under `operator`."""
    if operator in ("exists", "is_null"):
        if not isinstance(value, bool):
            return f"operator '{operator}' takes true or false, got {_describe(value)}", value
        return None, value
    if operator in ("in", "nin"):
        if not isinstance(value, list):
            return f"operator '{operator}' needs a list, got {_describe(value)}", value
        if len(value) > ast.MAX_LIST_VALUES:
            return f"lists hold at most {ast.MAX_LIST_VALUES} values", value
        for item in value:
            if problem := _scalar_problem(item):
                return f"in the list: {problem}", value
        return None, tuple(value)
    if problem := _scalar_problem(value):
        return problem, value
    if operator in ("gt", "gte", "lt", "lte"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"operator '{operator}' compares numbers or timestamps, got {_describe(value)}", value
        return None, _normalize(value)
    if operator in ("starts_with", "ends_with", "regex", "text") or (
        operator == "contains" and isinstance(value, str)
    ):
        if not isinstance(value, str) or not value:
            return f"operator '{operator}' needs a non-empty string, got {_describe(value)}", value
    if operator == "regex":
        if len(value) > ast.MAX_PATTERN_LENGTH:
            return f"patterns are at most {ast.MAX_PATTERN_LENGTH} characters", value
        try:
            compile_pattern(value, case_sensitive=True)
        except ValueError as error:
            return f"not a valid regular expression (RE2 syntax): {error}", value
    if operator == "text":
        words = len(text_patterns(value))
        if not words:
            return "operator 'text' needs at least one word", value
        if words > ast.MAX_TEXT_WORDS:
            return f"a text query holds at most {ast.MAX_TEXT_WORDS} words, got {words}", value
    return None, value


def parse_filter(raw: Any, *, where: str = "") -> ast.Node:
    """Parse and check a LogicalOperator; raise `ValidationError` listing every problem.

    `where` prefixes messages (e.g. `source_filters`) so the user knows which filter is meant.
    None and {} mean "everything".
    """
    if raw is None:
        return ast.MATCH_ALL
    parser = _Parser()
    try:
        node = parser.group(raw, [where] if where else [], 0, False)
    except _TooLarge:
        node = None
    if parser.errors:
        raise ValidationError(parser.errors)
    return node if node is not None else ast.MATCH_ALL
