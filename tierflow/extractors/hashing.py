"""A deterministic text embedding by feature hashing: no model, no download, same on every machine.

Each lower-cased word and each character trigram of a word is hashed (BLAKE2b, not Python's
salted `hash`) to a dimension and a sign; the sums are L2-normalised. Texts that share words get
a high cosine similarity, which is what search over chunks needs without a model.
"""

from __future__ import annotations

import hashlib
import math
import re

_WORD = re.compile(r"\w+", re.UNICODE)


def _features(text: str) -> list[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    grams = [f"#{w[i:i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
    return words + grams


def has_features(text: str) -> bool:
    """True when `text` has a word, so its embedding is not all zeros."""
    return _WORD.search(text) is not None


def hashing_embedding(text: str, dimension: int) -> list[float]:
    """A unit vector of `dimension` floats for `text` (all zeros for text without words)."""
    vector = [0.0] * dimension
    for feature in _features(text):
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        vector[value % dimension] += 1.0 if (value >> 63) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [round(v / norm, 6) for v in vector] if norm else vector
