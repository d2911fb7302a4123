"""`passthrough_extractor`: one document per input, carrying the input's fields forward."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from tierflow.extractors.base import Extractor, ExtractorInput

_BOOKKEEPING = {"document_id", "collection_id", "_internal", "blobs", "status"}


class PassthroughOutput(BaseModel):
    model_config = ConfigDict(extra="allow")


class PassthroughExtractor(Extractor):
    name = "passthrough_extractor"
    description = "One document per input with the input's fields (an object's key and metadata)."
    Output = PassthroughOutput

    def extract(self, item: ExtractorInput, params: Any) -> list[dict[str, Any]]:
        record = item.record
        if item.kind == "object":
            return [{
                "key": record.get("key"),
                "content_type": record.get("content_type"),
                "size_bytes": record.get("size_bytes"),
                "metadata": record.get("metadata") or {},
            }]
        return [{k: v for k, v in record.items() if k not in _BOOKKEEPING}]
