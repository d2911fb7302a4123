"""Checking that a collection and every collection below it hold what their sources call for,
changing nothing: the inputs each should read (its sources, through its own filters) are worked
out afresh from the catalog and compared with the documents it holds and what it recorded of
processing them. Incremental runs are meant to leave nothing to report; a rebuild of the same
definitions would make documents from exactly these inputs.
"""

from __future__ import annotations

from typing import Any

from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.excluded import source_scope
from tierflow.catalog.verification import differences
from tierflow.dag import plan_tiers
from tierflow.fingerprints import fingerprint
from tierflow.selection import collection_filter
from tierflow.settings import get_settings

_KINDS = ("unexpected_documents", "unprocessed_inputs", "miscounted_inputs")


def verify_collection(*, namespace_id: str, collection: str) -> dict[str, Any]:
    """The differences of `collection` (id or name) and of each collection below it, per tier;
    `differences` is their total and `clean` whether it is 0."""
    with open_session(get_settings().database_url) as session:
        root = resources.get_collection(session, namespace_id=namespace_id, identifier=collection)
        everything = resources.list_collections(session, namespace_id=namespace_id)
        by_id = {c["collection_id"]: c for c in everything}
        known: dict[str, str] = {}
        tiers: list[dict[str, Any]] = []
        for tier_num, members in enumerate(plan_tiers(everything, root["collection_id"])):
            rows = []
            for collection_id in members:
                member = by_id[collection_id]
                input_id, scope, keeps = source_scope(session, member, collection_filter(member))
                found = differences(session, collection_id=collection_id,
                                    fingerprint=fingerprint(session, member, known=known),
                                    of_objects=member["source"]["type"] == "bucket",
                                    input_id=input_id, scope=scope, keeps=keeps)
                rows.append({"collection_id": collection_id, "collection_name": member["collection_name"], **found})
            tiers.append({"tier_num": tier_num, "collections": rows})
    total = sum(row[kind]["count"] for tier in tiers for row in tier["collections"] for kind in _KINDS)
    return {"collection_id": root["collection_id"], "differences": total, "clean": total == 0, "tiers": tiers}
