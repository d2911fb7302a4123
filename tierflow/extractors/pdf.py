"""`pdf_extractor`: one document per page of a PDF (pypdf), with its text and page number.

Encrypted or corrupt PDFs fail their input with a clear message; the rest of the chunk goes on.
"""

from __future__ import annotations

import io
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from tierflow.extractors.base import CONTENT, ExtractionError, Extractor, ExtractorInput


class PdfParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_pages: int = Field(default=10_000, ge=1, description="Pages after this one are not read.")


class PdfPage(BaseModel):
    text: str
    page_number: int = Field(ge=1)
    page_count: int = Field(ge=1)


class PdfExtractor(Extractor):
    name = "pdf_extractor"
    description = "One document per PDF page: its text, page number and the page count."
    Parameters = PdfParameters
    Output = PdfPage
    input_types = ("pdf",)
    inputs = {"pdf": CONTENT}
    position_fields = ("page_number",)

    def extract(self, item: ExtractorInput, params: PdfParameters) -> list[dict[str, Any]]:
        data = item.values.get("pdf")
        if not isinstance(data, bytes):
            raise ExtractionError(f"input 'pdf' must be the bytes of a PDF file, got {type(data).__name__}")
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                raise ExtractionError("the PDF is encrypted; tierflow reads only unencrypted PDFs")
            pages = reader.pages
            count = len(pages)
            return [{"text": pages[i].extract_text() or "", "page_number": i + 1, "page_count": count}
                    for i in range(min(count, params.max_pages))]
        except ExtractionError:
            raise
        except (PdfReadError, ValueError, KeyError, TypeError) as error:
            raise ExtractionError(f"not a readable PDF ({type(error).__name__}: {error})") from error
