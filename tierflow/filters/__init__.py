"""The LogicalOperator filter language: parse once, then evaluate in Python or compile to SQL."""

from tierflow.filters.ast import MATCH_ALL, Condition, Node, combine_all
from tierflow.filters.evaluate import MISSING, evaluate, resolve_path
from tierflow.filters.parse import parse_filter
from tierflow.filters.sql import ColumnField, FieldResolver, JsonField, compile_filter

__all__ = [
    "MISSING",
    "MATCH_ALL",
    "ColumnField",
    "Condition",
    "FieldResolver",
    "JsonField",
    "Node",
    "combine_all",
    "compile_filter",
    "evaluate",
    "parse_filter",
    "resolve_path",
]
