"""The extractor interface: one input (an object or an upstream document) → 0..N documents.

An extractor declares its parameters and output as pydantic models, the inputs it reads (with a
default source each, which `input_mappings` can redirect), and its position fields: what tells
two outputs of one input apart (e.g. `chunk_index`). Position fields feed deterministic
document ids, so re-processing a unique-key object lands on the same documents.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

from tierflow.errors import BadRequestError, TerminalError

InputKind = Literal["object", "document"]
CONTENT = "$content"
"""Default source meaning "the bytes of the object's file" (or, for a document, its `text`)."""


class ExtractionError(TerminalError):
    """One input could not be turned into documents; the rest of the chunk goes on."""

    def __init__(self, message: str, *, category: str = "validation") -> None:
        super().__init__(message, details={"category": category})
        self.category = category


class NoParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class ExtractorInput:
    """What an extractor sees of one input."""

    kind: InputKind
    record: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)
    """The extractor's named inputs, already resolved (mapped paths, or file bytes)."""


class Extractor(ABC):
    """Base of every extractor; subclasses set the class attributes and implement `extract`."""

    name: ClassVar[str]
    version: ClassVar[str] = "v1"
    description: ClassVar[str] = ""
    Parameters: ClassVar[type[BaseModel]] = NoParameters
    Output: ClassVar[type[BaseModel]]
    input_types: ClassVar[tuple[str, ...]] = ("any",)
    inputs: ClassVar[dict[str, str]] = {}
    """Named inputs and their default source path (`$content`: the object's file)."""
    position_fields: ClassVar[tuple[str, ...]] = ()
    vector_condition: ClassVar[str] = ""
    """When `vector_field` is not None, for users ("" when an overriding `vector_field` always names one)."""

    @abstractmethod
    def extract(self, item: ExtractorInput, params: Any) -> list[dict[str, Any]]:
        """The documents made from `item` (fields only; ids and lineage are added later)."""

    @classmethod
    def checked_outputs(cls, outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`outputs` validated against `Output` and dumped as JSON-ready dicts, all at once: a
        pydantic call per output cost more than the checking itself for outputs as small as a
        text chunk. Raises pydantic's `ValidationError` (which names the output's index)."""
        adapter = _list_adapter(cls.Output)
        return list(adapter.dump_python(adapter.validate_python(outputs), mode="json"))

    @classmethod
    def output_schema(cls) -> dict[str, Any]:
        """JSON schema properties of what this extractor writes."""
        return dict(cls.Output.model_json_schema().get("properties", {}))

    @classmethod
    def for_collection(cls, params: Any, collection_name: str) -> Any:
        """The parameters as one collection runs them (e.g. a field named after the collection)."""
        return params

    @classmethod
    def output_schema_for(cls, params: Any) -> dict[str, Any]:
        """What this extractor writes with these parameters (`output_schema` unless it depends on them)."""
        return cls.output_schema()

    @classmethod
    def vector_field(cls, params: Any) -> str | None:
        """The output field holding a searchable vector, if the extractor writes one.

        The one rule of search: a collection is searchable exactly when its extractor names a
        field here. That field is written to the catalog's vectors in the chunk's transaction
        (not to the documents' JSON), put back into documents when users read them, and not
        seen by downstream collections; `embed_query` must embed a query text the same way."""
        return None

    @classmethod
    def writes_vectors(cls) -> bool:
        """True when some parameters make this extractor name a `vector_field`."""
        return any("vector_field" in vars(k) for k in cls.__mro__[:cls.__mro__.index(Extractor)])

    @classmethod
    def embed_query(cls, params: Any, text: str) -> list[float]:
        """A search's `query_text` as a vector comparable with this extractor's (`vector_field`)."""
        raise BadRequestError(f"{cls.name} cannot embed a query text: send query_vector",
                              details={"field": "query_text"})

    def prepare(self, items: list[ExtractorInput], params: Any) -> None:
        """Called with a chunk's inputs before `extract` is called on each: an extractor that is
        cheaper in batches (a model) does the batch here. Must not raise for one bad input."""
        return None  # most extractors gain nothing from seeing the chunk first

    @classmethod
    def needs_content(cls, input_mappings: dict[str, str]) -> bool:
        """True when some input reads the object's file bytes (so a chunk must GET them)."""
        return any(input_mappings.get(name, source) == CONTENT for name, source in cls.inputs.items())


@cache
def _list_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    """A validator of a list of `model`, built once per output model."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]
