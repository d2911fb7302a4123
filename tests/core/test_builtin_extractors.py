"""pdf_extractor and image_extractor on real files made by the tests; a plugin installed for real."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.utils.files import pdf_with_pages, png
from tierflow.extractors import (
    ExtractionError,
    ExtractorInput,
    available_extractors,
    describe_extractors,
    get_extractor,
)
from tierflow.extractors.image import ImageExtractor, ImageParameters
from tierflow.extractors.pdf import PdfExtractor, PdfParameters


def test_pdf_pages_with_text_and_numbers():
    out = PdfExtractor().extract(ExtractorInput("object", {}, {"pdf": pdf_with_pages("First page.", "Second page.")}),
                                 PdfParameters())
    assert out == [{"text": "First page.", "page_number": 1, "page_count": 2},
                   {"text": "Second page.", "page_number": 2, "page_count": 2}]


@pytest.mark.parametrize(("data", "message"), [
    (pdf_with_pages("secret", password="pw"), "the PDF is encrypted"),
    (b"%PDF-1.4 not really", "not a readable PDF"),
    ("text, not bytes", "must be the bytes of a PDF"),
])
def test_unreadable_pdfs_fail_with_a_clear_message(data, message):
    with pytest.raises(ExtractionError, match=message):
        PdfExtractor().extract(ExtractorInput("object", {}, {"pdf": data}), PdfParameters())


def test_image_facts_hash_colours_and_thumbnail():
    (out,) = ImageExtractor().extract(ExtractorInput("object", {}, {"image": png(400, 200)}),
                                      ImageParameters(thumbnail_size=64, colors=2))
    assert (out["width"], out["height"], out["format"], out["mode"]) == (400, 200, "PNG", "RGB")
    assert out["dominant_colors"] == ["#c81e1e", "#ffffff"]  # the red three quarters, then the white
    (blob,) = out["document_blobs"]
    assert blob["role"] == "thumbnail" and blob["data"].startswith(b"\x89PNG")

    assert Image.open(io.BytesIO(blob["data"])).size == (64, 32)
    same = ImageExtractor().extract(ExtractorInput("object", {}, {"image": png(200, 100)}), ImageParameters())
    other = ImageExtractor().extract(ExtractorInput("object", {}, {"image": png(200, 100, color=(255, 255, 255))}),
                                     ImageParameters())
    assert same[0]["perceptual_hash"] == out["perceptual_hash"] != other[0]["perceptual_hash"]


def test_a_corrupt_image_fails_its_input():
    with pytest.raises(ExtractionError, match="not a readable image"):
        ImageExtractor().extract(ExtractorInput("object", {}, {"image": b"\x89PNG broken"}), ImageParameters())


def test_a_plugin_installed_with_pip_is_found_through_its_entry_point(tmp_path, monkeypatch):
    plugin = Path(__file__).parents[1] / "cases" / "plugin"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(tmp_path),
                    str(plugin)], check=True, capture_output=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    available_extractors.cache_clear()
    try:
        extractor = get_extractor("upper_extractor")
        out = extractor().extract(ExtractorInput("object", {}, {"text": b"quiet words"}), None)
        assert out == [{"shout": "QUIET WORDS"}]
        assert "upper_extractor" in [e["feature_extractor_name"] for e in describe_extractors()]
    finally:
        monkeypatch.undo()
        available_extractors.cache_clear()
    with pytest.raises(Exception, match="'upper_extractor' version 'v1' does not exist; available: embedding_extractor \\(v1\\), image_extractor"):
        get_extractor("upper_extractor")
