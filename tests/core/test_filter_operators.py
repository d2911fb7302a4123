"""Every operator and rule, checked on both backends: the Python evaluator and SQL in the catalog."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.utils.catalog_rows import make_scope, object_row, replace_objects
from tierflow.catalog.engine import open_session
from tierflow.catalog.records import object_field, object_record
from tierflow.catalog.schema import objects
from tierflow.filters import compile_filter, evaluate, parse_filter

RECORD_METADATA = {
    "title": "Hello World",
    "count": 5,
    "ratio": 0.5,
    "flag": True,
    "nothing": None,
    "tags": ["Red", "green", 3],
    "nested": {"inner": "deep", "n": 2},
    "accented": "route 1É",
    "when": "2024-03-01T08:00:00.000000+00:00",
}

CASES = [
    # eq / ne, case-insensitive by default
    ({"field": "metadata.title", "value": "hello world"}, True),
    ({"field": "metadata.title", "value": "hello world", "case_sensitive": True}, False),
    ({"case_sensitive": True, "AND": [{"field": "metadata.title", "value": "Hello World"}]}, True),
    ({"field": "metadata.count", "value": 5}, True),
    ({"field": "metadata.count", "value": 5.0}, True),
    ({"field": "metadata.count", "value": "5"}, False),
    ({"field": "metadata.flag", "value": True}, True),
    ({"field": "metadata.flag", "value": 1}, False),
    ({"field": "metadata.nothing", "value": None}, True),
    ({"field": "metadata.title", "operator": "ne", "value": "other"}, True),
    ({"field": "metadata.title", "operator": "ne", "value": "HELLO WORLD"}, False),
    ({"field": "metadata.missing", "operator": "ne", "value": "x"}, False),
    ({"NOT": [{"field": "metadata.missing", "value": "x"}]}, True),
    ({"field": "metadata.tags", "operator": "ne", "value": "x"}, False),
    # the reference API's documented example: lower-case 'pending' matches PENDING
    ({"AND": [{"field": "status", "operator": "eq", "value": "pending"}]}, True),
    ({"field": "status", "value": "PENDING", "case_sensitive": True}, True),
    ({"field": "status", "value": "pending", "case_sensitive": True}, False),
    # comparisons: numbers and timestamps
    ({"field": "metadata.count", "operator": "gt", "value": 4}, True),
    ({"field": "metadata.count", "operator": "gte", "value": 5}, True),
    ({"field": "metadata.count", "operator": "lt", "value": 5}, False),
    ({"field": "metadata.ratio", "operator": "lte", "value": 0.5}, True),
    ({"field": "metadata.title", "operator": "gt", "value": 1}, False),
    ({"field": "metadata.when", "operator": "gt", "value": "2024-03-01T09:00:00+02:00"}, True),
    ({"field": "metadata.when", "operator": "lt", "value": "2024-03-01T09:00:00Z"}, True),
    ({"field": "metadata.when", "operator": "gte", "value": "2024-03-02"}, False),
    ({"field": "size_bytes", "operator": "gt", "value": 6}, True),
    # in / nin
    ({"field": "metadata.title", "operator": "in", "value": ["x", "HELLO world"]}, True),
    ({"field": "metadata.count", "operator": "in", "value": ["5", 6]}, False),
    ({"field": "metadata.count", "operator": "nin", "value": [1, 2]}, True),
    ({"field": "metadata.missing", "operator": "nin", "value": [1, 2]}, False),
    ({"field": "object_id", "operator": "in", "value": ["obj_0007"]}, True),
    # contains: substring on strings, membership on arrays
    ({"field": "metadata.title", "operator": "contains", "value": "LO WO"}, True),
    ({"field": "metadata.tags", "operator": "contains", "value": "red"}, True),
    ({"field": "metadata.tags", "operator": "contains", "value": "re"}, False),
    ({"field": "metadata.tags", "operator": "contains", "value": 3}, True),
    ({"field": "metadata.count", "operator": "contains", "value": "5"}, False),
    # starts_with / ends_with / regex / text
    ({"field": "metadata.title", "operator": "starts_with", "value": "hello"}, True),
    ({"field": "metadata.title", "operator": "ends_with", "value": "WORLD"}, True),
    ({"field": "metadata.title", "operator": "ends_with", "value": "a much longer suffix"}, False),
    ({"field": "key", "operator": "ends_with", "value": ".txt"}, True),
    ({"field": "metadata.title", "operator": "regex", "value": "^hel+o\\s"}, True),
    ({"field": "metadata.title", "operator": "regex", "value": "^hel+o\\s", "case_sensitive": True}, False),
    ({"field": "metadata.title", "operator": "text", "value": "world hello"}, True),
    ({"field": "metadata.title", "operator": "text", "value": "worl"}, False),
    # words are runs of ASCII letters, digits and '_': 'É' ends the word '1' on every backend
    ({"field": "metadata.accented", "operator": "text", "value": "1"}, True),
    # exists / is_null
    ({"field": "metadata.nothing", "operator": "exists"}, True),
    ({"field": "metadata.missing", "operator": "exists", "value": False}, True),
    ({"field": "metadata.nothing", "operator": "is_null", "value": True}, True),
    ({"field": "metadata.missing", "operator": "is_null", "value": True}, False),
    ({"field": "metadata.count", "operator": "is_null", "value": False}, True),
    # dot paths, missing paths, objects
    ({"field": "metadata.nested.inner", "value": "DEEP"}, True),
    ({"field": "metadata.title.inner", "value": "x"}, False),
    ({"field": "metadata.tags.0", "value": "Red"}, False),
    ({"field": "metadata", "operator": "exists"}, True),
    ({"field": "unknown_top_level", "operator": "exists"}, False),
    # logic
    ({"OR": [{"field": "metadata.count", "value": 1}, {"field": "metadata.count", "value": 5}]}, True),
    ({"NOT": [{"field": "metadata.count", "value": 1}, {"field": "metadata.count", "value": 5}]}, False),
    ({"metadata.title": "hello world", "metadata.count": 5}, True),
    ({"AND": []}, True),
    ({"OR": []}, False),
]


@pytest.fixture
def stored(catalog):
    with open_session(catalog) as session:
        _, bucket_id, _ = make_scope(session)
        replace_objects(session, [
            object_row(bucket_id, 7, metadata=RECORD_METADATA),
            object_row(bucket_id, 8, metadata={"title": "other"}, status="COMPLETED"),
        ])
    return catalog


def sql_ids(url: str, raw) -> set[str]:
    with open_session(url) as session:
        condition = compile_filter(parse_filter(raw), object_field, dialect=session.get_bind().dialect.name)
        return set(session.execute(select(objects.c.object_id).where(condition)).scalars())


@pytest.mark.both_backends
@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_operator_on_both_backends(stored, raw, expected):
    with open_session(stored) as session:
        row = session.execute(select(objects).where(objects.c.object_id == "obj_0007")).mappings().one()
    assert evaluate(parse_filter(raw), object_record(row)) is expected
    assert ("obj_0007" in sql_ids(stored, raw)) is expected


@pytest.mark.both_backends
def test_missing_and_mistyped_fields_never_raise(stored):
    for raw in ({"field": "metadata.tags", "operator": "gt", "value": 1},
                {"field": "metadata.nested", "operator": "regex", "value": "x"},
                {"field": "size_bytes", "operator": "starts_with", "value": "1"}):
        assert sql_ids(stored, raw) == set()
        assert sql_ids(stored, {"NOT": raw}) == {"obj_0007", "obj_0008"}


@pytest.mark.both_backends
@pytest.mark.timeout(60)
def test_catastrophic_regex_answers_promptly(stored):
    """RE2 is linear-time: with a backtracking engine this pattern would not finish at all."""
    with open_session(stored) as session:
        _, bucket_id, _ = make_scope(session)
        replace_objects(session, [object_row(bucket_id, 1, metadata={"s": "a" * 50_000 + "!"})])
    assert sql_ids(stored, {"field": "metadata.s", "operator": "regex", "value": "(a+)+$"}) == set()
    assert evaluate(parse_filter({"field": "s", "operator": "regex", "value": "(a+)+$"}), {"s": "a" * 50_000 + "!"}) is False


def test_field_paths_are_bound_not_pasted(stored):
    condition = compile_filter(parse_filter({"field": "metadata.title", "value": "x"}), object_field)
    sql = str(condition.compile())
    assert "title" not in sql  # the JSON path travels as a bound parameter
