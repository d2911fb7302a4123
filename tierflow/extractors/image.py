"""`image_extractor`: size, format, mode, a perceptual hash, dominant colours and a thumbnail.

The thumbnail is returned as a document blob (`role: thumbnail`); processing writes it to S3 next
to the source object and keeps its `s3://` URL in the document's `document_blobs`. A file Pillow
cannot read fails its input, and so does one larger than `TIERFLOW_MAX_IMAGE_PIXELS`, refused from
its header before any pixel is decoded.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from tierflow.extractors.base import CONTENT, ExtractionError, Extractor, ExtractorInput
from tierflow.settings import get_settings


class ImageParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thumbnail_size: int = Field(default=128, ge=16, le=2048, description="Longest side of the thumbnail, pixels.")
    colors: int = Field(default=3, ge=1, le=16, description="How many dominant colours to report.")


class ImageFacts(BaseModel):
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    format: str
    mode: str
    perceptual_hash: str = Field(description="64-bit difference hash (dHash), 16 hex digits.")
    dominant_colors: list[str] = Field(description="Hex colours, most frequent first.")
    document_blobs: list[dict[str, Any]] = Field(default_factory=list)


def difference_hash(image: Image.Image) -> str:
    """dHash: compare each pixel of a 9x8 greyscale copy with its right neighbour."""
    small = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = list(small.getdata())
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (pixels[row * 9 + col] > pixels[row * 9 + col + 1])
    return f"{bits:016x}"


def dominant_colors(image: Image.Image, count: int) -> list[str]:
    """The `count` most common colours: pixels of a small copy grouped into 512 colour cells,
    each reported as the mean of its pixels (exact for flat areas, close for photos)."""
    small = image.convert("RGB")
    small.thumbnail((64, 64), Image.Resampling.NEAREST)
    cells: dict[tuple[int, int, int], list[int]] = {}
    for r, g, b in list(small.getdata()):  # type: ignore[attr-defined]
        total = cells.setdefault((r >> 5, g >> 5, b >> 5), [0, 0, 0, 0])
        total[0] += r
        total[1] += g
        total[2] += b
        total[3] += 1
    top = sorted(cells.values(), key=lambda t: -t[3])[:count]
    return [f"#{t[0] // t[3]:02x}{t[1] // t[3]:02x}{t[2] // t[3]:02x}" for t in top]


class ImageExtractor(Extractor):
    name = "image_extractor"
    description = "Image facts (size, format, mode, perceptual hash, dominant colours) and a thumbnail in S3."
    Parameters = ImageParameters
    Output = ImageFacts
    input_types = ("image",)
    inputs = {"image": CONTENT}

    def extract(self, item: ExtractorInput, params: ImageParameters) -> list[dict[str, Any]]:
        data = item.values.get("image")
        if not isinstance(data, bytes):
            raise ExtractionError(f"input 'image' must be the bytes of an image file, got {type(data).__name__}")
        # Pillow only warns of a bomb below twice its own threshold: any image it warns of is refused here too.
        limit = min(get_settings().max_image_pixels, Image.MAX_IMAGE_PIXELS or sys.maxsize)
        try:
            with Image.open(io.BytesIO(data)) as image:  # reads the header only: the size, not the pixels
                if image.width * image.height > limit:
                    raise ExtractionError(
                        f"image of {image.width} × {image.height} pixels: images are decoded up to {limit} pixels "
                        "(TIERFLOW_MAX_IMAGE_PIXELS)", category="resource")
                image.load()
                thumbnail = image.convert("RGB")
                thumbnail.thumbnail((params.thumbnail_size, params.thumbnail_size))
                out = io.BytesIO()
                thumbnail.save(out, format="PNG")
                return [{
                    "width": image.width, "height": image.height, "format": image.format or "unknown",
                    "mode": image.mode, "perceptual_hash": difference_hash(image),
                    "dominant_colors": dominant_colors(image, params.colors),
                    "document_blobs": [{"role": "thumbnail", "content_type": "image/png", "suffix": ".thumbnail.png",
                                        "data": out.getvalue()}],
                }]
        except Image.DecompressionBombError as error:
            raise ExtractionError(f"image refused as a decompression bomb ({error})", category="resource") from error
        except UnidentifiedImageError as error:
            raise ExtractionError("not a readable image (Pillow does not recognise its format)") from error
        except (OSError, ValueError) as error:
            raise ExtractionError(f"not a readable image ({type(error).__name__}: {error})") from error
