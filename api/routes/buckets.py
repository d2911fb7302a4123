"""`/v1/buckets`: buckets (with their S3 `storage` binding) and their objects."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from api.deps import CurrentKey, NamespaceDep, catalog, list_in_namespace
from api.models import Bucket, Deleted, FilteredPage, ListResponse, Page, StoredObject
from deployments.event_batches import batcher
from tierflow import definitions
from tierflow.browse import list_bucket_objects
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog import resources
from tierflow.deletions import delete_objects
from tierflow.errors import NotFoundError
from tierflow.events import apply_events, parse_notification
from tierflow.models.definitions import BucketSpec
from tierflow.registration import ObjectSpec, Policy, register_object
from tierflow.views import bucket_views

router = APIRouter(prefix="/v1/buckets", tags=["buckets"])


@router.post("", response_model=Bucket)
def create_bucket(spec: BucketSpec, namespace: NamespaceDep, key: CurrentKey) -> dict:
    """Create a bucket; `storage` binds it to an S3 location for discovery (409 on a taken name).
    A tenant's key may bind only locations granted to its namespace, with their endpoint (403)."""
    with catalog() as session:
        row = definitions.create_bucket(session, namespace_id=namespace["namespace_id"], spec=spec,
                                        tenant=key.is_tenant)
        return bucket_views(session, [row])[0]


@router.post("/list", response_model=ListResponse[Bucket])
def list_buckets(namespace: NamespaceDep, page: Page | None = None) -> dict:
    page = page or Page()
    return list_in_namespace("bucket", namespace["namespace_id"], page.limit, page.offset, bucket_views)


@router.get("/{identifier}", response_model=Bucket)
def get_bucket(identifier: str, namespace: NamespaceDep) -> dict:
    with catalog() as session:
        row = resources.get_bucket(session, namespace_id=namespace["namespace_id"], identifier=identifier)
        return bucket_views(session, [row])[0]


@router.delete("/{identifier}", response_model=Deleted)
def delete_bucket(identifier: str, namespace: NamespaceDep) -> dict:
    """Delete a bucket and its objects; refused while a collection reads from it."""
    with catalog() as session:
        row = resources.get_bucket(session, namespace_id=namespace["namespace_id"], identifier=identifier)
        resources.check_unread(session, namespace_id=namespace["namespace_id"], source_id=row["bucket_id"],
                               label=f"bucket '{row['bucket_name']}'")
        resources.delete_bucket(session, bucket_id=row["bucket_id"])
    return {"success": True, "message": f"bucket '{row['bucket_name']}' deleted"}


@router.post("/{identifier}/objects", response_model=StoredObject)
def create_object(
    identifier: str,
    namespace: NamespaceDep,
    spec: Annotated[ObjectSpec, Body()],
    policy: Annotated[Policy | None, Query(description="For unique-key buckets: insert, update or upsert.")] = None,
) -> dict:
    """Register an object (new objects are PENDING); unique-key buckets apply the policy."""
    with catalog() as session:
        bucket = resources.get_bucket(session, namespace_id=namespace["namespace_id"], identifier=identifier)
        return register_object(session, bucket=bucket, spec=spec, policy=policy)


@router.post("/{identifier}/events")
def receive_events(identifier: str, namespace: NamespaceDep, body: Annotated[Any, Body()]) -> dict:
    """S3 event notifications (AWS S3 and MinIO `{"Records": [...]}`, or EventBridge events):
    created objects are registered and removed ones deleted with their documents, at once; within
    `TIERFLOW_EVENT_DEBOUNCE_SECONDS` one batch per collection reading the bucket processes the
    objects registered. Events of other S3 buckets or prefixes, repeated, or older than one
    already applied are ignored."""
    events = parse_notification(body)
    with catalog() as session:
        bucket = resources.get_bucket(session, namespace_id=namespace["namespace_id"], identifier=identifier)
    outcome = apply_events(bucket, events)
    batcher.add(namespace_id=namespace["namespace_id"], bucket_id=bucket["bucket_id"], object_ids=outcome.registered)
    return {"registered": len(outcome.registered), "deleted": len(outcome.deleted), "ignored": outcome.ignored,
            "message": f"{len(outcome.registered)} object(s) registered, {len(outcome.deleted)} deleted, "
                       f"{outcome.ignored} event(s) ignored"}


@router.post("/{identifier}/objects/list", response_model=ListResponse[StoredObject])
def list_objects(identifier: str, namespace: NamespaceDep, page: FilteredPage | None = None) -> dict:
    """A bucket's objects, filtered in the catalog (e.g. `status` eq `PENDING`)."""
    page = page or FilteredPage()
    return list_bucket_objects(namespace=namespace["namespace_id"], bucket=identifier, filters=page.filters,
                               limit=page.limit, offset=page.offset)


@router.get("/{identifier}/objects/{object_id}", response_model=StoredObject)
def get_object(identifier: str, object_id: str, namespace: NamespaceDep) -> dict:
    with catalog() as session:
        return _object_in(session, namespace["namespace_id"], identifier, object_id)


@router.delete("/{identifier}/objects/{object_id}", response_model=Deleted)
def delete_object(identifier: str, object_id: str, namespace: NamespaceDep) -> dict:
    """Remove an object from the catalog with every document made from it, in every tier (a file
    in S3 is left alone)."""
    with catalog() as session:
        _object_in(session, namespace["namespace_id"], identifier, object_id)
        bucket = resources.get_bucket(session, namespace_id=namespace["namespace_id"], identifier=identifier)
    documents = delete_objects(bucket=bucket, object_ids=[object_id])
    return {"success": True, "message": f"object '{object_id}' deleted with {documents} document(s) made from it"}


def _object_in(session: Any, namespace_id: str, bucket: str, object_id: str) -> dict:
    row = resources.get_bucket(session, namespace_id=namespace_id, identifier=bucket)
    found = catalog_objects.get_objects(session, object_ids=[object_id]).get(object_id)
    if found is None or found["bucket_id"] != row["bucket_id"]:
        raise NotFoundError(f"object in bucket '{row['bucket_name']}'", object_id)
    return found
