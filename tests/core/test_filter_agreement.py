"""Property: for any filter and any records, Python evaluation and SQL pushdown select the same rows."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.utils.catalog_rows import (
    document_row,
    make_scope,
    object_row,
    replace_documents,
    replace_objects,
)
from tierflow.catalog.engine import open_session
from tierflow.catalog.records import document_field, document_record, object_field, object_record
from tierflow.catalog.schema import documents, objects
from tierflow.errors import ValidationError
from tierflow.filters import compile_filter, evaluate, parse_filter

# One small pool for records and filters alike, so that they often meet; with what trips SQL up:
# non-ASCII case folding, lower case longer than upper case, timestamps, statuses, 1 vs 1.0 vs true.
POOL = ["a", "A", "ab", "AB", "b a", "é", "É", "İ", "ΑΣ", "ß", "x_y", "",
        "2024-01-01T00:00:00.000000+00:00", "2023-05-01", "PENDING", "completed",
        0, 1, -1, 2.0, 0.5, True, False, None]
strings = st.sampled_from([p for p in POOL if isinstance(p, str)])
scalars = st.one_of(st.sampled_from(POOL), st.text(alphabet="aAbB éÉ_1", max_size=3))
values = st.one_of(scalars, st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2),
    ),
    max_leaves=4,
))
metadata = st.dictionaries(st.sampled_from(["a", "b"]), values, max_size=2)

OBJECT_FIELDS = ["metadata.a", "metadata.a", "metadata.b", "metadata.a.a", "metadata", "status", "size_bytes", "nope"]
DOCUMENT_FIELDS = ["a", "a", "b", "a.a", "text", "_internal.lineage.root_object_id", "_internal.batch_id", "missing"]


def leaves(value: Any) -> list[Any]:
    """Every scalar inside a value, plus the other-case form of each string."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in leaves(v)]
    return [value, value.swapcase()] if isinstance(value, str) else [value]


def filters(fields: list[str], pool: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Random filters whose values come from `pool` (the records' own values, mostly)."""
    field = st.sampled_from(fields)
    picks = st.one_of(st.sampled_from(pool), st.sampled_from([1, True, "é", "É", "i", "ασ"]))
    texts = st.sampled_from([p for p in pool if isinstance(p, str) and p] or ["a"])
    comparable = st.sampled_from([p for p in pool if isinstance(p, int | float | str) and not isinstance(p, bool)] or [1])
    condition = st.one_of(
        st.fixed_dictionaries({"field": field, "operator": st.sampled_from(["eq", "ne", "contains"]), "value": picks}),
        st.fixed_dictionaries({"field": field, "operator": st.sampled_from(["gt", "gte", "lt", "lte"]), "value": comparable}),
        st.fixed_dictionaries({"field": field, "operator": st.sampled_from(["in", "nin"]), "value": st.lists(picks, max_size=3)}),
        st.fixed_dictionaries({"field": field, "operator": st.sampled_from(["starts_with", "ends_with", "text"]), "value": texts}),
        st.fixed_dictionaries({"field": field, "operator": st.just("regex"),
                               "value": st.sampled_from(["^a", "b$", "a+b", "[0-9]", "É", "^$"])}),
        st.fixed_dictionaries({"field": field, "operator": st.sampled_from(["exists", "is_null"]), "value": st.booleans()}),
        st.fixed_dictionaries({"field": field, "value": picks, "case_sensitive": st.booleans()}),
    )
    return st.recursive(
        condition,
        lambda inner: st.one_of(
            st.fixed_dictionaries({"AND": st.lists(inner, max_size=3)}),
            st.fixed_dictionaries({"OR": st.lists(inner, max_size=3)}),
            st.fixed_dictionaries({"NOT": st.lists(inner, min_size=1, max_size=2)}),
            st.fixed_dictionaries({"OR": st.lists(inner, max_size=2), "case_sensitive": st.booleans()}),
        ),
        max_leaves=4,
    )


def parsed(raw: dict[str, Any]) -> Any:
    try:
        return parse_filter(raw)
    except ValidationError:
        assume(False)


@pytest.fixture
def scope(catalog):
    with open_session(catalog) as session:
        return catalog, make_scope(session)


# 120 examples per backend in the suite (the suite has a time budget); TIERFLOW_FILTER_EXAMPLES=5000
# for a longer hunt.
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("TIERFLOW_FILTER_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def selections(url: str, table: Any, id_column: str, resolve: Any, record: Any, node: Any) -> tuple[set, set]:
    """(ids SQL selects, ids the Python evaluator selects) over every row of `table`."""
    with open_session(url) as session:
        stored = session.execute(select(table)).mappings().all()
        condition = compile_filter(node, resolve, dialect=session.get_bind().dialect.name)
        in_sql = set(session.execute(select(table.c[id_column]).where(condition)).scalars())
    return in_sql, {r[id_column] for r in stored if evaluate(node, record(r))}


@pytest.mark.both_backends
@HYPOTHESIS
@given(
    data=st.data(),
    records=st.lists(
        st.tuples(metadata, st.sampled_from(["PENDING", "COMPLETED", "FAILED"]),
                  st.one_of(st.none(), st.integers(0, 9)), st.one_of(st.none(), strings)),
        min_size=1, max_size=6,
    ),
)
def test_objects_python_and_sql_agree(scope, data, records):
    url, (_, bucket_id, _) = scope
    pool = POOL + 4 * [leaf for record in records for leaf in leaves(list(record))]
    node = parsed(data.draw(filters(OBJECT_FIELDS, pool), label="filter"))
    with open_session(url) as session:
        replace_objects(session, [object_row(bucket_id, i, metadata=m, status=s, size_bytes=n, content_type=c)
                                  for i, (m, s, n, c) in enumerate(records)])
    in_sql, in_python = selections(url, objects, "object_id", object_field, object_record, node)
    assert in_sql == in_python


@pytest.mark.both_backends
@HYPOTHESIS
@given(data=st.data(), records=st.lists(st.tuples(metadata, strings), min_size=1, max_size=6))
def test_documents_python_and_sql_agree(scope, data, records):
    url, (_, _, collection_id) = scope
    pool = POOL + 4 * [leaf for record in records for leaf in leaves(list(record))]
    node = parsed(data.draw(filters(DOCUMENT_FIELDS, pool), label="filter"))
    with open_session(url) as session:
        replace_documents(session, [
            document_row(collection_id, i, {**fields, "text": text}, {"root_object_id": text, "path": "b/c"})
            for i, (fields, text) in enumerate(records)
        ])
    in_sql, in_python = selections(url, documents, "document_id", document_field, document_record, node)
    assert in_sql == in_python
