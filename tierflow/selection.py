"""Selecting a tier's inputs into the batch manifest, with filters pushed down into SQL.

Tier 0 reads the root collection's sources: objects of its buckets (after discovery) or documents
of its source collections, filtered by the collection's `source_filters` AND the trigger's
`source_filters` AND `object_ids`. A lower tier reads what its upstream collections wrote in this
batch, filtered by its own `source_filters`. Once a tier's selection is final, what its
collections made from inputs their filters no longer keep is deleted (`tierflow.deletions`).
"""

from __future__ import annotations

from typing import Any

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import resources
from tierflow.catalog import selection as catalog_selection
from tierflow.catalog.engine import open_session
from tierflow.catalog.rows import BatchRow
from tierflow.dag import upstream_ids
from tierflow.deletions import delete_excluded
from tierflow.filters import Condition, Node, combine_all, parse_filter
from tierflow.fingerprints import fingerprint
from tierflow.models.status import Status
from tierflow.retrying import catalog_retries
from tierflow.settings import get_settings


def collection_filter(collection: dict[str, Any]) -> Node | None:
    """The collection's own `source.source_filters.filters`, parsed."""
    wrapper = collection["source"].get("source_filters") or {}
    return parse_filter(wrapper.get("filters"), where="source.source_filters.filters") if wrapper else None


def _root_filter(batch: BatchRow, collection: dict[str, Any]) -> Node:
    """The root collection's own filter AND the trigger's `source_filters` AND `object_ids`."""
    request = batch["request"]
    wanted = request.get("object_ids")
    return combine_all(
        collection_filter(collection),
        parse_filter(request.get("source_filters"), where="source_filters"),
        Condition("object_id", "in", tuple(wanted), True) if wanted is not None else None,
    )


@catalog_retries
def select_new_inputs(
    *, batch_id: str, tier_num: int, upstream_id: str, source_ids: list[str]
) -> dict[str, list[str]]:
    """Add to a tier's manifest what just became ready, filtered as `select_tier_inputs` filters;
    per collection of the tier, the ids added. For the root tier: objects of bucket `upstream_id`
    that discovery registered (`source_ids`); below it: what upstream collection `upstream_id`
    wrote in this batch from its inputs `source_ids` (one ended chunk). Ids already in the
    manifest are not added again, so something heard of twice adds nothing.
    """
    added: dict[str, list[str]] = {}
    with open_session(get_settings().database_url) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        for collection_id in batch["dag_tiers"][tier_num]:
            collection = resources.get_collection(
                session, namespace_id=batch["namespace_id"], identifier=collection_id
            )
            if tier_num == 0:
                added[collection_id] = catalog_selection.select_new_root(
                    session, batch=batch, collection_id=collection_id, where=_root_filter(batch, collection),
                    object_ids=source_ids)
            elif upstream_id in upstream_ids(collection):
                added[collection_id] = catalog_selection.select_new_downstream(
                    session, batch=batch, collection_id=collection_id, tier_num=tier_num, upstream_id=upstream_id,
                    source_ids=source_ids, where=combine_all(collection_filter(collection)))
    return added


@catalog_retries
def select_tier_inputs(*, batch_id: str, tier_num: int, final: bool = True) -> dict[str, dict[str, int]]:
    """Fill the manifest of every collection of a tier; counts per collection id. `final`: the
    step above has closed, so the tier now knows every input it will have."""
    with open_session(get_settings().database_url, write=final) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        counts = {}
        for collection_id in batch["dag_tiers"][tier_num]:
            collection = resources.get_collection(
                session, namespace_id=batch["namespace_id"], identifier=collection_id
            )
            if final:
                # The step above has written everything: what left this collection's filters
                # leaves it, and every collection below, before anything below reads it.
                delete_excluded(session, collection=collection, where=collection_filter(collection),
                                batch_id=batch_id)
            if tier_num == 0:
                counts[collection_id] = catalog_selection.select_root(
                    session, batch=batch, collection_id=collection_id, where=_root_filter(batch, collection))
            else:
                in_batch = set(batch["collection_ids"])
                skip = batch["request"].get("dedup_strategy") == "skip"
                counts[collection_id] = catalog_selection.select_downstream(
                    session, batch=batch, collection_id=collection_id, tier_num=tier_num,
                    sources=[c for c in upstream_ids(collection) if c in in_batch],
                    where=combine_all(collection_filter(collection)),
                    # also what the collection has not made current: stale since its settings
                    # changed, or never processed, though the tier above had nothing new for it
                    not_current_for=fingerprint(session, collection) if skip else None)
        catalog_batches.update_tier(
            session, batch_id=batch_id, tier_num=tier_num,
            source_documents_fetched=sum(c["fetched"] for c in counts.values()),
            documents_after_source_filter=sum(c["selected"] for c in counts.values()),
            inputs_known=sum(c["selected"] for c in counts.values()), **({"inputs_final": True} if final else {}),
        )
        if tier_num == 0:
            # PENDING until its first tier starts; the root tier, fed by discovery, may have started.
            started = batch["status"] != Status.DRAFT.value
            catalog_batches.update_batch(
                session, batch_id=batch_id, object_count=sum(c["selected"] for c in counts.values()),
                **({} if started else {"status": Status.PENDING.value}),
            )
        return counts
