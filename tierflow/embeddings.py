"""Embedding models, loaded from what is on disk only: nothing is downloaded at run time.

`wordllama-256` (the default) ships its weights and tokenizer inside the `wordllama` wheel; it is
loaded from the package's own folder with downloads turned off (its plain `load()` looks for the
tokenizer elsewhere and would try the network). `sentence-transformers` embeds with a model the
operator put under `TIERFLOW_MODELS_DIR` (`model_path` names a folder there), through the
optional package of that name.
Every model gives unit vectors as float32 rows, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tierflow.errors import BadRequestError
from tierflow.settings import get_settings

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL = "wordllama-256"
MODELS = (DEFAULT_MODEL, "sentence-transformers")


class EmbeddingModel(Protocol):
    """Texts in, one unit float32 row per text out."""

    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class ModelUnavailableError(BadRequestError):
    """The model named cannot be loaded here (missing package, or no model at the path)."""


class _WordLlama:
    def __init__(self) -> None:
        import wordllama
        from wordllama import WordLlama

        self._model: Any = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True,
                                          dim=256)
        self.dimension = 256
        self._lock = threading.Lock()  # its tokenizer is shared; chunks embed from several threads

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        with self._lock:
            vectors = self._model.embed(list(texts), norm=True, return_np=True)
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)


class _SentenceTransformer:
    def __init__(self, path: str) -> None:
        from sentence_transformers import SentenceTransformer

        self._model: Any = SentenceTransformer(path, local_files_only=True)
        self.dimension = int(self._model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        vectors = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)


def check_model(name: str, path: str | None) -> None:
    """ModelUnavailableError unless `name` can be loaded here: a known model, its package
    installed, and for a model on disk, a path that exists."""
    if name not in MODELS:
        raise ModelUnavailableError(f"parameters.model: {name!r} is not one of {', '.join(MODELS)}",
                                    details={"field": "parameters.model"})
    if name == "sentence-transformers":
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ModelUnavailableError(
                "parameters.model: 'sentence-transformers' needs its package: pip install "
                "'tierflow[sentence-transformers]' where tierflow runs", details={"field": "parameters.model"})
        if model_folder(path) is None:
            raise ModelUnavailableError(
                f"parameters.model_path: {path!r} is not a model folder under TIERFLOW_MODELS_DIR (models are "
                "never downloaded)", details={"field": "parameters.model_path"})


def model_folder(path: str | None) -> Path | None:
    """The folder of a model on disk, named relative to `TIERFLOW_MODELS_DIR`, or None when it is
    not a folder there: whoever defines a collection names models, never places on the server."""
    if not path:
        return None
    root = Path(get_settings().models_dir).expanduser().resolve()
    folder = (root / path).resolve()
    return folder if folder.is_relative_to(root) and folder != root and folder.is_dir() else None


@lru_cache(maxsize=8)
def load_model(name: str = DEFAULT_MODEL, path: str | None = None) -> EmbeddingModel:
    """The model, loaded once per process (wordllama-256: 0.15 s)."""
    check_model(name, path)
    if name == DEFAULT_MODEL:
        return _WordLlama()
    folder = model_folder(path)
    assert folder is not None  # checked above
    return _SentenceTransformer(str(folder))


def model_dimension(name: str) -> int | None:
    """The dimension a model gives, when it is known without loading it."""
    return 256 if name == DEFAULT_MODEL else None
