"""The SQL backend: compile a filter tree into one SQLAlchemy boolean expression.

The meaning of each operator is the one written down in `evaluate.py`; this module says the same
thing in SQL so the catalog filters rows where they sit. Field paths never enter SQL text: columns
are looked up by name, and JSON paths are bound parameters.

SQL's NULL would make `NOT (missing = 'x')` unknown instead of true; every condition is therefore
wrapped in `COALESCE(…, false)`, which gives the two-valued logic of the Python evaluator; a
condition on a NOT NULL column cannot be NULL and stays bare, so the column's index can serve it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    ARRAY,
    Float,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from tierflow.filters import ast
from tierflow.filters.matching import fold, text_patterns

Kind = Literal["null", "bool", "number", "string", "array", "object"]
_SCALAR_KINDS: tuple[Kind, ...] = ("null", "bool", "number", "string")


@dataclass(frozen=True)
class ColumnField:
    """A plain column: always present, null when SQL NULL.

    `upper_only` marks columns whose values are upper-case ASCII (statuses), so that a
    case-insensitive `eq` compiles to an index-friendly `col = 'PENDING'`.
    """

    column: ColumnElement[Any]
    kind: Literal["string", "number"]
    upper_only: bool = False


@dataclass(frozen=True)
class JsonField:
    """A value inside a JSON column, at `path` (empty path: the whole document)."""

    column: ColumnElement[Any]
    path: tuple[str, ...]


Field = ColumnField | JsonField
FieldResolver = Callable[[str], Field | None]
"""Maps a dot path to where it lives; None means no record ever has it."""


class _SQLite:
    """JSON access through SQLite's JSON1 functions; tf_* functions are registered per connection."""

    def json_type(self, f: JsonField) -> ColumnElement[Any]:
        return func.json_type(f.column, self._path(f))

    def json_value(self, f: JsonField) -> ColumnElement[Any]:
        return func.json_extract(f.column, self._path(f))

    def json_number(self, f: JsonField) -> ColumnElement[Any]:
        return self.json_value(f)

    @staticmethod
    def _path(f: JsonField) -> Any:
        return bindparam(None, "$" + "".join(f'."{p}"' for p in f.path), unique=True)

    kinds = {
        "null": ("null",), "bool": ("true", "false"), "number": ("integer", "real"),
        "string": ("text",), "array": ("array",), "object": ("object",),
    }

    def bool_is(self, typ: Any, value: Any, target: bool) -> ColumnElement[bool]:
        return typ == ("true" if target else "false")

    def as_number(self, value: Any) -> Any:
        return value

    def fold(self, expr: Any) -> ColumnElement[Any]:
        return func.tf_fold(expr)

    def suffix(self, expr: Any, length: int) -> ColumnElement[Any]:
        return func.substr(expr, -length)

    def regexp(self, expr: Any, pattern: str, case_sensitive: bool) -> ColumnElement[Any]:
        return func.tf_regexp(pattern, case_sensitive, expr) == 1

    def position(self, haystack: Any, needle: Any) -> ColumnElement[Any]:
        return func.instr(haystack, needle)

    def binary(self, expr: Any) -> Any:
        return expr

    def array_has(self, f: JsonField, match: Callable[[Any, Any], ColumnElement[Any]]) -> Any:
        each = func.json_each(f.column, self._path(f)).table_valued("type", "atom")
        return exists(select(literal(1)).select_from(each).where(match(each.c.type, each.c.atom)))


class _PostgreSQL(_SQLite):
    """JSON access through JSONB operators (`#>`, `#>>`, `jsonb_typeof`)."""

    kinds = {
        "null": ("null",), "bool": ("boolean",), "number": ("number",),
        "string": ("string",), "array": ("array",), "object": ("object",),
    }

    @staticmethod
    def _path(f: JsonField) -> Any:
        return bindparam(None, list(f.path), type_=ARRAY(Text), unique=True)

    def _objects_only(self, f: JsonField, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        """`#>` also indexes arrays by number; dot paths traverse objects only, so guard that."""
        numeric = [i for i, part in enumerate(f.path) if part.isdigit()]
        if not numeric:
            return expr
        parents = [
            func.jsonb_typeof(f.column.op("#>", return_type=JSONB)(
                bindparam(None, list(f.path[:i]), type_=ARRAY(Text), unique=True))) == "object"
            for i in numeric
        ]
        return case((and_(*parents), expr), else_=None)

    def _node(self, f: JsonField) -> ColumnElement[Any]:
        return self._objects_only(f, f.column.op("#>", return_type=JSONB)(self._path(f)))

    def json_type(self, f: JsonField) -> ColumnElement[Any]:
        return func.jsonb_typeof(self._node(f))

    def json_value(self, f: JsonField) -> ColumnElement[Any]:
        return self._objects_only(f, f.column.op("#>>", return_type=Text)(self._path(f)))

    def json_number(self, f: JsonField) -> ColumnElement[Any]:
        return cast(self.json_value(f), Float)

    def bool_is(self, typ: Any, value: Any, target: bool) -> ColumnElement[bool]:
        return and_(typ == "boolean", value == ("true" if target else "false"))

    def as_number(self, value: Any) -> Any:
        return cast(value, Float)

    def fold(self, expr: Any) -> ColumnElement[Any]:
        return func.lower(expr)

    def suffix(self, expr: Any, length: int) -> ColumnElement[Any]:
        return func.right(expr, length)

    def regexp(self, expr: Any, pattern: str, case_sensitive: bool) -> ColumnElement[Any]:
        return expr.op("~" if case_sensitive else "~*")(pattern)

    def position(self, haystack: Any, needle: Any) -> ColumnElement[Any]:
        return func.strpos(haystack, needle)

    def binary(self, expr: Any) -> Any:
        return expr.collate("C")

    def array_has(self, f: JsonField, match: Callable[[Any, Any], ColumnElement[Any]]) -> Any:
        # PostgreSQL may evaluate EXISTS before the type check: never hand it a non-array.
        node = self._node(f)
        array = case((func.jsonb_typeof(node) == "array", node), else_=cast(literal("[]"), JSONB))
        each = func.jsonb_array_elements(array).table_valued("value")
        typ = func.jsonb_typeof(each.c.value)
        text = each.c.value.op("#>>", return_type=Text)(cast(literal([]), ARRAY(Text)))
        return exists(select(literal(1)).select_from(each).where(match(typ, text)))


def _may_hold(f: Field, kind: str) -> bool:
    """Whether the field can hold a value of `kind` (a plain column holds only its own kind)."""
    return isinstance(f, JsonField) or f.kind == kind


class _Compiler:
    def __init__(self, resolve: FieldResolver, dialect: _SQLite) -> None:
        self.resolve = resolve
        self.d = dialect

    def node(self, node: ast.Node) -> ColumnElement[bool]:
        if isinstance(node, ast.Condition):
            field = self.resolve(node.field)
            if isinstance(field, ColumnField) and not getattr(field.column, "nullable", True):
                return self.condition(node)  # never NULL: left bare so an index on the column applies
            return func.coalesce(self.condition(node), false())
        parts = [self.node(item) for item in node.items]
        if isinstance(node, ast.All):
            return and_(true(), *parts)
        if isinstance(node, ast.AnyOf):
            return or_(false(), *parts)
        return not_(or_(false(), *parts))

    # -- field access -------------------------------------------------------------------
    def present(self, f: Field) -> ColumnElement[bool]:
        return self.d.json_type(f).is_not(None) if isinstance(f, JsonField) else true()

    def is_kind(self, f: Field, *kinds: Kind) -> ColumnElement[bool]:
        if isinstance(f, JsonField):
            names = [name for kind in kinds for name in self.d.kinds[kind]]
            return self.d.json_type(f).in_(names)
        checks = []
        if "null" in kinds:
            checks.append(f.column.is_(None))
        if f.kind in kinds:
            checks.append(f.column.is_not(None))
        return or_(false(), *checks)

    def text(self, f: Field) -> Any:
        return self.d.json_value(f) if isinstance(f, JsonField) else f.column

    def number(self, f: Field) -> Any:
        return self.d.json_number(f) if isinstance(f, JsonField) else f.column

    # -- operators ----------------------------------------------------------------------
    def equal(self, f: Field, target: Any, cs: bool) -> ColumnElement[bool]:
        if target is None:
            return self.is_kind(f, "null")
        if isinstance(target, bool):
            if not isinstance(f, JsonField):
                return false()
            return self.d.bool_is(self.d.json_type(f), self.d.json_value(f), target)
        if isinstance(target, int | float):
            if not _may_hold(f, "number"):
                return false()
            return and_(self.is_kind(f, "number"), self.number(f) == target)
        if not _may_hold(f, "string"):
            return false()
        return and_(self.is_kind(f, "string"), self.string_equal(f, target, cs))

    def string_equal(self, f: Field, target: str, cs: bool) -> ColumnElement[bool]:
        if cs:
            return self.text(f) == target
        if isinstance(f, ColumnField) and f.upper_only:
            candidate = fold(target).upper()
            return f.column == candidate if fold(candidate) == fold(target) else false()
        return self.d.fold(self.text(f)) == fold(target)

    def one_of(self, f: Field, targets: Sequence[Any], cs: bool) -> ColumnElement[bool]:
        strings = [t for t in targets if isinstance(t, str)]
        others = [t for t in targets if not isinstance(t, str)]
        checks = [self.equal(f, t, cs) for t in others]
        if not _may_hold(f, "string"):
            strings = []
        if strings and (cs or (isinstance(f, ColumnField) and f.upper_only)):
            checks.extend(self.string_equal(f, s, cs) for s in strings)
        elif strings:
            folded = sorted({fold(s) for s in strings})
            checks.append(and_(self.is_kind(f, "string"), self.d.fold(self.text(f)).in_(folded)))
        return or_(false(), *checks)

    def compare(self, f: Field, op: str, target: Any) -> ColumnElement[bool]:
        kind = "string" if isinstance(target, str) else "number"
        if not _may_hold(f, kind):
            return false()
        left = self.d.binary(self.text(f)) if kind == "string" else self.number(f)
        cmp = {"gt": left > target, "gte": left >= target, "lt": left < target, "lte": left <= target}
        return and_(self.is_kind(f, kind), cmp[op])  # type: ignore[arg-type]

    def array_contains(self, f: Field, target: Any, cs: bool) -> ColumnElement[bool]:
        if not isinstance(f, JsonField):
            return false()
        kinds = self.d.kinds

        def match(typ: Any, value: Any) -> ColumnElement[bool]:
            if target is None:
                return typ.in_(kinds["null"])
            if isinstance(target, bool):
                return self.d.bool_is(typ, value, target)
            if isinstance(target, int | float):
                return and_(typ.in_(kinds["number"]), self.d.as_number(value) == target)
            text = value if cs else self.d.fold(value)
            return and_(typ.in_(kinds["string"]), text == (target if cs else fold(target)))

        return and_(self.is_kind(f, "array"), self.d.array_has(f, match))

    def condition(self, c: ast.Condition) -> ColumnElement[bool]:
        f = self.resolve(c.field)
        op, target, cs = c.operator, c.value, c.case_sensitive
        if f is None:
            return true() if (op == "exists" and not target) else false()
        if op == "exists":
            return self.present(f) if target else not_(self.present(f))
        if op == "is_null":
            null = self.is_kind(f, "null")
            return null if target else and_(self.present(f), not_(null))
        if op == "eq":
            return self.equal(f, target, cs)
        if op == "ne":
            return and_(self.is_kind(f, *_SCALAR_KINDS), not_(func.coalesce(self.equal(f, target, cs), false())))
        if op == "in":
            return self.one_of(f, target, cs)
        if op == "nin":
            return and_(self.is_kind(f, *_SCALAR_KINDS), not_(func.coalesce(self.one_of(f, target, cs), false())))
        if op in ("gt", "gte", "lt", "lte"):
            return self.compare(f, op, target)
        if op == "contains":
            in_array = self.array_contains(f, target, cs)
            if not isinstance(target, str) or not _may_hold(f, "string"):
                return in_array
            hay = self.text(f) if cs else self.d.fold(self.text(f))
            needle = target if cs else fold(target)
            in_text = and_(self.is_kind(f, "string"), self.d.position(hay, needle) > 0)
            return or_(in_text, in_array)
        if not _may_hold(f, "string"):
            return false()
        text = self.text(f) if cs or op in ("regex", "text") else self.d.fold(self.text(f))
        needle = target if cs else fold(target)
        if op == "starts_with":
            check = func.substr(text, 1, len(needle)) == needle
        elif op == "ends_with":
            check = self.d.suffix(text, len(needle)) == needle
        elif op == "regex":
            check = self.d.regexp(text, target, cs)
        else:
            check = and_(*[self.d.regexp(text, p, False) for p in text_patterns(target)])
        return and_(self.is_kind(f, "string"), check)


def compile_filter(
    node: ast.Node, resolve: FieldResolver, *, dialect: str = "sqlite"
) -> ColumnElement[bool]:
    """A SQL boolean for `node`; `resolve` maps field paths to columns or JSON paths."""
    if node == ast.MATCH_ALL:
        return true()
    backend = _PostgreSQL() if dialect == "postgresql" else _SQLite()
    return _Compiler(resolve, backend).node(node)
