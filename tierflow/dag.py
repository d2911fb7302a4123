"""The collection DAG: edges from sources to collections, cycle checks, tiers by longest path.

A collection sourced from collections sits one tier below the deepest of its sources, so every
tier only reads documents that earlier tiers have finished writing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tierflow.errors import BadRequestError


def upstream_ids(collection: Mapping[str, Any]) -> list[str]:
    """The collection ids a collection reads from (empty for bucket-sourced ones)."""
    source = collection["source"]
    return list(source.get("collection_ids") or []) if source["type"] == "collection" else []


def _children(collections: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {}
    for c in collections:
        for parent in upstream_ids(c):
            children.setdefault(parent, []).append(c["collection_id"])
    return children


def find_cycle(collections: Iterable[Mapping[str, Any]]) -> list[str] | None:
    """A list of collection ids forming a cycle, or None when the graph is a DAG."""
    children = _children(collections)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in children.get(node, []):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in list(children):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def plan_tiers(collections: Iterable[Mapping[str, Any]], root_id: str) -> list[list[str]]:
    """Tiers of the DAG below `root_id` (tier 0 is the root), placed by longest path.

    Only enabled collections take part below the root; a disabled one stops its branch.
    """
    items = [c for c in collections if c.get("enabled", True) or c["collection_id"] == root_id]
    if cycle := find_cycle(items):
        raise BadRequestError(f"collections form a cycle: {' -> '.join(cycle)}")
    children = _children(items)
    reachable: set[str] = set()
    stack = [root_id]
    while stack:
        node = stack.pop()
        if node not in reachable:
            reachable.add(node)
            stack.extend(children.get(node, []))
    depth = {root_id: 0}
    order = _topological(reachable, children)
    for node in order:
        for child in children.get(node, []):
            if child in reachable:
                depth[child] = max(depth.get(child, 0), depth[node] + 1)
    tiers: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for node in order:
        tiers[depth[node]].append(node)
    return tiers


def _topological(nodes: set[str], children: Mapping[str, list[str]]) -> list[str]:
    indegree = {n: 0 for n in nodes}
    for n in nodes:
        for child in children.get(n, []):
            if child in nodes:
                indegree[child] += 1
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order: list[str] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for child in sorted(children.get(node, [])):
            if child in nodes:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
    return order


def collection_tier(collections: Iterable[Mapping[str, Any]], collection_id: str) -> int:
    """The global tier of a collection: 0 for bucket-sourced, else 1 + deepest source."""
    by_id = {c["collection_id"]: c for c in collections}
    memo: dict[str, int] = {}

    def tier(cid: str) -> int:
        if cid not in memo:
            parents = [p for p in upstream_ids(by_id[cid]) if p in by_id] if cid in by_id else []
            memo[cid] = 1 + max(tier(p) for p in parents) if parents else 0
        return memo[cid]

    return tier(collection_id)
