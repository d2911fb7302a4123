"""Processing one chunk of inputs: read, extract, and write documents in one transaction.

A failure of one input (bad bytes, a missing key, an invalid output) fails that input only and is
recorded with its category. A transient storage failure raises before anything is written, so
the whole chunk can be retried safely. Documents, per-input results and object statuses of a
chunk commit together: a chunk is never half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from tierflow.batches import settle_counters
from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import collection_inputs as catalog_collection_inputs
from tierflow.catalog import documents as catalog_documents
from tierflow.catalog import leases as catalog_leases
from tierflow.catalog import resources
from tierflow.catalog import vectors as catalog_vectors
from tierflow.catalog.derived import delete_all_but
from tierflow.catalog.engine import open_session
from tierflow.catalog.grants import granted_locations
from tierflow.discovery import object_metadata
from tierflow.errors import TierflowError, TransientError, public_message
from tierflow.extractors import ExtractionError, Extractor, ExtractorInput, collection_extractor
from tierflow.filters import MISSING, resolve_path
from tierflow.fingerprints import fingerprint
from tierflow.grants import Location, locate
from tierflow.ids import new_id, stable_id
from tierflow.inputs import InputSource, input_source
from tierflow.models.status import Status
from tierflow.settings import get_settings
from tierflow.storage import (
    ObjectTooLargeError,
    StoredFile,
    derivative_key,
    io_ticket,
    read_object,
    run_concurrently,
    s3_client,
    storage_location,
    write_object,
)
from tierflow.timestamps import now_text

log = logging.getLogger(__name__)


@dataclass
class ChunkResult:
    """Counters of one chunk; inputs = succeeded + failed + skipped."""

    inputs: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    documents_written: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Context:
    batch_id: str
    tier_num: int
    collection: dict[str, Any]
    extractor: Extractor
    params: Any
    buckets: dict[str, dict[str, Any]]
    extractor_info: dict[str, str]
    grants: list[Location]
    max_documents: int
    dedup: str | None = None
    cancelled: bool = False
    fingerprint: str = ""
    """The collection's fingerprint now (`tierflow.fingerprints`): recorded with what it makes."""
    generation: int = 0
    """The lease generation of the batch's run this chunk belongs to: it claims the inputs with it."""
    now: str = field(default_factory=now_text)
    """When this chunk's documents were made (one clock reading per chunk, not per document)."""


def _category(error: BaseException) -> str:
    if isinstance(error, TierflowError):
        return error.category
    if isinstance(error, PydanticValidationError):
        return "validation"
    if isinstance(error, MemoryError):
        return "resource"
    return "runtime"


def _error_entry(ctx: _Context, input_id: str, error: BaseException) -> dict[str, Any]:
    """The ledger's record of one failed input, as callers see it: the category and a message
    without library or driver text (`public_message`); the whole exception goes to the log."""
    log.warning("batch %s, collection %s, tier %s: input %s failed", ctx.batch_id, ctx.collection["collection_id"],
                ctx.tier_num, input_id, exc_info=error)
    return {
        "input_id": input_id,
        "category": _category(error),
        "message": public_message(error),
        "transient": isinstance(error, TransientError),
        "extractor": ctx.extractor.name,
        "collection_id": ctx.collection["collection_id"],
        "tier": ctx.tier_num,
    }


def _fetch_contents(records: dict[str, dict[str, Any]], buckets: dict[str, dict[str, Any]], grants: list[Location],
                    place: int) -> dict[str, Any]:
    """The file of each object (a `StoredFile`, inline bytes, or the error), fetched concurrently
    (in the I/O pool's line at `place`, see `tierflow.storage.io_ticket`). Only what its
    bucket may reach is read (`tierflow.grants.locate`), and nothing over `max_object_bytes`."""
    blobs = {oid: r["blobs"][0]["data"] for oid, r in records.items() if r.get("blobs")}
    urls = {oid: data for oid, data in blobs.items() if isinstance(data, str) and data.startswith("s3://")}
    limit = get_settings().max_object_bytes

    def fetch(object_id: str) -> StoredFile:
        record = records[object_id]
        target = locate(buckets[record["bucket_id"]], grants, urls[object_id])
        if (record.get("size_bytes") or 0) > limit:  # listed too large: not read at all
            raise ObjectTooLargeError(urls[object_id], size=record["size_bytes"], limit=limit)
        return read_object(s3_client(*storage_location(target.binding())), target.s3_bucket, target.key,
                           max_bytes=limit)

    found: dict[str, Any] = run_concurrently(fetch, list(urls), ticket=place)
    # Objects registered through the API may carry their content inline instead of a URL.
    found.update({oid: _inline_bytes(data) for oid, data in blobs.items() if oid not in urls})
    for oid in records:
        found.setdefault(oid, ExtractionError(f"object {oid} has no blob to read", category="validation"))
    return found


def _learn_facts(record: dict[str, Any], bucket: dict[str, Any], stored: StoredFile) -> dict[str, Any] | None:
    """What the GET said that the catalog did not know (discovery may skip the HEAD): the new
    content type and metadata, and the etag and LastModified of what was read when the object changed since it was
    listed, applied to the record (whose version its documents then record) and returned to be
    saved, or None."""
    facts = {"content_type": stored.content_type or record.get("content_type"),
             "metadata": {**object_metadata(bucket, stored.metadata), **(record.get("metadata") or {})},
             "etag": stored.etag or record.get("etag"),
             "last_modified": stored.last_modified or record.get("last_modified")}
    if all(facts[k] == (record.get(k) or ({} if k == "metadata" else None)) for k in facts):
        return None
    record.update(facts)
    return facts


def _inline_bytes(data: Any) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else json.dumps(data).encode("utf-8")


def _resolve_inputs(ctx: _Context, inputs: InputSource, record: dict[str, Any], content: Any) -> dict[str, Any]:
    mappings = ctx.collection["feature_extractor"].get("input_mappings") or {}
    values = {}
    for name, default in ctx.extractor.inputs.items():
        source = mappings.get(name, default)
        value = inputs.value(record, source, content)
        if value is MISSING:
            raise ExtractionError(f"input '{name}': source path '{source}' is missing from the input")
        values[name] = value
    return values


def _passthrough(ctx: _Context, record: dict[str, Any]) -> dict[str, Any]:
    spec = ctx.collection["feature_extractor"]
    copied: dict[str, Any] = {}
    if spec.get("include_all_source_fields"):
        copied.update({k: v for k, v in record.items() if k not in ("_internal", "blobs")})
    for item in spec.get("field_passthrough") or []:
        value = resolve_path(record, item["source_path"])
        if value is MISSING:
            if item.get("required"):
                raise ExtractionError(f"field_passthrough: required field '{item['source_path']}' is missing")
            continue
        copied[item.get("target_path") or item["source_path"].rsplit(".", 1)[-1]] = value
    return copied


def _parameters_hash(spec: dict[str, Any]) -> str:
    payload = json.dumps(spec.get("parameters") or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _documents_for(ctx: _Context, inputs: InputSource, item: ExtractorInput) -> tuple[list[dict[str, Any]], bool]:
    """Document rows for one input, and whether their ids are deterministic (upsert)."""
    record = item.record
    outputs = ctx.extractor.extract(item, ctx.params)
    if len(outputs) > ctx.max_documents:
        raise ExtractionError(f"the extractor made {len(outputs)} documents from this input; at most "
                              f"{ctx.max_documents} are kept per input (TIERFLOW_MAX_DOCUMENTS_PER_INPUT)",
                              category="resource")
    carried = _passthrough(ctx, record)
    cid = ctx.collection["collection_id"]
    identity, base = inputs.origin(record, ctx.buckets, cid)
    version = inputs.version(record)
    now = ctx.now
    rows = []
    outputs = [
        {**output, "document_blobs": _store_blobs(ctx, inputs, record, output["document_blobs"])}
        if output.get("document_blobs") else output
        for output in outputs
    ]
    for checked in ctx.extractor.checked_outputs(outputs):
        fields = {**carried, **checked}
        positions = [fields.get(p) for p in ctx.extractor.position_fields]
        document_id = (
            stable_id("doc", identity, cid, ctx.extractor.name, ctx.extractor.version, positions)
            if identity is not None else new_id("doc")
        )
        chain = [*base["chain"], {"collection_id": cid, "extractor": ctx.extractor.name, "document_id": document_id}]
        rows.append({
            "document_id": document_id, "collection_id": cid,
            "namespace_id": ctx.collection["namespace_id"], "batch_id": ctx.batch_id,
            "root_object_id": base["root_object_id"], "source_id": record.get("document_id") or record["object_id"],
            "fields": fields,
            "lineage": {**base, "chain": chain, "extractor": ctx.extractor_info, "source_version": version,
                        "fingerprint": ctx.fingerprint},
            "created_at": now, "updated_at": now,
        })
    return rows, identity is not None


def _store_blobs(ctx: _Context, inputs: InputSource, record: dict[str, Any],
                 blobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write an output's blobs (e.g. a thumbnail) to S3 beside the source object; their references."""
    source = next((b["data"] for b in record.get("blobs") or []
                   if isinstance(b.get("data"), str) and b["data"].startswith("s3://")), None)
    if inputs.kind != "object" or source is None:
        raise ExtractionError("this extractor writes files beside its input, so the input must be an object in S3",
                              category="validation")
    bucket = ctx.buckets[record["bucket_id"]]
    origin = locate(bucket, ctx.grants, source)
    stored = []
    for blob in blobs:
        url = f"s3://{origin.s3_bucket}/{derivative_key(origin.key, blob['suffix'])}"
        target = locate(bucket, ctx.grants, url)  # beside the source, so inside its binding: checked all the same
        write_object(s3_client(*storage_location(target.binding())), target.s3_bucket, target.key, blob["data"],
                     blob["content_type"])
        stored.append({"role": blob["role"], "content_type": blob["content_type"], "url": url})
    return stored


def _load_context(batch_id: str, collection_id: str, tier_num: int, generation: int | None) -> _Context:
    settings = get_settings()
    with open_session(settings.database_url) as session:
        batch = catalog_batches.get_batch(session, batch_id=batch_id)
        collection = resources.get_collection(session, namespace_id=batch["namespace_id"], identifier=collection_id)
        grants = granted_locations(session, namespace_id=batch["namespace_id"])
        collection_fingerprint = fingerprint(session, collection)
    spec = collection["feature_extractor"]
    extractor_cls, params = collection_extractor(spec, collection["collection_name"])
    info = {"name": extractor_cls.name, "version": extractor_cls.version, "parameters_hash": _parameters_hash(spec)}
    return _Context(batch_id, tier_num, collection, extractor_cls(), params, {}, info, grants,
                    settings.max_documents_per_input, dedup=batch["request"].get("dedup_strategy"),
                    cancelled=batch["status"] == Status.CANCELED.value,
                    generation=batch["lease_generation"] if generation is None else generation,
                    fingerprint=collection_fingerprint)


def process_chunk(*, batch_id: str, collection_id: str, tier_num: int, input_ids: list[str],
                  generation: int | None = None) -> ChunkResult:
    """Turn these inputs of the manifest into documents and record every outcome. The chunk's
    reads are served in the order the chunks began (`tierflow.storage.io_ticket`).

    The chunk first claims its inputs for the run of lease `generation` (the batch's current one
    when None) and processes only those it got: an input already done, or claimed by a newer run
    of the batch, is not processed twice. A chunk of a batch cancelled meanwhile does nothing: its
    inputs stay PENDING (not reached).
    """
    place_for_reads = io_ticket()
    ctx = _load_context(batch_id, collection_id, tier_num, generation)
    if ctx.cancelled:
        return ChunkResult(inputs=len(input_ids))
    settings = get_settings()
    inputs = input_source(ctx.collection, tier_num)
    with open_session(settings.database_url) as session:
        claimed = set(catalog_leases.claim_inputs(session, batch_id=batch_id, collection_id=collection_id,
                                                  input_ids=input_ids, generation=ctx.generation))
    input_ids = [i for i in input_ids if i in claimed]
    with open_session(settings.database_url) as session:
        records, bucket_ids = inputs.load(session, input_ids)
        ctx.buckets = {b["bucket_id"]: b for b in resources.get_buckets(session, bucket_ids=sorted(bucket_ids))}
    result = ChunkResult(inputs=len(input_ids))
    outcomes: list[dict[str, Any]] = []
    stale = 0
    """Inputs redone because the collection's settings changed, though their content did not."""
    if ctx.dedup == "skip":
        # Inputs this collection already processed, at this same content and with the same
        # extractor settings (fingerprint), are skipped.
        with open_session(settings.database_url) as session:
            made = catalog_collection_inputs.recorded(session, collection_id=collection_id, input_ids=list(records))
        unchanged = {i for i in input_ids
                     if i in records and made.get(i) == (inputs.version(records[i]), ctx.fingerprint)}
        stale = sum(1 for i in input_ids if i in records and i not in unchanged and i in made
                    and made[i][0] == inputs.version(records[i]))  # same content, other settings
        for input_id in unchanged:
            records.pop(input_id)
            outcomes.append({"input_id": input_id, "status": Status.SKIPPED.value, "documents_written": 0})
        result.skipped = len(unchanged)
        input_ids = [i for i in input_ids if i not in unchanged]
    gone = [i for i in input_ids if i not in records]  # deleted since they were selected: nothing to make
    for input_id in gone:
        outcomes.append({"input_id": input_id, "status": Status.SKIPPED.value, "documents_written": 0})
    result.skipped += len(gone)
    input_ids = [i for i in input_ids if i in records]
    contents: dict[str, Any] = {}
    mappings = ctx.collection["feature_extractor"].get("input_mappings") or {}
    if inputs.kind == "object" and ctx.extractor.needs_content(mappings):
        contents = _fetch_contents(records, ctx.buckets, ctx.grants, place_for_reads)
        transient = [e for e in contents.values() if isinstance(e, TransientError)]
        if transient:
            raise transient[0]  # nothing written yet: the chunk task may be retried whole

    learned: dict[str, dict[str, Any]] = {}
    items: dict[str, ExtractorInput] = {}
    failures: dict[str, BaseException] = {}
    for input_id in input_ids:
        try:
            record = records[input_id]
            content = contents.get(input_id)
            if isinstance(content, Exception):
                raise content
            if isinstance(content, StoredFile):
                facts = _learn_facts(record, ctx.buckets[record["bucket_id"]], content)
                if facts:
                    learned[input_id] = facts
                content = content.body
            items[input_id] = ExtractorInput(kind=inputs.kind, record=record,
                                             values=_resolve_inputs(ctx, inputs, record, content))
        except Exception as unreadable:  # one input's failure must not stop the chunk
            failures[input_id] = unreadable
    ctx.extractor.prepare(list(items.values()), ctx.params)

    to_upsert: list[dict[str, Any]] = []
    to_insert: list[dict[str, Any]] = []
    kept: dict[str, list[str]] = {}
    """Per input whose documents have deterministic ids: those ids (any others it made before go)."""
    made_now: list[dict[str, Any]] = []
    for input_id in input_ids:
        problem = failures.get(input_id)
        if problem is None:
            try:
                rows, deterministic = _documents_for(ctx, inputs, items[input_id])
            except Exception as failed:  # one input's failure must not stop the chunk
                problem = failed
        if problem is not None:
            entry = _error_entry(ctx, input_id, problem)
            result.failed += 1
            result.errors.append(entry)
            outcomes.append(
                {"input_id": input_id, "status": Status.FAILED.value, "documents_written": 0, "error": entry}
            )
            continue
        (to_upsert if deterministic else to_insert).extend(rows)
        if deterministic or ctx.dedup in _REDOES:
            kept[input_id] = [row["document_id"] for row in rows]
        made_now.append({"input_id": input_id, "input_version": inputs.version(records[input_id]),
                         "fingerprint": ctx.fingerprint, "documents": len(rows), "processed_at": ctx.now})
        result.succeeded += 1
        result.documents_written += len(rows)
        outcomes.append({"input_id": input_id, "status": Status.COMPLETED.value, "documents_written": len(rows)})

    vector_field = ctx.extractor.vector_field(ctx.params)
    with open_session(settings.database_url, write=True) as session:
        written = [m["input_id"] for m in made_now]
        vanished = inputs.vanished(session, written) if written else set()
        if vanished:  # deleted while this chunk read them (a deletion or a filter upstream): nothing to make
            to_upsert, to_insert = _drop_made_from(vanished, result, outcomes, made_now, kept, to_upsert, to_insert)
        vectors = catalog_vectors.take_vectors([*to_upsert, *to_insert], vector_field) if vector_field else []
        catalog_documents.write_documents(session, rows=to_upsert, upsert=True)
        catalog_documents.write_documents(session, rows=to_insert, upsert=False)
        deleted = 0
        if kept:  # an input that now yields fewer documents loses the others, and what came of them
            deleted = delete_all_but(session, namespace_id=ctx.collection["namespace_id"],
                                     collection_id=collection_id, kept=kept)
        catalog_collection_inputs.record(session, collection_id=collection_id, rows=made_now)
        catalog_batches.add_counts(session, batch_id=batch_id, stale=stale, documents_deleted=deleted)
        if vector_field is not None:  # in step with the documents: same transaction
            catalog_vectors.write_vectors(session, collection_id=collection_id, field=vector_field, vectors=vectors)
        catalog_batches.record_results(session, batch_id=batch_id, collection_id=collection_id, results=outcomes,
                                       generation=ctx.generation)
        catalog_batches.count_done(session, batch_id=batch_id, tier_num=tier_num, inputs=len(outcomes))
        inputs.commit(session, outcomes, learned)
        if catalog_batches.is_cancelled(session, batch_id=batch_id):
            settle_counters(session, batch_id=batch_id)  # no tier run closes a cancelled batch's books
    return result


_REDOES = ("skip", "replace")
"""Strategies under which an input processed again replaces what it made before, whatever its
ids: `replace` by definition, `skip` because it redoes only inputs that changed."""


def _drop_made_from(vanished: set[str], result: ChunkResult, outcomes: list[dict[str, Any]],
                    made_now: list[dict[str, Any]], kept: dict[str, list[str]], *rows: list[dict[str, Any]]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Take back what this chunk made of inputs deleted meanwhile: they end SKIPPED, as inputs
    already gone when the chunk began do; the rows left to write (upserts, inserts)."""
    for outcome in outcomes:
        if outcome["input_id"] in vanished and outcome["status"] == Status.COMPLETED.value:
            result.succeeded -= 1
            result.skipped += 1
            result.documents_written -= outcome["documents_written"]
            outcome.update(status=Status.SKIPPED.value, documents_written=0)
    made_now[:] = [m for m in made_now if m["input_id"] not in vanished]
    for input_id in vanished:
        kept.pop(input_id, None)
    upserts, inserts = ([r for r in part if r["source_id"] not in vanished] for part in rows)
    return upserts, inserts
