"""A collection's fingerprint: what decides the documents it makes from an input.

Its extractor's name and version, a hash of the extractor's parameters, input mappings and
passthrough settings, and the fingerprints of the collections it reads. Each input a collection
processes is recorded with the fingerprint of that moment (`collection_inputs`), so after
`tierflow apply` changes any of these, the documents made before are known to be stale, here and
in every collection below it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.orm import Session

from tierflow.catalog import resources
from tierflow.dag import upstream_ids

_DECIDING = ("feature_extractor_name", "version", "parameters", "input_mappings", "field_passthrough",
             "include_all_source_fields")
"""The fields of a `feature_extractor` spec that change what it makes."""


def own_fingerprint(collection: dict[str, Any], upstream: list[str]) -> str:
    """The fingerprint of a collection whose sources have fingerprints `upstream`."""
    spec = collection["feature_extractor"]
    payload = {
        "extractor": {key: spec.get(key) for key in _DECIDING},
        "sources": sorted(upstream),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def fingerprint(session: Session, collection: dict[str, Any], *, known: dict[str, str] | None = None) -> str:
    """The collection's fingerprint, with those of the collections it reads (`known` caches them)."""
    known = {} if known is None else known
    found = known.get(collection["collection_id"])
    if found is not None:
        return found
    upstream = [
        fingerprint(session, resources.get_collection(session, namespace_id=collection["namespace_id"],
                                                      identifier=source), known=known)
        for source in upstream_ids(collection)
    ]
    known[collection["collection_id"]] = own_fingerprint(collection, upstream)
    return known[collection["collection_id"]]
