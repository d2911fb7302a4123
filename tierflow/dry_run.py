"""What a trigger would do, done without doing it: the tiers, the objects it would select by
action, the bytes it would read and the documents it would make, estimated from history.

It lists the root's buckets (and HEADs new objects where discovery would, for their metadata)
but registers nothing, creates no batch and starts no run. Objects are classed as discovery
classes them (new, changed, unchanged, deleted), then selected with the trigger's filters by the
Python filter backend, which agrees with the SQL one (tests/core/test_filter_agreement.py), and
split into those to process and those `dedup_strategy: skip` would skip. Each one processed is
followed down the DAG by `tierflow.estimates` for the documents each collection would write.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tierflow.catalog import collection_inputs as catalog_collection_inputs
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.records import object_record
from tierflow.dag import plan_tiers
from tierflow.deletions import listed_objects
from tierflow.discovery import check_listing_granted, entry_facts, needs_head, object_id_for, object_row
from tierflow.estimates import Estimator, Partial
from tierflow.filters import Condition, combine_all, parse_filter
from tierflow.filters.evaluate import evaluate
from tierflow.fingerprints import fingerprint
from tierflow.inputs import ObjectInputs
from tierflow.models.trigger import TriggerRequest
from tierflow.planning import checked_trigger
from tierflow.selection import collection_filter
from tierflow.settings import get_settings
from tierflow.storage import head_object, is_derivative, iter_pages, run_concurrently, s3_client, storage_location

MAX_LISTED = 100_000
"""Objects a dry run lists at most: it answers a request while the caller waits, so a stranger's
dry run of a huge bucket is bounded (the answer then says `complete: false`)."""


def preview_trigger(*, namespace: str, collection: str, request: TriggerRequest) -> dict[str, Any]:
    """What `trigger` would do with this request, changing nothing (see the module's docstring)."""
    settings = get_settings()
    with open_session(settings.database_url) as session:
        ns, root, bucket_ids, _ = checked_trigger(session, namespace, collection, request)
        everything = resources.list_collections(session, namespace_id=ns["namespace_id"])
        tiers = plan_tiers(everything, root["collection_id"])
        root_fingerprint = fingerprint(session, root)
        buckets = resources.get_buckets(session, bucket_ids=bucket_ids)
        ratios = {c: _documents_per_input(session, c) for tier in tiers for c in tier}
    estimator = Estimator(tiers=tiers, collections=everything, ratios=ratios, root_kind="object")
    wanted = request.object_ids
    where = combine_all(collection_filter(root), parse_filter(request.source_filters, where="source_filters"),
                        Condition("object_id", "in", tuple(wanted), True) if wanted is not None else None)
    found = {"listed": 0, "new": 0, "changed": 0, "unchanged": 0, "deleted": 0}
    selected = {"new": 0, "changed": 0, "unchanged": 0, "skipped": 0}
    to_read = 0
    complete = True
    for bucket in buckets if root["source"]["type"] == "bucket" else []:
        reconcile = request.reconcile_deletes is not False and wanted is None
        if found["listed"] >= MAX_LISTED:
            complete = False
            break
        headed = needs_head(bucket)
        for page in _listing(bucket, found, reconcile=reconcile):  # a page at a time: bounded memory
            with open_session(settings.database_url) as session:
                made = catalog_collection_inputs.recorded(session, collection_id=root["collection_id"],
                                                          input_ids=[row["object_id"] for row, _ in page])
            for row, action in page:
                if not evaluate(where, object_record(row)):
                    continue
                current = made.get(row["object_id"]) == (ObjectInputs().version(row), root_fingerprint)
                if request.dedup_strategy == "skip" and action == "unchanged" and current:
                    selected["skipped"] += 1
                    continue
                selected[action] += 1
                to_read += int(row["size_bytes"] or 0)
                estimator.add(_as_read(row, heads=action == "unchanged" or headed))
            if found["listed"] >= MAX_LISTED:
                complete = False  # the rest of the listing is not looked at
                break
    processed = selected["new"] + selected["changed"] + selected["unchanged"]
    estimates = estimator.result()
    per_tier = [_tier_estimate(n, members, estimates) for n, members in enumerate(tiers)]
    return {
        "dry_run": True, "complete": complete, "collection_id": root["collection_id"], "tiers": per_tier,
        "objects": found, "selected": selected, "inputs_to_process": processed, "bytes_to_read": to_read,
        "expected_documents": [t["expected_documents"] for t in per_tier],
        "expected_documents_exact": [t["expected_documents_exact"] for t in per_tier],
        "collections": [estimates[c] for members in tiers for c in members],
    }


def _as_read(row: dict[str, Any], *, heads: bool) -> Partial:
    """An object as processing will read it. Its metadata, content type and etag are read again
    with its file, so for a new or changed object that was not HEADed only processing knows them."""
    if heads:
        return Partial(row)
    unsure = frozenset({"metadata", "content_type", "etag"})
    return Partial({k: v for k, v in row.items() if k not in unsure}, unsure)


def _tier_estimate(tier_num: int, members: list[str], estimates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A tier's figures: the sum of its collections' (None if any is), exact if all of theirs are."""
    figures = [estimates[c]["expected_documents"] for c in members]
    return {"tier_num": tier_num, "collection_ids": members,
            "expected_documents": None if None in figures else sum(figures),
            "expected_documents_exact": all(estimates[c]["expected_documents_exact"] for c in members)}


def _listing(bucket: dict[str, Any], counts: dict[str, int], *,
             reconcile: bool) -> Iterator[list[tuple[dict[str, Any], str]]]:
    """The bucket's listing as discovery would class it, a page at a time: each listed object's
    row (the catalog's if unchanged, else as discovery would register it) and action; `counts`
    (listed, new, changed, unchanged, and deleted at the end when `reconcile`) kept up."""
    storage = bucket.get("storage")
    if not storage:
        return
    settings = get_settings()
    check_listing_granted(bucket)
    client = s3_client(*storage_location(storage))
    head = needs_head(bucket)
    seen: set[str] = set()
    for page in iter_pages(client, bucket=storage["s3_bucket"], prefix=storage.get("prefix") or "",
                           page_size=settings.discovery_page_size):
        entries = {object_id_for(bucket["bucket_id"], e["Key"]): e for e in page if not is_derivative(e["Key"])}
        seen.update(entries)
        with open_session(settings.database_url) as session:
            known = catalog_objects.get_objects(session, object_ids=list(entries))
        fresh = [oid for oid, e in entries.items() if oid not in known or entry_facts(e) != (
            known[oid]["etag"], known[oid]["size_bytes"], known[oid]["last_modified"])]
        heads: dict[str, Any] = run_concurrently(
            lambda key: head_object(client, storage["s3_bucket"], key), [entries[o]["Key"] for o in fresh]
        ) if head else {}
        classed = []
        for oid, entry in entries.items():
            action = "unchanged" if oid not in fresh else "changed" if oid in known else "new"
            found = heads.get(entry["Key"], {})
            classed.append((known[oid] if action == "unchanged" else
                            object_row(bucket, entry, found if isinstance(found, dict) else {}), action))
            counts[action] += 1
        counts["listed"] += len(entries)
        yield classed
    if reconcile:
        counts["deleted"] += len(listed_objects(bucket, object_id_for) - seen)


def _documents_per_input(session: Any, collection_id: str) -> float | None:
    """How many documents the collection made per input it processed, so far (None: never ran)."""
    inputs, made = catalog_collection_inputs.totals(session, collection_id=collection_id)
    return made / inputs if inputs else None
