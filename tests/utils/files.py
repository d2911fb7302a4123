"""Real files made by the tests: PDFs with text pages (pypdf) and PNGs (Pillow)."""

from __future__ import annotations

import io

from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject


def pdf_with_pages(*texts: str, password: str | None = None) -> bytes:
    """A PDF with one page per text, each written in Helvetica (so pypdf can read it back)."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for text in texts:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def png(width: int = 40, height: int = 20, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A PNG: the left three quarters in `color`, the rest white."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    image.paste(color, (0, 0, width * 3 // 4, height))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
