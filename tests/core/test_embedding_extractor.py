"""`embedding_extractor`: offline, deterministic, unit vectors, the same in a batch as alone."""

from __future__ import annotations

import numpy as np
import pytest

from tierflow.extractors import ExtractionError, ExtractorInput
from tierflow.extractors.embedding import EmbeddingExtractor, EmbeddingParameters


def params() -> EmbeddingParameters:
    return EmbeddingExtractor.for_collection(EmbeddingParameters(), "notes")


def item(text: str | bytes) -> ExtractorInput:
    return ExtractorInput("object", {}, {"text": text})


def test_vectors_are_deterministic_unit_and_the_same_batched_or_alone():
    texts = ["tides follow the moon", "bread rises with yeast", "tides follow the moon"]
    batched = EmbeddingExtractor()
    batched.prepare([item(t) for t in texts], params())
    together = [batched.extract(item(t), params())[0]["notes_embedding"] for t in texts]
    alone = [EmbeddingExtractor().extract(item(t.encode()), params())[0]["notes_embedding"] for t in texts]
    assert np.allclose(together, alone, atol=1e-6) and together[0] == together[2]
    assert len(together[0]) == 256 and abs(float(np.linalg.norm(together[0])) - 1) < 1e-5
    assert float(np.dot(together[0], together[1])) < 0.9


def test_inputs_without_text_fail_alone():
    extractor = EmbeddingExtractor()
    extractor.prepare([item(b"\xff\xfe"), item("fine")], params())  # the bad one does not sink the batch
    with pytest.raises(ExtractionError, match="not UTF-8"):
        extractor.extract(item(b"\xff\xfe"), params())
    with pytest.raises(ExtractionError, match="nothing to embed"):
        extractor.extract(item("   "), params())
    assert extractor.extract(item("fine"), params())[0]["notes_embedding"]


def test_models_on_disk_are_named_inside_the_models_folder_only(tmp_path, monkeypatch):
    from tierflow.embeddings import model_folder
    from tierflow.settings import get_settings

    (tmp_path / "models" / "mini").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    monkeypatch.setenv("TIERFLOW_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    try:
        assert model_folder("mini") == (tmp_path / "models" / "mini").resolve()
        for outside in ("../secret", str(tmp_path / "secret"), "/etc", ".", "", "missing", None):
            assert model_folder(outside) is None
    finally:
        get_settings.cache_clear()
