"""Identifiers with the contract's prefixes (`ns_`, `bkt_`, `obj_`, `col_`, `doc_`, `btch_`).

Random ids for things created once; deterministic ids (a hash of what makes a thing itself) where
re-running must land on the same row: objects per bucket and key, documents of unique-key buckets.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

_LENGTH = 24


def new_id(prefix: str) -> str:
    """A fresh random id such as `btch_3f2a…`."""
    return f"{prefix}_{uuid.uuid4().hex[:_LENGTH]}"


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
"""One encoder for every id: `json.dumps` with options builds a new encoder per call (measurable
at a hundred thousand documents per tier)."""


def stable_id(prefix: str, *parts: Any) -> str:
    """An id derived from `parts`: the same parts always give the same id."""
    payload = _CANONICAL.encode(parts)
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:_LENGTH]
    return f"{prefix}_{digest}"
