"""A third-party extractor: the input's text in upper case, one document per input."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tierflow.extractors import CONTENT, Extractor, ExtractorInput


class Shout(BaseModel):
    shout: str


class UpperExtractor(Extractor):
    name = "upper_extractor"
    description = "The text in upper case."
    Output = Shout
    input_types = ("text",)
    inputs = {"text": CONTENT}

    def extract(self, item: ExtractorInput, params: Any) -> list[dict[str, Any]]:
        value = item.values["text"]
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        return [{"shout": text.upper()}]
