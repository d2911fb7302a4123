"""A depth limit on the free-form JSON fields tierflow stores (`TIERFLOW_MAX_JSON_DEPTH`).

Metadata, extractor parameters and inline blobs are the caller's own JSON; nested a few hundred
levels deep (a few kilobytes), they pass validation but break every later serialisation of the
model (pydantic stops at its own depth limit), so they are refused where they enter, as a
validation error naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator

from tierflow.settings import get_settings

T = TypeVar("T")


def depth_of(value: Any, limit: int) -> int:
    """How deep objects and lists nest in `value` (a scalar: 0), counted up to `limit + 1` at most
    (iteratively: a deep value must not exhaust the stack that measures it)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def within_depth(value: T) -> T:
    """`value`, if it nests no deeper than `TIERFLOW_MAX_JSON_DEPTH`; ValueError otherwise (which
    pydantic reports at the field's location)."""
    limit = get_settings().max_json_depth
    if depth_of(value, limit) > limit:
        raise ValueError(f"nested deeper than {limit} levels of objects and lists (TIERFLOW_MAX_JSON_DEPTH)")
    return value


def extras_within_depth(extras: dict[str, Any] | None) -> None:
    """Check the extra fields of a model that allows them, each by its name."""
    for name, value in (extras or {}).items():
        try:
            within_depth(value)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None


JsonObject = Annotated[dict[str, Any], AfterValidator(within_depth)]
"""A free-form JSON object tierflow stores, within the depth limit."""

JsonValue = Annotated[Any, AfterValidator(within_depth)]
"""Any JSON value tierflow stores, within the depth limit."""
