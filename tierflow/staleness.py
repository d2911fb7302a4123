"""How current a collection and the collections below it are: per tier, how many of each
collection's inputs it has processed at their current version with its current fingerprint
(`current`), processed otherwise (`stale`: the input or the extractor settings changed since),
or never (`missing`); inputs its `source_filters` leave out are `excluded`, neither stale nor
missing (`left_over` counts those it still holds documents of). A trigger with `dedup_strategy:
skip` processes exactly the stale and missing ones, and deletes what was made of left-over ones."""

from __future__ import annotations

from typing import Any

from tierflow.catalog import collection_inputs, resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.excluded import source_scope
from tierflow.dag import plan_tiers
from tierflow.fingerprints import fingerprint
from tierflow.selection import collection_filter
from tierflow.settings import get_settings


def staleness(*, namespace_id: str, collection: str) -> dict[str, Any]:
    """The staleness report of `collection` (id or name) and its DAG below it."""
    with open_session(get_settings().database_url) as session:
        root = resources.get_collection(session, namespace_id=namespace_id, identifier=collection)
        everything = resources.list_collections(session, namespace_id=namespace_id)
        by_id = {c["collection_id"]: c for c in everything}
        known: dict[str, str] = {}
        tiers = []
        for tier_num, members in enumerate(plan_tiers(everything, root["collection_id"])):
            rows = []
            for collection_id in members:
                member = by_id[collection_id]
                current = fingerprint(session, member, known=known)
                _, scope, keeps = source_scope(session, member, collection_filter(member))
                counts = collection_inputs.staleness(session, collection_id=collection_id, fingerprint=current,
                                                     of_objects=member["source"]["type"] == "bucket",
                                                     scope=scope, keeps=keeps)
                rows.append({"collection_id": collection_id, "collection_name": member["collection_name"],
                             "fingerprint": current, **counts})
            tiers.append({"tier_num": tier_num, "collections": rows})
    return {"collection_id": root["collection_id"], "fingerprint": known[root["collection_id"]], "tiers": tiers}
