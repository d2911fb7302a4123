"""Extractors: functions from one input to documents, built-in or plugged in."""

from tierflow.extractors.base import CONTENT, ExtractionError, Extractor, ExtractorInput
from tierflow.extractors.registry import (
    available_extractors,
    check_parameters,
    collection_extractor,
    describe_extractors,
    get_extractor,
    vector_writers,
)

__all__ = [
    "CONTENT",
    "ExtractionError",
    "Extractor",
    "ExtractorInput",
    "available_extractors",
    "check_parameters",
    "collection_extractor",
    "describe_extractors",
    "get_extractor",
    "vector_writers",
]
