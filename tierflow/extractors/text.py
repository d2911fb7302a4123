"""`text_extractor`: split text into chunks, one document per chunk.

The text comes from the object's file (UTF-8) or, for an upstream document, its `text` field;
`input_mappings: {text: <path>}` reads it from elsewhere. `chunk_size` and `chunk_overlap`
count units of `split_by` (characters, words, sentences or paragraphs). Each chunk also gets a
hashing embedding of `embedding_dimension` floats (0 turns it off), searchable like
`embedding_extractor`'s: a query text is hashed the same way (`embed_query`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierflow.errors import ValidationError
from tierflow.extractors.base import CONTENT, ExtractionError, Extractor, ExtractorInput
from tierflow.extractors.hashing import has_features, hashing_embedding

EMBEDDING_FIELD = "text_extractor_v1_embedding"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH = re.compile(r"\n\s*\n")


class TextParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split_by: Literal["characters", "words", "sentences", "paragraphs", "none"] = "words"
    chunk_size: int = Field(default=200, ge=1, le=100_000)
    chunk_overlap: int = Field(default=0, ge=0)
    embedding_dimension: int = Field(
        default=64, ge=0, le=4096,
        description="Size of the hashing embedding written as text_extractor_v1_embedding, searchable (0: none).",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> TextParameters:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


class TextChunk(BaseModel):
    text: str
    chunk_index: int = Field(ge=0)
    chunk_count: int = Field(ge=1)
    text_extractor_v1_embedding: list[float] | None = Field(
        default=None, description="A dense vector by feature hashing (see tierflow.extractors.hashing).")


def split_text(text: str, params: TextParameters) -> list[str]:
    """Chunks of `text` by the parameters (empty text gives no chunks)."""
    if params.split_by == "none":
        return [text] if text.strip() else []
    if params.split_by == "characters":
        units, joiner = list(text), ""
    elif params.split_by == "words":
        units, joiner = text.split(), " "
    elif params.split_by == "sentences":
        units, joiner = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()], " "
    else:
        units, joiner = [p.strip() for p in _PARAGRAPH.split(text) if p.strip()], "\n\n"
    step = params.chunk_size - params.chunk_overlap
    chunks = []
    for start in range(0, len(units), step):
        chunks.append(joiner.join(units[start:start + params.chunk_size]))
        if start + params.chunk_size >= len(units):
            break
    return [c for c in chunks if c.strip()]


def as_text(value: Any) -> str:
    """An input given as UTF-8 bytes or a string, as a string; ExtractionError otherwise."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ExtractionError(
                f"input 'text' is not UTF-8 text (byte 0x{value[error.start]:02x} at offset {error.start})"
            ) from error
    if isinstance(value, str):
        return value
    raise ExtractionError(f"input 'text' must be text, got {type(value).__name__}")


class TextExtractor(Extractor):
    name = "text_extractor"
    description = "Split text into chunks (by characters, words, sentences or paragraphs)."
    Parameters = TextParameters
    Output = TextChunk
    input_types = ("text", "document")
    inputs = {"text": CONTENT}
    position_fields = ("chunk_index",)
    vector_condition = "embedding_dimension above 0"

    @classmethod
    def vector_field(cls, params: TextParameters) -> str | None:
        return EMBEDDING_FIELD if params.embedding_dimension else None

    @classmethod
    def embed_query(cls, params: TextParameters, text: str) -> list[float]:
        if not has_features(text):  # its vector would be all zeros: every chunk would score 0
            raise ValidationError([{"type": "value_error", "location": ["body", "query_text"],
                                    "message": "query_text has no words to compare with the chunks"}])
        return hashing_embedding(text, params.embedding_dimension)

    @classmethod
    def output_schema_for(cls, params: TextParameters) -> dict[str, Any]:
        schema = cls.output_schema()
        if not params.embedding_dimension:
            schema.pop(EMBEDDING_FIELD, None)
            return schema
        return {**schema, EMBEDDING_FIELD: {"type": "array", "items": {"type": "number"},
                                            "dimension": params.embedding_dimension,
                                            "description": "Unit vector of the chunk's words by feature hashing; "
                                                           "searchable."}}

    def extract(self, item: ExtractorInput, params: TextParameters) -> list[dict[str, Any]]:
        chunks = split_text(as_text(item.values.get("text")), params)
        return [{"text": c, "chunk_index": i, "chunk_count": len(chunks),
                 **({EMBEDDING_FIELD: hashing_embedding(c, params.embedding_dimension)}
                    if params.embedding_dimension else {})}
                for i, c in enumerate(chunks)]
