"""Registering objects explicitly (`POST /v1/buckets/{bucket}/objects`), with unique-key policies.

Discovery registers what it lists under a bucket's S3 prefix; this is the other way in: an object
described by the caller, whose blobs are `s3://` URLs or inline data. On a bucket with a
`unique_key`, the key's values (read from `metadata`) give the object a deterministic id, and the
policy decides what an existing key means: `insert` refuses it (409), `update` requires it (404),
`upsert` accepts both. Every `s3://` URL must lie inside the bucket's storage (or, for a bucket
without storage, inside a grant of its namespace): `tierflow.grants.locate`, 403 otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from tierflow.catalog import objects as catalog_objects
from tierflow.catalog.grants import granted_locations
from tierflow.errors import AlreadyExistsError, BadRequestError, NotFoundError
from tierflow.grants import NotGrantedError, has_tricks, locate
from tierflow.ids import new_id, stable_id
from tierflow.models.nesting import JsonObject, JsonValue, extras_within_depth
from tierflow.models.status import Status
from tierflow.timestamps import now_text

Policy = Literal["insert", "update", "upsert"]


class Blob(BaseModel):
    """One blob of an object: an `s3://bucket/key` URL or inline JSON/text in `data`."""

    model_config = ConfigDict(extra="allow")
    property: str = Field(description="The bucket-schema property this blob fills.")
    type: str = Field(default="text", description="text, image, pdf, json, …")
    data: JsonValue = Field(description="An s3://bucket/key URL, or the content itself.")

    @model_validator(mode="after")
    def _shallow(self) -> Blob:
        extras_within_depth(self.model_extra)
        return self


class ObjectSpec(BaseModel):
    """An object to register. Top-level keys other than these are folded into `metadata`."""

    model_config = ConfigDict(extra="allow")
    key_prefix: str | None = None
    blobs: list[Blob] = Field(default_factory=list, max_length=64)
    metadata: JsonObject = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shallow(self) -> ObjectSpec:
        extras_within_depth(self.model_extra)
        return self

    def all_metadata(self) -> dict[str, Any]:
        return {**(self.model_extra or {}), **self.metadata}


def _unique_values(bucket: dict[str, Any], metadata: dict[str, Any]) -> list[Any]:
    fields = bucket["unique_key"]["fields"]
    missing = [f for f in fields if f not in metadata]
    if missing:
        raise BadRequestError(
            f"metadata: unique_key field(s) {', '.join(missing)} missing; bucket "
            f"'{bucket['bucket_name']}' identifies objects by {', '.join(fields)}",
            details={"field": "metadata", "missing": missing},
        )
    return [metadata[f] for f in fields]


def register_object(session: Session, *, bucket: dict[str, Any], spec: ObjectSpec,
                    policy: Policy | None) -> dict[str, Any]:
    """Register (or, by policy, update) an object; return its record."""
    metadata = spec.all_metadata()
    unique_key = bucket.get("unique_key")
    existing = None
    if unique_key:
        policy = policy or unique_key.get("default_policy")
        if policy is None:
            raise BadRequestError(
                f"policy: bucket '{bucket['bucket_name']}' has a unique_key and no default_policy; "
                "pass ?policy=insert|update|upsert", details={"field": "policy"})
        object_id = stable_id("obj", bucket["bucket_id"], "unique_key", _unique_values(bucket, metadata))
        existing = catalog_objects.get_objects(session, object_ids=[object_id]).get(object_id)
        if existing is not None and policy == "insert":
            raise AlreadyExistsError(f"an object with this unique_key already exists: {object_id}",
                                     details={"object_id": object_id})
        if existing is None and policy == "update":
            raise NotFoundError("object with this unique_key", object_id)
    elif policy is not None:
        raise BadRequestError(f"policy: bucket '{bucket['bucket_name']}' has no unique_key, so no policy applies",
                              details={"field": "policy"})
    else:
        object_id = new_id("obj")
    now = now_text()
    blobs = [b.model_dump(mode="json") for b in spec.blobs]
    urls = [b["data"] for b in blobs if isinstance(b["data"], str) and b["data"].startswith("s3://")]
    if urls:
        grants = granted_locations(session, namespace_id=bucket["namespace_id"])
        for url in urls:
            locate(bucket, grants, url)
            if has_tricks(url[5:].partition("/")[2]):
                raise NotGrantedError(f"{url}: a key may not start with '/' or hold empty segments",
                                      details={"field": "blobs"})
    first_url = urls[0] if urls else None
    row = {
        "object_id": object_id, "bucket_id": bucket["bucket_id"], "namespace_id": bucket["namespace_id"],
        "key": first_url.split("/", 3)[3] if first_url and first_url.count("/") >= 3 else None,
        "key_prefix": spec.key_prefix, "size_bytes": None, "etag": None, "content_type": None,
        "last_modified": None, "metadata": metadata, "blobs": blobs, "status": Status.PENDING.value,
        "created_at": existing["created_at"] if existing else now, "updated_at": now,
    }
    catalog_objects.register_objects(session, rows=[row])
    return catalog_objects.get_objects(session, object_ids=[object_id])[object_id]
