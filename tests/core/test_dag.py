"""Tier planning: longest path, diamonds, disabled branches, cycles."""

from __future__ import annotations

import pytest

from tierflow.dag import collection_tier, find_cycle, plan_tiers
from tierflow.errors import BadRequestError


def col(cid: str, *sources: str, enabled: bool = True) -> dict:
    source = {"type": "collection", "collection_ids": list(sources)} if sources else {"type": "bucket", "bucket_ids": ["b"]}
    return {"collection_id": cid, "source": source, "enabled": enabled}


def test_diamond_places_the_join_below_both_branches():
    graph = [col("a"), col("b", "a"), col("c", "a"), col("d", "b", "c")]
    assert plan_tiers(graph, "a") == [["a"], ["b", "c"], ["d"]]


def test_longest_path_wins_over_a_shortcut():
    graph = [col("a"), col("b", "a"), col("c", "b"), col("d", "a", "c")]
    assert plan_tiers(graph, "a") == [["a"], ["b"], ["c"], ["d"]]


def test_only_the_dag_below_the_root_is_planned():
    graph = [col("a"), col("b", "a"), col("x"), col("y", "x"), col("z", "b", "y")]
    assert plan_tiers(graph, "b") == [["b"], ["z"]]


def test_disabled_collections_stop_their_branch():
    graph = [col("a"), col("b", "a", enabled=False), col("c", "b"), col("d", "a")]
    assert plan_tiers(graph, "a") == [["a"], ["d"]]


def test_cycles_are_found_and_refused():
    graph = [col("a"), col("b", "a", "c"), col("c", "b")]
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and {"b", "c"} <= set(cycle)
    with pytest.raises(BadRequestError, match="cycle"):
        plan_tiers(graph, "a")


def test_global_tier():
    graph = [col("a"), col("b", "a"), col("c", "a", "b")]
    assert [collection_tier(graph, c) for c in "abc"] == [0, 1, 2]
