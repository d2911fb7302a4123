"""Estimating documents per collection: which filters can be decided before extraction, and
figures that are upper bounds saying so."""

from __future__ import annotations

import json
from typing import Any

from tierflow.estimates import Estimator, Partial, holds
from tierflow.filters import parse_filter


def col(cid: str, *sources: str, extractor: str = "passthrough_extractor", where: dict[str, Any] | None = None,
        passthrough: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    source: dict[str, Any] = ({"type": "collection", "collection_ids": list(sources)} if sources
                              else {"type": "bucket", "bucket_ids": ["b"]})
    if where is not None:
        source["source_filters"] = {"filters": where}
    return {"collection_id": cid, "collection_name": cid, "source": source,
            "feature_extractor": {"feature_extractor_name": extractor, "field_passthrough": passthrough or []}}


def obj(key: str, **metadata: Any) -> Partial:
    return Partial({"object_id": key, "key": key, "content_type": "text/plain", "size_bytes": 3,
                    "metadata": metadata, "status": "PENDING"})


def _estimate(tiers: list[list[str]], collections: list[dict[str, Any]], *objects: Partial,
              ratio: float = 2.0) -> dict[str, dict[str, Any]]:
    estimator = Estimator(tiers=tiers, collections=collections, ratios={c: ratio for t in tiers for c in t},
                          root_kind="object")
    for record in objects:
        estimator.add(record)
    return estimator.result()


def test_a_filter_on_an_unknown_field_is_undecided_unless_the_known_ones_decide_it():
    record = Partial({"category": "science"}, frozenset({"text"}))
    cases = {
        '{"AND": [{"field": "category", "operator": "eq", "value": "science"}]}': True,
        '{"AND": [{"field": "text", "operator": "contains", "value": "x"}]}': None,
        '{"OR": [{"field": "category", "operator": "eq", "value": "science"},'
        ' {"field": "text", "operator": "contains", "value": "x"}]}': True,
        '{"AND": [{"field": "category", "operator": "eq", "value": "cooking"},'
        ' {"field": "text", "operator": "contains", "value": "x"}]}': False,
        '{"NOT": [{"field": "text", "operator": "contains", "value": "x"}]}': None,
        '{"AND": [{"field": "nowhere", "operator": "exists", "value": true}]}': False,
    }
    for text, expected in cases.items():
        unknown: set[str] = set()
        assert holds(parse_filter(json.loads(text)), record, unknown) is expected, text
        assert expected is not None or "text" in unknown, text


def test_metadata_carried_down_decides_a_filter_two_tiers_below():
    science = {"AND": [{"field": "topic", "operator": "eq", "value": "science"}]}
    collections = [
        col("root", extractor="text_extractor", passthrough=[{"source_path": "metadata.topic", "target_path": "topic"}]),
        col("mid", "root", extractor="text_extractor", passthrough=[{"source_path": "topic"}]),
        col("low", "mid", where=science),
    ]
    figures = _estimate([["root"], ["mid"], ["low"]], collections, obj("a", topic="science"), obj("b", topic="art"))
    assert [figures[c]["expected_documents"] for c in ("root", "mid", "low")] == [4, 8, 8]  # low: a's only
    assert all(f["expected_documents_exact"] for f in figures.values())


def test_a_field_the_extractor_overwrites_is_not_known_and_the_bound_is_inherited():
    # text_extractor writes `text`, so passing an object's `text`-named field through tells nothing.
    short = {"AND": [{"field": "text", "operator": "eq", "value": "x"}]}
    collections = [col("root", extractor="text_extractor"), col("mid", "root", where=short), col("low", "mid")]
    figures = _estimate([["root"], ["mid"], ["low"]], collections, obj("a"))
    assert (figures["mid"]["expected_documents"], figures["mid"]["expected_documents_exact"]) == (4, False)
    assert "text" in figures["mid"]["reason"]
    assert not figures["low"]["expected_documents_exact"] and "mid" in figures["low"]["reason"]


def test_the_passthrough_extractor_keeps_its_input_known():
    tagged = {"AND": [{"field": "metadata.tag", "operator": "eq", "value": "keep"}]}
    collections = [col("root"), col("low", "root", where=tagged)]
    figures = _estimate([["root"], ["low"]], collections, obj("a", tag="keep"), obj("b", tag="drop"), ratio=1.0)
    assert (figures["low"]["expected_documents"], figures["low"]["expected_documents_exact"]) == (1, True)


def test_an_input_the_known_fields_decide_leaves_the_figure_exact():
    either = {"OR": [{"field": "metadata.tag", "operator": "eq", "value": "keep"},
                     {"field": "text", "operator": "contains", "value": "x"}]}
    collections = [col("root"), col("low", "root", where=either)]
    figures = _estimate([["root"], ["low"]], collections, obj("a", tag="keep"), ratio=1.0)
    assert figures["low"]["expected_documents_exact"] and figures["low"]["reason"] is None


def test_a_required_field_known_missing_makes_no_documents_below():
    collections = [col("root", passthrough=[{"source_path": "metadata.tag", "required": True}]), col("low", "root")]
    figures = _estimate([["root"], ["low"]], collections, obj("a"), obj("b", tag="t"), ratio=1.0)
    assert figures["low"]["expected_inputs"] == 1


def test_no_history_above_leaves_the_figures_below_unknown():
    collections = [col("root"), col("low", "root")]
    estimator = Estimator(tiers=[["root"], ["low"]], collections=collections, ratios={"root": None, "low": 1.0},
                          root_kind="object")
    estimator.add(obj("a"))
    figures = estimator.result()
    assert figures["root"]["expected_inputs"] == 1 and figures["root"]["expected_documents"] is None
    assert figures["low"]["expected_inputs"] is None and figures["low"]["expected_documents"] is None
