"""Finding extractors: the built-ins plus plugins of the `tierflow.extractors` entry-point group."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from tierflow.errors import BadRequestError, ValidationError
from tierflow.extractors.base import Extractor
from tierflow.extractors.embedding import EmbeddingExtractor
from tierflow.extractors.image import ImageExtractor
from tierflow.extractors.passthrough import PassthroughExtractor
from tierflow.extractors.pdf import PdfExtractor
from tierflow.extractors.text import TextExtractor

_BUILTINS: tuple[type[Extractor], ...] = (PassthroughExtractor, TextExtractor, PdfExtractor, ImageExtractor,
                                          EmbeddingExtractor)


@lru_cache(maxsize=1)
def available_extractors() -> dict[tuple[str, str], type[Extractor]]:
    """Every extractor by (name, version); plugins may not shadow built-ins."""
    found = {(e.name, e.version): e for e in _BUILTINS}
    for point in entry_points(group="tierflow.extractors"):
        extractor = point.load()
        found.setdefault((extractor.name, extractor.version), extractor)
    return found


def get_extractor(name: str, version: str = "v1") -> type[Extractor]:
    """The extractor class, or a BadRequestError listing what exists."""
    extractors = available_extractors()
    if (name, version) not in extractors:
        known = ", ".join(f"{n} ({v})" for n, v in sorted(extractors))
        raise BadRequestError(
            f"feature_extractor '{name}' version '{version}' does not exist; available: {known}",
            details={"feature_extractor_name": name, "version": version},
        )
    return extractors[(name, version)]


def check_parameters(extractor: type[Extractor], parameters: dict[str, Any]) -> Any:
    """The validated parameters model, or a ValidationError located under `parameters`."""
    try:
        return extractor.Parameters.model_validate(parameters)
    except PydanticValidationError as error:
        raise ValidationError([
            {"type": e["type"], "location": ["feature_extractor", "parameters", *e["loc"]], "message": e["msg"]}
            for e in error.errors()
        ]) from error


def collection_extractor(spec: dict[str, Any], collection_name: str) -> tuple[type[Extractor], Any]:
    """The extractor of a collection's `feature_extractor` spec and its parameters as that
    collection runs them (checked, then `for_collection`)."""
    extractor = get_extractor(spec["feature_extractor_name"], spec.get("version", "v1"))
    params = check_parameters(extractor, spec.get("parameters") or {})
    return extractor, extractor.for_collection(params, collection_name)


def vector_writers() -> str:
    """The extractors that write searchable vectors, as users read it (with when, if not always)."""
    return ", ".join(f"{e.name} ({e.vector_condition})" if e.vector_condition else e.name
                     for _, e in sorted(available_extractors().items()) if e.writes_vectors())


def describe_extractors() -> list[dict[str, Any]]:
    """Every extractor as users see it: name, version, what it reads, its parameters and output."""
    return [
        {
            "feature_extractor_name": e.name, "version": e.version, "description": e.description,
            "input_types": list(e.input_types), "inputs": dict(e.inputs),
            "position_fields": list(e.position_fields),
            "parameters_schema": e.Parameters.model_json_schema(),
            "output_schema": {"properties": e.output_schema()},
        }
        for _, e in sorted(available_extractors().items())
    ]
