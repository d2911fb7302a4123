"""`text_extractor` splitting and decoding."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tierflow.extractors import ExtractionError, ExtractorInput
from tierflow.extractors.text import TextExtractor, TextParameters, split_text


@pytest.mark.parametrize(
    ("split_by", "size", "overlap", "text", "expected"),
    [
        ("words", 3, 0, "a b c d e f g", ["a b c", "d e f", "g"]),
        ("words", 3, 1, "a b c d e", ["a b c", "c d e"]),
        ("characters", 4, 0, "abcdefghij", ["abcd", "efgh", "ij"]),
        ("sentences", 1, 0, "One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("sentences", 2, 0, "One. Two. Three.", ["One. Two.", "Three."]),
        ("paragraphs", 1, 0, "p1 line\nstill p1\n\n  \np2", ["p1 line\nstill p1", "p2"]),
        ("none", 5, 0, " whole text ", [" whole text "]),
        ("words", 3, 0, "   ", []),
    ],
)
def test_split(split_by, size, overlap, text, expected):
    params = TextParameters(split_by=split_by, chunk_size=size, chunk_overlap=overlap)
    assert split_text(text, params) == expected


def test_overlap_must_be_smaller_than_size():
    with pytest.raises(ValidationError, match="chunk_overlap must be smaller"):
        TextParameters(chunk_size=2, chunk_overlap=2)


def test_documents_carry_their_chunk_index():
    params = TextParameters(chunk_size=2, embedding_dimension=0)
    out = TextExtractor().extract(ExtractorInput("object", {}, {"text": b"a b c d"}), params)
    assert out == [{"text": "a b", "chunk_index": 0, "chunk_count": 2}, {"text": "c d", "chunk_index": 1, "chunk_count": 2}]


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_hashing_embedding_is_deterministic_normalised_and_similar_for_similar_texts():
    params = TextParameters(split_by="none", embedding_dimension=128)

    def embed(text: str) -> list[float]:
        out = TextExtractor().extract(ExtractorInput("object", {}, {"text": text.encode()}), params)
        return out[0]["text_extractor_v1_embedding"]

    first = embed("the tides follow the moon")
    assert len(first) == 128 and abs(_cosine(first, first) - 1) < 1e-4
    assert first == embed("the tides follow the moon")
    close, far = embed("tides follow the moon and the sun"), embed("chlorophyll absorbs red light")
    assert _cosine(first, close) > 0.5 > _cosine(first, far)


def test_undecodable_bytes_fail_with_a_clear_message():
    with pytest.raises(ExtractionError, match=r"not UTF-8 text \(byte 0xff at offset 2\)"):
        TextExtractor().extract(ExtractorInput("object", {}, {"text": b"ok\xff"}), TextParameters())
