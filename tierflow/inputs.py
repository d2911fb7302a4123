"""Where a chunk's inputs come from: the objects of buckets (the root tier of a bucket-sourced
collection) or the documents of upstream collections. One protocol for both, so processing a
chunk reads the same whatever it reads: load, skip what is unchanged, extract each, commit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from tierflow.catalog import documents as catalog_documents
from tierflow.catalog import objects as catalog_objects
from tierflow.catalog.records import document_record
from tierflow.extractors import CONTENT, ExtractionError
from tierflow.extractors.base import InputKind
from tierflow.filters import MISSING, resolve_path
from tierflow.models.status import Status


class InputSource(ABC):
    """The inputs of one chunk: how they are read, what identifies their content, where their
    documents come from, and what is recorded on them afterwards."""

    kind: ClassVar[InputKind]

    @abstractmethod
    def load(self, session: Session, input_ids: list[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """The inputs' records by id (those that still exist), and the ids of their root buckets."""

    @abstractmethod
    def version(self, record: dict[str, Any]) -> str:
        """What identifies this content of the input (`dedup_strategy: skip` compares it)."""

    @abstractmethod
    def value(self, record: dict[str, Any], source: str, content: Any) -> Any:
        """An extractor input's value from `source` (`$content`, a blob's property, a dot path),
        given the file's bytes (`content`) where they were read; MISSING when there is none."""

    @abstractmethod
    def origin(self, record: dict[str, Any], buckets: dict[str, dict[str, Any]],
               collection_id: str) -> tuple[Any, dict[str, Any]]:
        """(What identifies the input across runs, for deterministic document ids, or None; the
        lineage its documents start from.)"""

    def commit(self, session: Session, outcomes: list[dict[str, Any]], learned: dict[str, dict[str, Any]]) -> None:
        """Record what processing found out about the inputs, in the chunk's transaction."""
        return None  # documents keep nothing of their own processing

    def vanished(self, session: Session, input_ids: list[str]) -> set[str]:
        """Those of these inputs deleted since they were loaded, read in the chunk's writing
        transaction and (on PostgreSQL, FOR KEY SHARE: updates go on, deletions wait) kept from
        being deleted until it ends: a deletion then sees, and takes with it, what the chunk made
        of them."""
        return set(input_ids) - self.present(session, input_ids)

    @abstractmethod
    def present(self, session: Session, input_ids: list[str]) -> set[str]:
        """Those of these inputs that exist, locked for share where the database can."""


class ObjectInputs(InputSource):
    """Objects of the collection's buckets; their files are read from S3 (or given inline)."""

    kind = "object"

    def load(self, session: Session, input_ids: list[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        records = catalog_objects.get_objects(session, object_ids=input_ids)
        return records, {r["bucket_id"] for r in records.values()}

    def version(self, record: dict[str, Any]) -> str:
        """The etag with the LastModified its listing gave (`etag@last_modified`): the same bytes
        put again with new metadata are a new version. For an object registered without an
        etag, when it last changed. (`collection_inputs.object_version` is the same in SQL.)"""
        if not record.get("etag"):
            return str(record["updated_at"])
        stamp = record.get("last_modified")
        return f"{record['etag']}@{stamp}" if stamp else str(record["etag"])

    def value(self, record: dict[str, Any], source: str, content: Any) -> Any:
        if source == CONTENT or any(b.get("property") == source for b in record.get("blobs") or []):
            return content
        return resolve_path(record, source)

    def origin(self, record: dict[str, Any], buckets: dict[str, dict[str, Any]],
               collection_id: str) -> tuple[Any, dict[str, Any]]:
        key_values = _unique_values(buckets[record["bucket_id"]], record)
        identity = None if key_values is None else [record["bucket_id"], key_values]
        return identity, {"root_object_id": record["object_id"], "root_bucket_id": record["bucket_id"],
                          "source_object_id": record["object_id"], "source_document_id": None,
                          "source_collection_id": None, "path": f"{record['bucket_id']}/{collection_id}", "chain": []}

    def present(self, session: Session, input_ids: list[str]) -> set[str]:
        return catalog_objects.existing_objects(session, object_ids=input_ids, lock=True)

    def commit(self, session: Session, outcomes: list[dict[str, Any]], learned: dict[str, dict[str, Any]]) -> None:
        """Each object's status (skipped ones keep theirs) and the facts its GET told."""
        catalog_objects.set_object_status(session, statuses={
            o["input_id"]: o["status"] for o in outcomes if o["status"] != Status.SKIPPED.value})
        catalog_objects.record_facts(session, facts=learned)


class DocumentInputs(InputSource):
    """Documents of upstream collections; their `text` stands for a file's content."""

    kind = "document"

    def __init__(self) -> None:
        self._lineages: dict[str, dict[str, Any]] = {}

    def load(self, session: Session, input_ids: list[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        stored = catalog_documents.get_document_rows(session, document_ids=input_ids)
        self._lineages = {i: r["lineage"] for i, r in stored.items()}
        return ({i: document_record(r) for i, r in stored.items()},
                {lineage["root_bucket_id"] for lineage in self._lineages.values()})

    def present(self, session: Session, input_ids: list[str]) -> set[str]:
        return catalog_documents.existing_documents(session, document_ids=input_ids, lock=True)

    def version(self, record: dict[str, Any]) -> str:
        """When the document was last written."""
        return str(record["_internal"]["updated_at"])

    def value(self, record: dict[str, Any], source: str, content: Any) -> Any:
        return record.get("text", MISSING) if source == CONTENT else resolve_path(record, source)

    def origin(self, record: dict[str, Any], buckets: dict[str, dict[str, Any]],
               collection_id: str) -> tuple[Any, dict[str, Any]]:
        lineage = self._lineages[record["document_id"]]
        root_bucket = buckets.get(lineage["root_bucket_id"], {})
        identity = record["document_id"] if root_bucket.get("unique_key") else None
        return identity, {**lineage, "source_object_id": None, "source_document_id": record["document_id"],
                          "source_collection_id": record["collection_id"],
                          "path": f"{lineage['path']}/{collection_id}"}


def input_source(collection: dict[str, Any], tier_num: int) -> InputSource:
    """What a chunk of this collection, at this tier of its batch, reads."""
    return ObjectInputs() if collection["source"]["type"] == "bucket" and tier_num == 0 else DocumentInputs()


def _unique_values(bucket: dict[str, Any], record: dict[str, Any]) -> list[Any] | None:
    """The object's values of its bucket's unique_key (metadata first, then the object's own)."""
    unique = bucket.get("unique_key")
    if not unique:
        return None
    values = []
    for name in unique["fields"]:
        value = resolve_path(record.get("metadata") or {}, name)
        if value is MISSING:
            value = record.get(name, MISSING)
        if value is MISSING:
            raise ExtractionError(f"unique_key field '{name}' is missing from the object's metadata")
        values.append(value)
    return values
