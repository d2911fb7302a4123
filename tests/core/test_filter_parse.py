"""The filter language's validation: places in messages, shorthand, limits."""

from __future__ import annotations

import pytest

from tierflow.errors import ValidationError
from tierflow.filters import Condition, ast, parse_filter


def errors_of(raw) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_filter(raw)
    return [f"{'.'.join(map(str, e['location']))}: {e['message']}" for e in caught.value.errors]


def test_unknown_operator_is_named_with_its_place():
    with pytest.raises(ValidationError) as caught:
        parse_filter({"AND": [{"field": "a", "value": 1}, {"field": "b", "operator": "equals", "value": 2}]})
    assert str(caught.value).startswith("AND[1].operator: 'equals' is not one of eq, ne,")
    assert caught.value.errors[0]["location"] == ["AND", 1, "operator"]


def test_every_problem_is_reported_at_once():
    problems = errors_of({"AND": [{"field": "a b", "value": 1}, {"field": "x", "operator": "in", "value": 3}]})
    assert len(problems) == 2
    assert "AND.0.field" in problems[0]
    assert "needs a list" in problems[1]


def test_operator_defaults_to_eq_and_shorthand_means_eq():
    assert parse_filter({"field": "a", "value": 1}) == Condition("a", "eq", 1)
    node = parse_filter({"metadata.title": "x", "status": "PENDING"})
    assert node == ast.All((Condition("metadata.title", "eq", "x"), Condition("status", "eq", "PENDING")))


def test_not_accepts_a_single_item():
    assert parse_filter({"NOT": {"field": "a", "value": 1}}) == ast.NoneOf((Condition("a", "eq", 1),))


def test_case_sensitive_is_inherited_by_nested_conditions():
    node = parse_filter({"case_sensitive": True, "OR": [{"AND": [{"field": "a", "value": "X"}]}]})
    assert node == ast.AnyOf((ast.All((Condition("a", "eq", "X", True),)),))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"field": "a", "operator": "in", "value": "x"}, "needs a list"),
        ({"field": "a", "operator": "gt", "value": True}, "compares numbers or timestamps"),
        ({"field": "a", "operator": "exists", "value": "yes"}, "takes true or false"),
        ({"field": "a", "operator": "regex", "value": "(unclosed"}, "not a valid regular expression"),
        ({"field": "a", "operator": "text", "value": "!!"}, "at least one word"),
        ({"field": "a", "operator": "starts_with", "value": ""}, "non-empty string"),
        ({"field": "a", "operator": "eq"}, "needs a value"),
        ({"field": "a", "value": {"nested": 1}}, "string, number, boolean or null"),
        ({"field": "a", "value": float("nan")}, "finite"),
        ({"field": "a'); DROP TABLE objects; --", "value": 1}, "is not a field path"),
        ({"field": "a", "value": 1, "extra": 2}, "unknown key"),
        ({"AND": {"field": "a", "value": 1}}, "expected a list"),
        ({"AND": ["x"]}, "expected an object"),
        ({"case_sensitive": "yes"}, "expected true or false"),
    ],
)
def test_bad_filters_are_refused_with_a_reason(raw, expected):
    assert any(expected in p for p in errors_of(raw)), errors_of(raw)


def test_depth_limit():
    raw: dict = {"field": "a", "value": 1}
    for _ in range(ast.MAX_DEPTH + 1):
        raw = {"AND": [raw]}
    assert any("deeper than" in p for p in errors_of(raw))


def test_size_limits():
    many = {"AND": [{"field": "a", "value": i} for i in range(ast.MAX_CONDITIONS + 1)]}
    assert any("at most" in p for p in errors_of(many))
    long_list = {"field": "a", "operator": "in", "value": list(range(ast.MAX_LIST_VALUES + 1))}
    assert any("at most" in p for p in errors_of(long_list))
    assert parse_filter({"AND": [{"field": "a", "value": i} for i in range(ast.MAX_CONDITIONS)]})


def test_timestamps_with_a_zone_are_normalized_for_comparison():
    node = parse_filter({"field": "created_at", "operator": "gte", "value": "2024-03-01T10:00:00+02:00"})
    assert node.value == "2024-03-01T08:00:00.000000+00:00"


def test_empty_means_everything():
    assert parse_filter(None) == ast.MATCH_ALL
    assert parse_filter({}) == ast.All(())
