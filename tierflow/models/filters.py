"""Filters inside pydantic models: checked by the filter parser, reported as pydantic errors."""

from __future__ import annotations

from typing import Any

from tierflow.errors import ValidationError
from tierflow.filters import parse_filter


def checked_filter(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return `value` if it is a valid LogicalOperator; else ValueError with every problem.

    A ValueError (not tierflow's own error) lets pydantic attach the field's location, so Prefect's
    parameter validation and the API report `source_filters: AND[1].operator: …`.
    """
    try:
        parse_filter(value)
    except ValidationError as error:
        raise ValueError(error.message) from None
    return value
