"""`embedding_extractor`: a dense vector of an input's text, for search.

The vector goes to `<collection-name>_embedding` (or `output_field`), and the catalog keeps it
searchable beside the document (`tierflow.search`). A chunk's texts are embedded in one call
(`prepare`): the model costs far less per text in a batch than one at a time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierflow.embeddings import DEFAULT_MODEL, check_model, load_model, model_dimension
from tierflow.extractors.base import CONTENT, ExtractionError, Extractor, ExtractorInput
from tierflow.extractors.text import as_text

_FIELD = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class EmbeddingParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: str = Field(default=DEFAULT_MODEL, description="wordllama-256 (shipped, 256 dimensions) or "
                       "sentence-transformers (a model on disk at model_path; needs its package).")
    model_path: str | None = Field(default=None, max_length=255,
                                   description="Folder of a sentence-transformers model, under TIERFLOW_MODELS_DIR.")
    output_field: str | None = Field(default=None, pattern=_FIELD,
                                     description="Where the vector goes; default <collection-name>_embedding.")

    @model_validator(mode="after")
    def _loadable(self) -> EmbeddingParameters:
        check_model(self.model, self.model_path)
        return self


class EmbeddingExtractor(Extractor):
    name = "embedding_extractor"
    description = "A dense vector of the input's text (wordllama-256 by default, offline), searchable."
    Parameters = EmbeddingParameters
    input_types = ("text", "document")
    inputs = {"text": CONTENT}

    def __init__(self) -> None:
        self._ready: dict[str, list[float]] = {}

    @classmethod
    def for_collection(cls, params: EmbeddingParameters, collection_name: str) -> EmbeddingParameters:
        return params.model_copy(update={"output_field": params.output_field or f"{collection_name}_embedding"})

    @classmethod
    def vector_field(cls, params: EmbeddingParameters) -> str | None:
        return params.output_field

    @classmethod
    def embed_query(cls, params: EmbeddingParameters, text: str) -> list[float]:
        vector: list[float] = load_model(params.model, params.model_path).embed([text])[0].tolist()
        return vector

    @classmethod
    def output_schema_for(cls, params: EmbeddingParameters) -> dict[str, Any]:
        assert params.output_field is not None  # for_collection has named it
        return {params.output_field: {"type": "array", "items": {"type": "number"},
                                      "dimension": model_dimension(params.model), "model": params.model,
                                      "description": "Unit vector of the input's text; searchable."}}

    @classmethod
    def output_schema(cls) -> dict[str, Any]:
        return {"<collection-name>_embedding": {"type": "array", "items": {"type": "number"},
                                                "dimension": model_dimension(DEFAULT_MODEL)}}

    @classmethod
    def checked_outputs(cls, outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return outputs  # made here, by the model: lists of floats of the model's dimension

    def prepare(self, items: list[ExtractorInput], params: EmbeddingParameters) -> None:
        texts = []
        for item in items:
            try:
                texts.append(as_text(item.values.get("text")))
            except ExtractionError:
                continue  # that input fails in `extract`, with its own message
        unique = list(dict.fromkeys(texts))
        if unique:
            vectors = load_model(params.model, params.model_path).embed(unique)
            self._ready.update(zip(unique, vectors.tolist(), strict=True))

    def extract(self, item: ExtractorInput, params: EmbeddingParameters) -> list[dict[str, Any]]:
        text = as_text(item.values.get("text"))
        if not text.strip():
            raise ExtractionError("input 'text' is empty: there is nothing to embed")
        vector = self._ready.get(text)
        if vector is None:
            vector = load_model(params.model, params.model_path).embed([text])[0].tolist()
        assert params.output_field is not None
        return [{params.output_field: vector}]
