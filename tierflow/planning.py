"""Planning a trigger: resolve names, check the request against the collection, lay out tiers.

Every rule of the contract is checked here before anything runs, and a violation is a
`BadRequestError` that names the field: a trigger never silently ignores what it was asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.dag import plan_tiers, upstream_ids
from tierflow.errors import BadRequestError, NotFoundError
from tierflow.ids import new_id
from tierflow.models.status import Status
from tierflow.models.trigger import TriggerRequest
from tierflow.retrying import catalog_retries
from tierflow.settings import get_settings


@dataclass(frozen=True)
class BatchPlan:
    """A created batch: which collection runs in which tier, and what the root reads."""

    batch_id: str
    namespace_id: str
    collection_id: str
    source_type: str
    source_bucket_ids: list[str]
    source_collection_ids: list[str]
    tiers: list[list[str]]
    resumed: bool = False
    """True when the batch ran before (a retry): its inputs are already selected."""
    names_objects: bool = False
    """True when the request lists `object_ids`: they are checked to exist before anything runs."""
    reconcile_deletes: bool = True
    """False when the request keeps objects the listing no longer finds (`reconcile_deletes`)."""

    @property
    def streams_discovery(self) -> bool:
        """Whether the root tier may start on the first listing page while discovery goes on:
        a first run over buckets whose request names no objects."""
        return not self.resumed and self.source_type == "bucket" and not self.names_objects

    @property
    def reconciles_deletes(self) -> bool:
        """Whether discovery deletes the objects it no longer finds: a listing of whole buckets
        (no `object_ids`), unless the request says `reconcile_deletes: false`."""
        return self.reconcile_deletes and not self.names_objects


def _resolve_sources(
    session: Any, namespace_id: str, collection: dict[str, Any], field: str, names: list[str] | None
) -> list[str]:
    """The source ids a request narrows to, each checked to be one of the collection's sources."""
    source = collection["source"]
    own = list(source.get("bucket_ids") or source.get("collection_ids") or [])
    kind = "bucket" if field == "include_buckets" else "collection"
    if names is None:
        return own if source["type"] == kind else []
    if source["type"] != kind:
        raise BadRequestError(
            f"{field} applies only to {kind}-sourced collections; "
            f"collection '{collection['collection_name']}' reads from {source['type']}s",
            details={"field": field},
        )
    chosen: list[str] = []
    for name in names:
        getter = resources.get_bucket if kind == "bucket" else resources.get_collection
        row = getter(session, namespace_id=namespace_id, identifier=name)
        resolved = row[f"{kind}_id"]
        if resolved not in own:
            raise BadRequestError(
                f"{field}: '{name}' is not a source of collection '{collection['collection_name']}'",
                details={"field": field, "value": name},
            )
        chosen.append(resolved)
    return chosen


def check_request(collection: dict[str, Any], request: TriggerRequest) -> None:
    """Rules that need only the collection (the rest need the catalog)."""
    if request.object_ids is not None and collection["source"]["type"] != "bucket":
        raise BadRequestError(
            "object_ids applies only to bucket-sourced collections; "
            f"collection '{collection['collection_name']}' reads from collections",
            details={"field": "object_ids"},
        )
    if not collection["enabled"]:
        raise BadRequestError(f"collection '{collection['collection_name']}' is disabled")


def validate_trigger(*, namespace: str, collection: str, request: TriggerRequest) -> None:
    """Every check of `plan_batch`, creating nothing (faces call it to answer errors early)."""
    with open_session(get_settings().database_url) as session:
        checked_trigger(session, namespace, collection, request)


def checked_trigger(session: Any, namespace: str, collection: str, request: TriggerRequest) -> tuple[
        dict[str, Any], dict[str, Any], list[str], list[str]]:
    """(namespace, root collection, bucket ids, collection ids) of a request that passed every
    check; BadRequestError or NotFoundError naming what did not."""
    ns = resources.get_namespace(session, identifier=namespace)
    root = resources.get_collection(session, namespace_id=ns["namespace_id"], identifier=collection)
    check_request(root, request)
    bucket_ids = _resolve_sources(session, ns["namespace_id"], root, "include_buckets", request.include_buckets)
    collection_ids = _resolve_sources(
        session, ns["namespace_id"], root, "include_collections", request.include_collections
    )
    return ns, root, bucket_ids, collection_ids


def plan_batch(*, namespace: str, collection: str, request: TriggerRequest, task_id: str | None) -> BatchPlan:
    """Resolve, check and create the batch (status DRAFT) with its tier tasks."""
    with open_session(get_settings().database_url) as session:
        ns, root, bucket_ids, collection_ids = checked_trigger(session, namespace, collection, request)
        source_type = root["source"]["type"]
        all_collections = resources.list_collections(session, namespace_id=ns["namespace_id"])
        tiers = plan_tiers(all_collections, root["collection_id"])
        by_id = {c["collection_id"]: c for c in all_collections}
        batch_id = new_id("btch")
        tier_rows = []
        for num, members in enumerate(tiers):
            upstream = collection_ids if num == 0 else sorted(
                {p for cid in members for p in upstream_ids(by_id[cid]) if any(p in t for t in tiers[:num])}
            )
            tier_rows.append({
                "tier_num": num, "status": Status.PENDING.value, "collection_ids": members,
                "source_type": source_type if num == 0 else "collection",
                "source_collection_ids": upstream, "errors": [],
            })
        catalog_batches.create_batch(session, batch={
            "batch_id": batch_id, "namespace_id": ns["namespace_id"],
            "collection_id": root["collection_id"],
            "collection_ids": [c for tier in tiers for c in tier], "status": Status.DRAFT.value,
            "task_id": task_id, "request": request.model_dump(mode="json", exclude_none=True),
            "source_bucket_ids": bucket_ids, "source_collection_ids": collection_ids,
            "current_tier": None, "total_tiers": len(tiers), "dag_tiers": tiers,
            "failed_object_count": 0,
        }, tiers=tier_rows)
        if task_id is not None:
            catalog_batches.add_run(session, batch_id=batch_id, task_id=task_id)
    return BatchPlan(
        batch_id=batch_id, namespace_id=ns["namespace_id"], collection_id=root["collection_id"],
        source_type=source_type, source_bucket_ids=bucket_ids, source_collection_ids=collection_ids,
        tiers=tiers, names_objects=request.object_ids is not None,
        reconcile_deletes=request.reconcile_deletes is not False,
    )


@catalog_retries
def adopt_batch(*, batch_id: str, task_id: str | None, namespace: str) -> BatchPlan:
    """The plan of a batch created before its run (by the REST API), now owned by run `task_id`.

    The batch must belong to `namespace` (id or name): whoever can start the trigger deployment
    names a batch by its id, and a batch of another namespace is not found (NotFoundError)."""
    with open_session(get_settings().database_url) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        owner = resources.get_namespace(session, identifier=batch["namespace_id"])
        if namespace not in (owner["namespace_id"], owner["namespace_name"]):
            raise NotFoundError("batch", batch_id, scope=namespace)
        root = resources.get_collection(session, namespace_id=batch["namespace_id"], identifier=batch["collection_id"])
        if task_id is not None:
            catalog_batches.add_run(session, batch_id=batch_id, task_id=task_id)
            if batch["task_id"] is None:
                # The first run is the batch's task; later ones (retry, resume) are its runs.
                catalog_batches.update_batch(session, batch_id=batch_id, task_id=task_id)
    return BatchPlan(
        batch_id=batch_id, namespace_id=batch["namespace_id"], collection_id=batch["collection_id"],
        source_type=root["source"]["type"], source_bucket_ids=batch["source_bucket_ids"],
        source_collection_ids=batch["source_collection_ids"], tiers=batch["dag_tiers"],
        # A run that died while discovery still fed the root tier left its inputs partly selected
        # (`object_count` is set once they all are): that batch is discovered and selected again.
        resumed=batch["status"] != Status.DRAFT.value and batch["object_count"] is not None,
        names_objects=batch["request"].get("object_ids") is not None,
        reconcile_deletes=batch["request"].get("reconcile_deletes") is not False,
    )
