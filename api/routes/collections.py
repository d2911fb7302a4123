"""`/v1/collections`: collections, their documents, and the trigger that processes them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from api.deps import CurrentKey, NamespaceDep, catalog, list_in_namespace
from api.models import (
    Collection,
    Deleted,
    Document,
    DryRun,
    ExtractorInfo,
    FilteredPage,
    ListResponse,
    Page,
    SearchRequest,
    SearchResponse,
    TriggerBody,
)
from deployments import operations
from tierflow import definitions, idempotency
from tierflow.browse import list_collection_documents
from tierflow.catalog import documents as catalog_documents
from tierflow.catalog import resources
from tierflow.catalog import vectors as catalog_vectors
from tierflow.catalog.records import document_record
from tierflow.dry_run import preview_trigger
from tierflow.errors import NotFoundError
from tierflow.extractors import describe_extractors
from tierflow.models.definitions import CollectionSpec
from tierflow.models.trigger import TriggerCollectionResponse, TriggerRequest
from tierflow.search import search_documents
from tierflow.staleness import staleness
from tierflow.verify import verify_collection
from tierflow.views import collection_views

router = APIRouter(prefix="/v1/collections", tags=["collections"])


@router.get("/features/extractors", response_model=list[ExtractorInfo])
def list_extractors(key: CurrentKey) -> list[dict]:
    """Every feature extractor: built-ins and plugins, with their parameters and output schemas."""
    return describe_extractors()


@router.post("", response_model=Collection)
def create_collection(spec: CollectionSpec, namespace: NamespaceDep) -> dict:
    """Create a collection: its sources must exist, its extractor too, and it may not close a cycle."""
    with catalog() as session:
        row = definitions.create_collection(session, namespace_id=namespace["namespace_id"], spec=spec)
        return collection_views(session, [row])[0]


@router.post("/list", response_model=ListResponse[Collection])
def list_collections(namespace: NamespaceDep, page: Page | None = None) -> dict:
    page = page or Page()
    return list_in_namespace("collection", namespace["namespace_id"], page.limit, page.offset, collection_views)


@router.get("/{identifier}", response_model=Collection)
def get_collection(identifier: str, namespace: NamespaceDep) -> dict:
    with catalog() as session:
        row = resources.get_collection(session, namespace_id=namespace["namespace_id"], identifier=identifier)
        return collection_views(session, [row])[0]


@router.delete("/{identifier}", response_model=Deleted)
def delete_collection(identifier: str, namespace: NamespaceDep) -> dict:
    """Delete a collection and its documents; refused while another collection reads from it."""
    with catalog() as session:
        row = resources.get_collection(session, namespace_id=namespace["namespace_id"], identifier=identifier)
        resources.check_unread(session, namespace_id=namespace["namespace_id"], source_id=row["collection_id"],
                               label=f"collection '{row['collection_name']}'")
        resources.delete_collection(session, collection_id=row["collection_id"])
    return {"success": True, "message": f"collection '{row['collection_name']}' deleted"}


@router.get("/{identifier}/staleness")
def get_staleness(identifier: str, namespace: NamespaceDep) -> dict:
    """Per tier of the collection's DAG: how many inputs each collection has made current, stale
    (the input or the extractor settings changed since) or not at all."""
    return staleness(namespace_id=namespace["namespace_id"], collection=identifier)


@router.get("/{identifier}/verify")
def get_verify(identifier: str, namespace: NamespaceDep) -> dict:
    """Per tier of the collection's DAG, what each collection holds that its sources do not call
    for, and what they call for that it lacks; changes nothing (`clean`: nothing found)."""
    return verify_collection(namespace_id=namespace["namespace_id"], collection=identifier)


@router.post("/{identifier}/documents/list", response_model=ListResponse[Document])
def list_documents(identifier: str, namespace: NamespaceDep, page: FilteredPage | None = None) -> dict:
    """A collection's documents, filtered in the catalog, one page at a time."""
    page = page or FilteredPage()
    return list_collection_documents(namespace=namespace["namespace_id"], collection=identifier,
                                     filters=page.filters, limit=page.limit, offset=page.offset)


@router.post("/{identifier}/documents/search", response_model=SearchResponse)
def search(identifier: str, namespace: NamespaceDep, request: SearchRequest) -> dict:
    """The documents nearest `query_text` or `query_vector`, among those matching `filters`
    (400 for a collection without embeddings, 422 for a vector of the wrong dimension)."""
    return search_documents(namespace=namespace["namespace_id"], collection=identifier,
                            query_text=request.query_text, query_vector=request.query_vector,
                            limit=request.limit, filters=request.filters)


@router.get("/{identifier}/documents/{document_id}", response_model=Document)
def get_document(identifier: str, document_id: str, namespace: NamespaceDep) -> dict:
    with catalog() as session:
        row = resources.get_collection(session, namespace_id=namespace["namespace_id"], identifier=identifier)
        found = catalog_documents.get_document_rows(session, document_ids=[document_id]).get(document_id)
        if found is None or found["collection_id"] != row["collection_id"]:
            raise NotFoundError(f"document in collection '{row['collection_name']}'", document_id)
        return catalog_vectors.attach_vectors(session, collection_id=row["collection_id"],
                                              records=[document_record(found)])[0]


@router.post("/{identifier}/trigger", status_code=202, response_model=TriggerCollectionResponse,
             responses={200: {"model": DryRun, "description": "With `dry_run`: what the trigger would do."}})
def trigger_collection(
    identifier: str,
    namespace: NamespaceDep,
    body: TriggerBody | None = None,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", max_length=255,
        description="A repeat with the same key returns the first answer and starts nothing.")] = None,
) -> Any:
    """Plan a batch and start the trigger deployment's run; answers at once (202), counts come later.
    With `"dry_run": true`, answers 200 with what it would do, and does none of it."""
    body = body or TriggerBody()
    request = TriggerRequest(**body.model_dump(exclude={"dry_run"}, exclude_unset=True))
    namespace_id = namespace["namespace_id"]
    if body.dry_run:
        return JSONResponse(preview_trigger(namespace=namespace_id, collection=identifier, request=request))

    def start() -> dict:
        return operations.start_batch(namespace_id=namespace_id, collection=identifier, request=request)

    if idempotency_key is None:
        return start()
    fingerprint = idempotency.fingerprint(identifier, request.model_dump(mode="json"))
    return idempotency.run_once(namespace_id=namespace_id, key=idempotency_key,
                                request_fingerprint=fingerprint, work=start)
